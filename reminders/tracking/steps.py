"""The 督办 ladder's steps as records (ladder_steps): written in the transaction that records the message carrying
them, so a step and its message are recorded together or not at all, and read back for the task's history, the
ledger and `reminders ladder`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from reminders.store.bulk import dialect_insert
from reminders.store.models import LadderStep


@dataclass(frozen=True)
class Step:
    """A step a message takes; `key` is unique across the database (e.g. "headsup:task:12:2021-06-30:5"), so a
    step recorded once is never recorded again, whichever sender gets there first."""

    key: str
    unit_id: int
    task_id: int | None
    rung: int  # vocabulary.RUNG_*
    cycle: str
    day: date
    reason: str
    number: str | None = None


def record_steps(session: Session, steps: Iterable[Step], message_id: str | None) -> int:
    """Insert the steps not recorded yet, naming the message that carried them; returns how many were new."""
    return record_carried(session, ((step, message_id) for step in steps))


def record_carried(session: Session, carried: Iterable[tuple[Step, str | None]]) -> int:
    """`record_steps` for the steps of several messages, each with its message's id, in one statement."""
    now = datetime.now(UTC)
    rows = [{"step_key": step.key, "unit_id": step.unit_id, "task_id": step.task_id, "rung": step.rung,
             "cycle": step.cycle, "day": step.day, "reason": step.reason, "number": step.number,
             "message_id": message_id, "created_at": now} for step, message_id in carried]
    if not rows:
        return 0
    statement = dialect_insert(session, LadderStep).on_conflict_do_nothing().returning(LadderStep.id)
    return len(session.execute(statement, rows).all())
