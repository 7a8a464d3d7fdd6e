"""Tables as offices bring them: footnotes and merged titles, every error in one run, changes listed old → new,
addresses checked the way relays read them, the office's approved extensions kept, progress on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import docx
import openpyxl
import pytest
from sqlalchemy import select

from reminders.store.db import make_engine, session_scope
from reminders.store.models import Leader, Unit
from reminders.tracking import office
from reminders.tracking.reporting import Answer, submit
from tests.conftest import EXAMPLES, Cli, write_config
from tests.webenv import library

HEADER = "序号,责任领导,牵头单位,配合单位,完成时限\n"
ASSIGNMENTS = (EXAMPLES / "assignments.csv").read_text(encoding="utf-8")


def status_json(run: Cli) -> list[dict[str, object]]:
    result: list[dict[str, object]] = json.loads(run("status", "--as-of", "2021-06-20", "--format", "json").output)
    return result


def by_number(run: Cli) -> dict[object, dict[str, object]]:
    return {task["number"]: task for task in status_json(run)}


def test_it_skips_footnote_blank_and_merged_title_rows_of_a_breakdown_table(loaded: Cli, tmp_path: Path) -> None:
    """Before: `计划中没有第 注：完成时限以市委要求为准 项任务`."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["郑州市民族宗教事务局2021年重点工作任务分解表"])
    sheet.merge_cells("A1:E1")
    sheet.append(["序号", "责任领导", "牵头单位", "配合单位", "完成时限"])
    sheet.append(["一、深入贯彻学习习近平新时代中国特色社会主义思想"])
    sheet.merge_cells("A3:E3")
    sheet.append([3, "张华", "民族工作处", "办公室", "2021年9月底前"])
    sheet.append([])
    sheet.append([4, "张华", "民族工作处", None, "年底前"])
    sheet.append(["注：完成时限以市委要求为准"])
    sheet.merge_cells("A7:E7")
    sheet.append(["说明", "配合单位应于每月20日前向牵头单位报送进展"])
    sheet.append(["各单位务必高度重视，认真抓好落实。"])
    path = tmp_path / "分解表.xlsx"
    book.save(path)

    result = loaded("import-assignments", str(path))

    assert result.output.splitlines() == [
        "更新 updated: 1  (3)",
        "未变 unchanged: 1",
        "  任务 3：完成时限 2021-10-31（2021年10月） → 2021-09-30（2021年9月底前）",
        "跳过非数据行 skipped rows that are not data: 4",
        "  第 3 行“一、深入贯彻学习习近平新时代中国特色社会主义思想” (row 3: not data)",
        "  第 7 行“注：完成时限以市委要求为准” (row 7: not data)",
        "  第 8 行“说明” (row 8: not data)",
        "  第 9 行“各单位务必高度重视，认真抓好落实。” (row 9: not data)",
    ]
    assert by_number(loaded)["3"]["deadline"] == "2021-09-30"


def test_it_skips_a_footnote_in_a_csv_and_the_rows_that_continue_it(loaded: Cli, tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text(ASSIGNMENTS + "注：1.完成时限以市委要求为准,,,,\n2.配合单位按职责分工负责,,,,\n", encoding="utf-8")
    result = loaded("import-assignments", str(path))
    assert "无变化 (nothing changed; 19 unchanged)" in result.output
    assert "跳过非数据行 skipped rows that are not data: 2" in result.output


def test_it_reports_every_bad_row_of_a_table_in_one_run_and_imports_nothing(loaded: Cli, tmp_path: Path) -> None:
    before = status_json(loaded)
    path = tmp_path / "tasks.csv"
    path.write_text(HEADER + "1,王建国,机关党委,,长期坚持\n"
                    "2,张华,不存在处,,年底前\n"
                    "3,赵六,民族工作处,,年底前\n"
                    "4,张华,民族工作处,火星处,今年吧\n"
                    ",张华,民族工作处,,年底前\n"
                    "5,张华,宗教一处,,下个月吧\n"
                    "99,张华,宗教一处,,年底前\n", encoding="utf-8")

    result = loaded("import-assignments", str(path), ok=False)

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: {path}：共 7 处错误，未导入任何内容 (7 errors; nothing was imported)",
        f"  {path}, row 3, column 牵头单位: 未知的单位 “不存在处”，请先导入单位名单 (unknown unit)",
        f"  {path}, row 4, column 责任领导: 未知的领导 “赵六” (unknown leader)",
        f"  {path}, row 5, column 配合单位: 未知的单位 “火星处”，请先导入单位名单 (unknown unit)",
        f"  {path}, row 5, column 完成时限: 无法识别的完成时限 “今年吧” (unknown deadline phrase)",
        f"  {path}, row 6, column 序号: 必填项为空 (required value is empty)",
        f"  {path}, row 7, column 完成时限: 无法识别的完成时限 “下个月吧” (unknown deadline phrase)",
        f"  {path}, row 8, column 序号: 计划中没有第 99 项任务 "
        "(task not in the plan “郑州市民族宗教事务局2021年工作计划”)",
    ]
    assert status_json(loaded) == before


def test_it_reports_every_bad_cell_of_a_row(run: Cli, tmp_path: Path) -> None:
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    path = tmp_path / "units.csv"
    path.write_text("单位,邮箱,联系人,分管领导\n办公室,bangongshi@example,刘洋,无名氏\n", encoding="utf-8")
    assert run("import-units", str(path), ok=False).output.splitlines() == [
        f"Error: {path}：共 2 处错误，未导入任何内容 (2 errors; nothing was imported)",
        f"  {path}, row 2, column 邮箱: 无效的邮箱地址 “bangongshi@example” (invalid email address)",
        f"  {path}, row 2, column 分管领导: 未知的领导 “无名氏”，请先导入领导名单 (unknown leader)",
    ]


def test_it_lists_the_first_50_errors_and_counts_the_rest(run: Cli, tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("单位,邮箱\n" + "".join(f"处室{n},bad{n}@example\n" for n in range(60)), encoding="utf-8")
    lines = run("import-units", str(path), ok=False).output.splitlines()
    assert lines[0] == f"Error: {path}：共 60 处错误，未导入任何内容 (60 errors; nothing was imported)"
    assert lines[1] == f"  {path}, row 2, column 邮箱: 无效的邮箱地址 “bad0@example” (invalid email address)"
    assert lines[50] == f"  {path}, row 51, column 邮箱: 无效的邮箱地址 “bad49@example” (invalid email address)"
    assert lines[51:] == ["  …另有 10 处错误未列出 (…and 10 more)"]


def test_a_reimport_lists_each_change_old_to_new(loaded: Cli, tmp_path: Path) -> None:
    path = tmp_path / "assignments.csv"
    changed = ASSIGNMENTS.replace("3,张华,民族工作处,办公室,2021年10月",
                                  "3,李明,宗教一处,办公室、信息中心,2021年9月30日")
    path.write_text(changed, encoding="utf-8")
    result = loaded("import-assignments", str(path))
    assert result.output.splitlines() == [
        "更新 updated: 1  (3)",
        "未变 unchanged: 18",
        "  任务 3：责任领导 张华 → 李明",
        "  任务 3：牵头单位 民族工作处 → 宗教一处",
        "  任务 3：完成时限 2021-10-31（2021年10月） → 2021-09-30（2021年9月30日）",
        "  任务 3：配合单位 办公室 → 办公室、信息中心",
    ]
    units = tmp_path / "units.csv"
    units.write_text((EXAMPLES / "units.csv").read_text(encoding="utf-8").replace(
        "信息中心,xinxi@example.org,黄涛", "信息中心,xxzx@example.org,何静"), encoding="utf-8")
    assert loaded("import-units", str(units)).output.splitlines() == [
        "更新 updated: 1  (信息中心)",
        "未变 unchanged: 6",
        "  信息中心：邮箱 xinxi@example.org → xxzx@example.org",
        "  信息中心：联系人 黄涛 → 何静",
    ]


def test_a_changed_plan_lists_each_changed_task(loaded: Cli, tmp_path: Path) -> None:
    plan = tmp_path / "plan.txt"
    plan.write_text((EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8").replace(
        "9.做好涉疆服务管理工作。", "9.做好涉疆服务保障工作。"), encoding="utf-8")
    output = loaded("import-plan", str(plan)).output
    assert "  任务 9：标题 做好涉疆服务管理工作 → 做好涉疆服务保障工作" in output.splitlines()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("boss@exаmple.org", "邮箱地址 “boss@exаmple.org” 的域名混用了拉丁字母和西里尔字母（“а” U+0430），"
                             "疑似仿冒的域名，请核对 (look-alike domain: Latin and Cyrillic letters mixed)"),
        ("bоss@example.org", "邮箱地址 “bоss@example.org” 的用户名（@ 之前）含有非 ASCII 字符，邮件服务器不接受 "
                             "(the part before @ must be ASCII)"),
        ("王科长@example.org", "邮箱地址 “王科长@example.org” 的用户名（@ 之前）含有非 ASCII 字符，邮件服务器不接受 "
                              "(the part before @ must be ASCII)"),
    ],
)
def test_it_refuses_addresses_relays_refuse_naming_file_row_and_column(run: Cli, tmp_path: Path, db_url: str,
                                                                        address: str, message: str) -> None:
    path = tmp_path / "leaders.csv"
    path.write_text(f"姓名,职务,邮箱\n王建国,局长,wang@example.org\n李明,副局长,{address}\n", encoding="utf-8")
    result = run("import-leaders", str(path), ok=False)
    assert result.output == f"Error: {path}, row 3, column 邮箱: {message}\n"
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        assert session.scalars(select(Leader.name)).all() == []
    engine.dispose()


def test_it_stores_an_internationalised_domain_as_punycode(run: Cli, tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "units.csv"
    path.write_text("单位,邮箱\n信息中心,xinxi@信息中心.中国; backup@例子.公司\n", encoding="utf-8")
    run("import-units", str(path))
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        assert session.scalar(select(Unit.emails)) == "xinxi@xn--fiq54bt33avta.xn--fiqs8s;backup@xn--fsqu00a.xn--55qx5d"
    engine.dispose()


def _approved_extension(loaded: Cli) -> None:
    """信息中心 asks to move task 13 (2021-12-31) to 2022-03-31; the office approves."""
    env = library(loaded)
    with session_scope(env.engine) as session:
        [report_id] = submit(session, env.config, env.unit_id("信息中心"), "2021-06",
                             [Answer("13", "系统开发中", 50, "extension", new_deadline=date(2022, 3, 31),
                                     reason="招标延后")], date(2021, 6, 22))
    with session_scope(env.engine) as session:
        office.decide_extension(session, report_id, True, "ducha", "同意", datetime(2021, 6, 22, 9, 0, tzinfo=UTC))
    env.engine.dispose()


def test_an_approved_extension_survives_a_reimport_of_the_assignments(loaded: Cli) -> None:
    _approved_extension(loaded)
    result = loaded("import-assignments", str(EXAMPLES / "assignments.csv"))
    assert result.output.splitlines() == [
        "assignments.csv：无变化 (nothing changed; 19 unchanged)",
        "保留督查室的决定 kept the office's decision: 1",
        "  任务 13：督查室已批准延期至 2022-03-31（延期至2022年3月31日），表中为 2021-12-31（2021年12月31日），"
        "保留已批准的延期；以表为准请加 --replace-approved (kept the approved extension)",
    ]
    assert by_number(loaded)["13"]["deadline"] == "2022-03-31"


def test_replace_approved_takes_the_tables_deadline(loaded: Cli) -> None:
    _approved_extension(loaded)
    result = loaded("import-assignments", str(EXAMPLES / "assignments.csv"), "--replace-approved")
    assert result.output.splitlines() == [
        "更新 updated: 1  (13)",
        "未变 unchanged: 18",
        "  任务 13：完成时限 2022-03-31（延期至2022年3月31日） → 2021-12-31（2021年12月31日）",
        "保留督查室的决定 kept the office's decision: 1",
        "  任务 13：按 --replace-approved 以表为准，已批准的延期 2022-03-31（延期至2022年3月31日） 改为 "
        "2021-12-31（2021年12月31日） (approved extension replaced by the table's deadline)",
    ]
    assert by_number(loaded)["13"]["deadline"] == "2021-12-31"
    assert "保留" not in loaded("import-assignments", str(EXAMPLES / "assignments.csv")).output


def test_it_imports_a_docx_plan_without_a_title_given_title_and_year(run: Cli, tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("1.加强中华民族共同体意识宣传教育。开展好主题教育活动。")
    document.add_paragraph("2.全面深入持久推进民族团结进步创建工作。")
    path = tmp_path / "重点任务.docx"
    document.save(path)
    refused = run("import-plan", str(path), ok=False)
    assert refused.output == (f"Error: {path}, line 1: 缺少标题，文件以编号条目开头；请用 --title 给出计划标题 "
                              "(no title line: give one with --title)\n")
    result = run("import-plan", str(path), "--title", "市民宗局重点工作任务", "--year", "2021")
    assert result.output.splitlines()[0] == "《市民宗局重点工作任务》: 0 个部分 sections, 2 项任务 tasks"
    assert [(t["number"], t["title"]) for t in status_json(run)] == [
        ("1", "加强中华民族共同体意识宣传教育"), ("2", "全面深入持久推进民族团结进步创建工作")]


def _cli_env(tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    config = write_config(tmp_path / "reminders.toml", f"sqlite:///{tmp_path / 'r.sqlite3'}")
    command = [sys.executable, "-m", "reminders", "--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*command, "init"], check=True, capture_output=True, env=env)
    units = tmp_path / "units.csv"
    units.write_text("单位,邮箱\n" + "".join(f"单位{n},u{n}@example.org\n" for n in range(1, 1201)), encoding="utf-8")
    return command, env, units


def test_a_long_import_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    command, env, units = _cli_env(tmp_path)
    master, slave = pty.openpty()
    with subprocess.Popen([*command, "import-units", str(units)], stdout=subprocess.PIPE, stderr=slave,
                          env=env) as process:
        os.close(slave)
        seen = b""
        while chunk := _read(master):
            seen += chunk
        stdout = process.stdout.read() if process.stdout else b""
    os.close(master)
    assert process.returncode == 0
    assert seen.decode() == ("\r导入中 importing units.csv: 500/1200\r导入中 importing units.csv: 1000/1200"
                             "\r导入中 importing units.csv: 1200/1200\r\n")
    first_30 = "、".join(f"单位{n}" for n in range(1, 31))
    assert stdout.decode().splitlines()[0] == f"新增 added: 1200  ({first_30} …)"


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # the terminal's other end is closed: the process has exited
        return b""


def test_a_long_import_is_quiet_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    command, env, units = _cli_env(tmp_path)
    result = subprocess.run([*command, "import-units", str(units)], capture_output=True, env=env)
    assert (result.returncode, result.stderr) == (0, b"")
