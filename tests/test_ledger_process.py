"""The attached ledger made in a process of its own (tracking.ledger_process): the same workbook as made in the
caller, and made in the caller after all when no process can be started or the process fails."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date

import pytest
from openpyxl import load_workbook

from reminders.tracking import ledger_process
from reminders.tracking.ledger_process import PendingSheet
from reminders.tracking.ledger_sheet import COLUMNS, Ledger, LedgerRow, sheet_bytes
from reminders.vocabulary import STATES


def _ledger(rows: int) -> Ledger:
    made = []
    for n in range(rows):
        state = STATES[n % len(STATES)]
        cells = [f"任务{n}" if column.kind == "text" else None for column in COLUMNS]
        cells[0] = n + 1
        cells[7] = date(2025, 1 + n % 12, 1)
        cells[10] = (n % 101) / 100
        cells[2] = "=SUM(A1)" if n == 3 else f"第 {n} 项工作任务\n第二段"
        made.append(LedgerRow(state, tuple(cells)))
    return Ledger("示例计划", date(2025, 6, 20), tuple(made))


class Reads:
    """The ledger as PendingSheet reads it, counting the reads."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.count = ledger, 0

    def __call__(self) -> Ledger:
        self.count += 1
        return self.ledger


def _pending(ledger: Ledger, parallel_rows: int) -> tuple[PendingSheet, Reads]:
    reads = Reads(ledger)
    return PendingSheet(reads, len(ledger.rows), ledger.as_of, parallel_rows), reads


def _cells(data: bytes) -> list[list[object]]:
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return [[(cell.value, cell.data_type, repr(cell.fill), repr(cell.font)) for cell in row]
            for row in sheet.iter_rows()]


def test_the_process_makes_the_workbook_the_caller_would() -> None:
    ledger = _ledger(40)
    pending, reads = _pending(ledger, parallel_rows=10)
    assert pending.parallel
    made = pending.result()
    assert not pending.parallel  # the process is gone once its answer is read
    assert reads.count == 1 and pending.result() is made  # read once, made once
    assert _cells(made) == _cells(sheet_bytes(ledger))
    assert _cells(made)[3 + 3][2][:2] == ("=SUM(A1)", "s")  # text, not a formula, through the process too


def test_a_small_plan_is_made_in_the_caller() -> None:
    pending, reads = _pending(_ledger(5), parallel_rows=10)
    assert not pending.parallel and reads.count == 0  # read only when the workbook is asked for
    assert _cells(pending.result()) == _cells(sheet_bytes(_ledger(5)))
    assert reads.count == 1


@pytest.mark.parametrize("executable", ["/nonexistent/python3", "/bin/false"])
def test_no_process_or_a_failed_one_still_gives_the_workbook(monkeypatch: pytest.MonkeyPatch,
                                                             executable: str) -> None:
    monkeypatch.setattr(ledger_process.sys, "executable", executable)
    ledger = _ledger(30)
    pending, reads = _pending(ledger, parallel_rows=1)
    assert _cells(pending.result()) == _cells(sheet_bytes(ledger))
    assert reads.count == (1 if executable.startswith("/nonexistent") else 2)  # read again after a failure


def test_closing_ends_a_process_whose_answer_is_not_wanted() -> None:
    pending, _reads = _pending(_ledger(3000), parallel_rows=1)
    process = pending._process
    assert process is not None
    pending.close()
    assert process.returncode is not None and process.returncode != 0  # killed, not finished
    assert not pending.parallel


class OnePass:
    """Rows made as they are read, once, as ledger.RowsOfDay makes them: a second read is a fault."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.reads = ledger, 0

    def __len__(self) -> int:
        return len(self.ledger.rows)

    def __iter__(self) -> Iterator[LedgerRow]:
        self.reads += 1
        assert self.reads == 1, "read twice"
        return iter(self.ledger.rows)


@pytest.mark.parametrize("rows", [0, 999, 1000, 2501])
def test_rows_made_as_read_reach_the_process_in_batches_whole(rows: int) -> None:
    ledger = _ledger(rows)
    lazy = OnePass(ledger)
    pending = PendingSheet(lambda: Ledger(ledger.plan_title, ledger.as_of, lazy), rows, ledger.as_of,
                           parallel_rows=0)
    assert pending.parallel
    made = pending.result()
    assert lazy.reads == 1  # fed once, made by the process, not again here
    assert _cells(made) == _cells(sheet_bytes(ledger))
