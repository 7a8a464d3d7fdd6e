"""临期提醒 end to end: `send --kind headsups --as-of DAY` on the 2021 plan and the cn calendar, delivered to a real
SMTP server; the milestones (5 and 1 working days), once only, around 中秋 and 国庆 and their 调休 Saturdays."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders import config as config_module
from reminders.daemon import build_scheduler, run_cycle
from reminders.store.db import make_engine
from reminders.store.models import LadderStep, OutboxMessage, Task
from reminders.vocabulary import RUNG_HEADSUP, en_date
from reminders.workdays import DEFAULT as CN
from tests.conftest import Cli, write_config
from tests.smtpserver import RecordingServer

MINZU, OFFICE, FAGUI = "minzu@example.org", "bangongshi@example.org", "fagui@example.org"
# Tasks 5 and 6 (民族工作处) are due 2021-09-30, a Thursday before 国庆 (10-01 … 10-07; 09-26 and 10-09 are 调休
# working days); task 19 (办公室) is moved here to 2021-10-12, the Tuesday after it. The 5-working-day marks:
# 09-24 and 09-29; the 1-working-day marks: 09-29 and 10-11.
DEADLINE_19 = "2021年10月12日"
ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def plan(tmp_path: Path, db_url: str, smtp: RecordingServer, examples: Path) -> Cli:
    config = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port)
    run = Cli(config)
    run("init")
    assignments = examples / "assignments.csv"
    assignments.write_text(assignments.read_text(encoding="utf-8").replace("2021年6月20日", DEADLINE_19),
                           encoding="utf-8")
    run("import-plan", str(examples / "plan-2021.txt"))
    run("import-leaders", str(examples / "leaders.csv"))
    run("import-units", str(examples / "units.csv"))
    run("import-assignments", str(assignments))
    return run


def _mails(smtp: RecordingServer, address: str) -> list[EmailMessage]:
    found = [message_from_bytes(m.data, policy=policy.default) for m in smtp.messages if address in m.recipients]
    return [m for m in found if isinstance(m, EmailMessage)]


def _text(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _html(mail: EmailMessage) -> str:
    body = mail.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def _send(run: Cli, day: date) -> None:
    run("send", "--kind", "headsups", "--as-of", day.isoformat())


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def _steps(run: Cli) -> list[LadderStep]:
    config = config_module.load(str(run.config))
    with Session(make_engine(config.database_url)) as session:
        return list(session.scalars(select(LadderStep).order_by(LadderStep.id)))


def test_the_5_and_1_day_notices_go_out_on_their_working_days_around_the_holidays_once(
        plan: Cli, smtp: RecordingServer) -> None:
    """Every working day from 09-15 to 10-12 sends the day's notices, as the daemon does: each milestone once."""
    got: dict[str, list[str]] = {MINZU: [], OFFICE: []}
    for day in _days(date(2021, 9, 15), date(2021, 10, 12)):
        if not CN.is_workday(day):
            continue
        before = {address: len(_mails(smtp, address)) for address in got}
        _send(plan, day)
        _send(plan, day)  # a second run the same day sends nothing new
        for address in got:
            assert len(_mails(smtp, address)) - before[address] <= 1, day
            if len(_mails(smtp, address)) > before[address]:
                got[address].append(day.isoformat())
    assert got[MINZU] == ["2021-09-24", "2021-09-29"]
    assert got[OFFICE] == ["2021-09-29", "2021-10-11"]  # 5 working days before 10-12 across 国庆: 09-29
    texts = [_text(mail) for mail in _mails(smtp, OFFICE)]
    assert "剩余 5 个工作日（13 天）" in texts[0] and "剩余 1 个工作日（1 天）" in texts[1]
    assert not _mails(smtp, FAGUI)  # its task 14 was due in June: nothing to come


def test_a_missed_milestone_sends_only_the_tight_one(plan: Cli, smtp: RecordingServer) -> None:
    """The office was away for both marks of 5 and 6: on 09-30 (the deadline) one notice, of the last milestone;
    the 5-day step is recorded as taken with it and never sent later."""
    _send(plan, date(2021, 9, 30))
    [mail] = _mails(smtp, MINZU)
    text = _text(mail)
    assert "今日截止" in text and "5 个工作日" not in text
    steps = [step.step_key.rsplit(":", 1)[1] for step in _steps(plan) if step.unit_id and "2021-09-30" in step.step_key]
    assert sorted(steps) == ["1", "1", "5", "5"]  # tasks 5 and 6, each with both milestones
    _send(plan, date(2021, 9, 30))
    assert len(_mails(smtp, MINZU)) == 1


def test_the_notice_names_the_tasks_deadline_and_working_days_left(plan: Cli, smtp: RecordingServer) -> None:
    _send(plan, date(2021, 9, 24))
    [mail] = _mails(smtp, MINZU)
    assert "临期提醒" in str(mail["Subject"]) and "民族工作处" in str(mail["Subject"])
    text, html = _text(mail), _html(mail)
    for body in (text, html):
        assert "按2021年9月24日计算" in body  # the day it was computed for
        assert "深化“同心圆•共发展”活动" in body
        assert "2021年9月30日" in body and "剩余 5 个工作日" in body
        assert "确难按期完成的，请于截止前提出延期申请并说明理由" in body
        assert "督查室" in body
        assert "民族工作处　马丽同志：" in body and "你单位牵头的以下 2 项" in body  # the reminders' salutation
    assert "【5】" in text and "【6】" in text and "【19】" not in text


def test_the_notice_addresses_the_unit_by_the_configured_form(plan: Cli, smtp: RecordingServer) -> None:
    plan.config.write_text(plan.config.read_text(encoding="utf-8").replace(
        "[delivery]", '[mail]\naddress_form = "贵单位"\n\n[delivery]'), encoding="utf-8")
    _send(plan, date(2021, 9, 24))
    [mail] = _mails(smtp, MINZU)
    assert "贵单位牵头的以下 2 项" in _text(mail) and "贵单位牵头的以下 2 项" in _html(mail)


def test_the_english_notice_names_the_same(tmp_path: Path, plan: Cli, smtp: RecordingServer) -> None:
    plan.config.write_text(plan.config.read_text(encoding="utf-8").replace(
        "[delivery]", '[mail]\nlanguage = "en"\n\n[delivery]'), encoding="utf-8")
    _send(plan, date(2021, 9, 29))
    [mail] = _mails(smtp, OFFICE)
    assert str(mail["Subject"]).startswith("[Deadline ahead]")
    for body in (_text(mail), _html(mail)):
        assert f"As of {en_date(date(2021, 9, 29))}" in body
        assert "5 working days left" in body and "apply for an extension" in body
    [minzu] = _mails(smtp, MINZU)
    assert "1 working day left" in _text(minzu)


def test_never_for_ongoing_done_or_unassigned_tasks(plan: Cli, smtp: RecordingServer) -> None:
    plan("progress", "6", "--unit", "民族工作处", "--done", "--note", "已办结", "--date", "2021-09-20")
    _send(plan, date(2021, 9, 24))
    [mail] = _mails(smtp, MINZU)
    text = _text(mail)
    assert "【5】" in text and "【6】" not in text  # done
    assert "【7】" not in text and "【9】" not in text  # 持续推进, 常态化: no deadline
    units = {address for m in smtp.messages for address in m.recipients}
    assert units == {MINZU}


def test_an_extension_starts_the_notices_over(plan: Cli, smtp: RecordingServer, examples: Path) -> None:
    _send(plan, date(2021, 9, 29))  # task 19's 5-day notice (deadline 10-12)
    assert len(_mails(smtp, OFFICE)) == 1
    assignments = examples / "assignments.csv"
    assignments.write_text(assignments.read_text(encoding="utf-8").replace(DEADLINE_19, "2021年10月13日"),
                           encoding="utf-8")
    plan("import-assignments", str(assignments))  # an approved extension: the deadline moves a day
    _send(plan, date(2021, 9, 30))  # 5 working days before 10-13 again
    mails = _mails(smtp, OFFICE)
    assert len(mails) == 2 and "2021年10月13日" in _text(mails[1]) and "剩余 5 个工作日" in _text(mails[1])


def test_its_ladder_steps_name_the_mail_that_carried_them(plan: Cli, smtp: RecordingServer) -> None:
    _send(plan, date(2021, 9, 24))
    config = config_module.load(str(plan.config))
    with Session(make_engine(config.database_url)) as session:
        message = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "headsup")).one()
        ids = {number: task_id for number, task_id in session.execute(select(Task.number, Task.id))}
        steps = session.scalars(select(LadderStep).order_by(LadderStep.task_id)).all()
        assert [(s.task_id, s.rung, s.cycle, s.day, s.message_id) for s in steps] == [
            (ids["5"], RUNG_HEADSUP, "2021-09", date(2021, 9, 24), message.message_id),
            (ids["6"], RUNG_HEADSUP, "2021-09", date(2021, 9, 24), message.message_id)]
        assert steps[0].reason == "距截止 5 个工作日 (5 working days before the deadline)"
        assert message.cycle == "2021-09" and message.recipient_key.endswith(":2021-09-24")
    assert len(_mails(smtp, MINZU)) == 1
    assert message.message_id == str(_mails(smtp, MINZU)[0]["Message-ID"])


def test_send_headsups_needs_a_day(plan: Cli) -> None:
    result = plan("send", "--kind", "headsups", ok=False)
    assert result.exit_code == 2 and "临期提醒需要 --as-of" in result.output and "Traceback" not in result.output
    result = plan("send", "--cycle", "2021-06", "--kind", "headsups", "--as-of", "2021-09-24", ok=False)
    assert result.exit_code == 2 and "不在周期 2021-06 内" in result.output
    result = plan("send", "--kind", "reminders", ok=False)
    assert result.exit_code == 2 and "缺少 --cycle" in result.output


def test_the_daemon_has_a_daily_headsup_job_on_the_configured_cron(tmp_path: Path) -> None:
    path = write_config(tmp_path / "r.toml", "sqlite:///x.sqlite3", extra='headsup = "30 8 * * *"\n')
    config = config_module.load(str(path))
    scheduler = build_scheduler(config, make_engine(config.database_url))
    job = scheduler.get_job("headsup")
    assert job is not None and job.name == "daily heads-ups"
    fire = job.trigger.get_next_fire_time(None, datetime(2021, 9, 24, 9, tzinfo=ZONE))
    assert fire.isoformat() == "2021-09-25T08:30:00+08:00"  # the next 08:30 (the job itself skips days off)


def test_the_daemons_headsup_job_sends_the_days_notices_and_nothing_on_a_holiday(
        plan: Cli, smtp: RecordingServer) -> None:
    config = config_module.load(str(plan.config))
    engine = make_engine(config.database_url)
    zone = ZONE
    sending = threading.Lock()
    assert run_cycle(config, engine, "headsup", datetime(2021, 9, 25, 9, tzinfo=zone), sending=sending) is None
    assert not smtp.messages  # 09-25 is a Saturday off: nothing, though the 5-day mark of 09-30 passed
    result = run_cycle(config, engine, "headsup", datetime(2021, 9, 26, 9, tzinfo=zone), sending=sending)
    assert result is not None and len(result.sent) == 1  # a 调休 Sunday: the missed 5-day notice goes out
    [mail] = _mails(smtp, MINZU)
    assert "剩余 4 个工作日" in _text(mail)
