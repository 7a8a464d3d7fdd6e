"""Helpers for the tests of the unit links, the report form and the office actions: the library on a loaded CLI."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import Engine, select

from reminders import config as config_module
from reminders.config import Config
from reminders.store.db import make_engine, session_scope
from reminders.store.models import Unit
from tests.conftest import Cli

SECRET = "test-secret-0123456789-abcdefghijklm"


@dataclass(frozen=True)
class Env:
    config: Config
    engine: Engine

    def unit_id(self, name: str) -> int:
        with session_scope(self.engine) as session:
            unit_id = session.scalar(select(Unit.id).where(Unit.name == name))
        assert unit_id is not None
        return unit_id


def library(cli: Cli) -> Env:
    config = config_module.load(str(cli.config))
    return Env(config, make_engine(config.database_url))


def parsed(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def text_of(data: bytes) -> str:
    return str(parsed(data).get_body(("plain",)).get_content())  # type: ignore[union-attr]
