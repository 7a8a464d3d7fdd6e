"""What the supervision office does from the dashboard (and the CLI): close a task (办结), decide extension requests
(延期), read a task's history and see who has not reported. Accounts are in accounts.py, the ledger in ledger.py, and
the chase it sends (催报) goes through the outbox (delivery.dispatch.send_chase_now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.errors import ReminderError
from reminders.store.models import Assignment, DeadlineChange, LadderStep, ProgressReport, Task, Unit
from reminders.store.plans import active_plan
from reminders.text import first_refused, refusal
from reminders.tracking.cycles import cycle_of, day_in_cycle
from reminders.tracking.status import awaiting_report, load_status, not_superseded
from reminders.vocabulary import RUNG_LABELS, zh_date


class OfficeError(ReminderError):
    pass


@dataclass(frozen=True)
class Extension:
    """An extension request awaiting the office's decision."""

    report_id: int
    task: str
    title: str
    unit: str
    deadline: date | None  # the current one
    requested_deadline: date
    reason: str
    reported_on: date
    at: datetime  # when it was recorded


@dataclass(frozen=True)
class HistoryReport:
    at: datetime
    report_id: int
    unit: str
    cycle: str
    reported_on: date
    status: str
    percent: int | None
    note: str
    problems: str
    next_steps: str
    requested_deadline: date | None
    request_reason: str | None
    source: str
    kind: str = "report"


@dataclass(frozen=True)
class HistoryChange:
    at: datetime
    old_deadline: date | None
    new_deadline: date | None
    decision: str  # approved|refused
    decided_by: str
    reason: str
    report_id: int | None
    kind: str = "deadline"


@dataclass(frozen=True)
class HistoryStep:
    """A step of the 督办 ladder taken on the task (临期提醒, 催办, 督办通知): when, which rung, its number, why."""

    at: datetime
    day: date  # the day it was computed for
    cycle: str
    unit: str
    rung: int
    rung_label: str  # vocabulary.RUNG_LABELS
    number: str | None  # a 督办通知's 文号
    reason: str
    kind: str = "step"


def _task(session: Session, number: str) -> tuple[Task, Assignment]:
    if found := first_refused(number, single_line=True):  # no task number holds one (and PostgreSQL refuses NUL)
        raise OfficeError(f"计划中没有这项任务：任务编号含有字符 {found.code} (no such task)")
    plan = active_plan(session)
    task = session.scalars(
        select(Task).where(Task.plan_id == plan.id, Task.number == number, Task.removed_at.is_(None))).first()
    if task is None:
        raise OfficeError(f"计划中没有第 {number} 项任务 (no task {number})")
    if task.assignment is None:
        raise OfficeError(f"任务 {number} 尚未分工 (task {number} is unassigned)")
    return task, task.assignment


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back


def mark_done(session: Session, task_number: str, by: str, note: str, today: date) -> ProgressReport:
    """办结: a report with status done in the lead unit's name, source "office"; the task stops being reminded."""
    task, assignment = _task(session, task_number)
    if problem := refusal(note):
        raise OfficeError(f"办结说明{problem}")
    text = note.strip() or "已办结"
    report = ProgressReport(
        task_id=task.id, unit_id=assignment.lead_unit_id, cycle=cycle_of(today), reported_on=today, percent=100,
        done=True, note=f"{text}（{by} 办结）", created_at=datetime.now(UTC), status="done", problems="",
        next_steps="", source="office",
    )
    session.add(report)
    session.flush()
    return report


def _latest_lead_reports(session: Session) -> list[tuple[ProgressReport, Task, Assignment]]:
    plan = active_plan(session)
    rows = session.execute(
        select(ProgressReport, Task, Assignment).join(Task, Task.id == ProgressReport.task_id)
        .join(Assignment, (Assignment.task_id == Task.id) & (Assignment.lead_unit_id == ProgressReport.unit_id))
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None), not_superseded())
        .order_by(Task.position, ProgressReport.reported_on.desc(), ProgressReport.created_at.desc(),
                  ProgressReport.id.desc())
    ).all()
    latest, seen = [], set()
    for report, task, assignment in rows:
        if task.id not in seen:
            seen.add(task.id)
            latest.append((report, task, assignment))
    return latest


def _latest_lead_report(session: Session, assignment: Assignment) -> ProgressReport | None:
    """The lead unit's latest report on the task: the only one whose extension request can still be decided."""
    return session.scalars(
        select(ProgressReport).where(ProgressReport.task_id == assignment.task_id,
                                     ProgressReport.unit_id == assignment.lead_unit_id, not_superseded())
        .order_by(ProgressReport.reported_on.desc(), ProgressReport.created_at.desc(), ProgressReport.id.desc())
        .limit(1)).first()


def _superseded(report: ProgressReport, latest: ProgressReport | None) -> OfficeError:
    if latest is None or report.unit_id != latest.unit_id:
        return OfficeError(f"延期申请 {report.id} 不是该任务牵头单位提出的，不能审批 (request {report.id} is not the "
                           "lead unit's)")
    return OfficeError(
        f"延期申请 {report.id} 已被{latest.unit.name}{zh_date(latest.reported_on)}的报送（编号 {latest.id}）取代，"
        f"不能再审批；请刷新后审批最新的申请 (request {report.id} was superseded by report {latest.id}: only a "
        "task's latest request can be decided)")


def pending_extensions(session: Session) -> list[Extension]:
    """Each task whose lead unit's latest report asks for an extension the office has not decided, in plan order."""
    decided = set(session.scalars(select(DeadlineChange.report_id).where(DeadlineChange.report_id.is_not(None))))
    found = []
    for report, task, assignment in _latest_lead_reports(session):
        if report.status == "extension" and report.id not in decided and report.requested_deadline is not None:
            found.append(Extension(report.id, task.number, task.title, report.unit.name, assignment.deadline,
                                   report.requested_deadline, report.request_reason or "", report.reported_on,
                                   _aware(report.created_at)))
    return found


def decide_extension(session: Session, report_id: int, approve: bool, by: str, reason: str,
                     now: datetime) -> DeadlineChange:
    """Approve (the deadline moves; the old one stays in deadline_changes) or refuse an extension request, once."""
    if problem := refusal(reason):
        raise OfficeError(f"审核意见{problem}")
    report = session.get(ProgressReport, report_id)
    if report is None or report.status != "extension" or report.requested_deadline is None:
        raise OfficeError(f"报送 {report_id} 不是延期申请 (report {report_id} is not an extension request)")
    if session.scalar(select(DeadlineChange.id).where(DeadlineChange.report_id == report_id)) is not None:
        raise OfficeError(f"延期申请 {report_id} 已处理过 (the request was decided already)")
    assignment = session.scalars(
        select(Assignment).where(Assignment.task_id == report.task_id).with_for_update()).first()
    if assignment is None:
        raise OfficeError("任务已无分工 (the task is no longer assigned)")
    latest = _latest_lead_report(session, assignment)
    if latest is None or latest.id != report.id:
        raise _superseded(report, latest)
    new = report.requested_deadline
    change = DeadlineChange(
        assignment_id=assignment.id, old_deadline=assignment.deadline, new_deadline=new, reason=reason.strip(),
        report_id=report.id, decision="approved" if approve else "refused", decided_by=by, decided_at=now,
    )
    if approve:
        assignment.deadline = new
        assignment.deadline_kind = "date"
        assignment.deadline_text = f"延期至{new.year}年{new.month}月{new.day}日"
    session.add(change)
    session.flush()
    return change


def task_history(session: Session, task_number: str) -> list[HistoryReport | HistoryChange | HistoryStep]:
    """Every report on the task (every unit, superseded ones too), every deadline decision and every ladder step
    taken on it, newest first."""
    task, assignment = _task(session, task_number)
    items: list[HistoryReport | HistoryChange | HistoryStep] = []
    for r, unit in session.execute(
        select(ProgressReport, Unit.name).join(Unit, Unit.id == ProgressReport.unit_id)
        .where(ProgressReport.task_id == task.id)
    ):
        items.append(HistoryReport(_aware(r.created_at), r.id, unit, r.cycle, r.reported_on, r.status, r.percent,
                                   r.note, r.problems, r.next_steps, r.requested_deadline, r.request_reason,
                                   r.source))
    for c in session.scalars(select(DeadlineChange).where(DeadlineChange.assignment_id == assignment.id)):
        items.append(HistoryChange(_aware(c.decided_at), c.old_deadline, c.new_deadline, c.decision, c.decided_by,
                                   c.reason, c.report_id))
    for step, unit in session.execute(
        select(LadderStep, Unit.name).join(Unit, Unit.id == LadderStep.unit_id).where(LadderStep.task_id == task.id)
    ):
        items.append(HistoryStep(_aware(step.created_at), step.day, step.cycle, unit, step.rung,
                                 RUNG_LABELS["zh_CN"].get(step.rung, str(step.rung)), step.number, step.reason))
    return sorted(items, key=lambda item: (item.at, getattr(item, "report_id", 0) or 0), reverse=True)


def not_reported(session: Session, config: Config, cycle: str, today: date) -> list[tuple[str, tuple[str, ...]]]:
    """(unit, task numbers): the units a chase would go to now, each with its lead tasks not reported in the cycle,
    in the order of the unit directory."""
    status = load_status(session, active_plan(session), day_in_cycle(cycle, today), config.schedule.due_soon_days,
                         config.ladder.lag_points)
    waiting = awaiting_report(status)
    return [(str(waiting[unit_id][0].lead_unit), tuple(line.number for line in waiting[unit_id]))
            for unit_id in sorted(waiting)]
