from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reminders.intake.tables import Column, TableError, parse_emails, read_table, split_list

UNITS = (
    Column("name", ("单位", "单位名称", "name", "unit")),
    Column("email", ("邮箱", "电子邮箱", "email")),
    Column("contact", ("联系人", "contact"), required=False),
)
TASKS = (
    Column("number", ("序号", "编号", "no")),
    Column("title", ("工作任务", "task")),
    Column("deadline", ("完成时限", "deadline"), required=False),
)


def write_csv(
    path: Path, rows: Sequence[Sequence[str]], encoding: str = "utf-8", delimiter: str = ","
) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: Sequence[Sequence[object]], title: str = "Sheet1") -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path


def error_text(path: Path, columns: Sequence[Column] = UNITS) -> str:
    with pytest.raises(TableError) as caught:
        read_table(path, columns)
    return str(caught.value)


def test_it_reads_chinese_headers(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "units.csv", [["单位名称", "电子邮箱", "联系人"], ["财政局", "czj@zz.gov.cn", "张三"]]
    )
    table = read_table(path, UNITS)
    assert table.headers == {"name": "单位名称", "email": "电子邮箱", "contact": "联系人"}
    assert [(r.number, r.values) for r in table.rows] == [
        (2, {"name": "财政局", "email": "czj@zz.gov.cn", "contact": "张三"})
    ]


def test_it_reads_english_headers_case_insensitively_and_ignores_unknown_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "units.csv", [["Remark", "UNIT", " Email "], ["x", "Finance", "f@example.com"]]
    )
    table = read_table(path, UNITS)
    assert table.headers == {"name": "UNIT", "email": "Email"}
    assert table.rows[0].values == {"name": "Finance", "email": "f@example.com", "contact": ""}


def test_it_normalises_headers_with_full_width_text_stars_and_required_marks(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "units.xlsx",
        [["单位名称（必填）", "＊邮箱＊", "ＣＯＮＴＡＣＴ"], ["财政局", "a@b.cn", ""]],
    )
    table = read_table(path, UNITS)
    assert table.headers == {"name": "单位名称（必填）", "email": "＊邮箱＊", "contact": "ＣＯＮＴＡＣＴ"}


def test_it_finds_the_header_below_a_title_row(tmp_path: Path) -> None:
    rows = [
        ["2021年重点工作任务分解表"],
        [],
        ["序号", "工作任务", "完成时限"],
        ["1", "做好民族团结", "6月底前"],
    ]
    table = read_table(write_xlsx(tmp_path / "plan.xlsx", rows), TASKS)
    assert table.headers["title"] == "工作任务"
    assert [(r.number, r.values["title"]) for r in table.rows] == [(4, "做好民族团结")]


def test_it_reports_no_header_within_the_first_ten_rows(tmp_path: Path) -> None:
    rows = [["标题"]] * 10 + [["单位", "邮箱"], ["财政局", "a@b.cn"]]
    path = write_csv(tmp_path / "units.csv", rows)
    expected = "单位/单位名称/name/unit; 邮箱/电子邮箱/email"
    assert (
        error_text(path) == f"{path}: 找不到表头 (no header row in the first 10 rows; expected: {expected})"
    )


def test_it_reports_an_empty_file_as_having_no_header(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_bytes(b"")
    assert error_text(path).startswith(f"{path}: 找不到表头 (no header row")


def test_it_reads_gbk_encoded_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "units.csv", [["单位", "邮箱"], ["民族宗教局", "mzj@zz.gov.cn"]], "gbk")
    assert read_table(path, UNITS).rows[0].values["name"] == "民族宗教局"


def test_it_strips_a_utf8_bom(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "units.csv", [["单位", "邮箱"], ["财政局", "a@b.cn"]], "utf-8-sig")
    table = read_table(path, UNITS)
    assert table.headers["name"] == "单位"
    assert table.rows[0].values["name"] == "财政局"


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_it_sniffs_semicolon_and_tab_delimiters(tmp_path: Path, delimiter: str) -> None:
    rows = [["单位", "邮箱"], ["财政局", "a@b.cn,c@d.cn"]]
    table = read_table(write_csv(tmp_path / "units.csv", rows, delimiter=delimiter), UNITS)
    assert table.rows[0].values == {"name": "财政局", "email": "a@b.cn,c@d.cn", "contact": ""}


def test_it_keeps_semicolons_inside_comma_separated_cells(tmp_path: Path) -> None:
    rows = [["单位", "邮箱"], ["财政局", "a@b.cn;c@d.cn"]]
    assert (
        read_table(write_csv(tmp_path / "units.csv", rows), UNITS).rows[0].values["email"] == "a@b.cn;c@d.cn"
    )


def test_it_turns_xlsx_numbers_and_dates_into_text(tmp_path: Path) -> None:
    rows = [
        ["序号", "工作任务", "完成时限"],
        [3.0, "任务三", datetime(2021, 6, 30)],
        [4, "任务四", date(2021, 12, 31)],
        [0.1 + 0.2, "任务五", datetime(2021, 6, 30, 14, 30)],
    ]
    table = read_table(write_xlsx(tmp_path / "plan.xlsx", rows), TASKS)
    assert [(r.values["number"], r.values["deadline"]) for r in table.rows] == [
        ("3", "2021-06-30"),
        ("4", "2021-12-31"),
        ("0.3", "2021-06-30 14:30:00"),
    ]


def test_it_strips_nbsp_and_full_width_spaces_and_skips_empty_rows(tmp_path: Path) -> None:
    rows = [["单位", "邮箱"], ["\u3000财政局\xa0", " a@b.cn "], [None, "  "], [], ["教育局", "c@d.cn"]]
    table = read_table(write_xlsx(tmp_path / "units.xlsx", rows), UNITS)
    assert [(r.number, r.values["name"], r.values["email"]) for r in table.rows] == [
        (2, "财政局", "a@b.cn"),
        (5, "教育局", "c@d.cn"),
    ]


def test_it_reads_a_sheet_chosen_by_name(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "units.xlsx", [["说明"]])
    workbook = openpyxl.load_workbook(path)
    workbook.create_sheet("单位").append(["单位", "邮箱"])
    workbook.save(path)
    assert read_table(path, UNITS, sheet="单位").rows == ()
    assert error_text(path).startswith(f"{path}: 找不到表头")
    with pytest.raises(
        TableError, match=r"units\.xlsx: 找不到工作表 “汇总” \(no such sheet; sheets: Sheet1, 单位\)"
    ):
        read_table(path, UNITS, sheet="汇总")


def test_it_reports_a_missing_required_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "units.csv", [["标题"], ["单位", "联系人"], ["财政局", "张三"]])
    expected = "缺少必填列 “邮箱” (missing required column; accepted: 邮箱, 电子邮箱, email)"
    assert error_text(path) == f"{path}, row 2: {expected}"


def test_it_lists_every_missing_required_column(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "units.xlsx", [["联系人", "备注"], ["张三", ""]])
    accepted = "单位, 单位名称, name, unit; 邮箱, 电子邮箱, email"
    expected = f"缺少必填列 “单位”、“邮箱” (missing required column; accepted: {accepted})"
    assert error_text(path) == f"{path}, row 1: {expected}"


def test_it_reports_a_duplicated_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "units.csv", [["单位", "邮箱", "单位名称"], ["财政局", "a@b.cn", "财政局"]])
    assert error_text(path) == f"{path}, row 1, column 单位名称: 与 “单位” 重复 (duplicate column)"


def test_it_reports_an_empty_required_cell(tmp_path: Path) -> None:
    rows = [["单位名称", "邮箱"], ["财政局", "a@b.cn"], ["教育局", "\u3000"]]
    path = write_xlsx(tmp_path / "units.xlsx", rows)
    assert error_text(path) == f"{path}, row 3, column 邮箱: 必填项为空 (required value is empty)"


@pytest.mark.parametrize("text", ["财政\n局", "财政\r\n局", "财政\u2028局"])
def test_it_rejects_a_line_break_in_a_cell(tmp_path: Path, text: str) -> None:
    rows = [["说明"], ["单位名称", "邮箱"], ["教育局", "a@b.cn"], [text, "c@d.cn"]]
    path = write_xlsx(tmp_path / "units.xlsx", rows)
    assert error_text(path) == f"{path}, row 4, column 单位名称: 单元格内有换行 (line break in cell)"


def test_it_rejects_a_line_break_in_a_quoted_csv_cell_naming_its_first_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "units.csv", [["单位", "邮箱"], ["财政局", "a@b.cn"], ["教育\n局", "c@d.cn"]])
    assert error_text(path) == f"{path}, row 3, column 单位: 单元格内有换行 (line break in cell)"


def test_it_uses_the_header_as_written_in_table_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "units.csv", [["单位", "电子 邮箱"], ["财政局", "a@b"]])
    table = read_table(path, UNITS)
    row = table.rows[0]
    with pytest.raises(ValueError) as caught:
        parse_emails(row.values["email"])
    error = table.error(row, "email", str(caught.value))
    assert str(error) == f"{path}, row 2, column 电子 邮箱: 无效的邮箱地址 “a@b” (invalid email address)"
    assert (error.row, error.column) == (2, "电子 邮箱")


def test_it_rejects_an_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "units.xls"
    path.write_bytes(b"whatever")
    assert error_text(path) == f"{path}: 不支持的文件类型 “.xls” (unsupported file type; use .xlsx or .csv)"


def test_it_reads_every_row_when_the_xlsx_declares_a_wrong_size(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "units.xlsx", [["单位", "邮箱"], ["财政局", "a@b.cn"], ["教育局", "c@d.cn"]])
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1"/>', parts[sheet])
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)
    assert [r.values["name"] for r in read_table(path, UNITS).rows] == ["财政局", "教育局"]


def test_it_reports_a_directory_as_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.mkdir()
    assert error_text(path) == f"{path}: 不是文件 (not a file)"


def test_it_reports_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.xlsx"
    assert error_text(path) == f"{path}: 文件不存在 (file not found)"


def test_it_reports_garbage_bytes_as_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "units.xlsx"
    path.write_bytes(b"\x00\x01garbage\xff" * 50)
    assert error_text(path).startswith(f"{path}: 无法读取 Excel 文件 (damaged or not an .xlsx file:")


def test_it_reports_a_truncated_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "units.xlsx", [["单位", "邮箱"], ["财政局", "a@b.cn"]])
    path.write_bytes(path.read_bytes()[:-200])
    assert error_text(path).startswith(f"{path}: 无法读取 Excel 文件")


def test_it_recognises_a_legacy_xls_renamed_to_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "units.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500))
    assert (
        error_text(path) == f"{path}: 这是旧版 .xls 文件，请另存为 .xlsx (legacy .xls file; save it as .xlsx)"
    )


def test_it_reports_an_undecodable_csv_line(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_bytes("单位,邮箱\n财政局,a@b.cn\n".encode("gbk") + b"\x80\x80,x@y.cn\n")
    assert error_text(path) == f"{path}, row 3: 无法识别编码，请存为 UTF-8 或 GBK (cannot decode)"


def test_it_splits_lists_by_chinese_and_western_separators() -> None:
    assert split_list(" 财政局、教育局，发改委,公安局; 民政局；；\u3000 ") == [
        "财政局",
        "教育局",
        "发改委",
        "公安局",
        "民政局",
    ]
    assert split_list("Finance Bureau, Ethnic Affairs Bureau") == ["Finance Bureau", "Ethnic Affairs Bureau"]
    assert split_list("") == []


def test_it_parses_valid_emails() -> None:
    assert parse_emails("czj@zz.gov.cn; jyj@zz.gov.cn，mzj@zz.gov.cn\u3000a.b+c@例子.中国") == [
        "czj@zz.gov.cn",
        "jyj@zz.gov.cn",
        "mzj@zz.gov.cn",
        "a.b+c@xn--fsqu00a.xn--fiqs8s",  # an internationalised domain is stored as punycode
    ]
    assert parse_emails("ＣＺＪ＠zz.gov.cn；czj@zz.gov.cn") == ["CZJ@zz.gov.cn"]


@pytest.mark.parametrize(
    "address",
    ["a@b", "a@b.c", "@b.cn", "a@", "a..b@c.cn", "a@-b.cn", "a@b..cn", "a@1.2.3.4", "a@b@c.cn"],
)
def test_it_rejects_invalid_emails_naming_the_address(address: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_emails(f"ok@b.cn; {address}")
    assert str(caught.value) == f"无效的邮箱地址 “{address}” (invalid email address)"


def test_it_requires_at_least_one_email() -> None:
    with pytest.raises(ValueError, match=r"^缺少邮箱地址 \(no email address\)$"):
        parse_emails(" ；, ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_it_reads_random_bytes_or_raises_table_error(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        read_table(path, UNITS)
    except TableError as e:
        assert str(e).startswith(str(path))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_it_reads_damaged_xlsx_or_raises_table_error(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "damaged.xlsx"
    if not path.exists():
        write_xlsx(path, [["单位", "邮箱"], ["财政局", "a@b.cn"], [3.0, datetime(2021, 6, 30)]])
    original = path.read_bytes()
    damaged = bytearray(original[: data.draw(st.integers(0, len(original)), label="keep")])
    for _ in range(data.draw(st.integers(0, 5), label="flips")):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    copy = tmp_path / "copy.xlsx"
    copy.write_bytes(bytes(damaged))
    try:
        read_table(copy, UNITS)
    except TableError as e:
        assert str(e).startswith(str(copy))
