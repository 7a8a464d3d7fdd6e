"""Importing the plan and the tables through the CLI, on SQLite and PostgreSQL."""

import json
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from reminders.intake.importer import import_assignments, import_leaders, import_plan, import_units
from reminders.intake.planparse import parse_plan
from reminders.store.db import make_engine, session_scope, upgrade
from reminders.store.models import Assignment, CoUnit
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


# Changes in place, and no query per row ------------------------------------------------------------------------


def test_it_marks_tasks_a_changed_plan_drops_as_removed_and_restores_them(loaded: Cli, tmp_path: Path) -> None:
    text = (EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8")
    start = text.index("18.强化监督执纪问责")
    path = tmp_path / "plan-2021-short.txt"
    path.write_text(text[:start] + text[text.index("\n\n", start):], encoding="utf-8")  # without tasks 18 and 19
    result = loaded("import-plan", str(path))
    assert "移除 removed: 2  (18、19)" in result.output and "未变 unchanged: 17" in result.output
    assert [t["number"] for t in status_json(loaded)] == [str(n) for n in range(1, 18)]
    result = loaded("import-plan", str(EXAMPLES / "plan-2021.txt"))
    assert "新增 added: 2  (18、19)" in result.output and "未变 unchanged: 17" in result.output
    tasks = status_json(loaded)
    assert [t["number"] for t in tasks] == [str(n) for n in range(1, 20)]
    assert tasks[18]["lead_unit"] == "办公室"  # the assignment of a restored task comes back with it


def test_it_replaces_co_units_in_the_order_given_without_the_lead_unit(loaded: Cli, tmp_path: Path) -> None:
    rows = ("1,王建国,机关党委,宗教二处、办公室,长期坚持\n"  # co-units changed
            "2,张华,宗教一处,民族工作处、宗教一处、宗教二处,2021年6月底前\n"  # reordered; the lead named as co-unit
            "3,张华,民族工作处,办公室,2021年11月\n"  # the deadline changed
            "4,张华,民族工作处,,年底前\n"  # as it was
            "5,张华,民族工作处,,三季度末\n"  # co-units dropped
            "6,张华,民族工作处,办公室、办公室,2021年9月30日\n")  # a co-unit added, named twice
    path = _assignments(tmp_path, rows)
    result = loaded("import-assignments", str(path))
    assert "更新 updated: 5  (1、2、3、5、6)" in result.output and "未变 unchanged: 1" in result.output
    tasks = {t["number"]: t for t in status_json(loaded)}
    assert tasks["1"]["co_units"] == ["宗教二处", "办公室"]
    assert tasks["2"]["lead_unit"] == "宗教一处" and tasks["2"]["co_units"] == ["民族工作处", "宗教二处"]
    assert tasks["3"]["deadline"] == "2021-11-30" and tasks["3"]["co_units"] == ["办公室"]
    assert tasks["5"]["co_units"] == [] and tasks["6"]["co_units"] == ["办公室"]
    assert tasks["7"]["co_units"] == ["政策法规处"]  # a task the file does not name keeps its assignment
    assert "无变化 (nothing changed; 6 unchanged)" in loaded("import-assignments", str(path)).output


def test_it_updates_units_and_leaders_by_name_and_leaves_the_others(loaded: Cli, tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("单位,邮箱,联系人,分管领导\n办公室,office@example.org,刘洋,李明\n民族工作处,minzu@example.org,马丽,张华\n"
                    "新设处,xinshe@example.org,,\n", encoding="utf-8")
    result = loaded("import-units", str(path))
    assert "新增 added: 1  (新设处)" in result.output and "更新 updated: 1  (办公室)" in result.output
    assert "未变 unchanged: 1" in result.output
    assert "无变化 (nothing changed; 3 unchanged)" in loaded("import-units", str(path)).output
    path = tmp_path / "leaders.csv"
    path.write_text("姓名,职务,邮箱,接收范围\n李明,局长,li.ming@example.org,全部\n", encoding="utf-8")
    assert "更新 updated: 1  (李明)" in loaded("import-leaders", str(path)).output
    tasks = {t["number"]: t for t in status_json(loaded)}
    assert tasks["13"]["leader"] == "李明" and tasks["19"]["lead_unit"] == "办公室"


def _plan_text(tasks: int, changed: bool = False) -> str:
    lines = ["2021年测试工作计划", "一、测试"]
    for n in range(1, tasks - 2 + 1 if changed else tasks + 1):  # a changed plan drops the last two tasks
        lines.append(f"{n}.任务{n}。内容。" + ("补充。" if changed and n % 3 == 0 else ""))
    return "\n".join(lines) + "\n"


def _count_statements(engine: Engine, work: Callable[[Session], object]) -> int:
    """How many statements `work` sends to the database, run in one transaction as the CLI does."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope(engine) as session:
            work(session)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def _import_counts(tmp_path: Path, tasks: int) -> dict[str, int]:
    """Statements per import of a plan of `tasks` tasks and of an assignment table with a row for each."""
    folder = tmp_path / str(tasks)
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'reminders.sqlite3'}")
    upgrade(engine)
    (folder / "leaders.csv").write_text("姓名,邮箱\n张三,zs@example.org\n李四,ls@example.org\n", encoding="utf-8")
    units = "".join(f"测试{n}处,u{n}@example.org,张三\n" for n in range(1, 6))
    (folder / "units.csv").write_text("单位,邮箱,分管领导\n" + units, encoding="utf-8")
    first, second = folder / "first.csv", folder / "second.csv"
    first.write_text("序号,牵头单位,配合单位,完成时限\n" + "".join(
        f"{n},测试1处,测试2处、测试3处,年底前\n" for n in range(1, tasks + 1)), encoding="utf-8")
    second.write_text("序号,责任领导,牵头单位,配合单位,完成时限\n" + "".join(
        f"{n},李四,测试{n % 2 + 1}处,测试3处{'、测试4处' if n % 3 else ''},{n % 12 + 1}月底前\n"
        for n in range(1, tasks + 1)), encoding="utf-8")

    def plan(text: str) -> Callable[[Session], object]:
        return lambda session: import_plan(session, parse_plan(text), "plan.txt")

    counts = {
        "plan": _count_statements(engine, plan(_plan_text(tasks))),
        "plan again": _count_statements(engine, plan(_plan_text(tasks))),
        "leaders": _count_statements(engine, lambda session: import_leaders(session, folder / "leaders.csv")),
        "units": _count_statements(engine, lambda session: import_units(session, folder / "units.csv")),
        "assignments": _count_statements(engine, lambda session: import_assignments(session, first)),
        "changed assignments": _count_statements(engine, lambda session: import_assignments(session, second)),
        "changed plan": _count_statements(engine, plan(_plan_text(tasks, changed=True))),
        "restored plan": _count_statements(engine, plan(_plan_text(tasks))),
    }
    with session_scope(engine) as session:
        assigned = session.execute(select(func.count()).select_from(Assignment)).scalar_one()
        co_units = session.execute(select(func.count()).select_from(CoUnit)).scalar_one()
    assert (assigned, co_units) == (tasks, tasks + sum(1 for n in range(1, tasks + 1) if n % 3))
    engine.dispose()
    return counts


def test_imports_make_as_many_queries_for_300_rows_as_for_30(tmp_path: Path) -> None:
    """No query per task or per row: ten times the rows, the same statements (each a batch of up to 1,000 rows)."""
    small, large = _import_counts(tmp_path, 30), _import_counts(tmp_path, 300)
    assert large == small
    assert max(small.values()) <= 12, small


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_plans_from_the_sizes_an_import_left_even_without_autovacuum(loaded: Cli, db_url: str) -> None:
    """Each import gathers the statistics of the tables it filled: without them (autovacuum off, or not yet round),
    PostgreSQL guessed the size of a table from its pages and, at 100,000 tasks, joined them row by row."""
    engine = make_engine(db_url)
    tables = ("sections", "tasks", "leaders", "units", "assignments", "assignment_co_units")
    try:
        with engine.connect() as connection:
            for table in tables:
                rows = connection.execute(text(f"select count(*) from {table}")).scalar_one()
                known = connection.execute(text("select reltuples from pg_class where oid = to_regclass(:t)"),
                                           {"t": table}).scalar_one()
                [plan] = connection.execute(text(f"explain (format json) select * from {table}")).scalar_one()
                assert rows > 0 and known == rows and plan["Plan"]["Plan Rows"] == rows, (table, rows, known, plan)
    finally:
        engine.dispose()
