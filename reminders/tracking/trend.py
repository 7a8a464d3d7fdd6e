"""The plan year's last cycles in figures: 完成率 and 按时报送率 per cycle, and each unit's share of them.

One query reads every progress report of the plan; each cycle's figures are then worked out in memory as
tracking.status and tracking.bulletin would on that cycle's day (its last day, or the given day for the current
cycle): a task is done when its lead unit's latest report that still counts (no amendment replaced it) up to that
day says so; a lead task is asked for a report in a cycle unless it had not begun (counts_in) or was done before the
cycle; it was reported on time when its lead unit reported in the cycle by the cycle's report day (and by the day).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.store.models import Assignment, ProgressReport, Task
from reminders.tracking.cycles import report_by
from reminders.tracking.ladder import counts_in, cycle_bounds, earlier_cycles
from reminders.tracking.status import LoadedPlan, not_superseded, sharing

TREND_CYCLES = 6  # the digest's and the dashboard's trend: this cycle and up to five before it, in the plan's year


def rate(part: int, whole: int) -> int:
    """Whole percent, rounded half up as mail's `percent` filter does; 0 of nothing is 0."""
    return (part * 200 + whole) // (whole * 2) if whole else 0


@dataclass(frozen=True)
class UnitFigures:
    """One lead unit in one cycle."""

    asked: int  # lead tasks a report was asked for
    on_time: int  # of those, reported in the cycle by the report day (and by the day)
    overdue: int  # lead tasks overdue on the day

    @property
    def all_on_time(self) -> bool:
        return self.asked > 0 and self.on_time == self.asked


@dataclass(frozen=True)
class TrendPoint:
    cycle: str
    day: date  # the day the figures are for
    report_by: date
    tasks: int  # tasks with a lead unit
    done: int
    units: dict[int, UnitFigures] = field(default_factory=dict)  # lead unit id -> figures, units asked only

    @property
    def completion(self) -> int:
        return rate(self.done, self.tasks)

    @property
    def units_asked(self) -> int:
        return sum(1 for figures in self.units.values() if figures.asked)

    @property
    def units_on_time(self) -> int:
        return sum(1 for figures in self.units.values() if figures.all_on_time)

    @property
    def on_time_rate(self) -> int:
        return rate(self.units_on_time, self.units_asked)


@dataclass(frozen=True, slots=True)
class _Report:
    cycle: str
    reported_on: date
    done: bool


@dataclass(frozen=True)
class YearReports:
    """What every trend of one run needs: the plan, the cycles with their days, the lead units' counting reports."""

    loaded: LoadedPlan
    cycles: tuple[tuple[str, date, date], ...]  # (cycle, day, report day), oldest first
    # task id -> its lead unit's counting reports in status's order (reported_on, created_at, id): the last is
    # the latest
    reports: dict[int, tuple[_Report, ...]]
    first_cycle: str | None = None  # the cycle of the earliest of `reports`
    positions: dict[str, int] = field(default_factory=dict)  # task number -> its index in loaded.tasks


def load_year(session: Session, config: Config, loaded: LoadedPlan, cycle: str, day: date,
              count: int = TREND_CYCLES) -> YearReports:
    """The plan's reports in one query, for the `count` cycles up to `cycle` (judged on `day`).

    Only the reports that count are read (the lead unit's, of live tasks, not replaced by an amendment), in order,
    row by row, each month and day held once: at 100,000 tasks with 300,000 reports, reading every report whole
    first was 150 MB of a cycle's peak."""
    rows = session.connection().execute(
        select(ProgressReport.task_id, ProgressReport.cycle, ProgressReport.reported_on, ProgressReport.done)
        .join(Task, Task.id == ProgressReport.task_id)
        .join(Assignment, (Assignment.task_id == ProgressReport.task_id)
              & (ProgressReport.unit_id == Assignment.lead_unit_id))
        .where(Task.plan_id == loaded.plan.id, Task.removed_at.is_(None), not_superseded())
        .order_by(ProgressReport.task_id, ProgressReport.reported_on, ProgressReport.created_at, ProgressReport.id)
    )
    reports: dict[int, list[_Report]] = {}
    once = sharing()
    for task_id, month, reported_on, done in rows:
        reports.setdefault(task_id, []).append(_Report(once(month), once(reported_on), bool(done)))
    first = min((report.cycle for found in reports.values() for report in found), default=None)
    cycles = [*earlier_cycles(cycle, count - 1, loaded.plan.year), cycle]
    judged = tuple((c, day if c == cycle else cycle_bounds(c)[1], report_by(config, c)) for c in cycles)
    return YearReports(loaded, judged, {task_id: tuple(found) for task_id, found in reports.items()},
                       first, {task.number: index for index, task in enumerate(loaded.tasks)})


def trend(year: YearReports, numbers: Collection[str] | None = None) -> tuple[TrendPoint, ...]:
    """The figures of each cycle, oldest first, for the tasks numbered `numbers` (None: every task).

    The tasks are taken in plan order either way; a digest asks once per leader, so `numbers` is looked up rather
    than the whole plan walked."""
    chosen = year.loaded.tasks if numbers is None else \
        [year.loaded.tasks[index] for index in sorted(year.positions[n] for n in numbers if n in year.positions)]
    tasks = [task for task in chosen if task.lead_unit_id is not None]
    first_done: dict[int, date] = {}
    for task in tasks:
        done_days = [report.reported_on for report in year.reports.get(task.id, ()) if report.done]
        if done_days:
            first_done[task.id] = min(done_days)
    points = []
    for cycle, day, by in year.cycles:
        start = cycle_bounds(cycle)[0]
        cutoff = min(by, day)
        done = 0
        asked: dict[int, list[int]] = {}  # unit id -> [asked, on time, overdue]
        for task in tasks:
            assert task.lead_unit_id is not None
            mine = year.reports.get(task.id, ())
            upto = [report for report in mine if report.reported_on <= day]
            is_done = bool(upto) and upto[-1].done
            done += is_done
            figures = asked.setdefault(task.lead_unit_id, [0, 0, 0])
            if not is_done and task.deadline is not None and task.deadline < day:
                figures[2] += 1
            closed = first_done.get(task.id)
            if not counts_in(task, cycle) or (closed is not None and closed < start):
                continue
            figures[0] += 1
            if any(report.cycle == cycle and report.reported_on <= cutoff for report in mine):
                figures[1] += 1
        units = {unit_id: UnitFigures(*figures) for unit_id, figures in asked.items() if figures[0] or figures[2]}
        points.append(TrendPoint(cycle, day, by, len(tasks), done, units))
    return tuple(points)


def since_first_report(year: YearReports, points: tuple[TrendPoint, ...]) -> tuple[TrendPoint, ...]:
    """`points` from the cycle of the plan's first counting report on (the current cycle at least): the months before
    anyone reported are rows of zeros that say only that the plan was not yet followed here."""
    first = year.first_cycle
    if first is None:
        return points[-1:]
    return tuple(point for point in points[:-1] if point.cycle >= first) + points[-1:]
