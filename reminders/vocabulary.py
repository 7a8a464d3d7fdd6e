"""The product's words, defined once: task states with their lights and labels, report statuses, message kinds,
outbox states, and how dates read. Mails, web pages, terminal tables and the ledger all take them from here.

Texts are Chinese first: `zh_CN` is the default language and the fallback of every lookup; `en` is the second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from typing import Literal

Language = Literal["zh_CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh_CN", "en")
DEFAULT_LANGUAGE: Language = "zh_CN"


class TaskState(StrEnum):
    """Where a task stands on a day (tracking.status decides which). A str, so templates and JSON see its value."""

    OVERDUE = "overdue"  # 红: the deadline has passed
    DUE_SOON = "due_soon"  # 黄: the deadline is due_soon_days away or fewer
    LAGGING = "lagging"  # 紫红: the latest reported percentage is more than lag_points behind 序时进度 (tracking.pace)
    ON_TRACK = "on_track"  # 绿: a deadline further away
    ONGOING = "ongoing"  # 蓝: no deadline (长期坚持), never overdue
    DONE = "done"  # 灰: closed by the lead unit's latest report or the office's 办结
    UNASSIGNED = "unassigned"  # 灰: no lead unit yet


# Most urgent first: the order of counts, lists and filters everywhere.
STATES: tuple[TaskState, ...] = tuple(TaskState)
# States that ask nothing more of a unit: never reminded, never chased, never "not reported".
SETTLED: frozenset[TaskState] = frozenset({TaskState.DONE, TaskState.UNASSIGNED})

_STATE_LABELS: dict[Language, dict[TaskState, str]] = {
    "zh_CN": {TaskState.OVERDUE: "已逾期", TaskState.DUE_SOON: "临期", TaskState.LAGGING: "滞后",
              TaskState.ON_TRACK: "正常推进",
              TaskState.ONGOING: "长期推进", TaskState.DONE: "已办结", TaskState.UNASSIGNED: "未分工"},
    "en": {TaskState.OVERDUE: "Overdue", TaskState.DUE_SOON: "Due soon", TaskState.LAGGING: "Lagging",
           TaskState.ON_TRACK: "On track",
           TaskState.ONGOING: "Ongoing", TaskState.DONE: "Done", TaskState.UNASSIGNED: "Unassigned"},
}
# The light's colour on a page or in a mail (dark amber for yellow: pure yellow is unreadable on white) and the
# lighter shade of the ledger's state cell, so its label stays readable. DOMAIN.md §7: offices read them this way.
# 滞后 is magenta rather than orange: an orange would be hard to tell from 临期's amber in a row of dots.
LIGHT_COLOURS: dict[TaskState, str] = {
    TaskState.OVERDUE: "#c5221f", TaskState.DUE_SOON: "#b06000", TaskState.LAGGING: "#a50e6e",
    TaskState.ON_TRACK: "#137333",
    TaskState.ONGOING: "#1967d2", TaskState.DONE: "#5f6368", TaskState.UNASSIGNED: "#80868b",
}
LEDGER_FILLS: dict[TaskState, str] = {
    TaskState.OVERDUE: "F4C7C3", TaskState.DUE_SOON: "FCE8B2", TaskState.LAGGING: "F8D0E8",
    TaskState.ON_TRACK: "B7E1CD",
    TaskState.ONGOING: "C9DAF8", TaskState.DONE: "D9D9D9", TaskState.UNASSIGNED: "EFEFEF",
}


@dataclass(frozen=True)
class Light:
    """A state as a reader sees it: a dot in `colour` and the `label`, so it reads without colour too."""

    colour: str
    label: str


def language_of(name: str) -> Language:
    """The language by its config name; an unknown one falls back to Chinese."""
    return name if name in LANGUAGES else DEFAULT_LANGUAGE


def state_label(state: TaskState | str, language: str = DEFAULT_LANGUAGE) -> str:
    return _STATE_LABELS[language_of(language)][TaskState(state)]


def lights(language: str = DEFAULT_LANGUAGE) -> dict[TaskState, Light]:
    return {state: Light(LIGHT_COLOURS[state], state_label(state, language)) for state in STATES}


# What a task without a deadline shows where its deadline would be, and a task with no lead unit yet.
NO_DEADLINE: dict[Language, str] = {"zh_CN": "长期坚持", "en": "ongoing"}
NOT_SET: dict[Language, str] = {"zh_CN": "未定", "en": "not set"}

# What a unit says of a task when it reports (the form's 状态).
ReportStatus = Literal["progress", "done", "difficulty", "extension"]
REPORT_STATUSES: tuple[ReportStatus, ...] = ("progress", "done", "difficulty", "extension")
REPORT_STATUS_LABELS: dict[Language, dict[str, str]] = {
    "zh_CN": {"progress": "推进中", "done": "已完成", "difficulty": "存在困难", "extension": "申请延期"},
    "en": {"progress": "in progress", "done": "completed", "difficulty": "facing difficulties",
           "extension": "extension requested"},
}

# Where a progress report came from.
REPORT_SOURCE_LABELS: dict[Language, dict[str, str]] = {
    "zh_CN": {"cli": "命令行", "web": "网页", "office": "督查室"},
    "en": {"cli": "command line", "web": "report form", "office": "office"},
}

# The messages the product sends.
Kind = Literal["reminder", "digest", "chase", "receipt", "headsup", "escalation"]
KINDS: tuple[Kind, ...] = ("reminder", "digest", "chase", "receipt", "headsup", "escalation")
KIND_LABELS: dict[Language, dict[str, str]] = {
    "zh_CN": {"reminder": "提醒", "digest": "汇总", "chase": "催报", "receipt": "回执", "headsup": "临期提醒",
              "escalation": "督办通知"},
    "en": {"reminder": "reminder", "digest": "digest", "chase": "chase", "receipt": "receipt",
           "headsup": "heads-up", "escalation": "supervision notice"},
}

# The rungs of the 督办 ladder (DOMAIN.md §5–§8), each step recorded in ladder_steps (tracking.steps).
Rung = Literal[0, 1, 2, 3]
RUNG_HEADSUP, RUNG_CHASE, RUNG_NOTICE, RUNG_BULLETIN = 0, 1, 2, 3
RUNG_LABELS: dict[Language, dict[int, str]] = {
    "zh_CN": {0: "临期提醒", 1: "催办", 2: "督办通知", 3: "通报"},
    "en": {0: "heads-up", 1: "chase", 2: "supervision notice", 3: "bulletin"},
}

# A message's life in the outbox.
OutboxState = Literal["pending", "sending", "sent", "failed"]
OUTBOX_STATES: tuple[OutboxState, ...] = ("pending", "sending", "sent", "failed")
OUTBOX_STATE_LABELS: dict[Language, dict[str, str]] = {
    "zh_CN": {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "失败"},
    "en": {"pending": "pending", "sending": "sending", "sent": "sent", "failed": "failed"},
}

# Spelled out rather than strftime("%B"), which follows the process locale.
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")


def _cycle_month(cycle: str) -> date:
    match = re.fullmatch(r"(\d{4})-(\d{2})", cycle)
    if not match:
        raise ValueError(f"cycle must look like 2021-06, got {cycle!r}")
    return date(int(match[1]), int(match[2]), 1)


def zh_date(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def zh_cycle(cycle: str) -> str:
    month = _cycle_month(cycle)
    return f"{month.year}年{month.month}月"


def en_date(value: date) -> str:
    return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"


def en_cycle(cycle: str) -> str:
    month = _cycle_month(cycle)
    return f"{_EN_MONTHS[month.month - 1]} {month.year}"


def shown_time(moment: datetime, zone: tzinfo) -> str:
    """A moment as a person reads it: in `[schedule] timezone`, saying which (2021-06-20 18:03 +0800). A naive value
    is UTC, as SQLite hands back what was stored aware."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %z")
