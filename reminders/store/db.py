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
HEAD = "0009"  # the newest migration; a test checks it against Alembic's own answer


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
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
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
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
