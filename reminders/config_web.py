"""The `[web]` section: where the report form and the office dashboard are served, and the links' secret. Kept
apart from config.py, which checks it through `web_problem` and names the file in its ConfigError."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from reminders.config_values import parse_duration


@dataclass(frozen=True)
class Web:
    """The `[web]` section: where the report form and the office dashboard are served, and the links' secret."""

    base_url: str = "http://127.0.0.1:8025"
    bind: str = "127.0.0.1"
    port: int = 8025
    secret_env: str = "REMINDERS_WEB_SECRET"  # the NAME of the environment variable holding the HMAC secret
    link_days: int | None = None  # a unit's link expires this many days after its cycle's reminder; default: the
    # end of the next cycle
    receipt_window: str = "10m"  # a unit's receipt waits this long, taking in its further submissions, then is sent
    submissions_per_hour: int = 6  # per unit and cycle (one link); beyond it the form answers 429

    @property
    def receipt_delay(self) -> timedelta:
        return parse_duration(self.receipt_window)


def web_problem(web: Web) -> tuple[str, str] | None:
    """The first bad `[web]` setting as (dotted key, message), or None."""
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", web.base_url):
        message = f"应为 http(s):// 开头的地址 {web.base_url!r} (expected an http(s) URL)"
        return ("web.base_url", message)
    if not web.bind:
        return ("web.bind", "不能为空 (must not be empty)")
    if not 1 <= web.port <= 65535:
        return ("web.port", "端口应在 1–65535 之间 (expected 1–65535)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", web.secret_env):
        message = f"不是环境变量名 {web.secret_env!r} (not an environment variable name)"
        return ("web.secret_env", message)
    if web.link_days is not None and not 1 <= web.link_days <= 366:
        return ("web.link_days", "应在 1–366 之间 (expected 1–366 days)")
    if not 1 <= web.submissions_per_hour <= 1000:
        return ("web.submissions_per_hour", "应在 1–1000 之间 (expected 1–1000)")
    return None
