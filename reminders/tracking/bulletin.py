"""The ladder's first and last rungs as records: the 催办 steps a chase takes, and the 通报 of a cycle.

The 通报 (rung 3) names (批评) the units that got a 督办通知 in each of the last `[ladder] bulletin_cycles` cycles,
this one included, and praises (表扬) the units that reported on time (by the cycle's report day) on all their lead
tasks in every complete cycle of the plan year so far. Its day is the digest's: it reads the 督办通知 steps recorded
(the notices go out with the reminders, before the digests); given `day`, this cycle's notices are also those the
rules put on that day, so a digest built in the same run as the notices agrees with them, and this cycle counts as
complete for praise once its report day has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.store.models import ProgressReport, Unit
from reminders.store.plans import active_plan
from reminders.tracking.cycles import parse_cycle, report_by
from reminders.tracking.ladder import (
    CHASE_REASON,
    counts_in,
    cycle_bounds,
    earlier_cycles,
    lead_reports,
    noticed_units,
    standings,
    standings_of,
)
from reminders.tracking.status import LoadedPlan, PlanStatus, TaskLine, load_plan, not_superseded
from reminders.tracking.steps import Step
from reminders.vocabulary import RUNG_BULLETIN, RUNG_CHASE, RUNG_NOTICE


@dataclass(frozen=True)
class Bulletin:
    criticised: tuple[tuple[str, str], ...]  # (unit name, why), in unit-id order
    praised: tuple[str, ...]  # unit names, in unit-id order
    steps: tuple[Step, ...]  # rung-3 steps, key f"bulletin:{cycle}:unit:{unit_id}"


def task_ids(status: PlanStatus) -> dict[str, int]:
    """Each current task's id by its number: made once per cycle and handed to `chase_steps`."""
    return {task.number: task.id for task in status.plan.tasks if task.removed_at is None}


def chase_steps(status: PlanStatus, ids: dict[str, int], unit_id: int, lines: Sequence[TaskLine], cycle: str
                ) -> tuple[Step, ...]:
    """The rung-1 (催办) steps of a chase to `unit_id` listing `lines`: one per task (`ids`: `task_ids(status)`)."""
    return tuple(Step(f"chase:{cycle}:unit:{unit_id}:task:{ids[line.number]}", unit_id, ids[line.number], RUNG_CHASE,
                      cycle, status.as_of, CHASE_REASON) for line in lines if line.number in ids)


def bulletin(session: Session, config: Config, cycle: str, day: date | None = None,
             status: PlanStatus | None = None, loaded: LoadedPlan | None = None) -> Bulletin:
    """The cycle's 通报: criticised and praised units, and the rung-3 steps that record the criticism.

    `status` (the plan on `day`) and `loaded` (its tasks), where the caller has them: a digest does, and reading
    100,000 tasks again would hold them twice."""
    plan = active_plan(session)
    count = config.ladder.bulletin_cycles
    before = earlier_cycles(cycle, count - 1, plan.year)
    noticed = noticed_units(session, [*before, cycle])
    now = set(noticed.get(cycle, set()))
    if day is not None:
        found = standings_of(session, config, status, cycle, loaded) if status is not None and status.as_of == day \
            else standings(session, config, cycle, day)
        now |= {s.unit_id for s in found if s.rung >= RUNG_NOTICE}
    names = dict(session.execute(select(Unit.id, Unit.name)).all())
    criticised: list[tuple[int, str]] = []
    if len(before) == count - 1:
        criticised = [(unit_id, names.get(unit_id, str(unit_id))) for unit_id in sorted(now)
                      if all(unit_id in noticed.get(c, set()) for c in before)]
    why = f"连续{count}个月被督办 (supervised {count} months running)"
    today = day or date.min
    steps = tuple(Step(f"bulletin:{cycle}:unit:{unit_id}", unit_id, None, RUNG_BULLETIN, cycle,
                       day or cycle_bounds(cycle)[0], why) for unit_id, _name in criticised)
    complete = earlier_cycles(cycle, parse_cycle(cycle)[1] - 1, plan.year)
    if day is not None and today > report_by(config, cycle):
        complete.append(cycle)
    praised = _on_time(session, config, complete, {unit_id for unit_id, _ in criticised}, loaded)
    return Bulletin(tuple((name, why) for _id, name in criticised),
                    tuple(names[u] for u in praised if u in names), steps)


def _on_time(session: Session, config: Config, cycles: list[str], excluded: set[int],
             loaded: LoadedPlan | None = None) -> list[int]:
    """The units that reported by the report day on every lead task asked of them in every one of `cycles`."""
    if not cycles:
        return []
    plan = active_plan(session)
    loaded = loaded or load_plan(session, plan)
    reported = lead_reports(session, plan.id, cycles)
    deadlines = {c: report_by(config, c) for c in cycles}
    done_on = _done_days(session, plan.id)
    asked: dict[int, int] = {}
    late: set[int] = set()
    for task in loaded.tasks:
        if task.lead_unit_id is None:
            continue
        for c in cycles:
            closed = done_on.get(task.id)
            if not counts_in(task, c) or (closed is not None and closed < cycle_bounds(c)[0]):
                continue  # not begun yet, or done before the cycle: nothing was asked
            asked[task.lead_unit_id] = asked.get(task.lead_unit_id, 0) + 1
            first = reported.get((task.id, c))
            if first is None or first > deadlines[c]:
                late.add(task.lead_unit_id)
    return sorted(u for u in asked if u not in late and u not in excluded)


def _done_days(session: Session, plan_id: int) -> dict[int, date]:
    """Task id -> the first day its lead unit reported it done (a report still counting)."""
    from reminders.store.models import Assignment, Task

    found: dict[int, date] = {}
    for task_id, on in session.execute(
            select(ProgressReport.task_id, ProgressReport.reported_on)
            .join(Task, Task.id == ProgressReport.task_id)
            .join(Assignment, (Assignment.task_id == ProgressReport.task_id)
                  & (Assignment.lead_unit_id == ProgressReport.unit_id))
            .where(Task.plan_id == plan_id, ProgressReport.done.is_(True), not_superseded())):
        found[task_id] = min(on, found.get(task_id, on))
    return found
