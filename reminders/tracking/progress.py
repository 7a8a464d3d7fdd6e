"""Progress reports: appended, never overwritten, so each task keeps its whole history (一事一记). A correction is an
amendment: a new report naming the one it supersedes, which stays in the history but no longer counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from reminders.errors import ReminderError
from reminders.store.models import Assignment, CoUnit, ProgressReport, Task, Unit
from reminders.store.plans import active_plan
from reminders.text import refusal
from reminders.tracking.cycles import cycle_of


class ProgressError(ReminderError):
    pass


def _task(session: Session, task_number: str) -> Task:
    plan = active_plan(session)
    task = session.scalars(
        select(Task).where(Task.plan_id == plan.id, Task.number == task_number, Task.removed_at.is_(None))
    ).first()
    if task is None:
        raise ProgressError(f"计划中没有第 {task_number} 项任务 (no task {task_number} in “{plan.title}”)")
    return task


def _check(note: str, percent: int | None, on: date, today: date | None) -> None:
    if percent is not None and not 0 <= percent <= 100:
        raise ProgressError(f"进度应在 0–100 之间，而不是 {percent} (percent out of range)")
    if not note.strip():
        raise ProgressError("进展情况不能为空 (the note must not be empty)")
    if "\r" in note:
        raise ProgressError("进展情况含有非法字符 U+000D（回车符）(a carriage return in the note)")
    if problem := refusal(note):
        raise ProgressError(f"进展情况{problem}")
    if today is not None and on > today:
        raise ProgressError(f"报送日期 {on.isoformat()} 晚于今天 {today.isoformat()}：不能记录未来的进展"
                            f" (the report date {on.isoformat()} is in the future)")


def record_progress(
    session: Session,
    task_number: str,
    unit_name: str,
    note: str,
    *,
    on: date,
    percent: int | None = None,
    done: bool = False,
    today: date | None = None,
) -> ProgressReport:
    """Append a report; with `today`, a report dated after it is refused."""
    task = _task(session, task_number)
    unit = session.scalars(select(Unit).where(Unit.name == unit_name)).first()
    if unit is None:
        raise ProgressError(f"未知的单位 “{unit_name}” (unknown unit)")
    owners = set(session.scalars(select(Assignment.lead_unit_id).where(Assignment.task_id == task.id)))
    owners |= set(session.scalars(
        select(CoUnit.unit_id).join(Assignment).where(Assignment.task_id == task.id)
    ))
    if unit.id not in owners:
        raise ProgressError(f"单位 “{unit_name}” 不负责任务 {task_number} (the unit does not own this task)")
    _check(note, percent, on, today)
    report = ProgressReport(
        task_id=task.id, unit_id=unit.id, cycle=cycle_of(on), reported_on=on,
        percent=100 if done and percent is None else percent, done=done, note=note.strip(),
        created_at=datetime.now(UTC), status="done" if done else "progress", problems="", next_steps="", source="cli",
    )
    session.add(report)
    session.flush()
    return report


@dataclass(frozen=True)
class ReportLine:
    """One report in a task's history, with the amendments on either side of it."""

    id: int
    reported_on: date
    cycle: str
    unit: str
    percent: int | None
    done: bool
    note: str
    status: str
    source: str
    created_at: datetime
    supersedes: int | None
    superseded_by: int | None


def history(session: Session, task_number: str) -> list[ReportLine]:
    """Every report of the task, newest first (by report date, then by when it was recorded)."""
    task = _task(session, task_number)
    newer = aliased(ProgressReport)
    rows = session.execute(
        select(ProgressReport, Unit.name, newer.id).join(Unit, Unit.id == ProgressReport.unit_id)
        .outerjoin(newer, newer.supersedes_id == ProgressReport.id)
        .where(ProgressReport.task_id == task.id)
        .order_by(ProgressReport.reported_on.desc(), ProgressReport.created_at.desc(), ProgressReport.id.desc())
    ).all()
    return [ReportLine(r.id, r.reported_on, r.cycle, unit, r.percent, r.done, r.note, r.status, r.source,
                       r.created_at, r.supersedes_id, by) for r, unit, by in rows]


def amend_progress(
    session: Session,
    report_id: int,
    *,
    today: date,
    note: str | None = None,
    percent: int | None = None,
    done: bool | None = None,
    on: date | None = None,
) -> ProgressReport:
    """Correct a report: a new report with the changes, naming the old one, which is kept and stops counting.

    Only the newest version of a report can be amended, so a history is a chain, never a fork."""
    old = session.get(ProgressReport, report_id)
    if old is None:
        raise ProgressError(f"没有编号为 {report_id} 的进展报告 (no progress report {report_id})")
    newer = session.scalars(select(ProgressReport.id).where(ProgressReport.supersedes_id == report_id)).first()
    if newer is not None:
        raise ProgressError(f"进展报告 {report_id} 已被 {newer} 更正，请更正 {newer}"
                            f" (report {report_id} was already amended by {newer}: amend {newer})")
    if note is None and percent is None and done is None and on is None:
        raise ProgressError("请至少给出一项更正：--percent、--done/--not-done、--note 或 --date"
                            " (nothing to amend: give --percent, --done/--not-done, --note or --date)")
    day = on or old.reported_on
    text = old.note if note is None else note
    _check(text, percent, day, today)
    is_done = old.done if done is None else done
    status = "done" if is_done else ("progress" if old.status == "done" else old.status)
    new = ProgressReport(
        task_id=old.task_id, unit_id=old.unit_id, cycle=cycle_of(day), reported_on=day,
        percent=(100 if done and old.percent is None else old.percent) if percent is None else percent,
        done=is_done, note=text.strip(), created_at=datetime.now(UTC), status=status, problems=old.problems,
        next_steps=old.next_steps, requested_deadline=old.requested_deadline, request_reason=old.request_reason,
        source="cli", supersedes_id=old.id,
    )
    session.add(new)
    session.flush()
    return new
