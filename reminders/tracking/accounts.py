"""Office accounts for the dashboard: scrypt password hashes, a session epoch per account, and the login throttle.

Raising an account's session epoch ends every session of that account (logout, a new password, removal). The
throttle replaces a lock-out: a growing delay per client address and per username, kept in the web process's memory,
so a stranger's failures slow the stranger down but never keep the owner out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.errors import ReminderError
from reminders.store.models import User

MIN_PASSWORD = 10
_N, _R, _P = 2**14, 8, 1
# Checked for a name that has no account, so that an unknown name costs the same scrypt run as a known one.
DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


class AccountError(ReminderError):
    pass


@dataclass(frozen=True)
class Account:
    """What a login needs of an account, read in one query."""

    username: str
    password_hash: str
    epoch: int
    unlocks: int


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


def has_control_characters(text: str) -> bool:
    """NUL and the other control characters (and lone surrogates): no account name holds them, no database takes NUL."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符 (at least {MIN_PASSWORD} characters)")


def add_user(session: Session, username: str, password: str) -> User:
    username = username.strip()
    if not username or len(username) > 100 or any(ch.isspace() for ch in username) \
            or has_control_characters(username):
        raise AccountError(f"用户名无效 “{username}” (invalid username)")
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"用户 “{username}” 已存在 (user exists)")
    user = User(username=username, password_hash=hash_password(password), session_epoch=0, unlocks=0,
                created_at=datetime.now(UTC))
    session.add(user)
    session.flush()
    return user


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username).with_for_update()).first()
    if user is None:
        raise AccountError(f"没有用户 “{username}” (no such user)")
    return user


def set_password(session: Session, username: str, password: str) -> None:
    """A new password; every session of the account ends."""
    _check_password(password)
    user = _user(session, username)
    user.password_hash = hash_password(password)
    user.session_epoch += 1
    session.flush()


def remove_user(session: Session, username: str) -> None:
    """The account is deleted; its sessions end with it (a session of an unknown user is refused)."""
    session.delete(_user(session, username))
    session.flush()


def unlock(session: Session, username: str) -> None:
    """Lift the login delay on the name at once (the web process sees the count change at the next attempt)."""
    _user(session, username).unlocks += 1
    session.flush()


def end_sessions(session: Session, username: str) -> None:
    """Every session of the account ends (logout ends them on every device)."""
    user = session.scalars(select(User).where(User.username == username).with_for_update()).first()
    if user is not None:
        user.session_epoch += 1
        session.flush()


def session_epoch(session: Session, username: str) -> int | None:
    """The account's current epoch; None when there is no such account."""
    return session.scalar(select(User.session_epoch).where(User.username == username))


def find_account(session: Session, username: str) -> Account | None:
    row = session.execute(select(User.username, User.password_hash, User.session_epoch, User.unlocks)
                          .where(User.username == username)).first()
    return Account(row[0], row[1], row[2], row[3]) if row is not None else None


def authenticate(session: Session, username: str, password: str) -> bool:
    """True for the right password (no throttle here: that is the web's `LoginThrottle`)."""
    account = find_account(session, username)
    ok = verify_password(password, account.password_hash if account else DUMMY_HASH)
    return ok and account is not None


def address_key(host: str | None) -> str:
    """Whom a client address throttles: an IPv6 client by its /64 (one subscriber holds a whole /64)."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else address)


@dataclass
class _Record:
    attempts: int  # attempts not (yet) followed by a success; one in progress counts too
    last: datetime
    unlocks: int = 0


class LoginThrottle:
    """A growing delay per client address and per username, never a lock.

    After `free` attempts without a success, the next waits `first`, doubling up to `longest`; a record is forgotten
    `forget` after its last attempt, and a success clears the address's and the name's. The name's delay binds only an
    address that has itself failed lately: a stranger's failures never delay the owner signing in from elsewhere.
    Known and unknown names are treated alike, so the throttle tells nobody which accounts exist.
    """

    def __init__(self, *, free: int = 3, first: timedelta = timedelta(seconds=1),
                 longest: timedelta = timedelta(seconds=60), forget: timedelta = timedelta(minutes=15),
                 capacity: int = 10_000) -> None:
        self.free, self.first, self.longest, self.forget, self.capacity = free, first, longest, forget, capacity
        self._lock = threading.Lock()
        self._addresses: dict[str, _Record] = {}
        self._names: dict[str, _Record] = {}

    def _wait(self, record: _Record | None, now: datetime) -> float:
        if record is None or record.attempts < self.free:
            return 0.0
        delay = min(self.longest, self.first * (1 << min(record.attempts - self.free, 30)))
        return max(0.0, (record.last + delay - now).total_seconds())

    def _get(self, table: dict[str, _Record], key: str, now: datetime) -> _Record | None:
        record = table.get(key)
        if record is not None and now - record.last >= self.forget:
            del table[key]
            return None
        return record

    def _count(self, table: dict[str, _Record], key: str, record: _Record | None, now: datetime,
               unlocks: int) -> None:
        if record is None:
            if len(table) >= self.capacity:
                for stale in [k for k, r in table.items() if now - r.last >= self.forget]:
                    del table[stale]
                while len(table) >= self.capacity:
                    del table[next(iter(table))]  # the oldest
            record = _Record(0, now, unlocks)
        table.pop(key, None)
        record.attempts, record.last = record.attempts + 1, now
        table[key] = record  # kept in order of last use

    def address_wait(self, address: str, now: datetime) -> float:
        """Seconds the address must still wait (0: it may try), before anything is looked up."""
        with self._lock:
            return self._wait(self._get(self._addresses, address, now), now)

    def begin(self, address: str, username: str, unlocks: int, now: datetime) -> float:
        """0 and the attempt counted (as a failure until `succeeded`), or the seconds to wait and nothing counted.
        `unlocks` is the account's count of `reminders admin unlock` (0 for an unknown name): a change clears the
        name's record."""
        with self._lock:
            by_address = self._get(self._addresses, address, now)
            by_name = self._get(self._names, username, now)
            if by_name is not None and by_name.unlocks != unlocks:
                del self._names[username]
                by_name = None
            wait = self._wait(by_address, now)
            if by_address is not None and by_address.attempts > 0:
                wait = max(wait, self._wait(by_name, now))
            if wait > 0:
                return wait
            self._count(self._addresses, address, by_address, now, 0)
            self._count(self._names, username, by_name, now, unlocks)
            return 0.0

    def undo(self, address: str, username: str) -> None:
        """An attempt that was never checked (the password pool was full) does not count."""
        with self._lock:
            for table, key in ((self._addresses, address), (self._names, username)):
                record = table.get(key)
                if record is not None and record.attempts > 0:
                    record.attempts -= 1

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._addresses.pop(address, None)
            self._names.pop(username, None)
