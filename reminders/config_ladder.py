"""The `[ladder]` section: when the office climbs from the monthly reminder to a 临期提醒, a 督办通知 and a 通报
(DOMAIN.md §5–§8). Kept apart from config.py, which reads it through `parse_ladder` and turns a LadderValueError
into its ConfigError naming the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LadderValueError(ValueError):
    """A bad `[ladder]` setting: the dotted key and the message, Chinese first."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class Ladder:
    lag_points: int = 20  # how many points behind 序时进度 a task is 滞后 (tracking.pace)
    headsup_workdays: tuple[int, ...] = (5, 1)  # 临期提醒 this many working days before a deadline, largest first
    missed_cycles: int = 2  # consecutive cycles without the lead unit's report that bring a 督办通知
    overdue_days: int = 30  # calendar days overdue that bring a 督办通知
    reply_workdays: int = 5  # a 督办通知 asks for the unit's written reply within this many working days
    notice_prefix: str = "督办"  # the notice's number reads 督办〔2021〕3号
    bulletin_cycles: int = 2  # cycles at rung 2 that name a unit in the 通报 of every leader digest


_INTEGERS: dict[str, tuple[int, int]] = {
    "lag_points": (0, 100), "missed_cycles": (1, 12), "overdue_days": (1, 366), "reply_workdays": (1, 60),
    "bulletin_cycles": (1, 12),
}


def parse_ladder(table: dict[str, Any]) -> Ladder:
    """The `[ladder]` table validated; every error names the key."""
    values: dict[str, Any] = {}
    for name, value in table.items():
        key = f"ladder.{name}"
        if name in _INTEGERS:
            least, most = _INTEGERS[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise LadderValueError(key, "类型错误，应为 int (wrong type, expected int)")
            if not least <= value <= most:
                unit = " percentage points" if name == "lag_points" else ""
                raise LadderValueError(key, f"应在 {least}–{most} 之间 (expected {least}–{most}{unit})")
            values[name] = value
        elif name == "headsup_workdays":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise LadderValueError(key, "应为工作日数的列表，如 [5, 1] (expected a list of working days)")
            if any(not 1 <= v <= 60 for v in value):
                raise LadderValueError(key, "每项应在 1–60 之间，[] 表示不发临期提醒 (each 1–60; [] sends none)")
            values[name] = tuple(sorted(set(value), reverse=True))
        elif name == "notice_prefix":
            if not isinstance(value, str) or not value.strip() or len(value) > 20 or not value.isprintable():
                raise LadderValueError(key, "应为 1–20 个字的文号前缀，如 “督办” (expected a short prefix)")
            values[name] = value.strip()
        else:
            raise LadderValueError(key, "未知的配置项 (unknown key)")
    return Ladder(**values)
