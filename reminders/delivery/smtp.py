"""Transports: the only code that talks SMTP or writes a Maildir. Every claimed envelope is settled or
reported back through DeliveryError.unsettled."""

import asyncio
import contextlib
import logging
import ssl
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

import aiosmtplib

from reminders.config import Smtp as SmtpSettings
from reminders.delivery.pacing import Throttle, is_rate_answer
from reminders.delivery.relay import BREAKER as BREAKER
from reminders.delivery.relay import DeliveryError as DeliveryError
from reminders.delivery.relay import RelayUnreachable as RelayUnreachable
from reminders.delivery.relay import Retry as _Retry
from reminders.delivery.relay import answer as _answer
from reminders.delivery.relay import (
    check_settings,
    client,
    fewer_connections,
    login,
    rate_breaker,
    slower,
    starttls_missing,
    tls_error,
)
from reminders.delivery.relay import fault as _fault
from reminders.mail.mime import seven_bit

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
    """How one message fared. `sent`: the relay took it for every address of the envelope not named in `refused`
    or `deferred` (and for none when not sent). `permanent`: a failure not worth trying again."""

    key: int
    sent: bool
    error: str | None = None
    permanent: bool = False
    attempts: int = 1
    refused: tuple[tuple[str, str], ...] = ()  # (address, answer): a 5xx, never tried again
    deferred: tuple[tuple[str, str], ...] = ()  # (address, answer): a 4xx, tried again later, that address alone


Claim = Callable[[], Envelope | None]
# A settle may return an awaitable (a write committed off the loop): the worker awaits it before its next message.
Settle = Callable[[Outcome], Awaitable[None] | None]
Tell = Callable[[str], None]

# Rate answers in a row, each at a pace already lowered (the refusals of one burst over several connections count
# once), with nothing delivered between them, after which a run stops slowing down and stops.
RATE_BREAKER = 5


class _Retire(Exception):
    """The relay refused one more connection while others are open: this worker hands its message back and ends."""


class _Slow(Exception):
    """A rate answer: the message is tried again, at the lower pace, without costing one of its attempts. `pace`:
    the throttle's generation when the refused transmission started."""

    def __init__(self, answer: str, pace: int) -> None:
        super().__init__(answer)
        self.pace = pace


@dataclass
class _Run:
    settings: SmtpSettings
    claim: Claim
    settle: Settle
    throttle: Throttle
    tell: Tell = log.warning  # what the person or log watching the run should know (the run slowed down…)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    in_hand: set[int] = field(default_factory=set)  # claimed, not yet settled
    handed_back: deque[Envelope] = field(default_factory=deque)  # in hand, left by a worker that retired
    workers: int = 0  # workers still taking messages
    open: int = 0  # connections connected (and logged in) right now
    rate_strikes: int = 0  # rate answers in a row, across workers; reset by any message delivered
    told_open: int | None = None  # the number of connections `tell` last said the run goes on with
    warned_unverified: bool = False
    stop: threading.Event | None = None  # asked from outside: finish what is in flight, start nothing new
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by the first connection being opened
    proven: bool = False  # one connection has connected and logged in: the settings work
    unreachable: int = 0  # connection failures and timeouts in a row, across workers; reset by any answer

    @property
    def halted(self) -> bool:
        return self.stopped.is_set() or (self.stop is not None and self.stop.is_set())

    def next(self) -> Envelope | None:
        """A message handed back by a retired worker first, else a new claim."""
        if self.handed_back:
            return self.handed_back.popleft()
        env = self.claim()
        if env is not None:
            self.in_hand.add(env.key)
        return env


class _Connection:
    """One worker's lazily opened, reused SMTP connection."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.smtp: aiosmtplib.SMTP | None = None
        self.counted = False  # counted in run.open

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
        self.counted = True
        self.run.open += 1
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
        if self.counted:
            self.counted = False
            self.run.open -= 1

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
            if conn.run.open > 0 and conn.run.workers > 1:  # typically "421 too many connections from …"
                raise _Retire(_answer(exc)) from exc
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
    error = RelayUnreachable(
        f"SMTP 服务器 {where} 连续 {BREAKER} 次连接失败或无应答，已停止本次发送，未发出的邮件仍为待发送，稍后会重试 "
        f"(relay unreachable: {BREAKER} connection failures or timeouts in a row, last: {fault}; "
        f"the run stopped, unsent messages stay pending)")
    error.last = f"无法连接 SMTP 服务器 {where} (relay unreachable): {fault}"
    return error


async def _transact(run: _Run, smtp: aiosmtplib.SMTP, env: Envelope) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """sendmail(); any answer from the relay, even a refusal, resets the breaker's count."""
    try:
        data, options = await _as_relay_takes_it(smtp, env.data)
        result = await smtp.sendmail(env.sender, list(env.recipients), data, mail_options=options)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        run.unreachable = 0
        raise
    run.unreachable = 0
    return result


async def _as_relay_takes_it(smtp: aiosmtplib.SMTP, data: bytes) -> tuple[bytes, list[str]]:
    """The message and MAIL FROM's parameters: text parts in 8bit (mail.mime) announced as such, or turned to
    base64 for a relay that does not announce 8BITMIME (RFC 6152), which its EHLO answer tells."""
    if data.isascii():
        return data, []
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()  # a relay that knows no EHLO knows no 8BITMIME either
    if smtp.supports_extension("8bitmime"):
        return data, ["BODY=8BITMIME"]
    return seven_bit(data), []


async def _attempt(conn: _Connection, env: Envelope) -> Outcome | None:
    while True:
        if (smtp := await _connect(conn)) is None:
            return None  # the run stopped (wrong TLS mode, refused login) while this worker waited
        # Admitted in the same loop turn as sendmail() writes MAIL FROM: the throttle counts what the server sees.
        if (start := await conn.run.throttle.admit(conn.run.stopped)) is None:
            return None  # the run stopped while this worker waited
        if smtp.is_connected:
            pace = conn.run.throttle.generation  # the pace this transmission starts at
            break
        conn.run.throttle.give_back(start)  # the server closed the idle connection while we waited
    try:
        refused, _ = await _transact(conn.run, smtp, env)
    except aiosmtplib.SMTPRecipientsRefused as exc:  # every address refused: nothing was sent
        return _by_address(conn.run, env, {r.recipient: (r.code, r.message) for r in exc.recipients}, pace,
                           sent=False)
    except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as exc:
        if exc.code == 530:
            raise DeliveryError(f"SMTP server requires authentication: {_answer(exc)}") from exc
        if exc.code >= 500:
            return Outcome(env.key, sent=False, error=_answer(exc), permanent=True)
        if is_rate_answer(exc.code, exc.message):
            raise _Slow(_answer(exc), pace) from exc
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
    return _by_address(conn.run, env, {rcpt: (reply.code, reply.message) for rcpt, reply in refused.items()}, pace,
                       sent=True)


def _by_address(run: _Run, env: Envelope, answers: Mapping[str, tuple[int, str]], pace: int, sent: bool) -> Outcome:
    """The outcome when the relay answered addresses differently: a 5xx refuses that address for good, a 4xx puts
    it off (the address alone is tried again later). A rate answer slows the run down; when it put off every address
    the message is tried again at once, at the new pace."""
    refused = tuple((address, f"{code} {text}") for address, (code, text) in answers.items() if code >= 500)
    deferred = tuple((address, f"{code} {text}") for address, (code, text) in answers.items() if code < 500)
    rate = next((f"{code} {text}" for code, text in answers.values() if is_rate_answer(code, text)), None)
    if rate is not None:
        if not sent and not refused:
            raise _Slow(rate, pace)
        _slow_down(run, rate, pace)
    error = "; ".join(f"{address}: {answer}" for address, answer in (*refused, *deferred))
    if not sent and not deferred:
        return Outcome(env.key, sent=False, error=f"all recipients refused: {error}", permanent=True, refused=refused)
    return Outcome(env.key, sent=sent, error=error, permanent=not deferred, refused=refused, deferred=deferred)


def _slow_down(run: _Run, answer: str, pace: int) -> None:
    """Lower the pace the relay refused, and say so; nothing when a refusal of the same burst already lowered it."""
    if (limit := run.throttle.slow_down(pace)) is not None:
        run.tell(slower(answer, limit))


async def _deliver_one(conn: _Connection, env: Envelope) -> Outcome | None:
    """None: abandoned, unsettled, because another worker stopped the run."""
    run, settings = conn.run, conn.run.settings
    if not env.recipients:
        return Outcome(env.key, sent=False, error="no recipients", permanent=True)
    error, attempt = "", 1
    while attempt <= settings.retries:
        if run.halted:
            return None
        try:
            outcome = await _attempt(conn, env)
        except _Retry as exc:
            error = str(exc)
        except _Slow as exc:  # not the message's fault: the attempt is not counted, the pace is lowered
            if exc.pace != run.throttle.generation:
                continue  # started before the pace was lowered (the same burst): try again at the lower pace
            run.rate_strikes += 1  # one strike per pace refused, however many connections heard it
            if run.rate_strikes >= RATE_BREAKER:
                raise rate_breaker(RATE_BREAKER, str(exc)) from exc
            _slow_down(run, str(exc), exc.pace)
            continue
        else:
            if outcome is not None and outcome.sent:
                run.rate_strikes = 0
            return None if outcome is None else replace(outcome, attempts=attempt)
        log.info("outbox %d: attempt %d/%d failed: %s", env.key, attempt, settings.retries, error)
        if attempt < settings.retries:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stopped.wait(), settings.backoff * 2 ** (attempt - 1))
        attempt += 1
    return Outcome(env.key, sent=False, error=error, attempts=settings.retries)


async def _worker(run: _Run) -> None:
    conn = _Connection(run)
    run.workers += 1
    env: Envelope | None = None
    try:
        while not run.halted:
            if (env := run.next()) is None:
                break
            try:
                outcome = await _deliver_one(conn, env)
            except _Retire as exc:  # handed to a worker whose connection the relay accepted, in this same run
                run.handed_back.append(env)
                if run.told_open is None or run.open < run.told_open:  # said once per lower number, not per refusal
                    run.told_open = run.open
                    run.tell(fewer_connections(str(exc), run.open))
                break
            if outcome is None:
                break
            await _settled(run, outcome)
            run.in_hand.discard(env.key)
    except RelayUnreachable as exc:
        run.stopped.set()
        conn.close()
        run.workers -= 1
        if env is not None and env.key in run.in_hand:  # the message that met the breaker counts one failed try
            await _settled(run, Outcome(env.key, sent=False, error=exc.last or str(exc)))
            run.in_hand.discard(env.key)
        raise
    except BaseException:
        run.stopped.set()
        conn.close()
        run.workers -= 1
        raise
    run.workers -= 1
    await conn.quit()


async def _settled(run: _Run, outcome: Outcome) -> None:
    done = run.settle(outcome)
    if done is not None:
        await done


async def deliver_smtp(settings: SmtpSettings, claim: Claim, settle: Settle,
                       stop: threading.Event | None = None, tell: Tell = log.warning) -> list[int]:
    """Deliver until nothing is left to claim, or `stop` is set: then every transaction in flight is finished and
    settled, nothing new starts, and the keys claimed but not sent (a retry or a throttle was waiting) are returned
    for the caller to put back. `tell` hears how the run adapted to the relay (fewer connections, a slower pace)."""
    return await _deliver_smtp(settings, claim, settle, Throttle(settings.max_per_minute), stop, tell)


async def _watch(stop: threading.Event, run: _Run) -> None:
    """Carry a stop asked from outside the loop (a signal handler, another thread) into the run."""
    while not stop.is_set():
        await asyncio.sleep(0.1)
    run.stopped.set()


async def _deliver_smtp(settings: SmtpSettings, claim: Claim, settle: Settle, throttle: Throttle,
                        stop: threading.Event | None = None, tell: Tell = log.warning) -> list[int]:
    check_settings(settings)
    run = _Run(settings, claim, settle, throttle, tell, stop=stop)
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
