"""The daemon: APScheduler 3 cron jobs that run the monthly cycle; the outbox, not the scheduler, knows what was sent.

APScheduler's defaults would drop a job more than 1 s late and only log a job's exception; here every job has a grace
of `misfire_grace`, coalesces, runs one at a time, and a listener logs failures and misses. Jobs live in memory, so at
start the daemon looks at the last fire time of each job: within the grace it catches the cycle up (sending is
idempotent, so a cycle already sent sends nothing); beyond it, a cycle with nothing in the outbox is logged as missed
with the command that sends it by hand.

Each monthly job's trigger moves a fire that falls on a non-working day to a working day of its month
(`[schedule] shift`, schedule_shift.ShiftedTrigger); the run keeps the cycle of the cron fire it came from. The daily
临期提醒 job (`[schedule] headsup`) is not moved: on a non-working day it sends nothing, and the next working day's
run sends the milestones reached meanwhile.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.config_values import cron_trigger
from reminders.delivery import dispatch
from reminders.delivery.outbox import FIRST_WAIT, LONGEST_WAIT
from reminders.errors import ReminderError
from reminders.mail.compose import SCHEDULED, cron_of, job_kinds
from reminders.schedule_shift import ShiftedTrigger, describe, shifted_trigger
from reminders.store.db import masked
from reminders.store.models import OutboxMessage
from reminders.store.plans import NoPlanError, active_plan
from reminders.tracking.cycles import OutsidePlanYear, check_cycle_in_plan, cycle_of
from reminders.vocabulary import KIND_LABELS, Kind, shown_time

log = logging.getLogger("reminders.daemon")
HEADSUP: Kind = "headsup"  # the daily job's kind and id


@dataclass(frozen=True)
class Retry:
    """How a job waits out a database it cannot reach: `attempts` tries, `delay` seconds doubling in between."""

    attempts: int = 6
    delay: float = 30.0


def run_cycle(config: Config, engine: Engine, kind: Kind, fired_at: datetime | None = None,
              retry: Retry = Retry(), stop: threading.Event | None = None,
              sending: threading.Lock | None = None) -> dispatch.SendResult | None:
    """One job's run: `fired_at` is the (shifted) fire time it stands for; None for now, as a scheduled job runs."""
    when = (fired_at or datetime.now(config.schedule.tz)).astimezone(config.schedule.tz)
    if kind == HEADSUP and not config.calendar.work_calendar.is_workday(when.date()):
        log.info("job headsup: %s 不是工作日，不发送临期提醒，下一个工作日补发 (not a working day: nothing sent; "
                 "the next working day sends the milestones reached)", when.date().isoformat())
        return None
    with sending or threading.Lock():  # the retry job waits while a monthly run sends
        return _run_cycle(config, engine, kind, when, run_cycle_of(config, kind, when), retry, stop)


def run_cycle_of(config: Config, kind: Kind, when: datetime) -> str:
    """The cycle a run at `when` sends: the day's own for the heads-up, else the month of the cron fire that was
    moved to `when` (the month of `when` itself when no moved fire is at `when`, e.g. a run started late)."""
    if kind == HEADSUP:
        return cycle_of(when.date())
    trigger = shifted_trigger(config, _expression(config, kind))
    found = trigger.last_fire(when, config.schedule.grace)
    origin = found[0] if found else when
    return f"{origin.year:04d}-{origin.month:02d}"


def _run_cycle(config: Config, engine: Engine, kind: Kind, when: datetime, cycle: str, retry: Retry,
               stop: threading.Event | None) -> dispatch.SendResult | None:
    stop = stop or threading.Event()
    for attempt in range(1, retry.attempts + 1):
        log.info("job %s: cycle %s as of %s", kind, cycle, when.date().isoformat())
        try:
            if not _in_plan_year(engine, kind, cycle):
                return None
            result = dispatch.send_cycle(engine, config, cycle, job_kinds(kind), when.date(), echo=log.info)
        except DBAPIError as exc:
            if not exc.connection_invalidated and not _unreachable(exc):
                raise
            wait = retry.delay * 2 ** (attempt - 1)
            log.error("job %s: 数据库 %s 无法连接，第 %d/%d 次 (database unreachable, attempt %d/%d): %s", kind,
                      masked(config.database_url), attempt, retry.attempts, attempt, retry.attempts,
                      str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
            if attempt == retry.attempts or stop.wait(wait):
                log.error("job %s: 放弃本次发送 %s，请手动发送 (giving up on cycle %s; send it by hand): %s", kind,
                          cycle, cycle, by_hand(kind, cycle, when))
                return None
            continue
        # "will retry" last: the line reads as it did before messages could be put off, for whoever watches for it.
        log.info("job %s: cycle %s recorded %d, sent %d, skipped %d, failed %d, will retry %d", kind, cycle,
                 result.recorded, len(result.sent), result.skipped, len(result.failed), len(result.pending))
        if result.halted:  # the daemon's retry job sends the rest once the relay is back
            log.warning("job %s: %s；守护进程稍后自动重试，或立即运行 (the daemon retries; or now): %s", kind,
                        result.halted, by_hand(kind, cycle, when))
        report(kind, result, cycle, f"{kind}s")  # one message's fault never stops the job: each is logged
        return result
    return None


def by_hand(kind: Kind, cycle: str, when: datetime) -> str:
    """The command that sends a job's run by hand: a month's kind by its cycle, the heads-ups by their day."""
    if kind == HEADSUP:
        return f"reminders send --kind headsups --as-of {when.date().isoformat()}"
    commands = [f"reminders send --cycle {cycle} --kind {job}s" for job in job_kinds(kind)]  # reminders: notices too
    return "; ".join(commands)


_told: set[tuple[str, bool]] = set()  # (plan title, ended): said once per process, not at every job
_told_lock = threading.Lock()


def _in_plan_year(engine: Engine, kind: Kind, cycle: str) -> bool:
    """Whether the active plan's year covers the cycle; if not, nothing is sent and the office is told once (the
    plan of an ended year would otherwise be mailed every month with ever more days overdue)."""
    with Session(engine) as session:
        try:
            check_cycle_in_plan(active_plan(session), cycle)
        except NoPlanError:
            return True  # send_cycle says so in its own words
        except OutsidePlanYear as exc:
            plan = active_plan(session)
            with _told_lock:
                first = (plan.title, exc.ended) not in _told
                _told.add((plan.title, exc.ended))
            if first:
                log.warning("%s；守护进程不发送该计划年度以外的邮件 (the daemon sends nothing outside the plan's year)",
                            exc)
            else:
                log.info("job %s: cycle %s outside the plan's year %s, nothing sent", kind, cycle, plan.year)
            return False
    return True


class Finisher:
    """The job that finishes what runs left behind, every `[delivery] retry_every`: every pending message of any
    cycle and kind whose next attempt has come — put off by the relay, left by a stopped run, a unit's receipt.

    It never runs beside a monthly run of the same daemon (`sending`): one sender per daemon keeps the relay's
    connection and rate limits. When a run finds the relay away, the job waits before trying it again (one minute,
    doubling, at most an hour), so a relay that is down costs one short connection attempt now and then.
    """

    def __init__(self, config: Config, engine: Engine, sending: threading.Lock | None = None,
                 stop: threading.Event | None = None, kinds: Sequence[Kind] | None = None) -> None:
        self.config, self.engine = config, engine
        self.kinds = kinds  # None: every kind; `serve`'s sender: receipts only
        self.sending = sending or threading.Lock()
        self.stop = stop
        self.resume_at: datetime | None = None  # the relay was away: not before this
        self.wait = FIRST_WAIT

    def __call__(self) -> dispatch.SendResult | None:
        now = datetime.now(UTC)
        if self.resume_at is not None and now < self.resume_at:
            return None
        if not self.sending.acquire(blocking=False):
            return None  # a monthly run is sending; what it leaves is due at the next turn
        try:
            result = dispatch.deliver_due(self.engine, self.config, echo=log.info, stop=self.stop, kinds=self.kinds)
        except DBAPIError as exc:
            log.error("待发送邮件未能发送，数据库出错 (pending messages not sent, the database failed): %s",
                      exc.orig or exc)
            return None
        except ReminderError as exc:  # a configuration fault (TLS mode, password): said at every turn until fixed
            self._pause(now)
            log.error("待发送邮件未能发送 (pending messages not sent): %s；%s 起重试 (retrying from then)", exc,
                      shown_time(self.resume_at or now, self.config.schedule.tz))
            return None
        finally:
            self.sending.release()
        if result.halted:
            self._pause(now)
            log.warning("%s；守护进程 %s 起重试 (the daemon tries again from then)", result.halted,
                        shown_time(self.resume_at or now, self.config.schedule.tz))
        else:
            self.resume_at, self.wait = None, FIRST_WAIT
        report("retry", result)
        return result

    def _pause(self, now: datetime) -> None:
        self.resume_at = now + self.wait
        self.wait = min(self.wait * 2, LONGEST_WAIT)


def report(job: str, result: dispatch.SendResult, cycle: str | None = None, kind: str = "") -> None:
    """Log a run's messages that did not all go out, as warnings naming the command that sends them now."""
    for label in result.pending:
        # A run of every cycle and kind (the retry job) labels each message "cycle kind name <addresses>": the
        # command names that message's own kind, since `--kind all` would send the month's other mails (its digests
        # before their day) and never a receipt or a chase.
        where, own = (cycle, kind) if cycle else (label.split(" ", 2)[0], f"{label.split(' ', 2)[1]}s")
        # Heads-ups are sent by their day: today's run sends its own and every pending one of this month.
        command = (by_hand(HEADSUP, where, datetime.now(UTC)) if own == "headsups"
                   else f"reminders send --cycle {where} --kind {own}")
        log.warning("job %s: 待重试 will retry %s；立即重试 (to retry now): %s", job, label, command)
    for label in result.failed:  # an error, as it always was: nothing sends a failed message by itself
        log.error("job %s: 失败 failed %s", job, label)
    if result.failed:
        log.warning("job %s: 失败的邮件修正后重发 (once fixed, requeue the failed messages): "
                    "reminders outbox retry --all-failed", job)
    if result.sent or result.pending or result.failed:
        log.info("job %s: sent %d, will retry %d, failed %d", job, len(result.sent), len(result.pending),
                 len(result.failed))


def _unreachable(exc: DBAPIError) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


def last_fires(config: Config, now: datetime) -> list[tuple[Kind, datetime, str]]:
    """The latest (shifted) fire time of each monthly kind before `now`, looking back up to a year, with the cycle
    of the cron fire it was moved from."""
    found = []
    for kind in SCHEDULED:
        last = shifted_trigger(config, _expression(config, kind)).last_fire(now)
        if last is not None:
            fire, moved = last
            found.append((kind, moved, f"{fire.year:04d}-{fire.month:02d}"))
    return found


def last_fire_times(config: Config, now: datetime) -> list[tuple[Kind, datetime]]:
    """The latest fire time of each kind before `now` (moved to a working day), looking back up to a year."""
    return [(kind, moved) for kind, moved, _cycle in last_fires(config, now)]


def missed_fire_times(config: Config, now: datetime) -> list[tuple[Kind, datetime]]:
    """The fire times a restart at `now` catches up: the latest of each kind, if within the grace."""
    return [(kind, fire) for kind, fire in last_fire_times(config, now) if now - fire <= config.schedule.grace]


def _expression(config: Config, kind: Kind) -> str:
    return cron_of(config, kind)


def job_triggers(config: Config) -> dict[Kind, Any]:
    """Each job's trigger: the monthly kinds' moved to working days, the daily heads-up's plain cron."""
    triggers: dict[Kind, Any] = {kind: shifted_trigger(config, _expression(config, kind)) for kind in SCHEDULED}
    triggers[HEADSUP] = cron_trigger(config.schedule.headsup, config.schedule.timezone)
    return triggers


def _log_shifts(config: Config, triggers: dict[Kind, Any], now: datetime) -> None:
    """Say which of the next monthly runs move off a non-working day, and where to."""
    for kind, trigger in triggers.items():
        if not isinstance(trigger, ShiftedTrigger):
            continue
        for fire, moved in trigger.fires(now):
            if moved >= now:
                cycle = f"{fire.year:04d}-{fire.month:02d}"
                if said := describe(trigger, fire, f"{cycle} 的{KIND_LABELS['zh_CN'][kind]}",
                                    f"{KIND_LABELS['en'][kind]}s of {cycle}"):
                    log.info("%s", said)
                break


def _recorded(engine: Engine, kind: Kind, cycle: str) -> int:
    with Session(engine) as session:
        query = select(func.count()).where(OutboxMessage.kind == kind, OutboxMessage.cycle == cycle)
        return session.scalar(query) or 0


def build_scheduler(config: Config, engine: Engine, stop: threading.Event | None = None,
                    sending: threading.Lock | None = None) -> Any:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=config.schedule.timezone,
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": int(config.schedule.grace.total_seconds())},
    )
    sending = sending or threading.Lock()
    triggers = job_triggers(config)
    for kind, trigger in triggers.items():
        scheduler.add_job(run_cycle, trigger, args=(config, engine, kind), kwargs={"stop": stop, "sending": sending},
                          id=kind, name="daily heads-ups" if kind == HEADSUP else f"monthly {kind}s",
                          replace_existing=True)
    scheduler.add_job(Finisher(config, engine, sending, stop), "interval",
                      seconds=int(config.delivery.retry_interval.total_seconds()), id="retry",
                      name="pending messages", replace_existing=True)

    def listen(event: Any) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("job %s failed: %r", event.job_id, event.exception, exc_info=event.exception)
        elif event.code == EVENT_JOB_MISSED:
            missed = event.scheduled_run_time
            if event.job_id == HEADSUP:
                log.error("job headsup missed its run at %s; send it by hand: reminders send --kind headsups "
                          "--as-of %s", missed, missed.date().isoformat())
            else:
                log.error("job %s missed its run at %s; send it by hand: reminders send --cycle %s", event.job_id,
                          missed, run_cycle_of(config, event.job_id, missed) if event.job_id in triggers
                          else missed.strftime("%Y-%m"))
        # Not scheduler.get_job(): shutdown(wait=True) holds the job store lock while it waits for this very thread.
        if event.job_id in triggers:
            now = datetime.now(config.schedule.tz)
            log.info("next %s: %s", event.job_id, triggers[event.job_id].get_next_fire_time(None, now))

    scheduler.add_listener(listen, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    return scheduler


def _stop(stop: threading.Event, signum: int) -> None:
    log.info("signal %d: stopping", signum)
    stop.set()


def run_daemon(config: Config, engine: Engine, stop: threading.Event | None = None, retry: Retry = Retry()) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set); a running job is allowed to finish."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: _stop(stop, number))
    # The listener logs job errors with their traceback; APScheduler's own copy of each would only repeat it.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)
    sending = threading.Lock()
    scheduler = build_scheduler(config, engine, stop, sending)
    now = datetime.now(config.schedule.tz)
    _log_shifts(config, job_triggers(config), now)
    for kind, fired_at, cycle in last_fires(config, now):
        if now - fired_at <= config.schedule.grace:
            log.info("catching up %s of %s (fire time %s passed while the daemon was down)", kind, cycle,
                     fired_at.isoformat())
            scheduler.add_job(run_cycle, args=(config, engine, kind, fired_at),
                              kwargs={"retry": retry, "stop": stop, "sending": sending},
                              id=f"catch-up-{kind}", name=f"catch-up {kind}s", replace_existing=True)
        elif _safe_recorded(engine, kind, cycle) == 0:
            log.warning("missed: the %s run of %s (%s) is older than misfire_grace (%s) and was not sent; "
                        "send it by hand: %s", kind, cycle, fired_at.isoformat(), config.schedule.misfire_grace,
                        by_hand(kind, cycle, fired_at))
    headsup_due = job_triggers(config)[HEADSUP].get_next_fire_time(None, now.replace(hour=0, minute=0, second=0,
                                                                                            microsecond=0))
    if headsup_due is not None and headsup_due <= now:  # today's heads-ups passed while the daemon was down
        log.info("catching up today's heads-ups (fire time %s passed while the daemon was down)",
                 headsup_due.isoformat())
        scheduler.add_job(run_cycle, args=(config, engine, HEADSUP), kwargs={"retry": retry, "stop": stop,
                                                                             "sending": sending},
                          id="catch-up-headsup", name="catch-up heads-ups", replace_existing=True)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("scheduled %s: next run %s", job.name, job.next_run_time)
    stop.wait()
    scheduler.shutdown(wait=True)
    log.info("stopped")


def _safe_recorded(engine: Engine, kind: Kind, cycle: str) -> int | None:
    try:
        return _recorded(engine, kind, cycle)
    except DBAPIError as exc:
        log.error("cannot read the outbox to check for missed runs: %s", exc.orig or exc)
        return None
