"""A cycle's drafts made into the messages the outbox records, one at a time and each on its own: a message that
cannot be built (an address the MIME builder refuses, a render error in one unit's data) becomes a failed row with
its reason, and the others are built and sent. A fault that would fail every message alike (a template that does not
load) stops the run before anything is recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from jinja2 import TemplateError

from reminders.config import Config
from reminders.delivery.outbox import Unbuilt
from reminders.errors import ReminderError
from reminders.mail.draft import Draft
from reminders.mail.message import OutgoingMessage, render_draft
from reminders.mail.render import Renderer
from reminders.vocabulary import Kind

PROGRESS_EVERY = 100  # drafts between two progress calls while a cycle is recorded
_TEMPLATE_PARTS = ("subject.txt", "body.txt", "body.html")


class TemplateLoadError(ReminderError):
    pass


class Interrupted(Exception):
    """A stop was requested while the cycle was being recorded: the recording transaction is rolled back."""


def check_templates(renderer: Renderer, kinds: Sequence[Kind]) -> None:
    """Load every template the kinds need, so a broken or missing one stops the run instead of failing each mail."""
    for kind in kinds:
        for part in _TEMPLATE_PARTS:
            name = f"{kind}-{part}"
            try:
                renderer.env.get_template(name)
            except TemplateError as exc:
                where = getattr(exc, "filename", None) or name
                line = getattr(exc, "lineno", None)
                raise TemplateLoadError(
                    f"邮件模板 {where}{f' 第 {line} 行' if line else ''} 无法加载，未记录任何邮件 "
                    f"(template {name} cannot be loaded, nothing recorded): {exc}") from exc


def unbuilt_message_id(draft: Draft) -> str:
    """A stable, unique placeholder: the row needs one, and no mail with it is ever sent."""
    digest = hashlib.sha256(f"{draft.kind}/{draft.cycle}/{draft.recipient_key}".encode()).hexdigest()[:24]
    return f"<unbuilt.{digest}@invalid>"


def describe(draft: Draft | OutgoingMessage | Unbuilt) -> str:
    return f"{draft.kind} {draft.recipient_name} <{', '.join(draft.addresses)}>"


def build_each(config: Config, renderer: Renderer, drafts: Iterable[Draft], now: datetime,
               failed: Callable[[str], None], progress: Callable[[int], None] | None = None,
               stopped: Callable[[], bool] = lambda: False) -> Iterator[OutgoingMessage | Unbuilt]:
    """Each draft built, or recorded as unbuilt with the reason; `failed` hears of each unbuilt one.

    Rendering and building are pure functions of the draft's plain data, so whatever they raise belongs to this
    one message: it is caught whole (`Exception`), recorded and reported, never swallowed.
    """
    count = 0
    for draft in drafts:
        if stopped():
            raise Interrupted
        try:
            yield render_draft(config, renderer, draft, now)
        except Exception as exc:
            reason = f"邮件无法生成 (message could not be built): {type(exc).__name__}: {exc}"
            failed(f"{describe(draft)}: {reason}")
            yield Unbuilt(draft.kind, draft.cycle, draft.recipient_key, draft.recipient_name, draft.addresses,
                          unbuilt_message_id(draft), reason)
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    if progress is not None:
        progress(count)
