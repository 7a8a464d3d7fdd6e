"""A ledger's XLSX made in a process of its own while a cycle goes on building its other messages.

openpyxl writes about 5,000 rows a second: for a plan of 100,000 tasks the attached ledger was a quarter of a
cycle's building, on one core while the other waited. The process is a fresh interpreter running this module
(`python -m reminders.tracking.ledger_process`), fed the ledger's rows pickled on its stdin and answering the
workbook's bytes on its stdout: it shares no thread, lock or database connection with the caller, and never runs
the caller's main script again (as multiprocessing's spawn and forkserver would).

The rows go FEED_ROWS at a time, each batch its own pickle: a ledger may make its rows as they are read (ledger.py
does), so the caller never holds them all, nor pickle's memo of every cell (at 100,000 tasks the two together were
some 120 MB of the cycle's peak).
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from itertools import islice
from typing import IO

from reminders.tracking.ledger_sheet import Ledger, LedgerRow, sheet_bytes

log = logging.getLogger(__name__)
PARALLEL_ROWS = 5000  # from this many tasks the XLSX is made in a process of its own (about a second's work)
FEED_ROWS = 1000  # rows pickled together on the way to the process


class PendingSheet:
    """A ledger's XLSX being made: for a plan of `parallel_rows` tasks or more, in a process of its own; for a
    smaller one, here, when it is asked for. `make` reads the ledger; it is called once, and again only where the
    process could not be started or failed (the workbook is then made here: the same bytes, later), so the rows
    are not held while the process works. `close` ends the process when the result is no longer wanted."""

    def __init__(self, make: Callable[[], Ledger], rows: int, as_of: date,
                 parallel_rows: int = PARALLEL_ROWS) -> None:
        self._make = make
        self.as_of = as_of
        self._data: bytes | None = None
        self._process: subprocess.Popen[bytes] | None = None
        if rows < parallel_rows or not sys.executable:
            return
        try:
            process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            return
        self._process = process
        assert process.stdin is not None
        try:
            with process.stdin:
                _feed(make(), process.stdin)
        except OSError:
            self.close()

    @property
    def parallel(self) -> bool:
        return self._process is not None

    def result(self) -> bytes:
        """The workbook's bytes, made once."""
        if self._data is None:
            self._data = self._answer() or sheet_bytes(self._make())
        return self._data

    def _answer(self) -> bytes | None:
        """The process's workbook; None where it failed or none was started."""
        if self._process is None:
            return None
        assert self._process.stdout is not None
        try:
            data = self._process.stdout.read()
        except OSError:
            data = b""
        code = self._process.wait()
        self.close()
        if code == 0 and data:
            return data
        log.warning("台账进程失败，改在本进程生成 (the ledger process failed, exit %s: made here instead)", code)
        return None

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


def _feed(ledger: Ledger, stream: IO[bytes]) -> None:
    """The ledger's title, day and row count, then its rows in batches: what `main` reads."""
    pickle.dump((ledger.plan_title, ledger.as_of, len(ledger.rows)), stream, protocol=pickle.HIGHEST_PROTOCOL)
    rows = iter(ledger.rows)
    while batch := tuple(islice(rows, FEED_ROWS)):
        pickle.dump(batch, stream, protocol=pickle.HIGHEST_PROTOCOL)


def main() -> None:
    stream = sys.stdin.buffer
    head = pickle.load(stream)
    if not (isinstance(head, tuple) and len(head) == 3 and isinstance(head[2], int)):
        raise SystemExit(2)
    title, as_of, count = head
    rows: list[LedgerRow] = []
    while len(rows) < count:
        rows.extend(pickle.load(stream))
    if len(rows) != count or not all(isinstance(row, LedgerRow) for row in rows):
        raise SystemExit(2)
    sys.stdout.buffer.write(sheet_bytes(Ledger(title, as_of, tuple(rows))))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
