"""The monthly cycle ("2021-06"): the month a day falls in, the day a month is judged on, the day units report by."""

from __future__ import annotations

import calendar
from datetime import date
from typing import TYPE_CHECKING

from reminders.errors import ReminderError

if TYPE_CHECKING:
    from reminders.config import Config
    from reminders.store.models import Plan
    from reminders.workdays import WorkCalendar


class CycleError(ReminderError, ValueError):
    pass


def cycle_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_cycle(text: str) -> tuple[int, int]:
    try:
        year, month = (int(part) for part in text.split("-"))
        date(year, month, 1)
    except ValueError:
        raise CycleError(f"周期应为 YYYY-MM，而不是 “{text}” (cycle must be YYYY-MM)") from None
    return year, month


def day_in_cycle(cycle: str, today: date) -> date:
    """Today, kept inside the cycle's month: a past cycle is judged on its last day, a future one on its first."""
    year, month = parse_cycle(cycle)
    first, last = date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    return min(max(today, first), last)


def report_by(config: Config, cycle: str) -> date:
    """The day units report by in the cycle (请于…前报送): `[schedule] report_day` on the `[calendar]` working days.
    Reminders, digests, the chase and the report form all take it from here, so they name the same day."""
    year, month = parse_cycle(cycle)
    return report_day_in(year, month, config.schedule.report_day, config.calendar.work_calendar)


def report_day_in(year: int, month: int, report_day: int, work: WorkCalendar) -> date:
    """`report_day` of the month (its last day if the month is shorter), moved to the next working day when it is
    not one: report_day 1 of 2021-10 falls in 国庆 and becomes 2021-10-08. A day late in the month may so move into
    the next month; a unit is never asked to report on a day the office is closed."""
    return work.next_workday(date(year, month, min(report_day, calendar.monthrange(year, month)[1])))


class OutsidePlanYear(CycleError):
    """A cycle before or after the plan's year: sending it would remind units of a plan that is not (or no longer)
    in force, with days left counted from the wrong year."""

    def __init__(self, message: str, ended: bool) -> None:
        super().__init__(message)
        self.ended = ended


def check_cycle_in_plan(plan: Plan, cycle: str) -> None:
    """Refuse a cycle outside the plan's year (a plan whose year is unknown covers every month)."""
    year, _month = parse_cycle(cycle)
    if plan.year is None or year == plan.year:
        return
    ended = year > plan.year
    if ended:
        why = (f"计划《{plan.title}》是 {plan.year} 年的，该年度已结束；请导入 {year} 年的计划 (reminders import-plan)"
               f" (the plan's year {plan.year} has ended: import the plan for {year})")
    else:
        why = (f"计划《{plan.title}》是 {plan.year} 年的，{cycle} 尚在该年度之前"
               f" (the plan is for {plan.year}; {cycle} comes before it)")
    raise OutsidePlanYear(f"周期 {cycle} 不在计划年度内：{why}", ended)
