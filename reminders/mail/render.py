"""Render reminder, digest, chase and receipt mails from plain contexts with Jinja2 (subject, text and HTML)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reminders.bundle import template_folder
from reminders.columns import display_width
from reminders.mail.context import ReceiptContext, ReminderContext
from reminders.mail.digest import DigestContext
from reminders.mail.escalation import EscalationContext
from reminders.mail.headsup import HeadsupContext
from reminders.mail.mime import RenderedMail
from reminders.vocabulary import (
    DEFAULT_LANGUAGE,
    NO_DEADLINE,
    NOT_SET,
    REPORT_STATUS_LABELS,
    STATES,
    Kind,
    Light,
    TaskState,
    en_cycle,
    en_date,
    language_of,
    lights,
    zh_cycle,
    zh_date,
)

TEMPLATES_DIR = template_folder("email")
MailContext = ReminderContext | DigestContext | ReceiptContext | HeadsupContext | EscalationContext
_CONTEXT_TYPES: dict[str, type] = {
    "reminder": ReminderContext, "digest": DigestContext, "chase": ReminderContext, "receipt": ReceiptContext,
    "headsup": HeadsupContext, "escalation": EscalationContext,
}


def percent(part: int, total: int) -> str:
    """Whole percent, rounded half up (6 of 22 → 27%); 0% for an empty total."""
    return f"{(part * 200 + total) // (total * 2) if total else 0}%"


def wpad(value: object, width: int, right: bool = False) -> str:
    """Pad to a display width, counting CJK characters as two columns, so plain-text columns line up."""
    text = str(value)
    gap = " " * max(width - display_width(text), 0)
    return gap + text if right else text + gap


def _tidy_text(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


class Renderer:
    def __init__(
        self,
        language: str = DEFAULT_LANGUAGE,
        override_dir: Path | None = None,
        *,
        state_lights: Mapping[TaskState, Light] | None = None,
    ) -> None:
        languages = {p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir()}
        if language not in languages:
            raise ValueError(f"unknown template language {language!r}; have {sorted(languages)}")
        search = [TEMPLATES_DIR / language]
        if language != DEFAULT_LANGUAGE:
            search.append(TEMPLATES_DIR / DEFAULT_LANGUAGE)
        if override_dir is not None:
            if not Path(override_dir).is_dir():
                raise ValueError(f"template override directory {str(override_dir)!r} does not exist")
            search.insert(0, Path(override_dir))
        self.language = language
        self.lights: Mapping[TaskState, Light] = state_lights if state_lights is not None else lights(language)
        missing = set(STATES) - set(self.lights)
        if missing:
            raise ValueError(f"lights lack states {sorted(missing)}")
        self.env = Environment(
            loader=FileSystemLoader(search),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            zh_date=zh_date, zh_cycle=zh_cycle, en_date=en_date, en_cycle=en_cycle, percent=percent, wpad=wpad
        )
        words = language_of(language)
        self.env.globals.update(states=STATES, lights=self.lights, language=language, no_deadline=NO_DEADLINE[words],
                                not_set=NOT_SET[words], report_statuses=REPORT_STATUS_LABELS[words])

    def render(self, kind: Kind, context: MailContext) -> RenderedMail:
        expected = _CONTEXT_TYPES.get(kind)
        if expected is None:
            raise ValueError(f"unknown mail kind {kind!r}")
        if not isinstance(context, expected):
            raise TypeError(f"{kind} needs a {expected.__name__}, got {type(context).__name__}")
        # Fields go in at top level (templates say `unit`, not `ctx.unit`); nested objects stay objects, so
        # properties such as TaskLine.days_overdue work in templates.
        values = {f.name: getattr(context, f.name) for f in fields(context)}
        values["kind"] = kind

        def run(suffix: str) -> str:
            return self.env.get_template(f"{kind}-{suffix}").render(values)

        return RenderedMail(
            subject=" ".join(run("subject.txt").split()),
            text=_tidy_text(run("body.txt")),
            html=run("body.html").strip() + "\n",
        )
