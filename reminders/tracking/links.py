"""A unit's personal report link: unit, cycle and expiry, signed with HMAC-SHA256 so it cannot be forged or altered.

A token is `base64url("unit.cycle.expiry") + "." + base64url(hmac)`, URL-safe and without padding. The secret comes
from the environment variable named by `[web] secret_env`; without it no link is made. Links are signed with a key of
their own derived from it (`derive_key(secret, "reminders link v1")`), the dashboard's sessions with another, so a
session can never pass for a link or the reverse. `serve` and `check-config` refuse a secret under MIN_SECRET bytes.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import re
from datetime import date, timedelta
from typing import Literal

from reminders.errors import ReminderError

Reason = Literal["malformed", "forged", "expired"]
_PAYLOAD = re.compile(r"([1-9][0-9]{0,9})\.([0-9]{4}-[0-9]{2})\.([0-9]{4}-[0-9]{2}-[0-9]{2})")
_MESSAGES: dict[str, str] = {
    "malformed": "链接无效 (malformed link)",
    "forged": "链接签名不符 (the link's signature does not match)",
    "expired": "链接已过期 (the link has expired)",
}


class LinkError(ReminderError):
    def __init__(self, reason: Reason) -> None:
        self.reason: Reason = reason
        super().__init__(_MESSAGES[reason])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise LinkError("malformed")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LinkError("malformed") from None


MIN_SECRET = 32
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def secret_problem(secret: bytes) -> str | None:
    """Why the web secret will not do (every reminder carries an HMAC of a known payload, so a short or guessable
    secret can be found offline), or None."""
    if len(secret) >= MIN_SECRET:
        return None
    return (f"网页密钥太短（{len(secret)} 字节），至少需要 {MIN_SECRET} 字节；可用 {MAKE_SECRET} 生成 "
            f"(the web secret is {len(secret)} bytes, at least {MIN_SECRET} are needed; make one with {MAKE_SECRET})")


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose only ("reminders link v1", "reminders session v1"): HMAC-SHA256(secret, purpose)."""
    return hmac.new(secret, purpose.encode("ascii"), hashlib.sha256).digest()


def link_key(secret: bytes) -> bytes:
    return derive_key(secret, "reminders link v1")


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(link_key(secret), payload, hashlib.sha256).digest()


def make_token(secret: bytes, unit_id: int, cycle: str, expires: date) -> str:
    if not secret:
        raise ValueError("an empty secret signs nothing")
    payload = f"{unit_id}.{cycle}.{expires.isoformat()}".encode("ascii")
    if not _PAYLOAD.fullmatch(payload.decode("ascii")):
        raise ValueError(f"cannot sign unit {unit_id!r}, cycle {cycle!r}")
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def read_token(secret: bytes, token: str, today: date) -> tuple[int, str]:
    """(unit id, cycle) of a genuine, unexpired token; LinkError("malformed" | "forged" | "expired") otherwise.

    The signature is checked (in constant time) before anything in the payload is believed; a link is valid through
    its expiry day.
    """
    if not isinstance(token, str) or len(token) > 200 or token.count(".") != 1:
        raise LinkError("malformed")
    encoded, signature = token.split(".")
    payload, mac = _unb64(encoded), _unb64(signature)
    if not hmac.compare_digest(mac, _sign(secret, payload)):
        raise LinkError("forged")
    match = _PAYLOAD.fullmatch(payload.decode("ascii", errors="replace"))
    if match is None:
        raise LinkError("malformed")
    try:
        year, month = (int(part) for part in match[2].split("-"))
        date(year, month, 1)
        expires = date.fromisoformat(match[3])
    except ValueError:
        raise LinkError("malformed") from None
    if today > expires:
        raise LinkError("expired")
    return int(match[1]), match[2]


def default_expiry(cycle: str) -> date:
    """The last day of the month after the cycle's: a June link works through July."""
    year, month = (int(part) for part in cycle.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, calendar.monthrange(year, month)[1])


def expiry(cycle: str, link_days: int | None) -> date:
    """`[web] link_days` after the cycle's first day, or the default (the end of the next month)."""
    if link_days is None:
        return default_expiry(cycle)
    year, month = (int(part) for part in cycle.split("-"))
    return date(year, month, 1) + timedelta(days=link_days)


def report_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/r/{token}"
