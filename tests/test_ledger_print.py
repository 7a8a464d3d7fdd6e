"""The 工作台账 as the office prints it for the leaders' meeting (issue 12, item 7): each print and screen property read
back from the file with openpyxl, as the spreadsheet application will read it; the CSV's task numbers stay text.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.cell.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import update

from reminders.columns import display_width
from reminders.store.db import session_scope
from reminders.store.models import Task
from reminders.tracking import ledger
from reminders.tracking.ledger_sheet import COLUMNS, LINE_POINTS, state_patterns
from reminders.vocabulary import STATES, state_label
from tests.conftest import Cli
from tests.webenv import library
from tests.websupport import open_site

TITLE = "《郑州市民族宗教事务局2021年工作计划工作任务推进台账》"
HEADER = ["序号", "部分", "工作任务", "责任领导", "牵头单位", "配合单位", "完成时限", "截止日期", "状态", "逾期天数",
          "完成进度", "最新进展", "报送日期", "本月是否报送", "督办", "备注"]
LONG_NOTE = ("宣讲12场，覆盖全市各县区民族团结进步示范单位；开展民族团结进步创建活动进机关、进企业、进社区、进乡镇、"
             "进学校、进宗教活动场所，编印宣传册3000份，下一步将在7月组织全市民族团结进步表彰大会")


def _col(name: str) -> int:
    return HEADER.index(name)


@pytest.fixture
def printed(loaded: Cli, tmp_path: Path) -> Worksheet:
    """The ledger as `reminders export` writes it on 2021-06-22, with a long note on task 3 and 40% done."""
    loaded("progress", "3", "--unit", "民族工作处", "--percent", "40", "--note", LONG_NOTE, "--date", "2021-06-20")
    out = tmp_path / "台账.xlsx"
    loaded("export", "--format", "xlsx", "--out", str(out), "--as-of", "2021-06-22")
    return load_workbook(out)[ledger.SHEET]


def _rows(sheet: Worksheet) -> dict[str, tuple[Cell, ...]]:
    return {str(row[0].value): tuple(c for c in row if isinstance(c, Cell)) for row in sheet.iter_rows(min_row=4)}


def test_it_prints_on_a4_landscape_fitted_to_the_page_width_with_page_numbers(printed: Worksheet) -> None:
    setup = printed.page_setup
    assert (setup.paperSize, setup.orientation) == (9, "landscape")  # 9: A4
    assert (setup.fitToWidth, setup.fitToHeight) == (1, 0)
    assert printed.sheet_properties.pageSetUpPr is not None and printed.sheet_properties.pageSetUpPr.fitToPage
    assert printed.oddFooter is not None and printed.oddFooter.center.text == "第 &P 页 共 &N 页"
    assert str(printed.print_title_rows) == "$3:$3"  # the header on every page


def test_it_has_a_title_the_plan_and_the_day_above_a_filtered_header_frozen_with_the_task_columns(
    printed: Worksheet,
) -> None:
    assert printed["A1"].value == TITLE and printed["A1"].font.bold
    assert "郑州市民族宗教事务局2021年工作计划" in printed["A2"].value and "2021年6月22日" in printed["A2"].value
    assert {str(r) for r in printed.merged_cells.ranges} == {"A1:P1", "A2:P2"}
    assert [c.value for c in printed[3]] == HEADER and all(c.font.bold for c in printed[3])
    assert printed.freeze_panes == "D4"  # rows 1–3 and 序号, 部分, 工作任务 stay on screen
    assert printed.auto_filter.ref == "A3:P22"
    assert printed.max_row == 22  # 19 tasks


def test_dates_percentages_days_and_plain_numbers_are_real_cells(printed: Worksheet) -> None:
    rows = _rows(printed)
    three, twelve, one = rows["3"], rows["12"], rows["1"]
    assert three[_col("序号")].value == 3 and three[_col("序号")].data_type == "n"
    assert three[_col("完成时限")].value == "2021年10月"  # the phrase as assigned, beside its date
    assert three[_col("截止日期")].value == datetime(2021, 10, 31) and three[_col("截止日期")].is_date
    assert three[_col("截止日期")].number_format == "yyyy-mm-dd"
    assert three[_col("完成进度")].value == 0.4 and three[_col("完成进度")].number_format == "0%"
    assert three[_col("报送日期")].value == datetime(2021, 6, 20) and three[_col("报送日期")].is_date
    assert three[_col("最新进展")].value == f"民族工作处：{LONG_NOTE}"
    assert twelve[_col("逾期天数")].value == 22 and twelve[_col("逾期天数")].data_type == "n"  # due 2021-05-31
    assert twelve[_col("状态")].value == "已逾期"
    assert one[_col("截止日期")].value is None and one[_col("完成时限")].value == "长期坚持"
    assert one[_col("逾期天数")].value is None and three[_col("逾期天数")].value is None
    assert all(rows[n][_col("备注")].value is None for n in rows)  # left for the meeting


def test_every_cell_is_bordered_in_a_cjk_font_and_long_notes_wrap_into_tall_enough_rows(printed: Worksheet) -> None:
    for row in printed.iter_rows(min_row=3):
        for cell in row:
            assert all(getattr(cell.border, side).style == "thin" for side in ("left", "right", "top", "bottom"))
            assert cell.font.name == "宋体" and cell.font.charset == 134
    assert printed["A1"].font.name == "宋体"
    note = _rows(printed)["3"][_col("最新进展")]
    assert note.alignment.wrap_text and _rows(printed)["3"][_col("工作任务")].alignment.wrap_text
    width = printed.column_dimensions["L"].width
    lines = math.ceil(display_width(str(note.value)) / (width - 1))  # CJK characters count two
    assert lines >= 4
    height = printed.row_dimensions[note.row].height
    assert height is not None and height >= lines * LINE_POINTS
    short = _rows(printed)["19"][0].row  # a short row stays short
    assert (printed.row_dimensions[short].height or 0) < height


def test_each_state_reads_in_black_and_white_as_its_word_on_its_own_pattern(printed: Worksheet) -> None:
    patterns = state_patterns()
    assert len(set(patterns.values())) == len(STATES)  # whatever states vocabulary.py defines
    assert set(patterns) == set(STATES)
    seen = {}
    for row in _rows(printed).values():
        cell = row[_col("状态")]
        seen[cell.value] = cell.fill.patternType
        assert cell.font.bold
    expected = {state_label(state): patterns[state] for state in STATES if state_label(state) in seen}
    assert seen == expected and len(seen) >= 4  # 已逾期, 临期, 正常推进, 长期推进 on 2021-06-22
    assert len(set(seen.values())) == len(seen)


@pytest.fixture
def renumbered(loaded: Cli) -> Iterator[Cli]:
    """Task 10 numbered 2.10, as in a plan whose numbering restarts in each section."""
    env = library(loaded)
    with session_scope(env.engine) as session:
        session.execute(update(Task).where(Task.number == "10").values(number="2.10"))
    env.engine.dispose()
    yield loaded


def test_a_task_number_such_as_2_10_stays_text_in_the_xlsx_and_the_csv_and_round_trips(
    renumbered: Cli, tmp_path: Path
) -> None:
    xlsx, out = tmp_path / "台账.xlsx", tmp_path / "台账.csv"
    renumbered("export", "--format", "xlsx", "--out", str(xlsx), "--as-of", "2021-06-22")
    renumbered("export", "--format", "csv", "--out", str(out), "--as-of", "2021-06-22")
    cell = _rows(load_workbook(xlsx)[ledger.SHEET])["2.10"][0]
    assert cell.value == "2.10" and cell.data_type == "s"
    raw = out.read_bytes().decode("utf-8")
    assert raw.startswith('\ufeff"序号","部分","工作任务"') and '\r\n"2.10",' in raw and "'2.10" not in raw
    records = list(csv.reader(io.StringIO(raw.removeprefix("\ufeff"))))
    assert records[0] == HEADER and [r[0] for r in records[1:]].count("2.10") == 1
    three = next(r for r in records if r[0] == "3")
    assert three[_col("完成时限")] == "2021年10月" and three[_col("截止日期")] == "2021-10-31"
    # The ledger's CSV is a task breakdown the importer takes back as it is: nothing changes, 2.10 is found.
    result = renumbered("import-assignments", str(out))
    assert "无变化" in result.output and "19" in result.output


def test_the_dashboard_and_the_command_line_export_the_same_ledger(
    loaded: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "台账.xlsx"
    loaded("export", "--format", "xlsx", "--out", str(out), "--as-of", "2021-06-21")  # the site's day
    with open_site(loaded, monkeypatch) as site:
        site.login()
        response = site.client.get("/admin/export.xlsx")
    assert response.status_code == 200
    web, cli = load_workbook(io.BytesIO(response.content))[ledger.SHEET], load_workbook(out)[ledger.SHEET]
    assert _layout(web) == _layout(cli)
    assert [[c.value for c in r] for r in web.iter_rows()] == [[c.value for c in r] for r in cli.iter_rows()]


def _layout(sheet: Worksheet) -> tuple[object, ...]:
    fills = tuple(c.fill.patternType for c in sheet["I"])
    heights = tuple(sheet.row_dimensions[r].height for r in range(1, sheet.max_row + 1))
    widths = tuple(sheet.column_dimensions[chr(65 + i)].width for i in range(len(COLUMNS)))
    return (sheet.page_setup.orientation, sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight,
            str(sheet.print_title_rows), sheet.freeze_panes, sheet.auto_filter.ref,
            sheet.oddFooter.center.text if sheet.oddFooter else None, fills, heights, widths)


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_prints_the_example_ledger_on_few_landscape_pages(printed: Worksheet, tmp_path: Path) -> None:
    source = next(tmp_path.glob("台账.xlsx"))
    subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(source)],
                   check=True, timeout=120, capture_output=True)
    pdf = (tmp_path / "台账.pdf").read_bytes()
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert 1 <= pages <= 3, pages
