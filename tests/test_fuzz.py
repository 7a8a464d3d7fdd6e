"""Bad input never crashes with a traceback and never half-writes.

Hypothesis feeds the plan parser, the table importers (through the CLI) and the config loader random text, random
bytes, truncated and re-encoded files, spliced garbage and huge lines. Each input is either accepted or refused with
the project's own error naming the file (and the line or row), and a refused import leaves the database as it was.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text

from reminders import config as config_module
from reminders.cli.app import cli
from reminders.config import ConfigError
from reminders.intake.planparse import MAX_LINE, ParsedPlan, PlanError, read_plan
from reminders.store.models import Base
from tests.conftest import EXAMPLES, write_config

PLAN = (EXAMPLES / "plan-2021.txt").read_bytes()
TABLES = {
    "leaders": (EXAMPLES / "leaders.csv").read_bytes(),
    "units": (EXAMPLES / "units.csv").read_bytes(),
    "assignments": (EXAMPLES / "assignments.csv").read_bytes(),
}
HEADERS = {
    "leaders": ["姓名", "职务", "邮箱", "接收范围", "name", "title", "email", "scope"],
    "units": ["单位", "邮箱", "联系人", "分管领导", "name", "email", "contact", "leader"],
    "assignments": ["序号", "责任领导", "牵头单位", "责任单位", "配合单位", "完成时限", "task", "leader", "deadline"],
}
SCALE = int(os.environ.get("REMINDERS_FUZZ_SCALE", "1"))  # e.g. 50 for a long local hunt
FUZZ = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI_FUZZ = settings(
    max_examples=100 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------------

_PLAN_FRAGMENTS = [
    "一、", "二、", "十一、", "（一）", "(二)", "（十十）", "1.", "1．", "2、", "3 .", "12.", "1.5", "(1)", "①", "2)",
    "牵头单位：", "牽頭單位:", "配合单位：", "完成时限：", "时间节点:", "（市民宗局牵头）", "(由办公室负责)",
    "索引号：", "发布机构：", "文号：", "成文日期：2021-05-31", "〔2021〕6号", "• ", "• 005252653/2021-00006",
    "主办单位：", "地址：", "附件", "总体要求", "工作计划", "2021年", "6月底前", "年底前", "每月", "长期坚持",
    "二〇二一年十二月", "１２月", "\u00a0", "\u3000", "\u200b", "\ufeff", " ", "\t", "。", "；", "：", "，",
]  # fmt: skip
_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("一二三四五六七八九十牵头单位年月日。、．（）"),
    max_size=30,
)
_LINE = st.lists(st.sampled_from(_PLAN_FRAGMENTS) | _TEXT, max_size=6).map("".join)
_NEWLINE = st.sampled_from(["\n", "\r\n", "\r", "\n\n"])


@st.composite
def plan_texts(draw: st.DrawFn) -> str:
    """Plan-shaped text: lines of plan-like prefixes and random text, joined by assorted line breaks."""
    lines = draw(st.lists(_LINE, max_size=25))
    out = ""
    for line in lines:
        out += line + draw(_NEWLINE)
    return out


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def damaged(draw: st.DrawFn, original: bytes) -> bytes:
    """A real file, damaged: truncated, re-encoded, garbage spliced in, or a huge line added."""
    kind = draw(st.sampled_from(["truncate", "encode", "splice", "huge", "bytes"]))
    if kind == "truncate":
        return original[: draw(st.integers(0, len(original)))]
    if kind == "encode":
        encoding = draw(st.sampled_from(["gb18030", "gbk", "utf-16", "utf-16-le", "big5", "utf-8-sig", "latin-1"]))
        return _encode(original.decode("utf-8"), encoding)
    if kind == "splice":
        at = draw(st.integers(0, len(original)))
        cut = draw(st.integers(0, 20))
        return original[:at] + draw(st.binary(min_size=1, max_size=40)) + original[at + cut :]
    if kind == "huge":
        lines = original.split(b"\n")
        at = draw(st.integers(0, len(lines)))
        size = draw(st.integers(MAX_LINE - 5, MAX_LINE + 5000))
        fill = draw(st.sampled_from(["x", "任", "\u3000", ",", '"'])) * size
        return b"\n".join([*lines[:at], fill.encode(), *lines[at:]])
    return draw(st.binary(max_size=2000))


@st.composite
def structured_plans(draw: st.DrawFn) -> str:
    """A title, sections and numbered tasks with random text: plans that mostly parse, and reach the database."""
    indent = st.sampled_from(["", "  ", "\u00a0\u00a0", "\u3000\u3000", "\t"])
    lines = [draw(st.sampled_from(["", "• 005252653/2021-00006\n"])) + draw(_TEXT) + "2021年工作计划"]
    number = 0
    for section in range(1, draw(st.integers(1, 4)) + 1):
        lines.append(draw(indent) + "一二三四五六七八九十"[section - 1] + "、" + draw(_TEXT))
        for _ in range(draw(st.integers(0, 4))):
            number = draw(st.sampled_from([number + 1, number + 1, 1, number, number + 2]))
            lines.append(draw(indent) + f"{number}{draw(st.sampled_from(['.', '．', '、', ' .']))}" + draw(_LINE))
            lines += draw(st.lists(_LINE, max_size=2))
    lines += draw(st.lists(st.sampled_from(["", "主办单位：郑州市", "地址：", "附件"]), max_size=2))
    return draw(_NEWLINE).join(lines)


def plan_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(
        plan_texts().map(lambda t: t.encode("utf-8")),
        structured_plans().map(lambda t: t.encode("utf-8")),
        st.tuples(structured_plans(), st.sampled_from(["gb18030", "utf-16", "big5"])).map(lambda p: _encode(*p)),
        st.tuples(plan_texts(), st.sampled_from(["gb18030", "utf-16", "big5", "utf-8-sig"])).map(lambda p: _encode(*p)),
        st.binary(max_size=2000),
        damaged(PLAN),
    )


def line_count(data: bytes) -> int:
    """Lines as the parser counts them (no byte of a multi-byte UTF-8/GB18030 character is CR or LF)."""
    return len(re.split(rb"\r\n|\r|\n", data))


def check_line(message: str, data: bytes) -> None:
    for found in re.findall(r"\b(?:line|row) (\d+)\b", message):
        assert 1 <= int(found) <= line_count(data), message


# ---------------------------------------------------------------------------------------------------------------
# The plan parser
# ---------------------------------------------------------------------------------------------------------------


@FUZZ
@given(data=plan_bytes())
@example(data=PLAN)
@example(data=PLAN.replace(b"\n", b"\r"))
@example(data=PLAN[:200])
@example(data="郑州市2021年工作计划\n一、总体\n".encode() + b"\xff\xfe\x00\x81\x00garbage\n")
@example(data=PLAN.decode().encode("utf-16"))
@example(data=b"title\n" + b"x" * (MAX_LINE + 1))
def test_it_parses_or_refuses_any_plan_file_naming_the_file_and_line(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.txt"
        path.write_bytes(data)
        try:
            parsed = read_plan(path)
        except PlanError as exc:
            assert str(exc).startswith(str(path)), str(exc)
            assert exc.line is None or 1 <= exc.line <= line_count(data), (exc.line, line_count(data))
            if exc.line is not None:
                assert f"line {exc.line}" in str(exc)
            return
    assert isinstance(parsed, ParsedPlan)
    assert parsed.tasks and parsed.title


# ---------------------------------------------------------------------------------------------------------------
# Whole imports through the CLI, on a database that already holds the example plan and tables
# ---------------------------------------------------------------------------------------------------------------


EXAMPLE_IMPORTS = [
    ("import-plan", EXAMPLES / "plan-2021.txt"),
    ("import-leaders", EXAMPLES / "leaders.csv"),
    ("import-units", EXAMPLES / "units.csv"),
    ("import-assignments", EXAMPLES / "assignments.csv"),
]


class LoadedDatabase:
    """A database holding a plan and its tables (the examples unless told); on SQLite each example works on a fresh
    copy of it."""

    def __init__(self, folder: Path, imports: Sequence[tuple[str, Path]] = EXAMPLE_IMPORTS,
                 url: str | None = None) -> None:
        self.folder = folder
        self.template = folder / "template.sqlite3"
        self.runner = CliRunner()
        self.config = write_config(folder / "template.toml", url or f"sqlite:///{self.template}")
        for args in (["init"], *([command, str(path)] for command, path in imports)):
            result = self.runner.invoke(cli, ["--config", str(self.config), *args], catch_exceptions=False)
            assert result.exit_code == 0, result.output

    def copy(self) -> tuple[Path, Path]:
        """A fresh folder with a copy of the database and a config pointing at it."""
        work = Path(tempfile.mkdtemp(dir=self.folder))
        database = work / "reminders.sqlite3"
        with sqlite3.connect(self.template) as source, sqlite3.connect(database) as target:
            source.backup(target)
        source.close()
        target.close()
        return work, write_config(work / "reminders.toml", f"sqlite:///{database}")

    def invoke(self, config: Path, *args: str) -> Result:
        return self.runner.invoke(cli, ["--config", str(config), *args])


def dump(config: Path) -> str:
    database = config.parent / "reminders.sqlite3"
    connection = sqlite3.connect(database)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def loaded_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedDatabase]:
    yield LoadedDatabase(tmp_path_factory.mktemp("fuzz-db"))


def import_and_check(db: LoadedDatabase, command: str, name: str, data: bytes) -> Result:
    """Import `data` as file `name`: success, or 'Error: <path>…' with exit 1 and the database unchanged."""
    work, config = db.copy()
    path = work / name
    path.write_bytes(data)
    before = dump(config)
    result = db.invoke(config, command, str(path))
    if result.exit_code == 0:
        assert result.exception is None, result.output
        return result
    assert isinstance(result.exception, SystemExit), "".join(
        __import__("traceback").format_exception(result.exception)
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {path}"), result.output
    if name.endswith(".csv") or command == "import-plan":
        check_line(result.output, data)
    assert dump(config) == before
    return result


@CLI_FUZZ
@given(data=plan_bytes())
@example(data=PLAN)
@example(data=PLAN[:1000])
@example(data=PLAN.replace("郑州市民族宗教事务局2021年工作计划".encode(), b"X" * 600))
def test_it_imports_or_refuses_any_plan_and_writes_nothing_when_refused(loaded_db: LoadedDatabase, data: bytes) -> None:
    import_and_check(loaded_db, "import-plan", "plan.txt", data)


# Tables --------------------------------------------------------------------------------------------------------

_CELL = st.one_of(
    st.sampled_from(["", "王建国", "张华", "办公室", "民族工作处", "宗教一处", "1", "19", "20", "2.3", "一、总体",
                     "a@example.org", "x@y", "全部", "own", "分管", "all", "2021年6月底前", "13月", "2021-02-30",
                     "每季度(6月15日、12月15日)", "长期坚持", "办公室、宗教一处", "办公室,办公室", " 张华 ", "\u3000"]),
    _TEXT,
    st.text(alphabet=",;\t\"'\r\n 、，", max_size=5),
)  # fmt: skip


@st.composite
def table_rows(draw: st.DrawFn, table: str) -> list[list[str]]:
    width = draw(st.integers(1, 6))
    header = draw(st.lists(st.sampled_from(HEADERS[table]) | _CELL, min_size=width, max_size=width))
    rows = draw(st.lists(st.lists(_CELL, min_size=0, max_size=width + 1), max_size=8))
    title = draw(st.lists(st.just(["工作任务分解表"]), max_size=1))
    return [*title, header, *rows]


def _csv_text(rows: list[list[str]], delimiter: str) -> str:
    def quote(cell: str) -> str:
        return f'"{cell.replace(chr(34), chr(34) * 2)}"' if re.search(r'[,;\t"\r\n]', cell) else cell

    return "".join(delimiter.join(map(quote, row)) + "\r\n" for row in rows)


@st.composite
def mutated_rows(draw: st.DrawFn, table: str) -> list[list[Any]]:
    """The example table with a few cells changed, rows dropped or repeated: imports that reach the database."""
    rows: list[list[Any]] = _example_rows(table)
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["cell", "cell", "cell", "drop", "repeat"]))
        at = draw(st.integers(1 if what != "cell" else 0, len(rows) - 1))
        if what == "cell":
            rows[at][draw(st.integers(0, len(rows[at]) - 1))] = draw(_CELL)
        elif what == "drop":
            del rows[at]
        else:
            rows.append(list(rows[at]))
    return rows


@st.composite
def csv_bytes(draw: st.DrawFn, table: str) -> bytes:
    kind = draw(st.sampled_from(["rows", "mutated", "mutated", "damaged", "huge"]))
    if kind == "damaged":
        return draw(damaged(TABLES[table]))
    rows = draw(mutated_rows(table) if kind == "mutated" else table_rows(table))
    if kind == "huge":
        rows.append([draw(st.sampled_from(["办公室", "1", "x"])) * draw(st.integers(10_000, 200_000))])
    text = _csv_text(rows, draw(st.sampled_from([",", ";", "\t"])))
    return _encode(text, draw(st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "big5"])))


_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xlsx_of(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append([_ILLEGAL_XML.sub("", v) if isinstance(v, str) else v for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


@functools.cache
def example_xlsx(table: str) -> bytes:
    """Made once: a workbook saved later differs (timestamps), and Hypothesis needs the same draws when replaying."""
    return xlsx_of(_example_rows(table))


def _example_rows(table: str) -> list[list[Any]]:
    return [line.split(",") for line in TABLES[table].decode().splitlines()]


_XLSX_VALUE = _CELL | st.integers(-(10**20), 10**20) | st.floats(allow_nan=True) | st.booleans() | st.datetimes(
    min_value=datetime(1900, 3, 1), max_value=datetime(9999, 12, 31)
) | st.dates(min_value=date(1900, 3, 1)) | st.times() | st.none()


@st.composite
def xlsx_bytes(draw: st.DrawFn, table: str) -> bytes:
    kind = draw(st.sampled_from(["rows", "mutated", "mutated", "truncate", "splice", "huge"]))
    if kind in ("rows", "mutated"):
        rows: list[list[Any]] = draw(mutated_rows(table) if kind == "mutated" else table_rows(table))
        for row in rows[1:]:
            if row and draw(st.booleans()):
                row[draw(st.integers(0, len(row) - 1))] = draw(_XLSX_VALUE)
        return xlsx_of(rows)
    real = example_xlsx(table)
    if kind == "truncate":
        return real[: draw(st.integers(0, len(real)))]
    if kind == "splice":
        at = draw(st.integers(0, len(real)))
        return real[:at] + draw(st.binary(min_size=1, max_size=40)) + real[at + draw(st.integers(0, 20)) :]
    rows = _example_rows(table)
    rows.append([draw(st.sampled_from(["办公室", "1", "x"])) * draw(st.integers(10_000, 32_000))])
    return xlsx_of(rows)


@CLI_FUZZ
@given(table=st.sampled_from(sorted(TABLES)), data=st.data())
@example(table="units", data=None)  # None: the example file itself
def test_it_imports_or_refuses_any_csv_table_and_writes_nothing_when_refused(
    loaded_db: LoadedDatabase, table: str, data: st.DataObject | None
) -> None:
    content = TABLES[table] if data is None else data.draw(csv_bytes(table))
    import_and_check(loaded_db, f"import-{table}", f"{table}.csv", content)


@CLI_FUZZ
@given(table=st.sampled_from(sorted(TABLES)), data=st.data())
@example(table="assignments", data=None)
def test_it_imports_or_refuses_any_xlsx_table_and_writes_nothing_when_refused(
    loaded_db: LoadedDatabase, table: str, data: st.DataObject | None
) -> None:
    content = example_xlsx(table) if data is None else data.draw(xlsx_bytes(table))
    import_and_check(loaded_db, f"import-{table}", f"{table}.xlsx", content)


# One bad cell deep inside a valid table ------------------------------------------------------------------------
#
# The tables below are valid row after row, and each row changes the database (a new row, or a changed one), so an
# import that wrote anything before reaching the bad row would show in the dump. The importer checks every row before
# its first write; on PostgreSQL a value longer than its column is refused only by the database, after the import has
# begun writing: that case is below too.

DEEP_ROWS = 60
DEEP_TITLE = "郑州市民族宗教事务局2021年工作计划"
KNOWN_LEADERS, KNOWN_UNITS, KNOWN_ASSIGNMENTS = 6, 40, 30  # what the database holds before the import
UNKNOWN = "不存在的处"
DEADLINES = ["2021年6月底前", "年底前", "三季度末", "长期坚持", "2021年10月", "上半年", "每季度", "2021年9月30日"]
_UNKNOWN_PHRASE = "无法识别的完成时限 “{}” (unknown deadline phrase)"
_NO_SUCH_DATE = "完成时限中的日期不存在 “{}” (no such date)"
BAD_DEADLINES = {
    "下下周": _UNKNOWN_PHRASE, "明年春天": _UNKNOWN_PHRASE, "2021年13月": _NO_SUCH_DATE, "2021-02-30": _NO_SUCH_DATE,
}
BAD_EMAILS = ["unit@example", "单位@example.org", "a..b@example.org", "no-at-sign.example.org", "x@-bad.org"]
HEADER_ROW = {
    "leaders": ["姓名", "职务", "邮箱", "接收范围"],
    "units": ["单位", "邮箱", "联系人", "分管领导"],
    "assignments": ["序号", "责任领导", "牵头单位", "配合单位", "完成时限"],
}


def deep_plan() -> bytes:
    lines = [DEEP_TITLE]
    for section, name in enumerate(["一、总体要求", "二、重点任务", "三、保障措施"]):
        lines.append(name)
        lines += [f"{n}. 第{n}项工作任务。按计划推进第{n}项工作，确保取得实效。"
                  for n in range(section * 20 + 1, section * 20 + 21)]
    return ("\n".join(lines) + "\n").encode()


def _leader(i: int) -> str:
    return f"领导{i:02d}"


def _unit(i: int) -> str:
    return f"单位{i:02d}"


def deep_rows(table: str, count: int, *, before: bool = False) -> list[list[str]]:
    """The header and `count` valid rows; `before`: the rows as the database holds them before the import."""
    if table == "leaders":
        body = [[_leader(i), "局领导" if before else "副局长", f"leader{i}@example.org", "全部" if i == 1 else "分管"]
                for i in range(1, count + 1)]
    elif table == "units":
        body = [[_unit(i), f"unit{i}@example.org", "原联系人" if before else f"联系人{i}",
                 _leader(i % KNOWN_LEADERS + 1)] for i in range(1, count + 1)]
    else:
        body = [[str(i), _leader(i % KNOWN_LEADERS + 1), _unit(i % KNOWN_UNITS + 1),
                 f"{_unit((i + 1) % KNOWN_UNITS + 1)}、{_unit((i + 2) % KNOWN_UNITS + 1)}",
                 "年底前" if before else DEADLINES[i % len(DEADLINES)]] for i in range(1, count + 1)]
    return [list(HEADER_ROW[table]), *body]


def deep_imports(folder: Path) -> list[tuple[str, Path]]:
    files = {"plan": folder / "plan.txt", "leaders": folder / "leaders.csv", "units": folder / "units.csv",
             "assignments": folder / "assignments.csv"}
    files["plan"].write_bytes(deep_plan())
    for table, count in (("leaders", KNOWN_LEADERS), ("units", KNOWN_UNITS), ("assignments", KNOWN_ASSIGNMENTS)):
        files[table].write_text(_csv_text(deep_rows(table, count, before=True), ","), encoding="utf-8")
    return [(f"import-{name}", path) for name, path in files.items()]


@pytest.fixture(scope="module")
def deep_db(tmp_path_factory: pytest.TempPathFactory) -> LoadedDatabase:
    folder = tmp_path_factory.mktemp("fuzz-deep-db")
    return LoadedDatabase(folder, deep_imports(folder))


@dataclass(frozen=True)
class BadTable:
    rows: list[list[str]]  # with the bad cell
    valid: list[list[str]]  # the same table with that cell right
    row: int  # the row the error must name, as the user counts (the header is row 1)
    column: str
    message: str


@st.composite
def one_bad_cell(draw: st.DrawFn, table: str) -> BadTable:
    count = draw(st.integers(20, DEEP_ROWS), label="rows")
    valid = deep_rows(table, count)
    at = draw(st.integers(count // 2, count), label="bad row")  # an index into `valid`, whose 0 is the header
    earlier = draw(st.integers(1, at - 1), label="earlier row")
    rows = [list(row) for row in valid]
    bad = rows[at]
    kinds = {"leaders": ["email", "empty", "scope", "duplicate", "line break"],
             "units": ["email", "empty", "leader", "duplicate", "line break"],
             "assignments": ["lead unit", "co unit", "leader", "deadline", "task", "duplicate", "line break"]}[table]
    kind = draw(st.sampled_from(kinds), label="what is wrong")
    email = 2 if table == "leaders" else 1
    if kind == "email":
        bad[email] = address = draw(st.sampled_from(BAD_EMAILS))
        column, message = "邮箱", f"无效的邮箱地址 “{address}” (invalid email address)"
        if not address.split("@")[0].isascii():
            message = (f"邮箱地址 “{address}” 的用户名（@ 之前）含有非 ASCII 字符，邮件服务器不接受 "
                       "(the part before @ must be ASCII)")
    elif kind == "empty":
        bad[email] = ""
        column, message = "邮箱", "必填项为空 (required value is empty)"
    elif kind == "scope":
        bad[3] = "部分"
        column, message = "接收范围", "接收范围应为 分管/own 或 全部/all，而不是 “部分” (unknown scope)"
    elif kind == "leader" and table == "units":
        bad[3] = "不存在的领导"
        column, message = "分管领导", "未知的领导 “不存在的领导”，请先导入领导名单 (unknown leader)"
    elif kind == "leader":
        bad[1] = "不存在的领导"
        column, message = "责任领导", "未知的领导 “不存在的领导” (unknown leader)"
    elif kind == "lead unit":
        bad[2] = UNKNOWN
        column, message = "牵头单位", f"未知的单位 “{UNKNOWN}”，请先导入单位名单 (unknown unit)"
    elif kind == "co unit":
        bad[3] = f"{_unit(1)}、{UNKNOWN}"
        column, message = "配合单位", f"未知的单位 “{UNKNOWN}”，请先导入单位名单 (unknown unit)"
    elif kind == "deadline":
        bad[4] = phrase = draw(st.sampled_from(sorted(BAD_DEADLINES)))
        column, message = "完成时限", BAD_DEADLINES[phrase].format(phrase)
    elif kind == "task":
        bad[0] = "99"
        column, message = "序号", f"计划中没有第 99 项任务 (task not in the plan “{DEEP_TITLE}”)"
    elif kind == "duplicate" and table == "assignments":
        bad[0] = rows[earlier][0]
        column, message = "序号", f"任务 {rows[earlier][0]} 与第 {earlier + 1} 行重复 (duplicate task)"
    elif kind == "duplicate":
        rows[at] = list(rows[earlier])
        column, message = HEADER_ROW[table][0], f"与第 {earlier + 1} 行重复 (duplicate of row {earlier + 1})"
    else:  # a line break in a cell the other checks pass
        cell = len(bad) - 1 if table == "assignments" else 1 if table == "leaders" else 2
        bad[cell] = bad[cell][:1] + draw(st.sampled_from(["\n", "\r\n", "\r"])) + bad[cell][1:]
        column, message = HEADER_ROW[table][cell], "单元格内有换行 (line break in cell)"
    return BadTable(rows, valid, at + 1, column, message)


def table_file(rows: list[list[str]], form: str) -> bytes:
    if form == "xlsx":
        return xlsx_of(rows)
    return _csv_text(rows, ",").encode(form)


DEEP_FUZZ = settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("table", sorted(HEADER_ROW))
@DEEP_FUZZ
@given(case=st.data(), form=st.sampled_from(["xlsx", "utf-8", "gb18030"]))
def test_it_refuses_a_table_with_one_bad_cell_deep_inside_naming_the_row_and_writes_nothing(
    deep_db: LoadedDatabase, table: str, case: st.DataObject, form: str
) -> None:
    bad = case.draw(one_bad_cell(table))
    work, config = deep_db.copy()
    path = work / f"{table}.{'xlsx' if form == 'xlsx' else 'csv'}"
    path.write_bytes(table_file(bad.rows, form))
    before = dump(config)

    result = deep_db.invoke(config, f"import-{table}", str(path))
    assert (result.exit_code, type(result.exception)) == (1, SystemExit), result.output
    assert result.output == f"Error: {path}, row {bad.row}, column {bad.column}: {bad.message}\n"
    assert dump(config) == before

    # The same table with that one cell right is imported and changes the database: the refused import would have.
    path.write_bytes(table_file(bad.valid, form))
    assert deep_db.invoke(config, f"import-{table}", str(path)).exit_code == 0
    assert dump(config) != before


def database_rows(url: str) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Every row of every table, in key order: two equal results are the same data."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [(table.name, [tuple(row) for row in connection.execute(
                select(table).order_by(*table.primary_key.columns))]) for table in Base.metadata.sorted_tables]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def deep_pg(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoadedDatabase, Path, str]]:
    """A PostgreSQL schema holding the deep plan and tables, the CLI on it, its config and its URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres)
    with admin.begin() as connection:
        connection.execute(text(f"create schema {schema}"))
    try:
        folder = tmp_path_factory.mktemp("fuzz-deep-pg")
        url = f"{postgres}?options=-csearch_path%3D{schema}"
        database = LoadedDatabase(folder, deep_imports(folder), url)
        yield database, database.config, url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"drop schema {schema} cascade"))
        admin.dispose()


@settings(max_examples=10 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_it_leaves_postgresql_unchanged_when_an_import_fails_after_it_has_begun_writing(
    deep_pg: tuple[LoadedDatabase, Path, str], data: st.DataObject
) -> None:
    database, config, url = deep_pg
    before = database_rows(url)
    count = data.draw(st.integers(KNOWN_UNITS + 1, DEEP_ROWS), label="rows")  # new units: inserted first
    rows = deep_rows("units", count)
    at = data.draw(st.integers(KNOWN_UNITS // 2, KNOWN_UNITS), label="row too long")  # a unit updated afterwards
    rows[at][2] = "联" * 201  # the contact column holds 200 characters: PostgreSQL refuses the UPDATE
    path = config.parent / "units.csv"
    path.write_bytes(table_file(rows, "utf-8"))

    result = database.invoke(config, "import-units", str(path))
    assert (result.exit_code, type(result.exception)) == (1, SystemExit), result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert database_rows(url) == before


def test_it_refuses_a_value_longer_than_its_column_naming_the_row(db_url: str, tmp_path: Path) -> None:
    database = LoadedDatabase(tmp_path, deep_imports(tmp_path), db_url)
    rows = deep_rows("units", KNOWN_UNITS)
    rows[30][2] = "联" * 201
    path = tmp_path / "long.csv"
    path.write_bytes(table_file(rows, "utf-8"))
    result = database.invoke(database.config, "import-units", str(path))
    assert result.output.startswith(f"Error: {path}, row 31, column 联系人: "), result.output


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------

VALID: dict[str, dict[str, Any]] = {
    "database": {"url": "sqlite:///reminders.sqlite3"},
    "office": {"name": "督查室", "email": "office@example.org"},
    "mail": {"language": "zh_CN", "templates": "templates", "message_id_domain": "example.org"},
    "delivery": {"transport": "maildir", "maildir": "maildir"},
    "smtp": {
        "host": "localhost", "port": 25, "security": "none", "username": "u", "password_env": "SMTP_PASSWORD",
        "sender": "office@example.org", "sender_name": "督查室", "timeout": 30.0, "connections": 2,
        "verify_certificates": True, "retries": 3, "backoff": 1.0, "max_per_minute": 0,
    },
    "schedule": {
        "timezone": "Asia/Shanghai", "reminders": "0 9 20 * *", "digests": "0 9 26 * *", "report_day": 25,
        "due_soon_days": 7, "misfire_grace": "3d",
    },
}  # fmt: skip
KEYS = [f"{section}.{key}" for section, keys in VALID.items() for key in keys]

_TOML_STRING = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_SCALAR = st.one_of(
    _TOML_STRING,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
_TOML_VALUE = st.recursive(
    _SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True),
                                                                          inner, max_size=2), max_leaves=5
)
_CRON = st.lists(
    st.sampled_from(["*", "0", "9", "20", "*/5", "1-5", "mon", "99", "-1", "1,2", "L", "?", "x", "60", "32", "13", "7"])
    | _TOML_STRING,
    max_size=7,
).map(" ".join)
_ZONE = st.sampled_from(
    ["UTC", "Asia/Shanghai", "America", "Asia", "", "/etc/passwd", "../zoneinfo", "Asia/../Asia/Shanghai", "Etc",
     "America/", "Asia/Shanghai/", "tzdata", "__init__.py", "a" * 300, "Mars/Phobos", ".", "..", "/"]
) | _TOML_STRING  # fmt: skip
_DURATION = st.from_regex(r"\d{1,30}[smhd]( ?\d{1,30}[smhd])?", fullmatch=True) | _TOML_STRING
_SPECIFIC: dict[str, st.SearchStrategy[Any]] = {
    "schedule.reminders": _CRON,
    "schedule.digests": _CRON,
    "schedule.timezone": _ZONE,
    "schedule.misfire_grace": _DURATION,
    "schedule.report_day": st.integers(-(2**63), 2**63 - 1),
    "smtp.port": st.integers(-(2**63), 2**63 - 1),
    "smtp.security": st.sampled_from(["none", "tls", "TLS", "ssl", ""]),
    "delivery.transport": st.sampled_from(["smtp", "maildir", "SMTP", ""]),
    "delivery.maildir": st.sampled_from(["", ".", "/", "~"]) | _TOML_STRING,
    "mail.templates": st.sampled_from(["", ".", "/"]) | _TOML_STRING,
    "database.url": st.sampled_from(["", "sqlite://", "postgresql://", "://", "sqlite:///:memory:"]) | _TOML_STRING,
}


def toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped, everything else as it is."""
    escaped = re.sub(r'["\\\x00-\x1f\x7f]', lambda m: f"\\u{ord(m[0]):04x}", text)
    return f'"{escaped}"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(sections: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in table.items())
        for name, table in sections.items()
    )


@st.composite
def config_case(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], str]:
    """A valid config with one key given a random value, or one unknown key added; and that key."""
    sections = {name: dict(table) for name, table in VALID.items()}
    if draw(st.integers(0, 9)) == 0:
        section = draw(st.sampled_from(sorted(VALID)))
        key = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda k: k not in VALID[section]))
        sections[section][key] = draw(_SCALAR)
        return sections, f"{section}.{key}"
    dotted = draw(st.sampled_from(KEYS))
    section, key = dotted.split(".")
    sections[section][key] = draw(_SPECIFIC.get(dotted, st.nothing()) | _TOML_VALUE)
    return sections, dotted


@settings(max_examples=300 * SCALE, deadline=None)
@given(case=config_case())
@example(case=(VALID, ""))
@example(case=({**VALID, "schedule": {**VALID["schedule"], "timezone": "Mars/Phobos"}}, "schedule.timezone"))
@example(case=({**VALID, "schedule": {**VALID["schedule"], "digests": "0 9 99 * *"}}, "schedule.digests"))
@example(case=({**VALID, "smtp": {**VALID["smtp"], "port": "25"}}, "smtp.port"))
@example(case=({**VALID, "smtp": {**VALID["smtp"], "colour": "red"}}, "smtp.colour"))
def test_it_loads_a_config_or_refuses_it_naming_the_key(case: tuple[dict[str, dict[str, Any]], str]) -> None:
    sections, key = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reminders.toml"
        path.write_text(toml_document(sections), encoding="utf-8")
        try:
            config_module.load(str(path))
        except ConfigError as exc:
            assert exc.key == key, str(exc)
            assert str(exc).startswith(f"{path}: {key}: "), str(exc)


def load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reminders.toml"
        path.write_text(text, encoding="utf-8")
        config_module.load(str(path))


def test_it_refuses_an_empty_maildir_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        load_text('[delivery]\nmaildir = ""\n')
    assert raised.value.key == "delivery.maildir"


@pytest.mark.parametrize("zone", ["Asia", "America", "Etc", "A" * 300])
def test_it_refuses_a_time_zone_that_is_a_folder_or_too_long_naming_the_key(zone: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_text(f'[schedule]\ntimezone = "{zone}"\n')
    assert raised.value.key == "schedule.timezone"


def test_it_refuses_a_huge_misfire_grace_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        load_text('[schedule]\nmisfire_grace = "1000000000d"\n')
    assert raised.value.key == "schedule.misfire_grace"


@settings(max_examples=100 * SCALE, deadline=None)
@given(data=st.binary(max_size=300) | _TOML_STRING.map(str.encode))
@example(data=b"[smtp]\npassword = 'x'\n")
@example(data=b"schedule = 3\n")
def test_it_loads_any_config_file_or_refuses_it_naming_the_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reminders.toml"
        path.write_bytes(data)
        try:
            config_module.load(str(path))
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)


@settings(max_examples=50 * SCALE, deadline=None)
@given(name=st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True) | _TOML_STRING.filter(bool))
@example(name="REMINDERS_SMTP_PASSWORD_UNSET")
def test_it_names_the_key_when_the_password_variable_is_missing(name: str) -> None:
    assume(name not in os.environ)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reminders.toml"
        path.write_text(toml_document({"smtp": {"password_env": name}}), encoding="utf-8")
        try:
            loaded = config_module.load(str(path))
        except ConfigError as exc:  # a name with a control character is refused when the file is read
            assert exc.key == "smtp.password_env", str(exc)
            return
        with pytest.raises(ConfigError) as raised:
            loaded.smtp_password()
    assert raised.value.key == "smtp.password_env"
    assert str(raised.value).startswith(f"{path}: smtp.password_env: ")
