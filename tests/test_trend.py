"""The trend of the last cycles (tracking.trend) says what the plan's status said on each cycle's day, and what the
通报's praise counts as on time, from one read of the reports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from reminders.config import Config, load
from reminders.store.db import make_engine
from reminders.store.models import ProgressReport
from reminders.store.plans import active_plan
from reminders.tracking.bulletin import _on_time
from reminders.tracking.status import awaiting_report, load_plan, load_status
from reminders.tracking.trend import load_year, trend
from reminders.vocabulary import SETTLED, TaskState
from tests.conftest import Cli
from tests.test_digest_summary import report


@pytest.fixture
def db(loaded: Cli) -> Iterator[tuple[Session, Config]]:
    report(loaded)
    loaded("progress", "17", "--unit", "机关党委", "--done", "--note", "已办结", "--date", "2021-04-10")
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    with Session(engine) as session:
        yield session, config
    engine.dispose()


def test_the_completion_rate_is_what_status_says_on_each_cycles_day(db: tuple[Session, Config]) -> None:
    session, config = db
    loaded = load_plan(session, active_plan(session))
    points = trend(load_year(session, config, loaded, "2021-06", date(2021, 6, 28)))
    assert [p.cycle for p in points] == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-06"]
    assert [p.day for p in points][-2:] == [date(2021, 5, 31), date(2021, 6, 28)]
    for point in points:
        status = load_status(session, loaded, point.day, config.schedule.due_soon_days)
        assigned = [line for line in status.lines if line.state != TaskState.UNASSIGNED]
        done = [line for line in assigned if line.state == TaskState.DONE]
        assert (point.tasks, point.done) == (len(assigned), len(done)), point.cycle
        overdue = sum(figures.overdue for figures in point.units.values())
        assert overdue == sum(1 for line in status.lines if line.state == TaskState.OVERDUE), point.cycle
    assert [p.completion for p in points] == [0, 0, 0, 5, 0, 5]  # 17 done in April, reopened in May; 19 in June


def test_before_the_report_day_the_units_on_time_are_those_status_finds_reported(db: tuple[Session, Config]) -> None:
    session, config = db
    loaded = load_plan(session, active_plan(session))
    day = date(2021, 6, 21)
    point = trend(load_year(session, config, loaded, "2021-06", day))[-1]
    status = load_status(session, loaded, day, config.schedule.due_soon_days)
    # asked: the lead tasks still open, and those closed by this month's report (办公室's 19, done on the 10th)
    asked = {status.lead_unit_ids[line.number] for line in status.lines
             if line.state not in SETTLED or (line.reported and line.state == TaskState.DONE)}
    on_time = {unit_id for unit_id, figures in point.units.items() if figures.all_on_time}
    assert on_time == asked - set(awaiting_report(status))
    assert (point.units_on_time, point.units_asked) == (2, 7)


def test_a_past_cycles_units_on_time_are_those_the_bulletin_would_praise(db: tuple[Session, Config]) -> None:
    session, config = db
    loaded = load_plan(session, active_plan(session))
    points = trend(load_year(session, config, loaded, "2021-06", date(2021, 6, 28)))
    for point in points:
        on_time = sorted(unit_id for unit_id, figures in point.units.items() if figures.all_on_time)
        assert on_time == _on_time(session, config, [point.cycle], set()), point.cycle
    may = points[-2]
    assert (may.units_on_time, may.units_asked, may.on_time_rate) == (1, 7, 14)  # 信息中心 reported after the 25th


def test_a_scope_counts_only_its_tasks(db: tuple[Session, Config]) -> None:
    session, config = db
    loaded = load_plan(session, active_plan(session))
    june = trend(load_year(session, config, loaded, "2021-06", date(2021, 6, 28)), {"16", "17", "18"})[-1]
    # 陈静's tasks: 17 done in April (so not asked in June; a May report reopened it), 16 and 18 not reported
    assert (june.tasks, june.done, june.completion) == (3, 0, 0)
    assert [(f.asked, f.on_time) for f in june.units.values()] == [(2, 0)]


def test_it_reads_the_reports_in_one_query(db: tuple[Session, Config]) -> None:
    session, config = db
    loaded = load_plan(session, active_plan(session))
    statements: list[str] = []
    bind = session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(bind, "before_cursor_execute", listener)
    try:
        year = load_year(session, config, loaded, "2021-06", date(2021, 6, 28))
        trend(year)
        trend(year, {"1"})
    finally:
        event.remove(bind, "before_cursor_execute", listener)
    assert len(statements) == 1


def test_only_the_reports_status_counts_close_a_task(loaded: Cli) -> None:
    """An amended report, a co-unit's report and the earlier of two reports on one day do not close a task, as
    status judges it; the trend reads only the reports that count."""
    report(loaded)
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    with Session(engine) as session:
        plan = load_plan(session, active_plan(session))
        task = next(task for task in plan.tasks if task.co_units and task.lead_unit)
    loaded("progress", "16", "--unit", "机关党委", "--done", "--note", "已办结", "--date", "2021-06-05")
    with Session(engine) as session:
        amended = session.scalars(select(ProgressReport.id).order_by(ProgressReport.id.desc())).first()
    loaded("progress", "amend", str(amended), "--not-done", "--note", "尚未办结", "--date", "2021-06-04")
    loaded("progress", "18", "--unit", "机关党委", "--done", "--note", "已办结", "--date", "2021-06-07")
    loaded("progress", "18", "--unit", "机关党委", "--percent", "60", "--note", "尚需推进", "--date", "2021-06-07")
    loaded("progress", task.number, "--unit", task.co_units[0], "--done", "--note", "配合部分已完成",
           "--date", "2021-06-08")
    loaded("progress", "17", "--unit", "机关党委", "--done", "--note", "已办结", "--date", "2021-06-09")
    with Session(engine) as session:
        plan = load_plan(session, active_plan(session))
        points = trend(load_year(session, config, plan, "2021-06", date(2021, 6, 28)))
        for point in points:
            status = load_status(session, plan, point.day, config.schedule.due_soon_days)
            done = {line.number for line in status.lines if line.state == TaskState.DONE}
            assert point.done == len(done), point.cycle
        assert done == {"17", "19"}  # 16 amended, 18 reported again the same day, the co-unit's does not close
    engine.dispose()
