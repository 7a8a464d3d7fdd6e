"""Values a config holds that need parsing of their own: durations, cron expressions and host names. Kept apart
from config.py so the config module stays one job (reading and checking the file)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_ADDRESS_LITERAL = re.compile(r"\[(\d{1,3}(\.\d{1,3}){3}|IPv6:[0-9A-Fa-f:.]+)\]")


def valid_helo_name(name: str) -> bool:
    """A hostname (letters, digits, hyphens, dot-separated labels) or an address literal such as [192.0.2.1]."""
    if _ADDRESS_LITERAL.fullmatch(name):
        return True
    return len(name) <= 253 and _HOSTNAME.fullmatch(name) is not None


_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """ "3d", "12h", "90m", "1d12h" → a timedelta."""
    compact = text.replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"应为时长，如 3d、12h、90m，而不是 {text!r} (expected a duration such as 3d, 12h, 90m)")
    try:
        total = sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())
    except OverflowError:
        total = timedelta.max
    if total > timedelta(days=366):
        raise ValueError(f"不能超过一年，而不是 {text!r} (at most a year)")
    return total


def cron_trigger(expression: str, timezone: str) -> Any:
    """APScheduler's CronTrigger for a 5-field expression (imported lazily: it is slow to import)."""
    from apscheduler.triggers.cron import CronTrigger

    if len(expression.split()) != 5:
        raise ValueError("需要 5 个字段：分 时 日 月 周 (expected 5 fields: minute hour day month weekday)")
    return CronTrigger.from_crontab(expression, timezone=timezone)
