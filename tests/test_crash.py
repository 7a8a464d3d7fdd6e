"""`kill -9` the sender at random moments of a cycle, start it again, and count what the SMTP server received.

Each trial starts `reminders send --cycle 2021-06` (49 messages: 40 reminders, 5 督办通知 with a Cc, 4 digests) as a
real process against a real aiosmtpd server that answers DATA a little late (after keeping the message, so a
kill then cuts a transaction the server has already accepted), SIGKILLs it at a random moment, reaps it, and
runs the same send to completion. Two thirds of the kills come after delays stratified over a calibrated run's
length (start-up, building and recording, sending, after); a third come as soon as the server has kept a
stratified number of the messages, so that some kills cut the sending however small a share of the run it is and
however the run's speed differs from the calibration's. Both are drawn from a seeded random.Random. The
guarantee: every message arrives, at least once and at most twice; a message arrives twice only if the killed
sender held it in an SMTP transaction (its row was 'sending', claimed by that process), so at most one message
per connection, and both copies carry the same Message-ID; the outbox ends with every row sent. It is checked
with the default `[smtp] connections = 2` (SQLite and PostgreSQL) and with one connection (SQLite). Each test
writes its figures (trials, messages, lost, duplicated, where the kills landed) to a JSON file under its
tmp_path and prints them (`pytest -s`). The same trials run the day's 临期提醒 (`send --kind headsups --as-of
2021-06-24`), which must also record each ladder step exactly once.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select

from reminders.store.models import LadderStep
from tests import crashdata
from tests.crashdata import CYCLE, LANES, Row, outbox_rows, reminders_process
from tests.smtpserver import Received, RecordingServer

SEED = 20210620
DATA_DELAY = 0.008  # seconds between keeping a message and answering 250
RCPT_DELAY = 0.002
TRIALS = {"sqlite": 50, "postgres": 10, "one connection": 12, "heads-ups": 12}
EXPECTED_MESSAGES = crashdata.CYCLE_MESSAGES
NOTHING_RECORDED = "start-up or building (nothing recorded)"  # where a kill landed, as the outbox tells it
SENDING = "sending"




def _phase(rows: list[Row]) -> str:
    """Where the kill landed, as the outbox tells it."""
    states = Counter(row.state for row in rows)
    if not rows:
        return NOTHING_RECORDED
    if states["sent"] == len(rows):
        return "after the last message"
    if states["sent"] == 0 and states["sending"] == 0:
        return "recorded, nothing claimed"
    return SENDING


@dataclass(frozen=True)
class Run:
    """What a trial's sender runs, how many messages it must deliver, how long the server takes over each DATA, and
    how many ladder steps it must record once each."""

    command: tuple[str, ...]
    expected: int
    data_delay: float = DATA_DELAY
    steps: int = 0


MONTH = Run(("send", "--cycle", CYCLE), EXPECTED_MESSAGES, steps=crashdata.CYCLE_STEPS)
# 临期提醒 on Thursday 24 June: tasks due 25 June (1 working day: the 1 and, taken with it, the 5 milestone) and
# 30 June (4 working days: the 5 milestone), 15 tasks of 13 units, 20 steps; the server answers slowly, so that a good
# share of the kills fall while the few notices are being sent.
HEADSUPS = Run(("send", "--kind", "headsups", "--as-of", "2021-06-24"), 13, data_delay=0.15, steps=20)


def _send(config: Path, output: Path, run: Run) -> subprocess.Popen[bytes]:
    return reminders_process(config, *run.command, output=output)


def _server(run: Run) -> RecordingServer:
    smtp = RecordingServer()
    smtp.delay_replies(run.data_delay, "data")
    smtp.delay_replies(RCPT_DELAY, "rcpt")
    return smtp


def _steps(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(select(LadderStep.step_key)))
    finally:
        engine.dispose()


def _calibrate(database: str, template: str, folder: Path, smtp_lines: str, run: Run) -> float:
    """The length of one uninterrupted send, from process start to exit."""
    folder.mkdir()
    url = crashdata.trial_database(database, template, folder)
    with _server(run) as smtp:
        config = crashdata.prepared_config(folder, url, smtp.port, smtp_lines)
        started = time.monotonic()
        process = _send(config, folder / "send.log", run)
        assert process.wait(timeout=120) == 0, (folder / "send.log").read_text(encoding="utf-8")
        elapsed = time.monotonic() - started
        assert len(smtp.messages) == run.expected
        assert len(_steps(url)) == run.steps
    return elapsed


@dataclass(frozen=True)
class Kill:
    """When a trial's sender is killed: `delay` seconds after it started or, when `after_kept` is set, as soon as the
    server has kept that many messages (while it holds back its reply to the last of them)."""

    delay: float = 0.0
    after_kept: int = 0

    def __str__(self) -> str:
        return f"kill after {self.after_kept} kept" if self.after_kept else f"kill after {self.delay:.3f}s"


def _kills(calibrated: float, trials: int, expected: int, rng: random.Random) -> list[Kill]:
    """Two thirds of the trials killed after delays stratified over the calibrated run and a little past its end (a
    kill after the last message must change nothing either), a third after stratified counts of kept messages
    (1 to `expected` - 1); shuffled."""
    on_count = max(1, trials // 3)
    on_time = trials - on_count
    span = calibrated * 1.05
    kills = [Kill(delay=span * (slice_ + rng.random()) / on_time) for slice_ in range(on_time)]
    kills += [Kill(after_kept=1 + int((expected - 1) * (slice_ + rng.random()) / on_count))
              for slice_ in range(on_count)]
    rng.shuffle(kills)
    return kills


def _check_trial(rows: list[Row], received: list[Received], expected: int, in_flight: set[str],
                 connections: int) -> tuple[list[str], Counter[str]]:
    """What is wrong with one trial's outcome, and how many times each address received its message.

    `in_flight`: the addresses of the messages the killed sender had claimed ('sending') when it died.
    """
    problems = []
    if len(rows) != expected:
        problems.append(f"{len(rows)} outbox rows, expected {expected}")
    if unsettled := [(row.id, row.recipient_key, row.state) for row in rows if row.state != "sent"]:
        problems.append(f"rows not sent at the end: {unsettled}")
    message_ids = {row.addresses: row.message_id for row in rows}
    deliveries: Counter[str] = Counter()
    ids_seen: defaultdict[str, set[str | None]] = defaultdict(set)
    for message in received:
        key = ";".join(message.recipients)
        deliveries[key] += 1
        ids_seen[key].add(message.message_id)
    if lost := sorted(set(message_ids) - set(deliveries)):
        problems.append(f"lost (never delivered): {lost}")
    if strangers := sorted(set(deliveries) - set(message_ids)):
        problems.append(f"delivered to addresses with no outbox row: {strangers}")
    if beyond := {key: n for key, n in deliveries.items() if n > 2}:
        problems.append(f"delivered more than twice: {beyond}")
    twice = sorted(key for key, n in deliveries.items() if n > 1)
    if outside := [key for key in twice if key not in in_flight]:
        problems.append(f"delivered twice though not in the killed sender's hands: {outside}")
    if len(twice) > connections:
        problems.append(f"{len(twice)} messages delivered twice after one kill, at most {connections} allowed: {twice}")
    for key, ids in ids_seen.items():
        if ids != {message_ids.get(key)}:
            problems.append(f"{key} received Message-IDs {sorted(map(str, ids))}, outbox has {message_ids.get(key)}")
    return problems, deliveries


def _describe(rows: list[Row]) -> str:
    states = Counter(row.state for row in rows)
    sending = [(row.id, row.recipient_key, row.attempts) for row in rows if row.state == "sending"]
    return f"{dict(states)}, sending (id, recipient, attempts): {sending}"


@dataclass(frozen=True)
class Trial:
    number: int
    kill: Kill
    phase: str
    claims_cut: int
    expected: int
    deliveries: int
    lost: int
    extra: int
    failure: str | None


def _trial(number: int, kill: Kill, database: str, template: str, folder: Path, smtp_lines: str,
           run: Run) -> Trial:
    """Start a send, SIGKILL it when `kill` says, reap it, send again to the end; judge what arrived."""
    folder.mkdir()
    url = crashdata.trial_database(database, template, folder)
    with _server(run) as smtp:
        config = crashdata.prepared_config(folder, url, smtp.port, smtp_lines)
        victim = _send(config, folder / "killed.log", run)
        if kill.after_kept:
            give_up = time.monotonic() + 120
            while len(smtp.messages) < kill.after_kept and victim.poll() is None and time.monotonic() < give_up:
                time.sleep(0.001)
        else:
            time.sleep(kill.delay)
        victim.kill()
        victim.wait(timeout=30)  # reaped, as a supervisor would: a zombie still looks alive to recover()
        after_kill = outbox_rows(url)
        before_restart = len(smtp.messages)
        rerun = _send(config, folder / "rerun.log", run)
        code = rerun.wait(timeout=120)
        time.sleep(0.05)  # let the server finish with the last connection
        received = smtp.messages
    rows = outbox_rows(url)
    in_flight = {row.addresses for row in after_kill if row.state == "sending"}
    connections = 1 if "connections = 1" in smtp_lines else 2
    problems, deliveries = _check_trial(rows, received, run.expected, in_flight, connections)
    if len(steps := _steps(url)) != run.steps:
        problems.append(f"{len(steps)} ladder steps recorded, expected {run.steps}")
    if code != 0:
        problems.append(f"the second send exited {code}: {(folder / 'rerun.log').read_text(encoding='utf-8')}")
    phase = _phase(after_kill)
    failure = None
    if problems:
        failure = (f"trial {number} (seed {SEED}, {kill}, phase {phase!r}, logs in {folder}): "
                   f"{before_restart} delivered before the restart; rows after the kill: {_describe(after_kill)}; "
                   f"rows at the end: {_describe(rows)}\n    " + "\n    ".join(problems))
    return Trial(number, kill, phase, sum(1 for row in after_kill if row.state == "sending"), len(rows),
                 len(received), sum(1 for row in rows if row.addresses not in deliveries),
                 sum(n - 1 for n in deliveries.values() if n > 1), failure)


def _run_trials(database: str, templates: list[str], tmp_path: Path, trials: int, smtp_lines: str = "",
                run: Run = MONTH) -> None:
    """`trials` kill-and-restart trials, run in as many parallel lanes as there are templates."""
    began = time.monotonic()
    rng = random.Random(SEED)
    lanes = len(templates)
    with ThreadPoolExecutor(lanes) as pool:  # calibrate under the same load as the trials
        runs = list(pool.map(lambda lane: _calibrate(database, templates[lane], tmp_path / f"calibration-{lane}",
                                                     smtp_lines, run), range(lanes)))
    calibrated = sum(runs) / lanes
    kills = _kills(calibrated, trials, run.expected, rng)

    def lane(index: int) -> list[Trial]:
        return [_trial(number, kills[number - 1], database, templates[index], tmp_path / f"trial-{number:02d}",
                       smtp_lines, run) for number in range(index + 1, trials + 1, lanes)]

    with ThreadPoolExecutor(lanes) as pool:
        results = sorted((t for lane_trials in pool.map(lane, range(lanes)) for t in lane_trials),
                         key=lambda t: t.number)
    figures = {
        "database": database, "seed": SEED, "command": " ".join(run.command),
        "config": f"[smtp] {smtp_lines}" if smtp_lines else "defaults ([smtp] connections = 2)",
        "trials": len(results), "messages_expected": sum(t.expected for t in results),
        "deliveries": sum(t.deliveries for t in results), "lost": sum(t.lost for t in results),
        "duplicated": sum(t.extra for t in results),
        "trials_with_a_duplicate": sum(1 for t in results if t.extra),
        "most_duplicates_after_one_kill": max(t.extra for t in results),
        "claims_cut_by_the_kills": sum(t.claims_cut for t in results),
        "kill_phases": dict(Counter(t.phase for t in results)),
        "calibrated_send_seconds": round(calibrated, 3), "parallel_lanes": lanes,
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    report = tmp_path / f"crash-figures-{database}.json"
    report.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\ncrash figures ({report}):\n{report.read_text(encoding='utf-8')}")
    failures = [t.failure for t in results if t.failure]
    assert not failures, f"{len(failures)} of {trials} trials broke the guarantee:\n" + "\n".join(failures)
    # The kills must have covered the run: kills before anything was recorded and kills in the middle of sending.
    phases = figures["kill_phases"]
    assert phases.get(NOTHING_RECORDED, 0) > 0 and phases.get(SENDING, 0) > 0, phases


def test_it_loses_nothing_and_resends_only_cut_transactions_after_a_kill_on_sqlite(
        sqlite_template: str, tmp_path: Path) -> None:
    _run_trials("sqlite", [sqlite_template] * LANES, tmp_path, TRIALS["sqlite"])


def test_it_loses_nothing_and_resends_only_cut_transactions_after_a_kill_on_postgresql(
        postgres_prepared: list[str], tmp_path: Path) -> None:
    _run_trials("postgres", postgres_prepared, tmp_path, TRIALS["postgres"])


def test_it_sends_each_heads_up_and_records_its_steps_once_however_a_kill_falls(
        sqlite_template: str, tmp_path: Path) -> None:
    _run_trials("sqlite", [sqlite_template] * LANES, tmp_path, TRIALS["heads-ups"], run=HEADSUPS)


def test_it_delivers_at_most_one_message_twice_after_a_kill_with_one_connection(
        sqlite_template: str, tmp_path: Path) -> None:
    _run_trials("sqlite", [sqlite_template] * LANES, tmp_path, TRIALS["one connection"], "connections = 1")
