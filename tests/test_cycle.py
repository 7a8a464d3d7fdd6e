"""Progress, status and the monthly send, end to end through the CLI against a real SMTP server."""

import csv
import io
import json
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.store.db import make_engine
from reminders.store.models import OutboxMessage
from tests.conftest import EXAMPLES, Cli
from tests.smtpserver import RecordingServer


def status(run: Cli, as_of: str = "2021-06-20") -> dict[str, dict]:
    return {t["number"]: t for t in json.loads(run("status", "--as-of", as_of, "--format", "json").output)}


def outbox(run: Cli) -> list[OutboxMessage]:
    import tomllib

    url = tomllib.loads(run.config.read_text(encoding="utf-8"))["database"]["url"]
    with Session(make_engine(url)) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def parsed(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def test_it_records_progress_history_and_marks_the_month_reported(loaded: Cli) -> None:
    loaded("progress", "3", "--unit", "民族工作处", "--percent", "40", "--note", "完成宣讲12场", "--date", "2021-05-28")
    loaded("progress", "3", "--unit", "民族工作处", "--percent", "60", "--note", "完成宣讲20场", "--date", "2021-06-18")
    task = status(loaded)["3"]
    assert task["reported"] is True
    assert task["latest_progress"]["percent"] == 60 and task["latest_progress"]["note"] == "完成宣讲20场"
    assert status(loaded, "2021-07-01")["3"]["reported"] is False  # a new month wants a new report
    assert status(loaded, "2021-05-31")["3"]["latest_progress"]["percent"] == 40  # the history is kept


def test_it_stops_reminding_a_done_task(loaded: Cli, smtp: RecordingServer) -> None:
    loaded("progress", "19", "--unit", "办公室", "--done", "--note", "已办结", "--date", "2021-06-10")
    assert status(loaded)["19"]["state"] == "done"
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    office = [m for m in smtp.messages if "bangongshi@example.org" in m.recipients]
    assert len(office) == 1
    body = parsed(office[0].data).get_body(("plain",)).get_content()
    assert "【1】" in body and "【19】" not in body


def test_it_refuses_progress_from_a_unit_that_does_not_own_the_task(loaded: Cli) -> None:
    result = loaded("progress", "3", "--unit", "信息中心", "--note", "x", ok=False)
    assert "does not own this task" in result.output
    assert "no task 42" in loaded("progress", "42", "--unit", "办公室", "--note", "x", ok=False).output
    assert "unknown unit" in loaded("progress", "3", "--unit", "火星处", "--note", "x", ok=False).output


def test_it_lists_status_as_table_and_csv(loaded: Cli) -> None:
    table = loaded("status", "--as-of", "2021-06-20").output
    assert "逾期" in table and "宗教二处" in table and "支持宗教团体加强自身建设" in table
    rows = list(csv.DictReader(io.StringIO(loaded("status", "--as-of", "2021-06-20", "--format", "csv").output)))
    assert len(rows) == 19 and rows[11]["state"] == "overdue" and rows[0]["deadline"] == ""


def test_it_sends_one_reminder_per_unit_and_one_digest_per_leader(loaded: Cli, smtp: RecordingServer) -> None:
    result = loaded("send", "--cycle", "2021-06")
    assert "已发送 sent 12" in result.output and "失败 failed 0" in result.output
    assert len(smtp.messages) == 12
    assert smtp.connections == 2  # [smtp] connections = 2 (the default), each reused for the next message
    by_address = {m.recipients[0]: parsed(m.data) for m in smtp.messages}
    reminder = by_address["minzu@example.org"]
    assert reminder["Subject"] == "【工作提醒】2021年6月 重点工作任务进展报送（民族工作处）"
    assert reminder["Reply-To"] == "ducha@example.org"
    assert reminder.get_content_type() == "multipart/alternative"
    text = reminder.get_body(("plain",)).get_content()
    assert "请于2021年6月25日前报送进展情况" in text
    assert "2021年6月21日" in text  # the reminders cron fires on Sunday 20 June: [schedule] shift moves it to Monday
    digest = by_address["wang.jianguo@example.org"]  # scope 全部: the whole plan
    digest_text = digest.get_body(("plain",)).get_content()
    assert "逾期 28 天" in digest_text  # task 12, due 2021-05-31; digests fire Saturday 26 June, shifted to Monday 28
    assert "机关党委" in digest_text and "宗教二处" in digest_text
    own = parsed(next(m.data for m in smtp.messages if m.recipients[0] == "chen.jing@example.org"))
    assert "支持宗教团体加强自身建设" not in own.get_body(("plain",)).get_content()  # not her task
    assert [m.recipients for m in smtp.messages if "zhang.hua@example.org" in m.recipients] == [
        ("zhang.hua@example.org", "zhang.hua.office@example.org")]  # one digest, to both of his addresses


def test_it_sends_nothing_twice_when_a_cycle_is_sent_again(loaded: Cli, smtp: RecordingServer) -> None:
    loaded("send", "--cycle", "2021-06")
    again = loaded("send", "--cycle", "2021-06")
    assert "已发送 sent 0" in again.output and "skipped 12" in again.output
    assert len(smtp.messages) == 12
    assert len({m.message_id for m in smtp.messages}) == 12


def test_it_records_every_message_before_sending_and_retries_a_failure_next_time(
    loaded: Cli, smtp: RecordingServer
) -> None:
    # Both attempts ([smtp] retries = 2) of each of the 4 digests fail; one connection, so no retry of the next
    # run can race another message for a fault left over.
    text = loaded.config.read_text(encoding="utf-8").replace("retries = 2", "retries = 2\nconnections = 1")
    loaded.config.write_text(text, encoding="utf-8")
    smtp.fail_next(451, "4.3.0 try again later", count=8, stage="data")
    first = loaded("send", "--cycle", "2021-06", "--kind", "digests", ok=False)
    assert first.exit_code == 1
    assert "451 4.3.0 try again later" in first.output
    rows = outbox(loaded)
    assert [(r.state, r.last_error) for r in rows] == [("pending", "451 4.3.0 try again later")] * 4
    second = loaded("send", "--cycle", "2021-06", "--kind", "digests")
    assert "失败 failed 0" in second.output
    assert all(r.state == "sent" for r in outbox(loaded))
    assert sorted(m.recipients[0] for m in smtp.messages) == sorted(
        ["wang.jianguo@example.org", "li.ming@example.org", "zhang.hua@example.org", "chen.jing@example.org"])
    ids = [r.message_id for r in outbox(loaded)]
    assert {m.message_id for m in smtp.messages} == set(ids)  # a retry reuses the recorded Message-ID


def test_it_fails_one_refused_recipient_and_sends_the_others(loaded: Cli, smtp: RecordingServer) -> None:
    smtp.refuse_recipient("xinxi@example.org", 550)
    result = loaded("send", "--cycle", "2021-06", "--kind", "reminders", ok=False)
    assert result.exit_code == 1
    assert "信息中心" in result.output and "550" in result.output
    assert len(smtp.messages) == 6
    states = {r.recipient_name: r.state for r in outbox(loaded)}
    assert states["信息中心"] == "failed" and states["办公室"] == "sent"


def test_it_lists_without_recording_on_dry_run(loaded: Cli, smtp: RecordingServer) -> None:
    result = loaded("send", "--cycle", "2021-06", "--dry-run")
    assert "共 12 封" in result.output
    assert outbox(loaded) == [] and smtp.messages == []


def test_it_writes_a_preview_of_every_message(loaded: Cli, smtp: RecordingServer, tmp_path: Path) -> None:
    loaded("preview", "--cycle", "2021-06", "--out", str(tmp_path / "preview"))
    files = sorted((tmp_path / "preview").glob("*.eml"))
    assert len(files) == 12
    message = parsed(files[0].read_bytes())
    assert message["Message-ID"] and message["Date"]
    assert outbox(loaded) == [] and smtp.messages == []


def test_it_delivers_into_a_maildir(loaded: Cli, tmp_path: Path) -> None:
    text = loaded.config.read_text(encoding="utf-8").replace('transport = "smtp"', 'transport = "maildir"')
    loaded.config.write_text(text, encoding="utf-8")
    loaded("send", "--cycle", "2021-06", "--as-of", "2021-06-21")
    mails = list((tmp_path / "maildir" / "new").iterdir())
    assert len(mails) == 12
    subjects = {parsed(p.read_bytes())["Subject"] for p in mails}
    assert "【工作提醒】2021年6月 重点工作任务进展报送（办公室）" in subjects


def test_it_refuses_a_malformed_cycle(loaded: Cli) -> None:
    assert "YYYY-MM" in loaded("send", "--cycle", "2021-13", ok=False).output


def test_it_sends_in_english_and_takes_template_overrides_from_the_config(
    loaded: Cli, smtp: RecordingServer, tmp_path: Path
) -> None:
    overrides = tmp_path / "my-templates"
    overrides.mkdir()
    (overrides / "digest-subject.txt").write_text("Supervision digest {{ cycle }} for {{ leader }}", encoding="utf-8")
    text = loaded.config.read_text(encoding="utf-8")
    loaded.config.write_text(text + '\n[mail]\nlanguage = "en"\ntemplates = "my-templates"\n', encoding="utf-8")
    loaded("send", "--cycle", "2021-06")
    subjects = {m.recipients[0]: parsed(m.data)["Subject"] for m in smtp.messages}
    assert subjects["li.ming@example.org"] == "Supervision digest 2021-06 for 李明"
    reminder = parsed(next(m.data for m in smtp.messages if m.recipients[0] == "minzu@example.org"))
    assert "Reminder" in reminder["Subject"] and "民族工作处" in reminder["Subject"]
    assert "Overdue" in parsed(next(m.data for m in smtp.messages if m.recipients[0] == "li.ming@example.org")
                               ).get_body(("plain",)).get_content()


def test_it_shows_the_outbox_and_requeues_failed_messages(loaded: Cli, smtp: RecordingServer) -> None:
    smtp.refuse_recipient("xinxi@example.org", 550)
    loaded("send", "--cycle", "2021-06", "--kind", "reminders", ok=False)
    failed = json.loads(loaded("outbox", "--state", "failed", "--format", "json").output)
    assert [(m["recipient"], m["state"]) for m in failed] == [("信息中心", "failed")]
    assert "550" in failed[0]["last_error"] and failed[0]["addresses"] == ["xinxi@example.org"]
    table = loaded("outbox", "--cycle", "2021-06").output
    assert "办公室" in table and "已发送 6" in table and "失败 1" in table

    loaded("send", "--cycle", "2021-06", "--kind", "reminders")  # a failed message waits for a retry
    assert len([m for m in smtp.messages if "xinxi@example.org" in m.recipients]) == 0  # failed stays failed

    sent_id = json.loads(loaded("outbox", "--state", "sent", "--format", "json").output)[0]["id"]
    assert "already sent" in loaded("outbox", "retry", str(sent_id), ok=False).output
    assert "no outbox message 999" in loaded("outbox", "retry", "999", ok=False).output
    assert "give IDs or --all-failed" in loaded("outbox", "retry", ok=False).output

    smtp.accept_recipient("xinxi@example.org")
    assert f"requeued 1: {failed[0]['id']}" in loaded("outbox", "retry", "--all-failed").output
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    assert len([m for m in smtp.messages if "xinxi@example.org" in m.recipients]) == 1
    assert len(smtp.messages) == 7


def test_it_renders_markup_in_notes_and_names_inert(loaded: Cli, smtp: RecordingServer) -> None:
    hostile = "<script>alert(1)</script>{{ 7*7 }}{% raw %}"
    loaded("progress", "3", "--unit", "民族工作处", "--note", hostile, "--date", "2021-06-18")
    loaded("send", "--cycle", "2021-06", "--kind", "reminders")
    message = parsed(next(m.data for m in smtp.messages if m.recipients[0] == "minzu@example.org"))
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert hostile in text and "49" not in text.replace("2021", "")


def test_it_sends_only_to_addresses_in_the_directory(loaded: Cli, smtp: RecordingServer) -> None:
    loaded("send", "--cycle", "2021-06")
    directory = set()
    for name in ("units.csv", "leaders.csv"):
        for row in csv.DictReader(io.StringIO((EXAMPLES / name).read_text(encoding="utf-8"))):
            directory |= set(row["邮箱"].split(";"))
    received = {address for m in smtp.messages for address in m.recipients}
    assert received == directory  # every unit and leader, and nobody else
    headers = {address.addr_spec for m in smtp.messages for address in parsed(m.data)["To"].addresses}
    assert headers == received


def test_it_stops_on_authentication_failure_marking_nothing_sent(
    loaded: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingServer(username="ducha", password="right-password") as server:
        text = re.sub(r"port = \d+", f"port = {server.port}", loaded.config.read_text(encoding="utf-8"))
        text = text.replace('security = "none"', 'security = "none"\nusername = "ducha"\npassword_env = "TEST_PW"')
        loaded.config.write_text(text, encoding="utf-8")
        monkeypatch.setenv("TEST_PW", "wrong-s3cret")
        result = loaded("-v", "send", "--cycle", "2021-06", ok=False)
        assert result.exit_code == 1
        assert result.output.splitlines()[-1] == (
            f"Error: authentication as 'ducha' failed at SMTP server 127.0.0.1:{server.port}: "
            "535 5.7.8 Authentication credentials invalid")
        assert "wrong-s3cret" not in result.output
        assert server.messages == []
        assert {r.state for r in outbox(loaded)} == {"pending"}
        monkeypatch.setenv("TEST_PW", "right-password")
        loaded("send", "--cycle", "2021-06")
        assert len(server.messages) == 12
