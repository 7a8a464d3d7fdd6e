"""Wrong command lines get Chinese first, with the expected format spelled out (click's own errors included); a month
outside the plan's year is refused; output into a closed pipe ends quietly."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reminders.cli.app import cli
from tests.conftest import Cli, write_config


def error_of(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output.splitlines()[-1]


@pytest.mark.parametrize(("args", "message"), [
    (["status", "--as-of", "2021/06/30"],
     "Error: --as-of：日期应为 YYYY-MM-DD，如 2021-06-30，而不是 “2021/06/30” (expected YYYY-MM-DD)"),
    (["progress", "3", "--unit", "办公室", "--note", "x", "--date", "30.6.2021"],
     "Error: --date：日期应为 YYYY-MM-DD，如 2021-06-30，而不是 “30.6.2021” (expected YYYY-MM-DD)"),
    (["send", "--cycle", "2021-13"],
     "Error: --cycle：月份应为 YYYY-MM，如 2021-06，而不是 “2021-13” (expected YYYY-MM)"),
    (["outbox", "--cycle", "June"], "Error: --cycle：月份应为 YYYY-MM，如 2021-06，而不是 “June” (expected YYYY-MM)"),
    (["send"], "Error: 缺少 --cycle，例如 --cycle 2021-06 (missing option --cycle, e.g. --cycle 2021-06)"),
    (["progress", "3", "--note", "x"], "Error: 缺少选项 --unit (missing option --unit)"),
    (["progress", "amend"], "Error: 缺少参数 ID (missing argument ID)"),
    (["progress", "amend", "4", "--note"], "Error: 选项 --note 后面需要一个值 (option --note requires a value)"),
    (["status", "--format", "xml"],
     "Error: --format 应为 table、json、csv 之一 (expected one of: table, json, csv; "
     "'xml' is not one of 'table', 'json', 'csv'.)"),
    (["progress", "amend", "4", "--percent", "120"],
     "Error: --percent 应为 0–100 之间的整数 (expected a whole number from 0 to 100; "
     "120 is not in the range 0<=x<=100.)"),
    (["status", "--colour"], "Error: 没有选项 --colour (no such option --colour)"),
    (["sned"], "Error: 没有命令 “sned”；可用的命令：admin、check-config、export、import-assignments、import-leaders、"
               "import-plan、import-units、init、ladder、outbox、preview、progress、run、send、serve、status"
               " (no such command 'sned')"),
    (["status", "extra"], "Error: 多余的参数：extra (unexpected extra argument: extra)"),
])
def test_it_answers_a_wrong_command_line_in_chinese_first(args: list[str], message: str) -> None:
    assert error_of(*args) == (2, message)


def test_it_still_explains_an_option_it_does_not_know_for_export() -> None:
    """Commands of other groups are translated by the root group too (export's --as-of is click.DateTime)."""
    assert error_of("export", "--format", "csv", "--out", "x.csv", "--as-of", "tomorrow") == (
        2, "Error: --as-of：日期应为 YYYY-MM-DD，如 2021-06-30，而不是 “tomorrow” (expected YYYY-MM-DD)")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_refuses_a_cycle_outside_the_plans_year_unless_forced(loaded: Cli) -> None:
    result = loaded("send", "--cycle", "2019-06", ok=False)
    assert result.exit_code == 1
    assert result.output == (
        "Error: 周期 2019-06 不在计划年度内：计划《郑州市民族宗教事务局2021年工作计划》是 2021 年的，"
        "2019-06 尚在该年度之前"
        " (the plan is for 2021; 2019-06 comes before it)；确需发送请加 --force (add --force to send it anyway)\n")
    result = loaded("send", "--cycle", "2022-01", "--dry-run", ok=False)
    assert result.output == (
        "Error: 周期 2022-01 不在计划年度内：计划《郑州市民族宗教事务局2021年工作计划》是 2021 年的，该年度已结束；"
        "请导入 2022 年的计划 (reminders import-plan) (the plan's year 2021 has ended: import the plan for 2022)"
        "；确需发送请加 --force (add --force to send it anyway)\n")
    assert loaded("outbox", "--format", "json").output == "[]\n"  # nothing recorded

    forced = loaded("send", "--cycle", "2022-01", "--kind", "reminders", "--force")
    assert forced.output.splitlines()[-1].startswith("周期 2022-01: 新记录 recorded 7, 已发送 sent 7")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_refuses_a_progress_report_dated_in_the_future(loaded: Cli) -> None:
    result = loaded("progress", "3", "--unit", "民族工作处", "--note", "宣讲", "--date", "2999-01-01", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: 报送日期 2999-01-01 晚于今天 ")
    assert result.output.endswith("：不能记录未来的进展 (the report date 2999-01-01 is in the future)\n")
    assert loaded("progress", "list", "3").output == "任务 3 尚无进展报告 (no reports yet)\n"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", [["status", "--as-of", "2021-06-20"], ["status", "--format", "json"],
                                     ["outbox"], ["progress", "list", "3"]])
def test_it_leaves_quietly_when_the_reader_of_its_output_goes_away(loaded: Cli, command: list[str]) -> None:
    process = subprocess.Popen([sys.executable, "-m", "reminders", "--config", str(loaded.config), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head` that has read enough: before the command writes anything
    stderr = process.stderr.read().decode()
    assert (process.wait(timeout=60), stderr) == (141, "")


def test_it_leaves_quietly_for_help_into_a_closed_pipe(tmp_path: Path) -> None:
    config = write_config(tmp_path / "r.toml", f"sqlite:///{tmp_path / 'r.sqlite3'}")
    process = subprocess.Popen([sys.executable, "-m", "reminders", "--config", str(config), "init"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    assert (process.wait(timeout=60), process.stderr.read().decode()) == (141, "")
