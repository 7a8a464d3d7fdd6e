"""A cycle's run: build its messages, record them in the outbox, deliver what is pending; and the two messages
recorded outside a cycle's run, the receipt of a submission and a chase the office sends now."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reminders.config import Config, Smtp
from reminders.delivery import outbox
from reminders.delivery.smtp import DeliveryError, Envelope, Outcome, deliver_maildir, deliver_smtp
from reminders.mail.compose import BUILT, build_drafts, iter_drafts
from reminders.mail.message import render_draft, renderer_for
from reminders.mail.receipts import receipt_draft
from reminders.store.db import session_scope
from reminders.tracking.cycles import day_in_cycle
from reminders.vocabulary import Kind

log = logging.getLogger(__name__)


@dataclass
class SendResult:
    recorded: int = 0
    skipped: int = 0
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def prepare_cycle(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind],
                  as_of: date | None = None) -> int:
    """Record the cycle's messages that are not in the outbox yet, in one transaction; returns how many."""
    kinds = [kind for kind in kinds if kind in BUILT]
    if not kinds:
        return 0
    renderer = renderer_for(config)
    now = datetime.now(config.schedule.tz)
    with session_scope(engine) as session:
        known = outbox.existing_keys(session, cycle, kinds)
        drafts = (d for d in iter_drafts(session, config, cycle, tuple(kinds), as_of)
                  if (d.kind, d.recipient_key) not in known)
        return outbox.record(session, (render_draft(config, renderer, d, now) for d in drafts))


def preview_cycle(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind], out_dir: Path,
                  as_of: date | None = None) -> list[Path]:
    """Write every message of the cycle as .eml files, recording and sending nothing."""
    renderer = renderer_for(config)
    now = datetime.now(config.schedule.tz)
    with session_scope(engine) as session:
        drafts = build_drafts(session, config, cycle, tuple(kinds), as_of)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for draft in drafts:
        message = render_draft(config, renderer, draft, now)
        path = out_dir / f"{draft.kind}-{draft.cycle}-{draft.recipient_key.replace(':', '-')}.eml"
        path.write_bytes(message.data)
        written.append(path)
    return written


def queue_receipt(session: Session, config: Config, unit_id: int, cycle: str, report_ids: Sequence[int]) -> None:
    """Record the receipt (回执) of a submission in the outbox, in the submission's transaction; the receipt job
    (or `send --kind receipts`) delivers it."""
    if report_ids:
        draft = receipt_draft(session, config, unit_id, cycle, report_ids)
        now = datetime.now(config.schedule.tz)
        outbox.record(session, [render_draft(config, renderer_for(config), draft, now)])


def send_chase_now(engine: Engine, config: Config, cycle: str, today: date) -> SendResult:
    """催报 now, through the outbox: one chase per unit and cycle, so a unit chased already is not chased again."""
    return send_cycle(engine, config, cycle, ("chase",), day_in_cycle(cycle, today))


def send_cycle(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind], as_of: date | None = None,
               echo: Callable[[str], None] = log.info) -> SendResult:
    """Build and record the cycle's reminders, digests and chases among `kinds`, then send every pending message of
    `kinds` (receipts included: they were recorded when the units submitted)."""
    result = _start(engine, cycle, kinds)
    result.recorded = prepare_cycle(engine, config, cycle, kinds, as_of)
    _deliver(engine, config, cycle, kinds, result, echo)
    return result


def deliver_pending(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind],
                    echo: Callable[[str], None] = log.info) -> SendResult:
    """Send what the outbox already holds for the cycle and kinds, building nothing."""
    result = _start(engine, cycle, kinds)
    _deliver(engine, config, cycle, kinds, result, echo)
    return result


def _start(engine: Engine, cycle: str, kinds: Sequence[Kind]) -> SendResult:
    result = SendResult()
    with Session(engine) as session:
        result.skipped = outbox.counts(session, cycle, kinds).get("sent", 0)
    recovered = outbox.recover(engine)
    if recovered:
        log.warning("%d message(s) claimed by a sender that is gone were put back to pending", recovered)
    return result


def _deliver(engine: Engine, config: Config, cycle: str, kinds: Sequence[Kind], result: SendResult,
             echo: Callable[[str], None]) -> None:
    names: dict[int, str] = {}
    tried: set[int] = set()
    claimed: deque[Envelope] = deque()
    batch = claim_batch(config)

    def claim() -> Envelope | None:
        if not claimed:
            for item in outbox.claim(engine, cycle, kinds, config.smtp.sender, tried, batch):
                names[item.envelope.key] = f"{item.kind} {item.recipient_name} <{', '.join(item.envelope.recipients)}>"
                claimed.append(item.envelope)
        return claimed.popleft() if claimed else None

    def settle(outcome: Outcome) -> None:
        outbox.settle(engine, outcome)
        label = names.get(outcome.key, str(outcome.key))
        if outcome.sent:
            result.sent.append(label)
            echo(f"已发送 sent     {label}" + (f"  ({outcome.error})" if outcome.error else ""))
        else:
            tried.add(outcome.key)
            result.failed.append(f"{label}: {outcome.error}")
            echo(f"失败   failed   {label}: {outcome.error}")

    if config.delivery.transport == "maildir":
        deliver_maildir(config.delivery.maildir, claim, settle)
    else:
        settings = smtp_settings(config)
        try:
            asyncio.run(deliver_smtp(settings, claim, settle))
        except DeliveryError as exc:
            outbox.release(engine, [*exc.unsettled, *(envelope.key for envelope in claimed)])
            raise


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
