"""The dashboard's session cookie (signed with HMAC, not encrypted), its CSRF token, and the security headers.

The session holds only the username, a CSRF token and when it was issued; it is signed with a key derived from the
web secret, so it cannot be altered, and it is scoped to /admin so a unit's link never sees it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class Signer:
    def __init__(self, secret: bytes) -> None:
        # A key of its own, so a session cookie can never pass for a unit's link or the reverse.
        self._key = hmac.new(secret, b"reminders web session", hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def dumps(self, session: WebSession) -> str:
        payload = json.dumps({"u": session.user, "c": session.csrf, "t": session.issued.isoformat()},
                             separators=(",", ":")).encode("utf-8")
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
            user = data["u"]
            if user is not None and not isinstance(user, str):
                return None
            session = WebSession(user, str(data["c"]), datetime.fromisoformat(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if not session.issued <= now < session.issued + LIFETIME:
            return None
        return session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_session(user: str | None, now: datetime) -> WebSession:
    return WebSession(user, secrets.token_urlsafe(32), now)


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


class SecurityHeaders:
    """Adds HEADERS to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
