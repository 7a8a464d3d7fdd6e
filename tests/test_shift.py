"""Scheduled runs moved off non-working days (`[schedule] shift`): the trigger on the days of 2021 (中秋, 国庆 and
their 调休 Saturdays), `send --cycle` computing the month's mails for the moved day, and the daemon's jobs."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reminders import config as config_module
from reminders.daemon import build_scheduler, last_fires, run_cycle_of
from reminders.schedule_shift import ShiftedTrigger, shifted_trigger
from reminders.store.db import make_engine
from reminders.workdays import DEFAULT as CN
from tests.conftest import EXAMPLES, Cli, write_config
from tests.smtpserver import RecordingServer

TZ = ZoneInfo("Asia/Shanghai")


def _config(tmp_path: Path, reminders: str = "0 9 20 * *", shift: str = "next", calendar: str = "cn",
            db_url: str = "sqlite:///x.sqlite3", port: int | None = None) -> config_module.Config:
    extra = f'shift = "{shift}"\n\n[calendar]\nworkdays = "{calendar}"\n'
    if port is None:
        path = write_config(tmp_path / "r.toml", db_url, extra=extra)
    else:
        path = write_config(tmp_path / "r.toml", db_url, transport="smtp", smtp_port=port, extra=extra)
    text = path.read_text(encoding="utf-8").replace('reminders = "0 9 20 * *"', f'reminders = "{reminders}"')
    path.write_text(text, encoding="utf-8")
    return config_module.load(str(path))


def _trigger(tmp_path: Path, cron: str, shift: str = "next", calendar: str = "cn") -> ShiftedTrigger:
    return shifted_trigger(_config(tmp_path, shift=shift, calendar=calendar), cron)


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)  # type: ignore[misc]


def _next(trigger: ShiftedTrigger, now: datetime) -> datetime | None:
    return trigger.get_next_fire_time(None, now)


def test_a_run_on_guoqing_moves_to_the_first_working_day_after_it(tmp_path: Path) -> None:
    trigger = _trigger(tmp_path, "0 9 1 10 *")
    assert _next(trigger, _at(2021, 9, 1)) == _at(2021, 10, 8, 9)  # 10-01 … 10-07 off; 10-08 a Friday
    assert trigger.origin(_at(2021, 10, 8, 9)) == _at(2021, 10, 1, 9)  # the run keeps the cron fire's cycle
    # Until the moved moment has passed, the run is still to come, though its cron day is behind.
    assert _next(trigger, _at(2021, 10, 3, 12)) == _at(2021, 10, 8, 9)
    assert _next(trigger, _at(2021, 10, 8, 9, 0)) == _at(2021, 10, 8, 9)
    assert _next(trigger, _at(2021, 10, 8, 9, 1)).year == 2022  # type: ignore[union-attr]


def test_tiaoxiu_saturdays_are_working_days(tmp_path: Path) -> None:
    assert _next(_trigger(tmp_path, "0 9 18 9 *"), _at(2021, 9, 1)) == _at(2021, 9, 18, 9)  # before 中秋
    assert _next(_trigger(tmp_path, "0 9 9 10 *"), _at(2021, 9, 1)) == _at(2021, 10, 9, 9)  # after 国庆
    # 中秋 2021: 09-19 (Sunday) … 09-21 off; the next working day is Wednesday 09-22.
    assert _next(_trigger(tmp_path, "0 9 20 9 *"), _at(2021, 9, 1)) == _at(2021, 9, 22, 9)


def test_previous_takes_the_working_day_before(tmp_path: Path) -> None:
    assert _next(_trigger(tmp_path, "0 9 20 9 *", "previous"), _at(2021, 9, 1)) == _at(2021, 9, 18, 9)  # Saturday
    trigger = _trigger(tmp_path, "0 9 20 9 *", "previous")
    assert _next(trigger, _at(2021, 9, 18, 10)) is not None
    assert _next(trigger, _at(2021, 9, 18, 10)).year == 2022  # type: ignore[union-attr]


def test_a_shift_never_leaves_the_cycles_month(tmp_path: Path) -> None:
    # 2021-10-31 is a Sunday and 11-01 is in November: the October run takes Friday 10-29 instead.
    assert _next(_trigger(tmp_path, "0 9 31 10 *"), _at(2021, 10, 1)) == _at(2021, 10, 29, 9)
    # "previous" from 10-01 would be 09-30: the October run takes 10-08.
    assert _next(_trigger(tmp_path, "0 9 1 10 *", "previous"), _at(2021, 9, 1)) == _at(2021, 10, 8, 9)


def test_fires_moved_onto_the_same_moment_fire_once(tmp_path: Path) -> None:
    trigger = _trigger(tmp_path, "0 9 * 10 *")  # every day of October
    fires, now, previous = [], _at(2021, 9, 30, 12), None
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or (fire.year, fire.month) != (2021, 10):
            break
        fires.append(fire)
        previous = now = fire
    assert fires[0] == _at(2021, 10, 8, 9) and fires.count(_at(2021, 10, 8, 9)) == 1
    assert len(fires) == len(set(fires)) == sum(1 for d in range(1, 32) if CN.is_workday(date(2021, 10, d)))


def test_weekdays_and_none(tmp_path: Path) -> None:
    # Monday to Friday: 10-01 (a Friday) is a working day, and the 调休 Saturday 09-18 is not.
    assert _next(_trigger(tmp_path, "0 9 1 10 *", calendar="weekdays"), _at(2021, 9, 1)) == _at(2021, 10, 1, 9)
    assert _next(_trigger(tmp_path, "0 9 18 9 *", calendar="weekdays"), _at(2021, 9, 1)) == _at(2021, 9, 20, 9)
    assert _next(_trigger(tmp_path, "0 9 1 10 *", "none"), _at(2021, 9, 1)) == _at(2021, 10, 1, 9)


def test_send_cycle_computes_the_mails_for_the_moved_day(tmp_path: Path, db_url: str,
                                                          smtp: RecordingServer) -> None:
    config = _config(tmp_path, reminders="0 9 1 * *", db_url=db_url, port=smtp.port)
    run = Cli(Path(config.path))
    run("init")
    for command, name in (("import-plan", "plan-2021.txt"), ("import-leaders", "leaders.csv"),
                          ("import-units", "units.csv"), ("import-assignments", "assignments.csv")):
        run(command, str(EXAMPLES / name))
    run("send", "--cycle", "2021-10", "--kind", "reminders")
    mails = [message_from_bytes(m.data, policy=policy.default) for m in smtp.messages]
    assert mails
    for mail in mails:
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "统计截至2021年10月8日" in text and "2021年10月1日）" not in text


def test_the_daemons_reminder_job_fires_on_the_moved_day(tmp_path: Path) -> None:
    config = _config(tmp_path, reminders="0 9 1 * *")
    scheduler = build_scheduler(config, make_engine(config.database_url), threading.Event(), threading.Lock())
    job = scheduler.get_job("reminder")
    assert job.trigger.get_next_fire_time(None, _at(2021, 9, 25)) == _at(2021, 10, 8, 9)
    # After the moved run: its catch-up on a restart names the cycle of the cron fire it came from.
    assert ("reminder", _at(2021, 10, 8, 9), "2021-10") in last_fires(config, _at(2021, 10, 8, 10))
    assert run_cycle_of(config, "reminder", _at(2021, 10, 8, 9, 0)) == "2021-10"
    assert run_cycle_of(config, "headsup", _at(2021, 10, 8, 9, 0)) == "2021-10"


def test_the_daemon_logs_the_next_moved_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.test_daemon import _messages, _run_until

    today = datetime.now(TZ).date()
    day = next(today + timedelta(days=k) for k in range(2, 60)
               if not CN.is_workday(today + timedelta(days=k))
               and CN.next_workday(today + timedelta(days=k)).month == (today + timedelta(days=k)).month)
    moved = CN.next_workday(day)
    config = _config(tmp_path, reminders=f"0 9 {day.day} {day.month} *")
    engine = make_engine(config.database_url)
    from reminders.store import db

    db.upgrade(engine)
    caplog.set_level("INFO", logger="reminders")
    _run_until(config, engine, lambda: any(m.startswith("scheduled ") for m in _messages(caplog)),
               "the scheduler to start")
    cycle = f"{day.year:04d}-{day.month:02d}"
    assert (f"{day.isoformat()} 不是工作日，{cycle} 的提醒改在 {moved.isoformat()} 发送 ({day.isoformat()} is a "
            f"holiday: reminders of {cycle} move to {moved.isoformat()}T09:00:00+08:00)") in _messages(caplog)
    assert any(m == f"scheduled monthly reminders: next run {moved.isoformat()} 09:00:00+08:00"
               for m in _messages(caplog))
