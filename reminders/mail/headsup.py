"""临期提醒 (heads-up): a short notice to a task's lead unit `[ladder] headsup_workdays` working days before its
deadline (default 5 and 1), once per task, deadline and milestone.

A milestone m is reached when the working days left (today not counted, the deadline counted) are m or fewer. Each
milestone sent is a ladder step (rung 0) keyed by task, deadline and milestone: a day that reaches nothing new sends
nothing, and a deadline moved by an approved extension starts over. A milestone missed (the daemon was down, the day
was a holiday) still goes out, but only the tightest one reached: a "5 working days" notice never arrives the day
before the deadline; the larger milestones are recorded as taken with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.mail.context import MailLine, Office, mail_line
from reminders.mail.draft import Draft, unit_link
from reminders.store.models import LadderStep, Task, Unit
from reminders.tracking.cycles import cycle_of
from reminders.tracking.status import PlanStatus, TaskLine
from reminders.tracking.steps import Step
from reminders.vocabulary import RUNG_HEADSUP, TaskState

_NO_HEADSUP = (TaskState.DONE, TaskState.ONGOING, TaskState.UNASSIGNED, TaskState.OVERDUE)


@dataclass(frozen=True)
class HeadsupLine(MailLine):
    """A task of the notice: its line, the working days left (0 on the deadline itself) and the milestone sent."""

    milestone: int = 0


@dataclass(frozen=True)
class HeadsupContext:
    unit: str
    contact: str
    cycle: str  # the day's month
    as_of: date  # the day the notice was computed for
    office: Office
    tasks: tuple[HeadsupLine, ...]  # the nearest deadline first
    report_url: str | None = None  # the unit's signed report link; None without a web secret
    address_form: str = "你单位"  # `[mail] address_form`: how the Chinese wording names the unit


def step_key(task_id: int, deadline: date, milestone: int) -> str:
    return f"headsup:task:{task_id}:{deadline.isoformat()}:{milestone}"


def reason(milestone: int) -> str:
    return f"距截止 {milestone} 个工作日 ({milestone} working day{'s' if milestone != 1 else ''} before the deadline)"


def headsup_drafts(session: Session, config: Config, status: PlanStatus, units: Sequence[Unit], cycle: str,
                   office: Office) -> Iterator[Draft]:
    """One notice per lead unit with a milestone newly reached on `status.as_of`; `cycle` is ignored: a notice
    belongs to its day's month."""
    day = status.as_of
    work = config.calendar.work_calendar
    milestones = sorted(set(config.ladder.headsup_workdays))
    if not milestones:
        return
    candidates = [line for line in status.lines if line.deadline is not None and line.state not in _NO_HEADSUP
                  and line.deadline >= day and line.number in status.lead_unit_ids]
    if not candidates:
        return
    # TaskLine has no id: the plan's live tasks by number, in one query.
    task_ids: dict[str, int] = {number: task_id for number, task_id in session.execute(
        select(Task.number, Task.id).where(Task.plan_id == status.plan.id, Task.removed_at.is_(None)))}
    wanted: dict[int, list[tuple[TaskLine, int, int, tuple[Step, ...]]]] = {}
    keyed: list[tuple[TaskLine, int, int, list[int]]] = []
    for line in candidates:
        assert line.deadline is not None
        left = work.workdays_between(day, line.deadline)
        reached = [m for m in milestones if left <= m]
        if reached and line.number in task_ids:
            keyed.append((line, task_ids[line.number], left, reached))
    keys = [step_key(task_id, line.deadline, m) for line, task_id, _left, reached in keyed for m in reached
            if line.deadline is not None]
    taken = set(session.scalars(select(LadderStep.step_key).where(LadderStep.step_key.in_(keys)))) if keys else set()
    this_cycle = cycle_of(day)
    for line, task_id, left, reached in keyed:
        assert line.deadline is not None
        tight = reached[0]
        if step_key(task_id, line.deadline, tight) in taken:
            continue
        unit_id = status.lead_unit_ids[line.number]
        steps = tuple(Step(step_key(task_id, line.deadline, m), unit_id, task_id, RUNG_HEADSUP, this_cycle, day,
                           reason(m)) for m in reached if step_key(task_id, line.deadline, m) not in taken)
        wanted.setdefault(unit_id, []).append((line, left, tight, steps))
    for unit in units:
        found = wanted.pop(unit.id, None)
        if not found:
            continue
        found.sort(key=lambda item: (item[1], item[0].deadline or day))
        tasks = tuple(_headsup_line(mail_line(line, work, day, "lead"), left, tight)
                      for line, left, tight, _steps in found)
        context = HeadsupContext(unit.name, unit.contact, this_cycle, day, office, tasks,
                                 unit_link(config, unit.id, this_cycle), config.mail.address_form)
        yield Draft("headsup", this_cycle, f"unit:{unit.id}:{day.isoformat()}", unit.name, tuple(unit.addresses),
                    context, steps=tuple(step for *_rest, steps in found for step in steps))


def _headsup_line(line: MailLine, left: int, milestone: int) -> HeadsupLine:
    values = {f.name: getattr(line, f.name) for f in fields(line) if f.name != "workdays_left"}
    return HeadsupLine(**values, workdays_left=left, milestone=milestone)
