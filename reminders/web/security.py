"""The dashboard's session cookie (signed with HMAC, not encrypted), its CSRF token, the password pool, and the
security headers.

The session holds only the username, the account's session epoch, a CSRF token and when it was issued; it is signed
with a key derived from the web secret (`derive_key(secret, "reminders session v1")`), so it cannot be altered, and it
is scoped to /admin so a unit's link never sees it. Every /admin request checks the epoch against the account (see
`admin.signed_in`): logout, a new password or removing the account ends the session.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reminders.tracking.links import derive_key

COOKIE = "reminders_session"
COOKIE_PATH = "/admin"
LIFETIME = timedelta(hours=8)

HEADERS = {
    # Inline CSS only; no script, no frames, forms post to this site alone.
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # The unit's token is in the URL: never hand it to another site.
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class WebSession:
    user: str | None
    csrf: str
    issued: datetime
    epoch: int = 0


class Signer:
    def __init__(self, secret: bytes) -> None:
        # A key of its own, so a session cookie can never pass for a unit's link or the reverse.
        self._key = derive_key(secret, "reminders session v1")

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def dumps(self, session: WebSession) -> str:
        payload = json.dumps({"u": session.user, "e": session.epoch, "c": session.csrf,
                              "t": session.issued.isoformat()}, separators=(",", ":")).encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def loads(self, value: str | None, now: datetime) -> WebSession | None:
        """The session in a cookie, or None when it is missing, altered, malformed or older than LIFETIME."""
        if not value or value.count(".") != 1 or len(value) > 2000:
            return None
        encoded, mac = value.split(".")
        try:
            payload, signature = _unb64(encoded), _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(signature, self._mac(payload)):
            return None
        try:
            data = json.loads(payload)
            user, epoch = data["u"], data["e"]
            if (user is not None and not isinstance(user, str)) or type(epoch) is not int:
                return None
            session = WebSession(user, str(data["c"]), datetime.fromisoformat(data["t"]), epoch)
        except (ValueError, KeyError, TypeError):
            return None
        if not session.issued <= now < session.issued + LIFETIME:
            return None
        return session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_session(user: str | None, now: datetime, epoch: int = 0) -> WebSession:
    return WebSession(user, secrets.token_urlsafe(32), now, epoch)


def current_session(request: Request, signer: Signer, now: datetime) -> WebSession | None:
    return signer.loads(request.cookies.get(COOKIE), now)


def set_session(response: Response, signer: Signer, session: WebSession) -> None:
    response.set_cookie(COOKIE, signer.dumps(session), max_age=int(LIFETIME.total_seconds()), path=COOKIE_PATH,
                        secure=True, httponly=True, samesite="strict")


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")


def csrf_ok(session: WebSession | None, submitted: object) -> bool:
    """The form's token matches the session's (session-bound, compared in constant time)."""
    if session is None or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode("utf-8"), submitted.encode("utf-8"))


class PoolBusy(Exception):
    """Every thread of the password pool is busy and its queue is full."""


class PasswordPool:
    """Password checks (scrypt: ~50 ms and 16 MB each) on a few threads of their own with a bounded queue, so logins
    never take the threads every other route needs; beyond the queue a check is refused at once (PoolBusy)."""

    def __init__(self, workers: int = 2, queue: int = 8) -> None:
        self.limit = workers + queue
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._taken = 0

    def _release(self, _done: Future[bool]) -> None:
        with self._lock:
            self._taken -= 1

    async def check(self, work: Callable[[], bool]) -> bool:
        with self._lock:
            if self._taken >= self.limit:
                raise PoolBusy
            self._taken += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="password")
            try:
                future = self._executor.submit(work)
            except RuntimeError:  # shutting down
                self._taken -= 1
                raise PoolBusy from None
        future.add_done_callback(self._release)  # when the thread is done, even if the client went away
        return await asyncio.wrap_future(future)


class SecurityHeaders:
    """Adds HEADERS to every response that does not set them itself, and answers an error that reached it (a bug)
    with a plain 500 page carrying them, logging the traceback once; a client that went away is not an error."""

    log = logging.getLogger(__name__)
    ERROR_PAGE = ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>服务器出错</title></head>"
                  "<body><h1>服务器出错</h1><p>请稍后重试；如仍有问题，请联系督查室。(internal server error)</p>"
                  "</body></html>").encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def loggable(scope: Scope) -> str:
        """The path as it may be logged: a unit's link carries its token, a credential."""
        path = str(scope.get("path", ""))
        return "/r/…" if path.startswith("/r/") else path[:200]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            self.log.debug("client went away during %s %s", scope.get("method"), self.loggable(scope))
        except Exception:
            if started:  # the answer is on its way: only the server can end it (and logs the error)
                raise
            self.log.exception("unhandled error in %s %s", scope.get("method"), self.loggable(scope))
            await send_with_headers({"type": "http.response.start", "status": 500,
                                     "headers": [(b"content-type", b"text/html; charset=utf-8")]})
            await send({"type": "http.response.body", "body": self.ERROR_PAGE})

