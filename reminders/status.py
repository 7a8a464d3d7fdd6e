"""Where each task stands on a given day: pure rules, and a loader that reads a plan in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders.context import Progress, State, TaskLine
from reminders.models import Assignment, CoUnit, Plan, ProgressReport, Task


def cycle_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def task_state(deadline: date | None, assigned: bool, done: bool, as_of: date, due_soon_days: int) -> State:
    if not assigned:
        return "unassigned"
    if done:
        return "done"
    if deadline is None:
        return "ongoing"
    if deadline < as_of:
        return "overdue"
    if (deadline - as_of).days <= due_soon_days:
        return "due_soon"
    return "on_track"


@dataclass(frozen=True)
class PlanStatus:
    plan: Plan
    as_of: date
    lines: tuple[TaskLine, ...]
    lead_unit_ids: dict[str, int]  # task number -> lead unit id (for not-reported lists)
    co_unit_ids: dict[str, tuple[int, ...]]


def load_status(session: Session, plan: Plan, as_of: date, due_soon_days: int) -> PlanStatus:
    tasks = session.scalars(
        select(Task)
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None))
        .order_by(Task.position)
        .options(
            selectinload(Task.section),
            selectinload(Task.assignment).options(
                selectinload(Assignment.lead_unit),
                selectinload(Assignment.leader),
                selectinload(Assignment.co_units).selectinload(CoUnit.unit),
            ),
        )
    ).all()
    reports = session.scalars(
        select(ProgressReport)
        .join(Task, Task.id == ProgressReport.task_id)
        .where(Task.plan_id == plan.id, ProgressReport.reported_on <= as_of)
        .order_by(ProgressReport.reported_on, ProgressReport.created_at, ProgressReport.id)
        .options(selectinload(ProgressReport.unit))
    ).all()
    cycle = cycle_of(as_of)
    latest: dict[int, ProgressReport] = {}
    done: set[int] = set()
    reported: set[int] = set()
    for report in reports:
        latest[report.task_id] = report
        if report.done:
            done.add(report.task_id)
        if report.cycle == cycle:
            reported.add(report.task_id)

    lines, leads, cos = [], {}, {}
    for task in tasks:
        assignment = task.assignment
        deadline = assignment.deadline if assignment else None
        state = task_state(deadline, assignment is not None, task.id in done, as_of, due_soon_days)
        last = latest.get(task.id)
        lines.append(TaskLine(
            number=task.number,
            section=task.section.title if task.section else "",
            title=task.title,
            lead_unit=assignment.lead_unit.name if assignment else None,
            co_units=tuple(c.unit.name for c in assignment.co_units) if assignment else (),
            leader=assignment.leader.name if assignment and assignment.leader else None,
            deadline=deadline,
            deadline_text=assignment.deadline_text if assignment else "",
            state=state,
            days_left=(deadline - as_of).days if deadline else None,
            reported=task.id in reported,
            latest=Progress(last.reported_on, last.unit.name, last.percent, last.done, last.note) if last else None,
        ))
        if assignment:
            leads[task.number] = assignment.lead_unit_id
            cos[task.number] = tuple(c.unit_id for c in assignment.co_units)
    return PlanStatus(plan, as_of, tuple(lines), leads, cos)


def as_json(line: TaskLine) -> dict[str, object]:
    return {
        "number": line.number,
        "section": line.section,
        "title": line.title,
        "lead_unit": line.lead_unit,
        "co_units": list(line.co_units),
        "leader": line.leader,
        "deadline": line.deadline.isoformat() if line.deadline else None,
        "deadline_text": line.deadline_text,
        "state": line.state,
        "days_left": line.days_left,
        "reported": line.reported,
        "latest_progress": None if line.latest is None else {
            "date": line.latest.reported_on.isoformat(), "unit": line.latest.unit,
            "percent": line.latest.percent, "done": line.latest.done, "note": line.latest.note,
        },
    }
