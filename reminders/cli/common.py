"""What every command shares: the config and engine behind `--config`, and domain errors turned into one-line
messages with exit status 1."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
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
    "all": ("reminder", "digest"),
}


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


def json_lines(records: list[dict[str, Any]]) -> str:
    """A JSON array with one object a line: readable, and encoded by json's C encoder (indent= is pure Python)."""
    return "[\n" + ",\n".join(json.dumps(record, ensure_ascii=False) for record in records) + "\n]" if records else "[]"


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
                           help="按此日期计算 (default: when the cron fires in that month).")(command)
    command = click.option("--kind", type=click.Choice(list(KIND_CHOICES)), default="all", show_default=True,
                           help="提醒、汇总、催报、回执或全部(提醒+汇总) Which messages.")(command)
    return click.option("--cycle", required=True, type=CYCLE, help="月度周期 The month.")(command)



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
