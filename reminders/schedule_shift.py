"""Scheduled runs moved off non-working days: `[schedule] shift = "next" | "previous" | "none"`.

A cron fire whose day is not a working day of `[calendar]` moves to the next (or previous) working day at the same
time of day, but never out of its own month: a run of September whose next working day is in October takes the last
working day of September instead (and a "previous" shift out of the month takes the next working day), so the run
keeps its cycle and a month never gets two runs or none. Two cron fires shifted onto the same moment fire once.

`ShiftedTrigger` is an APScheduler 3 trigger: `get_next_fire_time(previous_fire_time, now)` as BaseTrigger asks
(the first fire at or after `now`, or just after `previous_fire_time` when that is earlier, as CronTrigger does).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from reminders.config import Config
from reminders.config_values import cron_trigger
from reminders.workdays import WorkCalendar

SHIFTS = ("next", "previous", "none")
_REACH = timedelta(days=32)  # a shift stays within its month: a cron fire further back cannot land after `now`
_TICK = timedelta(microseconds=1)


def shifted_day(day: date, calendar: WorkCalendar, shift: str) -> date:
    """The working day a run of `day` moves to, within `day`'s month; `day` itself when it is a working day, when
    `shift` is "none", or when the month has no working day at all."""
    if shift == "none" or calendar.is_workday(day):
        return day
    first = calendar.next_workday(day) if shift == "next" else calendar.previous_workday(day)
    if (first.year, first.month) == (day.year, day.month):
        return first
    other = calendar.previous_workday(day) if shift == "next" else calendar.next_workday(day)
    return other if (other.year, other.month) == (day.year, day.month) else day


class ShiftedTrigger(BaseTrigger):  # type: ignore[misc]
    """A cron trigger whose fires move to working days (see the module's docstring)."""

    def __init__(self, cron: Any, calendar: WorkCalendar, shift: str) -> None:
        if shift not in SHIFTS:
            raise ValueError(f"shift must be one of {SHIFTS}, not {shift!r}")
        self.cron, self.calendar, self.shift = cron, calendar, shift

    def __str__(self) -> str:
        return f"{self.cron} shifted {self.shift}"

    def move(self, fire: datetime) -> datetime:
        """The moment a cron fire moves to: the same time of day on its shifted day."""
        day = shifted_day(fire.date(), self.calendar, self.shift)
        return fire if day == fire.date() else fire.replace(year=day.year, month=day.month, day=day.day)

    def fires(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """(cron fire, shifted fire) for every cron fire from `since` on, in the cron's order."""
        fire = self.cron.get_next_fire_time(None, since)
        while fire is not None:
            yield fire, self.move(fire)
            fire = self.cron.get_next_fire_time(fire, fire + _TICK)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # As CronTrigger does: from `now`, or from just after the previous fire when that is earlier (never the
        # previous fire itself, or a job would fire at the same moment again and again).
        start = now if previous_fire_time is None else max(min(now, previous_fire_time + _TICK),
                                                           previous_fire_time + _TICK)
        best: datetime | None = None
        for fire, moved in self.fires(start - _REACH):
            if best is not None and fire - _REACH > best:
                break  # later cron fires shift at most within their month: none can come before `best`
            if moved >= start and (best is None or moved < best):
                best = moved
        return best

    def origin(self, moved: datetime) -> datetime | None:
        """The cron fire that moved to `moved` (the earliest, if several did), or None."""
        for fire, shifted in self.fires(moved - _REACH):
            if shifted == moved:
                return fire
            if fire - _REACH > moved:
                return None
        return None

    def last_fire(self, now: datetime, back: timedelta = timedelta(days=366)) -> tuple[datetime, datetime] | None:
        """The latest (cron fire, shifted fire) whose shifted moment is at or before `now`, looking back `back`."""
        found: tuple[datetime, datetime] | None = None
        for fire, moved in self.fires(now - back - _REACH):
            if fire - _REACH > now:
                break
            if now - back <= moved <= now and (found is None or moved > found[1]):
                found = (fire, moved)
        return found


def shifted_trigger(config: Config, expression: str) -> ShiftedTrigger:
    """The trigger of a scheduled kind's cron expression, with the config's calendar and `[schedule] shift`."""
    schedule = config.schedule
    return ShiftedTrigger(cron_trigger(expression, schedule.timezone), config.calendar.work_calendar, schedule.shift)


def describe(trigger: ShiftedTrigger, fire: datetime, zh: str, en: str) -> str | None:
    """The log's words for a fire that moved ("2021-10-01 is a holiday: reminders of 2021-09 move to …"), or None
    when it did not move; `zh` / `en` name the run."""
    moved = trigger.move(fire)
    if moved == fire:
        return None
    day = fire.date().isoformat()
    return (f"{day} 不是工作日，{zh}改在 {moved.date().isoformat()} 发送 "
            f"({day} is a holiday: {en} move to {moved.isoformat()})")
