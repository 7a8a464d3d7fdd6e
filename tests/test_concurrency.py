"""Two senders on one database and one SMTP server, started together: each message goes out exactly once.

Real processes on a prepared SQLite file and a prepared PostgreSQL schema (49 messages a cycle: 40 reminders,
5 督办通知, 4 digests): two `reminders send --cycle 2021-06` started a seeded random few milliseconds apart (so the
races fall in recording as well as in claiming), and a daemon `reminders run` whose catch-up fires at once next to
a manual `reminders send` of the same month (this month: on the plan's 2021 deadlines, a 督办通知 for every unit
leading an overdue task). Both processes must exit 0, every address must receive its message once, and
the outbox must hold each message once, sent.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, func, select

from reminders.store.models import LadderStep
from tests import crashdata
from tests.crashdata import CYCLE, LANES, Row, outbox_rows, reminders_process
from tests.smtpserver import Received, RecordingServer

SEED = 20210626
TRIALS = 20  # pairs of `send` per database
DAEMON_TRIALS = 5  # daemon + `send` per database
HEADSUP_TRIALS = 6  # pairs of `send --kind headsups` per database
EXPECTED_MESSAGES = crashdata.CYCLE_MESSAGES
DATA_DELAY = 0.004  # so both senders are still sending when the second one starts claiming
TZ = ZoneInfo("Asia/Shanghai")




@pytest.fixture(params=["sqlite", "postgres"])
def prepared(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    """(database, per lane the URL of a prepared database: a SQLite template to copy or a PostgreSQL schema)."""
    if request.param == "sqlite":
        return "sqlite", [request.getfixturevalue("sqlite_template")] * LANES
    return "postgres", request.getfixturevalue("postgres_prepared")


def _in_lanes(templates: list[str], trial: Callable[[int, str], Outcome], trials: int) -> list[Outcome]:
    """Trials 1…`trials`, as many at a time as there are lanes, each lane on its own database."""
    def lane(index: int) -> list[Outcome]:
        return [trial(number, templates[index]) for number in range(index + 1, trials + 1, len(templates))]

    with ThreadPoolExecutor(len(templates)) as pool:
        return sorted((o for outcomes in pool.map(lane, range(len(templates))) for o in outcomes),
                      key=lambda o: o.number)




def _catch_up(config: Path) -> Path:
    """Both crons fire at midnight every day: a daemon started now catches up this month at once. The chase is
    moved to 1 January, out of the grace, so the trial counts reminders and digests only."""
    text = config.read_text(encoding="utf-8")
    text = text.replace('reminders = "0 9 20 * *"', 'reminders = "0 0 * * *"')
    text = text.replace('digests = "0 9 26 * *"', 'digests = "0 0 * * *"\nchase = "0 0 1 1 *"\n'
                        'headsup = "0 0 1 1 *"\nshift = "none"')  # a run today, even on a weekend or a holiday
    config.write_text(text, encoding="utf-8")
    return config


@dataclass(frozen=True)
class Outcome:
    number: int
    messages: int
    deliveries: int
    lost: int
    duplicated: int
    sent_by: tuple[int, int]  # messages each process reports it sent
    problems: list[str]


def _sent_lines(log: Path) -> int:
    return sum(1 for line in log.read_text(encoding="utf-8").splitlines() if "已发送 sent" in line)


def _judge(number: int, rows: list[Row], received: list[Received], logs: tuple[Path, Path],
           codes: tuple[int | None, int | None], cycle: str, expected: int = EXPECTED_MESSAGES) -> Outcome:
    problems = [f"{log.name} exited {code}: {log.read_text(encoding='utf-8')[-3000:]}"
                for log, code in zip(logs, codes, strict=True) if code != 0]
    if len(rows) != expected:
        problems.append(f"{len(rows)} outbox rows, expected {expected}")
    if others := [row.id for row in rows if row.cycle != cycle]:
        problems.append(f"rows of another cycle than {cycle}: {others}")
    if twice := [key for key, n in Counter((row.kind, row.recipient_key) for row in rows).items() if n > 1]:
        problems.append(f"recorded more than once: {twice}")
    if unsent := [(row.id, row.recipient_key, row.state, row.claimed_by) for row in rows if row.state != "sent"]:
        problems.append(f"rows not sent: {unsent}")
    message_ids = {row.addresses: row.message_id for row in rows}
    deliveries = Counter(";".join(message.recipients) for message in received)
    lost = sorted(set(message_ids) - set(deliveries))
    duplicated = {key: n for key, n in deliveries.items() if n > 1}
    if lost:
        problems.append(f"never delivered: {lost}")
    if duplicated:
        problems.append(f"delivered more than once: {duplicated}")
    if strangers := sorted(set(deliveries) - set(message_ids)):
        problems.append(f"delivered to addresses with no outbox row: {strangers}")
    if wrong := [m.message_id for m in received if m.message_id != message_ids.get(";".join(m.recipients))]:
        problems.append(f"Message-IDs not in the outbox: {wrong}")
    sent_by = (_sent_lines(logs[0]), _sent_lines(logs[1]))
    return Outcome(number, len(rows), len(received), len(lost), sum(n - 1 for n in duplicated.values()), sent_by,
                   problems)


def _two_sends(number: int, database: str, template: str, folder: Path, offset: float,
               command: tuple[str, ...] = ("send", "--cycle", CYCLE), expected: int = EXPECTED_MESSAGES,
               steps: int = crashdata.CYCLE_STEPS) -> Outcome:
    folder.mkdir()
    url = crashdata.trial_database(database, template, folder)
    with RecordingServer() as smtp:
        smtp.delay_replies(DATA_DELAY)
        config = crashdata.prepared_config(folder, url, smtp.port)
        logs = (folder / "first.log", folder / "second.log")
        first = reminders_process(config, *command, output=logs[0])
        time.sleep(offset)
        second = reminders_process(config, *command, output=logs[1])
        codes = (first.wait(timeout=120), second.wait(timeout=120))
        time.sleep(0.05)  # let the server finish with the last connection
        received = smtp.messages
    outcome = _judge(number, outbox_rows(url), received, logs, codes, CYCLE, expected)
    if (recorded := _step_count(url)) != steps:
        outcome.problems.append(f"{recorded} ladder steps recorded, expected {steps}")
    return outcome


def _step_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(LadderStep)) or 0)
    finally:
        engine.dispose()


def _would_send(config: Path, cycle: str) -> int:
    """How many messages `send --cycle` builds for the month, as its dry run lists them (nothing recorded)."""
    listing = config.parent / "dry-run.log"
    assert reminders_process(config, "send", "--cycle", cycle, "--dry-run", output=listing).wait(timeout=120) == 0
    count = sum(1 for line in listing.read_text(encoding="utf-8").splitlines() if line.startswith("将发送 would send"))
    assert count > crashdata.CYCLE_MESSAGES, count  # this month, years after the deadlines: notices to most units
    return count


def _wait_for_jobs(log: Path, cycle: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until the daemon has logged both catch-up jobs of `cycle` as finished (or failed, or died)."""
    done = [f"job {kind}: cycle {cycle} recorded" for kind in ("reminder", "digest")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        text = log.read_text(encoding="utf-8")
        if all(line in text for line in done) or "Traceback" in text or "giving up" in text:
            return
        time.sleep(0.05)


def _daemon_and_send(number: int, database: str, template: str, folder: Path, offset: float) -> Outcome:
    folder.mkdir()
    url = crashdata.trial_database(database, template, folder)
    cycle = datetime.now(TZ).strftime("%Y-%m")  # the month whose midnight run the daemon catches up
    crashdata.set_plan_year(url, datetime.now(TZ).year)  # back to 2021 below: the lane's other trials send 2021-06
    try:
        return _daemon_and_send_in(number, url, folder, offset, cycle)
    finally:
        crashdata.set_plan_year(url, 2021)


def _daemon_and_send_in(number: int, url: str, folder: Path, offset: float, cycle: str) -> Outcome:
    with RecordingServer() as smtp:
        smtp.delay_replies(DATA_DELAY)
        config = _catch_up(crashdata.prepared_config(folder, url, smtp.port))
        expected = _would_send(config, cycle)
        logs = (folder / "daemon.log", folder / "send.log")
        daemon = reminders_process(config, "run", output=logs[0])
        time.sleep(offset)
        manual = reminders_process(config, "send", "--cycle", cycle, output=logs[1])
        manual_code = manual.wait(timeout=120)
        _wait_for_jobs(logs[0], cycle, daemon)
        daemon.send_signal(signal.SIGTERM)  # stops after the running job
        daemon_code = daemon.wait(timeout=60)
        time.sleep(0.05)
        received = smtp.messages
    outcome = _judge(number, outbox_rows(url), received, logs, (daemon_code, manual_code), cycle, expected)
    daemon_log = logs[0].read_text(encoding="utf-8")
    sent_by_daemon = sum(1 for line in daemon_log.splitlines() if "已发送 sent" in line)
    if any(f"catching up {kind}" not in daemon_log for kind in ("reminder", "digest")):
        outcome.problems.append(f"the daemon did not catch up both kinds of {cycle}: {daemon_log[-3000:]}")
    return Outcome(outcome.number, outcome.messages, outcome.deliveries, outcome.lost, outcome.duplicated,
                   (sent_by_daemon, outcome.sent_by[1]), outcome.problems)


def _report(name: str, database: str, outcomes: list[Outcome], offsets: list[float], tmp_path: Path,
            began: float) -> None:
    figures = {
        "scenario": name, "database": database, "seed": SEED, "trials": len(outcomes), "parallel_lanes": LANES,
        "messages": sum(o.messages for o in outcomes), "deliveries": sum(o.deliveries for o in outcomes),
        "lost": sum(o.lost for o in outcomes), "duplicated": sum(o.duplicated for o in outcomes),
        "trials_where_both_sent_some": sum(1 for o in outcomes if min(o.sent_by) > 0),
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    report = tmp_path / f"concurrency-figures-{database}-{'daemon' if 'daemon' in name else 'sends'}.json"
    report.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nconcurrency figures ({report}):\n{report.read_text(encoding='utf-8')}")
    failures = [f"trial {o.number} (seed {SEED}, second process {offsets[o.number - 1] * 1000:.0f} ms later, "
                f"logs in {tmp_path / f'trial-{o.number:02d}'}; sent by each: {o.sent_by}):\n    "
                + "\n    ".join(o.problems) for o in outcomes if o.problems]
    assert not failures, f"{len(failures)} of {len(outcomes)} trials failed:\n" + "\n".join(failures)


def test_it_sends_each_message_once_when_two_sends_start_together(prepared: tuple[str, list[str]],
                                                                 tmp_path: Path) -> None:
    database, templates = prepared
    began = time.monotonic()
    rng = random.Random(SEED)
    offsets = [rng.uniform(0, 0.25) if number % 4 else 0.0 for number in range(TRIALS)]
    outcomes = _in_lanes(templates, lambda number, template: _two_sends(
        number, database, template, tmp_path / f"trial-{number:02d}", offsets[number - 1]), TRIALS)
    _report("two `reminders send`", database, outcomes, offsets, tmp_path, began)
    # The starts were close enough for the two senders to share the work in most trials.
    assert sum(1 for o in outcomes if min(o.sent_by) > 0) >= TRIALS // 2, [o.sent_by for o in outcomes]


def test_it_sends_each_heads_up_once_when_two_sends_start_together(prepared: tuple[str, list[str]],
                                                                  tmp_path: Path) -> None:
    """The day's 临期提醒 (13 notices, 20 ladder steps on 24 June) from two senders at once: each sent once."""
    database, templates = prepared
    began = time.monotonic()
    rng = random.Random(SEED)
    offsets = [rng.uniform(0, 0.1) if number % 2 else 0.0 for number in range(HEADSUP_TRIALS)]
    outcomes = _in_lanes(templates, lambda number, template: _two_sends(
        number, database, template, tmp_path / f"trial-{number:02d}", offsets[number - 1],
        ("send", "--kind", "headsups", "--as-of", "2021-06-24"), 13, 20), HEADSUP_TRIALS)
    _report("two `reminders send --kind headsups`", database, outcomes, offsets, tmp_path, began)


def test_it_sends_each_message_once_when_a_manual_send_meets_the_daemons_catch_up(
        prepared: tuple[str, list[str]], tmp_path: Path) -> None:
    database, templates = prepared
    began = time.monotonic()
    rng = random.Random(SEED + 1)
    offsets = [rng.uniform(0, 0.5) for _ in range(DAEMON_TRIALS)]
    outcomes = _in_lanes(templates, lambda number, template: _daemon_and_send(
        number, database, template, tmp_path / f"trial-{number:02d}", offsets[number - 1]), DAEMON_TRIALS)
    _report("daemon catch-up + `reminders send`", database, outcomes, offsets, tmp_path, began)
