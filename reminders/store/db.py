"""Engines, sessions and the schema's migrations (Alembic, shipped inside the package)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from reminders.errors import ReminderError

MIGRATIONS = "reminders.store:migrations"
HEAD = "0012"  # the newest migration; a test checks it against Alembic's own answer
# How long a SQLite statement waits for another process's write transaction: longer than a second sender's pass
# through a 10,000-unit cycle it finds recorded (about half a minute), so the first one's claims and settles wait
# for it rather than stop.
BUSY_TIMEOUT_MS = 120_000
RECORDING_WAIT_MS = 600_000  # ... while a cycle is recorded (wait_for_writers)


class SchemaError(ReminderError):
    pass


def masked(url: str) -> str:
    """The URL as it may be shown: every credential hidden — the password in the userinfo and any query parameter
    that carries one (`?password=`, `sslpassword=`, `token=`…), also in a URL SQLAlchemy cannot parse."""
    shown = _USERINFO.sub(r"\1:***@", url)  # first: a password with a raw "@" would otherwise show in part
    with suppress(ArgumentError, ValueError):  # a URL SQLAlchemy cannot read is shown as written, credentials hidden
        shown = make_url(shown).render_as_string(hide_password=True)
    return _SECRET_PARAM.sub(r"\1***", shown)


_USERINFO = re.compile(r"^([^:/?#]*://[^:/?#@]*):[^?#]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*(?:pass|pwd|secret|token|key)[^=&#]*=)[^&#]*")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkin", _usual_wait)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL loses nothing when a process dies; only a power cut may undo the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _usual_wait(connection: Any, _record: Any) -> None:
    """A connection back in the pool waits for other writers as long as any other (see wait_for_writers)."""
    with suppress(Exception):  # a connection that cannot take it is broken; the pool finds out on its next use
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def wait_for_writers(session: Session) -> None:
    """On SQLite, let this session wait up to RECORDING_WAIT_MS for another process's write transaction.

    Recording a cycle is one transaction (nothing half-recorded), which for 10,000 units lasts most of a minute:
    a second sender started beside the first waits for it to end, then finds the cycle recorded and shares the
    sending, where the usual BUSY_TIMEOUT_MS would have stopped it. The wait ends when the connection goes back to
    the pool. A server database needs none of this: a conflicting insert waits for the other transaction."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"PRAGMA busy_timeout={RECORDING_WAIT_MS}"))


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema to the newest revision; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), "head")
    return before, head_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database that `reminders init` has not brought up to date."""
    if not inspect(engine).has_table("alembic_version"):
        where = masked(str(engine.url))
        raise SchemaError(f"数据库尚未初始化，请先运行 reminders init (database {where} not initialised)")
    with engine.connect() as connection:
        revision = connection.execute(text("select version_num from alembic_version")).scalar()
    if revision != HEAD:
        raise SchemaError("数据库结构需要升级，请运行 reminders init (schema out of date: run reminders init)")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any error (nothing half-written)."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
