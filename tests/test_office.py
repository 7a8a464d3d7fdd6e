"""The office's actions: accounts (no lock-out), 办结, extensions (延期), who has not reported, the chase, exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from reminders.delivery import dispatch
from reminders.store.db import session_scope
from reminders.store.models import Assignment, DeadlineChange, Task, User
from reminders.store.plans import active_plan
from reminders.tracking import accounts, ledger, office
from reminders.tracking.reporting import Answer, FormError, submit
from reminders.tracking.status import load_status
from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.webenv import Env, library, parsed

TODAY = date(2021, 6, 22)
NOW = datetime(2021, 6, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def env(loaded: Cli) -> Env:
    return library(loaded)


def _request_extension(env: Env, new: date = date(2022, 3, 31)) -> int:
    with session_scope(env.engine) as session:
        ids = submit(session, env.config, env.unit_id("信息中心"), "2021-06",
                     [Answer("13", "系统开发中", 50, "extension", new_deadline=new, reason="招标延后")], TODAY)
    return ids[0]


def _deadline(env: Env, number: str) -> date | None:
    with session_scope(env.engine) as session:
        return session.scalar(select(Assignment.deadline).join(Task).where(Task.number == number))


def test_it_stores_only_a_scrypt_hash_and_refuses_short_passwords(env: Env) -> None:
    with session_scope(env.engine) as session:
        with pytest.raises(accounts.AccountError, match="10"):
            accounts.add_user(session, "ducha", "short")
        accounts.add_user(session, "ducha", "correct horse battery")
        stored = session.scalar(select(User.password_hash).where(User.username == "ducha"))
        with pytest.raises(accounts.AccountError, match="exists"):
            accounts.add_user(session, "ducha", "another long password")
    assert stored is not None and stored.startswith("scrypt$16384$8$1$") and "correct" not in stored
    with session_scope(env.engine) as session:
        assert accounts.authenticate(session, "ducha", "correct horse battery") is True
        assert accounts.authenticate(session, "ducha", "wrong password!") is False
        assert accounts.authenticate(session, "nobody", "correct horse battery") is False


def test_it_never_locks_an_account_and_a_new_password_ends_its_sessions(env: Env) -> None:
    with session_scope(env.engine) as session:
        accounts.add_user(session, "ducha", "correct horse battery")
    for attempt in range(8):  # failures slow a name down in the web process; they never lock the account
        with session_scope(env.engine) as session:
            assert accounts.authenticate(session, "ducha", f"guess {attempt}") is False
    with session_scope(env.engine) as session:
        assert accounts.authenticate(session, "ducha", "correct horse battery") is True
        assert accounts.session_epoch(session, "ducha") == 0
        accounts.set_password(session, "ducha", "a brand new password")
    with session_scope(env.engine) as session:
        assert accounts.session_epoch(session, "ducha") == 1
        assert accounts.authenticate(session, "ducha", "correct horse battery") is False
        assert accounts.authenticate(session, "ducha", "a brand new password") is True


def test_it_adds_a_user_from_the_cli_without_the_password_in_the_arguments(
    loaded: Cli, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reminders.cli.app import cli

    result = loaded.runner.invoke(cli, ["--config", str(loaded.config), "admin", "add-user", "ducha"],
                                  input="correct horse battery\ncorrect horse battery\n")
    assert result.exit_code == 0 and "user added: ducha" in result.output
    monkeypatch.setenv("NEW_PW", "another long password")
    assert "user added: li" in loaded("admin", "add-user", "li", "--password-env", "NEW_PW").output
    monkeypatch.setenv("NEW_PW", "short")
    assert "10" in loaded("admin", "add-user", "wang", "--password-env", "NEW_PW", ok=False).output
    with session_scope(env.engine) as session:
        assert accounts.authenticate(session, "li", "another long password")


def test_it_marks_a_task_done_in_the_lead_units_name(env: Env) -> None:
    with session_scope(env.engine) as session:
        report = office.mark_done(session, "12", "ducha", "已验收", TODAY)
        assert (report.status, report.done, report.source, report.unit.name) == ("done", True, "office", "宗教二处")
        line = next(x for x in load_status(session, active_plan(session), TODAY, 7).lines if x.number == "12")
        with pytest.raises(office.OfficeError, match="no task 99"):
            office.mark_done(session, "99", "ducha", "", TODAY)
    assert line.state == "done"


def test_it_approves_an_extension_moving_the_deadline_and_keeping_the_old_one(env: Env, loaded: Cli) -> None:
    report_id = _request_extension(env)
    with session_scope(env.engine) as session:
        [pending] = office.pending_extensions(session)
        assert (pending.report_id, pending.task, pending.unit, pending.deadline, pending.requested_deadline) == (
            report_id, "13", "信息中心", date(2021, 12, 31), date(2022, 3, 31))
    assert "招标延后" in loaded("admin", "extensions").output
    with session_scope(env.engine) as session:
        office.decide_extension(session, report_id, True, "ducha", "同意", NOW)
    assert _deadline(env, "13") == date(2022, 3, 31)
    with session_scope(env.engine) as session:
        assert office.pending_extensions(session) == []
        history = office.task_history(session, "13")
        with pytest.raises(office.OfficeError, match="decided already"):
            office.decide_extension(session, report_id, False, "ducha", "", NOW)
    change = next(h for h in history if isinstance(h, office.HistoryChange))
    assert (change.old_deadline, change.new_deadline, change.decision, change.decided_by) == (
        date(2021, 12, 31), date(2022, 3, 31), "approved", "ducha")
    assert [h.report_id for h in history if isinstance(h, office.HistoryReport)] == [report_id]
    assert "no extension requests pending" in loaded("admin", "extensions").output


def test_it_refuses_an_extension_keeping_the_deadline(env: Env) -> None:
    report_id = _request_extension(env)
    with session_scope(env.engine) as session:
        office.decide_extension(session, report_id, False, "ducha", "理由不充分", NOW)
        rows = session.scalars(select(DeadlineChange)).all()
        assert [(r.decision, r.reason, r.report_id) for r in rows] == [("refused", "理由不充分", report_id)]
        assert office.pending_extensions(session) == []
        with pytest.raises(office.OfficeError, match="not an extension request"):
            office.decide_extension(session, report_id + 1000, True, "ducha", "", NOW)
    assert _deadline(env, "13") == date(2021, 12, 31)


def test_it_forgets_a_request_the_unit_withdrew_in_a_later_report(env: Env) -> None:
    _request_extension(env)
    with session_scope(env.engine) as session:
        submit(session, env.config, env.unit_id("信息中心"), "2021-06",
               [Answer("13", "按期推进", 60, "progress", withdraw=True)], TODAY)
        assert office.pending_extensions(session) == []


def test_it_decides_only_the_latest_request_of_a_task(env: Env) -> None:
    old = _request_extension(env)
    new = _request_extension(env, date(2022, 4, 30))
    now = datetime(2021, 6, 21, 2, 0, tzinfo=UTC)
    with session_scope(env.engine) as session, pytest.raises(office.OfficeError) as refused:
        office.decide_extension(session, old, True, "ducha", "", now)
    assert str(refused.value) == (
        f"延期申请 {old} 已被信息中心2021年6月22日的报送（编号 {new}）取代，不能再审批；请刷新后审批最新的申请 "
        f"(request {old} was superseded by report {new}: only a task's latest request can be decided)")
    assert _deadline(env, "13") == date(2021, 12, 31)
    with session_scope(env.engine) as session:
        office.decide_extension(session, new, True, "ducha", "", now)
    assert _deadline(env, "13") == date(2022, 4, 30)


def test_it_keeps_a_pending_request_a_later_report_does_not_withdraw(env: Env) -> None:
    report_id = _request_extension(env)
    with session_scope(env.engine) as session, pytest.raises(FormError) as refused:
        submit(session, env.config, env.unit_id("信息中心"), "2021-06", [Answer("13", "按期推进", 60, "progress")],
               TODAY)
    assert list(refused.value.errors) == ["13.status"]
    with session_scope(env.engine) as session:
        assert [e.report_id for e in office.pending_extensions(session)] == [report_id]


def test_it_lists_and_chases_the_units_that_have_not_reported(env: Env, smtp: RecordingServer) -> None:
    with session_scope(env.engine) as session:
        submit(session, env.config, env.unit_id("信息中心"), "2021-06", [Answer("13", "推进中", 50, "progress")],
               TODAY)
        missing = dict(office.not_reported(session, env.config, "2021-06", TODAY))
    assert "信息中心" not in missing and missing["宗教一处"] == ("2", "11") and missing["办公室"] == ("19",)
    result = dispatch.send_chase_now(env.engine, env.config, "2021-06", TODAY)
    assert len(result.sent) == len(missing) == 6 and not result.failed
    assert sorted(m.recipients for m in smtp.messages) == [  # every unit but 信息中心, which reported
        ("bangongshi@example.org",), ("dangwei@example.org",), ("fagui@example.org", "fagui.backup@example.org"),
        ("minzu@example.org",), ("zongjiao1@example.org",), ("zongjiao2@example.org",)]
    assert all("【催报】" in str(parsed(m.data)["Subject"]) for m in smtp.messages)
    assert "xinxi@example.org" not in {a for m in smtp.messages for a in m.recipients}
    assert dispatch.send_chase_now(env.engine, env.config, "2021-06", TODAY).sent == []  # one chase per cycle


def test_it_exports_the_ledger_as_xlsx_with_coloured_states(env: Env, loaded: Cli, tmp_path: Path) -> None:
    with session_scope(env.engine) as session:
        office.mark_done(session, "19", "ducha", "", TODAY)
        data = ledger.export_ledger_xlsx(session, env.config, TODAY)
    sheet = load_workbook(io.BytesIO(data))["工作台账"]
    assert str(sheet["A1"].value).startswith("《") and str(sheet["A1"].value).endswith("工作任务推进台账》")
    header = [c.value for c in sheet[3]]
    assert header == ["序号", "部分", "工作任务", "责任领导", "牵头单位", "配合单位", "完成时限", "截止日期", "状态",
                      "逾期天数", "完成进度", "最新进展", "报送日期", "本月是否报送", "督办", "备注"]
    assert sheet[3][0].font.bold and sheet.freeze_panes == "D4"
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=4)}
    assert len(rows) == 19 and set(rows) == set(range(1, 20))  # plain numbers are number cells

    def state(number: int) -> tuple[object, str]:
        cell = rows[number][8]  # the state's word on a pattern of its colour: distinct in black-and-white print
        colour = cell.fill.fgColor if cell.fill.fill_type == "solid" else cell.fill.bgColor
        return cell.value, str(colour.rgb)[-6:]

    assert state(12) == ("已逾期", "F4C7C3")  # red
    assert state(2) == ("正常推进", "B7E1CD")  # green
    assert state(1) == ("长期推进", "C9DAF8")  # blue
    assert state(19) == ("已办结", "D9D9D9")  # grey
    assert state(14) == ("临期", "FCE8B2")  # yellow: due 2021-06-25
    assert len({rows[n][8].fill.fill_type for n in (12, 2, 1, 19, 14)}) == 5  # five patterns, not colour alone
    assert rows[19][13].value == "是" and rows[19][12].value == datetime(2021, 6, 22)
    out = tmp_path / "ledger.xlsx"
    loaded("export", "--format", "xlsx", "--out", str(out), "--as-of", "2021-06-22")
    assert load_workbook(out)["工作台账"].max_row == 22


def test_it_exports_the_ledger_as_csv_with_a_bom(env: Env, loaded: Cli, tmp_path: Path) -> None:
    loaded("progress", "3", "--unit", "民族工作处", "--note", "宣讲12场", "--date", "2021-06-20")
    with session_scope(env.engine) as session:
        text = ledger.export_ledger_csv(session, env.config, TODAY)
    assert text.startswith('\ufeff"序号","部分","工作任务"')
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert len(rows) == 19 and rows[11]["状态"] == "已逾期" and rows[2]["本月是否报送"] == "是"
    assert rows[2]["最新进展"].startswith("民族工作处：")
    out = tmp_path / "ledger.csv"
    loaded("export", "--format", "csv", "--out", str(out), "--as-of", "2021-06-22")
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")
