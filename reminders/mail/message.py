"""A draft made into the message the outbox records and the relay receives: rendered, wrapped as MIME, its
Message-ID fixed by the draft's key so that a resend of the same mail carries the same one."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from jinja2 import TemplateError

from reminders.config import Config, ConfigError
from reminders.mail.context import ReminderContext
from reminders.mail.draft import Draft, office_of
from reminders.mail.mime import build_message, make_message_id
from reminders.mail.render import Renderer
from reminders.tracking.status import TaskLine
from reminders.tracking.steps import Step
from reminders.vocabulary import Kind, TaskState


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
    steps: tuple[Step, ...] = ()  # the ladder steps it takes, recorded with it (delivery.outbox.record)


@functools.lru_cache(maxsize=8)
def _renderer(language: str, templates: Path | None) -> Renderer:
    return Renderer(language, templates)


def renderer_for(config: Config) -> Renderer:
    """The config's renderer, made once per process: its Jinja environment caches the compiled templates."""
    return _renderer(config.mail.language, config.mail.templates)


# The BCP 47 tag of each template language, for Content-Language.
LANGUAGE_TAGS = {"zh_CN": "zh-CN", "en": "en"}


def render_draft(config: Config, renderer: Renderer, draft: Draft, now: datetime) -> OutgoingMessage:
    """The draft rendered and built; its Date is `now` in `[schedule] timezone`, as the office reads its mail."""
    mail = renderer.render(draft.kind, draft.context)
    sender = config.from_address()
    domain = config.mail.message_id_domain or sender.rpartition("@")[2]
    message_id = make_message_id(f"{draft.kind}/{draft.cycle}/{draft.recipient_key}", domain)
    data = build_message(
        mail, sender=sender, sender_name=config.smtp.sender_name,
        to=[(draft.recipient_name, address) for address in draft.addresses],
        cc=[("", address) for address in draft.cc],
        reply_to=config.office.email or None, message_id=message_id, date=now.astimezone(config.schedule.tz),
        content_language=LANGUAGE_TAGS.get(renderer.language, renderer.language.replace("_", "-")),
        attachments=draft.attachments,
    )
    envelope = draft.addresses + tuple(address for address in draft.cc if address not in draft.addresses)
    return OutgoingMessage(draft.kind, draft.cycle, draft.recipient_key, draft.recipient_name, envelope,
                           mail.subject, message_id, data, draft.steps)


def check_sample(config: Config) -> OutgoingMessage:
    """A sample reminder rendered and built exactly as `send` does, so `check-config` refuses what `send` could not
    use (a missing template folder, an override that does not render)."""
    templates = config.mail.templates
    if templates is not None and not templates.is_dir():
        raise ConfigError(config.path, "mail.templates", f"模板目录不存在 {templates} (template folder not found)")
    task = TaskLine("1", "一、", "示例任务 (sample task)", "示例单位", (), None, date(2021, 6, 30), "6月底前",
                    TaskState.DUE_SOON, 10, False, None, "lead")
    context = ReminderContext("示例单位", "", "2021-06", date(2021, 6, 20), date(2021, 6, 25), office_of(config),
                              (task,), f"{config.web.base_url.rstrip('/')}/r/sample")
    draft = Draft("reminder", "2021-06", "unit:0", "示例单位", ("unit@example.org",), context)
    try:
        return render_draft(config, renderer_for(config), draft, datetime.now(config.schedule.tz))
    except (TemplateError, ValueError, TypeError) as exc:
        message = f"邮件模板无法生成邮件 (the templates do not render): {exc}"
        raise ConfigError(config.path, "mail.templates", message) from None
