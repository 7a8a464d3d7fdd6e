"""The scheduler daemon as a real process: catch-up on start, job errors logged, clean stop on SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from reminders import config as config_module
from reminders.daemon import missed_fire_times
from tests.conftest import EXAMPLES, Cli, write_config
from tests.smtpserver import RecordingServer

TZ = ZoneInfo("Asia/Shanghai")


def daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reminders", "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    return output


def test_it_finds_the_fire_times_missed_within_the_grace(tmp_path: Path) -> None:
    path = write_config(tmp_path / "r.toml", "sqlite:///x.sqlite3", extra="misfire_grace = \"3d\"\n")
    config = config_module.load(str(path))
    now = datetime(2021, 6, 21, 8, 0, tzinfo=TZ)
    assert missed_fire_times(config, now) == [("reminder", datetime(2021, 6, 20, 9, 0, tzinfo=TZ))]
    assert missed_fire_times(config, datetime(2021, 6, 24, 9, 0, 1, tzinfo=TZ)) == []  # beyond 72 h
    both = missed_fire_times(config, datetime(2021, 6, 26, 10, 0, tzinfo=TZ))
    assert [kind for kind, _ in both] in (["reminder", "digest", "chase"], ["digest", "chase"])  # chase: 10:00


def _catch_up_config(tmp_path: Path, db_url: str, smtp: RecordingServer) -> Path:
    """Both crons fired at midnight today (within the grace), so a daemon starting now catches up this month."""
    path = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port)
    text = path.read_text(encoding="utf-8")
    text = text.replace('reminders = "0 9 20 * *"', 'reminders = "0 0 * * *"')
    text = text.replace('digests = "0 9 26 * *"', 'digests = "0 0 * * *"')
    text += 'chase = "0 0 1 1 *"\n'  # not today: the catch-up below is about reminders and digests
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_catches_up_a_missed_cycle_once_and_stops_cleanly(tmp_path: Path, db_url: str,
                                                             smtp: RecordingServer) -> None:
    path = _catch_up_config(tmp_path, db_url, smtp)
    cli = Cli(path)
    cli("init")
    cli("import-plan", str(EXAMPLES / "plan-2021.txt"))
    cli("import-leaders", str(EXAMPLES / "leaders.csv"))
    cli("import-units", str(EXAMPLES / "units.csv"))
    cli("import-assignments", str(EXAMPLES / "assignments.csv"))

    first = daemon(path)
    wait_for(lambda: len(smtp.messages) >= 11)
    time.sleep(0.5)
    output = stop(first)
    assert "catching up reminder" in output and "catching up digest" in output
    assert "scheduled monthly reminders: next run" in output
    assert "stopped" in output
    assert len(smtp.messages) == 11

    second = daemon(path)  # a restart within the grace finds the cycle already sent
    time.sleep(3)
    output = stop(second)
    assert "sent 0" in output
    assert len(smtp.messages) == 11


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_logs_a_failing_job_with_its_traceback_and_keeps_running(tmp_path: Path, db_url: str,
                                                                    smtp: RecordingServer) -> None:
    path = _catch_up_config(tmp_path, db_url, smtp)
    Cli(path)("init")  # no plan imported: the job fails
    process = daemon(path)
    time.sleep(3)
    assert process.poll() is None  # still running after the failure
    output = stop(process)
    assert "job catch-up-reminder failed" in output and "Traceback" in output and "no plan imported yet" in output


def _run_briefly(config: config_module.Config, engine: Engine, seconds: float = 1.5, **kwargs: Any) -> None:
    import threading

    from reminders.daemon import run_daemon

    stop = threading.Event()
    thread = threading.Thread(target=run_daemon, args=(config, engine, stop), kwargs=kwargs)
    thread.start()
    time.sleep(seconds)
    assert thread.is_alive()  # the daemon keeps running whatever its jobs met
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()


def test_it_retries_a_job_when_the_database_is_unreachable_and_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from reminders.daemon import Retry
    from reminders.store.db import make_engine

    path = write_config(tmp_path / "r.toml", "postgresql://ducha:s3cret@127.0.0.1:1/reminders")
    text = path.read_text(encoding="utf-8").replace('reminders = "0 9 20 * *"', 'reminders = "0 0 * * *"')
    path.write_text(text, encoding="utf-8")
    config = config_module.load(str(path))
    caplog.set_level("INFO", logger="reminders")
    _run_briefly(config, make_engine(config.database_url), retry=Retry(attempts=3, delay=0.05))
    unreachable = [m for r in caplog.records if "job reminder: database" in (m := r.getMessage())]
    assert len(unreachable) == 3 and "attempt 3/3" in unreachable[-1]
    assert any("giving up on cycle" in r.getMessage() and "reminders send --cycle" in r.getMessage()
               for r in caplog.records)
    assert "s3cret" not in caplog.text and "ducha:***@127.0.0.1:1" in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_logs_a_cycle_missed_beyond_the_grace_with_the_command_to_send_it(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from reminders.store import db

    path = write_config(tmp_path / "r.toml", db_url, extra='misfire_grace = "1s"\n')
    text = path.read_text(encoding="utf-8").replace('reminders = "0 9 20 * *"', 'reminders = "0 0 1 1 *"')
    path.write_text(text, encoding="utf-8")
    config = config_module.load(str(path))
    engine = db.make_engine(config.database_url)
    db.upgrade(engine)
    caplog.set_level("INFO", logger="reminders")
    _run_briefly(config, engine, seconds=0.5)
    year = datetime.now(TZ).year
    missed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("missed:")]
    assert any(f"reminders send --cycle {year}-01 --kind reminders" in m for m in missed)
    assert not any("catching up" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_stops_on_sigterm_while_a_job_is_finishing(tmp_path: Path, db_url: str, smtp: RecordingServer) -> None:
    """A job that ends during shutdown must not deadlock the scheduler (its listener once took the job store lock)."""
    path = _catch_up_config(tmp_path, db_url, smtp)
    cli = Cli(path)
    cli("init")
    for command, name in (("import-plan", "plan-2021.txt"), ("import-leaders", "leaders.csv"),
                          ("import-units", "units.csv"), ("import-assignments", "assignments.csv")):
        cli(command, str(EXAMPLES / name))
    smtp.delay_replies(0.05)  # the catch-up is still sending when SIGTERM arrives
    process = daemon(path)
    wait_for(lambda: len(smtp.messages) >= 1)
    output = stop(process)
    assert "stopped" in output
