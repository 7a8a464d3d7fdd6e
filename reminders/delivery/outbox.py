"""The outbox: every message is recorded before it is sent, claimed by one sender at a time, then settled.

A row is claimed with a conditional UPDATE (and `FOR UPDATE SKIP LOCKED` on PostgreSQL) in a short transaction of
its own, so no transaction is ever held open across an SMTP call and two senders never take the same row. Each claim
names its process; a row left 'sending' by a process of this host that is gone is put back at the start of the next
run, and one held by a process elsewhere is taken again once its lease has run out.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import islice
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Engine, Select, and_, case, delete, func, or_, select, union_all, update
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.orm import Session

from reminders.delivery import addressed
from reminders.delivery.smtp import Envelope, Outcome
from reminders.errors import ReminderError
from reminders.mail.message import OutgoingMessage
from reminders.store.bulk import dialect_insert
from reminders.store.models import OutboxBody, OutboxMessage
from reminders.tracking.steps import record_carried
from reminders.vocabulary import Kind

LEASE = timedelta(minutes=15)
# A message put off (a 4xx, the relay away) waits this long before the daemon tries it again, doubling each time.
FIRST_WAIT, LONGEST_WAIT = timedelta(minutes=1), timedelta(hours=1)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Unbuilt:
    """A message that could not be built: recorded as failed with its reason and no bytes. Requeued
    (`outbox retry`), it is built again by the next send of its cycle; a row without bytes is never claimed."""

    kind: Kind
    cycle: str
    recipient_key: str
    recipient_name: str
    addresses: tuple[str, ...]
    message_id: str
    error: str


def batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for the old one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


@cache
def owner() -> str:
    """This process, as written into the claims it makes."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _alive(token: str) -> bool:
    host, _, rest = token.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's process: only its lease can tell
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return _start_time(pid) == started


def recover(engine: Engine) -> int:
    """Put back the claims of this host's processes that are gone (killed mid-run); returns how many."""
    with Session(engine) as session, session.begin():
        owners = set(session.scalars(
            select(OutboxMessage.claimed_by).where(OutboxMessage.state == "sending").distinct()))
        dead = [token for token in owners if token and not _alive(token)]
        if not dead:
            return 0
        result = session.execute(
            update(OutboxMessage).where(OutboxMessage.state == "sending", OutboxMessage.claimed_by.in_(dead))
            .values(state="pending", claimed_at=None, claimed_by=None)
        )
        return cast("CursorResult[Any]", result).rowcount


def existing_keys(session: Session, cycle: str, kinds: Sequence[str]) -> set[tuple[str, str]]:
    rows = session.execute(
        select(OutboxMessage.kind, OutboxMessage.recipient_key)
        .where(OutboxMessage.cycle == cycle, OutboxMessage.kind.in_(kinds))
    )
    return {(kind, key) for kind, key in rows}


def forget_unbuilt(session: Session, cycle: str, kinds: Sequence[str]) -> int:
    """Delete the cycle's requeued messages that were never built, so that they are built again; returns how many."""
    result = session.execute(
        delete(OutboxMessage).where(OutboxMessage.cycle == cycle, OutboxMessage.kind.in_(kinds),
                                    OutboxMessage.state == "pending", OutboxMessage.size == 0))
    return cast("CursorResult[Any]", result).rowcount


def record(session: Session, messages: Iterable[OutgoingMessage | Unbuilt], chunk: int = 200, *,
           due_after: timedelta | None = None) -> int:
    """Insert messages not recorded yet (a concurrent sender may have recorded some); returns how many were new.

    Messages are written `chunk` at a time, so a large cycle holds only one chunk of rendered mail in memory; each
    message's bytes go into outbox_bodies beside its row (models.OutboxBody). `due_after`: the messages wait that
    long before a sender that keeps to due times (the retry job) sends them.
    """
    statement = dialect_insert(session, OutboxMessage).on_conflict_do_nothing().returning(
        OutboxMessage.id, OutboxMessage.message_id)
    now = datetime.now(UTC)
    added = 0
    for batch in batched(messages, chunk):
        rows = [{
            "kind": m.kind, "cycle": m.cycle, "recipient_key": m.recipient_key, "recipient_name": m.recipient_name,
            "addresses": ";".join(m.addresses), "message_id": m.message_id, "attempts": 0, "created_at": now,
            "next_attempt_at": now + due_after if due_after else None,
            **({"subject": m.subject, "size": len(m.data), "state": "pending", "last_error": None}
               if isinstance(m, OutgoingMessage) else {"subject": "", "size": 0, "state": "failed",
                                                        "last_error": m.error}),
        } for m in batch]
        new = {message_id: key for key, message_id in session.execute(statement, rows)}
        added += len(new)
        put_bodies(session, [(new[m.message_id], m.data) for m in batch
                             if isinstance(m, OutgoingMessage) and m.message_id in new])
        # The ladder steps the messages take: recorded in the same transaction as the messages.
        record_carried(session, ((step, m.message_id) for m in batch if isinstance(m, OutgoingMessage)
                                 for step in m.steps))
    return added


def put_bodies(session: Session, bodies: Sequence[tuple[int, bytes]]) -> None:
    """Each (outbox id, bytes) into outbox_bodies, in place of any body the id has: a rebuilt receipt's, or one left by
    rows deleted with SQLite's foreign keys off (a plain `sqlite3` shell), since SQLite gives a deleted row's id to
    the next one."""
    if not bodies:
        return
    statement = dialect_insert(session, OutboxBody)
    statement = statement.on_conflict_do_update(index_elements=[OutboxBody.outbox_id],
                                                set_={"data": statement.excluded.data})
    session.execute(statement, [{"outbox_id": key, "data": data} for key, data in bodies])


def _ways_claimable(cycle: str | None, kinds: Sequence[str] | None, now: datetime, due: bool = False
                    ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The two ways a message can be claimed: pending, or claimed by another host's process longer than the lease
    ago. A claim of this host is never taken here: a live sender keeps it however long its relay takes, and a dead
    one's is put back by `recover`. `cycle` or `kinds` None: any; `due`: only messages whose next attempt has come
    (the daemon's retries)."""
    elsewhere = or_(OutboxMessage.claimed_by.is_(None),
                    ~OutboxMessage.claimed_by.startswith(f"{socket.gethostname()}:", autoescape=True))
    stale = and_(OutboxMessage.state == "sending", OutboxMessage.claimed_at < now - LEASE, elsewhere)
    conditions = [OutboxMessage.size > 0]
    if cycle is not None:
        conditions.append(OutboxMessage.cycle == cycle)
    if kinds is not None:
        conditions.append(OutboxMessage.kind.in_(kinds))
    if due:
        conditions.append(or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now))
    return and_(OutboxMessage.state == "pending", *conditions), and_(stale, *conditions)


@dataclass(frozen=True)
class Claimed:
    envelope: Envelope  # its recipients: the message's addresses not yet accepted or refused for good
    kind: str
    cycle: str
    recipient_name: str
    attempts: int = 1  # this claim included
    deliveries: addressed.Deliveries | None = None  # per-address outcomes so far
    first_failed_at: datetime | None = None


def claim(engine: Engine, cycle: str | None, kinds: Sequence[str] | None, sender: str, tried: Collection[int] = (),
          limit: int = 1, *, now: datetime | None = None, due: bool = False,
          lost: list[Claimed] | None = None) -> list[Claimed]:
    """Take up to `limit` messages for this process in one statement, committed before anything is sent.

    `tried` holds the messages that already failed in this run: they wait for the next run instead of looping.
    A claimed message whose bytes are gone is failed with LOST_BODY instead (`_fail_lost_bodies`) and put in `lost`,
    without its bytes, for the run to report.
    `now` (default: the current time) is when the claim is made, against which leases run out; stored in UTC, as
    SQLite keeps no offset. `due`: only messages whose next attempt has come (see `_ways_claimable`).
    """
    now = now.astimezone(UTC) if now else datetime.now(UTC)

    def first(claimable: ColumnElement[bool], count: int) -> Select[int]:
        """Each way is its own query, which an index on (cycle, state) answers in id order: with the two in one
        OR, SQLite walked the whole cycle, sent messages included, reading each row's state past its body."""
        chosen = select(OutboxMessage.id).where(claimable).order_by(OutboxMessage.id).limit(count)
        return chosen.where(OutboxMessage.id.not_in(list(tried))) if tried else chosen

    pending, stale = _ways_claimable(cycle, kinds, now, due)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Lock the rows first: PostgreSQL may run a LIMIT subquery inside UPDATE … IN (…) more than once. The
            # condition is checked again on the row itself: a row another sender took meanwhile is left alone.
            picked: Any = sorted(key for way in (pending, stale)
                                 for key in connection.scalars(first(way, limit).with_for_update(skip_locked=True))
                                 )[:limit]
            chosen = and_(OutboxMessage.id.in_(picked), or_(pending, stale))
        else:
            # One statement, so SQLite takes the write lock before reading (no stale-snapshot upgrade in WAL mode)
            # and no other sender can take a row between the choice and the update: the choice is not checked
            # again, which would make SQLite look through every pending row of the cycle instead of the ids chosen.
            either = union_all(select(first(pending, limit).subquery()),
                               select(first(stale, limit).subquery())).subquery()
            chosen = OutboxMessage.id.in_(select(either.c.id).order_by(either.c.id).limit(limit).scalar_subquery())
        rows = connection.execute(
            update(OutboxMessage)
            .where(chosen)
            .values(state="sending", claimed_at=now, claimed_by=owner(), attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.cycle, OutboxMessage.recipient_name,
                       OutboxMessage.addresses, OutboxMessage.message_id, OutboxMessage.attempts,
                       OutboxMessage.deliveries, OutboxMessage.first_failed_at)
        ).all()
        bodies: dict[int, bytes] = {}
        if rows:
            bodies = {key: data for key, data in connection.execute(
                select(OutboxBody.outbox_id, OutboxBody.data).where(OutboxBody.outbox_id.in_([r[0] for r in rows])))}
            missing = [row[0] for row in rows if row[0] not in bodies]
            if missing:
                _fail_lost_bodies(connection, missing)
    claimed = []
    for key, kind, row_cycle, name, addresses, message_id, attempts, deliveries, first_failed_at in rows:
        fates = addressed.parse(deliveries)
        recipients = addressed.remaining([a for a in addresses.split(";") if a], fates)
        item = Claimed(Envelope(key, sender, recipients, bodies.get(key, b""), message_id), kind, row_cycle, name,
                       attempts, fates, _utc(first_failed_at))
        if key in bodies:
            claimed.append(item)
        elif lost is not None:
            lost.append(item)
    return sorted(claimed, key=lambda c: c.envelope.key)


LOST_BODY = ("发件箱中缺少此邮件的内容（outbox_bodies 无对应行），未发送；outbox retry 后由下次 send 重新生成 "
             "(the message's bytes are missing from outbox_bodies; not sent; requeued, the next send builds it again)")


def _fail_lost_bodies(connection: Connection, lost: list[int]) -> None:
    """Claimed messages whose bytes are gone (their outbox_bodies rows deleted by hand) fail with LOST_BODY, as a
    message that could not be built (`Unbuilt`): requeued, the next send of its cycle builds it again, unless some
    of its recipients already have it, whom a rebuilt copy would reach twice."""
    connection.execute(
        update(OutboxMessage).where(OutboxMessage.id.in_(lost))
        .values(state="failed", last_error=LOST_BODY, claimed_at=None, claimed_by=None,
                size=case((OutboxMessage.sent_at.is_(None), 0), else_=OutboxMessage.size)))


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back the UTC it was given without its offset."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def claim_next(engine: Engine, cycle: str, kinds: Sequence[str], sender: str,
               tried: Collection[int] = (), *, now: datetime | None = None) -> Envelope | None:
    claimed = claim(engine, cycle, kinds, sender, tried, now=now)
    return claimed[0].envelope if claimed else None


def settle(engine: Engine, outcome: Outcome, claimed: Claimed | None = None,
           give_up_after: timedelta = timedelta(days=3), *, now: datetime | None = None) -> Settled:
    """Record how a claimed message fared; returns its new state, and when it is tried next if pending.

    A message put off (pending) waits for its next attempt (one minute, doubling, at most an hour); once it has been
    failing for `give_up_after`, it fails with the last answer. Without `claimed` (a caller that kept nothing of
    the claim), the message is taken as tried at all its addresses, first try."""
    [settled] = settle_many(engine, [(outcome, claimed)], give_up_after, now=now)
    return settled


def settle_many(engine: Engine, outcomes: Sequence[tuple[Outcome, Claimed | None]],
                give_up_after: timedelta = timedelta(days=3), *, now: datetime | None = None) -> list[Settled]:
    """`settle` for several messages in one transaction: one commit (one disk flush) for all of them, which is
    what lets the senders' settles be committed together (delivery.writer)."""
    now = now.astimezone(UTC) if now else datetime.now(UTC)
    settled, updates, plainly_sent = [], [], []
    sent_values: dict[str, Any] = {}  # what every message that went out whole gets (the same for all of them)
    for outcome, claimed in outcomes:
        values, state = _settled_values(outcome, claimed, give_up_after, now)
        settled.append(state)
        plain = state.state == "sent" and state.error is None and "sent_at" in values and "deliveries" not in values
        if plain:  # the common case, one statement for all of them
            plainly_sent.append(outcome.key)
            sent_values = values
            continue
        updates.append(update(OutboxMessage)
                       .where(OutboxMessage.id == outcome.key, OutboxMessage.state == "sending",
                              OutboxMessage.claimed_by == owner())
                       .values(state=state.state, last_error=state.error, **values))
    if plainly_sent:
        updates.append(update(OutboxMessage)
                       .where(OutboxMessage.id.in_(plainly_sent), OutboxMessage.state == "sending",
                              OutboxMessage.claimed_by == owner())
                       .values(state="sent", last_error=None, **sent_values))
    with engine.begin() as connection:
        for statement in updates:
            connection.execute(statement)
    return settled


def _settled_values(outcome: Outcome, claimed: Claimed | None, give_up_after: timedelta, now: datetime
                    ) -> tuple[dict[str, Any], Settled]:
    tried = claimed.envelope.recipients if claimed else ()
    values: dict[str, Any] = {"claimed_at": None, "claimed_by": None, "next_attempt_at": None}
    merged: addressed.Deliveries = {}
    if claimed is not None and (claimed.deliveries or outcome.refused or outcome.deferred):
        merged = addressed.merge(claimed.deliveries or {}, tried, outcome)
        values["deliveries"] = addressed.dump(merged)
    state, error = addressed.state_after(outcome, merged), outcome.error
    if state == "failed" and outcome.sent and not outcome.refused:
        error = addressed.refusals(merged)  # the rest took it now: an address refused earlier still stands
    if outcome.sent and (addressed.reached(outcome, tried) or claimed is None):
        values["sent_at"] = func.coalesce(OutboxMessage.sent_at, now)
    if state == "pending":
        first = (claimed.first_failed_at if claimed else None) or now
        attempts = claimed.attempts if claimed else 1
        if now - first >= give_up_after:
            state = "failed"
            error = (f"{error}；自 {first:%Y-%m-%d %H:%M} UTC 起未能送达，已放弃 "
                     f"(not delivered since {first:%Y-%m-%d %H:%M} UTC: given up)")
        else:
            values["next_attempt_at"] = now + min(FIRST_WAIT * 2 ** min(attempts - 1, 12), LONGEST_WAIT)
            values["first_failed_at"] = func.coalesce(OutboxMessage.first_failed_at, now)
    return values, Settled(state, error, values["next_attempt_at"])


@dataclass(frozen=True)
class Settled:
    state: str
    error: str | None
    next_attempt_at: datetime | None


def pending_left(session: Session, cycle: str | None, kinds: Sequence[str] | None) -> tuple[int, datetime | None]:
    """How many messages are pending (of a cycle and kinds; None: any), and the earliest time one is due again
    (None: one is due now)."""
    query = select(func.count(), func.min(OutboxMessage.next_attempt_at),
                   func.count(OutboxMessage.next_attempt_at)).where(OutboxMessage.state == "pending")
    if cycle is not None:
        query = query.where(OutboxMessage.cycle == cycle)
    if kinds is not None:
        query = query.where(OutboxMessage.kind.in_(kinds))
    number, earliest, waiting = session.execute(query).one()
    return number, (_utc(earliest) if waiting == number else None)


def release(engine: Engine, keys: Iterable[int]) -> int:
    """Put claimed rows back, untouched, when a run stops before it could send them; returns how many."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(list(keys)), OutboxMessage.state == "sending",
                                        OutboxMessage.claimed_by == owner())
            .values(state="pending", claimed_at=None, claimed_by=None, attempts=OutboxMessage.attempts - 1)
        )
        return cast("CursorResult[Any]", result).rowcount


def counts(session: Session, cycle: str, kinds: Sequence[str]) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.state, func.count()).where(OutboxMessage.cycle == cycle, OutboxMessage.kind.in_(kinds))
        .group_by(OutboxMessage.state)
    )
    return {state: number for state, number in rows}


class OutboxError(ReminderError):
    pass


def list_messages(session: Session, cycle: str | None = None, state: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if cycle:
        query = query.where(OutboxMessage.cycle == cycle)
    if state:
        query = query.where(OutboxMessage.state == state)
    return list(session.scalars(query))


def requeue(session: Session, ids: Sequence[int] | None) -> list[int]:
    """Put failed messages back to pending for the next send (`ids` None: every failed one); a sent one is refused.

    A requeued message is due at once, its give-up clock starts again, and the addresses a relay refused are tried
    again (never those that have it)."""
    if ids is None:
        rows = [row for row in session.scalars(select(OutboxMessage).where(OutboxMessage.state == "failed"))
                if not _unbuilt_receipt(row)]
    else:
        rows = []
        for key in ids:
            row = session.get(OutboxMessage, key)
            if row is None:
                raise OutboxError(f"发件箱中没有 {key} 号邮件 (no outbox message {key})")
            if row.state == "sent":
                raise OutboxError(f"{key} 号邮件已于 {row.sent_at:%Y-%m-%d %H:%M} 发送，不再重发 (already sent)")
            if _unbuilt_receipt(row):
                raise OutboxError(f"{key} 号回执未能生成，无法重发；请单位重新报送 (receipt {key} was never built "
                                  f"and cannot be rebuilt: {row.last_error})")
            rows.append(row)
    for row in rows:
        if row.state in ("failed", "pending"):
            row.state = "pending"
            row.next_attempt_at = row.first_failed_at = None
            row.deliveries = addressed.dump({address: entry for address, entry in addressed.parse(row.deliveries)
                                             .items() if entry[0] == "sent"})
    session.flush()
    return [row.id for row in rows]


def _unbuilt_receipt(row: OutboxMessage) -> bool:
    """A receipt is built when a unit submits, never by a cycle's send: one that failed to build cannot be rebuilt."""
    return row.kind == "receipt" and not row.size


def as_json(row: OutboxMessage) -> dict[str, object]:
    addresses = row.addresses.split(";")
    return {
        "id": row.id, "kind": row.kind, "cycle": row.cycle, "recipient": row.recipient_name,
        "addresses": addresses, "subject": row.subject, "message_id": row.message_id,
        "state": row.state, "attempts": row.attempts, "last_error": row.last_error,
        "created_at": row.created_at.isoformat(), "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "deliveries": [{"address": address, "state": state, "answer": answer or None} for address, state, answer
                       in addressed.each(addresses, addressed.parse(row.deliveries), row.state, row.last_error)],
    }
