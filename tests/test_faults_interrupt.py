"""Ctrl-C (SIGINT) or SIGTERM during `send`: the messages in flight are finished, every other claim is put back to
pending at once, the figures so far and the command that finishes the month are printed; that command then sends
the rest, nothing twice. Real `reminders send` processes, a real aiosmtpd server that answers DATA late."""

from __future__ import annotations

import os
import pty
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from reminders import config as config_module
from reminders.delivery import dispatch
from reminders.delivery.building import PROGRESS_EVERY
from reminders.store.db import make_engine
from reminders.store.models import OutboxMessage
from tests import crashdata
from tests.crashdata import CYCLE, outbox_rows, reminders_process
from tests.smtpserver import RecordingServer

EXPECTED_MESSAGES = crashdata.CYCLE_MESSAGES
DATA_DELAY = 0.15  # seconds the server holds each 250, so a signal lands while messages are in flight
FINISH = "完成本月发送请运行 (to finish, run): "


def _wait_for(predicate: object, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"send exited ({process.returncode}) before {what}:\n{log.read_text('utf-8')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _interrupt(folder: Path, url: str, signum: int, after: int) -> tuple[int, str, RecordingServer, Path]:
    """Start a send, signal it once the server holds `after` messages, and wait for it to end."""
    smtp = RecordingServer()
    smtp.delay_replies(DATA_DELAY)
    smtp.start()
    config = crashdata.prepared_config(folder, url, smtp.port)
    log = folder / "interrupted.log"
    process = reminders_process(config, "send", "--cycle", CYCLE, output=log)
    _wait_for(lambda: len(smtp.messages) >= after, f"{after} messages", process, log)
    process.send_signal(signum)
    code = process.wait(timeout=60)
    return code, log.read_text(encoding="utf-8"), smtp, config


def _finish(output: str, folder: Path) -> tuple[int, str]:
    """Run the command the interrupted send printed, as a user would paste it."""
    line = next(line for line in output.splitlines() if line.startswith(FINISH))
    words = shlex.split(line.removeprefix(FINISH))
    assert words[0] == "reminders"
    log = folder / "finish.log"
    process = reminders_process(Path(words[2]), *words[3:], output=log) if words[1] == "--config" else None
    assert process is not None, line
    return process.wait(timeout=120), log.read_text(encoding="utf-8")


def _trial(folder: Path, url: str, signum: int, after: int, status: int) -> None:
    code, output, smtp, config = _interrupt(folder, url, signum, after)
    try:
        rows = outbox_rows(url)
        states = Counter(row.state for row in rows)
        received_then = len(smtp.messages)
        assert code == status, output
        assert "Traceback" not in output
        # Stopped cleanly: every message the server kept was recorded as sent, no claim is left behind.
        assert states == {"sent": received_then, "pending": EXPECTED_MESSAGES - received_then}, output
        assert received_then < EXPECTED_MESSAGES
        interrupted = next(line for line in output.splitlines() if line.startswith("已中断 interrupted: "))
        assert interrupted.startswith(f"已中断 interrupted: 周期 {CYCLE}: 新记录 recorded {EXPECTED_MESSAGES}, "
                                      f"已发送 sent {received_then}, 跳过(此前已发) skipped 0, 失败 failed 0, ")
        assert interrupted.endswith(f"待发送 left pending {EXPECTED_MESSAGES - received_then}")
        assert f"{FINISH}reminders --config {config} send --cycle {CYCLE} --kind all" in output.splitlines()

        finished, finish_output = _finish(output, folder)
        time.sleep(0.05)  # let the server finish with the last connection
        received = smtp.messages
    finally:
        smtp.stop()
    assert finished == 0, finish_output
    assert "由已退出的发送进程认领" not in finish_output  # nothing was left for the recovery of a dead sender
    assert f"已发送 sent {EXPECTED_MESSAGES - received_then}, 跳过(此前已发) skipped {received_then}" in finish_output
    deliveries = Counter(";".join(m.recipients) for m in received)
    assert len(deliveries) == EXPECTED_MESSAGES and set(deliveries.values()) == {1}  # every one, none twice
    assert {row.state for row in outbox_rows(url)} == {"sent"}


@pytest.mark.parametrize(("signum", "status", "after"), [
    (signal.SIGINT, 130, 1), (signal.SIGINT, 130, 20), (signal.SIGTERM, 143, 8),
], ids=["sigint-early", "sigint-midway", "sigterm"])
def test_it_stops_after_the_messages_in_flight_and_the_printed_command_finishes_the_month(
        sqlite_template: str, tmp_path: Path, signum: int, status: int, after: int) -> None:
    url = crashdata.copy_sqlite(sqlite_template, tmp_path / "reminders.sqlite3")
    _trial(tmp_path, url, signum, after, status)


def test_it_stops_cleanly_on_postgresql_too(postgres_prepared: list[str], tmp_path: Path) -> None:
    url = postgres_prepared[0]
    crashdata.reset_outbox(url)
    _trial(tmp_path, url, signal.SIGINT, 10, 130)


def test_it_records_nothing_when_stopped_while_recording(sqlite_template: str, tmp_path: Path) -> None:
    url = crashdata.copy_sqlite(sqlite_template, tmp_path / "reminders.sqlite3")
    config = config_module.load(str(crashdata.prepared_config(tmp_path, url, 25)))
    stop = threading.Event()
    stop.set()  # Ctrl-C came while the drafts were being built

    result = dispatch.send_cycle(make_engine(url), config, CYCLE, ("reminder", "digest"), stop=stop)

    assert result.interrupted and (result.recorded, result.sent, result.failed) == (0, [], [])
    assert outbox_rows(url) == []  # the recording was rolled back whole: the next run records the month


def test_it_puts_back_the_claims_of_a_stopped_maildir_run_at_once(sqlite_template: str, tmp_path: Path) -> None:
    url = crashdata.copy_sqlite(sqlite_template, tmp_path / "reminders.sqlite3")
    path = crashdata.prepared_config(tmp_path, url, 25)
    path.write_text(path.read_text(encoding="utf-8").replace('transport = "smtp"', 'transport = "maildir"'),
                    encoding="utf-8")
    config = config_module.load(str(path))
    engine = make_engine(url)
    stop = threading.Event()
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if len(lines) == 3:
            stop.set()

    result = dispatch.send_cycle(engine, config, CYCLE, ("reminder", "escalation", "digest"), echo=echo, stop=stop)

    assert result.interrupted and len(result.sent) == 3
    assert result.released == dispatch.claim_batch(config) - 3  # a batch was claimed; what was not sent went back
    with engine.connect() as connection:
        states = Counter(connection.scalars(select(OutboxMessage.state)))
    assert states == {"sent": 3, "pending": EXPECTED_MESSAGES - 3}
    assert len(list((tmp_path / "maildir" / "new").iterdir())) == 3


def test_it_shows_the_recording_progress_on_a_terminal_only(tmp_path: Path) -> None:
    units = 2 * PROGRESS_EVERY + 30  # each unit leads one task: one reminder each
    inputs = crashdata.write_inputs(tmp_path / "inputs", units=units, tasks=units)
    url = f"sqlite:///{tmp_path / 'big.sqlite3'}"
    config = crashdata.prepared_config(tmp_path, url, 25)
    config.write_text(config.read_text(encoding="utf-8").replace('transport = "smtp"', 'transport = "maildir"'),
                      encoding="utf-8")
    crashdata.prepare(config, inputs)
    command = [sys.executable, "-m", "reminders", "--config", str(config), "send", "--cycle", CYCLE, "--kind",
               "reminders"]

    logged = subprocess.run(command, capture_output=True, text=True, check=True)
    assert f"新记录 recorded {units}" in logged.stdout
    assert "生成并记录" not in logged.stdout and "\r" not in logged.stdout  # a pipe (a log) gets no progress line

    crashdata.reset_outbox(url)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every end of the terminal is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    text = seen.decode("utf-8")
    assert process.wait(timeout=60) == 0, text
    assert [part.split("\r\n")[0] for part in text.split("\r")[1:4]] == [
        f"生成并记录 built and recorded: {n}" for n in (PROGRESS_EVERY, 2 * PROGRESS_EVERY, units)]
    assert f"新记录 recorded {units}" in text
