"""A message before it is rendered: who gets it, why, and the plain data its templates read; and the parts every
kind's builder shares (the office's footer, a unit's signed link)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reminders.config import Config, ConfigError
from reminders.mail.context import Office
from reminders.mail.mime import Attachment
from reminders.tracking import links
from reminders.tracking.steps import Step
from reminders.vocabulary import Kind


@dataclass(frozen=True)
class Draft:
    kind: Kind
    cycle: str
    recipient_key: str  # "unit:3" / "leader:2": stable, so a cycle is recorded once per recipient
    recipient_name: str
    addresses: tuple[str, ...]  # To
    context: Any  # the kind's context dataclass (mail.context and the kinds' own modules)
    cc: tuple[str, ...] = ()  # Cc addresses (header and envelope): a 督办通知's 分管领导
    steps: tuple[Step, ...] = ()  # the ladder steps the message takes, recorded with it (tracking.steps)
    attachments: tuple[Attachment, ...] = ()  # files sent with it: the digest's 工作台账 (`[digest] attach_ledger`)


def office_of(config: Config) -> Office:
    """The office as the footer of every mail shows it."""
    office = config.office
    return Office(office.name, office.email, office.contact, office.phone)


def unit_link(config: Config, unit_id: int, cycle: str) -> str | None:
    """The unit's signed report link for the cycle, or None while no web secret is configured."""
    secret = config.web_secret()
    if secret is None:
        return None
    if problem := links.secret_problem(secret):  # a link `serve` would refuse to honour, from a guessable key
        raise ConfigError(config.path, "web.secret_env", problem)
    token = links.make_token(secret, unit_id, cycle, links.expiry(cycle, config.web.link_days))
    return links.report_url(config.web.base_url, token)
