"""A real aiosmtpd server for transport tests, recording what it receives, with faults injected on command."""

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

Stage = Literal["mail", "rcpt", "data"]


def free_port() -> int:
    """A port nothing listens on at this moment (the OS may hand it out again later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_context(folder: Path) -> ssl.SSLContext | None:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1; None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str | None
    login: str | None  # the AUTH user of the session, None when it did not authenticate
    tls: bool
    connection: int  # 1 for the first connection the server accepted, 2 for the next…
    mail_options: tuple[str, ...] = ()  # MAIL FROM's parameters (BODY=8BITMIME)


class _TrackedSMTP(SMTP):
    """Tells the handler when the client's side of the connection ends (EOF or loss, whichever comes first), and
    lets it refuse a connection with its greeting, as a relay over its per-client limit does."""

    async def _handle_client(self) -> None:
        refusal = self.event_handler.refusal(self)
        if refusal is not None:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def eof_received(self) -> bool | None:
        self.event_handler.disconnected(self)
        return super().eof_received()

    def connection_lost(self, error: Exception | None) -> None:
        self.event_handler.disconnected(self)
        super().connection_lost(error)


class _Controller(Controller):
    """Serves on a socket bound to port 0 before start, so the port is known and cannot be taken meanwhile."""

    def __init__(self, handler: "_Handler", sock: socket.socket, **smtp_kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **smtp_kwargs)
        self._sock = sock
        self._handler = handler

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        smtp = _TrackedSMTP(self.handler, **self.SMTP_kwargs)  # Controller.factory(), with tracking
        self._handler.connected(smtp)
        return smtp


class _Handler:
    def __init__(self, username: str | None, password: str | None) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.connection_count = 0
        self.connection_of: dict[int, int] = {}  # id(aiosmtpd SMTP instance) → connection number
        self.faults: dict[Stage, deque[str]] = {"mail": deque(), "rcpt": deque(), "data": deque()}
        self.refused: dict[str, int] = {}
        self.drops = 0
        self.delays: dict[Stage, float] = {"mail": 0.0, "rcpt": 0.0, "data": 0.0}
        self.username = username
        self.password = password
        self.live: set[int] = set()  # id() of the aiosmtpd SMTP instances whose client has not gone
        self.max_live = 0
        self.mail_times: list[float] = []  # time.monotonic() of every MAIL command, answered or faulted
        self.logins_tried = 0  # AUTH commands answered, accepted or refused
        self.helo_names: list[str] = []  # the name of every EHLO/HELO, in order
        self.fqdn_helo_only: str | None = None  # set: a HELO/EHLO name without a dot, other than this, gets 504
        self.max_connections: int | None = None  # set: a connection beyond this many at once is refused with 421
        self.turned_away: set[int] = set()  # id() of the connections refused that way, still open
        self.refused_greetings = 0
        self.max_served = 0  # the most connections served (not turned away) at once
        self.rate: tuple[int, float] | None = None  # set: (messages, seconds) beyond which MAIL gets 450 4.7.1
        self.accepted_mail_times: deque[float] = deque()
        self.rate_refusals = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str, responses: list[str]
    ) -> list[str]:
        if self._refuses_helo(hostname):
            return ["504 5.5.2 <" + hostname + ">: Helo command rejected: need fully-qualified hostname"]
        session.host_name = hostname  # a new-style EHLO hook sets it itself
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str
    ) -> str:
        if self._refuses_helo(hostname):
            return "504 5.5.2 <" + hostname + ">: Helo command rejected: need fully-qualified hostname"
        session.host_name = hostname
        return f"250 {server.hostname}"

    def _refuses_helo(self, hostname: str) -> bool:
        with self.lock:
            self.helo_names.append(hostname)
            strict = self.fqdn_helo_only
        return strict is not None and "." not in hostname and hostname != strict

    def connected(self, smtp: SMTP) -> None:
        with self.lock:
            self.connection_count += 1
            self.connection_of[id(smtp)] = self.connection_count
            self.live.add(id(smtp))
            self.max_live = max(self.max_live, len(self.live))

    def disconnected(self, smtp: SMTP) -> None:
        with self.lock:
            self.live.discard(id(smtp))
            self.turned_away.discard(id(smtp))

    def refusal(self, smtp: SMTP) -> str | None:
        with self.lock:
            served = len(self.live - self.turned_away)
            if self.max_connections is not None and served > self.max_connections:
                self.turned_away.add(id(smtp))
                self.refused_greetings += 1
                return "421 4.7.0 recording.test Error: too many connections from 127.0.0.1"
            self.max_served = max(self.max_served, served)
            return None

    def take_fault(self, stage: Stage) -> str | None:
        with self.lock:
            return self.faults[stage].popleft() if self.faults[stage] else None

    async def pause(self, stage: Stage) -> None:
        with self.lock:
            seconds = self.delays[stage]
        if seconds > 0:
            await asyncio.sleep(seconds)

    def authenticate(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        with self.lock:
            self.logins_tried += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            now = time.monotonic()
            self.mail_times.append(now)
            if self.rate is not None:
                count, window = self.rate
                while self.accepted_mail_times and self.accepted_mail_times[0] <= now - window:
                    self.accepted_mail_times.popleft()
                if len(self.accepted_mail_times) >= count:
                    self.rate_refusals += 1
                    return "450 4.7.1 Error: too much mail from 127.0.0.1"
                self.accepted_mail_times.append(now)
        await self.pause("mail")
        if fault := self.take_fault("mail"):
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]
    ) -> str:
        await self.pause("rcpt")
        if fault := self.take_fault("rcpt"):
            return fault
        with self.lock:
            code = self.refused.get(address)
        if code is not None and code >= 500:
            return f"{code} {code // 100}.1.1 <{address}>: Recipient address rejected: User unknown"
        if code is not None:
            return f"{code} {code // 100}.2.1 <{address}>: Recipient address rejected: mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        with self.lock:
            drop = self.drops > 0
            self.drops -= drop
        if drop and isinstance(server.transport, asyncio.WriteTransport):
            server.transport.abort()  # nothing written after abort() reaches the client
            return "421 dropped"
        if fault := self.take_fault("data"):
            return fault
        data = envelope.original_content or b""
        headers = BytesParser(policy=default_policy).parsebytes(data, headersonly=True)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.lock:
            self.messages.append(
                Received(
                    sender=envelope.mail_from or "",
                    recipients=tuple(envelope.rcpt_tos),
                    data=data,
                    message_id=headers["Message-ID"],
                    login=login,
                    tls=server.transport is not None and server.transport.get_extra_info("sslcontext") is not None,
                    connection=self.connection_of.get(id(server), 0),
                    mail_options=tuple(envelope.mail_options),
                )
            )
        await self.pause("data")  # the message is kept: a client cut off now never hears the 250
        return "250 OK"


class RecordingServer:
    host = "127.0.0.1"

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        eight_bit: bool = True,
        size_limit: int | None = None,
    ) -> None:
        """`tls` offers STARTTLS, or with `implicit_tls` wraps the whole connection (SMTPS); without `eight_bit`
        the server does not announce 8BITMIME, as an old relay does; `size_limit` announces SIZE and refuses a
        larger message with 552, as Postfix's message_size_limit does."""
        self._handler = _Handler(username, password)
        self._sock = socket.socket()
        self._sock.bind((self.host, 0))
        self.port: int = self._sock.getsockname()[1]
        options: dict[str, Any] = {"server_hostname": "recording.test", "decode_data": not eight_bit}
        if size_limit is not None:
            options["data_size_limit"] = size_limit
        if username is not None:
            options |= {"authenticator": self._handler.authenticate, "auth_require_tls": False}
        if tls is not None:
            options["ssl_context" if implicit_tls else "tls_context"] = tls
        self._controller = _Controller(self._handler, self._sock, **options)

    def start(self) -> None:
        self._controller.start()
        with self._handler.lock:  # forget the probe connection Controller.start() makes
            self._handler.connection_count = 0
            self._handler.connection_of.clear()
            self._handler.live.clear()
            self._handler.max_live = 0

    def stop(self) -> None:
        self._controller.stop()
        self._sock.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def messages(self) -> list[Received]:
        with self._handler.lock:
            return list(self._handler.messages)

    @property
    def connections(self) -> int:
        """TCP connections accepted since start."""
        with self._handler.lock:
            return self._handler.connection_count

    @property
    def max_concurrent(self) -> int:
        """The most connections open at once since start, as the server saw them."""
        with self._handler.lock:
            return self._handler.max_live

    @property
    def mail_times(self) -> list[float]:
        """time.monotonic() when each MAIL command (a transmission's start) arrived, faulted ones included."""
        with self._handler.lock:
            return list(self._handler.mail_times)

    @property
    def auth_attempts(self) -> int:
        with self._handler.lock:
            return self._handler.logins_tried

    @property
    def helo_names(self) -> list[str]:
        with self._handler.lock:
            return list(self._handler.helo_names)

    def require_fqdn_helo(self) -> None:
        """Answer 504 to a HELO/EHLO name without a dot, like Postfix's reject_non_fqdn_helo_hostname."""
        with self._handler.lock:
            self._handler.fqdn_helo_only = ""

    def fail_next(self, code: int, text: str, count: int = 1, stage: Stage = "data") -> None:
        """Answer the next `count` commands of `stage` (MAIL, RCPT or the end of DATA) with `code text`."""
        with self._handler.lock:
            self._handler.faults[stage].extend([f"{code} {text}"] * count)

    def refuse_recipient(self, address: str, code: int = 550) -> None:
        """Answer RCPT TO for `address` with `code`: a 5xx "user unknown", a 4xx "temporarily unavailable"."""
        with self._handler.lock:
            self._handler.refused[address] = code

    def limit_connections(self, count: int | None) -> None:
        """Greet a connection beyond `count` open at once with 421 "too many connections" and close it, as Postfix's
        smtpd_client_connection_count_limit does (None: no limit)."""
        with self._handler.lock:
            self._handler.max_connections = count

    @property
    def max_served(self) -> int:
        """The most connections served at once (those turned away with 421 not counted)."""
        with self._handler.lock:
            return self._handler.max_served

    @property
    def turned_away(self) -> int:
        """Connections greeted with 421 "too many connections" so far."""
        with self._handler.lock:
            return self._handler.refused_greetings

    def limit_rate(self, count: int, seconds: float) -> None:
        """Answer MAIL with 450 4.7.1 "too much mail" once `count` messages were accepted in the last `seconds`, as
        Postfix's smtpd_client_message_rate_limit does."""
        with self._handler.lock:
            self._handler.rate = (count, seconds)

    @property
    def rate_refusals(self) -> int:
        with self._handler.lock:
            return self._handler.rate_refusals

    def accept_recipient(self, address: str) -> None:
        """Undo refuse_recipient: the mailbox exists again."""
        with self._handler.lock:
            self._handler.refused.pop(address, None)

    def delay_replies(self, seconds: float, stage: Stage = "data") -> None:
        """Wait `seconds` before answering each command of `stage`; at the end of DATA, after keeping the message."""
        with self._handler.lock:
            self._handler.delays[stage] = seconds

    def drop_next(self, count: int = 1) -> None:
        """Close the next `count` connections after the message data arrives, before answering it."""
        with self._handler.lock:
            self._handler.drops += count
