"""Two senders on one SQLite file: recording a cycle is one long transaction (most of a minute at 10,000 units), and
a second sender started beside the first waits for it rather than stopping after SQLite's usual busy timeout."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from reminders.config import load
from reminders.delivery import dispatch
from reminders.mail.compose import KINDS
from reminders.store import db
from reminders.store.models import OutboxMessage
from tests.conftest import Cli

HELD = 1.5  # seconds the other sender's write transaction lasts
USUAL = 300  # ms: the usual busy timeout, shortened so the test is quick


def _hold_the_write_lock(path: str, seconds: float) -> threading.Thread:
    """Another process's write transaction (BEGIN IMMEDIATE), ended after `seconds`."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    def end() -> None:
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=end)
    thread.start()
    return thread


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_sender_waits_for_the_first_ones_recording(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", USUAL)
    config = load(str(loaded.config))
    engine = db.make_engine(config.database_url)
    path = make_url(config.database_url).database
    assert path is not None

    other = _hold_the_write_lock(path, HELD)
    start = time.monotonic()
    recorded = dispatch.prepare_cycle(engine, config, "2021-06", KINDS)
    waited = time.monotonic() - start
    other.join()
    assert recorded > 0 and waited >= HELD - 0.1  # it waited for the other writer, far past the usual 0.3 s

    # Back in the pool, the connection waits only the usual time again: a lock held longer is an error at once.
    other = _hold_the_write_lock(path, HELD)
    start = time.monotonic()
    with pytest.raises(OperationalError, match="locked"), engine.begin() as connection:
        connection.execute(delete(OutboxMessage).where(OutboxMessage.id < 0))
    assert time.monotonic() - start < HELD - 0.5
    other.join()
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == USUAL
