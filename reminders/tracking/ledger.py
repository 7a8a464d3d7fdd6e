"""The work ledger (工作台账): its rows, and its two forms, XLSX to print (laid out in ledger_sheet) and CSV (UTF-8
with a BOM, for Excel).

Both always export and always open: a character XML 1.0 cannot carry, which rows stored before input was checked
(reminders.text) may still hold, is written as U+FFFD. Task numbers stay text in both (2.10 is not 2.1): the XLSX
stores a number only for a plain whole number (序号 12), and the CSV quotes every field.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.store.models import LadderStep, Plan, Task
from reminders.store.plans import active_plan
from reminders.text import writable
from reminders.tracking.ledger_process import PARALLEL_ROWS, PendingSheet
from reminders.tracking.ledger_sheet import HEADERS, SHEET, Ledger, LedgerRow, Value, sheet_bytes
from reminders.tracking.status import PlanStatus, TaskLine, load_status
from reminders.vocabulary import NO_DEADLINE, RUNG_LABELS, TaskState, state_label

__all__ = ["HEADERS", "SHEET", "Ledger", "LedgerRow", "PendingSheet", "RowsOfDay", "build_ledger", "export_ledger_csv",
           "export_ledger_xlsx", "start_ledger_xlsx"]


def build_ledger(session: Session, config: Config, today: date, status: PlanStatus | None = None) -> Ledger:
    """The ledger on `today`; `status`, the plan's status on that day when the caller has it already. Its rows are
    made as they are read (RowsOfDay): every form of the ledger reads them once."""
    plan = active_plan(session)
    if status is None or status.as_of != today:
        status = load_status(session, plan, today, config.schedule.due_soon_days, config.ladder.lag_points)
    return Ledger(plan.title, today, RowsOfDay(status.lines, _ladder(session, plan, today)))


class RowsOfDay:
    """A ledger's rows made from the day's task lines as they are read, one at a time: a workbook of 100,000 rows
    is written without all of them held at once."""

    def __init__(self, lines: tuple[TaskLine, ...], ladder: dict[str, str]) -> None:
        self._lines, self._ladder = lines, ladder

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[LedgerRow]:
        return (_row(line, self._ladder.get(line.number, "")) for line in self._lines)


def _ladder(session: Session, plan: Plan, today: date) -> dict[str, str]:
    """Task number -> the highest rung of the 督办 ladder the task reached in the plan's year up to `today`, with
    its number (督办通知 督办〔2021〕3号); the latest step of that rung."""
    year = plan.year if plan.year is not None else today.year
    best: dict[str, tuple[tuple[int, date], str]] = {}
    for number, rung, day, notice in session.execute(
        select(Task.number, LadderStep.rung, LadderStep.day, LadderStep.number)
        .join(Task, Task.id == LadderStep.task_id)
        .where(Task.plan_id == plan.id, LadderStep.cycle >= f"{year:04d}-01", LadderStep.cycle <= f"{year:04d}-12",
               LadderStep.day <= today)
    ):
        rank = (rung, day)
        if number not in best or rank > best[number][0]:
            best[number] = (rank, RUNG_LABELS["zh_CN"].get(rung, str(rung)) + (f" {notice}" if notice else ""))
    return {number: label for number, (_rank, label) in best.items()}


def _row(line: TaskLine, ladder: str = "") -> LedgerRow:
    latest = line.latest
    return LedgerRow(line.state, (
        _number(line.number), line.section, line.title, line.leader or "", line.lead_unit or "",
        "、".join(line.co_units), _deadline_text(line), line.deadline, state_label(line.state),
        line.days_overdue if line.state is TaskState.OVERDUE else None,
        latest.percent / 100 if latest is not None and latest.percent is not None else None,
        f"{latest.unit}：{latest.note}" if latest is not None else "",
        latest.reported_on if latest is not None else None, "是" if line.reported else "否", ladder,
        "",  # 备注: left for the office to write in at the meeting
    ))


def _number(number: str) -> Value:
    """A whole number (12) as a number, so it sorts as one; anything else (2.10, 一.3, 07) as the text it is."""
    return int(number) if number.isdigit() and number.isascii() and not number.startswith("0") else number


def _deadline_text(line: TaskLine) -> str:
    """The phrase as assigned (年底前); 长期坚持 for a task without a deadline; blank when only a date is known."""
    if line.deadline_text:
        return line.deadline_text
    return NO_DEADLINE["zh_CN"] if line.deadline is None else ""


def _csv_cell(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{round(value * 100)}%"
    return _safe(str(value))


def _safe(value: str) -> str:
    """A cell Excel will not run as a formula (CSV/formula injection), holding only characters a file can carry."""
    value = writable(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_ledger_csv(session: Session, config: Config, today: date) -> str:
    """The ledger's table alone (no title rows): one header, then one row per task, every field quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(HEADERS)
    for row in build_ledger(session, config, today).rows:
        writer.writerow([_csv_cell(cell) for cell in row.cells])
    return "\ufeff" + buffer.getvalue()


def export_ledger_xlsx(session: Session, config: Config, today: date, status: PlanStatus | None = None) -> bytes:
    return sheet_bytes(build_ledger(session, config, today, status))


def start_ledger_xlsx(session: Session, config: Config, today: date, status: PlanStatus,
                      parallel_rows: int = PARALLEL_ROWS) -> PendingSheet:
    """export_ledger_xlsx begun, as PendingSheet says: in a process of its own for a large plan.

    The session must stay open until the result is in: should the process fail, the rows are read again."""
    return PendingSheet(lambda: build_ledger(session, config, today, status), len(status.lines), today,
                        parallel_rows)
