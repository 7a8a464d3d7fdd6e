"""The mails on working days: a report-by day that falls on a holiday moves to the next working day, and every
place that names it agrees (reminder, chase, digest, the report form); reminders and digests show the working days
left beside the calendar days, counted across 国庆 and its 调休."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from reminders import config as config_module
from reminders.store.db import make_engine
from reminders.store.models import Unit
from reminders.tracking.reporting import unit_form
from tests.conftest import EXAMPLES, Cli, write_config
from tests.smtpserver import RecordingServer


def _loaded(tmp_path: Path, db_url: str, smtp: RecordingServer, report_day: int, calendar: str = "") -> Cli:
    config = write_config(tmp_path / "reminders.toml", db_url, transport="smtp", smtp_port=smtp.port, extra=calendar)
    config.write_text(config.read_text(encoding="utf-8").replace("report_day = 25", f"report_day = {report_day}"),
                      encoding="utf-8")
    run = Cli(config)
    run("init")
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    run("import-units", str(EXAMPLES / "units.csv"))
    run("import-assignments", str(EXAMPLES / "assignments.csv"))
    return run


def _mails(smtp: RecordingServer, address: str) -> list[EmailMessage]:
    found = [message_from_bytes(m.data, policy=policy.default) for m in smtp.messages if address in m.recipients]
    return [m for m in found if isinstance(m, EmailMessage)]


def _bodies(mail: EmailMessage) -> tuple[str, str]:
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def _form_report_by(run: Cli, unit: str, cycle: str, today: date) -> date:
    config = config_module.load(str(run.config))
    with Session(make_engine(config.database_url)) as session:
        unit_id = session.query(Unit).filter_by(name=unit).one().id
        return unit_form(session, config, unit_id, cycle, today).report_by


def test_a_report_day_in_guoqing_moves_to_the_first_working_day_everywhere(
        tmp_path: Path, db_url: str, smtp: RecordingServer) -> None:
    run = _loaded(tmp_path, db_url, smtp, report_day=1)  # 2021-10-01 … 07 is 国庆; 10-08 (Friday) is a working day
    run("send", "--cycle", "2021-10", "--kind", "reminders", "--as-of", "2021-09-28")
    text, html = _bodies(_mails(smtp, "minzu@example.org")[0])
    assert "请于2021年10月8日前报送" in text and "请于2021年10月8日前报送" in html
    assert "10月1日" not in text

    run("send", "--cycle", "2021-10", "--kind", "chases", "--as-of", "2021-10-09")
    chase = [m for m in _mails(smtp, "minzu@example.org") if "报送时间为" in _bodies(m)[0]]
    assert len(chase) == 1
    chase_text, chase_html = _bodies(chase[0])
    assert "报送时间为2021年10月8日前" in chase_text and "报送时间为2021年10月8日前" in chase_html

    run("send", "--cycle", "2021-10", "--kind", "digests", "--as-of", "2021-10-09")
    digest_text, _ = _bodies(_mails(smtp, "wang.jianguo@example.org")[0])
    assert "各单位报送截止日为2021年10月8日" in digest_text

    assert _form_report_by(run, "民族工作处", "2021-10", date(2021, 9, 28)) == date(2021, 10, 8)


def test_with_every_day_a_working_day_the_report_day_does_not_move(
        tmp_path: Path, db_url: str, smtp: RecordingServer) -> None:
    run = _loaded(tmp_path, db_url, smtp, report_day=25, calendar='[calendar]\nworkdays = "all"\n')
    # 2021-09-25 is a Saturday (and no 调休 day): with every day a working day it stays.
    run("send", "--cycle", "2021-09", "--kind", "reminders", "--as-of", "2021-09-20")
    text, html = _bodies(_mails(smtp, "minzu@example.org")[0])
    assert "请于2021年9月25日前报送" in text and "请于2021年9月25日前报送" in html
    assert _form_report_by(run, "民族工作处", "2021-09", date(2021, 9, 20)) == date(2021, 9, 25)


@pytest.mark.parametrize(("calendar", "by", "day"), [
    ("", "请于2021年9月26日前报送", date(2021, 9, 26)),  # Sunday 9-26 is a 调休 working day (for 国庆)
    ('[calendar]\nworkdays = "weekdays"\n', "请于2021年9月27日前报送", date(2021, 9, 27)),  # Monday
])
def test_a_saturday_report_day_moves_to_the_next_working_day_tiaoxiu_included(
        tmp_path: Path, db_url: str, smtp: RecordingServer, calendar: str, by: str, day: date) -> None:
    run = _loaded(tmp_path, db_url, smtp, report_day=25, calendar=calendar)
    run("send", "--cycle", "2021-09", "--kind", "reminders", "--as-of", "2021-09-20")
    text, _ = _bodies(_mails(smtp, "minzu@example.org")[0])
    assert by in text
    assert _form_report_by(run, "民族工作处", "2021-09", date(2021, 9, 20)) == day


@pytest.mark.parametrize(("calendar", "zh"), [
    # 9-29, 9-30, then 国庆 (10-01…07) off, 10-08 and the 调休 Saturday 10-09 worked, 15 weekdays after: 19.
    ("", "剩余 33 天（19 个工作日）"),
    ('[calendar]\nworkdays = "weekdays"\n', "剩余 33 天（23 个工作日）"),
    ('[calendar]\nworkdays = "all"\n', "剩余 33 天（33 个工作日）"),
])
def test_a_reminder_shows_the_working_days_left_across_guoqing(
        tmp_path: Path, db_url: str, smtp: RecordingServer, calendar: str, zh: str) -> None:
    run = _loaded(tmp_path, db_url, smtp, report_day=25, calendar=calendar)
    run("send", "--cycle", "2021-09", "--kind", "reminders", "--as-of", "2021-09-28")
    text, html = _bodies(_mails(smtp, "minzu@example.org")[0])
    for body in (text, html):  # task 3, due 2021-10-31
        assert zh in body
    assert "逾期 90 天（" not in text and "长期推进（" not in text  # overdue and ongoing tasks get no working days
    assert "剩余 2 天（2 个工作日）" in text  # task 5, due 2021-09-30


def test_a_digest_shows_the_working_days_left_of_tasks_due_soon(
        tmp_path: Path, db_url: str, smtp: RecordingServer) -> None:
    run = _loaded(tmp_path, db_url, smtp, report_day=25)
    run("send", "--cycle", "2021-09", "--kind", "digests", "--as-of", "2021-09-28")
    text, html = _bodies(_mails(smtp, "wang.jianguo@example.org")[0])
    for body in (text, html):  # tasks 5 and 6 of 民族工作处, due 2021-09-30
        assert "剩余 2 天（2 个工作日）" in body


def test_the_english_mails_say_working_days_and_the_moved_report_day(
        tmp_path: Path, db_url: str, smtp: RecordingServer) -> None:
    run = _loaded(tmp_path, db_url, smtp, report_day=1, calendar='[mail]\nlanguage = "en"\n')
    run("send", "--cycle", "2021-10", "--kind", "all", "--as-of", "2021-10-09")
    text, html = _bodies(_mails(smtp, "minzu@example.org")[0])
    for body in (text, html):  # task 3, due 2021-10-31: 10-09 (调休) not counted, 10-11 … 10-29 worked
        assert "22 days left (15 working days)" in body and "Please report progress by 8 October 2021" in body
    digest_text, digest_html = _bodies(_mails(smtp, "wang.jianguo@example.org")[0])
    for body in (digest_text, digest_html):
        assert "units report by 8 October 2021" in body
