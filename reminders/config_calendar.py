"""The `[calendar]` section: which days are working days. Kept apart from config.py, which reads it through
`parse_calendar` and turns a CalendarValueError into its ConfigError naming the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from reminders.workdays import MODES, Mode, WorkCalendar, library_years, make_calendar


class CalendarValueError(ValueError):
    """A bad `[calendar]` setting: the dotted key and the message, Chinese first."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class Calendar:
    workdays: Mode = "cn"  # cn: Chinese public holidays and 调休 (chinesecalendar); weekdays: Mon–Fri; all: every day
    extra_holidays: tuple[date, ...] = ()  # local days off, and holidays of a year the library does not know yet
    extra_workdays: tuple[date, ...] = ()  # local working days, and 调休 workdays of such a year

    @property
    def work_calendar(self) -> WorkCalendar:
        return make_calendar(self.workdays, self.extra_holidays, self.extra_workdays)

    def describe(self) -> str:
        """One line for check-config."""
        words = {"cn": "中国法定节假日及调休 (Chinese public holidays and make-up workdays)",
                 "weekdays": "周一至周五 (Monday–Friday)", "all": "每天 (every day)"}[self.workdays]
        extra = f"；另放假 {len(self.extra_holidays)} 天、另上班 {len(self.extra_workdays)} 天 (extra holidays " \
                f"{len(self.extra_holidays)}, extra workdays {len(self.extra_workdays)})"
        if self.workdays == "cn":
            first, last = library_years()
            words += f"，节假日库收录 {first}–{last} 年 (chinesecalendar knows {first}–{last})"
        return f"{self.workdays}: {words}{extra}"


def parse_calendar(table: dict[str, Any]) -> Calendar:
    """The `[calendar]` table validated; every error names the key and, for a date, the bad value."""
    unknown = set(table) - {"workdays", "extra_holidays", "extra_workdays"}
    if unknown:
        raise CalendarValueError(f"calendar.{sorted(unknown)[0]}", "未知的配置项 (unknown key)")
    mode = table.get("workdays", "cn")
    if mode not in MODES:
        raise CalendarValueError("calendar.workdays", f"取值应为 {' / '.join(MODES)} (got {mode!r})")
    holidays = _dates(table, "extra_holidays")
    workdays = _dates(table, "extra_workdays")
    both = sorted(set(holidays) & set(workdays))
    if both:
        raise CalendarValueError("calendar.extra_workdays", f"{both[0].isoformat()} 同时列在 extra_holidays 中，"
                                 f"只能二选一 (listed as a holiday too)")
    return Calendar(cast(Mode, mode), holidays, workdays)


def _dates(table: dict[str, Any], name: str) -> tuple[date, ...]:
    key = f"calendar.{name}"
    values = table.get(name, [])
    if not isinstance(values, list):
        raise CalendarValueError(key, '应为日期列表，如 ["2027-02-06", "2027-02-07"] '
                                      '(expected a list of ISO dates)')
    found: list[date] = []
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):  # a bare TOML date: 2027-02-06 without quotes
            found.append(value)
            continue
        try:
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError(value)
            found.append(date.fromisoformat(value))
        except ValueError:
            raise CalendarValueError(key, f"不是有效日期 {value!r}，日期应为 YYYY-MM-DD，如 2027-02-06 "
                                          f"(not a date: expected YYYY-MM-DD)") from None
    return tuple(sorted(set(found)))
