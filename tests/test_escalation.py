"""The 督办 ladder's rung 2 and 3: who gets a numbered 督办通知单 (silent two cycles, or overdue past overdue_days),
with which number, to whom and copied to whom, replying by which working day; and the 通报 after two cycles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders import config as config_module
from reminders.config import Config
from reminders.mail.compose import build_drafts
from reminders.mail.draft import Draft
from reminders.mail.render import Renderer
from reminders.store.db import make_engine
from reminders.store.models import LadderStep, OutboxMessage
from reminders.store.plans import active_plan
from reminders.tracking.bulletin import bulletin, chase_steps, task_ids
from reminders.tracking.ladder import standings
from reminders.tracking.progress import record_progress
from reminders.tracking.status import load_status
from reminders.tracking.steps import record_steps
from tests.conftest import EXAMPLES, Cli
from tests.smtpserver import RecordingServer

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# assignments.csv: each task's lead unit; 17 (机关党委, due 2021-03) is closed by close_17 and reported no more.
LEADS = {"1": "机关党委", "2": "宗教一处", "3": "民族工作处", "4": "民族工作处", "5": "民族工作处", "6": "民族工作处",
         "7": "民族工作处", "8": "民族工作处", "9": "民族工作处", "10": "宗教二处", "11": "宗教一处", "12": "宗教二处",
         "13": "信息中心", "14": "政策法规处", "15": "政策法规处", "16": "机关党委", "18": "机关党委",
         "19": "办公室"}

@contextmanager
def opened(run: Cli) -> Iterator[tuple[Session, Config]]:
    config = config_module.load(str(run.config))
    with Session(make_engine(config.database_url), expire_on_commit=False) as session:
        yield session, config
        session.commit()


def report(run: Cli, cycles: list[str], *, silent: tuple[str, ...] = (), day: int = 10,
           skip: tuple[str, ...] = ()) -> None:
    """Every lead unit reports on each of its tasks in each cycle (on `day`), but the `silent` units."""
    with opened(run) as (session, _config):
        for cycle in cycles:
            year, month = (int(p) for p in cycle.split("-"))
            for task, unit in LEADS.items():
                if unit not in silent and task not in skip:
                    record_progress(session, task, unit, f"{cycle} 推进中", on=date(year, month, day), percent=10)


def asked(run: Cli, *cycles: str) -> None:
    """The cycles' reminders sent: a missed report counts only in a month the unit was asked for one."""
    for cycle in cycles:
        run("send", "--cycle", cycle, "--kind", "reminders", "--force")


def close_17(run: Cli) -> None:
    """Task 17 (机关党委, due 2021-03) is done by April: it is overdue otherwise from May on."""
    with opened(run) as (session, _config):
        record_progress(session, "17", "机关党委", "已办结", on=date(2021, 3, 30), done=True)


def notices(run: Cli, cycle: str, as_of: date, record: bool = True) -> dict[str, Draft]:
    """The cycle's 督办通知 drafts by unit; recorded (steps with their message) as a send records them."""
    with opened(run) as (session, config):
        drafts = build_drafts(session, config, cycle, ("escalation",), as_of)
        if record:
            for draft in drafts:
                record_steps(session, draft.steps, f"<escalation/{cycle}/{draft.recipient_key}>")
    return {draft.recipient_name: draft for draft in drafts}


def mails(smtp: RecordingServer, address: str) -> list[EmailMessage]:
    found = [message_from_bytes(m.data, policy=policy.default) for m in smtp.messages if address in m.recipients]
    return [m for m in found if isinstance(m, EmailMessage)]


def test_it_sends_a_numbered_notice_to_a_unit_silent_two_cycles_copied_to_its_leader(loaded: Cli) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    found = notices(loaded, "2021-06", date(2021, 6, 21))
    assert list(found) == ["宗教一处"]  # the others reported; 12 is only 21 days overdue
    notice = found["宗教一处"]
    assert notice.addresses == ("zongjiao1@example.org",)
    assert notice.cc == ("zhang.hua@example.org", "zhang.hua.office@example.org")  # 分管领导 张华 (units.csv)
    assert notice.context.notice_number == "督办〔2021〕1号"
    assert [t.number for t in notice.context.tasks] == ["2", "11"]
    assert all(t.missed == 2 for t in notice.context.tasks)
    assert [s.key for s in notice.steps] == ["escalation:2021-06:unit:3:task:2", "escalation:2021-06:unit:3:task:11"]
    assert {s.number for s in notice.steps} == {"督办〔2021〕1号"} and {s.rung for s in notice.steps} == {2}


def test_it_sends_no_notice_to_a_unit_that_reported_in_one_of_the_two_cycles(loaded: Cli) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04"])
    report(loaded, ["2021-05"], silent=("宗教一处",))
    assert notices(loaded, "2021-06", date(2021, 6, 21)) == {}


def test_it_sends_a_notice_for_a_task_31_days_overdue_not_29(loaded: Cli) -> None:
    close_17(loaded)
    report(loaded, ["2021-04", "2021-05", "2021-06"])
    assert notices(loaded, "2021-06", date(2021, 6, 29)) == {}  # 12 (due 2021-05-31) is 29 days overdue
    assert notices(loaded, "2021-06", date(2021, 6, 30)) == {}  # 30: not more than overdue_days
    found = notices(loaded, "2021-07", date(2021, 7, 1))
    assert list(found) == ["宗教二处"]
    (task,) = found["宗教二处"].context.tasks
    assert (task.number, task.days_overdue, task.missed) == ("12", 31, 0)
    assert found["宗教二处"].cc == ("zhang.hua@example.org", "zhang.hua.office@example.org")


def test_it_asks_for_a_reply_within_five_working_days_across_guoqing(loaded: Cli) -> None:
    close_17(loaded)
    asked(loaded, "2021-07", "2021-08")
    report(loaded, ["2021-07", "2021-08"], silent=("信息中心",))
    notice = notices(loaded, "2021-09", date(2021, 9, 28))["信息中心"]
    # 9-29, 9-30, (国庆 10-01…07), 10-08, 10-09 (a Saturday, 调休 workday), 10-11
    assert notice.context.reply_by == date(2021, 10, 11)
    assert notice.cc == ("li.ming@example.org",)  # 信息中心's 分管领导 李明


def test_it_numbers_notices_on_across_cycles_and_alike_in_two_builds(loaded: Cli) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05", "2021-06")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处", "信息中心"))
    june = notices(loaded, "2021-06", date(2021, 6, 21))
    assert {u: d.context.notice_number for u, d in june.items()} == {
        "宗教一处": "督办〔2021〕1号", "信息中心": "督办〔2021〕2号"}  # unit-id order: 宗教一处 is 3, 信息中心 7
    again = notices(loaded, "2021-06", date(2021, 6, 21), record=False)  # another sender building June
    assert {u: d.context.notice_number for u, d in again.items()} == {
        u: d.context.notice_number for u, d in june.items()}
    report(loaded, ["2021-06"], silent=("宗教一处",))
    july = notices(loaded, "2021-07", date(2021, 7, 20))
    assert {u: d.context.notice_number for u, d in july.items()} == {
        "宗教一处": "督办〔2021〕3号", "宗教二处": "督办〔2021〕4号"}  # 12 is now 50 days overdue


def test_it_names_in_the_bulletin_a_unit_supervised_two_cycles_and_praises_the_punctual(loaded: Cli) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05", "2021-06")
    report(loaded, ["2021-01", "2021-02", "2021-03", "2021-05"], silent=("宗教一处",))
    report(loaded, ["2021-04"], silent=("宗教一处", "信息中心"))
    report(loaded, ["2021-04"], skip=tuple(t for t, u in LEADS.items() if u != "信息中心"), day=28)  # late
    notices(loaded, "2021-06", date(2021, 6, 21))
    with opened(loaded) as (session, config):
        first = bulletin(session, config, "2021-06")
    assert first.criticised == () and "宗教一处" not in first.praised
    assert "信息中心" not in first.praised  # its April report came on the 28th, after the report day
    report(loaded, ["2021-06"], silent=("宗教一处",))
    notices(loaded, "2021-07", date(2021, 7, 20))
    with opened(loaded) as (session, config):
        second = bulletin(session, config, "2021-07")
        ladder = {s.unit: s for s in standings(session, config, "2021-07", date(2021, 7, 20))}
    assert second.criticised == (("宗教一处", "连续2个月被督办 (supervised 2 months running)"),)
    assert [s.key for s in second.steps] == ["bulletin:2021-07:unit:3"] and second.steps[0].rung == 3
    assert "办公室" in second.praised and "宗教一处" not in second.praised
    assert ladder["宗教一处"].rung == 3 and ladder["宗教一处"].number == "督办〔2021〕2号"


def test_it_renders_the_notice_in_both_languages(loaded: Cli) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    notice = notices(loaded, "2021-06", date(2021, 6, 21), record=False)["宗教一处"]
    zh = Renderer("zh_CN").render("escalation", notice.context)
    assert zh.subject == "【督办通知】督办〔2021〕1号 宗教一处 2021年6月"
    for body in (zh.text, zh.html):
        assert "督办通知单" in body and "督办〔2021〕1号" in body and "2 个月未报送进展" in body
        assert "请于2021年6月28日前书面报送" in body and "抄送：张华" in body
    en = Renderer("en").render("escalation", notice.context)
    assert en.subject == "[Supervision notice] No. 督办〔2021〕1号 宗教一处 June 2021"
    for body in (en.text, en.html):
        assert "no progress report for 2 months" in body and "by 28 June 2021" in body and "Cc: 张华" in body


def test_send_all_sends_the_notice_to_the_unit_once(loaded: Cli, smtp: RecordingServer) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    loaded("send", "--cycle", "2021-06", "--kind", "all", "--as-of", "2021-06-21")
    loaded("send", "--cycle", "2021-06", "--kind", "all", "--as-of", "2021-06-21")
    (mail,) = [m for m in mails(smtp, "zongjiao1@example.org") if "督办通知" in str(m["Subject"])]
    assert mail["Subject"] == "【督办通知】督办〔2021〕1号 宗教一处 2021年6月"
    assert "zongjiao1@example.org" in str(mail["To"])
    assert "督办〔2021〕1号" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with opened(loaded) as (session, _config):
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "escalation")).all()
    assert [(r.recipient_name, r.state) for r in rows] == [("宗教一处", "sent")]


def test_send_copies_the_leader_in_the_header_and_the_envelope_and_records_the_steps(
        loaded: Cli, smtp: RecordingServer) -> None:
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    loaded("send", "--cycle", "2021-06", "--kind", "all", "--as-of", "2021-06-21")
    loaded("send", "--cycle", "2021-06", "--kind", "all", "--as-of", "2021-06-21")
    (sent,) = [m for m in smtp.messages if b"zongjiao1" in m.data and "zhang.hua@example.org" in m.recipients]
    assert set(sent.recipients) == {"zongjiao1@example.org", "zhang.hua@example.org", "zhang.hua.office@example.org"}
    mail = message_from_bytes(sent.data, policy=policy.default)
    assert "zhang.hua@example.org" in str(mail["Cc"]) and "zhang.hua@example.org" not in str(mail["To"])
    with opened(loaded) as (session, _config):
        steps = session.scalars(select(LadderStep).where(LadderStep.rung == 2)).all()
    assert sorted(s.step_key for s in steps) == [
        "escalation:2021-06:unit:3:task:11", "escalation:2021-06:unit:3:task:2"]
    assert all(s.message_id for s in steps)


def test_a_unit_without_a_leader_in_the_directory_copies_the_tasks_leaders(loaded: Cli, tmp_path) -> None:
    units = (EXAMPLES / "units.csv").read_text(encoding="utf-8").replace("宗教一处,zongjiao1@example.org,孙强,张华",
                                                                         "宗教一处,zongjiao1@example.org,孙强,")
    (tmp_path / "units.csv").write_text(units, encoding="utf-8")
    loaded("import-units", str(tmp_path / "units.csv"))
    close_17(loaded)
    asked(loaded, "2021-04", "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    notice = notices(loaded, "2021-06", date(2021, 6, 21))["宗教一处"]
    assert notice.cc == ("zhang.hua@example.org", "zhang.hua.office@example.org")  # 责任领导 of tasks 2 and 11


def test_a_chase_takes_one_rung_1_step_per_unreported_lead_task(loaded: Cli) -> None:
    close_17(loaded)
    report(loaded, ["2021-06"], silent=("宗教一处",))
    with opened(loaded) as (session, config):
        (chase,) = [d for d in build_drafts(session, config, "2021-06", ("chase",), date(2021, 6, 28))
                    if d.recipient_name == "宗教一处"]
        status = load_status(session, active_plan(session), date(2021, 6, 28), 7)
        steps = chase_steps(status, task_ids(status), 3, chase.context.tasks, "2021-06")
    assert [(s.key, s.rung, s.day) for s in steps] == [
        ("chase:2021-06:unit:3:task:2", 1, date(2021, 6, 28)), ("chase:2021-06:unit:3:task:11", 1, date(2021, 6, 28))]
    assert {s.reason for s in steps} == {"本月未报送进展 (no progress report this month)"}


def test_a_month_nobody_was_asked_about_brings_no_notice(loaded: Cli) -> None:
    """A 督办 follows a 催办 that failed: with the plan imported in May, April's silence does not count."""
    close_17(loaded)
    asked(loaded, "2021-05")
    report(loaded, ["2021-04", "2021-05"], silent=("宗教一处",))
    assert notices(loaded, "2021-06", date(2021, 6, 21)) == {}
    asked(loaded, "2021-06")
    july = notices(loaded, "2021-07", date(2021, 7, 1))["宗教一处"]  # silent in May and June, asked in both
    assert [(t.number, t.missed) for t in july.context.tasks] == [("2", 2), ("11", 2)]


def test_a_sent_chase_records_its_rung_1_steps(loaded: Cli) -> None:
    close_17(loaded)
    loaded("send", "--cycle", "2021-06", "--kind", "chases", "--as-of", "2021-06-28")
    with opened(loaded) as (session, _config):
        keys = set(session.scalars(select(LadderStep.step_key).where(LadderStep.rung == 1)))
    assert "chase:2021-06:unit:3:task:2" in keys and len(keys) == 18  # every lead task not done, none reported
