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
from reminders.errors import ReminderError

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


class DeliveryError(ReminderError):
    """Stops the whole run; `unsettled` lists envelopes claimed but not settled (the caller releases them)."""

    def __init__(self, message: str, unsettled: list[int] | None = None) -> None:
        super().__init__(message)
        self.unsettled: list[int] = list(unsettled or [])


Claim = Callable[[], Envelope | None]
Settle = Callable[[Outcome], None]


class _Retry(Exception):
    """A transient fault: the attempt may succeed later."""


def _answer(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def _fault(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"  # for faults that are not a server answer


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

    @property
    def halted(self) -> bool:
        return self.stopped.is_set() or (self.stop is not None and self.stop.is_set())


class _Connection:
    """One worker's lazily opened, reused SMTP connection."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.smtp: aiosmtplib.SMTP | None = None

    async def open(self) -> aiosmtplib.SMTP:
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp  # sendmail() itself sends RSET after a refused transaction
        self.close()
        await asyncio.sleep(0)  # let a closed transport release its socket: at most `connections` open, ever
        s = self.run.settings
        if s.security != "none" and not s.verify_certificates and not self.run.warned_unverified:
            self.run.warned_unverified = True
            log.warning("TLS certificate verification is disabled for SMTP server %s:%d", s.host, s.port)
        # start_tls=False (not None) for "none": no opportunistic upgrade that could fail on a self-signed cert.
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            validate_certs=s.verify_certificates,
        )
        try:
            await smtp.connect()
            if s.username is not None:
                await smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        self.smtp = smtp
        return smtp

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


async def _connect(conn: _Connection) -> aiosmtplib.SMTP:
    """Open the connection, sorting faults into transient (_Retry) and run-stopping (DeliveryError)."""
    where = f"SMTP server {conn.run.settings.host}:{conn.run.settings.port}"
    try:
        return await conn.open()
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS failure with {where}: {exc}") from exc
    except aiosmtplib.SMTPConnectError as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            raise DeliveryError(f"TLS failure with {where}: {exc.__cause__}") from exc
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
            raise DeliveryError(f"{where} refused service: {_answer(exc)}") from exc
        raise _Retry(_fault(exc)) from exc
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
        raise _Retry(_fault(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500:
            raise _Retry(_answer(exc)) from exc
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            user = conn.run.settings.username
            raise DeliveryError(f"authentication as {user!r} failed at {where}: {_answer(exc)}") from exc
        raise DeliveryError(f"{where} refused the session: {_answer(exc)}") from exc
    except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH not offered by the server
        raise DeliveryError(f"{where}: {exc}") from exc


async def _attempt(conn: _Connection, env: Envelope) -> Outcome | None:
    while True:
        smtp = await _connect(conn)
        # Admitted in the same loop turn as sendmail() writes MAIL FROM: the throttle counts what the server sees.
        if (start := await conn.run.throttle.admit(conn.run.stopped)) is None:
            return None  # the run stopped while this worker waited
        if smtp.is_connected:
            break
        conn.run.throttle.give_back(start)  # the server closed the idle connection while we waited
    try:
        refused, _ = await smtp.sendmail(env.sender, list(env.recipients), env.data)
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
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
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
            raise DeliveryError(str(error), unsettled) from error
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
