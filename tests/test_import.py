"""Importing the plan and the tables through the CLI, on SQLite and PostgreSQL."""

import json
from pathlib import Path

import openpyxl
import pytest

from tests.conftest import EXAMPLES, Cli
from tests.smtpserver import RecordingServer


def status_json(run: Cli, as_of: str = "2021-06-20") -> list[dict]:
    return json.loads(run("status", "--as-of", as_of, "--format", "json").output)


def test_it_imports_the_seed_plan_with_5_sections_and_19_tasks(run: Cli) -> None:
    result = run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    assert "5 个部分 sections, 19 项任务 tasks" in result.output
    tasks = status_json(run)
    assert [t["number"] for t in tasks] == [str(n) for n in range(1, 20)]
    assert tasks[0]["title"] == "持续抓好习近平总书记关于民族宗教工作重要论述的学习贯彻落实"
    assert tasks[0]["section"] == "深入贯彻学习习近平新时代中国特色社会主义思想和十九届五中全会精神"
    assert "同心圆•共发展" in tasks[4]["title"]
    assert {t["state"] for t in tasks} == {"unassigned"}


def test_it_says_nothing_changed_when_the_same_plan_is_imported_again(run: Cli) -> None:
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    again = run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    assert "无变化 (nothing changed; 19 unchanged)" in again.output


def test_it_updates_a_changed_plan_in_place_and_reports_the_changes(loaded: Cli, tmp_path: Path) -> None:
    text = (EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8")
    changed = text.replace("9.做好涉疆服务管理工作。", "9.做好涉疆服务管理和权益保障工作。")
    changed = changed.replace("19.提高机关服务保障能力建设。", "19.提高机关服务保障能力建设。新增一句。")
    path = tmp_path / "plan-2021-v2.txt"
    path.write_text(changed, encoding="gb18030")
    result = loaded("import-plan", str(path))
    assert "更新 updated: 2  (9、19)" in result.output
    assert "未变 unchanged: 17" in result.output
    tasks = status_json(loaded)
    assert len(tasks) == 19
    assert tasks[8]["title"] == "做好涉疆服务管理和权益保障工作"
    assert tasks[8]["lead_unit"] == "民族工作处"  # the assignment survives the update


def test_it_refuses_an_unreadable_plan_naming_the_line_and_writes_nothing(run: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    path.write_bytes("郑州市2021年工作计划\n一、总体\n".encode() + b"\xff\xfe\x00\x81\x00garbage\n")
    result = run("import-plan", str(path), ok=False)
    assert result.exit_code == 1
    assert f"{path}" in result.output and "line 3" in result.output
    assert "no plan imported yet" in run("status", ok=False).output


def test_it_imports_units_leaders_and_assignments(loaded: Cli) -> None:
    tasks = {t["number"]: t for t in status_json(loaded)}
    assert tasks["2"]["lead_unit"] == "宗教一处"
    assert tasks["2"]["co_units"] == ["宗教二处", "民族工作处"]
    assert tasks["2"]["leader"] == "张华"
    assert tasks["2"]["deadline"] == "2021-06-30"
    assert tasks["1"]["deadline"] is None and tasks["1"]["state"] == "ongoing"
    assert tasks["5"]["deadline"] == "2021-09-30"  # 三季度末
    assert tasks["8"]["deadline"] == "2021-06-30"  # 上半年
    assert tasks["12"]["state"] == "overdue"
    assert tasks["14"]["state"] == "due_soon"


def test_it_reports_nothing_changed_when_tables_are_imported_again(loaded: Cli) -> None:
    for command, name in (("import-leaders", "leaders.csv"), ("import-units", "units.csv"),
                          ("import-assignments", "assignments.csv")):
        assert "无变化" in loaded(command, str(EXAMPLES / name)).output


def test_it_reads_xlsx_with_english_headers(run: Cli, tmp_path: Path) -> None:
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    run("import-units", str(EXAMPLES / "units.csv"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["2021年重点工作任务分解表"])
    sheet.append(["task", "leader", "lead_unit", "co_units", "deadline"])
    sheet.append([3, "张华", "民族工作处", "办公室，宗教一处", "2021年6月底前"])
    path = tmp_path / "assignments.xlsx"
    book.save(path)
    result = run("import-assignments", str(path))
    assert "新增 added: 1  (3)" in result.output
    task = status_json(run)[2]
    assert task["co_units"] == ["办公室", "宗教一处"] and task["deadline"] == "2021-06-30"


def _assignments(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "tasks.csv"
    path.write_text("序号,责任领导,牵头单位,配合单位,完成时限\n" + rows, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "where", "words"),
    [
        ("1,张华,民族工作处,,年底前\n2,张华,不存在处,,年底前\n", "row 3, column 牵头单位", "unknown unit"),
        ("1,张华,民族工作处,宗教一处、火星处,年底前\n", "row 2, column 配合单位", "火星处"),
        ("1,赵六,民族工作处,,年底前\n", "row 2, column 责任领导", "unknown leader"),
        ("1,张华,民族工作处,,下个月吧\n", "row 2, column 完成时限", "下个月吧"),
        ("1,张华,民族工作处,,年底前\n99,张华,民族工作处,,年底前\n", "row 3, column 序号", "task not in the plan"),
        ("1,张华,民族工作处,,年底前\n1,张华,宗教一处,,年底前\n", "row 3, column 序号", "duplicate"),
        ('1,张华,"民族\n工作处",,年底前\n', "row 2, column 牵头单位", ""),
    ],
)
def test_it_refuses_a_bad_assignment_row_naming_file_row_and_column_and_imports_nothing(
    loaded: Cli, tmp_path: Path, rows: str, where: str, words: str
) -> None:
    before = status_json(loaded)
    result = loaded("import-assignments", str(_assignments(tmp_path, rows)), ok=False)
    assert result.exit_code == 1
    assert f"tasks.csv, {where}" in result.output
    assert words in result.output
    assert status_json(loaded) == before


def test_it_refuses_an_invalid_email_naming_the_row(run: Cli, tmp_path: Path) -> None:
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    path = tmp_path / "units.csv"
    path.write_text("单位,邮箱\n办公室,office@example.org\n法规处,fagui@example..org\n", encoding="utf-8")
    result = run("import-units", str(path), ok=False)
    assert "units.csv, row 3, column 邮箱" in result.output and "fagui@example..org" in result.output


def test_it_splits_several_addresses_of_a_unit(loaded: Cli) -> None:
    result = loaded("send", "--cycle", "2021-06", "--kind", "reminders", "--dry-run")
    assert "政策法规处 <fagui@example.org, fagui.backup@example.org>" in result.output


def test_it_refuses_an_unknown_leader_of_a_unit(run: Cli, tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("单位,邮箱,分管领导\n办公室,office@example.org,无名氏\n", encoding="utf-8")
    result = run("import-units", str(path), ok=False)
    assert "units.csv, row 2, column 分管领导" in result.output and "无名氏" in result.output


def test_it_refuses_an_unknown_scope(run: Cli, tmp_path: Path) -> None:
    path = tmp_path / "leaders.csv"
    path.write_text("姓名,职务,邮箱,接收范围\n王五,局长,wang@example.org,部分\n", encoding="utf-8")
    result = run("import-leaders", str(path), ok=False)
    assert "leaders.csv, row 2, column 接收范围" in result.output


def test_it_asks_for_init_on_a_database_never_initialised(tmp_path: Path) -> None:
    from tests.conftest import write_config

    fresh = Cli(write_config(tmp_path / "fresh.toml", f"sqlite:///{tmp_path / 'new.sqlite3'}"))
    result = fresh("status", ok=False)
    assert "reminders init" in result.output


def test_it_reads_a_breakdown_table_with_section_rows_and_responsible_units(run: Cli, tmp_path: Path) -> None:
    """责任单位 lists the lead first [HZ]; section heading rows and an empty deadline (inferred 12-31) are accepted."""
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    run("import-units", str(EXAMPLES / "units.csv"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["序号", "工作任务", "责任领导", "责任单位", "完成时限"])
    sheet.append(["一、深入贯彻学习习近平新时代中国特色社会主义思想和十九届五中全会精神"])
    sheet.append([1, "持续抓好…", "王建国", "机关党委、办公室", "长期坚持"])
    sheet.append([2, "认真学习…", None, "宗教一处，宗教二处", None])
    path = tmp_path / "breakdown.xlsx"
    book.save(path)
    assert "新增 added: 2  (1、2)" in run("import-assignments", str(path)).output
    tasks = status_json(run)
    assert tasks[0]["lead_unit"] == "机关党委" and tasks[0]["co_units"] == ["办公室"]
    assert tasks[1]["lead_unit"] == "宗教一处" and tasks[1]["leader"] == "张华"  # the lead unit's 分管领导
    assert tasks[1]["deadline"] == "2021-12-31"


def test_it_refuses_a_table_without_any_unit_column(run: Cli, tmp_path: Path) -> None:
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    path = _assignments(tmp_path, "")
    path.write_text("序号,完成时限\n1,年底前\n", encoding="utf-8")
    assert "tasks.csv: 缺少“牵头单位”或“责任单位”列" in run("import-assignments", str(path), ok=False).output


def test_it_refuses_a_header_injection_in_a_unit_name(run: Cli, tmp_path: Path, smtp: RecordingServer) -> None:
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    path = tmp_path / "units.csv"
    path.write_bytes('单位,邮箱\n"办公室\r\nBcc: evil@example.org",bgs@example.org\n'.encode())
    result = run("import-units", str(path), ok=False)
    assert "units.csv, row 2, column 单位" in result.output
    assert "无变化" not in result.output and smtp.messages == []
