"""A draft made into the message the outbox records and the relay receives: rendered, wrapped as MIME, its
Message-ID fixed by the draft's key so that a resend of the same mail carries the same one."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reminders.config import Config
from reminders.mail.compose import Draft
from reminders.mail.mime import build_message, make_message_id
from reminders.mail.render import Renderer
from reminders.vocabulary import Kind


@dataclass(frozen=True)
class OutgoingMessage:
    kind: Kind
    cycle: str
    recipient_key: str
    recipient_name: str
    addresses: tuple[str, ...]
    subject: str
    message_id: str
    data: bytes  # the whole message as sent, CRLF line ends


@functools.lru_cache(maxsize=8)
def _renderer(language: str, templates: Path | None) -> Renderer:
    return Renderer(language, templates)


def renderer_for(config: Config) -> Renderer:
    """The config's renderer, made once per process: its Jinja environment caches the compiled templates."""
    return _renderer(config.mail.language, config.mail.templates)


def render_draft(config: Config, renderer: Renderer, draft: Draft, now: datetime) -> OutgoingMessage:
    mail = renderer.render(draft.kind, draft.context)
    domain = config.mail.message_id_domain or config.smtp.sender.rpartition("@")[2]
    message_id = make_message_id(f"{draft.kind}/{draft.cycle}/{draft.recipient_key}", domain)
    data = build_message(
        mail, sender=config.smtp.sender, sender_name=config.smtp.sender_name,
        to=[(draft.recipient_name, address) for address in draft.addresses],
        reply_to=config.office.email, message_id=message_id, date=now,
    )
    return OutgoingMessage(draft.kind, draft.cycle, draft.recipient_key, draft.recipient_name, draft.addresses,
                           mail.subject, message_id, data)
