"""A cycle's messages as plain data: who gets what, built from the plan's status on the cycle's day."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.config_values import cron_trigger
from reminders.mail.context import Office, ReminderContext, mail_line
from reminders.mail.digest import digest_drafts, start_ledger
from reminders.mail.draft import Draft, office_of, unit_link
from reminders.store.models import Leader, Unit
from reminders.store.plans import active_plan
from reminders.tracking.bulletin import chase_steps, task_ids
from reminders.tracking.cycles import CycleError, parse_cycle, report_by
from reminders.tracking.status import PlanStatus, TaskLine, awaiting_report, load_plan, load_status
from reminders.vocabulary import SETTLED, Kind

KINDS: tuple[Kind, ...] = ("reminder", "escalation", "digest")  # what `send --kind all` builds
SCHEDULED: tuple[Kind, ...] = ("reminder", "digest", "chase")  # the daemon's monthly cron jobs
# Built from the plan's status; receipts are recorded when a unit submits. A 督办通知 (escalation) goes out with the
# month's reminders, on their day; a 临期提醒 (headsup) on the day `[schedule] headsup` runs.
BUILT: tuple[Kind, ...] = ("reminder", "digest", "chase", "escalation", "headsup")


def job_kinds(kind: Kind) -> tuple[Kind, ...]:
    """What a scheduled job sends: the reminders' job sends the month's 督办通知 with them."""
    return ("reminder", "escalation") if kind == "reminder" else (kind,)


def fire_time(config: Config, cycle: str, kind: Kind) -> datetime:
    """When the kind's cron fires in the cycle's month (in the schedule's time zone), moved to a working day by
    `[schedule] shift` as the daemon moves it (schedule_shift: the moved day stays in the cycle's month)."""
    from reminders.schedule_shift import shifted_trigger  # lazy: APScheduler is slow to import

    year, month = parse_cycle(cycle)
    schedule = config.schedule
    expression = cron_of(config, kind)
    start = datetime(year, month, 1, tzinfo=schedule.tz)
    fire: datetime | None = cron_trigger(expression, schedule.timezone).get_next_fire_time(None, start)
    if fire is None or (fire.year, fire.month) != (year, month):
        raise CycleError(f"schedule.{_KEYS[kind]} 在 {cycle} 不触发 (the cron never fires in {cycle}); "
                         "请用 --as-of 指定日期")
    return shifted_trigger(config, expression).move(fire)


_KEYS = {"reminder": "reminders", "digest": "digests", "chase": "chase", "escalation": "reminders",
         "headsup": "headsup"}


def cron_of(config: Config, kind: Kind) -> str:
    """The cron expression of a scheduled kind."""
    if kind not in _KEYS:
        raise CycleError(f"“{kind}” 不是定时发送的类别 (not a scheduled kind)")
    return str(getattr(config.schedule, _KEYS[kind]))


def build_drafts(session: Session, config: Config, cycle: str, kinds: tuple[Kind, ...],
                 as_of: date | None = None) -> list[Draft]:
    return list(iter_drafts(session, config, cycle, kinds, as_of))


def iter_drafts(session: Session, config: Config, cycle: str, kinds: tuple[Kind, ...],
                as_of: date | None = None) -> Iterator[Draft]:
    """The cycle's messages one at a time, so a large cycle never holds every message's content at once."""
    plan = active_plan(session)
    office = office_of(config)
    units = session.scalars(select(Unit).order_by(Unit.id)).all()
    leaders = session.scalars(select(Leader).order_by(Leader.id)).all()
    loaded = load_plan(session, plan)
    statuses: dict[date, PlanStatus] = {}  # the reminders and the 督办通知 are built on the same day

    def status_on(day: date) -> PlanStatus:
        if day not in statuses:
            statuses[day] = load_status(session, loaded, day, config.schedule.due_soon_days,
                                        config.ladder.lag_points)
        return statuses[day]

    ledger = None
    if "digest" in kinds:  # begun first: a large plan's workbook is made while the other kinds are built
        ledger = start_ledger(session, config, status_on(as_of or fire_time(config, cycle, "digest").date()),
                              leaders)
    built = [kind for kind in kinds if kind in BUILT]  # receipts are recorded when a unit submits, never built
    days = [as_of or fire_time(config, cycle, kind).date() for kind in built]
    try:
        for index, kind in enumerate(built):
            status = status_on(days[index])
            if days[index] not in days[index + 1:]:
                del statuses[days[index]]  # the last kind of its day: not held while the others are built
            if kind == "digest":
                yield from digest_drafts(session, config, status, loaded, units, leaders, cycle, office, ledger)
            elif kind == "escalation":
                from reminders.mail.escalation import escalation_drafts

                yield from escalation_drafts(session, config, status, units, leaders, cycle, office, loaded)
            elif kind == "headsup":
                from reminders.mail.headsup import headsup_drafts

                yield from headsup_drafts(session, config, status, units, cycle, office)
            else:
                yield from _reminders(config, status, units, cycle, office, chase=kind == "chase")
    finally:
        if ledger is not None:
            ledger.close()  # a run stopped early leaves no process behind


def build_chases(session: Session, config: Config, cycle: str, as_of: date | None = None) -> list[Draft]:
    """催报: one short reminder per unit whose lead tasks (not done) have no report of its own in the cycle; it lists
    only those tasks. `as_of` defaults to when `[schedule] chase` fires in the cycle's month."""
    return build_drafts(session, config, cycle, ("chase",), as_of)


def _reminders(config: Config, status: PlanStatus, units: Sequence[Unit], cycle: str, office: Office,
               chase: bool = False) -> Iterator[Draft]:
    """Each unit's tasks, lead ones and then co-operated ones, each in plan order (the mail shows them as two
    numbered groups); a chase lists only the lead tasks still awaiting the unit's report."""
    owned: dict[int, list[tuple[TaskLine, Literal["lead", "co"]]]] = {}
    if chase:
        for unit_id, waiting in awaiting_report(status).items():
            owned[unit_id] = [(line, "lead") for line in waiting]
    else:
        for line in status.lines:
            if line.state in SETTLED:
                continue
            owned.setdefault(status.lead_unit_ids[line.number], []).append((line, "lead"))
            for unit_id in status.co_unit_ids[line.number]:
                owned.setdefault(unit_id, []).append((line, "co"))
    by = report_by(config, cycle)
    work = config.calendar.work_calendar
    ids = task_ids(status) if chase else {}
    for unit in units:
        tasks = owned.pop(unit.id, None)
        if tasks:
            tasks.sort(key=lambda task: task[1] != "lead")  # stable: plan order within each group
            context = ReminderContext(unit.name, unit.contact, cycle, status.as_of, by, office,
                                      tuple(mail_line(line, work, status.as_of, role) for line, role in tasks),
                                      unit_link(config, unit.id, cycle), config.mail.address_form)
            steps = chase_steps(status, ids, unit.id, [line for line, _role in tasks], cycle) if chase else ()
            yield Draft("chase" if chase else "reminder", cycle, f"unit:{unit.id}", unit.name,
                        tuple(unit.addresses), context, steps=steps)
