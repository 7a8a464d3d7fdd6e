"""Transports: the only code that talks SMTP or writes a Maildir. Every claimed envelope is settled or
reported back through DeliveryError.unsettled."""

import asyncio
import contextlib
import logging
import mailbox
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiosmtplib

from reminders.config import Smtp as SmtpSettings
from reminders.config_values import valid_helo_name
from reminders.delivery.relay import BREAKER as BREAKER
from reminders.delivery.relay import DeliveryError as DeliveryError
from reminders.delivery.relay import RelayUnreachable as RelayUnreachable
from reminders.delivery.relay import Retry as _Retry
from reminders.delivery.relay import answer as _answer
from reminders.delivery.relay import client, login, starttls_missing, tls_error
from reminders.delivery.relay import fault as _fault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    key: int
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


@dataclass(frozen=True)
class Outcome:
    key: int
    sent: bool
    error: str | None = None
    permanent: bool = False
    attempts: int = 1


Claim = Callable[[], Envelope | None]
Settle = Callable[[Outcome], None]


class _Throttle:
    """At most `limit` transmissions start in any sliding `window` seconds, across a run's workers (0: no limit)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.starts: deque[float] = deque()  # start times within the last window, oldest first

    async def admit(self, stopped: asyncio.Event) -> float | None:
        """Wait for a free slot and take it: its start time, or None when the run stopped meanwhile."""
        loop = asyncio.get_running_loop()
        while not stopped.is_set():
            now = loop.time()
            if self.limit <= 0:
                return now
            while self.starts and self.starts[0] <= now - self.window:
                self.starts.popleft()
            if len(self.starts) < self.limit:
                self.starts.append(now)
                return now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), self.starts[0] + self.window - now)
        return None

    def give_back(self, start: float) -> None:  # a slot taken for a transmission that never began
        with contextlib.suppress(ValueError):
            self.starts.remove(start)


@dataclass
class _Run:
    settings: SmtpSettings
    claim: Claim
    settle: Settle
    throttle: _Throttle
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    in_hand: set[int] = field(default_factory=set)  # claimed, not yet settled
    warned_unverified: bool = False
    stop: threading.Event | None = None  # asked from outside: finish what is in flight, start nothing new
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by the first connection being opened
    proven: bool = False  # one connection has connected and logged in: the settings work
    unreachable: int = 0  # connection failures and timeouts in a row, across workers; reset by any answer

    @property
    def halted(self) -> bool:
        return self.stopped.is_set() or (self.stop is not None and self.stop.is_set())


class _Connection:
    """One worker's lazily opened, reused SMTP connection."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.smtp: aiosmtplib.SMTP | None = None

    async def open(self) -> aiosmtplib.SMTP | None:
        """The open connection, or None when the run stopped while this worker waited for the first one."""
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp  # sendmail() itself sends RSET after a refused transaction
        self.close()
        await asyncio.sleep(0)  # let a closed transport release its socket: at most `connections` open, ever
        s = self.run.settings
        if s.security != "none" and not s.verify_certificates and not self.run.warned_unverified:
            self.run.warned_unverified = True
            log.warning("TLS certificate verification is disabled for SMTP server %s:%d", s.host, s.port)
        smtp = client(s)
        try:
            if self.run.proven:
                await self._establish(smtp)
            else:  # until one connection has connected (and logged in), the others wait: a wrong TLS mode or a
                async with self.run.gate:  # refused password costs one attempt, not one per connection
                    if self.run.halted:
                        smtp.close()
                        return None
                    await self._establish(smtp)
                    self.run.proven = True
        except BaseException:
            smtp.close()
            raise
        self.smtp = smtp
        return smtp

    async def _establish(self, smtp: aiosmtplib.SMTP) -> None:
        s = self.run.settings
        await smtp.connect()
        if s.username is not None:
            await login(smtp, s.username, s.password or "")

    def close(self) -> None:
        """Drop the connection; abort() closes the socket on the next loop turn, even over TLS (no shutdown wait)."""
        if self.smtp is not None:
            if isinstance(self.smtp.transport, asyncio.Transport):
                self.smtp.transport.abort()
            self.smtp.close()
        self.smtp = None

    async def quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await self.smtp.quit()
        self.close()


async def _connect(conn: _Connection) -> aiosmtplib.SMTP | None:
    """Open the connection, sorting faults into transient (_Retry) and run-stopping (DeliveryError)."""
    security = conn.run.settings.security
    where = f"SMTP server {conn.run.settings.host}:{conn.run.settings.port}"
    try:
        smtp = await conn.open()
    except ssl.SSLError as exc:
        raise tls_error(where, security, exc) from exc
    except aiosmtplib.SMTPConnectError as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            raise tls_error(where, security, exc.__cause__) from exc
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
            raise DeliveryError(f"{where} refused service: {_answer(exc)}") from exc
        if isinstance(exc, aiosmtplib.SMTPResponseException):  # a 4xx greeting: the relay answered
            raise _Retry(_answer(exc)) from exc
        raise _unreachable(conn.run, _fault(exc)) from exc
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
        raise _unreachable(conn.run, _fault(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500:
            raise _Retry(_answer(exc)) from exc
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            user = conn.run.settings.username
            raise DeliveryError(f"authentication as {user!r} failed at {where}: {_answer(exc)}") from exc
        raise DeliveryError(f"{where} refused the session: {_answer(exc)}") from exc
    except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH not offered by the server
        if security == "starttls" and "STARTTLS" in str(exc):
            raise starttls_missing(where) from exc
        raise DeliveryError(f"{where}: {exc}") from exc
    return smtp


def _unreachable(run: _Run, fault: str) -> Exception:
    """Count a connection failure or timeout: a transient fault until BREAKER in a row, then the run stops."""
    run.unreachable += 1
    if run.unreachable < BREAKER:
        return _Retry(fault)
    where = f"{run.settings.host}:{run.settings.port}"
    return RelayUnreachable(
        f"SMTP 服务器 {where} 连续 {BREAKER} 次连接失败或无应答，已停止本次发送，未发出的邮件仍为待发送，稍后会重试 "
        f"(relay unreachable: {BREAKER} connection failures or timeouts in a row, last: {fault}; "
        f"the run stopped, unsent messages stay pending)")


async def _transact(run: _Run, smtp: aiosmtplib.SMTP, env: Envelope) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """sendmail(); any answer from the relay, even a refusal, resets the breaker's count."""
    try:
        result = await smtp.sendmail(env.sender, list(env.recipients), env.data)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        run.unreachable = 0
        raise
    run.unreachable = 0
    return result


async def _attempt(conn: _Connection, env: Envelope) -> Outcome | None:
    while True:
        if (smtp := await _connect(conn)) is None:
            return None  # the run stopped (wrong TLS mode, refused login) while this worker waited
        # Admitted in the same loop turn as sendmail() writes MAIL FROM: the throttle counts what the server sees.
        if (start := await conn.run.throttle.admit(conn.run.stopped)) is None:
            return None  # the run stopped while this worker waited
        if smtp.is_connected:
            break
        conn.run.throttle.give_back(start)  # the server closed the idle connection while we waited
    try:
        refused, _ = await _transact(conn.run, smtp, env)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        text = "; ".join(f"{r.recipient}: {_answer(r)}" for r in exc.recipients)
        if all(r.code >= 500 for r in exc.recipients):
            return Outcome(env.key, sent=False, error=f"all recipients refused: {text}", permanent=True)
        raise _Retry(text) from exc
    except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as exc:
        if exc.code == 530:
            raise DeliveryError(f"SMTP server requires authentication: {_answer(exc)}") from exc
        if exc.code >= 500:
            return Outcome(env.key, sent=False, error=_answer(exc), permanent=True)
        raise _Retry(_answer(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:  # EHLO/RSET refused or a garbled reply
        conn.close()
        raise _Retry(_answer(exc)) from exc
    except aiosmtplib.SMTPTimeoutError as exc:  # a relay that hangs mid-transaction counts towards the breaker
        conn.close()
        raise _unreachable(conn.run, _fault(exc)) from exc
    except aiosmtplib.SMTPServerDisconnected as exc:  # the relay answered, then dropped: not counted
        conn.close()
        raise _Retry(_fault(exc)) from exc
    except ValueError as exc:  # an address aiosmtplib will not put on the wire (non-ASCII, control chars)
        conn.close()  # MAIL FROM may already be on the server
        return Outcome(env.key, sent=False, error=f"unsendable address: {exc}", permanent=True)
    if not refused:
        return Outcome(env.key, sent=True)
    text = "; ".join(f"{rcpt}: {reply.code} {reply.message}" for rcpt, reply in refused.items())
    return Outcome(env.key, sent=True, error=f"refused recipients: {text}")


async def _deliver_one(conn: _Connection, env: Envelope) -> Outcome | None:
    """None: abandoned, unsettled, because another worker stopped the run."""
    settings = conn.run.settings
    if not env.recipients:
        return Outcome(env.key, sent=False, error="no recipients", permanent=True)
    error = ""
    for attempt in range(1, settings.retries + 1):
        if conn.run.halted:
            return None
        try:
            outcome = await _attempt(conn, env)
            return None if outcome is None else replace(outcome, attempts=attempt)
        except _Retry as exc:
            error = str(exc)
        log.info("outbox %d: attempt %d/%d failed: %s", env.key, attempt, settings.retries, error)
        if attempt < settings.retries:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.run.stopped.wait(), settings.backoff * 2 ** (attempt - 1))
    return Outcome(env.key, sent=False, error=error, attempts=settings.retries)


async def _worker(run: _Run) -> None:
    conn = _Connection(run)
    try:
        while not run.halted:
            env = run.claim()
            if env is None:
                break
            run.in_hand.add(env.key)
            if (outcome := await _deliver_one(conn, env)) is None:
                break
            run.settle(outcome)
            run.in_hand.discard(env.key)
    except BaseException:
        run.stopped.set()
        conn.close()
        raise
    await conn.quit()


def _check(settings: SmtpSettings) -> None:
    s = settings
    checks = {
        "host must be a non-empty name without line breaks": bool(s.host) and not any(c in s.host for c in "\r\n"),
        "port must be 1-65535": 0 < s.port < 65536,
        "security must be none, starttls or tls": s.security in ("none", "starttls", "tls"),
        "a password is set but no username": s.password is None or s.username is not None,
        "timeout must be > 0": s.timeout > 0,
        "connections and retries must be >= 1, backoff >= 0": min(s.connections, s.retries) >= 1 and s.backoff >= 0,
        "max_per_minute must be >= 0 (0: no limit)": s.max_per_minute >= 0,
        "helo_name must be a host name": not s.helo_name or valid_helo_name(s.helo_name),
    }
    if problems := [problem for problem, ok in checks.items() if not ok]:
        raise DeliveryError("bad SMTP settings: " + "; ".join(problems))


async def deliver_smtp(settings: SmtpSettings, claim: Claim, settle: Settle,
                       stop: threading.Event | None = None) -> list[int]:
    """Deliver until nothing is left to claim, or `stop` is set: then every transaction in flight is finished and
    settled, nothing new starts, and the keys claimed but not sent (a retry or a throttle was waiting) are returned
    for the caller to put back."""
    return await _deliver_smtp(settings, claim, settle, _Throttle(settings.max_per_minute), stop)


async def _watch(stop: threading.Event, run: _Run) -> None:
    """Carry a stop asked from outside the loop (a signal handler, another thread) into the run."""
    while not stop.is_set():
        await asyncio.sleep(0.1)
    run.stopped.set()


async def _deliver_smtp(settings: SmtpSettings, claim: Claim, settle: Settle, throttle: _Throttle,
                        stop: threading.Event | None = None) -> list[int]:
    _check(settings)
    run = _Run(settings, claim, settle, throttle, stop=stop)
    watcher = asyncio.create_task(_watch(stop, run)) if stop is not None else None
    try:
        results = await asyncio.gather(*(_worker(run) for _ in range(settings.connections)), return_exceptions=True)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    unsettled = sorted(run.in_hand)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if isinstance(error, DeliveryError):
            raise type(error)(str(error), unsettled) from error
    if errors:
        errors[0].add_note(f"unsettled outbox keys: {unsettled}")
        raise errors[0]
    return unsettled


def deliver_maildir(folder: Path, claim: Claim, settle: Settle) -> None:
    try:
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips these when `folder` already exists
            (folder / sub).mkdir(parents=True, exist_ok=True)
        box = mailbox.Maildir(folder, create=True)
    except OSError as exc:
        raise DeliveryError(f"cannot use {folder} as a Maildir: {exc}") from exc
    while (env := claim()) is not None:
        try:
            # Local line endings, so the file reads cleanly in a text editor as well as a mail client.
            box.add(env.data.replace(b"\r\n", b"\n"))
        except OSError as exc:
            settle(Outcome(env.key, sent=False, error=_fault(exc)))
        else:
            settle(Outcome(env.key, sent=True))
