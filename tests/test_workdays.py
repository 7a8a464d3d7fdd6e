"""Working days of the Chinese calendar (调休 included), the `[calendar]` section, and `N个工作日内` deadlines counted
from the 交办 date, with the real chinesecalendar package."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders import config, workdays
from reminders.config import ConfigError
from reminders.intake.deadlines import DeadlineError, parse_deadline
from reminders.workdays import WorkCalendar, add_workdays, make_calendar, next_workday, previous_workday
from tests.conftest import Cli, write_config

CN = WorkCalendar()
FAR = 2090  # a year no chinesecalendar release will know for a long time


def _days(first: str, last: str) -> list[date]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


@pytest.mark.parametrize("day", [
    *_days("2021-02-11", "2021-02-17"),  # 春节
    *_days("2021-10-01", "2021-10-07"),  # 国庆
    *_days("2024-02-10", "2024-02-17"), *_days("2024-05-01", "2024-05-05"), *_days("2024-10-01", "2024-10-07"),
])
def test_the_public_holidays_are_days_off(day: date) -> None:
    assert not workdays.is_workday(day)


@pytest.mark.parametrize("day", ["2021-02-07", "2021-02-20", "2021-09-26", "2021-10-09",  # Sundays and Saturdays
                                 "2024-02-04", "2024-02-18", "2024-04-28", "2024-05-11", "2024-09-29", "2024-10-12"])
def test_the_make_up_weekends_are_working_days(day: str) -> None:
    assert date.fromisoformat(day).weekday() >= 5
    assert workdays.is_workday(date.fromisoformat(day))


def test_an_ordinary_week_is_monday_to_friday() -> None:
    assert [workdays.is_workday(d) for d in _days("2021-06-07", "2021-06-13")] == [True] * 5 + [False] * 2


def test_the_modes_weekdays_and_all_ignore_the_holidays() -> None:
    weekdays, every = make_calendar("weekdays"), make_calendar("all")
    assert weekdays.is_workday(date(2021, 10, 1)) and not weekdays.is_workday(date(2021, 2, 7))
    assert every.is_workday(date(2021, 10, 3)) and every.is_workday(date(2021, 6, 13))


def test_the_extra_lists_win_over_the_calendar() -> None:
    local = make_calendar("cn", extra_holidays=[date(2021, 6, 30)], extra_workdays=[date(2021, 10, 2)])
    assert not local.is_workday(date(2021, 6, 30))
    assert local.is_workday(date(2021, 10, 2))
    assert make_calendar("all", extra_holidays=[date(2021, 6, 30)]).is_workday(date(2021, 6, 30)) is False


def test_next_and_previous_workday_step_over_the_national_day_week() -> None:
    assert next_workday(date(2021, 10, 1)) == date(2021, 10, 8)
    assert previous_workday(date(2021, 10, 7)) == date(2021, 9, 30)
    assert next_workday(date(2021, 2, 7)) == date(2021, 2, 7)  # a 调休 Sunday is itself a working day
    assert previous_workday(date(2021, 6, 13)) == date(2021, 6, 11)


def test_add_workdays_counts_across_the_national_day_holiday() -> None:
    # 交办 on Wednesday 2021-09-29: Thursday 30th, then Friday 8 October and the 调休 Saturday 9 October.
    assert add_workdays(date(2021, 9, 29), 3) == date(2021, 10, 9)
    assert make_calendar("weekdays").add_workdays(date(2021, 9, 29), 3) == date(2021, 10, 4)
    assert add_workdays(date(2021, 10, 8), -1) == date(2021, 9, 30)
    assert add_workdays(date(2021, 10, 3), 0) == date(2021, 10, 3)
    assert CN.workdays_between(date(2021, 9, 29), date(2021, 10, 9)) == 3
    assert CN.workdays_between(date(2021, 10, 9), date(2021, 9, 29)) == -3
    assert CN.workdays_between(date(2021, 10, 1), date(2021, 10, 7)) == 0


@given(st.dates(date(2021, 1, 1), date(2024, 12, 31)), st.integers(-40, 40))
def test_workdays_between_undoes_add_workdays(day: date, n: int) -> None:
    later = CN.add_workdays(day, n)
    assert CN.workdays_between(day, later) == n
    assert n == 0 or CN.is_workday(later)


@settings(deadline=None)  # the library's own count walks the calendar day by day: 20 years take a quarter second
@given(st.dates(date(2005, 1, 1), date(2026, 12, 31)), st.dates(date(2005, 1, 1), date(2026, 12, 31)))
def test_working_days_are_the_librarys_own_count_across_years(a: date, b: date) -> None:
    """The counts are read from a table built once per year: they must equal chinesecalendar's own list of
    working days, 调休 Saturdays included, over any span, across year ends and backwards."""
    assert CN.is_workday(a) == chinese_calendar.is_workday(a)
    first, last = sorted((a, b))
    days = len(chinese_calendar.get_workdays(first + timedelta(days=1), last)) if last > first else 0
    assert CN.workdays_between(first, last) == days
    behind = len(chinese_calendar.get_workdays(first, last - timedelta(days=1))) if last > first else 0
    assert CN.workdays_between(last, first) == -behind


def test_a_year_the_library_does_not_know_falls_back_to_weekdays_and_the_extra_lists(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workdays, "_warned", set())
    first, last = workdays.library_years()
    monday = date(FAR, 1, 2)
    assert monday.weekday() == 0
    local = make_calendar("cn", extra_holidays=[monday], extra_workdays=[date(FAR, 1, 7)])
    with caplog.at_level(logging.WARNING, logger="reminders.workdays"):
        assert not local.is_workday(monday)  # listed: no warning needed yet
        assert local.is_workday(date(FAR, 1, 3)) and not local.is_workday(date(FAR, 1, 8))
        assert local.is_workday(date(FAR, 1, 7))
        assert local.add_workdays(date(FAR, 1, 5), 2) == date(FAR, 1, 7)
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and f"没有 {FAR} 年的法定节假日和调休安排" in logged[0]  # once per year, not per day
    warning = local.coverage_warning(FAR)
    assert warning is not None and warning == logged[0]
    assert f"只收录 {first}–{last} 年" in warning and f"其中 {FAR} 年已列 2 天" in warning
    assert f"not {FAR}" in warning
    assert CN.coverage_warning(2021) is None and make_calendar("weekdays").coverage_warning(FAR) is None


def _load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(str(path))


def test_the_calendar_section_defaults_to_the_chinese_calendar(tmp_path: Path) -> None:
    assert _load(tmp_path, "").calendar.work_calendar == WorkCalendar("cn")
    loaded = _load(tmp_path, '[calendar]\nworkdays = "weekdays"\nextra_holidays = ["2021-06-30", 2021-07-01]\n'
                             'extra_workdays = ["2021-10-02"]\n')
    assert loaded.calendar.extra_holidays == (date(2021, 6, 30), date(2021, 7, 1))
    calendar = loaded.calendar.work_calendar
    assert not calendar.is_workday(date(2021, 7, 1)) and calendar.is_workday(date(2021, 10, 2))


@pytest.mark.parametrize(("text", "key", "words"), [
    ('workdays = "saturdays"', "calendar.workdays", "取值应为 cn / weekdays / all"),
    ('extra_holidays = ["2021-02-30"]', "calendar.extra_holidays", "不是有效日期 '2021-02-30'"),
    ('extra_workdays = ["2021/10/09"]', "calendar.extra_workdays", "不是有效日期 '2021/10/09'"),
    ("extra_workdays = [20211009]", "calendar.extra_workdays", "不是有效日期 20211009"),
    ('extra_holidays = "2021-10-01"', "calendar.extra_holidays", "应为日期列表"),
    ("extra_holidays = [2021-10-01T09:00:00]", "calendar.extra_holidays", "不是有效日期"),
    ('extra_holidays = ["2021-10-08"]\nextra_workdays = ["2021-10-08"]', "calendar.extra_workdays",
     "2021-10-08 同时列在 extra_holidays 中"),
    ('holidays = ["2021-10-08"]', "calendar.holidays", "未知的配置项"),
])
def test_a_bad_calendar_setting_names_the_file_the_key_and_the_date(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, f"[calendar]\n{text}\n")
    assert error.value.key == key
    assert str(error.value).startswith(f"{tmp_path / 'r.toml'}: {key}: ")
    assert words in str(error.value)


def test_a_deadline_in_working_days_counts_from_the_assignment_date() -> None:
    assigned = date(2021, 9, 29)
    for phrase in ("3个工作日内", "三个工作日内", "交办后3个工作日内完成", "自交办之日起3个工作日内", "3個工作日內",
                   "收到后 3 个工作日以内"):
        deadline = parse_deadline(phrase, 2021, assigned=assigned)
        assert (deadline.kind, deadline.due, deadline.text) == ("date", date(2021, 10, 9), phrase)
    assert parse_deadline("3个工作日内", 2021, assigned, make_calendar("weekdays")).due == date(2021, 10, 4)
    assert parse_deadline("10个工作日内", 2024, date(2024, 9, 27)).due == date(2024, 10, 16)


def test_a_deadline_in_working_days_without_an_assignment_date_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(DeadlineError) as caught:
        parse_deadline("5个工作日内", 2021)
    assert str(caught.value).startswith("完成时限 “5个工作日内” 从交办日期起按工作日计算，但缺少交办日期")
    with pytest.raises(DeadlineError, match="1–366"):
        parse_deadline("0个工作日内", 2021, date(2021, 9, 29))


def test_the_assignment_date_changes_no_other_phrase() -> None:
    assigned = date(2021, 9, 29)
    for phrase in ("6月底前", "年底前", "长期坚持", "每季度末(6月、9月和12月底)", ""):
        assert parse_deadline(phrase, 2021, assigned) == parse_deadline(phrase, 2021)
    assert parse_deadline("30日内", 2021, assigned).due == date(2021, 10, 29)  # calendar days, counted from it


def _summary_and_warnings(result_output: str) -> tuple[str, list[str]]:
    lines = result_output.splitlines()
    shown = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("工作日 workdays"))
    return shown, [line for line in lines if line.startswith("警告") and "chinesecalendar" in line]


def test_check_config_shows_the_calendar_and_warns_of_a_plan_year_it_does_not_know(
    tmp_path: Path, db_url: str
) -> None:
    path = write_config(tmp_path / "r.toml", db_url, extra='\n[calendar]\nextra_workdays = ["2090-01-07"]\n')
    run = Cli(path)
    shown, warnings = _summary_and_warnings(run("check-config").output)
    first, last = workdays.library_years()
    assert shown == (f"cn: 中国法定节假日及调休 (Chinese public holidays and make-up workdays)，"
                     f"节假日库收录 {first}–{last} 年 (chinesecalendar knows {first}–{last})；"
                     "另放假 0 天、另上班 1 天 (extra holidays 0, extra workdays 1)")
    assert warnings == []  # the database does not exist yet: nothing is created to find a plan
    run("init")
    plan = tmp_path / "plan.txt"
    plan.write_text("某局2090年工作计划\n一、重点工作\n1.开展评估。12月底前完成。\n", encoding="utf-8")
    run("import-plan", str(plan))
    _, warnings = _summary_and_warnings(run("check-config").output)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"警告：节假日库 chinesecalendar {workdays.chinese_calendar.__version__} 只收录 "
                                  f"{first}–{last} 年，没有 {FAR} 年的法定节假日和调休安排")
    assert f"其中 {FAR} 年已列 1 天" in warnings[0]
