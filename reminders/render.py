"""Render reminder and digest mails from plain contexts, and wrap them as MIME messages."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reminders.context import STATES, DigestContext, ReminderContext, State
from reminders.terminal import display_width

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "email"
DEFAULT_LANGUAGE = "zh_CN"

Kind = Literal["reminder", "digest"]
_CONTEXT_TYPES: dict[str, type] = {"reminder": ReminderContext, "digest": DigestContext}


@dataclass(frozen=True)
class Light:
    colour: str  # CSS colour of the dot and label
    label: str


# State → colour and label. Kept as plain dicts so config can replace them later (DOMAIN.md §7:
# colour meanings differ between offices).
LIGHT_COLOURS: dict[State, str] = {
    "overdue": "#c5221f",  # 红
    "due_soon": "#b06000",  # 黄 (dark amber: pure yellow is unreadable on white)
    "on_track": "#137333",  # 绿
    "ongoing": "#1967d2",  # 蓝
    "done": "#5f6368",  # 灰
    "unassigned": "#80868b",  # 灰
}
LIGHT_LABELS: dict[str, dict[State, str]] = {
    "zh_CN": {
        "overdue": "已逾期",
        "due_soon": "临期",
        "on_track": "正常推进",
        "ongoing": "长期推进",
        "done": "已办结",
        "unassigned": "未分工",
    },
    "en": {
        "overdue": "Overdue",
        "due_soon": "Due soon",
        "on_track": "On track",
        "ongoing": "Ongoing",
        "done": "Done",
        "unassigned": "Unassigned",
    },
}


def default_lights(language: str) -> dict[State, Light]:
    labels = LIGHT_LABELS.get(language, LIGHT_LABELS[DEFAULT_LANGUAGE])
    return {state: Light(LIGHT_COLOURS[state], labels[state]) for state in STATES}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def _cycle_date(cycle: str) -> date:
    match = re.fullmatch(r"(\d{4})-(\d{2})", cycle)
    if not match:
        raise ValueError(f"cycle must look like 2021-06, got {cycle!r}")
    return date(int(match[1]), int(match[2]), 1)


def zh_date(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def zh_cycle(cycle: str) -> str:
    month = _cycle_date(cycle)
    return f"{month.year}年{month.month}月"


# Spelled out rather than strftime("%B"), which follows the process locale.
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def en_date(value: date) -> str:
    return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"


def en_cycle(cycle: str) -> str:
    month = _cycle_date(cycle)
    return f"{_EN_MONTHS[month.month - 1]} {month.year}"


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
        lights: Mapping[str, Light] | None = None,
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
        self.lights: Mapping[str, Light] = lights if lights is not None else default_lights(language)
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

    def render(self, kind: Kind, context: ReminderContext | DigestContext) -> RenderedMail:
        expected = _CONTEXT_TYPES.get(kind)
        if expected is None:
            raise ValueError(f"unknown mail kind {kind!r}")
        if not isinstance(context, expected):
            raise TypeError(f"{kind} needs a {expected.__name__}, got {type(context).__name__}")
        # Fields go in at top level (templates say `unit`, not `ctx.unit`); nested objects stay objects, so
        # properties such as TaskLine.days_overdue work in templates.
        values = {f.name: getattr(context, f.name) for f in fields(context)}
        values.update(kind=kind, states=STATES, lights=self.lights, language=self.language)

        def run(suffix: str) -> str:
            return self.env.get_template(f"{kind}-{suffix}").render(values)

        return RenderedMail(
            subject=" ".join(run("subject.txt").split()),
            text=_tidy_text(run("body.txt")),
            html=run("body.html").strip() + "\n",
        )


def _check_header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} header value contains CR or LF: {value!r}")
    return value


def _address(field: str, display_name: str, addr_spec: str) -> Address:
    _check_header(field, display_name)
    return Address(display_name=display_name, addr_spec=_check_header(field, addr_spec))


def build_message(
    mail: RenderedMail,
    *,
    sender: str,
    sender_name: str,
    to: Sequence[tuple[str, str]],
    reply_to: str | None,
    message_id: str,
    date: datetime,
) -> bytes:
    if not to:
        raise ValueError("a message needs at least one recipient")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = _check_header("Subject", mail.subject)
    msg["From"] = _address("From", sender_name, sender)
    msg["To"] = [_address("To", name, addr) for name, addr in to]
    if reply_to is not None:
        msg["Reply-To"] = _address("Reply-To", "", reply_to)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _check_header("Message-ID", message_id)
    # No cte given: the email package picks base64 for Chinese and quoted-printable for mostly-ASCII text,
    # both of which keep lines far below 998 octets.
    msg.set_content(mail.text, subtype="plain", charset="utf-8")
    msg.add_alternative(mail.html, subtype="html", charset="utf-8")
    return msg.as_bytes()


def make_message_id(key: str, domain: str) -> str:
    """A Message-ID that only depends on `key`, so a resend of the same mail reuses it.

    The readable part is lossy (non-ASCII becomes "-"); the hash of the full key keeps ids distinct.
    """
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", domain):
        raise ValueError(f"bad Message-ID domain {domain!r}")
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", key.replace("/", "."))
    readable = re.sub(r"\.{2,}", ".", readable).strip(".-")
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"<{readable}.{digest}@{domain}>" if readable else f"<{digest}@{domain}>"
