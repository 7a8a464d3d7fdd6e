"""The 工作台账's layout, and the XLSX an office prints for the leaders' meeting.

It prints as a hand-made 台账 does: a title row (《…工作任务推进台账》) and a line naming the plan and the day, A4
landscape fitted to the page width, the header repeated on every page (and frozen on screen with the task columns),
thin borders, wrapped text in rows tall enough for whole notes, real date and number cells, an autofilter, page
numbers in the footer, a CJK font, and each state as its word on a fill *pattern* as well as a colour, so that the
states stay apart on a black-and-white printer.

openpyxl is imported only inside `sheet_bytes`: reminders.mail and reminders.delivery may import this module's
data types (a digest attaches the ledger) without loading a spreadsheet library.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol, cast

from reminders.columns import display_width
from reminders.text import writable
from reminders.vocabulary import LEDGER_FILLS, LIGHT_COLOURS, STATES, TaskState, zh_date

if TYPE_CHECKING:
    from openpyxl.cell import Cell
    from openpyxl.styles import PatternFill
    from openpyxl.styles.cell_style import StyleArray
    from openpyxl.worksheet.worksheet import Worksheet

Value = str | int | float | date | None
Kind = Literal["text", "number", "date", "percent"]
Pattern = Literal["solid", "lightGrid", "lightTrellis", "lightDown", "lightUp", "lightHorizontal", "lightVertical",
                  "gray0625", "gray125", "darkGrid", "darkHorizontal", "darkVertical", "darkDown", "darkUp",
                  "darkTrellis", "mediumGray"]


@dataclass(frozen=True)
class Column:
    header: str
    width: float  # in Excel's character units (a CJK character takes about two)
    kind: Kind = "text"
    wrap: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("序号", 6, "number"), Column("部分", 12, wrap=True), Column("工作任务", 32, wrap=True),
    Column("责任领导", 8, wrap=True), Column("牵头单位", 12, wrap=True), Column("配合单位", 14, wrap=True),
    Column("完成时限", 12, wrap=True), Column("截止日期", 11, "date"), Column("状态", 9, wrap=True),
    Column("逾期天数", 7, "number"), Column("完成进度", 7, "percent"), Column("最新进展", 36, wrap=True),
    Column("报送日期", 11, "date"), Column("本月是否报送", 7, wrap=True), Column("督办", 13, wrap=True),
    Column("备注", 12, wrap=True),
)
HEADERS: tuple[str, ...] = tuple(column.header for column in COLUMNS)
SHEET = "工作台账"
STATE_COLUMN = HEADERS.index("状态")
FROZEN_COLUMNS = 3  # 序号, 部分, 工作任务 stay on screen while the rest scroll
TITLE_ROWS = 2  # the title, then the plan and the day; the header is the row after them
FONT_NAME = "宋体"  # SimSun: on every Chinese Windows; charset 134 (GB2312) lets others substitute a CJK font
FONT_CHARSET = 134
FONT_SIZE = 10
LINE_POINTS = 13.5  # one line of 10-point 宋体, with its leading
FOOTER = "第 &P 页 共 &N 页"

# Fill patterns a monochrome printer keeps apart, most striking for the most urgent states. A state without its own
# pattern (one added to vocabulary.TaskState later) takes the first spare one in STATES order, so none is left plain.
_PATTERNS: dict[str, Pattern] = {
    "overdue": "lightGrid", "lagging": "lightTrellis", "due_soon": "lightDown", "on_track": "solid",
    "ongoing": "lightHorizontal", "done": "gray0625", "unassigned": "lightVertical",
}
_SPARE_PATTERNS: tuple[Pattern, ...] = ("lightUp", "gray125", "darkGrid", "darkHorizontal", "darkVertical",
                                        "darkDown", "darkUp", "darkTrellis", "mediumGray")


def state_patterns() -> dict[TaskState, Pattern]:
    """Each state's fill pattern: distinct for every state vocabulary.py defines."""
    spare = iter(p for p in _SPARE_PATTERNS if p not in _PATTERNS.values())
    return {state: _PATTERNS[state.value] if state.value in _PATTERNS else next(spare) for state in STATES}


@dataclass(frozen=True, slots=True)
class LedgerRow:
    state: TaskState
    cells: tuple[Value, ...]  # one per column of COLUMNS


class Rows(Protocol):
    """What the layout reads of a ledger's rows: how many, then each in order once."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[LedgerRow]: ...


@dataclass(frozen=True)
class Ledger:
    plan_title: str
    as_of: date
    rows: Rows  # a tuple, or rows made as they are read (ledger.RowsOfDay)

    @property
    def title(self) -> str:
        return f"《{self.plan_title}工作任务推进台账》"

    @property
    def subtitle(self) -> str:
        return f"计划：{self.plan_title}    截至：{zh_date(self.as_of)}（{self.as_of.isoformat()}）"


def row_lines(cells: tuple[Value, ...]) -> int:
    """How many lines the row's tallest wrapped cell takes: each paragraph's display width over its column's."""
    lines = 1
    for column, value in zip(COLUMNS, cells, strict=True):
        if column.wrap and isinstance(value, str) and value:
            room = max(1, int(column.width) - 1)  # a little padding on either side
            lines = max(lines, sum(max(1, math.ceil(display_width(part) / room)) for part in value.splitlines()))
    return lines


def _argb(colour: str) -> str:
    return "FF" + colour.lstrip("#").upper()


def _state_fill(fill: type[PatternFill], pattern: Pattern, state: TaskState) -> PatternFill:
    if pattern == "solid":  # a solid fill shows fgColor: the pale shade, so the word stays legible
        return fill("solid", fgColor=_argb(LEDGER_FILLS.get(state, "FFFFFF")))
    return fill(pattern, fgColor=_argb(LIGHT_COLOURS.get(state, "#808080")),
                bgColor=_argb(LEDGER_FILLS.get(state, "FFFFFF")))


def sheet_bytes(ledger: Ledger) -> bytes:
    """The ledger as an XLSX workbook of one sheet, laid out for printing.

    The workbook is write-only: openpyxl streams each row to a temporary file as it is appended, so a plan of
    100,000 tasks is never a million cell objects in memory. Everything written before the rows (column widths, the
    frozen panes, the fit-to-page flag) is set before the first append, and each row's height just before its own.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = cast("Worksheet", book.create_sheet(SHEET))  # a WriteOnlyWorksheet: the stubs omit what it shares
    last = get_column_letter(len(COLUMNS))
    header = TITLE_ROWS + 1
    end = header + len(ledger.rows)
    _lay_out_page(sheet, last, header, end)
    for number, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(number)].width = column.width

    font = Font(name=FONT_NAME, charset=FONT_CHARSET, size=FONT_SIZE)
    bold = Font(name=FONT_NAME, charset=FONT_CHARSET, size=FONT_SIZE, bold=True)
    thin = Side(style="thin", color="FF000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)

    def write(line: int, height: float, cells: list[Cell]) -> None:
        sheet.row_dimensions[line].height = height
        sheet.append(cells)
        del sheet.row_dimensions[line]  # written with its row

    for line, text, size in ((1, ledger.title, 16), (2, ledger.subtitle, FONT_SIZE)):
        cell = WriteOnlyCell(sheet, writable(text))
        cell.font = Font(name=FONT_NAME, charset=FONT_CHARSET, size=size, bold=line == 1)
        cell.alignment = Alignment(horizontal="center" if line == 1 else "left", vertical="center")
        write(line, 30 if line == 1 else 18, [cell])
        sheet.merged_cells.add(f"A{line}:{last}{line}")

    titles = []
    for text in HEADERS:
        cell = WriteOnlyCell(sheet, text)
        cell.font = bold
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.fill = PatternFill("solid", fgColor="FFD9D9D9")
        cell.border = border
        titles.append(cell)
    write(header, 2 * LINE_POINTS + 4, titles)

    patterns = state_patterns()
    # Styling a cell makes openpyxl hash its font, border, fill and alignment to find them in the workbook's lists,
    # which took most of the time for a large plan: each distinct cell style is made once, then copied.
    made: dict[tuple[int, TaskState | None], StyleArray] = {}
    for index, row in enumerate(ledger.rows, start=header + 1):
        cells = []
        for number, (column, value) in enumerate(zip(COLUMNS, row.cells, strict=True), start=1):
            cell = WriteOnlyCell(sheet, writable(value) if isinstance(value, str) else value)  # type: ignore[arg-type]
            if isinstance(value, str):
                cell.data_type = "s"  # text, always: openpyxl would store a value starting with "=" as a formula
            cells.append(cell)
            key = (number, row.state if number - 1 == STATE_COLUMN else None)
            if key in made:
                cell._style = copy(made[key])  # type: ignore[attr-defined]  # openpyxl's stubs omit _style
                continue
            if column.kind == "date":
                cell.number_format = "yyyy-mm-dd"
            elif column.kind == "percent":
                cell.number_format = "0%"
            cell.font = font
            cell.border = border
            centred = column.kind != "text" or number - 1 == STATE_COLUMN
            cell.alignment = Alignment(vertical="top", wrap_text=column.wrap,
                                       horizontal="center" if centred else None)
            if number - 1 == STATE_COLUMN:
                cell.font = bold
                cell.fill = _state_fill(PatternFill, patterns[row.state], row.state)
            made[key] = copy(cell._style)  # type: ignore[attr-defined]
        write(index, row_lines(row.cells) * LINE_POINTS + 4, cells)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _lay_out_page(sheet: Worksheet, last: str, header: int, end: int) -> None:
    """The filter, the frozen panes and the print setup: A4 landscape, one page wide, the header on every page."""
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties
    from openpyxl.worksheet.worksheet import Worksheet

    sheet.auto_filter.ref = f"A{header}:{last}{end}"
    sheet.freeze_panes = f"{get_column_letter(FROZEN_COLUMNS + 1)}{header + 1}"
    sheet.print_title_rows = f"{header}:{header}"
    sheet.print_area = f"A1:{last}{end}"
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    sheet.page_setup.orientation = Worksheet.ORIENTATION_LANDSCAPE
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0  # as many pages down as the rows need
    if sheet.sheet_properties.pageSetUpPr is None:
        sheet.sheet_properties.pageSetUpPr = PageSetupProperties()
    sheet.sheet_properties.pageSetUpPr.fitToPage = True  # without it, applications ignore fitToWidth
    sheet.print_options.horizontalCentered = True
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.page_margins.top = sheet.page_margins.bottom = 0.6
    footer = sheet.oddFooter
    assert footer is not None
    footer.center.text = FOOTER
    footer.center.font = FONT_NAME
    footer.center.size = 9
