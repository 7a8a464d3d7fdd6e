"""Where each task stands on a given day: pure rules, and a loader that reads a plan in a fixed number of queries.

The plan's tasks and assignments are read once (`load_plan`) as plain tuples; the progress that depends on the day
is read per day (`load_status`), so a cycle computing reminders and digests for two days reads the tasks once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, case, exists, func, select
from sqlalchemy.orm import Session, aliased

from reminders.store.models import (
    Assignment,
    CoUnit,
    LatestReport,
    Leader,
    Plan,
    ProgressReport,
    Section,
    Task,
    Unit,
)
from reminders.tracking.cycles import cycle_of
from reminders.tracking.pace import DEFAULT_LAG_POINTS, expected_percent, is_lagging, plan_start
from reminders.vocabulary import SETTLED, TaskState

_V = TypeVar("_V", bound=Hashable | None)


@dataclass(frozen=True, slots=True)
class Progress:
    reported_on: date
    unit: str
    percent: int | None
    done: bool
    note: str


@dataclass(frozen=True, slots=True)
class TaskLine:
    """One task as it stands on a day: what reminders, digests, the form, the dashboard and the ledger show."""

    number: str
    section: str
    title: str
    lead_unit: str | None
    co_units: tuple[str, ...]
    leader: str | None
    deadline: date | None
    deadline_text: str
    state: TaskState
    days_left: int | None  # negative when overdue; None without a deadline
    reported: bool  # a report by the lead unit in the day's month
    latest: Progress | None
    role: Literal["lead", "co"] | None = None  # the addressed unit's part, in reminders and its form
    expected_percent: int | None = None  # 序时进度 on the day (tracking.pace); None without a deadline
    percent: int | None = None  # the lead unit's latest reported percentage, whatever later reports left out

    @property
    def days_overdue(self) -> int:
        return -self.days_left if self.days_left is not None and self.days_left < 0 else 0


def task_state(deadline: date | None, assigned: bool, done: bool, as_of: date, due_soon_days: int,
               lagging: bool = False) -> TaskState:
    """The most severe state that holds: a task both due soon and lagging is due soon (vocabulary.STATES)."""
    if not assigned:
        return TaskState.UNASSIGNED
    if done:
        return TaskState.DONE
    if deadline is None:
        return TaskState.ONGOING
    if deadline < as_of:
        return TaskState.OVERDUE
    if (deadline - as_of).days <= due_soon_days:
        return TaskState.DUE_SOON
    return TaskState.LAGGING if lagging else TaskState.ON_TRACK


@dataclass(frozen=True, slots=True)
class PlannedTask:
    id: int
    number: str
    section: str
    title: str
    lead_unit_id: int | None
    lead_unit: str | None
    co_unit_ids: tuple[int, ...]
    co_units: tuple[str, ...]
    leader: str | None
    deadline: date | None
    deadline_text: str
    start: date | None = None  # the assignment's 开始日期, where the table gave one


@dataclass(frozen=True)
class LoadedPlan:
    plan: Plan
    tasks: tuple[PlannedTask, ...]


@dataclass(frozen=True)
class PlanStatus:
    plan: Plan
    as_of: date
    lines: tuple[TaskLine, ...]
    lead_unit_ids: dict[str, int]  # task number -> lead unit id (for reminders and not-reported lists)
    co_unit_ids: dict[str, tuple[int, ...]]


def load_plan(session: Session, plan: Plan) -> LoadedPlan:
    """Every live task of the plan with its assignment, in three queries.

    The reads here and in load_status go through the session's Core connection: they select plain columns, and the
    ORM's result machinery cost more than the query itself at 100,000 tasks."""
    connection = session.connection()
    units = dict(connection.execute(select(Unit.id, Unit.name)).all())
    co: dict[int, list[int]] = {}
    for assignment_id, unit_id in connection.execute(
        select(CoUnit.assignment_id, CoUnit.unit_id).join(Assignment).join(Task, Task.id == Assignment.task_id)
        .where(Task.plan_id == plan.id).order_by(CoUnit.assignment_id, CoUnit.position)
    ):
        co.setdefault(assignment_id, []).append(unit_id)
    rows = connection.execute(
        select(Task.id, Task.number, Section.title, Task.title, Assignment.id, Assignment.lead_unit_id, Leader.name,
               Assignment.deadline, Assignment.deadline_text, Assignment.start_date)
        .outerjoin(Section, Section.id == Task.section_id)
        .outerjoin(Assignment, Assignment.task_id == Task.id)
        .outerjoin(Leader, Leader.id == Assignment.leader_id)
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None))
        .order_by(Task.position)
    )
    tasks = []
    once = sharing()
    for task_id, number, section, title, assignment_id, lead_id, leader, deadline, deadline_text, start in rows:
        co_ids = tuple(co.get(assignment_id, ())) if assignment_id else ()
        tasks.append(PlannedTask(
            task_id, number, once(section or ""), title, lead_id, units.get(lead_id) if lead_id else None, co_ids,
            tuple(units[u] for u in co_ids), once(leader), once(deadline), once(deadline_text or ""), once(start),
        ))
    return LoadedPlan(plan, tuple(tasks))


def sharing() -> Callable[[_V], _V]:
    """A function that gives back, for each value, the first equal value it was given: a section's title, a
    leader's name or a day read in many rows is then held once, not once per row (at 100,000 tasks, 27 of the
    loaded plan's 75 MB). For texts and days: values of types that compare equal across types (1, 1.0 and True)
    would be taken for one another."""
    seen: dict[object, object] = {}

    def once(value: _V) -> _V:
        return cast("_V", seen.setdefault(value, value))

    return once


def not_superseded() -> ColumnElement[bool]:
    """A report no amendment has replaced: the only kind that counts (an amended one stays in the history)."""
    newer = aliased(ProgressReport)
    return ~exists().where(newer.supersedes_id == ProgressReport.id)


def _progress(session: Session, plan: Plan, as_of: date) -> tuple[dict[int, Progress], set[int], dict[int, int]]:
    """The latest report of each task up to `as_of`, the tasks done, and each task's latest percentage.

    A task's own reports are its lead unit's (the office marks a task done in the lead unit's name): a co-unit's
    input is shown to the lead unit but neither closes the task nor counts as the month's report. The latest
    progress shown is the lead unit's latest report, or a co-unit's while the lead unit has never reported; the
    percentage is the lead unit's latest one, whatever later reports left out.
    """
    kept = _from_latest_reports(session, plan, as_of)
    return kept if kept is not None else _ranked_progress(session, plan, as_of)


def _from_latest_reports(session: Session, plan: Plan,
                         as_of: date) -> tuple[dict[int, Progress], set[int], dict[int, int]] | None:
    """`_progress` from each task and unit's newest report (`LatestReport`): the lead unit's, and the co-units' of
    the tasks their lead unit never reported on, one row a pair instead of a ranking of every report. None when a
    report it would show is dated after `as_of` (status of a day past), which only the ranking answers."""
    connection = session.connection()
    shown = (select(LatestReport.task_id, ProgressReport.reported_on, Unit.name, ProgressReport.percent,
                    ProgressReport.done, ProgressReport.note)
             .join(Task, Task.id == LatestReport.task_id)
             .join(ProgressReport, ProgressReport.id == LatestReport.report_id)
             .join(Unit, Unit.id == LatestReport.unit_id)
             .where(Task.plan_id == plan.id))
    latest, done, percents = {}, set(), {}
    once = sharing()
    lead = (Assignment.task_id == LatestReport.task_id) & (Assignment.lead_unit_id == LatestReport.unit_id)
    for task_id, reported_on, unit_name, percent, is_done, note, lead_percent in connection.execute(
            shown.add_columns(LatestReport.percent).join(Assignment, lead)):
        if reported_on > as_of:
            return None
        latest[task_id] = Progress(once(reported_on), once(unit_name), percent, is_done, note)
        if is_done:
            done.add(task_id)
        if lead_percent is not None:
            percents[task_id] = lead_percent
    other = aliased(LatestReport)
    newest: dict[int, tuple[Any, ...]] = {}  # task id -> (reported on, recorded at, id, ...) of its newest co-unit
    for task_id, reported_on, unit_name, percent, is_done, note, created_at, report_id in connection.execute(
            shown.add_columns(ProgressReport.created_at, ProgressReport.id)
            .outerjoin(Assignment, Assignment.task_id == LatestReport.task_id)
            .where(~exists().where(other.task_id == LatestReport.task_id,
                                   other.unit_id == Assignment.lead_unit_id))):
        if reported_on > as_of:
            return None
        row = (reported_on, created_at, report_id, unit_name, percent, is_done, note)
        if (kept := newest.get(task_id)) is None or row[:3] > kept[:3]:
            newest[task_id] = row
    for task_id, (reported_on, _, _, unit_name, percent, is_done, note) in newest.items():
        latest[task_id] = Progress(once(reported_on), once(unit_name), percent, is_done, note)
    return latest, done, percents


def _ranked_progress(session: Session, plan: Plan,
                     as_of: date) -> tuple[dict[int, Progress], set[int], dict[int, int]]:
    """`_progress` by ranking every report up to `as_of`: for a day before some of the reports."""
    connection = session.connection()
    by_lead = ProgressReport.unit_id == Assignment.lead_unit_id
    ranked = (
        select(ProgressReport.task_id, ProgressReport.unit_id, ProgressReport.reported_on, ProgressReport.percent,
               ProgressReport.done, ProgressReport.note, case((by_lead, 1), else_=0).label("lead"),
               func.row_number().over(partition_by=ProgressReport.task_id,
                                      order_by=(case((by_lead, 0), else_=1), *_NEWEST_FIRST)).label("rank"))
        .join(Task, Task.id == ProgressReport.task_id)
        .outerjoin(Assignment, Assignment.task_id == ProgressReport.task_id).where(*_counting(plan, as_of)).subquery()
    )
    latest, done = {}, set()
    once = sharing()
    for task_id, unit_name, reported_on, percent, is_done, note, lead in connection.execute(
        select(ranked.c.task_id, Unit.name, ranked.c.reported_on, ranked.c.percent, ranked.c.done, ranked.c.note,
               ranked.c.lead)
        .join(Unit, Unit.id == ranked.c.unit_id).where(ranked.c.rank == 1)
    ):
        latest[task_id] = Progress(once(reported_on), once(unit_name), percent, is_done, note)
        if lead and is_done:
            done.add(task_id)  # the lead unit's latest word: a report superseded in its cycle no longer counts
    return latest, done, _percents(session, plan, as_of)


_NEWEST_FIRST = (ProgressReport.reported_on.desc(), ProgressReport.created_at.desc(), ProgressReport.id.desc())


def _counting(plan: Plan, as_of: date) -> tuple[ColumnElement[bool], ...]:
    """The plan's reports that count on `as_of`: written by then, and not amended."""
    return ProgressReport.reported_on <= as_of, Task.plan_id == plan.id, not_superseded()


def _reported(session: Session, plan: Plan, as_of: date) -> set[int]:
    """The tasks the lead unit reported on in `as_of`'s month, up to that day."""
    return set(session.connection().scalars(
        select(ProgressReport.task_id).join(Task, Task.id == ProgressReport.task_id)
        .join(Assignment, (Assignment.task_id == ProgressReport.task_id)
              & (ProgressReport.unit_id == Assignment.lead_unit_id))
        .where(*_counting(plan, as_of), ProgressReport.cycle == cycle_of(as_of)).distinct()))


def _percents(session: Session, plan: Plan, as_of: date) -> dict[int, int]:
    """Each task's latest percentage reported by its lead unit up to `as_of`: a later report that gave none (a note
    only) leaves the last figure standing."""
    ranked = (
        select(ProgressReport.task_id, ProgressReport.percent,
               func.row_number().over(partition_by=ProgressReport.task_id, order_by=_NEWEST_FIRST).label("rank"))
        .join(Task, Task.id == ProgressReport.task_id)
        .join(Assignment, (Assignment.task_id == ProgressReport.task_id)
              & (ProgressReport.unit_id == Assignment.lead_unit_id))
        .where(*_counting(plan, as_of), ProgressReport.percent.is_not(None))
        .subquery()
    )
    return {task_id: percent for task_id, percent in
            session.connection().execute(select(ranked.c.task_id, ranked.c.percent).where(ranked.c.rank == 1))}


def load_status(session: Session, plan: Plan | LoadedPlan, as_of: date, due_soon_days: int,
                lag_points: int = DEFAULT_LAG_POINTS) -> PlanStatus:
    """Every task's line on `as_of`. `lag_points` is `[ladder] lag_points`: how far behind 序时进度 is lagging."""
    loaded = plan if isinstance(plan, LoadedPlan) else load_plan(session, plan)
    latest, done, percents = _progress(session, loaded.plan, as_of)
    reported = _reported(session, loaded.plan, as_of)
    lines: list[TaskLine] = []
    leads: dict[str, int] = {}
    cos: dict[str, tuple[int, ...]] = {}
    for task in loaded.tasks:
        assigned = task.lead_unit_id is not None
        deadline = task.deadline
        percent = percents.get(task.id)
        expected = None if deadline is None else \
            expected_percent(task.start or plan_start(loaded.plan.year, deadline), deadline, as_of)
        lagging = is_lagging(percent, expected, lag_points)
        lines.append(TaskLine(
            number=task.number, section=task.section, title=task.title, lead_unit=task.lead_unit,
            co_units=task.co_units, leader=task.leader, deadline=deadline, deadline_text=task.deadline_text,
            state=task_state(deadline, assigned, task.id in done, as_of, due_soon_days, lagging),
            days_left=(deadline - as_of).days if deadline else None,
            reported=task.id in reported, latest=latest.get(task.id), expected_percent=expected, percent=percent,
        ))
        if task.lead_unit_id is not None:
            leads[task.number] = task.lead_unit_id
            cos[task.number] = task.co_unit_ids
    return PlanStatus(loaded.plan, as_of, tuple(lines), leads, cos)


def awaiting_report(status: PlanStatus, lines: Iterable[TaskLine] | None = None) -> dict[int, list[TaskLine]]:
    """Lead unit id -> its tasks among `lines` (default: the whole plan) that still ask for a report this month and
    have none of the lead unit's own: the units a chase goes to and a digest names as not reported."""
    waiting: dict[int, list[TaskLine]] = {}
    for line in status.lines if lines is None else lines:
        if line.state not in SETTLED and not line.reported:
            waiting.setdefault(status.lead_unit_ids[line.number], []).append(line)
    return waiting


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
        "expected_percent": line.expected_percent,
        "percent": line.percent,
        "latest_progress": None if line.latest is None else {
            "date": line.latest.reported_on.isoformat(), "unit": line.latest.unit,
            "percent": line.latest.percent, "done": line.latest.done, "note": line.latest.note,
        },
    }
