"""What an import did, in words: rows added, updated (each change old → new), removed, skipped, and conflicts kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from reminders.errors import ReminderError
from reminders.intake.tables import Table, TableError, TableErrors, TableRow, raise_errors
from reminders.store.bulk import Values
from reminders.store.models import Base

Progress = Callable[[int, int], None]  # (rows done, rows in all)
PROGRESS_EVERY = 500


class ImportRefused(ReminderError):
    """An import refused as a whole (no plan, a table naming what is not there)."""


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    changes: list[str] = field(default_factory=list)  # "任务 3：完成时限 2021-06-30 → 2021-09-30", one a field
    conflicts: list[str] = field(default_factory=list)  # the office's decision kept against the table
    skipped: list[str] = field(default_factory=list)  # rows that are not data: footnotes, titles, headings

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def change(what: str, label: str, old: str, new: str) -> str:
    return f"{what}：{label} {old or '（空）'} → {new or '（空）'}"


def shown_deadline(text: str, due: date | None) -> str:
    """A deadline as the office reads it: the date, with the phrase it came from when that says more."""
    if due is None:
        return text
    return due.isoformat() if text in ("", due.isoformat()) else f"{due.isoformat()}（{text}）"


def skipped_rows(table: Table) -> list[str]:
    return [f"第 {row} 行“{text[:40]}” (row {row}: not data)" for row, text in table.skipped]


def fit(table: Table, row: TableRow, model: type[Base], values: Values, table_fields: Mapping[str, str]) -> Values:
    """Refuse a value longer than its column, naming the row and column, before the database sees it (PostgreSQL
    would refuse it naming neither; SQLite would keep it)."""
    for key, value in values.items():
        column = model.__table__.c[key]
        length = getattr(column.type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise table.error(row, table_fields[key],
                              f"内容过长：{len(value)} 字，最多 {length} 字 (longer than {length} characters)")
    return values


class Rows:
    """Go through a table's rows collecting every row's error (the import stays all or nothing: nothing is
    written unless there is none), and telling `progress` how far it got.

        for row in rows.each():
            with rows.guard():
                ...  # a TableError raised here is kept, and the next row checked
    """

    def __init__(self, table: Table, progress: Progress | None) -> None:
        self.table, self.progress = table, progress
        self.errors: list[TableError] = list(table.errors)

    def each(self) -> Iterator[TableRow]:
        total = len(self.table.rows)
        for done, row in enumerate(self.table.rows, start=1):
            yield row
            if self.progress is not None and total >= PROGRESS_EVERY and (done % PROGRESS_EVERY == 0 or done == total):
                self.progress(done, total)

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except TableErrors as e:  # several cells of one row
            self.errors.extend(e.errors)
        except TableError as e:
            self.errors.append(e)

    def check(self) -> None:
        raise_errors(self.errors)
