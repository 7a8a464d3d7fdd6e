"""The outbox's claims: one owner per message, a dead owner's claims put back, another host's held to a lease."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from reminders.delivery import outbox
from reminders.delivery.smtp import Envelope, Outcome
from reminders.store import db
from reminders.store.models import OutboxBody, OutboxMessage

CLAIMED_AT = datetime(2021, 6, 20, 1, 0, tzinfo=UTC)
ELSEWHERE = "elsewhere.example:4242:123456"  # a sender on another machine: its liveness cannot be checked from here


def engine_with(db_url: str, *states: tuple[str, str | None], claimed_at: datetime | None = None) -> Engine:
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with Session(engine) as session, session.begin():
        for number, (state, claimed_by) in enumerate(states, start=1):
            session.add(OutboxMessage(
                kind="reminder", cycle="2021-06", recipient_key=f"unit:{number}", recipient_name=f"单位{number}",
                addresses=f"u{number}@example.org", subject="s", message_id=f"<m{number}@example.org>", size=1,
                body=OutboxBody(data=b"x"),
                state=state, attempts=1 if claimed_by else 0, created_at=datetime.now(UTC),
                claimed_at=(claimed_at or datetime.now(UTC)) if claimed_by else None, claimed_by=claimed_by,
            ))
    return engine


def states(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxMessage.state).order_by(OutboxMessage.id)))


def claims(engine: Engine) -> list[tuple[str, str | None, int]]:
    """(state, claimed_by, attempts) of every message, by id."""
    with Session(engine) as session:
        rows = session.execute(select(OutboxMessage.state, OutboxMessage.claimed_by, OutboxMessage.attempts)
                               .order_by(OutboxMessage.id))
        return [(state, by, attempts) for state, by, attempts in rows]


def claim_at(engine: Engine, now: datetime) -> Envelope | None:
    return outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org", now=now)


# A sender in a process of its own: it claims the next message, says which, and holds the claim until stdin closes.
CLAIMER = """
import sys
from reminders.delivery import outbox
from reminders.store import db
envelope = outbox.claim_next(db.make_engine(sys.argv[1]), "2021-06", ("reminder",), "ducha@example.org")
print(envelope.key if envelope else 0, flush=True)
sys.stdin.read()
"""


@contextmanager
def claimer(db_url: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Another sender of this host holding its claim on the next message: the process and the message's id."""
    process = subprocess.Popen([sys.executable, "-c", CLAIMER, db_url], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # '' if it died: the assertion below then fails instead of hanging
        assert line.strip().isdigit(), f"the claiming process said {line!r}"
        yield process, int(line)
    finally:
        process.kill()
        process.wait(timeout=20)


def test_it_puts_back_the_claims_of_a_process_that_is_gone(db_url: str) -> None:
    gone = f"{socket.gethostname()}:999999999:1"
    engine = engine_with(db_url, ("sending", gone), ("sending", outbox.owner()), ("sent", None))
    assert outbox.recover(engine) == 1
    assert states(engine) == ["pending", "sending", "sent"]


def test_it_leaves_another_hosts_claims_to_their_lease(db_url: str) -> None:
    engine = engine_with(db_url, ("sending", ELSEWHERE))
    assert outbox.recover(engine) == 0
    assert outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org") is None


def test_it_takes_another_hosts_claim_only_once_its_15_minute_lease_has_run_out(db_url: str) -> None:
    engine = engine_with(db_url, ("sending", ELSEWHERE), ("pending", None), claimed_at=CLAIMED_AT)
    assert outbox.recover(engine) == 0

    fourteen = claim_at(engine, CLAIMED_AT + timedelta(minutes=14))
    assert fourteen is not None and fourteen.key == 2  # the pending message, not the one still under lease
    assert claim_at(engine, CLAIMED_AT + timedelta(minutes=14)) is None
    assert claims(engine)[0] == ("sending", ELSEWHERE, 1)
    outbox.settle(engine, Outcome(fourteen.key, sent=True))

    sixteen = claim_at(engine, CLAIMED_AT + timedelta(minutes=16))
    assert sixteen is not None and (sixteen.key, sixteen.message_id) == (1, "<m1@example.org>")
    assert claims(engine)[0] == ("sending", outbox.owner(), 2)
    # The new claim starts a lease of its own: 14 minutes into it nobody takes the message again.
    assert claim_at(engine, CLAIMED_AT + timedelta(minutes=30)) is None


def test_it_reads_the_lease_in_utc_whatever_zone_the_clock_is_given_in(db_url: str) -> None:
    from zoneinfo import ZoneInfo

    engine = engine_with(db_url, ("sending", ELSEWHERE), claimed_at=CLAIMED_AT)
    shanghai = ZoneInfo("Asia/Shanghai")  # 8 hours ahead: read as UTC wall time, the lease would seem long gone
    assert claim_at(engine, (CLAIMED_AT + timedelta(minutes=14)).astimezone(shanghai)) is None
    assert claim_at(engine, (CLAIMED_AT + timedelta(minutes=16)).astimezone(shanghai)) is not None


def test_it_puts_back_at_once_the_claim_of_a_killed_process_of_this_host(db_url: str) -> None:
    reused = f"{socket.gethostname()}:{outbox.owner().split(':')[1]}:1"  # this pid, another start: a reused pid
    engine = engine_with(db_url, ("pending", None), ("sending", reused))
    with claimer(db_url) as (process, key):
        assert key == 1
        process.kill()  # kill -9: it never settles or releases its claim
        process.wait(timeout=20)
    killed = claims(engine)[0][1]
    assert killed is not None and killed.startswith(f"{socket.gethostname()}:{process.pid}:")

    assert outbox.recover(engine) == 2  # at once, though both claims are well within their lease
    assert claims(engine) == [("pending", None, 1), ("pending", None, 1)]
    taken = claim_at(engine, datetime.now(UTC))
    assert taken is not None and taken.key == 1


def test_it_never_takes_the_claim_of_a_live_process_of_this_host_within_the_lease(db_url: str) -> None:
    engine = engine_with(db_url, ("pending", None), ("sending", outbox.owner()))  # 2: this very process
    with claimer(db_url) as (process, key):
        assert key == 1
        assert outbox.recover(engine) == 0
        assert claim_at(engine, datetime.now(UTC) + timedelta(minutes=14)) is None
        assert process.poll() is None  # it was alive throughout
        (state, by, attempts), mine = claims(engine)
        assert (state, attempts) == ("sending", 1) and by is not None
        assert by.startswith(f"{socket.gethostname()}:{process.pid}:")
        assert mine == ("sending", outbox.owner(), 1)


def test_it_never_takes_the_claim_of_a_live_process_of_this_host_even_after_the_lease(db_url: str) -> None:
    engine = engine_with(db_url, ("pending", None), ("sending", outbox.owner()))
    with claimer(db_url) as (process, key):
        assert key == 1
        assert claim_at(engine, datetime.now(UTC) + timedelta(hours=1)) is None
        assert process.poll() is None


def test_it_claims_each_message_once_and_settles_only_its_own_claims(db_url: str) -> None:
    engine = engine_with(db_url, ("pending", None), ("pending", None))
    first = outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org")
    second = outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org")
    assert first is not None and second is not None and (first.key, second.key) == (1, 2)
    assert outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org") is None
    with Session(engine) as session, session.begin():  # someone else took the second message over
        session.get(OutboxMessage, second.key).claimed_by = "elsewhere.example:1:1"
    outbox.settle(engine, Outcome(first.key, sent=True))
    outbox.settle(engine, Outcome(second.key, sent=True))
    assert states(engine) == ["sent", "sending"]


def test_one_claim_takes_pending_messages_and_stale_claims_together_in_order(db_url: str) -> None:
    engine = engine_with(db_url, ("sent", None), ("sending", ELSEWHERE), ("pending", None), ("sending", ELSEWHERE),
                         ("pending", None), ("pending", None), claimed_at=CLAIMED_AT)
    taken = outbox.claim(engine, "2021-06", ("reminder",), "ducha@example.org", limit=4,
                         now=CLAIMED_AT + timedelta(minutes=16))
    assert [item.envelope.key for item in taken] == [2, 3, 4, 5]
    rest = outbox.claim(engine, "2021-06", ("reminder",), "ducha@example.org", limit=4,
                        now=CLAIMED_AT + timedelta(minutes=16))
    assert [item.envelope.key for item in rest] == [6]
    assert states(engine) == ["sent", *["sending"] * 5]


def test_a_claim_on_sqlite_looks_up_the_pending_messages_not_the_whole_cycle(tmp_path: Path) -> None:
    """With pending and stale in one OR, SQLite walked every message of the cycle (sent ones too) and read each
    one's state past its body: a claim took 0.15 s once 15,000 of 17,000 had gone. Each way is now answered by the
    index on (cycle, state), and the rows chosen are updated by their ids."""
    engine = engine_with(f"sqlite:///{tmp_path / 'outbox.sqlite3'}", ("sent", None), ("pending", None))
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("UPDATE outbox"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    assert [item.envelope.key for item in outbox.claim(engine, "2021-06", ("reminder",), "ducha@example.org")] == [2]
    [(statement, parameters)] = statements
    with engine.connect() as connection:
        plan = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    reads = [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
    assert reads and all("(rowid=?)" in step or "(cycle=? AND state=?)" in step for step in reads), plan
