"""A unit's report form (reached through its signed link) and what a submission records: one progress report per
answered task, source "web" (the web app then queues the receipt, 回执). History is kept: a second submission in
the same cycle supersedes the first for the task's status, and both stay.

Three rules keep the data true. A reopened form carries every field of the unit's latest report of the month, so a
correction starts from what was sent. An extension request the office has not decided stays asked for: a new
report on the task must ask again (the form fills it in) or withdraw it explicitly (`Answer.withdraw`). A link of a
past month used after the month turned records under the current month, the one the unit is reminded and chased
for (`form_cycle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.errors import ReminderError
from reminders.store.models import Assignment, DeadlineChange, ProgressReport, Task, Unit
from reminders.store.plans import active_plan
from reminders.text import refusal
from reminders.tracking.cycles import cycle_of, parse_cycle, report_by
from reminders.tracking.status import Progress, TaskLine, load_status, not_superseded
from reminders.vocabulary import REPORT_STATUS_LABELS, REPORT_STATUSES, SETTLED, zh_date

MAX_TEXT = 2000
FIELD_NAMES = {"note": "进展情况", "problems": "存在问题及需协调事项", "next_steps": "下一步措施", "reason": "延期理由"}


class FormError(ReminderError):
    """Everything wrong with a submission, keyed "<task>.<field>" ("_form" for the form as a whole)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("；".join(f"{key}: {message}" for key, message in errors.items()))


@dataclass(frozen=True)
class CoInput:
    unit: str
    progress: Progress


@dataclass(frozen=True)
class OwnReport:
    """Every field of this unit's latest report on a task in the cycle, to fill the form again."""

    report_id: int
    at: datetime
    note: str
    percent: int | None
    status: str
    problems: str
    next_steps: str
    requested_deadline: date | None
    reason: str


@dataclass(frozen=True)
class PendingRequest:
    """An extension the lead unit asked for in its latest report on the task, not decided by the office yet."""

    report_id: int
    at: datetime
    requested_deadline: date
    reason: str


@dataclass(frozen=True)
class FormTask:
    line: TaskLine  # role "lead" or "co"
    co_inputs: tuple[CoInput, ...]  # the cycle's latest report of each co-unit, shown to the lead unit
    own: OwnReport | None = None  # this unit's latest report on the task in the cycle (to fill the form again)
    pending: PendingRequest | None = None  # lead tasks only


@dataclass(frozen=True)
class UnitForm:
    unit_id: int
    unit: str
    cycle: str  # the month a submission is recorded under (form_cycle)
    report_by: date
    tasks: tuple[FormTask, ...]  # lead tasks first, then co tasks, each in plan order; done tasks left out
    link_cycle: str = ""  # the month the link was made for, when it differs from `cycle`

    @property
    def submitted_at(self) -> datetime | None:
        """When this unit last submitted in the cycle."""
        return max((task.own.at for task in self.tasks if task.own is not None), default=None)


@dataclass(frozen=True)
class Answer:
    task: str  # the task number
    note: str  # 进展情况
    percent: int | None
    status: str  # one of vocabulary.REPORT_STATUSES, checked on submission
    problems: str = ""
    next_steps: str = ""
    new_deadline: date | None = None  # with status "extension"
    reason: str = ""  # with status "extension"
    withdraw: bool = False  # withdraw the task's pending extension request


def _unit(session: Session, unit_id: int) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise FormError({"_form": f"单位 {unit_id} 不存在 (unknown unit)"})
    return unit


def _cycle_reports(session: Session, plan_id: int, cycle: str) -> dict[tuple[str, int], Progress]:
    """The latest report of the cycle per (task number, unit)."""
    rows = session.execute(
        select(Task.number, ProgressReport.unit_id, Unit.name, ProgressReport.reported_on, ProgressReport.percent,
               ProgressReport.done, ProgressReport.note)
        .join(Task, Task.id == ProgressReport.task_id).join(Unit, Unit.id == ProgressReport.unit_id)
        .where(Task.plan_id == plan_id, ProgressReport.cycle == cycle)
        .order_by(ProgressReport.reported_on, ProgressReport.created_at, ProgressReport.id)
    )
    return {(number, unit_id): Progress(on, name, percent, done, note)
            for number, unit_id, name, on, percent, done, note in rows}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back


def _own_reports(session: Session, plan_id: int, unit_id: int, cycle: str) -> dict[str, OwnReport]:
    """The unit's latest report of the cycle per task number, every field."""
    rows = session.execute(
        select(Task.number, ProgressReport).join(Task, Task.id == ProgressReport.task_id)
        .where(Task.plan_id == plan_id, ProgressReport.unit_id == unit_id, ProgressReport.cycle == cycle,
               not_superseded())
        .order_by(ProgressReport.reported_on, ProgressReport.created_at, ProgressReport.id)
    )
    return {number: OwnReport(r.id, _aware(r.created_at), r.note, r.percent, r.status, r.problems, r.next_steps,
                              r.requested_deadline, r.request_reason or "") for number, r in rows}


def pending_requests(session: Session, plan_id: int, unit_id: int) -> dict[str, PendingRequest]:
    """Per task number this unit leads: the undecided extension its latest report (of any month) asks for."""
    rows = session.execute(
        select(Task.number, ProgressReport).join(Task, Task.id == ProgressReport.task_id)
        .join(Assignment, (Assignment.task_id == Task.id) & (Assignment.lead_unit_id == ProgressReport.unit_id))
        .where(Task.plan_id == plan_id, ProgressReport.unit_id == unit_id, not_superseded())
        .order_by(ProgressReport.reported_on, ProgressReport.created_at, ProgressReport.id)
    )
    latest = {number: report for number, report in rows}
    asked = [r.id for r in latest.values() if r.status == "extension" and r.requested_deadline is not None]
    decided = set(session.scalars(select(DeadlineChange.report_id).where(DeadlineChange.report_id.in_(asked))))
    return {number: PendingRequest(r.id, _aware(r.created_at), r.requested_deadline, r.request_reason or "")
            for number, r in latest.items()
            if r.id in asked and r.id not in decided and r.requested_deadline is not None}


def form_cycle(link_cycle: str, today: date) -> str:
    """The month a submission through a link of `link_cycle` is recorded under: the link's month, or the current
    one once the month has turned (the month the unit is reminded and chased for)."""
    parse_cycle(link_cycle)
    return max(link_cycle, cycle_of(today))


def unit_form(session: Session, config: Config, unit_id: int, cycle: str, today: date) -> UnitForm:
    """The form reached through a link of `cycle`, for the month `form_cycle` gives."""
    link_cycle, cycle = cycle, form_cycle(cycle, today)
    unit = _unit(session, unit_id)
    plan = active_plan(session)
    status = load_status(session, plan, today, config.schedule.due_soon_days, config.ladder.lag_points)
    reports = _cycle_reports(session, plan.id, cycle)
    own = _own_reports(session, plan.id, unit_id, cycle)
    pending = pending_requests(session, plan.id, unit_id)
    lead, co = [], []
    for line in status.lines:
        if line.state in SETTLED:
            continue
        if status.lead_unit_ids[line.number] == unit_id:
            inputs = tuple(CoInput(reports[(line.number, u)].unit, reports[(line.number, u)])
                           for u in status.co_unit_ids[line.number] if (line.number, u) in reports)
            lead.append(FormTask(replace(line, role="lead"), inputs, own.get(line.number), pending.get(line.number)))
        elif unit_id in status.co_unit_ids[line.number]:
            co.append(FormTask(replace(line, role="co"), (), own.get(line.number)))
    return UnitForm(unit_id, unit.name, cycle, report_by(config, cycle), tuple(lead + co),
                    link_cycle if link_cycle != cycle else "")


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _check(answer: Answer, task: FormTask, today: date) -> tuple[dict[str, str], Answer | None]:
    """The answer's errors, and the answer cleaned (None when a co task was left empty)."""
    key, errors = answer.task, {}
    texts = {name: _clean(getattr(answer, name)) for name in ("note", "problems", "next_steps", "reason")}
    lead = task.line.role == "lead"
    empty = not any(texts.values()) and answer.percent is None and answer.status == "progress"
    if empty and not lead:
        return {}, None
    for name, text in texts.items():
        if len(text) > MAX_TEXT:
            errors[f"{key}.{name}"] = f"{FIELD_NAMES[name]}不能超过 {MAX_TEXT} 字 (at most {MAX_TEXT} characters)"
        elif problem := refusal(getattr(answer, name)):  # as typed, so the position is the unit's
            errors[f"{key}.{name}"] = f"{FIELD_NAMES[name]}{problem}"
    if lead and not texts["note"]:
        errors[f"{key}.note"] = "牵头任务必须填写进展情况 (progress is required for a lead task)"
    if answer.percent is not None and not 0 <= answer.percent <= 100:
        errors[f"{key}.percent"] = "完成百分比应在 0–100 之间 (percent must be 0–100)"
    if answer.status not in REPORT_STATUSES:
        errors[f"{key}.status"] = f"状态应为 {' / '.join(REPORT_STATUS_LABELS['zh_CN'].values())} (unknown status)"
    elif answer.status == "extension":
        current = task.line.deadline
        if not lead:
            errors[f"{key}.status"] = "延期申请由牵头单位提出 (only the lead unit requests an extension)"
        elif answer.new_deadline is None:
            errors[f"{key}.new_deadline"] = "请填写申请延期后的完成时限 (the new deadline is required)"
        elif answer.new_deadline <= (current or today):
            after = f"现完成时限{current.isoformat()}" if current else "今天"
            errors[f"{key}.new_deadline"] = f"新的完成时限应晚于{after} (the new deadline must be later)"
        if lead and not texts["reason"]:
            errors[f"{key}.reason"] = "请填写延期理由 (a reason is required)"
    if lead and task.pending is not None and answer.status in REPORT_STATUSES:
        errors |= _check_withdrawal(answer, task.pending)
    extension = answer.status == "extension"
    cleaned = replace(answer, withdraw=answer.withdraw and task.pending is not None,
                      note=texts["note"], problems=texts["problems"], next_steps=texts["next_steps"],
                      reason=texts["reason"] if extension else "",
                      new_deadline=answer.new_deadline if extension else None)
    return errors, cleaned


def _check_withdrawal(answer: Answer, pending: PendingRequest) -> dict[str, str]:
    """A pending extension is dropped only when the unit says so: a new report asks again or withdraws it."""
    key = f"{answer.task}.status"
    if answer.withdraw and answer.status == "extension":
        return {key: "撤回延期申请时，状态不能再选“申请延期” (to withdraw the extension request, choose another "
                     "status)"}
    if not answer.withdraw and answer.status != "extension":
        asked = zh_date(pending.requested_deadline)
        return {key: f"延期申请（延至{asked}）尚待督查室审批：如仍需延期，请保持状态“申请延期”；如要撤回，请勾选"
                     f"“撤回延期申请” (an extension request to {pending.requested_deadline.isoformat()} is pending: "
                     "keep the status 申请延期, or tick 撤回延期申请 to withdraw it)"}
    return {}


def submit(session: Session, config: Config, unit_id: int, cycle: str, answers: Sequence[Answer],
           today: date, now: datetime | None = None) -> list[int]:
    """Validate every answer, then record one report per answered task; returns the reports' ids (for the 回执).

    Nothing is recorded when anything is wrong: FormError lists every problem at once.
    """
    form = unit_form(session, config, unit_id, cycle, today)
    tasks = {task.line.number: task for task in form.tasks}
    errors: dict[str, str] = {}
    accepted: list[tuple[FormTask, Answer]] = []
    seen: set[str] = set()
    for answer in answers:
        task = tasks.get(answer.task)
        if task is None:
            errors[f"{answer.task}.task"] = f"任务 {answer.task} 不是本单位待报送的任务 (not this unit's task)"
            continue
        if answer.task in seen:
            errors[f"{answer.task}.task"] = f"任务 {answer.task} 重复填报 (answered twice)"
            continue
        seen.add(answer.task)
        problems, cleaned = _check(answer, task, today)
        errors |= problems
        if cleaned is not None:
            accepted.append((task, cleaned))
    for number, task in tasks.items():
        if task.line.role == "lead" and number not in seen:
            errors[f"{number}.note"] = "牵头任务必须填写进展情况 (progress is required for a lead task)"
    if not errors and not accepted:
        errors["_form"] = "没有填写任何任务的进展 (nothing to report)"
    if errors:
        raise FormError(errors)
    return _record(session, unit_id, form.cycle, accepted, today, now or datetime.now(UTC))


def _record(session: Session, unit_id: int, cycle: str, accepted: list[tuple[FormTask, Answer]],
            today: date, now: datetime) -> list[int]:
    plan = active_plan(session)
    task_ids = dict(session.execute(select(Task.number, Task.id).where(
        Task.plan_id == plan.id, Task.removed_at.is_(None), Task.number.in_([a.task for _, a in accepted]))).all())
    reports = [ProgressReport(
        task_id=task_ids[answer.task], unit_id=unit_id, cycle=cycle, reported_on=today,
        percent=100 if answer.status == "done" and answer.percent is None else answer.percent,
        done=answer.status == "done", note=answer.note, created_at=now, status=answer.status,
        problems=answer.problems, next_steps=answer.next_steps, requested_deadline=answer.new_deadline,
        request_reason=answer.reason or None, source="web",
    ) for _, answer in accepted]
    session.add_all(reports)
    session.flush()
    return [report.id for report in reports]
