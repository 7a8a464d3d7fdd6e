"""Status reads each task and unit's newest report from latest_reports, which a trigger on progress_reports keeps
(migration 0012). Whatever reports, amendments, ties and dates are written, in whichever order, status shows what
ranking every report shows; a day before some of the reports is answered by the ranking; a database upgraded with
reports has its rows; on PostgreSQL two transactions reporting on one task and unit at once leave the newer one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session

from reminders import config as config_module
from reminders.store import db
from reminders.store.models import Assignment, CoUnit, LatestReport, Plan, ProgressReport, Task
from reminders.store.plans import active_plan
from reminders.tracking import status
from reminders.tracking.cycles import cycle_of
from reminders.vocabulary import TaskState
from tests.conftest import Cli

DAYS = [date(2021, 6, d) for d in (3, 10, 10, 18, 25)]  # a tie on the 10th
RECORDED = [datetime(2021, 6, 26, 9, minute, tzinfo=UTC) for minute in (0, 0, 5)]  # and one on when it was recorded


def _engine(run: Cli) -> Engine:
    return db.make_engine(config_module.load(str(run.config)).database_url)


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Session]:
    """A session whose writes, and the trigger's, are undone at the end: one database serves every example."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield Session(bind=connection, autoflush=False)
        finally:
            transaction.rollback()


def _owners(session: Session) -> list[tuple[int, list[int]]]:
    """Three tasks of the example plan with co-units, and their units, the lead one first."""
    tasks = []
    for task_id, assignment_id, lead in session.execute(
            select(Task.id, Assignment.id, Assignment.lead_unit_id).join(Assignment)
            .where(Assignment.id.in_(select(CoUnit.assignment_id))).order_by(Task.position).limit(3)):
        co = list(session.scalars(select(CoUnit.unit_id).where(CoUnit.assignment_id == assignment_id)))
        tasks.append((task_id, [lead, *co[:2]]))
    return tasks


def _write(session: Session, task_id: int, unit_id: int, day: date, recorded: datetime, percent: int | None,
           done: bool, supersedes: int | None = None) -> ProgressReport:
    report = ProgressReport(task_id=task_id, unit_id=unit_id, cycle=cycle_of(day), reported_on=day, percent=percent,
                            done=done, note=f"{day} 第{percent}", created_at=recorded, supersedes_id=supersedes)
    session.add(report)
    session.flush()
    return report


# (task index, unit index, day index, recorded index, percent, done, amends an earlier report: its index or None)
WRITES = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, len(DAYS) - 1),
                            st.integers(0, len(RECORDED) - 1), st.none() | st.integers(0, 100), st.booleans(),
                            st.none() | st.integers(0, 30)), max_size=30)


@pytest.fixture
def engine(loaded: Cli) -> Engine:
    return _engine(loaded)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=WRITES, unassigned=st.booleans())
def test_status_from_the_kept_rows_is_what_ranking_every_report_gives(engine: Engine, writes: list,
                                                                     unassigned: bool) -> None:
    with rolled_back(engine) as session:
        plan = active_plan(session)
        owners = _owners(session)
        if unassigned:  # the third task's assignment withdrawn: none of its units leads, its reports all co-units'
            session.delete(session.scalars(select(Assignment).where(Assignment.task_id == owners[2][0])).one())
            session.flush()
        written: list[ProgressReport] = []
        amended: set[int] = set()
        for task, unit, day, recorded, percent, done, amends in writes:
            old = written[amends] if amends is not None and amends < len(written) else None
            if old is not None and old.id not in amended:  # an amendment: the same task and unit, a new version
                amended.add(old.id)
                written.append(_write(session, old.task_id, old.unit_id, DAYS[day], RECORDED[recorded], percent,
                                      done, old.id))
            else:
                task_id, units = owners[task]
                written.append(_write(session, task_id, units[unit % len(units)], DAYS[day], RECORDED[recorded],
                                      percent, done))
        for as_of in (*DAYS, DAYS[-1] + timedelta(days=40)):
            ranked = status._ranked_progress(session, plan, as_of)
            kept = status._from_latest_reports(session, plan, as_of)
            assert kept is not None or as_of < DAYS[-1]  # the kept rows answer every day after the last report
            assert kept in (None, ranked) and status._progress(session, plan, as_of) == ranked


def test_a_day_before_some_reports_shows_the_report_of_that_day(engine: Engine) -> None:
    with rolled_back(engine) as session:
        plan = active_plan(session)
        task_id, (lead, *_) = _owners(session)[0]
        _write(session, task_id, lead, date(2021, 6, 10), RECORDED[0], 40, False)
        _write(session, task_id, lead, date(2021, 6, 20), RECORDED[1], 70, True)
        number = session.get(Task, task_id).number  # type: ignore[union-attr]
        lines = {day: next(line for line in status.load_status(session, plan, day, 7).lines if line.number == number)
                 for day in (date(2021, 6, 15), date(2021, 6, 21))}
    before, after = lines[date(2021, 6, 15)], lines[date(2021, 6, 21)]
    assert before.latest is not None and (before.latest.reported_on, before.percent) == (date(2021, 6, 10), 40)
    assert before.state is not TaskState.DONE
    assert after.latest is not None and (after.latest.reported_on, after.percent) == (date(2021, 6, 20), 70)
    assert after.state is TaskState.DONE


def test_a_database_upgraded_with_reports_has_their_rows(loaded: Cli) -> None:
    engine = _engine(loaded)
    with Session(engine) as session:
        owners = _owners(session)
        first = None
        for number, (task_id, units) in enumerate(owners):
            for unit_id in units:
                report = _write(session, task_id, unit_id, DAYS[number], RECORDED[0], 10 * number, False)
                first = first or report
        assert first is not None
        _write(session, first.task_id, first.unit_id, DAYS[0], RECORDED[2], None, True, first.id)  # amended
        session.commit()
        plan_id = active_plan(session).id
    command.downgrade(db._alembic_config(engine), "0011")
    assert "latest_reports" not in inspect(engine).get_table_names()
    assert db.upgrade(engine) == ("0011", db.HEAD)
    with Session(engine) as session:
        plan = session.get(Plan, plan_id)
        assert plan is not None
        rows = session.scalars(select(LatestReport)).all()
        assert len(rows) == sum(len(units) for _, units in owners)
        assert status._from_latest_reports(session, plan, DAYS[-1]) == \
            status._ranked_progress(session, plan, DAYS[-1])
        # and the trigger is back: a report written after the upgrade shows
        task_id, (lead, *_) = owners[0]
        newest = _write(session, task_id, lead, DAYS[-1], RECORDED[0], 95, False)
        assert session.scalar(select(LatestReport.report_id).where(
            LatestReport.task_id == task_id, LatestReport.unit_id == lead)) == newest.id


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_transactions_reporting_on_one_pair_at_once_leave_the_newer_report(engine: Engine) -> None:
    """The first transaction writes the newer report and holds it uncommitted; the second, writing an older one,
    waits for it, then ranks with it: the newer stands. Ranked in one statement, the second would have kept its
    own (it could not see the first's report), the last to commit winning."""
    with Session(engine) as session:
        task_id, (lead, *_) = _owners(session)[0]
    older_id: list[int] = []

    def second() -> None:
        with Session(engine) as other:
            older_id.append(_write(other, task_id, lead, date(2021, 6, 5), RECORDED[1], 20, False).id)
            other.commit()

    with Session(engine) as first:
        newer_id = _write(first, task_id, lead, date(2021, 6, 20), RECORDED[0], 80, False).id
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        waited = thread.is_alive()
        first.commit()
    thread.join(timeout=30)
    assert waited, "the second transaction should have waited for the first one's row"
    assert not thread.is_alive() and older_id
    with Session(engine) as session:
        kept = session.execute(select(LatestReport.report_id, LatestReport.percent).where(
            LatestReport.task_id == task_id, LatestReport.unit_id == lead)).one()
    assert tuple(kept) == (newer_id, 80)
