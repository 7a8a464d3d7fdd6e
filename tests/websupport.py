"""The web app over a real database with the example data, driven by Starlette's ASGI test client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import selectinload
from starlette.testclient import TestClient

from reminders.config import Config, load
from reminders.store.db import make_engine, session_scope
from reminders.store.models import OutboxMessage, ProgressReport, Task, Unit
from reminders.tracking import links
from reminders.tracking.accounts import add_user
from reminders.web import create_app
from tests.conftest import Cli

SECRET = "web-test-secret-3f9a1c0d7e5b-8c2e4a6f"
CYCLE = "2021-06"
EXPIRES = date(2021, 7, 31)
USER, PASSWORD = "ducha", "correct horse battery"
# 10:00 on 21 June 2021 in Shanghai: after the reminders (20th), before the report day (25th).
NOW = datetime(2021, 6, 21, 2, 0, tzinfo=UTC)
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>{{ 7*7 }}'


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    client: TestClient
    engine: Engine
    config: Config
    clock: Clock

    def unit_id(self, name: str) -> int:
        with session_scope(self.engine) as session:
            return session.scalars(select(Unit.id).where(Unit.name == name)).one()

    def link(self, unit: str, *, cycle: str = CYCLE, expires: date = EXPIRES, secret: str = SECRET) -> str:
        return "/r/" + links.make_token(secret.encode(), self.unit_id(unit), cycle, expires)

    def reports(self, task: str) -> list[ProgressReport]:
        with session_scope(self.engine) as session:
            return list(session.scalars(
                select(ProgressReport).join(Task, Task.id == ProgressReport.task_id)
                .where(Task.number == task).order_by(ProgressReport.id)))

    def outbox(self, kind: str) -> list[OutboxMessage]:
        with session_scope(self.engine) as session:
            return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                        .options(selectinload(OutboxMessage.body))))

    def csrf(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        return match[1]

    def login(self, username: str = USER, password: str = PASSWORD) -> str:
        """Sign in; returns the session's CSRF token."""
        token = self.csrf("/admin/login")
        response = self.client.post("/admin/login", data={"csrf": token, "username": username, "password": password},
                                    follow_redirects=False)
        assert response.status_code == 303, response.text
        return self.csrf("/admin")


def answer(task: str, note: str = "", *, percent: str = "", status: str = "progress", problems: str = "",
           next_steps: str = "", new_deadline: str = "", reason: str = "") -> dict[str, str]:
    fields = {"note": note, "percent": percent, "status": status, "problems": problems, "next_steps": next_steps,
              "new_deadline": new_deadline, "reason": reason}
    return {f"{task}.{name}": value for name, value in fields.items()}


@contextmanager
def open_site(run: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", SECRET)
    config = load(str(run.config))
    engine = make_engine(config.database_url)
    with session_scope(engine) as session:
        add_user(session, USER, PASSWORD)
    clock = Clock(NOW)
    # https: the session cookie is Secure, and the client (like a browser) only returns it over https.
    with TestClient(create_app(config, engine, clock), base_url="https://testserver") as client:
        yield Site(client, engine, config, clock)
    engine.dispose()
