"""Progress reports: appended, never overwritten, so each task keeps its whole history (一事一记)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.errors import ReminderError
from reminders.store.models import Assignment, CoUnit, ProgressReport, Task, Unit
from reminders.store.plans import active_plan
from reminders.tracking.cycles import cycle_of


class ProgressError(ReminderError):
    pass


def record_progress(
    session: Session,
    task_number: str,
    unit_name: str,
    note: str,
    *,
    on: date,
    percent: int | None = None,
    done: bool = False,
) -> ProgressReport:
    plan = active_plan(session)
    task = session.scalars(
        select(Task).where(Task.plan_id == plan.id, Task.number == task_number, Task.removed_at.is_(None))
    ).first()
    if task is None:
        raise ProgressError(f"计划中没有第 {task_number} 项任务 (no task {task_number} in “{plan.title}”)")
    unit = session.scalars(select(Unit).where(Unit.name == unit_name)).first()
    if unit is None:
        raise ProgressError(f"未知的单位 “{unit_name}” (unknown unit)")
    owners = set(session.scalars(select(Assignment.lead_unit_id).where(Assignment.task_id == task.id)))
    owners |= set(session.scalars(
        select(CoUnit.unit_id).join(Assignment).where(Assignment.task_id == task.id)
    ))
    if unit.id not in owners:
        raise ProgressError(f"单位 “{unit_name}” 不负责任务 {task_number} (the unit does not own this task)")
    if percent is not None and not 0 <= percent <= 100:
        raise ProgressError(f"进度应在 0–100 之间，而不是 {percent} (percent out of range)")
    if not note.strip():
        raise ProgressError("进展情况不能为空 (the note must not be empty)")
    if "\r" in note or "\x00" in note:
        raise ProgressError("进展情况含有非法字符 (control characters in the note)")
    report = ProgressReport(
        task_id=task.id, unit_id=unit.id, cycle=cycle_of(on), reported_on=on,
        percent=100 if done and percent is None else percent, done=done, note=note.strip(),
        created_at=datetime.now(UTC), status="done" if done else "progress", problems="", next_steps="", source="cli",
    )
    session.add(report)
    session.flush()
    return report
