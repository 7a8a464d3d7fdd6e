"""A cycle's run: build its messages, record them in the outbox, deliver what is pending; and the two messages
recorded outside a cycle's run, the receipt of a submission and a chase the office sends now."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from reminders.config import Config, Smtp
from reminders.delivery import addressed, outbox
from reminders.delivery.building import Interrupted, build_each, check_templates
from reminders.delivery.maildir import deliver_maildir
from reminders.delivery.smtp import (
    DeliveryError,
    Envelope,
    Outcome,
    RelayUnreachable,
    deliver_smtp,
)
from reminders.delivery.writer import GroupWriter
from reminders.mail.compose import BUILT, build_drafts, iter_drafts
from reminders.mail.message import OutgoingMessage, renderer_for
from reminders.mail.receipts import first_report, receipt_draft, receipt_prefix, window_reports
from reminders.store.db import masked, session_scope, wait_for_writers
from reminders.store.models import OutboxBody, OutboxMessage
from reminders.tracking.cycles import day_in_cycle
from reminders.vocabulary import Kind, shown_time

log = logging.getLogger(__name__)


_T = TypeVar("_T")
# A server database restarted under a run is waited for this long (seconds between tries) before the run stops.
RECONNECT_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class SendResult:
    recorded: int = 0
    skipped: int = 0
    sent: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # put off (a 4xx, the relay away): tried again later
    failed: list[str] = field(default_factory=list)  # failed for good (a 5xx, given up, cannot be built)
    interrupted: bool = False  # a stop was asked for: the run ended after the messages in flight
    released: int = 0  # claims put back to pending when the run stopped
    halted: str = ""  # why the run stopped early (the relay away or limiting): the rest stays pending


def prepare_cycle(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind],
                  as_of: date | None = None, *, failed: Callable[[str], None] = lambda _label: None,
                  progress: Callable[[int], None] | None = None,
                  stop: threading.Event | None = None) -> int:
    """Record the cycle's messages that are not in the outbox yet, in one transaction; returns how many.

    A message that cannot be built is recorded as failed (`failed` hears of it) and the others are recorded;
    `progress` hears how many drafts were built so far; `stop`, once set, rolls the whole recording back
    (`Interrupted`). Requeued messages that were never built are built again.
    """
    kinds = [kind for kind in kinds if kind in BUILT]
    if not kinds:
        return 0
    renderer = renderer_for(config)
    check_templates(renderer, kinds)
    now = datetime.now(config.schedule.tz)
    with session_scope(engine) as session:
        wait_for_writers(session)  # a second sender waits for the first's recording, then shares the sending
        outbox.forget_unbuilt(session, cycle, kinds)
        known = outbox.existing_keys(session, cycle, kinds)
        drafts = (d for d in iter_drafts(session, config, cycle, tuple(kinds), as_of)
                  if (d.kind, d.recipient_key) not in known)
        return outbox.record(session, build_each(config, renderer, drafts, now, failed, progress,
                                                 stop.is_set if stop is not None else lambda: False))


def preview_cycle(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind], out_dir: Path,
                  as_of: date | None = None, failed: list[str] | None = None) -> list[Path]:
    """Write every message of the cycle as .eml files, recording and sending nothing; a message that cannot be
    built is left out and named in `failed`."""
    renderer = renderer_for(config)
    check_templates(renderer, [kind for kind in kinds if kind in BUILT])
    now = datetime.now(config.schedule.tz)
    with session_scope(engine) as session:
        drafts = build_drafts(session, config, cycle, tuple(kinds), as_of)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for message in build_each(config, renderer, drafts, now, (failed if failed is not None else []).append):
        if isinstance(message, outbox.Unbuilt):
            continue
        path = out_dir / f"{message.kind}-{message.cycle}-{message.recipient_key.replace(':', '-')}.eml"
        path.write_bytes(message.data)
        written.append(path)
    return written


def queue_receipt(session: Session, config: Config, unit_id: int, cycle: str, report_ids: Sequence[int]
                  ) -> str | None:
    """Record the receipt (回执) of a submission in the outbox, in the submission's transaction; returns its key.

    One receipt per unit and cycle within `[web] receipt_window`: while the unit's receipt is pending and nothing of
    it was sent, it is rebuilt to list every report of its window, this one's too (the same row); otherwise a new
    one starts, due when the window ends. The daemon's retry job, `serve`'s sender or `send --kind receipts`
    delivers it. A receipt that cannot be built is recorded as failed, so the submission it confirms still commits.
    """
    if not report_ids:
        return None
    now = datetime.now(config.schedule.tz)
    renderer = renderer_for(config)
    for row_id, key in _open_receipts(session, cycle, receipt_prefix(unit_id)):
        ids = window_reports(session, unit_id, cycle, first_report(key))
        [message] = build_each(config, renderer, [receipt_draft(session, config, unit_id, cycle, ids)], now,
                               failed=log.warning)
        if message.recipient_key == key and _replace_pending(session, row_id, message):
            return key
    [message] = build_each(config, renderer, [receipt_draft(session, config, unit_id, cycle, report_ids)], now,
                           failed=log.warning)
    outbox.record(session, [message], due_after=config.web.receipt_delay)
    return message.recipient_key


def _open_receipts(session: Session, cycle: str, prefix: str) -> list[tuple[int, str]]:
    """The unit's receipts of the cycle still pending with nothing of them sent (at most one, but whatever)."""
    rows = session.execute(select(OutboxMessage.id, OutboxMessage.recipient_key).where(
        OutboxMessage.kind == "receipt", OutboxMessage.cycle == cycle, OutboxMessage.state == "pending",
        OutboxMessage.sent_at.is_(None), OutboxMessage.size > 0,
        OutboxMessage.recipient_key.startswith(prefix, autoescape=True)).order_by(OutboxMessage.id.desc()))
    return [(row_id, key) for row_id, key in rows]


def _replace_pending(session: Session, row_id: int, message: OutgoingMessage | outbox.Unbuilt) -> bool:
    """Put the rebuilt receipt in place of the pending one, if it is still pending and unsent: a sender that
    claimed it meanwhile keeps it (the conditional UPDATE touches nothing), and the caller starts a new one."""
    values: dict[str, object] = {"recipient_name": message.recipient_name, "addresses": ";".join(message.addresses)}
    if isinstance(message, OutgoingMessage):
        values |= {"subject": message.subject, "size": len(message.data), "message_id": message.message_id}
    else:  # the whole window's receipt cannot be built: recorded as failed, as a first one would be
        values |= {"subject": "", "size": 0, "state": "failed", "last_error": message.error}
    result = session.execute(update(OutboxMessage).where(
        OutboxMessage.id == row_id, OutboxMessage.state == "pending", OutboxMessage.sent_at.is_(None))
        .values(**values))
    if not cast("CursorResult[Any]", result).rowcount:
        return False
    if isinstance(message, OutgoingMessage):
        outbox.put_bodies(session, [(row_id, message.data)])
    else:
        session.execute(delete(OutboxBody).where(OutboxBody.outbox_id == row_id))
    return True


def send_chase_now(engine: Engine, config: Config, cycle: str, today: date) -> SendResult:
    """催报 now, through the outbox: one chase per unit and cycle, so a unit chased already is not chased again."""
    return send_cycle(engine, config, cycle, ("chase",), day_in_cycle(cycle, today))


def send_cycle(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind], as_of: date | None = None,
               echo: Callable[[str], None] = log.info, *, stop: threading.Event | None = None,
               progress: Callable[[int], None] | None = None, result: SendResult | None = None) -> SendResult:
    """Build and record the cycle's reminders, digests and chases among `kinds`, then send every pending message of
    `kinds` (receipts included: they were recorded when the units submitted).

    `stop`, once set, ends the run cleanly: the recording is rolled back, or the messages in flight are finished and
    every other claim is put back to pending at once. `result` (default: a new one) is filled in as the run goes,
    so a caller still has the figures so far when a fault (the database gone) stops the run.
    """
    result = result if result is not None else SendResult()
    _start(engine, cycle, kinds, result)

    def failed(label: str) -> None:
        result.failed.append(label)
        echo(f"失败   failed   {label}")

    def record() -> int:
        del result.failed[:]  # a recording tried again reports its unbuilt messages again
        return prepare_cycle(engine, config, cycle, kinds, as_of, failed=failed, progress=progress, stop=stop)

    try:
        result.recorded = _reconnecting(engine, record)
    except Interrupted:
        result.failed.clear()  # rolled back with the recording: nothing of it was kept
        result.interrupted = True
        return result
    _deliver(engine, config, cycle, kinds, result, echo, stop)
    return result


def deliver_pending(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind],
                    echo: Callable[[str], None] = log.info, *, stop: threading.Event | None = None) -> SendResult:
    """Send what the outbox already holds for the cycle and kinds, building nothing."""
    result = SendResult()
    _start(engine, cycle, kinds, result)
    _deliver(engine, config, cycle, kinds, result, echo, stop)
    return result


def _start(engine: Engine, cycle: str | None, kinds: Sequence[Kind] | None, result: SendResult) -> None:
    if cycle is not None and kinds is not None:
        with Session(engine) as session:
            result.skipped = outbox.counts(session, cycle, kinds).get("sent", 0)
    recovered = outbox.recover(engine)
    if recovered:
        log.warning("已将 %d 封由已退出的发送进程认领的邮件放回待发送 "
                    "(%d message(s) claimed by a sender that is gone were put back to pending)", recovered, recovered)


def _reconnecting(engine: Engine, work: Callable[[], _T]) -> _T:
    """`work`, tried again while a server database cannot be reached (restarted, failed over), for a few seconds.

    Only for a database server: a SQLite file that cannot be written (a full disk) will not heal in seconds, and
    its locks are already waited for by busy_timeout. Every piece of work passed here is safe to repeat.
    """
    if engine.dialect.name == "sqlite":
        return work()
    for delay in RECONNECT_DELAYS:
        try:
            return work()
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            log.warning("数据库 %s 连接中断，%.2f 秒后重试 (database unreachable, retrying in %.2f s): %s",
                        masked(str(engine.url)), delay, delay, reason)
            time.sleep(delay)
    return work()


def deliver_due(engine: Engine, config: Config, echo: Callable[[str], None] = log.info, *,
                stop: threading.Event | None = None, kinds: Sequence[Kind] | None = None) -> SendResult:
    """Send every pending message, of any cycle and of `kinds` (None: any), whose next attempt has come (the
    daemon's retry job; `serve`'s sender, receipts only)."""
    result = SendResult()
    _start(engine, None, None, result)
    _deliver(engine, config, None, kinds, result, echo, stop, due=True)
    return result


def _deliver(engine: Engine, config: Config, cycle: str | None, kinds: Sequence[Kind] | None, result: SendResult,
             echo: Callable[[str], None], stop: threading.Event | None = None, *, due: bool = False) -> None:
    names: dict[int, str] = {}
    claims: dict[int, outbox.Claimed] = {}
    tried: set[int] = set()
    claimed: deque[Envelope] = deque()
    batch = claim_batch(config)
    zone = config.schedule.tz

    def claim() -> Envelope | None:
        if stop is not None and stop.is_set():
            return None
        while not claimed:
            lost: list[outbox.Claimed] = []
            items = _reconnecting(engine, functools.partial(
                outbox.claim, engine, cycle, kinds, config.smtp.sender, tried, batch, due=due, lost=lost))
            for item in lost:
                failed(label_of(item), outbox.LOST_BODY)
            for item in items:
                names[item.envelope.key] = label_of(item)
                claims[item.envelope.key] = item
                claimed.append(item.envelope)
            if not lost:
                break
        return claimed.popleft() if claimed else None

    def label_of(item: outbox.Claimed) -> str:
        """Of every cycle (the retry job): "cycle kind name <…>", which daemon.report reads back."""
        return f"{'' if cycle else item.cycle + ' '}{item.kind} {item.recipient_name} " \
               f"<{', '.join(item.envelope.recipients)}>"

    def settle(outcome: Outcome) -> None:
        """Maildir: one message at a time, settled in its own commit."""
        label, item = names.get(outcome.key, str(outcome.key)), claims.pop(outcome.key, None)
        try:
            settled = _reconnecting(engine, lambda: outbox.settle(engine, outcome, item, config.delivery.give_up))
        except (OperationalError, InterfaceError):
            said_sent(outcome, label)
            raise
        tally(outcome, item, label, settled)

    def commit(group: Sequence[tuple[Outcome, outbox.Claimed | None]]) -> list[outbox.Settled]:
        return _reconnecting(engine, lambda: outbox.settle_many(engine, group, config.delivery.give_up))

    writer = GroupWriter(commit)

    async def settle_off_loop(outcome: Outcome) -> None:
        """SMTP: the settle is committed by the writer thread, with the other connections' settles."""
        label, item = names.get(outcome.key, str(outcome.key)), claims.pop(outcome.key, None)
        try:
            settled = await writer.write((outcome, item))
        except (OperationalError, InterfaceError):
            said_sent(outcome, label)
            raise
        tally(outcome, item, label, settled)

    def said_sent(outcome: Outcome, label: str) -> None:
        if outcome.sent:
            echo(f"已发送但未能记录 sent, not recorded (the next run sends it again)  {label}")

    def tally(outcome: Outcome, item: outbox.Claimed | None, label: str, settled: outbox.Settled) -> None:
        delivered = _delivered(outcome, item)
        if settled.state == "sent":
            result.sent.append(label)
            echo(f"已发送 sent     {label}")
            return
        tried.add(outcome.key)
        why = (f"已送达 delivered to {', '.join(delivered)}；" if delivered else "") + (settled.error or "")
        if settled.state == "pending":
            when = shown_time(settled.next_attempt_at, zone) if settled.next_attempt_at else "-"
            result.pending.append(f"{label}: {why}；{when} 起重试 (tried again from {when})")
            echo(f"待重试 later    {result.pending[-1]}")
        else:
            failed(label, why)

    def failed(label: str, why: str) -> None:
        result.failed.append(f"{label}: {why}")
        echo(f"失败   failed   {result.failed[-1]}")

    unsettled: list[int] = []
    try:
        if config.delivery.transport == "maildir":
            deliver_maildir(config.delivery.maildir, claim, settle)
        else:
            with writer:
                unsettled = asyncio.run(deliver_smtp(smtp_settings(config), claim, settle_off_loop, stop, tell=echo))
    except RelayUnreachable as exc:  # the relay is away: the rest stays pending, due at once for the next run
        outbox.release(engine, [*exc.unsettled, *(envelope.key for envelope in claimed)])
        result.halted = str(exc)
        return
    except DeliveryError as exc:
        outbox.release(engine, [*exc.unsettled, *(envelope.key for envelope in claimed)])
        raise
    except (OperationalError, InterfaceError):
        # The database went away: put back what can be put back; a process that is gone leaves the rest to the
        # next run's recovery.
        keys = [envelope.key for envelope in claimed]
        if keys:
            with contextlib.suppress(OperationalError, InterfaceError):
                outbox.release(engine, keys)
        raise
    if stop is not None and stop.is_set():
        result.interrupted = True
        result.released = _reconnecting(engine, lambda: outbox.release(
            engine, [*unsettled, *(envelope.key for envelope in claimed)]))
        if result.released:
            log.warning("已将本次运行认领的 %d 封邮件放回待发送 (%d claimed message(s) put back to pending)",
                        result.released, result.released)


def _delivered(outcome: Outcome, item: outbox.Claimed | None) -> list[str]:
    """The addresses this attempt reached, when others were refused or put off."""
    if item is None or not (outcome.refused or outcome.deferred):
        return []
    return addressed.reached(outcome, item.envelope.recipients)


def claim_batch(config: Config) -> int:
    """How many messages to claim at a time: enough to spare the database a statement per message, few enough
    that a throttled run does not hold claims for long."""
    smtp = config.smtp
    batch = 8 * smtp.connections if config.delivery.transport == "smtp" else 32
    if smtp.max_per_minute:
        batch = min(batch, max(1, smtp.max_per_minute // 4))
    return max(1, min(batch, 64))


def smtp_settings(config: Config) -> Smtp:
    return replace(config.smtp, password=config.smtp_password())
