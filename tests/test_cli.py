import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from reminders.cli.app import cli
from reminders.store import db
from tests.conftest import Cli

COMMANDS = sorted(cli.commands)


def test_it_has_the_commands_of_the_monthly_cycle() -> None:
    assert set(COMMANDS) >= {"init", "import-plan", "import-units", "import-leaders", "import-assignments",
                             "progress", "status", "send", "preview", "run", "check-config"}


@pytest.mark.parametrize("command", COMMANDS)
def test_it_explains_every_command(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    summary = result.output.split("\n\n")[1]
    assert len(summary.strip()) > 10, result.output


def test_it_runs_as_a_module_and_shows_help() -> None:
    result = subprocess.run([sys.executable, "-m", "reminders", "--help"], capture_output=True, text=True, check=True)
    assert "Monthly reminders" in result.stdout and "import-plan" in result.stdout


def test_its_help_starts_without_the_database_layer() -> None:
    """`reminders --help` and a wrong command line answer in a tenth of a second: the command modules import
    SQLAlchemy, the models and the mail stack inside the commands that use them."""
    probe = ("import sys; from reminders.cli.app import cli; "
             "print(sorted(m for m in ('sqlalchemy', 'jinja2', 'aiosmtplib', 'openpyxl', 'reminders.store.models') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_it_knows_the_newest_migration() -> None:
    assert db.head_revision() == db.HEAD


def test_it_creates_the_schema_and_upgrades_idempotently(run: Cli, db_url: str) -> None:
    from reminders.store.models import Base

    engine = db.make_engine(db_url)
    # The migrations create every table of the models, and nothing else but Alembic's own.
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    assert f"schema up to date at {db.HEAD}" in run("init").output


def test_it_masks_the_database_password(tmp_path) -> None:
    from tests.conftest import write_config

    config = write_config(tmp_path / "r.toml", "postgresql://ducha:s3cret@127.0.0.1:1/none")
    result = Cli(config)("check-config")
    assert "s3cret" not in result.output and "ducha:***@127.0.0.1" in result.output


def test_it_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    from tests.conftest import write_config

    config = write_config(tmp_path / "r.toml", "postgresql://ducha:s3cret@127.0.0.1:1/none")
    result = Cli(config)("init", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("Error: 数据库错误 (database error) postgresql://ducha:***@127.0.0.1:1/none")
    assert "Traceback" not in result.output and "s3cret" not in result.output
