"""Crash and two-sender trials where the relay puts off (450) some addresses of a message: each address counted.

The prepared cycle of tests/crashdata.py (40 unit reminders, 4 leader digests) with more addresses per recipient:
every unit has a second mailbox (unitNN.b@), every third unit a third (unitNN.c@), every leader a second
(leaderN.b@). The relay answers RCPT with 450 for PUT_OFF: the .b mailbox of most units (the message goes to the
others and stays pending for that one), both mailboxes of unit 04 and of leader 3 (the whole message put off), and a
few more. A later run sends such a message to the put-off addresses alone, with the same Message-ID.

1. Two `reminders send --cycle 2021-06` processes start a seeded random few milliseconds apart while the relay puts
   off PUT_OFF; the relay then takes them again and a third run finishes. Every (Message-ID, address) pair arrives
   exactly once across the three runs and the outbox ends all sent; after the first two runs `reminders outbox`
   shows each put-off address pending with the relay's 450 and every other address sent.
2. A first run with PUT_OFF put off; the relay takes them again; a second run is SIGKILLed at a seeded random moment
   while it sends the put-off addresses; a rerun finishes. Every pair arrives; a pair arrives twice only if the
   killed process held its message ('sending') when it died, at most one message per connection, and never to an
   address the outbox recorded as accepted before the killed run began.
Real processes, a real aiosmtpd server, SQLite and PostgreSQL; figures are printed (`pytest -s`) and written to a
JSON file under the test's tmp_path.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import create_engine, text

from tests import crashdata
from tests.conftest import Cli
from tests.crashdata import (
    CYCLE,
    LANES,
    LEADERS,
    UNITS,
    Row,
    leader_address,
    outbox_rows,
    reminders_process,
    unit_address,
)
from tests.smtpserver import Received, RecordingServer

SEED = 20210705
EXPECTED_MESSAGES = crashdata.CYCLE_MESSAGES
CONNECTIONS = 2  # the default `[smtp] connections`
DATA_DELAY = 0.008  # seconds between keeping a message and answering 250: a kill then cuts an accepted transaction
RCPT_DELAY = 0.001
TWO_SENDER_TRIALS = 6  # per database
CRASH_TRIALS = {"sqlite": 8, "postgres": 6}
HANG_GUARD = 120  # seconds a process may take before the trial is called hung
_T = TypeVar("_T")


def unit_addresses(number: int) -> list[str]:
    extra = [f"unit{number:02d}.b@example.org"] + ([f"unit{number:02d}.c@example.org"] if number % 3 == 0 else [])
    return [unit_address(number), *extra]


def leader_addresses(number: int) -> list[str]:
    return [leader_address(number), f"leader{number}.b@example.org"]


# Put off with 450: most units' second mailbox (some of their messages go to 3 addresses, 2 of them accepted), all
# of unit 04's and leader 3's (nothing of those messages is accepted), one third mailbox, one leader's second mailbox.
PUT_OFF = frozenset({f"unit{n:02d}.b@example.org" for n in range(1, UNITS + 1) if n % 5}
                    | {unit_address(4), "unit06.c@example.org", "leader2.b@example.org", *leader_addresses(3)})

Pair = tuple[str, str]  # (Message-ID, address)


def _with_more_addresses(folder: Path, url: str) -> None:
    """Import the prepared units and leaders again (crashdata wrote them under `folder`/inputs), now with the
    addresses above."""
    cli = Cli(crashdata.prepared_config(folder, url, 25))
    for table, column, addresses in (("units.csv", "单位", unit_addresses), ("leaders.csv", "姓名", leader_addresses)):
        with (folder / "inputs" / table).open(encoding="utf-8", newline="") as file:
            rows = list(csv.DictReader(file))
        names = ([crashdata.unit_name(n) for n in range(1, UNITS + 1)] if column == "单位"
                 else [name for name, _, _ in LEADERS])
        for row in rows:
            row["邮箱"] = ";".join(addresses(names.index(row[column]) + 1))
        target = folder / "inputs" / f"more-{table}"
        with target.open("w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        cli("import-units" if column == "单位" else "import-leaders", str(target))


@pytest.fixture(scope="module")
def sqlite_more(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A prepared SQLite database with several addresses per recipient, copied for each trial."""
    folder = tmp_path_factory.mktemp("recipients-sqlite")
    url = crashdata.sqlite_template_at(folder)
    _with_more_addresses(folder, url)
    return url


@pytest.fixture(scope="module")
def postgres_more(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """A prepared PostgreSQL schema per lane with several addresses per recipient."""
    with ExitStack() as stack:
        urls = []
        for _ in range(LANES):
            folder = tmp_path_factory.mktemp("recipients-pg")
            url = stack.enter_context(crashdata.postgres_schema(postgres, folder))
            _with_more_addresses(folder, url)
            urls.append(url)
        yield urls


@pytest.fixture(params=["sqlite", "postgres"])
def prepared(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    """(database, per lane the URL of a prepared database: a SQLite template to copy or a PostgreSQL schema)."""
    if request.param == "sqlite":
        return "sqlite", [request.getfixturevalue("sqlite_more")] * LANES
    return "postgres", request.getfixturevalue("postgres_more")




def _server() -> RecordingServer:
    smtp = RecordingServer()
    smtp.delay_replies(DATA_DELAY, "data")
    smtp.delay_replies(RCPT_DELAY, "rcpt")
    for address in PUT_OFF:
        smtp.refuse_recipient(address, 450)
    return smtp


def _accept_again(smtp: RecordingServer) -> None:
    for address in PUT_OFF:
        smtp.accept_recipient(address)


def _send(config: Path, output: Path) -> subprocess.Popen[bytes]:
    return reminders_process(config, "send", "--cycle", CYCLE, output=output)


def _in_lanes(templates: list[str], trial: Callable[[int, str], _T], trials: int) -> list[_T]:
    """Trials 1…`trials`, as many at a time as there are lanes, each lane on its own database; in trial order."""
    def lane(index: int) -> list[tuple[int, _T]]:
        return [(number, trial(number, templates[index]))
                for number in range(index + 1, trials + 1, len(templates))]

    with ThreadPoolExecutor(len(templates)) as pool:
        return [outcome for _, outcome in sorted((pair for pairs in pool.map(lane, range(len(templates)))
                                                  for pair in pairs), key=lambda pair: pair[0])]


def _pairs(received: list[Received]) -> Counter[Pair]:
    """How many times each address received each Message-ID."""
    return Counter((message.message_id or "", address) for message in received for address in message.recipients)


def _expected(rows: list[Row]) -> set[Pair]:
    return {(row.message_id, address) for row in rows for address in row.addresses.split(";")}


def _put_off_pairs(rows: list[Row]) -> set[Pair]:
    return {pair for pair in _expected(rows) if pair[1] in PUT_OFF}


def _accepted_on_record(db_url: str) -> set[Pair]:
    """The (Message-ID, address) pairs the outbox records as accepted: every address of a message sent, and the
    addresses a pending message's per-address record marks sent."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("select message_id, addresses, state, deliveries from outbox")).all()
    finally:
        engine.dispose()
    accepted = set()
    for message_id, addresses, state, deliveries in rows:
        fates = json.loads(deliveries) if deliveries else {}
        for address in addresses.split(";"):
            if (fates[address][0] == "sent") if address in fates else state == "sent":
                accepted.add((message_id, address))
    return accepted


def _log(path: Path) -> str:
    return path.read_text(encoding="utf-8")[-3000:]


def _judge_end(rows: list[Row], received: list[Received]) -> list[str]:
    """What is wrong at the end of a trial, duplicates aside (each trial judges those its own way)."""
    problems = []
    if len(rows) != EXPECTED_MESSAGES:
        problems.append(f"{len(rows)} outbox rows, expected {EXPECTED_MESSAGES}")
    if unsent := [(row.id, row.recipient_key, row.state, row.claimed_by) for row in rows if row.state != "sent"]:
        problems.append(f"rows not sent at the end: {unsent}")
    pairs, expected = _pairs(received), _expected(rows)
    if lost := sorted(expected - set(pairs)):
        problems.append(f"never delivered (Message-ID, address): {lost}")
    if strangers := sorted(set(pairs) - expected):
        problems.append(f"delivered with a Message-ID or to an address the outbox does not pair: {strangers}")
    return problems


@dataclass
class Outcome:
    number: int
    problems: list[str] = field(default_factory=list)
    deliveries: int = 0  # (Message-ID, address) pairs received, copies included
    duplicated: int = 0  # copies beyond the first
    messages_duplicated: int = 0
    sent_by: tuple[int, ...] = ()
    phase: str = ""


# 1. Two senders share the cycle while the relay puts addresses off; a third run finishes.

def _sent_lines(log: Path) -> int:
    return sum(1 for line in log.read_text(encoding="utf-8").splitlines()
               if line.startswith(("已发送 sent", "待重试 later")))


def _outbox_json(config: Path, output: Path) -> list[dict[str, object]]:
    """What `reminders outbox --cycle CYCLE --format json` shows (run as a process: the lanes are threads)."""
    process = reminders_process(config, "outbox", "--cycle", CYCLE, "--format", "json", output=output)
    assert process.wait(timeout=HANG_GUARD) == 0, _log(output)
    records: list[dict[str, object]] = json.loads(output.read_text(encoding="utf-8"))
    return records


def _judge_shown(records: list[dict[str, object]], accepted: set[Pair]) -> list[str]:
    """`reminders outbox` after the runs with PUT_OFF put off: each put-off address pending with the relay's 450,
    every other address sent, and the addresses shown sent exactly those the relay accepted."""
    problems = []
    for record in records:
        shown = record["deliveries"]
        assert isinstance(shown, list)
        for entry in shown:
            address, state, answer = entry["address"], entry["state"], entry["answer"] or ""
            if address in PUT_OFF and (state != "pending" or not answer.startswith("450")):
                problems.append(f"{record['recipient']} <{address}> shown {state} ({answer}), not pending with 450")
            if address not in PUT_OFF and state != "sent":
                problems.append(f"{record['recipient']} <{address}> shown {state} ({answer}), not sent")
            if (state == "sent") != ((record["message_id"], address) in accepted):
                problems.append(f"{record['recipient']} <{address}> shown {state}, but the relay "
                                f"{'took' if state != 'sent' else 'never took'} it")
        wanted = "pending" if any(entry["address"] in PUT_OFF for entry in shown) else "sent"
        if record["state"] != wanted:
            problems.append(f"{record['recipient']} is {record['state']}, expected {wanted}")
    return problems


def _two_senders(number: int, database: str, template: str, folder: Path, offset: float) -> Outcome:
    folder.mkdir()
    url = crashdata.trial_database(database, template, folder)
    logs = (folder / "first.log", folder / "second.log", folder / "third.log")
    with _server() as smtp:
        config = crashdata.prepared_config(folder, url, smtp.port)
        first = _send(config, logs[0])
        time.sleep(offset)
        second = _send(config, logs[1])
        codes = (first.wait(timeout=HANG_GUARD), second.wait(timeout=HANG_GUARD))
        time.sleep(0.05)  # let the server finish with the last connection
        put_off_run = smtp.messages
        shown = _outbox_json(config, folder / "outbox.json")
        _accept_again(smtp)
        third = _send(config, logs[2])
        code = third.wait(timeout=HANG_GUARD)
        time.sleep(0.05)
        received = smtp.messages
    rows = outbox_rows(url)
    outcome = Outcome(number, sent_by=(_sent_lines(logs[0]), _sent_lines(logs[1])))
    problems = outcome.problems
    # Something was left pending, so a sender says so and exits 1; neither may break.
    if set(codes) - {0, 1} or 1 not in codes:
        problems.append(f"the two senders exited {codes}, expected 1 from one at least and nothing else but 0: "
                        + " / ".join(_log(log) for log in logs[:2]))
    if code != 0:
        problems.append(f"the third run exited {code}: {_log(logs[2])}")
    first_pairs = _pairs(put_off_run)
    if wrong := sorted(pair for pair in first_pairs if pair[1] in PUT_OFF):
        problems.append(f"put-off addresses received mail while the relay refused them: {wrong}")
    if both := sorted(pair for pair, n in first_pairs.items() if n > 1):
        problems.append(f"the two senders delivered some pairs more than once: {both}")
    if missing := sorted(_expected(rows) - _put_off_pairs(rows) - set(first_pairs)):
        problems.append(f"addresses the relay took were not sent to by the two senders: {missing}")
    problems += _judge_shown(shown, set(first_pairs))
    problems += _judge_end(rows, received)
    pairs = _pairs(received)
    if twice := {pair: n for pair, n in pairs.items() if n > 1}:
        problems.append(f"delivered more than once across the runs: {twice}")
    if late := sorted(pair for pair in set(pairs) - set(first_pairs) if pair[1] not in PUT_OFF):
        problems.append(f"the third run sent to addresses that were never put off: {late}")
    outcome.deliveries = sum(pairs.values())
    outcome.duplicated = sum(n - 1 for n in pairs.values())
    return outcome


def test_two_senders_and_a_later_run_deliver_each_address_once_when_the_relay_puts_some_off(
        prepared: tuple[str, list[str]], tmp_path: Path) -> None:
    database, templates = prepared
    began = time.monotonic()
    rng = random.Random(SEED)
    offsets = [rng.uniform(0, 0.25) if number % 3 else 0.0 for number in range(TWO_SENDER_TRIALS)]
    outcomes = _in_lanes(templates, lambda number, template: _two_senders(
        number, database, template, tmp_path / f"trial-{number:02d}", offsets[number - 1]), TWO_SENDER_TRIALS)
    _report(tmp_path, f"two-senders-{database}", {
        "scenario": "two `send` with 450s, then a third run", "database": database, "seed": SEED,
        "put_off_addresses": len(PUT_OFF), "trials": len(outcomes),
        "deliveries": sum(o.deliveries for o in outcomes), "duplicated": sum(o.duplicated for o in outcomes),
        "trials_where_both_sent_some": sum(1 for o in outcomes if min(o.sent_by) > 0),
        "wall_seconds": round(time.monotonic() - began, 1)})
    failures = [f"trial {o.number} (second sender {offsets[o.number - 1] * 1000:.0f} ms later, logs in "
                f"{tmp_path / f'trial-{o.number:02d}'}, messages handled by each: {o.sent_by}):\n    "
                + "\n    ".join(o.problems) for o in outcomes if o.problems]
    assert not failures, f"{len(failures)} of {len(outcomes)} trials failed:\n" + "\n".join(failures)
    # The starts were close enough for the two senders to share the work in most trials.
    assert sum(1 for o in outcomes if min(o.sent_by) > 0) >= len(outcomes) // 2, [o.sent_by for o in outcomes]


# 2. A sender killed while it sends the addresses put off earlier, then a rerun.

CUT = "killed holding claims"  # where a kill landed: the outbox had rows 'sending' by the killed process


def _second_run(config: Path, smtp: RecordingServer, log: Path, delay: float | None
                ) -> tuple[subprocess.Popen[bytes], float]:
    """Start the second run; with `delay`, SIGKILL it that long after the relay kept its first message, and reap
    it. Returns the process and, left to finish, how long it sent (from its first message kept to its last)."""
    before = len(smtp.messages)
    process = _send(config, log)
    deadline = time.monotonic() + HANG_GUARD
    while len(smtp.messages) == before and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    sending = last = time.monotonic()
    if delay is None:  # watch when the relay keeps the run's last message
        count = len(smtp.messages)
        while process.poll() is None and time.monotonic() < deadline:
            if len(smtp.messages) != count:
                count, last = len(smtp.messages), time.monotonic()
            time.sleep(0.002)
        process.wait(timeout=HANG_GUARD)
    else:
        time.sleep(delay)
        process.kill()
        process.wait(timeout=30)  # reaped, as a supervisor would: a zombie still looks alive to recover()
    return process, last - sending


def _crash_trial(number: int, database: str, template: str, folder: Path, delay: float | None
                 ) -> tuple[Outcome, float]:
    """First run with PUT_OFF put off, the relay takes them again, a second run killed `delay` seconds into its
    sending (None: left to finish), a rerun; judged per address. Also returns how long the second run sent
    (left to finish)."""
    folder.mkdir()
    url = crashdata.trial_database(database, template, folder)
    logs = (folder / "first.log", folder / "killed.log", folder / "rerun.log")
    with _server() as smtp:
        config = crashdata.prepared_config(folder, url, smtp.port)
        first = _send(config, logs[0]).wait(timeout=HANG_GUARD)
        time.sleep(0.05)
        first_received = smtp.messages
        accepted_before = _accepted_on_record(url)
        _accept_again(smtp)
        victim, sending = _second_run(config, smtp, logs[1], delay)
        after_kill = outbox_rows(url)
        rerun = _send(config, logs[2])
        code = rerun.wait(timeout=HANG_GUARD)
        time.sleep(0.05)
        received = smtp.messages
    rows = outbox_rows(url)
    outcome = Outcome(number)
    problems = outcome.problems
    if first != 1:
        problems.append(f"the first run (addresses put off) exited {first}, expected 1: {_log(logs[0])}")
    if delay is None and victim.returncode != 0:
        problems.append(f"the second run exited {victim.returncode}: {_log(logs[1])}")
    if code != 0:
        problems.append(f"the rerun exited {code}: {_log(logs[2])}")
    # The record the killed run started from says what the relay took: the put-off addresses alone were left.
    if accepted_before != set(_pairs(first_received)):
        problems.append(f"after the first run the outbox records as accepted {len(accepted_before)} pairs, the relay "
                        f"took {len(_pairs(first_received))}: differing "
                        f"{sorted(accepted_before ^ set(_pairs(first_received)))}")
    if accepted_before & _put_off_pairs(rows) or _expected(rows) - _put_off_pairs(rows) - accepted_before:
        problems.append("after the first run the outbox does not record every address but the put-off ones as "
                        f"accepted: {sorted(accepted_before ^ (_expected(rows) - _put_off_pairs(rows)))}")
    problems += _judge_end(rows, received)
    in_flight = {row.message_id for row in after_kill if row.state == "sending"}
    pairs = _pairs(received)
    twice = {pair: n for pair, n in pairs.items() if n > 1}
    if beyond := {pair: n for pair, n in twice.items() if n > 2}:
        problems.append(f"delivered more than twice: {beyond}")
    if outside := sorted(pair for pair in twice if pair[0] not in in_flight):
        problems.append(f"delivered twice though the killed sender did not hold the message: {outside}")
    if again := sorted(pair for pair in twice if pair in accepted_before):
        problems.append(f"delivered again to addresses recorded as accepted before the killed run: {again}")
    messages = {message_id for message_id, _ in twice}
    if len(messages) > CONNECTIONS:
        problems.append(f"{len(messages)} messages delivered twice after one kill, at most {CONNECTIONS} allowed: "
                        f"{sorted(twice)}")
    if problems:
        held = [(row.id, row.recipient_key, row.attempts) for row in after_kill if row.state == "sending"]
        problems.append(f"after the kill (exit {victim.returncode}): "
                        f"{dict(Counter(row.state for row in after_kill))}, sending (id, recipient, attempts): {held}")
    outcome.deliveries = sum(pairs.values())
    outcome.duplicated = sum(n - 1 for n in twice.values())
    outcome.messages_duplicated = len(messages)
    outcome.phase = (CUT if victim.returncode == -9 and in_flight
                     else "after the last message" if all(row.state == "sent" for row in after_kill)
                     else "between claims" if victim.returncode == -9 else "the run had ended")
    return outcome, sending


def test_a_sender_killed_while_sending_to_put_off_addresses_loses_none_and_resends_no_accepted_address(
        prepared: tuple[str, list[str]], tmp_path: Path) -> None:
    database, templates = prepared
    trials = CRASH_TRIALS[database]
    began = time.monotonic()
    # One uninterrupted trial per lane: it must pass as well, and it measures how long the second run sends.
    calibration = _in_lanes(templates, lambda number, template: _crash_trial(
        number, database, template, tmp_path / f"calibration-{number}", None), len(templates))
    failures = [f"uninterrupted trial {o.number}:\n    " + "\n    ".join(o.problems)
                for o, _ in calibration if o.problems]
    assert not failures, "\n".join(failures)
    span = sum(seconds for _, seconds in calibration) / len(calibration)
    rng = random.Random(SEED + 1)
    delays = [span * (slice_ + rng.random()) / trials for slice_ in range(trials)]  # one per slice of the sending
    rng.shuffle(delays)
    outcomes = _in_lanes(templates, lambda number, template: _crash_trial(
        number, database, template, tmp_path / f"trial-{number:02d}", delays[number - 1])[0], trials)
    _report(tmp_path, f"crash-{database}", {
        "scenario": "450s, then a second run killed while sending, then a rerun", "database": database,
        "seed": SEED + 1, "put_off_addresses": len(PUT_OFF), "trials": len(outcomes),
        "deliveries": sum(o.deliveries for o in outcomes), "duplicated": sum(o.duplicated for o in outcomes),
        "most_messages_duplicated_after_one_kill": max(o.messages_duplicated for o in outcomes),
        "kill_phases": dict(Counter(o.phase for o in outcomes)), "sending_seconds": round(span, 3),
        "wall_seconds": round(time.monotonic() - began, 1)})
    failures = [f"trial {o.number} (killed {delays[o.number - 1] * 1000:.0f} ms into sending, logs in "
                f"{tmp_path / f'trial-{o.number:02d}'}):\n    " + "\n    ".join(o.problems)
                for o in outcomes if o.problems]
    assert not failures, f"{len(failures)} of {len(outcomes)} trials broke the guarantee:\n" + "\n".join(failures)
    # The kills landed while the killed run held claims, in most trials.
    assert sum(1 for o in outcomes if o.phase == CUT) >= trials // 2, [o.phase for o in outcomes]


def _report(tmp_path: Path, name: str, figures: dict[str, object]) -> None:
    report = tmp_path / f"recipients-figures-{name}.json"
    report.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nper-address figures ({report}):\n{report.read_text(encoding='utf-8')}")
