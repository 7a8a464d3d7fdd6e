"""Per-address outcomes: a unit with two addresses whose relay puts one off (4xx) or refuses it (5xx) gets the
message at the other at once and at the first alone later, with the same Message-ID, never twice at either; a
message put off waits 1, 2, 4 … minutes and is given up after [delivery] give_up_after; the daemon's retry job
(Finisher) sends every due pending message of any cycle and kind, and waits after finding the relay away."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from reminders import config as config_module
from reminders.config import ConfigError
from reminders.daemon import Finisher
from reminders.delivery import dispatch, outbox
from reminders.delivery.smtp import Outcome
from reminders.store import db
from reminders.store.db import session_scope
from reminders.store.models import OutboxBody, OutboxMessage
from reminders.tracking.reporting import Answer, submit
from tests.conftest import Cli
from tests.smtpserver import RecordingServer, free_port
from tests.webenv import library

MAIN, BACKUP = "fagui@example.org", "fagui.backup@example.org"  # 政策法规处's two addresses in examples/units.csv
SEND = ("send", "--cycle", "2021-06", "--kind", "reminders")
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d \+0800"  # a time as `send` shows it, in [schedule] timezone


def outbox_records(cli: Cli) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(cli("outbox", "--format", "json").output)
    return records


def fagui_record(cli: Cli) -> dict[str, Any]:
    [record] = [r for r in outbox_records(cli) if r["recipient"] == "政策法规处" and r["kind"] == "reminder"]
    return record


def fagui_mails(smtp: RecordingServer) -> list[tuple[tuple[str, ...], str | None]]:
    return [(m.recipients, m.message_id) for m in smtp.messages if MAIN in m.recipients or BACKUP in m.recipients]


def lines_with(output: str, *words: str) -> list[str]:
    return [line for line in output.splitlines() if all(word in line for word in words)]


# 1. 450 for one address of two ----------------------------------------------------------------------------------


def test_an_address_put_off_with_450_gets_the_message_alone_later_with_the_same_message_id(
    loaded: Cli, smtp: RecordingServer
) -> None:
    smtp.refuse_recipient(BACKUP, 450)
    first = loaded(*SEND, ok=False)
    assert first.exit_code == 1, first.output
    assert "已发送 sent 6," in first.output and first.output.count("失败 failed 0, 待重试 will retry 1\n") == 1
    assert "失败的邮件" not in first.output
    [later] = lines_with(first.output, "待重试 later", "政策法规处")
    assert f"已送达 delivered to {MAIN}" in later
    assert re.search(rf"{re.escape(BACKUP)}: 450 4\.2\.1 .*；({WHEN}) 起重试 \(tried again from \1\)", later), later
    assert lines_with(first.output, "暂未送达、将自动重试的邮件")
    assert not lines_with(first.output, "失败", "政策法规处")
    [(recipients, message_id)] = fagui_mails(smtp)
    assert recipients == (MAIN,)

    record = fagui_record(loaded)
    assert record["state"] == "pending" and record["next_attempt_at"] is not None
    assert datetime.fromisoformat(record["next_attempt_at"]) > datetime.now(UTC)
    by_address = {d["address"]: d for d in record["deliveries"]}
    assert by_address[MAIN] == {"address": MAIN, "state": "sent", "answer": None}
    assert by_address[BACKUP]["state"] == "pending" and by_address[BACKUP]["answer"].startswith("450 4.2.1")
    table = lines_with(loaded("outbox", "--cycle", "2021-06").output, "政策法规处")[0]
    assert re.search(rf"  {re.escape(MAIN)} 已发送; {re.escape(BACKUP)} 待发送  下次重试 next try {WHEN}  "
                     r"450 4\.2\.1", table), table

    smtp.accept_recipient(BACKUP)
    second = loaded(*SEND)  # `send` tries every pending message of its cycle at once, whatever its wait
    assert "已发送 sent 1," in second.output and "待重试 will retry 0" in second.output
    assert fagui_mails(smtp) == [((MAIN,), message_id), ((BACKUP,), message_id)]
    record = fagui_record(loaded)
    assert record["state"] == "sent" and record["next_attempt_at"] is None
    assert [d["state"] for d in record["deliveries"]] == ["sent", "sent"]

    received = len(smtp.messages)
    third = loaded(*SEND)
    assert "已发送 sent 0," in third.output and "跳过(此前已发) skipped 7" in third.output
    assert len(smtp.messages) == received


# 2. 550 for one address of two ----------------------------------------------------------------------------------


def test_an_address_refused_with_550_fails_and_a_retry_sends_to_it_alone(loaded: Cli, smtp: RecordingServer) -> None:
    smtp.refuse_recipient(BACKUP, 550)
    first = loaded(*SEND, ok=False)
    assert first.exit_code == 1, first.output
    assert "已发送 sent 6," in first.output and "失败 failed 1, 待重试 will retry 0\n" in first.output
    [failed] = lines_with(first.output, "失败   failed", "政策法规处")
    assert f"已送达 delivered to {MAIN}" in failed and f"{BACKUP}: 550 5.1.1" in failed
    assert not lines_with(first.output, "待重试 later")
    assert first.output.splitlines()[-2:] == ["失败的邮件 failed messages (1):", f"  {failed.split('   ', 2)[2]}"]
    assert lines_with(first.output, "失败的邮件不会自动重发", "reminders outbox retry --all-failed, then reminders")
    [(recipients, message_id)] = fagui_mails(smtp)
    assert recipients == (MAIN,)
    record = fagui_record(loaded)
    assert record["state"] == "failed" and record["next_attempt_at"] is None
    assert {d["address"]: (d["state"], (d["answer"] or "")[:9]) for d in record["deliveries"]} == {
        MAIN: ("sent", ""), BACKUP: ("failed", "550 5.1.1")}

    nothing = loaded(*SEND)  # a failed message stays failed until requeued
    assert "已发送 sent 0," in nothing.output and fagui_mails(smtp) == [((MAIN,), message_id)]

    assert loaded("outbox", "retry", str(record["id"])).output.startswith(f"已重新排队 requeued 1: {record['id']}")
    smtp.accept_recipient(BACKUP)
    second = loaded(*SEND)
    assert "已发送 sent 1," in second.output
    assert fagui_mails(smtp) == [((MAIN,), message_id), ((BACKUP,), message_id)]
    assert [d["state"] for d in fagui_record(loaded)["deliveries"]] == ["sent", "sent"]
    loaded(*SEND)
    assert fagui_mails(smtp) == [((MAIN,), message_id), ((BACKUP,), message_id)]  # never twice to either


def test_an_address_refused_before_the_other_is_accepted_leaves_the_message_failed_and_retryable(
    loaded: Cli, smtp: RecordingServer
) -> None:
    """550 for one address and 450 for the other: once the second takes it, the first's refusal still stands."""
    smtp.refuse_recipient(MAIN, 550)
    smtp.refuse_recipient(BACKUP, 450)
    assert loaded(*SEND, ok=False).exit_code == 1
    assert fagui_mails(smtp) == [] and fagui_record(loaded)["state"] == "pending"

    smtp.accept_recipient(BACKUP)
    second = loaded(*SEND, ok=False)
    assert second.exit_code == 1, second.output
    assert "已发送 sent 0," in second.output and "失败 failed 1, 待重试 will retry 0" in second.output
    [failed] = lines_with(second.output, "失败   failed", "政策法规处")
    assert f"{MAIN}: 550 5.1.1" in failed, failed
    [(recipients, message_id)] = fagui_mails(smtp)
    assert recipients == (BACKUP,)
    record = fagui_record(loaded)
    assert record["state"] == "failed" and record["last_error"].startswith(f"{MAIN}: 550 5.1.1")
    assert {d["address"]: d["state"] for d in record["deliveries"]} == {MAIN: "failed", BACKUP: "sent"}

    loaded("outbox", "retry", str(record["id"]))  # a sent message could not be requeued: this one can
    smtp.accept_recipient(MAIN)
    loaded(*SEND)
    assert fagui_mails(smtp) == [((BACKUP,), message_id), ((MAIN,), message_id)]
    assert fagui_record(loaded)["state"] == "sent"


# 3. Backoff and give-up -----------------------------------------------------------------------------------------

T0 = datetime(2021, 6, 20, 1, 0, tzinfo=UTC)
PUT_OFF = "450 4.2.1 <fagui.backup@example.org>: mailbox temporarily unavailable"


def one_message(db_url: str) -> Engine:
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with Session(engine) as session, session.begin():
        session.add(OutboxMessage(
            kind="reminder", cycle="2021-06", recipient_key="unit:5", recipient_name="政策法规处",
            addresses=f"{MAIN};{BACKUP}", subject="s", message_id="<m5@example.org>", size=1,
            body=OutboxBody(data=b"x"), state="pending", attempts=0, created_at=T0))
    return engine


def due_at(engine: Engine, now: datetime) -> list[outbox.Claimed]:
    return outbox.claim(engine, None, None, "ducha@example.org", limit=5, now=now, due=True)


def put_off(engine: Engine, claimed: outbox.Claimed, now: datetime,
            give_up_after: timedelta = timedelta(days=3)) -> outbox.Settled:
    """The relay took the first address and put the backup off."""
    outcome = Outcome(claimed.envelope.key, sent=True, error=f"{BACKUP}: {PUT_OFF}", deferred=((BACKUP, PUT_OFF),))
    return outbox.settle(engine, outcome, claimed, give_up_after, now=now)


def row(engine: Engine) -> OutboxMessage:
    with Session(engine, expire_on_commit=False) as session:
        found = session.scalars(select(OutboxMessage)).one()
        session.expunge(found)
        return found


def test_a_message_put_off_waits_one_two_then_four_minutes(db_url: str) -> None:
    engine = one_message(db_url)
    [claimed] = due_at(engine, T0)
    assert claimed.envelope.recipients == (MAIN, BACKUP)
    settled = put_off(engine, claimed, T0)
    assert (settled.state, settled.next_attempt_at) == ("pending", T0 + timedelta(minutes=1))

    now = T0
    for wait in (1, 2, 4):
        assert due_at(engine, now + timedelta(minutes=wait) - timedelta(seconds=1)) == [], f"due before {wait} min"
        now += timedelta(minutes=wait)
        [claimed] = due_at(engine, now)
        assert claimed.envelope.recipients == (BACKUP,)  # the address that has it is never tried again
        assert claimed.envelope.message_id == "<m5@example.org>"
        settled = put_off(engine, claimed, now)
        assert settled.state == "pending"
    assert settled.next_attempt_at == now + timedelta(minutes=8)
    stored = row(engine)
    assert stored.attempts == 4 and stored.state == "pending"
    # `send` (no `due`) takes a message that is waiting: the office may send at once.
    assert len(outbox.claim(engine, "2021-06", ("reminder",), "ducha@example.org", now=now)) == 1


def test_it_waits_at_most_an_hour(db_url: str) -> None:
    engine = one_message(db_url)
    now, waits = T0, []
    for _ in range(9):
        [claimed] = due_at(engine, now)
        settled = put_off(engine, claimed, now)
        assert settled.next_attempt_at is not None
        waits.append(settled.next_attempt_at - now)
        now = settled.next_attempt_at
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60, 60)]


def test_a_message_failing_longer_than_give_up_after_fails_with_the_last_answer(db_url: str, tmp_path: Path) -> None:
    give_up = config_module.load(_empty_config(tmp_path)).delivery.give_up
    assert give_up == timedelta(days=3)  # the default
    engine = one_message(db_url)
    [claimed] = due_at(engine, T0)
    put_off(engine, claimed, T0, give_up)

    almost = T0 + give_up - timedelta(minutes=1)
    [claimed] = due_at(engine, almost)
    assert put_off(engine, claimed, almost, give_up).state == "pending"  # failing for less than 3 days

    later = T0 + give_up + timedelta(minutes=1)
    [claimed] = due_at(engine, later)
    settled = put_off(engine, claimed, later, give_up)
    assert settled.state == "failed" and settled.next_attempt_at is None
    assert settled.error is not None
    assert settled.error.startswith(f"{BACKUP}: {PUT_OFF}")
    assert "自 2021-06-20 01:00 UTC 起未能送达，已放弃" in settled.error and "given up" in settled.error
    stored = row(engine)
    assert (stored.state, stored.last_error, stored.next_attempt_at) == ("failed", settled.error, None)
    deliveries = cast("list[dict[str, str]]", outbox.as_json(stored)["deliveries"])
    shown = {d["address"]: d for d in deliveries}
    assert shown[MAIN]["state"] == "sent" and shown[BACKUP]["state"] == "failed"
    assert due_at(engine, later + timedelta(days=1)) == []  # failed: never tried again by itself

    with Session(engine) as session, session.begin():
        assert outbox.requeue(session, None) == [stored.id]
    [claimed] = due_at(engine, later)  # requeued: due at once, for the backup alone, its clock started again
    assert claimed.envelope.recipients == (BACKUP,)
    assert put_off(engine, claimed, later, give_up).state == "pending"


def _empty_config(tmp_path: Path) -> str:
    path = tmp_path / "reminders.toml"
    path.write_text("", encoding="utf-8")
    return str(path)


# 4. The daemon's retry job --------------------------------------------------------------------------------------


def _config_at(cli: Cli, port: int, name: str) -> Path:
    """The same config and database, the relay on another port."""
    text = cli.config.read_text(encoding="utf-8")
    path = cli.config.with_name(name)
    path.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text), encoding="utf-8")
    return path


def _submit(cli: Cli, unit: str, cycle: str, today: date, *answers: Answer) -> None:
    """What the web app does with a submission: the reports, and their receipt in the same transaction."""
    env = library(cli)
    config = replace(env.config, web=replace(env.config.web, receipt_window="0s"))  # due at once
    with session_scope(env.engine) as session:
        ids = submit(session, config, env.unit_id(unit), cycle, answers, today)
        dispatch.queue_receipt(session, config, env.unit_id(unit), cycle, ids)


def _states(engine: Engine) -> dict[tuple[str, str, str], str]:
    with Session(engine) as session:
        rows = session.execute(select(OutboxMessage.cycle, OutboxMessage.kind, OutboxMessage.recipient_name,
                                      OutboxMessage.state))
        return {(cycle, kind, name): state for cycle, kind, name, state in rows}


def _waiting(engine: Engine) -> dict[str, datetime | None]:
    """The next attempt of each of the cycle's reminders, by unit."""
    with Session(engine) as session:
        rows = session.execute(select(OutboxMessage.recipient_name, OutboxMessage.next_attempt_at)
                               .where(OutboxMessage.kind == "reminder"))
        return {name: moment for name, moment in rows}


def test_the_retry_job_finishes_a_run_the_relay_was_away_for_and_the_receipts_of_another_cycle(
    loaded: Cli, smtp: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    down = Cli(_config_at(loaded, free_port(), "down.toml"))
    halted = down(*SEND, ok=False)
    assert halted.exit_code == 1, halted.output
    assert "发送已提前停止 the run stopped early" in halted.output and "relay unreachable" in halted.output
    [left] = lines_with(halted.output, "待发送 7 封")
    assert left.endswith(f"reminders --config {down.config} send --cycle 2021-06 --kind reminders")
    env = library(loaded)
    # The message that met the breaker counts one failed try and waits its minute; the others were never tried.
    [met] = [name for name, moment in _waiting(env.engine).items() if moment is not None]
    _submit(loaded, "信息中心", "2021-05", date(2021, 6, 3), Answer("13", "完成招标", 70, "progress"))
    assert set(_states(env.engine).values()) == {"pending"} and len(_states(env.engine)) == 8
    assert smtp.messages == []

    smtp.refuse_recipient(BACKUP, 450)  # the relay is back, and puts one address off
    caplog.set_level("INFO", logger="reminders")
    result = Finisher(env.config, env.engine)()
    assert result is not None and not result.halted and result.failed == []
    assert len(result.sent) == 6 and len(result.pending) == 1  # 5 reminders and the receipt; 政策法规处 put off
    states = _states(env.engine)
    assert states.pop(("2021-06", "reminder", "政策法规处")) == "pending"
    assert states.pop(("2021-06", "reminder", met)) == "pending"  # not due yet
    assert states.pop(("2021-05", "receipt", "信息中心")) == "sent"
    assert set(states.values()) == {"sent"} and len(states) == 5
    assert [m.recipients for m in smtp.messages if MAIN in m.recipients] == [(MAIN,)]
    assert len(smtp.messages) == 7
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "reminders.daemon"]
    [pending] = [w for w in warnings if "待重试" in w]
    assert pending.startswith("job retry: 待重试 will retry 2021-06 reminder 政策法规处")
    assert pending.endswith("立即重试 (to retry now): reminders send --cycle 2021-06 --kind reminders")

    smtp.accept_recipient(BACKUP)
    again = Finisher(env.config, env.engine)()  # neither waiting message is due yet
    assert again is not None and again.sent == [] and len(smtp.messages) == 7
    loaded(*SEND)  # the command it named sends them now
    assert len(smtp.messages) == 9 and [m.recipients for m in smtp.messages if BACKUP in m.recipients] == [(BACKUP,)]
    assert set(_states(env.engine).values()) == {"sent"}
    assert Finisher(env.config, env.engine)() is not None and len(smtp.messages) == 9  # nothing twice


def test_the_retry_job_names_the_kind_of_a_pending_receipt(
    loaded: Cli, smtp: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A receipt left pending is sent by `send --kind receipts`: `--kind all` (reminders and digests) never would."""
    env = library(loaded)
    _submit(loaded, "政策法规处", "2021-05", date(2021, 6, 3), Answer("14", "已起草", 60, "progress"),
            Answer("15", "推进中", None, "progress"))
    smtp.refuse_recipient(BACKUP, 450)
    caplog.set_level("INFO", logger="reminders")
    result = Finisher(env.config, env.engine)()
    assert result is not None and len(result.pending) == 1
    [pending] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "待重试" in r.getMessage()]
    assert pending.endswith("reminders send --cycle 2021-05 --kind receipts"), pending

    smtp.accept_recipient(BACKUP)
    loaded("send", "--cycle", "2021-05", "--kind", "receipts")  # the command it named sends it
    assert [m.recipients for m in smtp.messages] == [(MAIN,), (BACKUP,)]


def test_after_finding_the_relay_away_the_retry_job_waits_before_trying_it_again(
    loaded: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    env = library(loaded)
    relay = RecordingServer()  # its port is bound but nobody listens yet: connections are refused
    started = False
    try:
        later = Cli(_config_at(loaded, relay.port, "later.toml"))
        assert later(*SEND, ok=False).exit_code == 1  # the relay away: all 7 stay pending
        finisher = Finisher(config_module.load(str(later.config)), env.engine)
        caplog.set_level("INFO", logger="reminders")
        first = finisher()  # the 6 never tried are due: it tries, and finds the relay still away
        assert first is not None and first.halted and first.sent == []
        [waits] = [r.getMessage() for r in caplog.records if "守护进程" in r.getMessage()]
        assert re.search(rf"；守护进程 {WHEN} 起重试 \(the daemon tries again from then\)$", waits), waits
        relay.start()
        started = True
        assert finisher() is None  # called again at once: it does not try
        assert relay.connections == 0 and relay.messages == []
        assert set(_states(env.engine).values()) == {"pending"}
    finally:
        if started:
            relay.stop()


# 6. Config ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "says"), [
    ("retry_every", "5s", "delivery.retry_every"),
    ("give_up_after", "x", "delivery.give_up_after"),
    ("retry_every", "soon", "delivery.retry_every"),
])
def test_it_refuses_a_wrong_retry_setting_naming_the_key(tmp_path: Path, key: str, value: str, says: str) -> None:
    path = tmp_path / "reminders.toml"
    path.write_text(f'[delivery]\n{key} = "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        config_module.load(str(path))
    assert says in str(error.value) and str(path) in str(error.value)


def test_it_reads_the_retry_settings(tmp_path: Path) -> None:
    path = tmp_path / "reminders.toml"
    path.write_text('[delivery]\nretry_every = "10s"\ngive_up_after = "12h"\n', encoding="utf-8")
    loaded = config_module.load(str(path))
    assert (loaded.delivery.retry_interval, loaded.delivery.give_up) == (timedelta(seconds=10), timedelta(hours=12))
