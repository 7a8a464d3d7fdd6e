"""The scheduler daemon as a real process: catch-up on start, job errors logged, clean stop on SIGTERM; and the
retry job, every [delivery] retry_every, that sends what is pending, among it the receipts (回执) units' submissions
recorded."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from reminders import config as config_module
from reminders.daemon import Finisher, build_scheduler, missed_fire_times
from reminders.delivery import dispatch
from reminders.store.db import session_scope
from reminders.store.models import OutboxMessage
from reminders.tracking.reporting import Answer, submit
from tests.conftest import EXAMPLES, Cli, write_config
from tests.smtpserver import RecordingServer
from tests.webenv import library, parsed

TZ = ZoneInfo("Asia/Shanghai")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """`reminders run` as a process of its own, its log read line by line as it comes."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reminders", "--config", str(config), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> None:
        """Until the daemon has logged `text`; fails at once, with its log, if it exits first."""
        def logged() -> bool:
            if text in self.output:
                return True
            if self.process.poll() is not None:
                self._reader.join(timeout=20)
                if text not in self.output:
                    raise AssertionError(f"the daemon exited ({self.process.returncode}) before logging {text!r}:\n"
                                         f"{self.output}")
            return False

        wait_for(logged, repr(text))

    def stop(self) -> str:
        """SIGTERM, then the whole log once it has exited cleanly."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)
        self._reader.join(timeout=20)
        assert self.process.returncode == 0, self.output
        return self.output


@pytest.fixture
def start_daemon() -> Iterator[Callable[[Path], Daemon]]:
    """Starts daemons; any a failed test left running is killed."""
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        started.append(Daemon(config))
        return started[-1]

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=20)


def test_it_finds_the_fire_times_missed_within_the_grace(tmp_path: Path) -> None:
    # The cron's own days (2021-06-20 is a Sunday): tests/test_shift.py has the runs moved to working days.
    path = write_config(tmp_path / "r.toml", "sqlite:///x.sqlite3", extra="misfire_grace = \"3d\"\nshift = \"none\"\n")
    config = config_module.load(str(path))
    now = datetime(2021, 6, 21, 8, 0, tzinfo=TZ)
    assert missed_fire_times(config, now) == [("reminder", datetime(2021, 6, 20, 9, 0, tzinfo=TZ))]
    assert missed_fire_times(config, datetime(2021, 6, 24, 9, 0, 1, tzinfo=TZ)) == []  # beyond 72 h
    # At 10:00 on the 26th: the digests (09:00) and the chase (its default, 10:00, fires that very moment); the
    # reminders of the 20th are six days old.
    assert missed_fire_times(config, datetime(2021, 6, 26, 10, 0, tzinfo=TZ)) == [
        ("digest", datetime(2021, 6, 26, 9, 0, tzinfo=TZ)), ("chase", datetime(2021, 6, 26, 10, 0, tzinfo=TZ))]


def _catch_up_config(tmp_path: Path, db_url: str, smtp: RecordingServer) -> Path:
    """Both crons fired at midnight today (within the grace), so a daemon starting now catches up this month."""
    path = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port)
    text = path.read_text(encoding="utf-8")
    text = text.replace('reminders = "0 9 20 * *"', 'reminders = "0 0 * * *"')
    text = text.replace('digests = "0 9 26 * *"', 'digests = "0 0 * * *"')
    # Ten days ago, beyond the grace: the catch-up below is about reminders and digests.
    chase = datetime.now(TZ).date() - timedelta(days=10)
    text += f'chase = "0 0 {chase.day} {chase.month} *"\n'
    text += 'shift = "none"\n'  # midnight today on a weekend too, not moved to Monday
    text += 'headsup = "0 0 1 1 *"\n'  # the daily heads-ups out of the way, whatever the time of day
    path.write_text(text, encoding="utf-8")
    return path


def _notices_today(path: Path, cycle: str) -> int:
    """How many 督办通知 the reminders' job of `cycle` sends with the reminders today, as a dry run lists them."""
    today = datetime.now(TZ).date().isoformat()
    listing = Cli(path)("send", "--cycle", cycle, "--kind", "escalations", "--as-of", today, "--dry-run").output
    return sum(1 for line in listing.splitlines() if line.startswith("将发送 would send"))


def _this_cycle() -> str:
    """The month whose midnight run a daemon started now catches up."""
    return datetime.now(TZ).strftime("%Y-%m")


def _plan_of(year: int, folder: Path) -> Path:
    """The example plan, titled for `year`: the daemon sends only within its plan's year."""
    text = (EXAMPLES / "plan-2021.txt").read_text(encoding="utf-8")
    path = folder / f"plan-{year}.txt"
    path.write_text(text.replace("郑州市民族宗教事务局2021年工作计划", f"郑州市民族宗教事务局{year}年工作计划"),
                    encoding="utf-8")
    return path


def _load_examples(cli: Cli, year: int | None = None) -> None:
    """The examples, the plan titled for `year` (default: this year, the year whose cycle a daemon started now runs)."""
    cli("init")
    cli("import-plan", str(_plan_of(year or datetime.now(TZ).year, cli.config.parent)))
    for command, name in (("import-leaders", "leaders.csv"), ("import-units", "units.csv"),
                          ("import-assignments", "assignments.csv")):
        cli(command, str(EXAMPLES / name))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_catches_up_a_missed_cycle_once_and_stops_cleanly(tmp_path: Path, db_url: str, smtp: RecordingServer,
                                                             start_daemon: Callable[[Path], Daemon]) -> None:
    path = _catch_up_config(tmp_path, db_url, smtp)
    _load_examples(Cli(path))
    cycle = _this_cycle()

    notices = _notices_today(path, cycle)  # the plan's past deadlines this year bring some

    first = start_daemon(path)
    first.wait_for(f"job reminder: cycle {cycle} recorded {7 + notices}, sent {7 + notices}, skipped 0, failed 0")
    first.wait_for(f"job digest: cycle {cycle} recorded 4, sent 4, skipped 0, failed 0")
    output = first.stop()
    assert "catching up reminder" in output and "catching up digest" in output
    assert "scheduled monthly reminders: next run" in output
    assert "stopped" in output
    assert len(smtp.messages) == 11 + notices

    second = start_daemon(path)  # a restart within the grace finds the cycle already sent
    second.wait_for(f"job reminder: cycle {cycle} recorded 0, sent 0, skipped {7 + notices}, failed 0")
    second.wait_for(f"job digest: cycle {cycle} recorded 0, sent 0, skipped 4, failed 0")
    output = second.stop()
    assert "catching up reminder" in output and "catching up digest" in output
    assert len(smtp.messages) == 11 + notices


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_logs_a_failing_job_with_its_traceback_and_keeps_running(
    tmp_path: Path, db_url: str, smtp: RecordingServer, start_daemon: Callable[[Path], Daemon]
) -> None:
    path = _catch_up_config(tmp_path, db_url, smtp)
    Cli(path)("init")  # no plan imported: the job fails
    process = start_daemon(path)
    process.wait_for("job catch-up-reminder failed")
    process.wait_for("job catch-up-digest failed")
    assert process.process.poll() is None  # still running after the failures
    output = process.stop()
    assert "Traceback" in output and "no plan imported yet" in output
    assert f"signal {signal.SIGTERM.value}: stopping" in output  # it was alive to take the signal
    assert output.rstrip().endswith("stopped")


def _run_until(config: config_module.Config, engine: Engine, done: Callable[[], bool], what: str,
               **kwargs: Any) -> None:
    """Run the daemon in a thread until `done()`, then stop it as SIGTERM would."""
    from reminders.daemon import run_daemon

    stop = threading.Event()
    thread = threading.Thread(target=run_daemon, args=(config, engine, stop), kwargs=kwargs)
    thread.start()
    try:
        wait_for(lambda: done() or not thread.is_alive(), what)
        assert thread.is_alive()  # the daemon keeps running whatever its jobs met
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in list(caplog.records)]


def test_it_retries_a_job_when_the_database_is_unreachable_and_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from reminders.daemon import Retry
    from reminders.store.db import make_engine

    path = write_config(tmp_path / "r.toml", "postgresql://ducha:s3cret@127.0.0.1:1/reminders")
    text = path.read_text(encoding="utf-8").replace('reminders = "0 9 20 * *"', 'reminders = "0 0 * * *"')
    path.write_text(text + 'shift = "none"\n', encoding="utf-8")  # midnight today, on a weekend too
    config = config_module.load(str(path))
    caplog.set_level("INFO", logger="reminders")
    cycle = _this_cycle()
    giving_up = (f"job reminder: 放弃本次发送 {cycle}，请手动发送 (giving up on cycle {cycle}; send it by hand): "
                 f"reminders send --cycle {cycle} --kind reminders; reminders send --cycle {cycle} --kind escalations")
    _run_until(config, make_engine(config.database_url), lambda: giving_up in _messages(caplog), repr(giving_up),
               retry=Retry(attempts=3, delay=0.05))
    unreachable = [m for m in _messages(caplog) if m.startswith("job reminder: 数据库")]
    assert [m.split(" (database unreachable, ")[1].split(")")[0] for m in unreachable] == [
        "attempt 1/3", "attempt 2/3", "attempt 3/3"]
    assert all(m.startswith("job reminder: 数据库 postgresql://ducha:***@127.0.0.1:1/reminders 无法连接，第 ")
               for m in unreachable)
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_logs_a_cycle_missed_beyond_the_grace_with_the_command_to_send_it(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from reminders.store import db

    path = write_config(tmp_path / "r.toml", db_url, extra='misfire_grace = "1s"\nshift = "none"\n')  # 1 January
    text = path.read_text(encoding="utf-8").replace('reminders = "0 9 20 * *"', 'reminders = "0 0 1 1 *"')
    path.write_text(text, encoding="utf-8")
    config = config_module.load(str(path))
    engine = db.make_engine(config.database_url)
    db.upgrade(engine)
    caplog.set_level("INFO", logger="reminders")
    # The missed runs are logged before the scheduler starts, and it logs its jobs as it starts.
    _run_until(config, engine, lambda: any(m.startswith("scheduled ") for m in _messages(caplog)),
               "the scheduler to start")
    year = datetime.now(TZ).year
    missed = [m for m in _messages(caplog) if m.startswith("missed: the reminder run")]
    assert missed == [f"missed: the reminder run of {year}-01 ({datetime(year, 1, 1, tzinfo=TZ).isoformat()}) is older "
                      f"than misfire_grace (1s) and was not sent; send it by hand: "
                      f"reminders send --cycle {year}-01 --kind reminders; "
                      f"reminders send --cycle {year}-01 --kind escalations"]
    # The monthly runs are not caught up; the daily heads-up job is, when its hour passed today (after 09:00 in
    # Shanghai this test would otherwise fail by the clock).
    assert not any("catching up" in m and "heads-ups" not in m for m in _messages(caplog))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_stops_on_sigterm_while_a_job_is_finishing(tmp_path: Path, db_url: str, smtp: RecordingServer,
                                                      start_daemon: Callable[[Path], Daemon]) -> None:
    """A job that ends during shutdown must not deadlock the scheduler (its listener once took the job store lock)."""
    path = _catch_up_config(tmp_path, db_url, smtp)
    _load_examples(Cli(path))
    smtp.delay_replies(0.05)  # the catch-up is still sending when SIGTERM arrives
    process = start_daemon(path)
    wait_for(lambda: len(smtp.messages) >= 1, "the first message")
    output = process.stop()
    assert "stopped" in output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_sends_nothing_once_the_plans_year_has_ended_and_says_so_once(
    tmp_path: Path, db_url: str, smtp: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    from reminders.daemon import run_cycle
    from reminders.store.db import make_engine

    path = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port)
    _load_examples(Cli(path), 2021)
    config = config_module.load(str(path))
    engine = make_engine(config.database_url)
    caplog.set_level("INFO", logger="reminders")
    for kind, when in (("reminder", datetime(2022, 1, 20, 9, tzinfo=TZ)),
                       ("digest", datetime(2022, 1, 26, 9, tzinfo=TZ)),
                       ("reminder", datetime(2022, 2, 20, 9, tzinfo=TZ))):
        assert run_cycle(config, engine, kind, when) is None  # type: ignore[arg-type]
    assert smtp.messages == []
    with session_scope(engine) as session:
        assert session.scalars(select(OutboxMessage.id)).all() == []
    ended = [m for m in _messages(caplog) if "已结束" in m]
    assert ended == ["周期 2022-01 不在计划年度内：计划《郑州市民族宗教事务局2021年工作计划》是 2021 年的，"
                     "该年度已结束；请导入 2022 年的计划 (reminders import-plan) (the plan's year 2021 has ended: "
                     "import the plan for 2022)；守护进程不发送该计划年度以外的邮件 "
                     "(the daemon sends nothing outside the plan's year)"]
    assert "job reminder: cycle 2022-02 outside the plan's year 2021, nothing sent" in _messages(caplog)

    assert run_cycle(config, engine, "reminder", datetime(2021, 12, 20, 9, tzinfo=TZ)) is not None  # within the year
    with session_scope(engine) as session:
        kinds = session.scalars(select(OutboxMessage.kind)).all()
    assert kinds.count("reminder") == 7 and len(smtp.messages) == len(kinds)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_reminders_job_sends_the_months_supervision_notices_with_them(
        tmp_path: Path, db_url: str, smtp: RecordingServer) -> None:
    from reminders.daemon import run_cycle
    from reminders.store.db import make_engine

    path = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port)
    _load_examples(Cli(path), 2021)
    config = config_module.load(str(path))
    engine = make_engine(config.database_url)
    assert run_cycle(config, engine, "reminder", datetime(2021, 6, 21, 9, tzinfo=TZ)) is not None
    with session_scope(engine) as session:
        kinds = sorted(session.scalars(select(OutboxMessage.kind)).all())
    assert kinds == ["escalation"] + ["reminder"] * 7  # 机关党委's task 17, due 31 March, is 82 days overdue
    (notice,) = [m for m in smtp.messages if "督办通知" in str(parsed(m.data)["Subject"])]
    assert notice.recipients == ("dangwei@example.org", "chen.jing@example.org")  # its 分管领导 in Cc
    assert parsed(notice.data)["Cc"] == "chen.jing@example.org"


def test_it_logs_on_one_clock_the_schedules_zone_with_its_offset(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    """Every log line carries the time in [schedule] timezone with its offset (not the host's zone, not UTC)."""
    path = write_config(tmp_path / "r.toml", f"sqlite:///{tmp_path / 'r.sqlite3'}")
    text = path.read_text(encoding="utf-8").replace('timezone = "Asia/Shanghai"', 'timezone = "America/Sao_Paulo"')
    path.write_text(text, encoding="utf-8")
    Cli(path)("init")
    before = datetime.now(ZoneInfo("America/Sao_Paulo"))
    daemon = start_daemon(path)
    daemon.wait_for("scheduled monthly reminders")
    lines = [line for line in daemon.stop().splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(lines) >= 4, daemon.output
    for line in lines:
        stamp = datetime.strptime(line[:24], "%Y-%m-%d %H:%M:%S%z")
        assert stamp.utcoffset() == timedelta(hours=-3), line
        assert timedelta(0) <= stamp - before.replace(microsecond=0) < timedelta(minutes=10), line


# The receipts (回执) --------------------------------------------------------------------------------------------


def _receipts(engine: Engine) -> list[tuple[str, str, str]]:
    with session_scope(engine) as session:
        rows = session.execute(select(OutboxMessage.recipient_name, OutboxMessage.cycle, OutboxMessage.state)
                               .where(OutboxMessage.kind == "receipt").order_by(OutboxMessage.id))
        return [(name, cycle, state) for name, cycle, state in rows]


def _submit(cli: Cli, unit: str, cycle: str, today: date, *answers: Answer) -> None:
    """What the web app does with a submission: record the reports, and their receipt in the same transaction."""
    env = library(cli)
    # No receipt window (issue 11: default 10m): the retry job may send it at once.
    config = replace(env.config, web=replace(env.config.web, receipt_window="0s"))
    with session_scope(env.engine) as session:
        ids = submit(session, config, env.unit_id(unit), cycle, answers, today)
        dispatch.queue_receipt(session, config, env.unit_id(unit), cycle, ids)


def test_it_delivers_the_receipts_of_this_month_and_last_once_however_often_the_job_runs(
    loaded: Cli, smtp: RecordingServer
) -> None:
    env = library(loaded)
    today = datetime.now(TZ).date()
    this_month = today.strftime("%Y-%m")
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    _submit(loaded, "政策法规处", this_month, today, Answer("14", "已起草", 60, "progress"),
            Answer("15", "推进中", None, "progress"))
    _submit(loaded, "信息中心", last_month, today, Answer("13", "完成招标", 70, "progress"))  # a late report
    assert _receipts(env.engine) == [("政策法规处", this_month, "pending"), ("信息中心", last_month, "pending")]

    finisher = Finisher(env.config, env.engine)
    finisher()
    assert sorted((m.recipients, str(parsed(m.data)["Subject"]).startswith("【回执】")) for m in smtp.messages) == [
        (("fagui@example.org", "fagui.backup@example.org"), True), (("xinxi@example.org",), True)]
    assert _receipts(env.engine) == [("政策法规处", this_month, "sent"), ("信息中心", last_month, "sent")]

    finisher()
    Finisher(env.config, env.engine)()  # another job's instance (a restarted daemon) too
    assert len(smtp.messages) == 2  # once only
    assert _receipts(env.engine) == [("政策法规处", this_month, "sent"), ("信息中心", last_month, "sent")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_it_schedules_the_retry_job_every_retry_every(loaded: Cli, smtp: RecordingServer) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.triggers.interval import IntervalTrigger

    text = loaded.config.read_text(encoding="utf-8")
    loaded.config.write_text(text.replace('maildir = "maildir"\n', 'maildir = "maildir"\nretry_every = "30s"\n'),
                             encoding="utf-8")
    env = library(loaded)
    assert env.config.delivery.retry_every == "30s"
    today = datetime.now(TZ).date()
    _submit(loaded, "信息中心", today.strftime("%Y-%m"), today, Answer("13", "完成招标", 70, "progress"))
    scheduler = build_scheduler(env.config, env.engine)
    job = scheduler.get_job("retry")
    assert job is not None and isinstance(job.func, Finisher) and scheduler.get_job("receipts") is None
    assert (job.func.config, job.func.engine) == (env.config, env.engine)
    assert isinstance(job.trigger, IntervalTrigger) and job.trigger.interval == timedelta(seconds=30)

    runs: list[Any] = []
    scheduler.add_listener(lambda event: runs.append(event) if event.job_id == "retry" else None,
                           EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start()
    try:
        for run in (1, 2):  # the scheduler runs the job now rather than in 30 s, twice
            scheduler.modify_job("retry", next_run_time=datetime.now(TZ))
            wait_for(lambda run=run: len(runs) == run, f"run {run} of the retry job")
            assert runs[-1].exception is None
            assert [m.recipients for m in smtp.messages] == [("xinxi@example.org",)]
    finally:
        scheduler.shutdown(wait=True)
    assert _receipts(env.engine) == [("信息中心", today.strftime("%Y-%m"), "sent")]
