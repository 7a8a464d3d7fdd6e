"""Set-based writes for the importers: a statement per batch of rows, never one per row.

Reads return plain tuples (no ORM objects); writes are executemany-style INSERTs, UPDATEs by primary key and
DELETE … WHERE … IN, each in batches of CHUNK rows so a statement's parameters stay within every driver's limits.
INSERTs go through the Core table, not the ORM: an ORM bulk INSERT leaves out the columns that are None in a row
and so splits the rows into a batch for every change of which columns are None (a statement per row, at worst).
These statements bypass the Session's identity map: objects already loaded for the rows written are not refreshed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, delete, insert, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

CHUNK = 1000
T = TypeVar("T")
Values = dict[str, Any]


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def dialect_insert(session: Session, model: type[Any]) -> Any:
    """An INSERT into `model` in the session's database's own dialect (PostgreSQL's or SQLite's), which has
    on_conflict_do_nothing and on_conflict_do_update."""
    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert(model)


def insert_rows(session: Session, model: type[Any], rows: Sequence[Values]) -> None:
    """INSERT the rows, each with the same keys."""
    for batch in chunks(rows):
        session.execute(insert(model.__table__), batch)


def insert_returning(
    session: Session, model: type[Any], rows: Sequence[Values], *columns: InstrumentedAttribute[Any]
) -> list[Row[Any]]:
    """Insert the rows (all with the same keys) and return `columns` of each, in no particular order."""
    returned: list[Row[Any]] = []
    for batch in chunks(rows):
        returned.extend(session.execute(insert(model.__table__).returning(*columns), batch))
    return returned


def update_rows(session: Session, model: type[Any], rows: Sequence[Values]) -> None:
    """UPDATE by primary key: each row holds the key ("id") and the columns to set (the same ones in every row)."""
    for batch in chunks(rows):
        session.execute(update(model), batch)


def delete_in(session: Session, model: type[Any], column: InstrumentedAttribute[Any], keys: Iterable[Any]) -> None:
    for batch in chunks(keys):
        session.execute(delete(model).where(column.in_(batch)), execution_options={"synchronize_session": False})


def changed(old: Mapping[Any, Any], new: Mapping[str, Any]) -> bool:
    """Whether any value of `new` differs from the same key of `old` (a row's mapping)."""
    return any(old[key] != value for key, value in new.items())


def columns_of(model: type[Any], *names: str) -> list[ColumnElement[Any]]:
    return [getattr(model, name) for name in names]


def refresh_statistics(session: Session, *models: type[Any]) -> None:
    """Have PostgreSQL gather the statistics of tables a bulk write has just filled, as its manual advises after
    populating a database ("Run ANALYZE Afterwards").

    Its planner reads the size of each table from them, and autovacuum, which would gather them in time, may run
    late or be off: after an import of 100,000 tasks without them, PostgreSQL took the plan for 3 tasks and joined
    the leaders to it row by row, and the query reading the plan took 3.4 s instead of 0.4 s. ANALYZE reads a
    sample, not the table, and counts the rows this transaction wrote. SQLite's planner does as well without
    statistics on these queries (measured), so SQLite is left as it is."""
    if session.get_bind().dialect.name != "postgresql":
        return
    quote = session.get_bind().dialect.identifier_preparer.format_table
    for model in models:
        session.execute(text(f"ANALYZE {quote(model.__table__)}"))
