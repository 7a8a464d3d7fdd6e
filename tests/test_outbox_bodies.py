"""Each recorded message's bytes live in outbox_bodies (migration 0011): a database upgraded with messages waiting
sends the same bytes, keeps its unbuilt rows unclaimable and has the models' schema; a body left behind by rows
deleted with SQLite's foreign keys off does not stop the next recording; a message whose body was deleted fails
alone, saying so, and is built again."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from reminders.delivery import dispatch, outbox
from reminders.mail.message import OutgoingMessage
from reminders.store import db
from reminders.store.db import session_scope
from reminders.store.models import Base, OutboxBody, OutboxMessage
from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.webenv import Env, library


@pytest.fixture
def env(loaded: Cli) -> Env:
    return library(loaded)


MESSAGE = b"Subject: x\r\n\r\n" + bytes(range(256)) * 400  # every byte value, over SQLite's page size


def _at_0010(db_url: str) -> None:
    engine = db.make_engine(db_url)
    command.upgrade(db._alembic_config(engine), "0010")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for number, (data, state) in enumerate([(MESSAGE, "pending"), (b"", "failed"), (b"sent", "sent")], 1):
            connection.execute(text(
                "INSERT INTO outbox (kind, cycle, recipient_key, recipient_name, addresses, subject, message_id, data,"
                " state, attempts, created_at, deliveries) VALUES ('reminder', '2021-06', :key, '单位', "
                "'u@example.org', 's', :mid, :data, :state, 0, :now, '')"),
                {"key": f"unit:{number}", "mid": f"<m{number}@example.org>", "data": data, "state": state, "now": now})
    engine.dispose()


def test_an_outbox_upgraded_with_messages_waiting_sends_the_same_bytes(db_url: str) -> None:
    _at_0010(db_url)
    engine = db.make_engine(db_url)
    assert db.upgrade(engine) == ("0010", db.HEAD)
    with engine.connect() as connection:
        sizes = connection.execute(text("SELECT recipient_key, size FROM outbox ORDER BY id")).all()
        bodies = connection.execute(text("SELECT outbox_id, data FROM outbox_bodies ORDER BY outbox_id")).all()
    assert [tuple(row) for row in sizes] == [("unit:1", len(MESSAGE)), ("unit:2", 0), ("unit:3", 4)]
    assert [(key, bytes(data)) for key, data in bodies] == [(1, MESSAGE), (3, b"sent")]
    claimed = outbox.claim(engine, "2021-06", ("reminder",), "ducha@example.org", limit=5)
    assert [(c.envelope.key, c.envelope.data) for c in claimed] == [(1, MESSAGE)]  # the unbuilt one is not claimed


def test_an_upgraded_outbox_has_the_models_schema_and_a_deleted_message_takes_its_body(db_url: str) -> None:
    _at_0010(db_url)
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox WHERE id = 1"))
        assert connection.execute(text("SELECT outbox_id FROM outbox_bodies")).scalars().all() == [3]


def test_a_body_left_by_a_delete_without_foreign_keys_is_replaced_by_the_next_message(tmp_path: Path) -> None:
    """An admin's `sqlite3` shell has foreign keys off: `DELETE FROM outbox` there leaves the bodies, and SQLite
    gives the deleted ids to the next messages recorded."""
    path = tmp_path / "r.sqlite3"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)

    def message(number: int, data: bytes) -> OutgoingMessage:
        return OutgoingMessage("reminder", "2021-06", f"unit:{number}", "单位", ("u@example.org",), "s",
                               f"<m{number}.{data.decode()}@example.org>", data)

    with Session(engine) as session, session.begin():
        assert outbox.record(session, [message(1, b"old")]) == 1
    with sqlite3.connect(path) as shell:
        shell.execute("DELETE FROM outbox")
        assert shell.execute("SELECT count(*) FROM outbox_bodies").fetchone() == (1,)
    with Session(engine) as session, session.begin():
        assert outbox.record(session, [message(1, b"new")]) == 1
    (claimed,) = outbox.claim(engine, "2021-06", ("reminder",), "ducha@example.org")
    assert claimed.envelope.data == b"new"


def test_a_message_whose_bytes_were_deleted_by_hand_fails_alone_and_is_built_again(
        loaded: Cli, env: Env, smtp: RecordingServer) -> None:
    """Its outbox_bodies row deleted (an admin's shell), a message cannot go: it fails with a reason that says so
    and what to do, the rest of the month goes, and requeued it is built again and sent once."""
    recorded = dispatch.prepare_cycle(env.engine, env.config, "2021-06", ("reminder",), as_of=date(2021, 6, 20))
    with session_scope(env.engine) as session:
        lost = session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)).first()
        session.execute(delete(OutboxBody).where(OutboxBody.outbox_id == lost))

    first = loaded("send", "--cycle", "2021-06", "--kind", "reminders", "--as-of", "2021-06-20", ok=False)
    assert first.exit_code == 1 and "Traceback" not in first.output
    assert f"已发送 sent {recorded - 1}, 跳过(此前已发) skipped 0, 失败 failed 1" in first.output
    assert f"reminder 办公室 <bangongshi@example.org>: {outbox.LOST_BODY}" in first.output
    assert "reminders outbox retry --all-failed" in first.output
    assert len(smtp.messages) == recorded - 1
    assert ("bangongshi@example.org",) not in {m.recipients for m in smtp.messages}

    assert "requeued 1" in loaded("outbox", "retry", "--all-failed").output
    again = loaded("send", "--cycle", "2021-06", "--kind", "reminders", "--as-of", "2021-06-20")
    assert "已发送 sent 1," in again.output
    assert len(smtp.messages) == recorded and smtp.messages[-1].recipients == ("bangongshi@example.org",)
