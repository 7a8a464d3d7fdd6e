"""A unit's report form (reached through its signed link) and what a submission records: one progress report per
answered task, source "web" (the web app then queues the receipt, 回执). History is kept: a second submission in
the same cycle supersedes the first for the task's status, and both stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.errors import ReminderError
from reminders.store.models import ProgressReport, Task, Unit
from reminders.store.plans import active_plan
from reminders.tracking.cycles import parse_cycle, report_by
from reminders.tracking.status import Progress, TaskLine, load_status
from reminders.vocabulary import REPORT_STATUS_LABELS, REPORT_STATUSES, SETTLED

MAX_TEXT = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and line feed are allowed; CRLF is made LF first
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
class FormTask:
    line: TaskLine  # role "lead" or "co"
    co_inputs: tuple[CoInput, ...]  # the cycle's latest report of each co-unit, shown to the lead unit
    own: Progress | None = None  # this unit's latest report on the task in the cycle (to fill the form again)


@dataclass(frozen=True)
class UnitForm:
    unit_id: int
    unit: str
    cycle: str
    report_by: date
    tasks: tuple[FormTask, ...]  # lead tasks first, then co tasks, each in plan order; done tasks left out


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


def unit_form(session: Session, config: Config, unit_id: int, cycle: str, today: date) -> UnitForm:
    parse_cycle(cycle)
    unit = _unit(session, unit_id)
    plan = active_plan(session)
    status = load_status(session, plan, today, config.schedule.due_soon_days)
    reports = _cycle_reports(session, plan.id, cycle)
    lead, co = [], []
    for line in status.lines:
        if line.state in SETTLED:
            continue
        own = reports.get((line.number, unit_id))
        if status.lead_unit_ids[line.number] == unit_id:
            inputs = tuple(CoInput(reports[(line.number, u)].unit, reports[(line.number, u)])
                           for u in status.co_unit_ids[line.number] if (line.number, u) in reports)
            lead.append(FormTask(replace(line, role="lead"), inputs, own))
        elif unit_id in status.co_unit_ids[line.number]:
            co.append(FormTask(replace(line, role="co"), (), own))
    return UnitForm(unit_id, unit.name, cycle, report_by(config, cycle), tuple(lead + co))


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
        elif _CONTROL.search(text):
            errors[f"{key}.{name}"] = f"{FIELD_NAMES[name]}含有非法字符 (control characters)"
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
    extension = answer.status == "extension"
    cleaned = replace(answer, note=texts["note"], problems=texts["problems"], next_steps=texts["next_steps"],
                      reason=texts["reason"] if extension else "",
                      new_deadline=answer.new_deadline if extension else None)
    return errors, cleaned


def submit(session: Session, config: Config, unit_id: int, cycle: str, answers: Sequence[Answer],
           today: date) -> list[int]:
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
    return _record(session, unit_id, cycle, accepted, today)


def _record(session: Session, unit_id: int, cycle: str, accepted: list[tuple[FormTask, Answer]],
            today: date) -> list[int]:
    plan = active_plan(session)
    task_ids = dict(session.execute(select(Task.number, Task.id).where(
        Task.plan_id == plan.id, Task.removed_at.is_(None), Task.number.in_([a.task for _, a in accepted]))).all())
    now = datetime.now(UTC)
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
