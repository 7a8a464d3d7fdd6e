"""A ledger's XLSX made in a process of its own while a cycle goes on building its other messages.

openpyxl writes about 5,000 rows a second: for a plan of 100,000 tasks the attached ledger was a quarter of a
cycle's building, on one core while the other waited. The process is a fresh interpreter running this module
(`python -m reminders.tracking.ledger_process`), fed the ledger's rows pickled on its stdin and answering the
workbook's bytes on its stdout: it shares no thread, lock or database connection with the caller, and imports
none of the caller's own code.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

from reminders.tracking.ledger_sheet import Ledger, sheet_bytes

PARALLEL_ROWS = 5000  # from this many tasks the XLSX is made in a process of its own (about a second's work)


class PendingSheet:
    """A ledger's XLSX being made: for a plan of `parallel_rows` tasks or more, in a process of its own; for a
    smaller one, here, when it is asked for. Where no process can be started, or it fails, the workbook is made
    here: the same bytes, later. `close` ends the process when the result is no longer wanted."""

    def __init__(self, ledger: Ledger, parallel_rows: int = PARALLEL_ROWS) -> None:
        self.ledger = ledger
        self._process: subprocess.Popen[bytes] | None = None
        if len(ledger.rows) < parallel_rows or not sys.executable:
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
                pickle.dump(ledger, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError:
            self.close()

    @property
    def parallel(self) -> bool:
        return self._process is not None

    def result(self) -> bytes:
        if self._process is not None:
            assert self._process.stdout is not None
            try:
                data = self._process.stdout.read()
            except OSError:
                data = b""
            code = self._process.wait()
            self.close()
            if code == 0 and data:
                return data
        return sheet_bytes(self.ledger)

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


def main() -> None:
    ledger = pickle.load(sys.stdin.buffer)
    if not isinstance(ledger, Ledger):
        raise SystemExit(2)
    sys.stdout.buffer.write(sheet_bytes(ledger))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
