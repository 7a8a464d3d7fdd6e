"""Shared fixtures: a real database (SQLite file, and PostgreSQL in its own schema), a real SMTP server, the CLI."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from reminders.cli.app import cli
from tests.smtpserver import RecordingServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PG_URL = os.environ.get("REMINDERS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        with create_engine(PG_URL).connect() as connection:
            connection.execute(text("select 1"))
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres() -> str:
    if not _postgres_available():
        if os.environ.get("REMINDERS_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required but not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    return PG_URL


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reminders.sqlite3'}"
        return
    base = request.getfixturevalue("postgres")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"create schema {schema}"))
    yield f"{base}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f"drop schema {schema} cascade"))
    admin.dispose()


@pytest.fixture
def smtp() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def write_config(path: Path, db_url: str, *, transport: str = "maildir", smtp_port: int = 25, extra: str = "") -> Path:
    path.write_text(
        f"""
[database]
url = "{db_url}"

[office]
name = "督查室"
email = "ducha@example.org"

[delivery]
transport = "{transport}"
maildir = "maildir"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "ducha@example.org"
sender_name = "市民宗局督查室"
backoff = 0.01
retries = 2

[schedule]
timezone = "Asia/Shanghai"
reminders = "0 9 20 * *"
digests = "0 9 26 * *"
report_day = 25
due_soon_days = 7
{extra}
""",
        encoding="utf-8",
    )
    return path


class Cli:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = self.runner.invoke(cli, ["--config", str(self.config), *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def run(tmp_path: Path, db_url: str, smtp: RecordingServer) -> Cli:
    """The CLI on a fresh database, delivering by SMTP to the recording server."""
    config = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port)
    runner = Cli(config)
    runner("init")
    return runner


@pytest.fixture
def loaded(run: Cli) -> Cli:
    """The seed plan with the example leaders, units and assignments imported."""
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    run("import-units", str(EXAMPLES / "units.csv"))
    run("import-assignments", str(EXAMPLES / "assignments.csv"))
    return run


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A writable copy of examples/."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """For the crash and concurrency trials: a prepared SQLite database, copied for each trial."""
    from tests import crashdata

    return crashdata.sqlite_template_at(tmp_path_factory.mktemp("trials-sqlite"))


@pytest.fixture(scope="module")
def postgres_prepared(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """For the crash and concurrency trials: a prepared PostgreSQL schema per lane."""
    from tests import crashdata

    with ExitStack() as stack:
        yield [stack.enter_context(crashdata.postgres_schema(postgres, tmp_path_factory.mktemp("trials-pg")))
               for _ in range(crashdata.LANES)]
