"""One fault fails one message: a message that cannot be built is recorded as failed with its reason, the rest of
the cycle is recorded and sent, `send` exits 1 and lists it; requeued, it is built again."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from reminders import daemon
from reminders.delivery import dispatch
from reminders.store.db import session_scope
from reminders.store.models import Leader, OutboxMessage, ProgressReport, Unit
from reminders.tracking.reporting import Answer, submit
from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.webenv import Env, library

LOOK_ALIKE = "boss@ex\u0430mple.org"  # a Cyrillic а in the domain
NON_ASCII_LOCAL = "张三@example.org"
BUILD_FAILED = "邮件无法生成 (message could not be built)"


@pytest.fixture
def env(loaded: Cli) -> Env:
    return library(loaded)


def _set_leader_address(env: Env, name: str, address: str) -> None:
    """What a bad import (fixed separately) could leave in the directory, written straight into the database."""
    with session_scope(env.engine) as session:
        session.execute(update(Leader).where(Leader.name == name).values(emails=address))


def _set_unit_address(env: Env, name: str, address: str) -> None:
    with session_scope(env.engine) as session:
        session.execute(update(Unit).where(Unit.name == name).values(emails=address))


def _rows(env: Env) -> list[OutboxMessage]:
    with session_scope(env.engine) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)
                                    .options(selectinload(OutboxMessage.body))))


def test_it_fails_one_look_alike_address_and_sends_the_rest_of_the_month(
        loaded: Cli, env: Env, smtp: RecordingServer) -> None:
    _set_leader_address(env, "王建国", LOOK_ALIKE)
    result = loaded("send", "--cycle", "2021-06", ok=False)

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "周期 2021-06: 新记录 recorded 12, 已发送 sent 11, 跳过(此前已发) skipped 0, 失败 failed 1" in result.output
    failed_line = (f"  digest 王建国 <{LOOK_ALIKE}>: {BUILD_FAILED}: ValueError: To address must be ASCII "
                   f"(no SMTPUTF8 or IDNA here): '{LOOK_ALIKE}'")
    assert result.output.splitlines()[-2:] == ["失败的邮件 failed messages (1):", failed_line]
    assert len(smtp.messages) == 11  # 7 reminders, 1 督办通知, 3 digests
    assert LOOK_ALIKE not in {address for m in smtp.messages for address in m.recipients}
    rows = {row.recipient_name: row for row in _rows(env)}
    bad = rows["王建国"]
    assert (bad.state, bad.body, bad.size, bad.attempts) == ("failed", None, 0, 0)
    assert bad.last_error == failed_line.split(": ", 1)[1]
    assert sorted(row.state for row in _rows(env)) == ["failed"] + ["sent"] * 11


def test_it_sends_nothing_more_and_never_an_empty_message_when_sent_again(
        loaded: Cli, env: Env, smtp: RecordingServer) -> None:
    _set_leader_address(env, "王建国", LOOK_ALIKE)
    loaded("send", "--cycle", "2021-06", ok=False)
    again = loaded("send", "--cycle", "2021-06")  # failed stays failed until requeued: this run failed nothing

    assert "已发送 sent 0" in again.output and "skipped 11" in again.output
    assert len(smtp.messages) == 11


def test_it_builds_a_requeued_message_again_once_the_address_is_fixed(
        loaded: Cli, env: Env, smtp: RecordingServer) -> None:
    _set_leader_address(env, "王建国", LOOK_ALIKE)
    loaded("send", "--cycle", "2021-06", ok=False)
    failed = json.loads(loaded("outbox", "--state", "failed", "--format", "json").output)
    assert [m["recipient"] for m in failed] == ["王建国"]

    loaded("outbox", "retry", "--all-failed")
    queued = loaded("send", "--cycle", "2021-06", ok=False)  # requeued, still the same bad address
    assert queued.exit_code == 1 and BUILD_FAILED in queued.output
    assert len(smtp.messages) == 11

    _set_leader_address(env, "王建国", "wang.jianguo@example.org")
    loaded("outbox", "retry", "--all-failed")
    fixed = loaded("send", "--cycle", "2021-06")
    assert "新记录 recorded 1, 已发送 sent 1" in fixed.output
    digest = [m for m in smtp.messages if m.recipients == ("wang.jianguo@example.org",)]
    assert len(digest) == 1
    row = next(row for row in _rows(env) if row.recipient_name == "王建国")
    assert (row.state, row.message_id) == ("sent", digest[0].message_id)
    assert row.message_id is not None and not row.message_id.endswith("@invalid>")


def test_it_fails_a_non_ascii_local_part_alone(loaded: Cli, env: Env, smtp: RecordingServer) -> None:
    _set_unit_address(env, "信息中心", NON_ASCII_LOCAL)
    result = loaded("send", "--cycle", "2021-06", "--kind", "reminders", ok=False)

    assert result.exit_code == 1
    assert (f"  reminder 信息中心 <{NON_ASCII_LOCAL}>: {BUILD_FAILED}: NonASCIILocalPartDefect: "
            "local-part contains non-ASCII characters)") in result.output
    assert len(smtp.messages) == 6


def test_it_fails_a_render_error_in_one_units_data_alone(
        loaded: Cli, smtp: RecordingServer, tmp_path: Path) -> None:
    overrides = tmp_path / "my-templates"
    overrides.mkdir()
    # A local template that cannot cope with one unit's name: 办公室 has three characters.
    (overrides / "reminder-subject.txt").write_text("提醒 {{ unit }} {{ 100 // (unit|length - 3) }}", encoding="utf-8")
    loaded.config.write_text(loaded.config.read_text(encoding="utf-8") + '\n[mail]\ntemplates = "my-templates"\n',
                             encoding="utf-8")
    result = loaded("send", "--cycle", "2021-06", "--kind", "reminders", ok=False)

    assert result.exit_code == 1
    assert (f"  reminder 办公室 <bangongshi@example.org>: {BUILD_FAILED}: ZeroDivisionError: "
            "integer division or modulo by zero") in result.output
    assert len(smtp.messages) == 6
    assert "bangongshi@example.org" not in {address for m in smtp.messages for address in m.recipients}


def test_it_stops_before_recording_anything_when_a_template_does_not_load(
        loaded: Cli, env: Env, smtp: RecordingServer, tmp_path: Path) -> None:
    overrides = tmp_path / "my-templates"
    overrides.mkdir()
    (overrides / "digest-body.txt").write_text("{% for x in %}", encoding="utf-8")
    loaded.config.write_text(loaded.config.read_text(encoding="utf-8") + '\n[mail]\ntemplates = "my-templates"\n',
                             encoding="utf-8")
    result = loaded("send", "--cycle", "2021-06", ok=False)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: 邮件模板 {overrides / 'digest-body.txt'} 第 1 行 无法加载，未记录任何邮件 "
                                    "(template digest-body.txt cannot be loaded, nothing recorded): ")
    assert "Traceback" not in result.output
    assert _rows(env) == [] and smtp.messages == []


def test_it_previews_every_message_that_can_be_built_and_names_the_others(
        loaded: Cli, env: Env, tmp_path: Path) -> None:
    _set_leader_address(env, "王建国", LOOK_ALIKE)
    result = loaded("preview", "--cycle", "2021-06", "--out", str(tmp_path / "preview"), ok=False)

    assert result.exit_code == 1
    assert len(sorted((tmp_path / "preview").glob("*.eml"))) == 11
    assert result.output.splitlines()[-2] == "无法生成的邮件 messages that cannot be built (1):"
    assert result.output.splitlines()[-1].startswith(f"  digest 王建国 <{LOOK_ALIKE}>: {BUILD_FAILED}")


def _report_with_an_unbuildable_receipt(env: Env) -> list[int]:
    """信息中心 reports with an address no receipt can be built for; returns the reports' ids."""
    _set_unit_address(env, "信息中心", NON_ASCII_LOCAL)
    unit_id = env.unit_id("信息中心")
    with session_scope(env.engine) as session:
        ids = submit(session, env.config, unit_id, "2021-06", [Answer("13", "平台已上线", 60, "progress")],
                     date(2021, 6, 22))
        dispatch.queue_receipt(session, env.config, unit_id, "2021-06", ids)
    return ids


def test_it_keeps_the_report_when_its_receipt_cannot_be_built(env: Env) -> None:
    ids = _report_with_an_unbuildable_receipt(env)

    with session_scope(env.engine) as session:
        notes = list(session.scalars(select(ProgressReport.note).where(ProgressReport.id.in_(ids))))
    assert notes == ["平台已上线"]
    [receipt] = _rows(env)
    assert (receipt.kind, receipt.state, receipt.body, receipt.size) == ("receipt", "failed", None, 0)
    assert receipt.last_error is not None and receipt.last_error.startswith(BUILD_FAILED)
    result = dispatch.deliver_pending(env.engine, env.config, "2021-06", ("receipt",))
    assert (result.sent, result.failed) == ([], [])  # a message without bytes is never claimed


def test_it_refuses_to_requeue_a_receipt_that_was_never_built(loaded: Cli, env: Env) -> None:
    _report_with_an_unbuildable_receipt(env)
    [receipt] = _rows(env)

    refused = loaded("outbox", "retry", str(receipt.id), ok=False)
    assert f"Error: {receipt.id} 号回执未能生成，无法重发；请单位重新报送" in refused.output
    assert "requeued 0" in loaded("outbox", "retry", "--all-failed").output


def test_it_logs_a_failed_message_in_the_daemon_and_carries_on(
        env: Env, smtp: RecordingServer, caplog: pytest.LogCaptureFixture) -> None:
    _set_leader_address(env, "王建国", LOOK_ALIKE)
    fired = datetime(2021, 6, 26, 9, 0, tzinfo=env.config.schedule.tz)
    with caplog.at_level(logging.INFO, logger="reminders"):
        result = daemon.run_cycle(env.config, env.engine, "digest", fired)

    assert result is not None and len(result.sent) == 3 and len(smtp.messages) == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"job digest: 失败 failed digest 王建国 <{LOOK_ALIKE}>: {BUILD_FAILED}: ValueError: To address "
                      f"must be ASCII (no SMTPUTF8 or IDNA here): '{LOOK_ALIKE}'"]
