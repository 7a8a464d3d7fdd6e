"""What every route shares: the app's settings, the clock, database calls off the event loop, and the templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from reminders.bundle import template_folder
from reminders.config import Config
from reminders.store.db import session_scope
from reminders.tracking.accounts import LoginThrottle
from reminders.tracking.reporting import MAX_TEXT
from reminders.vocabulary import NO_DEADLINE, REPORT_STATUS_LABELS, language_of, lights, zh_cycle, zh_date
from reminders.web.security import PasswordPool, Signer

TEMPLATES_DIR = template_folder("web")
T = TypeVar("T")


@dataclass(frozen=True)
class WebApp:
    config: Config
    engine: Engine
    secret: bytes
    signer: Signer
    env: Environment
    clock: Callable[[], datetime]
    # The login's growing delays (this process's memory) and the pool its password checks run on.
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    passwords: PasswordPool = field(default_factory=PasswordPool)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return self.clock().astimezone(self.config.schedule.tz).date()

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction on a worker thread, so a slow query never stalls the event loop."""

        def call() -> T:
            with session_scope(self.engine) as session:
                return work(session)

        return await run_in_threadpool(call)

    def page(self, request: Request, name: str, context: dict[str, Any] | None = None,
             status_code: int = 200) -> HTMLResponse:
        values = {"office": self.config.office, "request": request, **(context or {})}
        html = self.env.get_template(name).render(values)
        return HTMLResponse(html, status_code=status_code)


def make_env(language: str, tz: tzinfo = UTC) -> Environment:
    """The page templates; every time they show is in `tz` (the office's `[schedule] timezone`), named."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined, autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(zh_date=zh_date, zh_cycle=zh_cycle, iso=_iso, local_time=partial(local_time, tz=tz))
    words = language_of(language)
    env.globals.update(lights=lights(language), status_labels=REPORT_STATUS_LABELS[words], max_text=MAX_TEXT,
                       no_deadline=NO_DEADLINE[words])
    return env


def local_time(value: datetime, tz: tzinfo) -> str:
    """"2021-06-22 01:05（Asia/Shanghai）": a stored moment as the office reads it (SQLite's naive ones are UTC)."""
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}（{tz}）"


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def web(request: Request) -> WebApp:
    app: WebApp = request.app.state.web
    return app
