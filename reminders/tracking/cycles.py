"""The monthly cycle ("2021-06"): the month a day falls in, the day a month is judged on, the day units report by."""

from __future__ import annotations

import calendar
from datetime import date

from reminders.config import Config
from reminders.errors import ReminderError


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
    """The day units report by in the cycle: `[schedule] report_day`, or the month's last day if it is shorter."""
    year, month = parse_cycle(cycle)
    return date(year, month, min(config.schedule.report_day, calendar.monthrange(year, month)[1]))
