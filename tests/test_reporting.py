"""The unit report form: ordering, co-unit input, validation, superseding, receipts (回执) and the chase (催报)."""

from __future__ import annotations

from datetime import date

import pytest

from reminders.delivery import dispatch
from reminders.store.db import session_scope
from reminders.store.models import OutboxMessage
from reminders.store.plans import active_plan
from reminders.tracking import office
from reminders.tracking.reporting import Answer, FormError, submit, unit_form
from reminders.tracking.status import load_status
from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.webenv import Env, library, parsed, text_of

TODAY = date(2021, 6, 22)


@pytest.fixture
def env(loaded: Cli) -> Env:
    return library(loaded)


def _submit(env: Env, unit: str, *answers: Answer, cycle: str = "2021-06", today: date = TODAY) -> list[int]:
    """What the web app does with a submission: record the reports, and their receipt in the same transaction."""
    with session_scope(env.engine) as session:
        ids = submit(session, env.config, env.unit_id(unit), cycle, answers, today)
        dispatch.queue_receipt(session, env.config, env.unit_id(unit), cycle, ids)
        return ids


def _errors(env: Env, unit: str, *answers: Answer) -> dict[str, str]:
    with pytest.raises(FormError) as caught:
        _submit(env, unit, *answers)
    return caught.value.errors


def test_it_lists_lead_tasks_first_and_leaves_done_tasks_out(env: Env, loaded: Cli) -> None:
    loaded("progress", "11", "--unit", "宗教一处", "--done", "--note", "已办结", "--date", "2021-06-01")
    with session_scope(env.engine) as session:
        form = unit_form(session, env.config, env.unit_id("宗教一处"), "2021-06", TODAY)
    assert form.unit == "宗教一处" and form.report_by == date(2021, 6, 25)
    assert [(t.line.number, t.line.role) for t in form.tasks] == [
        ("2", "lead"), ("1", "co"), ("5", "co"), ("10", "co"), ("12", "co"), ("13", "co")]
    task2 = form.tasks[0].line
    assert task2.deadline == date(2021, 6, 30) and task2.state == "on_track" and task2.days_left == 8


def test_it_shows_a_co_units_input_to_the_lead_unit(env: Env) -> None:
    _submit(env, "宗教二处",
            Answer("10", "组织培训2次", 50, "progress"), Answer("12", "已完成初稿", 80, "progress"),
            Answer("2", "已提供本处材料", None, "progress", problems="缺少统计口径"))
    with session_scope(env.engine) as session:
        lead = unit_form(session, env.config, env.unit_id("宗教一处"), "2021-06", TODAY)
        co = unit_form(session, env.config, env.unit_id("宗教二处"), "2021-06", TODAY)
        status = {line.number: line for line in load_status(session, active_plan(session), TODAY, 7).lines}
    task2 = next(t for t in lead.tasks if t.line.number == "2")
    assert [(c.unit, c.progress.note) for c in task2.co_inputs] == [("宗教二处", "已提供本处材料")]
    assert all(t.co_inputs == () for t in co.tasks if t.line.role == "co")
    assert next(t for t in co.tasks if t.line.number == "2").own.note == "已提供本处材料"  # type: ignore[union-attr]
    assert status["2"].reported is False  # a co-unit's input is not the lead unit's report
    assert status["10"].reported is True


def test_it_reports_every_problem_of_a_submission_by_task_and_field(env: Env) -> None:
    errors = _errors(
        env, "宗教一处",
        Answer("2", "  ", 101, "extension", new_deadline=date(2021, 6, 1)),
        Answer("5", "配合", None, "extension", new_deadline=date(2022, 1, 1), reason="x"),
        Answer("10", "x" * 2001, None, "progress", problems="a\x00b"),
        Answer("14", "not ours", None, "progress"),
        Answer("99", "no such task", None, "progress"),
        Answer("12", "ok", 10, "paused"),
    )
    assert set(errors) == {"2.note", "2.percent", "2.new_deadline", "2.reason", "5.status", "10.note",
                           "10.problems", "14.task", "99.task", "12.status", "11.note"}
    assert "进展情况" in errors["2.note"] and "0–100" in errors["2.percent"]
    assert "2000" in errors["10.note"] and "非法字符" in errors["10.problems"]
    assert "理由" in errors["2.reason"] and "晚于现完成时限2021-06-30" in errors["2.new_deadline"]
    assert _errors(env, "宗教一处", Answer("2", "进展", None, "extension", reason="等待批复"),
                   Answer("11", "进展", None, "progress")) == {
        "2.new_deadline": "请填写申请延期后的完成时限 (the new deadline is required)"}
    assert set(_errors(env, "宗教一处")) == {"2.note", "11.note"}  # lead tasks must be answered
    with session_scope(env.engine) as session:
        assert session.query(OutboxMessage).count() == 0  # nothing recorded when anything is wrong


def test_it_lets_a_co_unit_leave_its_tasks_empty_but_not_the_whole_form(env: Env) -> None:
    assert _errors(env, "办公室", Answer("19", "", None, "progress")) == {
        "19.note": "牵头任务必须填写进展情况 (progress is required for a lead task)"}
    ids = _submit(env, "办公室", Answer("19", "已完成筹备", 90, "progress"), Answer("1", "", None, "progress"),
                  Answer("3", "", None, "progress"))
    assert len(ids) == 1
    with session_scope(env.engine) as session:
        office.mark_done(session, "19", "ducha", "验收通过", TODAY)
    assert set(_errors(env, "办公室", Answer("1", "", None, "progress"))) == {"_form"}  # only co tasks left


def test_it_keeps_both_submissions_and_shows_the_newer(env: Env) -> None:
    first = _submit(env, "信息中心", Answer("13", "完成需求调研", 40, "progress", next_steps="开展招标"))
    second = _submit(env, "信息中心", Answer("13", "完成招标", 70, "difficulty", problems="经费未到位"))
    with session_scope(env.engine) as session:
        line = next(x for x in load_status(session, active_plan(session), TODAY, 7).lines if x.number == "13")
        history = office.task_history(session, "13")
    assert line.latest is not None and line.latest.note == "完成招标" and line.latest.percent == 70
    reports = [h for h in history if isinstance(h, office.HistoryReport)]
    assert [r.report_id for r in reports] == [second[0], first[0]]  # newest first, both kept
    assert reports[0].status == "difficulty" and reports[0].problems == "经费未到位" and reports[0].source == "web"
    assert reports[1].next_steps == "开展招标" and reports[1].cycle == "2021-06"


def test_it_normalises_line_breaks_from_a_browser(env: Env) -> None:
    _submit(env, "信息中心", Answer("13", "第一行\r\n第二行\r\n", 10, "progress"))
    with session_scope(env.engine) as session:
        assert office.task_history(session, "13")[0].note == "第一行\n第二行"  # type: ignore[union-attr]


def test_it_records_a_receipt_and_delivers_it_with_the_next_send(
    env: Env, loaded: Cli, smtp: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", "receipt-secret-123-" + "r" * 20)
    ids = _submit(env, "政策法规处", Answer("14", "已起草<规定>", 60, "progress", next_steps="征求意见"),
                  Answer("15", "持续推进", None, "extension", new_deadline=date(2022, 3, 31), reason="上级未出台"),
                  Answer("7", "", None, "progress"))
    with session_scope(env.engine) as session:
        rows = session.query(OutboxMessage).filter_by(kind="receipt").all()
        assert [(r.recipient_key, r.state) for r in rows] == [
            (f"unit:{env.unit_id('政策法规处')}:receipt:{ids[0]}", "pending")]
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    assert not [m for m in smtp.messages if "【回执】" in str(parsed(m.data)["Subject"])]  # not a reminder
    result = dispatch.deliver_pending(env.engine, env.config, "2021-06", ("receipt",))
    assert len(result.sent) == 1 and not result.failed
    receipt = next(m for m in smtp.messages if "【回执】" in str(parsed(m.data)["Subject"]))
    assert set(receipt.recipients) == {"fagui@example.org", "fagui.backup@example.org"}
    text = text_of(receipt.data)
    assert "已起草<规定>" in text and "下一步措施：征求意见" in text and "申请延期至：2022年3月31日" in text
    assert "修改填报：http://127.0.0.1:8025/r/" in text
    html = str(parsed(receipt.data).get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert "已起草&lt;规定&gt;" in html
    assert "sent 0" in loaded("send", "--cycle", "2021-06", "--kind", "receipts").output  # once only


def test_it_chases_only_the_units_that_have_not_reported(env: Env, loaded: Cli, smtp: RecordingServer) -> None:
    _submit(env, "信息中心", Answer("13", "完成招标", 70, "progress"))
    _submit(env, "政策法规处", Answer("14", "已起草", 60, "progress"), Answer("15", "推进中", None, "progress"))
    loaded("progress", "2", "--unit", "宗教一处", "--note", "推进中", "--date", "2021-06-20")  # 11 still missing
    result = loaded("send", "--cycle", "2021-06", "--kind", "chases")
    assert "已发送 sent 5" in result.output
    chased = {m.recipients[0]: m for m in smtp.messages}
    assert set(chased) == {"dangwei@example.org", "zongjiao1@example.org", "minzu@example.org",
                           "zongjiao2@example.org", "bangongshi@example.org"}
    message = parsed(chased["zongjiao1@example.org"].data)
    assert str(message["Subject"]) == "【催报】2021年6月 重点工作任务进展尚未报送（宗教一处）"
    text = text_of(chased["zongjiao1@example.org"].data)
    # as of when the chase fires: 26 June, a Saturday, shifted to Monday
    assert "【11】" in text and "【2】" not in text and "2021年6月28日" in text
    assert "已发送 sent 0" in loaded("send", "--cycle", "2021-06", "--kind", "chases").output  # one per cycle
