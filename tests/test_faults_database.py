"""The database goes away in the middle of a month's send: a private PostgreSQL cluster restarted (or stopped) under
a real `reminders send` and under a daemon job, and a SQLite file that can no longer grow (a file-size limit put on
the running sender, as a full disk would). The run reconnects, or stops with one clear message naming the database
(password masked) and the command that finishes the month; the next run finishes it; nothing is lost, and nothing
is sent twice beyond the promise (a message whose sending could not be recorded: at most one per connection).

The PostgreSQL cluster is this module's own (initdb in a temporary folder, a free port), never the shared server.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from reminders import config as config_module
from reminders import daemon
from reminders.store.db import make_engine, masked
from tests import crashdata
from tests.crashdata import CYCLE, Row, outbox_rows, reminders_process
from tests.smtpserver import Received, RecordingServer, free_port

EXPECTED_MESSAGES = crashdata.CYCLE_MESSAGES
CONNECTIONS = 2  # [smtp] connections, the default: at most this many messages sent again after one fault
DATA_DELAY = 0.05
PASSWORD = "s3cret-pw"  # trust authentication ignores it; it is there to be masked
STOPPED = "无法连接或写入，发送已停止 (error: the database cannot be reached or written; sending stopped)"
FINISH = "完成本月发送请在数据库恢复后运行 (to finish once the database is back, run): "


@dataclass
class Cluster:
    data: Path
    port: int
    pg_ctl: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/test"

    def ctl(self, *args: str) -> None:
        subprocess.run([*self.pg_ctl, "-D", str(self.data), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.ctl("-o", f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off",
                 "-l", str(self.data.parent / "server.log"), "-w", "start")

    def restart(self, mode: str) -> None:
        self.ctl("-m", mode, "-w", "stop")
        self.start()


def _binaries() -> Path | None:
    found = sorted(Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    binaries = _binaries()
    if binaries is None:
        if os.environ.get("REMINDERS_REQUIRE_PG"):
            pytest.fail("PostgreSQL required: no initdb under /usr/lib/postgresql/*/bin for a private cluster")
        pytest.skip("no PostgreSQL binaries (/usr/lib/postgresql/*/bin/initdb) to run a private cluster")
    folder = Path(tempfile.mkdtemp(prefix="reminders-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to the postgres user
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data = folder / "data"
    subprocess.run([*as_owner, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    cluster = Cluster(data, free_port(), [*as_owner, str(binaries / "pg_ctl")])
    cluster.start()
    try:
        admin = create_engine(_psycopg(cluster.url).replace("/test", "/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("create database test"))
        admin.dispose()
        prepared = folder / "prepared"
        prepared.mkdir()
        crashdata.prepare(crashdata.prepared_config(prepared, cluster.url, 25), crashdata.write_inputs(prepared))
        yield cluster
    finally:
        subprocess.run([*cluster.pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://")


def _wait_for(predicate: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None,
              timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            return  # the send ended first: the fault lands after it, which must change nothing either
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _judge(rows: list[Row], received: list[Received], cut: set[str]) -> list[str]:
    """What is wrong with the outcome; `cut`: the addresses of messages the faulted run left claimed ('sending')."""
    problems = []
    if unsent := [(row.id, row.state) for row in rows if row.state != "sent"]:
        problems.append(f"rows not sent at the end: {unsent}")
    if len(rows) != EXPECTED_MESSAGES:
        problems.append(f"{len(rows)} rows, expected {EXPECTED_MESSAGES}")
    deliveries = Counter(";".join(m.recipients) for m in received)
    if lost := sorted({row.addresses for row in rows} - set(deliveries)):
        problems.append(f"lost: {lost}")
    twice = sorted(key for key, n in deliveries.items() if n > 1)
    if [key for key, n in deliveries.items() if n > 2]:
        problems.append(f"delivered more than twice: {deliveries}")
    if outside := [key for key in twice if key not in cut]:
        problems.append(f"delivered twice though its sending was not cut by the fault: {outside}")
    if len(twice) > CONNECTIONS:
        problems.append(f"{len(twice)} messages delivered twice, at most {CONNECTIONS} allowed")
    ids = {row.addresses: row.message_id for row in rows}
    if wrong := [m.message_id for m in received if ids.get(";".join(m.recipients)) != m.message_id]:
        problems.append(f"Message-IDs not in the outbox: {wrong}")
    return problems


@dataclass(frozen=True)
class Trial:
    name: str
    first_exit: int
    duplicates: int
    problems: list[str]


def _send_trial(name: str, url: str, folder: Path, after: int, fault: Callable[[int], None],
                heal: Callable[[], None] = lambda: None) -> Trial:
    """A send faulted (`fault(pid)`) once the server holds `after` messages; healed; sent again to the end."""
    folder.mkdir()
    problems: list[str] = []
    with RecordingServer() as smtp:
        smtp.delay_replies(DATA_DELAY)
        config = crashdata.prepared_config(folder, url, smtp.port)
        process = reminders_process(config, "send", "--cycle", CYCLE, output=folder / "first.log")
        _wait_for(lambda: len(smtp.messages) >= after, f"{after} messages", process)
        fault(process.pid)
        first = process.wait(timeout=120)
        heal()
        output = (folder / "first.log").read_text(encoding="utf-8")
        cut = {row.addresses for row in outbox_rows(url) if row.state == "sending"}
        if "Traceback" in output or PASSWORD in output:
            problems.append(f"the faulted send showed a traceback or the password:\n{output}")
        if first == 1:
            lines = output.splitlines()
            if not any(line.startswith(f"错误：数据库 {masked(url)} {STOPPED}") for line in lines):
                problems.append(f"no clear message naming the database (password masked):\n{output}")
            if f"{FINISH}reminders --config {config} send --cycle {CYCLE} --kind all" not in lines:
                problems.append(f"no command that finishes the month:\n{output}")
        elif first != 0:
            problems.append(f"the faulted send exited {first}:\n{output}")
        rerun = reminders_process(config, "send", "--cycle", CYCLE, output=folder / "rerun.log")
        if (code := rerun.wait(timeout=120)) != 0:
            problems.append(f"the next send exited {code}: {(folder / 'rerun.log').read_text(encoding='utf-8')}")
        time.sleep(0.05)  # let the server finish with the last connection
        received = smtp.messages
    problems += _judge(outbox_rows(url), received, cut)
    duplicates = sum(n - 1 for n in Counter(";".join(m.recipients) for m in received).values())
    return Trial(name, first, duplicates, [f"{name} (logs in {folder}): {p}" for p in problems])


def _report(tmp_path: Path, trials: list[Trial]) -> None:
    figures = {"trials": len(trials), "messages": len(trials) * EXPECTED_MESSAGES,
               "first_run_exits": dict(Counter(str(t.first_exit) for t in trials)),
               "sent_twice": sum(t.duplicates for t in trials),
               "most_after_one_fault": max(t.duplicates for t in trials)}
    print(f"\ndatabase fault figures: {json.dumps(figures)}")
    problems = [p for t in trials for p in t.problems]
    assert not problems, "\n".join(problems)


def test_it_reconnects_or_stops_cleanly_when_postgresql_restarts_mid_send(cluster: Cluster, tmp_path: Path) -> None:
    trials = []
    for number, (after, mode) in enumerate([(0, "fast"), (3, "fast"), (15, "fast"), (30, "fast"),
                                            (10, "immediate"), (25, "immediate")]):
        crashdata.reset_outbox(_psycopg(cluster.url))
        trials.append(_send_trial(f"restart -m {mode} after {after}", cluster.url, tmp_path / f"restart-{number}",
                                  after, lambda _pid, mode=mode: cluster.restart(mode)))
    _report(tmp_path, trials)


def test_it_stops_with_one_clear_message_when_postgresql_stays_down(cluster: Cluster, tmp_path: Path) -> None:
    crashdata.reset_outbox(_psycopg(cluster.url))
    trial = _send_trial("stopped after 12", cluster.url, tmp_path / "outage", 12,
                        lambda _pid: cluster.ctl("-m", "fast", "-w", "stop"), cluster.start)
    assert trial.first_exit == 1
    _report(tmp_path, [trial])


def test_it_finishes_a_daemon_job_across_a_postgresql_restart(cluster: Cluster, tmp_path: Path) -> None:
    url = _psycopg(cluster.url)
    crashdata.reset_outbox(url)
    with RecordingServer() as smtp:
        smtp.delay_replies(DATA_DELAY)
        config = config_module.load(str(crashdata.prepared_config(tmp_path, cluster.url, smtp.port)))
        engine = make_engine(config.database_url)
        fired = datetime(2021, 6, 20, 9, 0, tzinfo=config.schedule.tz)
        results: list[object] = []
        job = threading.Thread(target=lambda: results.append(
            daemon.run_cycle(config, engine, "reminder", fired, retry=daemon.Retry(attempts=4, delay=0.5))))
        job.start()
        _wait_for(lambda: len(smtp.messages) >= 10 or not job.is_alive(), "10 reminders")
        cluster.restart("fast")
        job.join(timeout=120)
        if results == [None]:  # the job gave up (logged): the next run of the job finishes the month
            daemon.run_cycle(config, engine, "reminder", fired, retry=daemon.Retry(attempts=4, delay=0.5))
        time.sleep(0.05)
        received = smtp.messages
        engine.dispose()
    rows = outbox_rows(url)
    assert len(rows) == 45 and {row.state for row in rows} == {"sent"}  # the reminders' job: 40 and 5 督办通知
    assert Counter(";".join(m.recipients) for m in received).most_common(1)[0][1] == 1  # reconnected: none twice
    assert len(received) == 45


def _limit_file_size(pid: int, *paths: Path) -> None:
    """From now on, no file the process writes may grow past its current size: a full disk for that process."""
    size = max((path.stat().st_size for path in paths if path.exists()), default=0)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (size, size))


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit to fill the disk under a process")
def test_it_stops_cleanly_when_sqlite_cannot_write_and_the_next_run_finishes(
        sqlite_template: str, tmp_path: Path) -> None:
    trials = []
    for after in (0, 4, 20, 35):
        folder = tmp_path / f"full-after-{after}"
        folder.mkdir()
        database = folder / "reminders.sqlite3"
        url = crashdata.copy_sqlite(sqlite_template, database)
        wal = Path(f"{database}-wal")
        trials.append(_send_trial(f"disk full after {after}", url, folder / "run", after,
                                  lambda pid, database=database, wal=wal: _limit_file_size(pid, database, wal)))
    _report(tmp_path, trials)
    assert {t.first_exit for t in trials} == {1}  # a file that cannot grow never heals within the run
