"""Office accounts for the dashboard: scrypt password hashes, and a lock-out after repeated failed logins."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.errors import ReminderError
from reminders.store.models import User

MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
_N, _R, _P = 2**14, 8, 1
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


class AccountError(ReminderError):
    pass


class LockedOut(ReminderError):
    def __init__(self, until: datetime) -> None:
        self.until = until
        super().__init__(f"登录失败次数过多，账号锁定至 {until.isoformat(timespec='minutes')} (locked out)")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """"scrypt$n$r$p$salt$hash" with a random 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def add_user(session: Session, username: str, password: str) -> User:
    username = username.strip()
    if not username or len(username) > 100 or any(ch.isspace() or ord(ch) < 32 for ch in username):
        raise AccountError(f"用户名无效 “{username}” (invalid username)")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符 (at least {MIN_PASSWORD} characters)")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"用户 “{username}” 已存在 (user exists)")
    user = User(username=username, password_hash=hash_password(password), failed_logins=0,
                created_at=datetime.now(UTC))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str, now: datetime) -> bool:
    """True for the right password; MAX_FAILURES failures in a row lock the account for LOCK_FOR, during which
    every login (the right password too) raises LockedOut. The caller commits the session either way."""
    user = session.scalars(select(User).where(User.username == username).with_for_update()).first()
    if user is None:
        verify_password(password, _DUMMY)  # as slow as a real check, so timing does not tell who exists
        return False
    locked = user.locked_until
    if locked is not None and locked.tzinfo is None:
        locked = locked.replace(tzinfo=UTC)  # SQLite returns naive datetimes
    if locked is not None and now < locked:
        raise LockedOut(locked)
    if verify_password(password, user.password_hash):
        user.failed_logins, user.locked_until = 0, None
        return True
    user.failed_logins = (0 if locked is not None else user.failed_logins) + 1
    user.locked_until = None
    if user.failed_logins >= MAX_FAILURES:
        user.locked_until = now + LOCK_FOR
    session.flush()
    return False
