"""The outbox's claims: one owner per message, and a dead owner's claims put back."""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.delivery import outbox
from reminders.delivery.smtp import Outcome
from reminders.store import db
from reminders.store.models import OutboxMessage


def engine_with(db_url: str, *states: tuple[str, str | None]):
    engine = db.make_engine(db_url)
    db.upgrade(engine)
    with Session(engine) as session, session.begin():
        for number, (state, claimed_by) in enumerate(states, start=1):
            session.add(OutboxMessage(
                kind="reminder", cycle="2021-06", recipient_key=f"unit:{number}", recipient_name=f"单位{number}",
                addresses=f"u{number}@example.org", subject="s", message_id=f"<m{number}@example.org>", data=b"x",
                state=state, attempts=1 if claimed_by else 0, created_at=datetime.now(UTC),
                claimed_at=datetime.now(UTC) if claimed_by else None, claimed_by=claimed_by,
            ))
    return engine


def states(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxMessage.state).order_by(OutboxMessage.id)))


def test_it_puts_back_the_claims_of_a_process_that_is_gone(db_url: str) -> None:
    import socket

    gone = f"{socket.gethostname()}:999999999:1"
    engine = engine_with(db_url, ("sending", gone), ("sending", outbox.owner()), ("sent", None))
    assert outbox.recover(engine) == 1
    assert states(engine) == ["pending", "sending", "sent"]


def test_it_leaves_another_hosts_claims_to_their_lease(db_url: str) -> None:
    engine = engine_with(db_url, ("sending", "elsewhere.example:1:1"))
    assert outbox.recover(engine) == 0
    assert outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org") is None


def test_it_claims_each_message_once_and_settles_only_its_own_claims(db_url: str) -> None:
    engine = engine_with(db_url, ("pending", None), ("pending", None))
    first = outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org")
    second = outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org")
    assert first and second and first.key != second.key
    assert outbox.claim_next(engine, "2021-06", ("reminder",), "ducha@example.org") is None
    with Session(engine) as session, session.begin():  # someone else took the second message over
        session.get(OutboxMessage, second.key).claimed_by = "elsewhere.example:1:1"
    outbox.settle(engine, Outcome(first.key, sent=True))
    outbox.settle(engine, Outcome(second.key, sent=True))
    assert states(engine) == ["sent", "sending"]
