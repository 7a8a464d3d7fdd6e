"""What every command shares: the config and engine behind `--config`, and domain errors turned into one-line
messages with exit status 1."""

from __future__ import annotations

import csv
import functools
import gc
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reminders.cli.usage import CYCLE, DAY
from reminders.errors import ReminderError
from reminders.vocabulary import Kind

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reminders.config import Config

F = TypeVar("F", bound=Callable[..., Any])
KIND_CHOICES: dict[str, tuple[Kind, ...]] = {
    "reminders": ("reminder",), "digests": ("digest",), "chases": ("chase",), "receipts": ("receipt",),
    "headsups": ("headsup",), "escalations": ("escalation",),
    "all": ("reminder", "escalation", "digest"),  # mail.compose.KINDS: a month's mails; heads-ups go out daily
}
DAY_KIND = "headsups"  # the kind whose mails belong to a day (--as-of), not to a month


def friendly(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ReminderError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:
            raise  # the reader went away: the root group leaves quietly
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None
        except Exception as exc:
            from sqlalchemy.exc import DBAPIError

            if not isinstance(exc, DBAPIError):
                raise
            from reminders.store.db import masked

            url = masked(click.get_current_context().ensure_object(State).config.database_url)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise click.ClickException(f"数据库错误 (database error) {url}: {reason}") from None

    return wrapper  # type: ignore[return-value]


class ZonedFormatter(logging.Formatter):
    """Log times on one clock: `[schedule] timezone` once the config is read (the system's zone before), with the
    offset, so a log line and a mail's Date header agree."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.zone: tzinfo | None = None

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, self.zone).astimezone(self.zone)
        return moment.strftime(datefmt or "%Y-%m-%d %H:%M:%S%z")


def configure_logging(verbose: bool) -> ZonedFormatter:
    formatter = ZonedFormatter()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("reminders").setLevel(logging.DEBUG if verbose else logging.INFO)
    return formatter


class State:
    def __init__(self, config_path: str | None, formatter: ZonedFormatter | None = None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self.formatter = formatter

    @property
    def config(self) -> Config:
        from reminders import config

        if self._config is None:
            self._config = config.load(self.config_path)
            if self.formatter is not None:
                self.formatter.zone = self._config.schedule.tz
        return self._config

    def engine(self, check: bool = True) -> Engine:
        from reminders.store import db

        engine = db.make_engine(self.config.database_url)
        if check:
            db.check_schema(engine)
        return engine

    def today(self) -> date:
        return datetime.now(self.config.schedule.tz).date()


pass_state = click.make_pass_decorator(State)


_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False)
_CHUNK = 1000


def echo_json_lines(records: Iterable[dict[str, Any]]) -> None:
    """Print a JSON array with one object a line: readable, encoded by json's C encoder (indent= is pure Python),
    and written a thousand records at a time, so 100,000 tasks never become one string.

    One encoder serves every record: json.dumps(ensure_ascii=False) builds a new one per call, which cost more than
    the encoding itself at 100,000 tasks."""
    encoded = map(_ENCODER.encode, records)
    first = list(islice(encoded, _CHUNK))
    if not first:
        click.echo("[]")
        return
    click.echo("[\n" + ",\n".join(first), nl=False)
    while chunk := list(islice(encoded, _CHUNK)):
        click.echo(",\n" + ",\n".join(chunk), nl=False)
    click.echo("\n]")


def echo_csv_rows(header: list[str], rows: Iterable[list[Any]]) -> None:
    """Print CSV (the csv module's dialect: quoted where needed, \\r\\n line ends), a thousand rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    rows = iter(rows)
    while chunk := list(islice(rows, _CHUNK)):
        writer.writerows(chunk)
        click.echo(buffer.getvalue(), nl=False)
        buffer.seek(0)
        buffer.truncate()
    click.echo(buffer.getvalue(), nl=False)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold Python's cycle collector while a command builds a whole plan's rows (100,000 tasks: a million objects,
    none in a cycle), which it would otherwise walk again and again for nothing: a third of `status`'s time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def print_report(what: str, report: Any) -> None:
    if not report.changed:
        click.echo(f"{what}：无变化 (nothing changed; {report.unchanged} unchanged)")
        return
    for label, items in (("新增 added", report.added), ("更新 updated", report.updated),
                         ("移除 removed", report.removed)):
        if items:
            click.echo(f"{label}: {len(items)}  ({'、'.join(items[:30])}{' …' if len(items) > 30 else ''})")
    click.echo(f"未变 unchanged: {report.unchanged}")


def cycle_options(command: F) -> F:
    command = click.option("--as-of", type=DAY,
                           help="按此日期计算；临期提醒必填 (default: when the cron fires in that month, moved to a "
                                "working day; required for headsups: the day whose notices are sent).")(command)
    command = click.option("--kind", type=click.Choice(list(KIND_CHOICES)), default="all", show_default=True,
                           help="提醒、汇总、催报、回执、临期提醒、督办通知或全部(提醒+督办通知+汇总) Which messages: "
                                "reminders, digests, chases, receipts, headsups, escalations, or all (reminders, "
                                "escalations and digests).")(command)
    return click.option("--cycle", type=CYCLE,
                        help="月度周期；临期提醒可省略，取 --as-of 所在月 The month (required, except for headsups: "
                             "the month of --as-of).")(command)


def cycle_and_day(cycle: str | None, kind: str, as_of: datetime | None) -> tuple[str, date | None]:
    """The run's cycle and day from --cycle, --kind and --as-of: heads-ups are a day's (--as-of required, the cycle
    its month), every other kind a month's (--cycle required)."""
    from reminders.tracking.cycles import cycle_of

    day = as_of.date() if as_of else None
    if kind == DAY_KIND:
        if day is None:
            raise click.UsageError("临期提醒需要 --as-of 指定日期，例如 --as-of 2021-06-24 "
                                   "(headsups need --as-of, the day whose notices are sent: e.g. --as-of 2021-06-24)")
        if cycle is not None and cycle != cycle_of(day):
            raise click.UsageError(f"--as-of {day.isoformat()} 不在周期 {cycle} 内；临期提醒可省略 --cycle "
                                   f"(--as-of is not in --cycle {cycle}; leave --cycle out for headsups)")
        return cycle_of(day), day
    if cycle is None:
        raise click.UsageError("缺少 --cycle，例如 --cycle 2021-06 (missing option --cycle, e.g. --cycle 2021-06)")
    return cycle, day



def check_cycle(engine: Engine, cycle: str, force: bool) -> None:
    """Refuse a cycle outside the active plan's year unless `--force` says the office means it."""
    from reminders.store.db import session_scope
    from reminders.store.plans import active_plan
    from reminders.tracking.cycles import OutsidePlanYear, check_cycle_in_plan

    with session_scope(engine) as session:
        try:
            check_cycle_in_plan(active_plan(session), cycle)
        except OutsidePlanYear as exc:
            if not force:
                raise ReminderError(f"{exc}；确需发送请加 --force (add --force to send it anyway)") from None


def aware(moment: datetime) -> datetime:
    """A stored time made aware: SQLite hands back naive UTC what was stored aware."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
