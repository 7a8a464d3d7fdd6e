"""The daemon: APScheduler 3 cron jobs that run the monthly cycle; the outbox, not the scheduler, knows what was sent.

APScheduler's defaults would drop a job more than 1 s late and only log a job's exception; here every job has a grace
of `misfire_grace`, coalesces, runs one at a time, and a listener logs failures and misses. Jobs live in memory,
so a cycle whose fire time passed while the daemon was down is caught up at start (within the grace): sending is
idempotent, so catching up a cycle that was already sent sends nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from reminders import jobs
from reminders.compose import KINDS, Kind
from reminders.config import Config, cron_trigger

log = logging.getLogger("reminders.daemon")


def run_cycle(config: Config, engine: Engine, kind: Kind, fired_at: datetime | None = None) -> jobs.SendResult:
    when = (fired_at or datetime.now(config.schedule.tz)).astimezone(config.schedule.tz)
    cycle = f"{when.year:04d}-{when.month:02d}"
    log.info("job %s: cycle %s as of %s", kind, cycle, when.date().isoformat())
    result = jobs.send_cycle(engine, config, cycle, (kind,), when.date(), echo=log.info)
    log.info("job %s: cycle %s recorded %d, sent %d, skipped %d, failed %d", kind, cycle, result.recorded,
             len(result.sent), result.skipped, len(result.failed))
    return result


def missed_fire_times(config: Config, now: datetime) -> list[tuple[Kind, datetime]]:
    """The latest fire time of each kind that fell within the grace before `now` (a restart catches these up)."""
    grace = config.schedule.grace
    missed = []
    for kind in KINDS:
        trigger = cron_trigger(_expression(config, kind), config.schedule.timezone)
        fire, last = trigger.get_next_fire_time(None, now - grace), None
        while fire is not None and fire <= now:
            last, fire = fire, trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if last is not None:
            missed.append((kind, last))
    return missed


def _expression(config: Config, kind: Kind) -> str:
    return config.schedule.reminders if kind == "reminder" else config.schedule.digests


def build_scheduler(config: Config, engine: Engine) -> Any:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        timezone=config.schedule.timezone,
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": int(config.schedule.grace.total_seconds())},
    )
    for kind in KINDS:
        scheduler.add_job(run_cycle, cron_trigger(_expression(config, kind), config.schedule.timezone),
                          args=(config, engine, kind), id=kind, name=f"monthly {kind}s", replace_existing=True)

    def listen(event: Any) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("job %s failed: %r", event.job_id, event.exception, exc_info=event.exception)
        elif event.code == EVENT_JOB_MISSED:
            log.error("job %s missed its run at %s; send it by hand: reminders send --cycle %s", event.job_id,
                      event.scheduled_run_time, event.scheduled_run_time.strftime("%Y-%m"))
        job = scheduler.get_job(event.job_id)
        if job is not None:
            log.info("next %s: %s", event.job_id, job.next_run_time)

    scheduler.add_listener(listen, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    return scheduler


def run_daemon(config: Config, engine: Engine, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set); a running job is allowed to finish."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: (log.info("signal %d: stopping", number), stop.set()))
    # The listener logs job errors with their traceback; APScheduler's own copy of each would only repeat it.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.CRITICAL)
    scheduler = build_scheduler(config, engine)
    now = datetime.now(config.schedule.tz)
    for kind, fired_at in missed_fire_times(config, now):
        log.info("catching up %s of %s (fire time %s passed while the daemon was down)", kind,
                 fired_at.strftime("%Y-%m"), fired_at.isoformat())
        scheduler.add_job(run_cycle, args=(config, engine, kind, fired_at), id=f"catch-up-{kind}",
                          name=f"catch-up {kind}s", replace_existing=True)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("scheduled %s: next run %s", job.name, job.next_run_time)
    stop.wait()
    scheduler.shutdown(wait=True)
    log.info("stopped")
