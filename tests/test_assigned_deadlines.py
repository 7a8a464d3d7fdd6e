"""The 交办日期 column of the task breakdown: deadlines counted from the assignment (3个工作日内, 5日内) resolve to a
date on import, in the working days of the `[calendar]` section; without a 交办日期 they are refused."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from reminders import config
from reminders.intake.importer import import_assignments
from reminders.intake.tables import TableError
from reminders.store.db import make_engine, session_scope
from tests.conftest import EXAMPLES, Cli, write_config

ASSIGNED = "2021-09-29"  # a Wednesday; 1–7 October 2021 is the National Day holiday, Saturday 9 October a 调休 workday


def breakdown(tmp_path: Path, deadlines: dict[str, str], assigned: dict[str, str] | None,
              header: str = "交办日期") -> Path:
    """The example assignments with some deadlines replaced (task number → phrase), and a 交办日期 column when
    `assigned` (task number → cell) is given."""
    rows = list(csv.reader(io.StringIO((EXAMPLES / "assignments.csv").read_text(encoding="utf-8"))))
    rows = [rows[0], *([*row[:4], deadlines.get(row[0], row[4])] for row in rows[1:])]
    if assigned is not None:
        rows = [[*rows[0], header], *([*row, assigned.get(row[0], "")] for row in rows[1:])]
    path = tmp_path / "assignments-assigned.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def deadline(run: Cli, number: str) -> tuple[str | None, str]:
    records = json.loads(run("status", "--as-of", "2021-09-30", "--format", "json").output)
    record = next(record for record in records if record["number"] == number)
    return record["deadline"], record["deadline_text"]


def test_a_deadline_counted_from_the_assignment_resolves_to_a_date(loaded: Cli, tmp_path: Path) -> None:
    table = breakdown(tmp_path, {"3": "3个工作日内", "4": "交办后5日内完成"}, {"3": ASSIGNED, "4": "2021年9月29日"})
    result = loaded("import-assignments", str(table))
    assert "任务 3：完成时限" in result.output
    assert deadline(loaded, "3") == ("2021-10-09", "3个工作日内")  # 30 Sept, 8 Oct, then the 调休 Saturday
    assert deadline(loaded, "4") == ("2021-10-04", "交办后5日内完成")  # calendar days, holidays included
    assert deadline(loaded, "2") == ("2021-06-30", "2021年6月底前")  # a date needs no 交办日期


@pytest.mark.parametrize("header", ["交办时间", "assigned"])
def test_the_column_has_english_and_other_names(loaded: Cli, tmp_path: Path, header: str) -> None:
    loaded("import-assignments", str(breakdown(tmp_path, {"3": "5天内"}, {"3": "9/29"}, header=header)))
    assert deadline(loaded, "3") == ("2021-10-04", "5天内")


def test_without_the_column_a_relative_deadline_is_refused_naming_row_and_column(loaded: Cli,
                                                                                 tmp_path: Path) -> None:
    result = loaded("import-assignments", str(breakdown(tmp_path, {"3": "3个工作日内"}, None)), ok=False)
    assert result.exit_code == 1
    assert "row 4, column 完成时限: 完成时限 “3个工作日内” 从交办日期起按工作日计算，但缺少交办日期" in result.output
    assert "交办日期" in result.output and "6月30日前" in result.output
    assert deadline(loaded, "3") == ("2021-10-31", "2021年10月")  # nothing was imported


def test_an_empty_or_bad_assignment_date_is_refused_in_its_column(loaded: Cli, tmp_path: Path) -> None:
    table = breakdown(tmp_path, {"3": "5日内", "4": "3个工作日内"}, {"3": "", "4": "下个月"})
    result = loaded("import-assignments", str(table), ok=False)
    assert "row 4, column 交办日期: 完成时限 “5日内” 从交办日期起按日历天数计算，但缺少交办日期" in result.output
    assert "row 5, column 交办日期: 无法识别的日期 “下个月”" in result.output
    assert "无法识别的完成时限" not in result.output  # a bad date is reported once, not again as a bad deadline
    assert deadline(loaded, "3") == ("2021-10-31", "2021年10月")


def test_a_start_date_after_the_resolved_deadline_is_refused(loaded: Cli, tmp_path: Path) -> None:
    rows = breakdown(tmp_path, {"3": "3个工作日内"}, {"3": ASSIGNED})
    lines = rows.read_text(encoding="utf-8").splitlines()
    lines = [f"{lines[0]},开始日期", *(f"{line},{'2021-10-11' if line.startswith('3,') else ''}"
                                         for line in lines[1:])]
    rows.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = loaded("import-assignments", str(rows), ok=False)
    assert "row 4, column 开始日期: 开始日期 2021-10-11 晚于完成时限 2021-10-09" in result.output


def test_the_calendar_section_changes_the_answer(loaded: Cli, tmp_path: Path, db_url: str) -> None:
    """Monday–Friday only: 30 September, 1 October, 4 October."""
    path = write_config(tmp_path / "weekdays.toml", db_url, extra='[calendar]\nworkdays = "weekdays"\n')
    work_calendar = config.load(str(path)).calendar.work_calendar
    table = breakdown(tmp_path, {"3": "3个工作日内", "4": "5日内"}, {"3": ASSIGNED, "4": ASSIGNED})
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as session:
            report = import_assignments(session, table, calendar=work_calendar)
        assert report.updated == ["3", "4"]
        with pytest.raises(TableError, match="缺少交办日期"), session_scope(engine) as session:
            import_assignments(session, breakdown(tmp_path, {"3": "3个工作日内"}, None), calendar=work_calendar)
    finally:
        engine.dispose()
    assert deadline(loaded, "3") == ("2021-10-04", "3个工作日内")
    assert deadline(loaded, "4") == ("2021-10-04", "5日内")  # calendar days do not depend on the calendar
