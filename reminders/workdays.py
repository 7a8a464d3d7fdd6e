"""Working days of the Chinese calendar: public holidays and 调休 make-up workdays, or plain weekdays, or every day.

The State Council announces each year's holidays and 调休 in November or December of the year before; the
`chinesecalendar` package carries them and is updated yearly. A year it does not know yet (it raises
NotImplementedError) falls back to Monday–Friday plus the office's own `extra_holidays` / `extra_workdays`, and
`coverage_warning` names the year so the operator can upgrade the package or list that year's days.

Counting follows practice (and 行政许可法 §82): the day of the assignment is not counted, so `N个工作日内` from a
交办 on day A ends on `add_workdays(A, N)`, the N-th working day after A.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import chinese_calendar  # type: ignore[import-untyped]

Mode = Literal["cn", "weekdays", "all"]
MODES: tuple[Mode, ...] = ("cn", "weekdays", "all")
_LOG = logging.getLogger(__name__)
_warned: set[int] = set()
_DAY = timedelta(days=1)


def library_years() -> tuple[int, int]:
    """The first and last year whose holidays and 调休 the installed chinesecalendar knows."""
    known = chinese_calendar.holidays.keys()
    return min(known).year, max(known).year


def _library_workday(day: date) -> bool | None:
    """chinesecalendar's answer, or None for a year it does not know."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class WorkCalendar:
    """Which days are working days. The extra lists win over the mode: a local decision beats the library."""

    mode: Mode = "cn"
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()

    def is_workday(self, day: date) -> bool:
        counts, at = _year_counts(self, day.year), day.timetuple().tm_yday
        return counts[at] > counts[at - 1]

    def _decide(self, day: date) -> bool:
        """The rule itself, day by day (chinesecalendar checks its argument on every call, which is slow): read
        through `_year_counts`, which asks once per day of a year."""
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if self.mode == "all":
            return True
        if self.mode == "cn":
            known = _library_workday(day)
            if known is not None:
                return known
            if day.year not in _warned:
                _warned.add(day.year)
                _LOG.warning("%s", self.coverage_warning(day.year))
        return day.weekday() < 5

    def next_workday(self, day: date) -> date:
        """`day` itself when it is a working day, else the first working day after it (where a date that falls on
        a holiday moves to)."""
        while not self.is_workday(day):
            day += _DAY
        return day

    def previous_workday(self, day: date) -> date:
        """`day` itself when it is a working day, else the last working day before it."""
        while not self.is_workday(day):
            day -= _DAY
        return day

    def add_workdays(self, day: date, n: int) -> date:
        """The n-th working day after `day` (before it for a negative n; `day` itself for 0). `day` is not counted,
        so workdays_between(day, add_workdays(day, n)) == n."""
        step = _DAY if n >= 0 else -_DAY
        for _ in range(abs(n)):
            day += step
            while not self.is_workday(day):
                day += step
        return day

    def workdays_between(self, a: date, b: date) -> int:
        """Working days after `a` up to and including `b` (剩余 N 个工作日 from today to a deadline). When `b` is
        before `a`, minus the working days from `b` up to but not including `a`: the steps add_workdays takes back,
        so that workdays_between(a, add_workdays(a, n)) == n for every n."""
        if b < a:
            return -self.workdays_between(b - _DAY, a - _DAY)
        whole_years = sum(_year_counts(self, year)[-1] for year in range(a.year, b.year))
        return whole_years + _so_far(self, b) - _so_far(self, a)

    def covers(self, year: int) -> bool:
        """Whether the calendar knows `year` as configured: always for weekdays and all, for cn when the library
        holds the year."""
        first, last = library_years()
        return self.mode != "cn" or first <= year <= last

    def coverage_warning(self, year: int) -> str | None:
        """The operator's warning for a year chinesecalendar does not know, naming it; None when it is covered."""
        if self.covers(year):
            return None
        first, last = library_years()
        listed = sum(1 for d in self.extra_holidays | self.extra_workdays if d.year == year)
        return (f"节假日库 chinesecalendar {chinese_calendar.__version__} 只收录 {first}–{last} 年，没有 {year} 年的"
                f"法定节假日和调休安排：{year} 年按周一至周五计算工作日，另加 [calendar] extra_holidays / "
                f"extra_workdays（其中 {year} 年已列 {listed} 天）；请升级 chinesecalendar "
                f"(pip install -U chinesecalendar)，或在这两个列表中补齐 {year} 年的放假和调休上班日期 "
                f"(chinesecalendar knows {first}–{last}, not {year}: {year}'s working days are Monday–Friday plus "
                f"the extra lists (dates of {year} listed: {listed}); upgrade chinesecalendar or list {year}'s "
                "holidays and make-up workdays)")


@functools.cache
def _year_counts(calendar: WorkCalendar, year: int) -> tuple[int, ...]:
    """counts[k]: the working days of `year` among its first k days (counts[0] == 0), so a day's answer and any
    span's count are two lookups. Built once per calendar and year, for the life of the process."""
    counts, total, day = [0], 0, date(year, 1, 1)
    while day.year == year:
        total += calendar._decide(day)
        counts.append(total)
        day += _DAY
    return tuple(counts)


def _so_far(calendar: WorkCalendar, day: date) -> int:
    """Working days of `day`'s year from 1 January up to and including `day`."""
    return _year_counts(calendar, day.year)[day.timetuple().tm_yday]


def make_calendar(mode: Mode = "cn", extra_holidays: Iterable[date] = (),
                  extra_workdays: Iterable[date] = ()) -> WorkCalendar:
    return WorkCalendar(mode, frozenset(extra_holidays), frozenset(extra_workdays))


DEFAULT = WorkCalendar()


def is_workday(day: date, calendar: WorkCalendar = DEFAULT) -> bool:
    return calendar.is_workday(day)


def next_workday(day: date, calendar: WorkCalendar = DEFAULT) -> date:
    return calendar.next_workday(day)


def previous_workday(day: date, calendar: WorkCalendar = DEFAULT) -> date:
    return calendar.previous_workday(day)


def add_workdays(day: date, n: int, calendar: WorkCalendar = DEFAULT) -> date:
    return calendar.add_workdays(day, n)


def workdays_between(a: date, b: date, calendar: WorkCalendar = DEFAULT) -> int:
    return calendar.workdays_between(a, b)
