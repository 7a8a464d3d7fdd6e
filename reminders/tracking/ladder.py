"""Who stands where on the 督办 ladder in a cycle (DOMAIN.md §5–§8): plain rules over the database, read by the
督办通知 drafts (mail.escalation), by `reminders ladder` and by the tests.

A unit is at rung 2 (督办通知) when one of its lead tasks, not done, either has no report of the unit's own in
each of the last `[ladder] missed_cycles` complete cycles of the plan year before this one, or is overdue by more
than `[ladder] overdue_days` calendar days on the day. A missed cycle counts only when the unit was asked in it
(a reminder or chase to it is recorded in the outbox) and the task had begun (its 开始日期): a 督办 follows a
催办 that failed (DOMAIN.md §6), so a plan imported in June brings no notice for an April nobody was asked about.

It is at rung 3 (通报) when it was at rung 2 in each of the last `[ladder] bulletin_cycles` cycles, this one
included. Otherwise a unit is at rung 1 (催办) once a chase to it is recorded in the cycle: its tasks are the
chase's steps where recorded, else its lead tasks still awaiting the month's report on the day.

A notice's number counts the plan year's notices: the distinct numbers recorded in earlier cycles, then this
cycle's notices in unit-id order, so two senders building a cycle agree on its numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.store.models import Assignment, LadderStep, OutboxMessage, ProgressReport, Task, Unit
from reminders.store.plans import active_plan
from reminders.tracking.cycles import parse_cycle
from reminders.tracking.status import (
    LoadedPlan,
    PlannedTask,
    PlanStatus,
    awaiting_report,
    load_plan,
    load_status,
    not_superseded,
)
from reminders.tracking.steps import Step
from reminders.vocabulary import RUNG_BULLETIN, RUNG_CHASE, RUNG_NOTICE, SETTLED, TaskState

_KIND_OF_RUNG = {RUNG_CHASE: "chase", RUNG_NOTICE: "escalation", RUNG_BULLETIN: "escalation"}


@dataclass(frozen=True)
class Cause:
    """A lead task that puts its unit on a rung, and why."""

    task_id: int
    number: str
    title: str
    deadline: date | None
    deadline_text: str
    state: TaskState
    leader: str | None  # 责任领导
    days_overdue: int  # > 0 when overdue past `[ladder] overdue_days`, else 0
    missed: tuple[str, ...]  # the complete cycles without the unit's own report (rule a), oldest first
    reason: str


@dataclass(frozen=True)
class Standing:
    unit_id: int
    unit: str
    rung: int  # vocabulary.RUNG_*
    causes: tuple[Cause, ...]
    number: str | None = None  # the 督办通知's 文号 (rung 2 and 3): as recorded, else as it would be numbered
    recorded: bool = False  # the notice's steps are recorded (it went into the outbox)
    message_state: str | None = None  # the outbox state of the message that carries the rung, if recorded


def earlier_cycles(cycle: str, count: int, year: int | None) -> list[str]:
    """The `count` cycles before `cycle`, oldest first, keeping to the plan's year (fewer early in the year)."""
    y, m = parse_cycle(cycle)
    found: list[str] = []
    for _ in range(count):
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        if year is not None and y != year:
            break
        found.append(f"{y:04d}-{m:02d}")
    return found[::-1]


def cycle_bounds(cycle: str) -> tuple[date, date]:
    y, m = parse_cycle(cycle)
    last = date(y + (m == 12), m % 12 + 1, 1)
    return date(y, m, 1), date.fromordinal(last.toordinal() - 1)


def lead_reports(session: Session, plan_id: int, cycles: Iterable[str], day: date | None = None
                 ) -> dict[tuple[int, str], date]:
    """(task id, cycle) -> the earliest day its lead unit reported in that cycle (reports that still count)."""
    wanted = list(cycles)
    if not wanted:
        return {}
    query = (select(ProgressReport.task_id, ProgressReport.cycle, func.min(ProgressReport.reported_on))
             .join(Task, Task.id == ProgressReport.task_id)
             .join(Assignment, (Assignment.task_id == ProgressReport.task_id)
                   & (Assignment.lead_unit_id == ProgressReport.unit_id))
             .where(Task.plan_id == plan_id, ProgressReport.cycle.in_(wanted), not_superseded())
             .group_by(ProgressReport.task_id, ProgressReport.cycle))
    if day is not None:
        query = query.where(ProgressReport.reported_on <= day)
    return {(task_id, cycle): first for task_id, cycle, first in session.execute(query)}


def asked_units(session: Session, cycles: Sequence[str], kinds: tuple[str, ...] = ("reminder", "chase")
                ) -> set[tuple[int, str]]:
    """(unit id, cycle): the units a reminder or a chase (`kinds`) was recorded for in each of the cycles."""
    found: set[tuple[int, str]] = set()
    for key, cycle in session.execute(select(OutboxMessage.recipient_key, OutboxMessage.cycle).where(
            OutboxMessage.kind.in_(kinds), OutboxMessage.cycle.in_(list(cycles)),
            OutboxMessage.recipient_key.like("unit:%"))):
        unit_id = key.partition(":")[2]
        if unit_id.isdigit():
            found.add((int(unit_id), cycle))
    return found


def counts_in(task: PlannedTask, cycle: str) -> bool:
    """Whether a report could be asked of the task in the cycle: not before its 开始日期 (what the database knows of
    when a task began; a task has no record of when it was assigned)."""
    return task.start is None or task.start <= cycle_bounds(cycle)[1]


def notice_causes(session: Session, config: Config, status: PlanStatus, loaded: LoadedPlan, cycle: str
                  ) -> dict[int, list[Cause]]:
    """Lead unit id -> the causes that bring it a 督办通知 in the cycle on `status.as_of`, in plan order."""
    ladder = config.ladder
    lines = {line.number: line for line in status.lines}
    missed_window = earlier_cycles(cycle, ladder.missed_cycles, status.plan.year)
    complete = len(missed_window) == ladder.missed_cycles
    reported = lead_reports(session, status.plan.id, missed_window, status.as_of) if complete else {}
    asked = asked_units(session, missed_window) if complete else set()
    found: dict[int, list[Cause]] = {}
    for task in loaded.tasks:
        line = lines.get(task.number)
        if line is None or task.lead_unit_id is None or line.state in SETTLED:
            continue
        overdue = -line.days_left if line.days_left is not None and line.days_left < 0 else 0
        overdue = overdue if overdue > ladder.overdue_days else 0
        missed: tuple[str, ...] = ()
        if complete and all((task.lead_unit_id, c) in asked and counts_in(task, c) and (task.id, c) not in reported
                            for c in missed_window):
            missed = tuple(missed_window)
        if not overdue and not missed:
            continue
        reasons = ([f"逾期 {overdue} 天 (overdue {overdue} days)"] if overdue else []) + (
            [f"连续 {len(missed)} 个月未报送进展 (no progress report for {len(missed)} months)"] if missed else [])
        found.setdefault(task.lead_unit_id, []).append(Cause(
            task.id, task.number, task.title, line.deadline, line.deadline_text, line.state, line.leader, overdue,
            missed, "；".join(reasons)))
    return found


def chase_causes(session: Session, status: PlanStatus, loaded: LoadedPlan, cycle: str) -> dict[int, list[Cause]]:
    """Unit id -> the tasks of the chase recorded to it in the cycle (rung 1, 催办): the chase's steps where
    recorded, else its lead tasks still awaiting the month's report on `status.as_of`."""
    chased = {unit_id for unit_id, c in asked_units(session, [cycle], ("chase",)) if c == cycle}
    if not chased:
        return {}
    by_id = {task.id: task for task in loaded.tasks}
    lines = {line.number: line for line in status.lines}
    stepped: dict[int, list[tuple[int, str]]] = {}
    for unit_id, task_id, reason in session.execute(
            select(LadderStep.unit_id, LadderStep.task_id, LadderStep.reason)
            .where(LadderStep.rung == RUNG_CHASE, LadderStep.cycle == cycle).order_by(LadderStep.id)):
        if task_id in by_id:
            stepped.setdefault(unit_id, []).append((task_id, reason))
    ids = {task.number: task.id for task in loaded.tasks}
    waiting = {unit_id: [(ids[line.number], CHASE_REASON) for line in found if line.number in ids]
               for unit_id, found in awaiting_report(status).items()}
    causes: dict[int, list[Cause]] = {}
    for unit_id in sorted(chased):
        for task_id, reason in stepped.get(unit_id) or waiting.get(unit_id, []):
            task = by_id[task_id]
            line = lines.get(task.number)
            causes.setdefault(unit_id, []).append(Cause(
                task.id, task.number, task.title, task.deadline, task.deadline_text,
                line.state if line else TaskState.ON_TRACK, task.leader, 0, (), reason))
    return causes


CHASE_REASON = "本月未报送进展 (no progress report this month)"


def notice_numbers(session: Session, config: Config, cycle: str, year: int | None, unit_ids: Sequence[int]
                   ) -> dict[int, str]:
    """Each notice unit's 文号: as recorded for the cycle, else the year's earlier notices + its position."""
    y = year if year is not None else parse_cycle(cycle)[0]
    recorded = dict(session.execute(
        select(LadderStep.unit_id, func.max(LadderStep.number))
        .where(LadderStep.rung == RUNG_NOTICE, LadderStep.cycle == cycle, LadderStep.number.is_not(None))
        .group_by(LadderStep.unit_id)).all())
    earlier = session.scalar(
        select(func.count(func.distinct(LadderStep.number)))
        .where(LadderStep.rung == RUNG_NOTICE, LadderStep.cycle < cycle, LadderStep.cycle >= f"{y:04d}-01",
               LadderStep.number.is_not(None))) or 0
    return {unit_id: recorded.get(unit_id) or f"{config.ladder.notice_prefix}〔{y}〕{earlier + position}号"
            for position, unit_id in enumerate(sorted(unit_ids), start=1)}


def noticed_units(session: Session, cycles: Iterable[str]) -> dict[str, set[int]]:
    """Cycle -> the units whose 督办通知 steps are recorded in it."""
    found: dict[str, set[int]] = {}
    for cycle, unit_id in session.execute(select(LadderStep.cycle, LadderStep.unit_id).where(
            LadderStep.rung == RUNG_NOTICE, LadderStep.cycle.in_(list(cycles))).distinct()):
        found.setdefault(cycle, set()).add(unit_id)
    return found


def standings_of(session: Session, config: Config, status: PlanStatus, cycle: str,
                 loaded: LoadedPlan | None = None) -> list[Standing]:
    """Every unit on a rung in the cycle, judged on `status.as_of`: the highest rung first, then by unit id.
    `loaded`: the plan's tasks, where the caller read them already."""
    loaded = loaded or load_plan(session, status.plan)
    notices = notice_causes(session, config, status, loaded, cycle)
    chases = chase_causes(session, status, loaded, cycle)
    numbers = notice_numbers(session, config, cycle, status.plan.year, list(notices))
    before = earlier_cycles(cycle, config.ladder.bulletin_cycles - 1, status.plan.year)
    noticed = noticed_units(session, [*before, cycle])
    running = len(before) == config.ladder.bulletin_cycles - 1
    names = dict(session.execute(select(Unit.id, Unit.name)).all())
    states = {(kind, key): state for kind, key, state in session.execute(
        select(OutboxMessage.kind, OutboxMessage.recipient_key, OutboxMessage.state)
        .where(OutboxMessage.cycle == cycle))}
    result: list[Standing] = []
    for unit_id in sorted(set(notices) | set(chases)):
        if unit_id in notices:
            rung = RUNG_BULLETIN if running and all(unit_id in noticed.get(c, set()) for c in before) \
                else RUNG_NOTICE
            causes = notices[unit_id]
        else:
            rung, causes = RUNG_CHASE, chases[unit_id]
        result.append(Standing(
            unit_id, names.get(unit_id, str(unit_id)), rung, tuple(causes), numbers.get(unit_id),
            unit_id in noticed.get(cycle, set()), states.get((_KIND_OF_RUNG[rung], f"unit:{unit_id}"))))
    result.sort(key=lambda standing: (-standing.rung, standing.unit_id))
    return result


def standings(session: Session, config: Config, cycle: str, day: date) -> list[Standing]:
    """Who stands where in the cycle on `day` (a notice is judged on the reminders' fire day: mail.compose)."""
    status = load_status(session, active_plan(session), day, config.schedule.due_soon_days, config.ladder.lag_points)
    return standings_of(session, config, status, cycle)


def notice_steps(standing: Standing, cycle: str, day: date) -> tuple[Step, ...]:
    """The rung-2 steps a unit's 督办通知 takes, one per task."""
    return tuple(Step(f"escalation:{cycle}:unit:{standing.unit_id}:task:{cause.task_id}", standing.unit_id,
                      cause.task_id, RUNG_NOTICE, cycle, day, cause.reason, standing.number)
                 for cause in standing.causes)

