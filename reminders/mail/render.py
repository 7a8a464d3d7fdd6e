"""Render reminder, digest, chase and receipt mails from plain contexts with Jinja2 (subject, text and HTML)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reminders.columns import display_width
from reminders.mail.context import STATES, DigestContext, ReceiptContext, ReminderContext, State
from reminders.mail.mime import RenderedMail

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "email"
DEFAULT_LANGUAGE = "zh_CN"

Kind = Literal["reminder", "digest", "chase", "receipt"]
_CONTEXT_TYPES: dict[str, type] = {
    "reminder": ReminderContext, "digest": DigestContext, "chase": ReminderContext, "receipt": ReceiptContext,
}


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

    def render(self, kind: Kind, context: ReminderContext | DigestContext | ReceiptContext) -> RenderedMail:
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
