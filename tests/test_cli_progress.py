"""`progress list` and `progress amend`: an amendment is a new report superseding the old; the old one stays in the
history and no longer counts for the state, the month's "reported" or the latest progress."""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Cli


def task(loaded: Cli, number: str, as_of: str) -> dict[str, object]:
    records = json.loads(loaded("status", "--as-of", as_of, "--format", "json").output)
    return next(record for record in records if record["number"] == number)


def test_it_keeps_recording_progress_as_before(loaded: Cli) -> None:
    result = loaded("progress", "3", "--unit", "民族工作处", "--percent", "60", "--note", "完成宣讲12场",
                    "--date", "2021-06-10")
    assert result.output == "已记录 recorded: 任务 3 · 民族工作处 · 2021-06 · 60%\n"


def test_it_lists_a_tasks_reports_newest_first_with_amendments(loaded: Cli) -> None:
    loaded("progress", "3", "--unit", "民族工作处", "--percent", "60", "--note", "完成宣讲12场", "--date", "2021-06-10")
    loaded("progress", "3", "--unit", "办公室", "--note", "配合宣讲", "--date", "2021-06-11")
    result = loaded("progress", "amend", "1", "--percent", "65", "--note", "完成宣讲13场")
    assert result.output == "已更正 amended: 报告 1 → 3 · 2021-06-10 · 65%\n"
    assert loaded("progress", "list", "3").output.splitlines() == [
        "编号  日期        单位        进度  办结  状态    来源    更正         进展情况",
        "----  ----------  ----------  ----  ----  ------  ------  -----------  ------------",
        "2     2021-06-11  办公室      -     否    推进中  命令行  -            配合宣讲",
        "3     2021-06-10  民族工作处  65%   否    推进中  命令行  更正 1       完成宣讲13场",
        "1     2021-06-10  民族工作处  60%   否    推进中  命令行  已被 3 更正  完成宣讲12场",
    ]
    records = json.loads(loaded("progress", "list", "3", "--format", "json").output)
    assert [(r["id"], r["percent"], r["supersedes"], r["superseded_by"]) for r in records] == [
        (2, None, None, None), (3, 65, 1, None), (1, 60, None, 3)]
    recorded = datetime.fromisoformat(records[0]["recorded_at"])
    assert recorded.utcoffset() == ZoneInfo("Asia/Shanghai").utcoffset(recorded.replace(tzinfo=None))


def test_it_counts_only_the_amended_report(loaded: Cli) -> None:
    loaded("progress", "3", "--unit", "民族工作处", "--done", "--note", "全部完成", "--date", "2021-06-10")
    assert task(loaded, "3", "2021-06-20")["state"] == "done"
    # The unit had not finished after all, and reported in May, not June.
    loaded("progress", "amend", "1", "--not-done", "--percent", "80", "--date", "2021-05-28")
    line = task(loaded, "3", "2021-06-20")
    assert (line["state"], line["reported"]) == ("on_track", False)
    assert line["latest_progress"] == {"date": "2021-05-28", "unit": "民族工作处", "percent": 80, "done": False,
                                       "note": "全部完成"}
    assert task(loaded, "3", "2021-05-31")["reported"] is True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_amends_only_the_newest_version_and_something(loaded: Cli) -> None:
    loaded("progress", "3", "--unit", "民族工作处", "--note", "宣讲", "--date", "2021-06-10")
    loaded("progress", "amend", "1", "--percent", "50")
    assert loaded("progress", "amend", "1", "--percent", "55", ok=False).output == (
        "Error: 进展报告 1 已被 2 更正，请更正 2 (report 1 was already amended by 2: amend 2)\n")
    assert loaded("progress", "amend", "2", ok=False).output == (
        "Error: 请至少给出一项更正：--percent、--done/--not-done、--note 或 --date"
        " (nothing to amend: give --percent, --done/--not-done, --note or --date)\n")
    assert loaded("progress", "amend", "9", "--percent", "5", ok=False).output == (
        "Error: 没有编号为 9 的进展报告 (no progress report 9)\n")
    future = loaded("progress", "amend", "2", "--date", "2999-12-31", ok=False).output
    assert future.endswith("：不能记录未来的进展 (the report date 2999-12-31 is in the future)\n")
    assert len(loaded("progress", "list", "3").output.splitlines()) == 4  # header, rule, two reports
