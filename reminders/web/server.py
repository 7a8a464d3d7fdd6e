"""How `reminders serve` runs the app under uvicorn so that slow, idle or flooding clients cannot take it down.

uvicorn's h11 protocol has no timeout for a request's headers or body: a connection that never finishes them stays
open for ever, and about a thousand of them exhaust the open-file limit. Here:

- `GuardedH11Protocol`: the headers must arrive within `header_timeout` seconds of the connection (or of the end of
  the previous response), the body within `body_timeout`; beyond `max_connections` open connections the oldest one
  still waiting for its headers is closed, so file descriptors stay free for real requests (and `/healthz`);
  uvicorn's own 400 (a request it cannot parse) carries the security headers.
- `Guard` (ASGI, outermost): only the host of `[web] base_url` is served (and 127.0.0.1/localhost for `/healthz`);
  a body announced larger than the limit is refused before it is read; beyond `max_active` requests in progress
  the answer is 503; every one of these answers carries the security headers.
- `RateLimitFilter`: at most `per_minute` identical log records a minute, then one line saying how many were left
  out, so a flood of failed accepts cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import html
import logging
import resource
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import h11
import uvicorn
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from reminders.config import Config
from reminders.web.app import ERRORS, MAX_BODY
from reminders.web.security import HEADERS, SecurityHeaders

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0  # seconds for a request line and headers (a phone sends them in one packet)
BODY_TIMEOUT = 60.0  # seconds for the whole body of a form (at most MAX_BODY bytes)
KEEP_ALIVE = 5  # seconds an idle kept-alive connection stays open
MAX_ACTIVE = 64  # requests in progress at once; more are answered 503 at once
BACKLOG = 128  # connections the kernel queues before accept
RESERVED_FILES = 96  # descriptors kept for the database, logs and the accept burst beyond the backlog
MAX_HEADER_BYTES = 16 * 1024  # request line and headers; larger is a 400
LOG_PER_MINUTE = 10
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def page(headline: str, explanation: str,
         extra: Iterable[tuple[str, str]] = ()) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A small static page with the security headers: for answers given before the app (or instead of it)."""
    body = ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(headline)}</title></head><body><h1>{html.escape(headline)}</h1>"
            f"<p>{html.escape(explanation)}</p></body></html>").encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(name.encode(), value.encode()) for name, value in HEADERS.items()]
    headers += [(name.encode(), value.encode()) for name, value in extra]
    return headers, body


async def answer(send: Send, status: int, headline: str, explanation: str,
                 extra: Iterable[tuple[str, str]] = ()) -> None:
    headers, body = page(headline, explanation, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def host_of(value: str) -> str:
    """The host name in a Host header, without the port ("[::1]:8025" → "::1")."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """The outermost ASGI layer: trusted host, announced body size, requests in progress; all with the headers."""

    def __init__(self, app: ASGIApp, config: Config, max_active: int = MAX_ACTIVE) -> None:
        self.app = SecurityHeaders(app)
        self.host = (urlsplit(config.web.base_url).hostname or "").lower()
        self.max_active = max_active
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = host_of(headers.get("host", ""))
        if host != self.host and not (host in LOCAL_HOSTS and scope["path"] == "/healthz"):
            await answer(send, 400, "请求无效", "请使用督查室提供的网址访问。(unknown host)")
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            headline, explanation = ERRORS[413]
            await answer(send, 413, headline, explanation, [("connection", "close")])
            return
        if self.active >= self.max_active:
            await answer(send, 503, "服务繁忙", "请稍后再试。(server busy)", [("retry-after", "5")])
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with timeouts for headers and body and a cap on open connections."""

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT
    max_connections = 1024 - BACKLOG - RESERVED_FILES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = 0.0
        self.waiting_for: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.opened = time.monotonic()
        self.watch()
        if len(self.connections) > self.max_connections:
            self.evict()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.watch()

    def idle(self) -> bool:
        """Waiting for a request's headers (a new connection, or a kept-alive one between requests)."""
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def watch(self) -> None:
        """Arm the timer for what the client owes now: headers, a body, or nothing (the app is answering)."""
        state = self.conn.their_state
        owed = state if state in (h11.IDLE, h11.SEND_BODY) else None
        if owed is self.waiting_for:
            return
        self.stop_timer()
        self.waiting_for = owed
        if owed is not None and not self.transport.is_closing():
            delay = self.header_timeout if owed is h11.IDLE else self.body_timeout
            self.timer = self.loop.call_later(delay, self.timed_out)

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def timed_out(self) -> None:
        self.timer = None
        self.waiting_for = None
        if not self.transport.is_closing():
            # No answer: the client has not sent a request to answer (or is sending its body too slowly).
            self.transport.close()

    def evict(self) -> None:
        """Close the connection that has waited longest for its headers, to keep descriptors for new ones."""
        waiting = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c is not self and c.idle()
                   and not c.transport.is_closing()]
        if waiting:
            oldest = min(waiting, key=lambda c: c.opened)
            oldest.stop_timer()
            oldest.transport.close()

    def send_400_response(self, msg: str) -> None:
        """A request uvicorn cannot parse: the same 400 as uvicorn's, with the security headers and in Chinese."""
        headers, body = page("请求无效", "请返回上一页重试。(invalid HTTP request)", [("connection", "close")])
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            try:
                self.transport.write(self.conn.send(event) or b"")
            except h11.LocalProtocolError:
                break
        self.transport.close()


class RateLimitFilter(logging.Filter):
    """At most `per_minute` identical records (same logger, level, message and place) a minute; the first one let
    through after a drop says how many were left out."""

    def __init__(self, per_minute: int = LOG_PER_MINUTE) -> None:
        super().__init__()
        self.per_minute = per_minute
        self.seen: dict[tuple[object, ...], list[float]] = {}  # key → [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, "_rate_limited", None)
        if decided is not None:  # the same record at a second handler
            return not decided
        key = (record.name, record.levelno, str(record.msg), record.pathname, record.lineno)
        now = time.monotonic()
        if len(self.seen) > 10_000:
            self.seen.clear()
        state = self.seen.setdefault(key, [now, 0, 0])
        if now - state[0] >= 60:
            state[0], state[1] = now, 0
        state[1] += 1
        dropped = state[1] > self.per_minute
        record._rate_limited = dropped
        if dropped:
            state[2] += 1
        elif state[2]:
            count = int(state[2])
            record.msg = f"{record.msg} [此前略去 {count} 条相同日志 ({count} identical records dropped)]"
            state[2] = 0
        return not dropped


def install_log_limit(per_minute: int = LOG_PER_MINUTE) -> RateLimitFilter:
    """Rate-limit every record that reaches the root logger's handlers (uvicorn's and asyncio's propagate there)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    limit = RateLimitFilter(per_minute)
    for handler in root.handlers:
        handler.addFilter(limit)
    for name in ("uvicorn", "uvicorn.error", "asyncio"):
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    return limit


def connection_cap(backlog: int = BACKLOG) -> int:
    """Open connections allowed: the open-file limit less the backlog and a reserve (never below 16)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, soft - backlog - RESERVED_FILES)


def server_config(app: ASGIApp, config: Config, *, header_timeout: float = HEADER_TIMEOUT,
                  body_timeout: float = BODY_TIMEOUT, keep_alive: int = KEEP_ALIVE, max_active: int = MAX_ACTIVE,
                  backlog: int = BACKLOG) -> uvicorn.Config:
    """uvicorn's settings for `app` at `[web] bind`:`port`, with the guards above."""
    protocol = type("ServeProtocol", (GuardedH11Protocol,), {
        "header_timeout": header_timeout, "body_timeout": body_timeout, "max_connections": connection_cap(backlog)})
    return uvicorn.Config(
        Guard(app, config, max_active), host=config.web.bind, port=config.web.port, http=protocol,
        # No access log: the report links carry their token in the path, and a token is a credential.
        access_log=False, log_config=None, server_header=False, proxy_headers=True, backlog=backlog,
        timeout_keep_alive=keep_alive, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_graceful_shutdown=10)


def run(app: ASGIApp, config: Config, *, header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
        keep_alive: int = KEEP_ALIVE, max_active: int = MAX_ACTIVE, backlog: int = BACKLOG,
        log_per_minute: int = LOG_PER_MINUTE) -> None:
    """Serve `app` at `[web] bind`:`port` until SIGTERM/SIGINT, with the guards above and the log rate-limited."""
    install_log_limit(log_per_minute)
    uvicorn.Server(server_config(app, config, header_timeout=header_timeout, body_timeout=body_timeout,
                                 keep_alive=keep_alive, max_active=max_active, backlog=backlog)).run()
