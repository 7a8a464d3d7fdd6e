"""No character a ledger (XLSX is XML 1.0) or a mail header cannot carry gets in, and the ledger export never fails.

Issue 11, finding 2: U+FFFE passed the report form and made the exported XLSX unreadable; control characters in
imported names made `reminders export` crash and /admin/export.xlsx answer 500; a NUL in a 办结 note gave a 500 on
PostgreSQL. Every way text gets in is tried here (the form, the office's actions, the CLI, every import), on SQLite
and PostgreSQL; the ledger is exported from rows holding such characters put straight into the database.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, update

from reminders.intake.planparse import PlanError, read_plan
from reminders.store.db import session_scope
from reminders.store.models import DeadlineChange, ProgressReport, Task, Unit
from reminders.text import LINE_BREAKS, REPLACEMENT, first_refused, writable
from reminders.tracking import ledger
from reminders.tracking.reporting import FIELD_NAMES, Answer, FormError, submit
from tests.conftest import EXAMPLES, Cli
from tests.webenv import library
from tests.websupport import Site, answer, open_site

XML_ILLEGAL = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"]
ALSO_REFUSED = ["\x7f", "\x80", "\x9f"]  # DEL and the C1 controls
FINE = ["\t", "\n", "\r", " ", "\u00a0", "\u3000", "\u200b", "\ue000", "\ufffd", "\U0001f600", "\U0010ffff", "中"]
HEADER_BREAKS = ["\n", "\r", "\u2028", "\u2029", "\x85"]


def code(char: str) -> str:
    return f"U+{ord(char):04X}"


def read_xlsx(data: bytes) -> list[tuple[object, ...]]:
    """The ledger's rows as openpyxl reads them back: the proof the file opens."""
    return list(openpyxl.load_workbook(io.BytesIO(data))[ledger.SHEET].iter_rows(values_only=True))


def xml_safe(value: object) -> bool:
    return not isinstance(value, str) or first_refused(value) is None


# ---------------------------------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", XML_ILLEGAL + ALSO_REFUSED)
def test_the_rule_names_the_first_refused_character_and_its_position(char: str) -> None:
    found = first_refused(f"进展\n情况{char}好\ufffe")
    assert found is not None and (found.code, found.position) == (code(char), 6)
    assert code(char) in found.message() and "第 6 个字符" in found.message()
    assert writable(f"a{char}b") == f"a{REPLACEMENT}b"


def test_the_rule_allows_line_breaks_only_in_free_text() -> None:
    for char in FINE:
        assert first_refused(f"a{char}b") is None, code(char)
    for char in HEADER_BREAKS:
        found = first_refused(f"单位{char}名", single_line=True)
        assert found is not None and found.position == 3 and found.code in found.message()
        assert found.line_break == (char != "\x85")  # U+0085 is a C1 control, refused in any text
    assert first_refused("财政局\t（本级）", single_line=True) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters() | st.sampled_from(XML_ILLEGAL + HEADER_BREAKS), max_size=40))
def test_any_text_the_rule_allows_goes_into_an_xlsx_file_and_comes_back(text: str) -> None:
    """Free text the rule lets in is written into a workbook and read back unchanged; a single-line value the rule
    lets in is one line for every reader (what a mail header needs); `writable` always yields text the rule allows."""
    assert first_refused(writable(text)) is None
    if first_refused(text) is not None:
        return
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["A1"].value = text
    sheet["A1"].data_type = "s"
    buffer = io.BytesIO()
    book.save(buffer)
    back = openpyxl.load_workbook(io.BytesIO(buffer.getvalue())).active
    assert back is not None
    value = back["A1"].value
    assert (value or "") == text
    if first_refused(text, single_line=True) is None:
        assert not any(char in LINE_BREAKS for char in text) and len(text.splitlines()) <= 1


# ---------------------------------------------------------------------------------------------------------------
# The report form, the office's actions, the CLI
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def site(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with open_site(loaded, monkeypatch) as site:
        yield site


@pytest.mark.parametrize("field", ["note", "problems", "next_steps", "reason"])
@pytest.mark.parametrize("char", ["\ufffe", "\uffff", "\x01", "\x00", "\x9f"])
def test_the_form_refuses_a_character_the_ledger_cannot_carry_naming_the_field(
    site: Site, field: str, char: str
) -> None:
    fields = {"note": "已完成", "reason": "招标延后", field: f"已完成{char}第二期"}
    form = answer("13", fields["note"], status="extension", new_deadline="2022-03-31", reason=fields["reason"],
                  problems=fields.get("problems", ""), next_steps=fields.get("next_steps", ""))
    response = site.client.post(site.link("信息中心"), data=form)
    assert response.status_code == 400, response.text
    assert f"{FIELD_NAMES[field]}含有非法字符 {code(char)}（第 4 个字符）" in response.text
    assert site.reports("13") == []


def test_the_form_refuses_every_bad_field_at_once_and_records_nothing(loaded: Cli) -> None:
    env = library(loaded)
    with session_scope(env.engine) as session, pytest.raises(FormError) as caught:
        submit(session, env.config, env.unit_id("信息中心"), "2021-06", [
            Answer("13", "a\ufffe", 10, "extension", problems="\uffffb", next_steps="c\x0bd",
                   new_deadline=date(2022, 3, 31), reason="\ud800")], date(2021, 6, 22))
    assert caught.value.errors == {
        "13.note": "进展情况含有非法字符 U+FFFE（第 2 个字符），请删除后重试 (character U+FFFE at position 2 is not "
                   "allowed)",
        "13.problems": "存在问题及需协调事项含有非法字符 U+FFFF（第 1 个字符），请删除后重试 (character U+FFFF at "
                       "position 1 is not allowed)",
        "13.next_steps": "下一步措施含有非法字符 U+000B（第 2 个字符），请删除后重试 (character U+000B at position 2 "
                         "is not allowed)",
        "13.reason": "延期理由含有非法字符 U+D800（第 1 个字符），请删除后重试 (character U+D800 at position 1 is not "
                     "allowed)",
    }
    with session_scope(env.engine) as session:
        assert session.scalar(select(func.count()).select_from(ProgressReport)) == 0


@pytest.mark.parametrize("char", ["\x00", "\ufffe", "\x07"])
def test_the_office_cannot_close_a_task_with_a_note_the_ledger_cannot_carry(site: Site, char: str) -> None:
    """A NUL in the 办结 note gave a 500 on PostgreSQL; U+FFFE went into the ledger."""
    token = site.login()
    response = site.client.post("/admin/tasks/19/done", data={"csrf": token, "note": f"已办{char}结"})
    assert response.status_code == 400, response.text
    assert "无法办结" in response.text and f"办结说明含有非法字符 {code(char)}（第 3 个字符）" in response.text
    assert site.reports("19") == []
    nul_task = site.client.post("/admin/tasks/1%00/done", data={"csrf": token, "note": "已办结"})
    assert nul_task.status_code in (400, 404)


def test_the_office_cannot_decide_an_extension_with_a_reason_the_ledger_cannot_carry(site: Site) -> None:
    token = site.login()
    form = answer("13", "系统开发中", status="extension", new_deadline="2022-03-31", reason="招标延后")
    assert site.client.post(site.link("信息中心"), data=form).status_code == 200
    report_id = site.reports("13")[-1].id
    response = site.client.post(f"/admin/extensions/{report_id}",
                                data={"csrf": token, "decision": "approve", "reason": "同意\uffff"})
    assert response.status_code == 400 and "审核意见含有非法字符 U+FFFF（第 3 个字符）" in response.text
    with session_scope(site.engine) as session:
        assert session.scalar(select(func.count()).select_from(DeadlineChange)) == 0
    ok = site.client.post(f"/admin/extensions/{report_id}",
                          data={"csrf": token, "decision": "approve", "reason": "同意"})
    assert ok.status_code == 200 and "已同意延期" in ok.text


def test_the_cli_refuses_a_progress_note_it_cannot_carry_and_records_nothing(loaded: Cli) -> None:
    refused = loaded("progress", "3", "--unit", "民族工作处", "--note", "宣讲\ufffe12场", "--date", "2021-06-20",
                     ok=False)
    assert refused.exit_code == 1
    assert "进展情况含有非法字符 U+FFFE（第 3 个字符）" in refused.output
    assert "尚无进展报告" in loaded("progress", "list", "3").output
    loaded("progress", "3", "--unit", "民族工作处", "--note", "宣讲12场", "--date", "2021-06-20")
    report_id = json.loads(loaded("progress", "list", "3", "--format", "json").output)[0]["id"]
    amended = loaded("progress", "amend", str(report_id), "--note", "宣讲\x1b14场", ok=False)
    assert amended.exit_code == 1 and "进展情况含有非法字符 U+001B（第 3 个字符）" in amended.output


# ---------------------------------------------------------------------------------------------------------------
# Imports: plans and tables, all or nothing
# ---------------------------------------------------------------------------------------------------------------


def _counts(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        return (session.scalar(select(func.count()).select_from(Unit)) or 0,
                session.scalar(select(func.count()).select_from(Task)) or 0)


@pytest.mark.parametrize("char", ["\x01", "\ufffe", "\x7f"])
def test_an_imported_name_with_a_control_character_is_refused_naming_file_row_and_column(
    loaded: Cli, tmp_path: Path, char: str
) -> None:
    env = library(loaded)
    before = _counts(env.engine)
    lines = (EXAMPLES / "units.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("宗教一处", f"宗教{char}一处")
    lines.append(f"新单位,new@example.org,王{char}五,张华")
    path = tmp_path / "units.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = loaded("import-units", str(path), ok=False)
    assert result.exit_code == 1
    assert f"{path}, row 4, column 单位: 含有非法字符 {code(char)}（第 3 个字符）" in result.output
    assert f"row {len(lines)}, column 联系人: 含有非法字符 {code(char)}（第 2 个字符）" in result.output
    assert "未导入任何内容" in result.output and _counts(env.engine) == before


def test_an_xlsx_cell_with_a_control_character_is_refused(loaded: Cli, tmp_path: Path) -> None:
    """XML cannot carry C0 controls, but it carries DEL and the C1 controls (mojibake of a wrong encoding)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["姓名", "职务", "邮箱"], ["王建国", "局长\x7f", "wang@example.org"]):
        sheet.append(row)
    path = tmp_path / "leaders.xlsx"
    book.save(path)
    result = loaded("import-leaders", str(path), ok=False)
    assert result.exit_code == 1 and result.output.startswith(f"Error: {path}, row 2, column 职务: ")


@pytest.mark.parametrize("char", ["\ufffe", "\x0b", "\x1a", "\x85"])
def test_a_plan_line_with_a_character_the_ledger_cannot_carry_is_refused_naming_the_line(
    tmp_path: Path, char: str
) -> None:
    text = (EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8").replace("\n", "\r")  # old Mac line ends
    lines = text.split("\r")
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("3."))
    column = lines[at].index("3.") + 4
    lines[at] = lines[at][:column] + char + lines[at][column:]
    path = tmp_path / "plan.txt"
    path.write_text("\r".join(lines), encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        read_plan(path)
    assert caught.value.line == at + 1
    assert f"含有非法字符 {code(char)}（第 {column + 1} 个字符）" in caught.value.message


def test_a_page_break_in_a_plan_is_no_text(tmp_path: Path) -> None:
    """Word's "plain text" export puts a form feed (U+000C) at each page break: it is dropped, not refused."""
    text = (EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8")
    path = tmp_path / "plan.txt"
    path.write_text(text.replace("\n3.", "\n\x0c3."), encoding="utf-8")
    parsed, plain = read_plan(path), read_plan(EXAMPLES / "plan-2021.txt")
    assert parsed.tasks == plain.tasks


def test_a_plan_title_given_on_the_command_line_is_checked(loaded: Cli, tmp_path: Path) -> None:
    path = tmp_path / "flat.txt"
    path.write_text("1.加强宣传教育。\n2.推进创建工作，6月底前完成。\n", encoding="utf-8")
    result = loaded("import-plan", str(path), "--title", "市民宗局\u20282021年重点任务", "--year", "2021", ok=False)
    assert result.exit_code == 1 and "--title" in result.output and "U+2028" in result.output


# ---------------------------------------------------------------------------------------------------------------
# The ledger: always exported, always readable, whatever older rows hold
# ---------------------------------------------------------------------------------------------------------------


def _poison(site: Site, db_url: str) -> str:
    """Rows stored before the rule: a unit name, a task title and a note holding characters XML cannot carry."""
    bad = "\x00" if db_url.startswith("sqlite") else ""  # PostgreSQL itself refuses NUL in text
    with session_scope(site.engine) as session:
        submit(session, site.config, site.unit_id("信息中心"), "2021-06",
               [Answer("13", "系统开发中", 50, "progress")], date(2021, 6, 21))
    with session_scope(site.engine) as session:
        session.execute(update(Unit).where(Unit.name == "信息中心").values(name=f"信息\x01中心{bad}"))
        session.execute(update(Task).where(Task.number == "13").values(title=f"建设\ufffe系统\uffff{bad}"))
        session.execute(update(ProgressReport).values(note=f"开发\x1f中\ud7ff{bad}_x0041_"))
    return bad


def test_the_ledger_exports_and_opens_whatever_older_rows_hold(
    site: Site, loaded: Cli, db_url: str, tmp_path: Path
) -> None:
    tail = REPLACEMENT if _poison(site, db_url) else ""
    expected = (f"建设{REPLACEMENT}系统{REPLACEMENT}{tail}", f"信息{REPLACEMENT}中心{tail}",
                f"信息{REPLACEMENT}中心{tail}：开发{REPLACEMENT}中\ud7ff{tail}_x0041_")
    out = tmp_path / "ledger.xlsx"
    loaded("export", "--format", "xlsx", "--out", str(out), "--as-of", "2021-06-22")
    site.login()
    response = site.client.get("/admin/export.xlsx")
    assert response.status_code == 200
    for data in (out.read_bytes(), response.content):
        rows = read_xlsx(data)
        assert len(rows) == 22 and all(xml_safe(value) for row in rows for value in row)  # title, plan, header
        row = next(r for r in rows if r[0] == 13)
        assert (row[2], row[4], row[11]) == expected
    csv_out = tmp_path / "ledger.csv"
    loaded("export", "--format", "csv", "--out", str(csv_out), "--as-of", "2021-06-22")
    for text in (csv_out.read_text(encoding="utf-8-sig"), site.client.get("/admin/export.csv").text):
        records = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
        assert len(records) == 20 and first_refused(text) is None
        assert next(r for r in records if r[0] == "13")[11] == expected[2]


def test_an_old_note_holding_a_terminal_escape_is_listed_harmlessly(loaded: Cli) -> None:
    env = library(loaded)
    loaded("progress", "3", "--unit", "民族工作处", "--note", "宣讲12场", "--date", "2021-06-20")
    with session_scope(env.engine) as session:
        session.execute(update(ProgressReport).values(note="宣讲\x1b[2J12场"))
    listed = loaded("progress", "list", "3").output
    assert "\x1b" not in listed and f"宣讲{REPLACEMENT}[2J12场" in listed


# ---------------------------------------------------------------------------------------------------------------
# Property: any text is refused naming the field, or comes back out of the ledger as it was recorded
# ---------------------------------------------------------------------------------------------------------------

_INTERESTING = st.sampled_from(XML_ILLEGAL + ALSO_REFUSED + FINE + HEADER_BREAKS + ["_x0041_", "=1+1", "'", "\r\n"])
_PIECE = st.text(max_size=8) | st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8) | _INTERESTING


@pytest.fixture(scope="module")
def ledger_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    from tests.conftest import write_config

    folder = tmp_path_factory.mktemp("ledger-property")
    cli = Cli(write_config(folder / "reminders.toml", f"sqlite:///{folder / 'reminders.sqlite3'}"))
    cli("init")
    for command, name in (("import-plan", "plan-2021.txt"), ("import-leaders", "leaders.csv"),
                          ("import-units", "units.csv"), ("import-assignments", "assignments.csv")):
        cli(command, str(EXAMPLES / name))
    yield cli


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(note=st.lists(_PIECE, max_size=6).map("".join), field=st.sampled_from(
    ["note", "problems", "next_steps", "reason"]))
@example(note="进展\ufffe", field="note")
@example(note="_x0041_ 原样", field="note")
@example(note="=HYPERLINK(\"x\")", field="note")
def test_any_text_is_refused_naming_the_field_or_round_trips_through_the_ledger(
    ledger_db: Cli, note: str, field: str
) -> None:
    env = library(ledger_db)
    texts = {"note": "开发中", "problems": "", "next_steps": "", "reason": "招标延后", field: note}
    given_answer = Answer("13", texts["note"], None, "extension", problems=texts["problems"],
                          next_steps=texts["next_steps"], new_deadline=date(2022, 3, 31), reason=texts["reason"])
    try:
        with session_scope(env.engine) as session:
            submit(session, env.config, env.unit_id("信息中心"), "2021-06", [given_answer], date(2021, 6, 22))
    except FormError as exc:
        assert set(exc.errors) == {f"13.{field}"} and FIELD_NAMES[field] in exc.errors[f"13.{field}"]
        assert first_refused(note) is not None or not note.strip() or len(note) > 2000
        event("refused")
        return
    assert first_refused(note) is None
    event("recorded")
    with session_scope(env.engine) as session:
        data = ledger.export_ledger_xlsx(session, env.config, date(2021, 6, 22))
        stored = session.scalars(select(ProgressReport).order_by(ProgressReport.id.desc()).limit(1)).one()
    row = next(r for r in read_xlsx(data) if r[0] == 13)
    assert row[11] == f"信息中心：{stored.note}"
    assert getattr(stored, "request_reason" if field == "reason" else field) == note.replace(
        "\r\n", "\n").replace("\r", "\n").strip()
    env.engine.dispose()
