"""The work ledger (工作台账) as XLSX (a coloured state cell per task) and as CSV (UTF-8 with a BOM, for Excel).

Both always export and always open: a character XML 1.0 cannot carry, which rows stored before input was checked
(reminders.text) may still hold, is written as U+FFFD.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.store.plans import active_plan
from reminders.text import writable
from reminders.tracking.status import TaskLine, load_status
from reminders.vocabulary import LEDGER_FILLS, NO_DEADLINE, TaskState, state_label

HEADERS = ("序号", "部分", "工作任务", "责任领导", "牵头单位", "配合单位", "完成时限", "状态", "最新进展", "报送日期",
           "本月是否报送")
WIDTHS = (6, 24, 50, 10, 16, 24, 22, 10, 50, 12, 12)
SHEET = "工作台账"


@dataclass(frozen=True)
class LedgerRow:
    state: TaskState
    cells: tuple[str, ...]


def ledger_rows(session: Session, config: Config, today: date) -> list[LedgerRow]:
    status = load_status(session, active_plan(session), today, config.schedule.due_soon_days)
    return [LedgerRow(line.state, (
        line.number, line.section, line.title, line.leader or "", line.lead_unit or "", "、".join(line.co_units),
        _deadline(line), state_label(line.state), _latest(line),
        line.latest.reported_on.isoformat() if line.latest else "", "是" if line.reported else "否",
    )) for line in status.lines]


def _deadline(line: TaskLine) -> str:
    if line.deadline is None:
        return line.deadline_text or NO_DEADLINE["zh_CN"]
    main = line.deadline.isoformat()
    return f"{main}（{line.deadline_text}）" if line.deadline_text else main


def _latest(line: TaskLine) -> str:
    if line.latest is None:
        return ""
    percent = f"完成{line.latest.percent}% " if line.latest.percent is not None else ""
    return f"{line.latest.unit}：{percent}{line.latest.note}"


def _safe(value: str) -> str:
    """A cell Excel will not run as a formula (CSV/formula injection), holding only characters a file can carry."""
    value = writable(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_ledger_csv(session: Session, config: Config, today: date) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for row in ledger_rows(session, config, today):
        writer.writerow([_safe(cell) for cell in row.cells])
    return "\ufeff" + buffer.getvalue()


def export_ledger_xlsx(session: Session, config: Config, today: date) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.create_sheet(SHEET, 0)
    book.remove(book.worksheets[1])  # the empty default sheet
    sheet.append(HEADERS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center")
    state_column = HEADERS.index("状态") + 1
    for index, row in enumerate(ledger_rows(session, config, today), start=2):
        for column, value in enumerate(row.cells, start=1):
            cell = sheet.cell(row=index, column=column)
            cell.value = writable(value)  # what rows stored before the check may hold
            cell.data_type = "s"  # text, always: openpyxl would store a value starting with "=" as a formula
            cell.alignment = Alignment(vertical="top", wrap_text=column in (3, 9))
        fill = LEDGER_FILLS[row.state]
        sheet.cell(row=index, column=state_column).fill = PatternFill("solid", start_color=fill, end_color=fill)
    sheet.freeze_panes = "A2"
    for column, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
