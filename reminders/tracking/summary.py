"""The ten-second summary a digest opens with and the dashboard shows: one sentence and a stacked bar of the states.

"19项任务：办结1项、逾期4项、滞后2项；7个单位中3个按时报送" — only states that hold for some task are named; the
units are those with lead tasks asked for a report this cycle (tracking.trend), and before the report day the
sentence says how many have reported so far instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from reminders.tracking.status import TaskLine
from reminders.tracking.trend import TrendPoint
from reminders.vocabulary import STATES, TaskState, en_date, language_of

# The sentence's order: what is finished first, then what needs attention, most urgent first.
_ORDER: tuple[TaskState, ...] = (TaskState.DONE, *(s for s in STATES if s != TaskState.DONE))
_WORDS = {
    "zh_CN": {TaskState.DONE: "办结", TaskState.OVERDUE: "逾期", TaskState.DUE_SOON: "临期", TaskState.LAGGING: "滞后",
              TaskState.ON_TRACK: "正常推进", TaskState.ONGOING: "长期推进", TaskState.UNASSIGNED: "未分工"},
    "en": {TaskState.DONE: "done", TaskState.OVERDUE: "overdue", TaskState.DUE_SOON: "due soon",
           TaskState.LAGGING: "lagging", TaskState.ON_TRACK: "on track", TaskState.ONGOING: "ongoing",
           TaskState.UNASSIGNED: "unassigned"},
}


@dataclass(frozen=True)
class Segment:
    """One state's part of the stacked bar: `width` percent of it (the widths add up to 100)."""

    state: TaskState
    count: int
    width: int


@dataclass(frozen=True)
class Summary:
    total: int
    counts: dict[TaskState, int]  # every state, in vocabulary.STATES order
    segments: tuple[Segment, ...]  # non-zero states only, in STATES order
    units: int  # units with lead tasks asked for a report this cycle
    on_time: int  # of those, units that reported on all of them by the report day (by `as_of` before it)
    as_of: date
    report_by: date

    @property
    def before_report_day(self) -> bool:
        return self.as_of < self.report_by

    def sentence(self, language: str = "zh_CN") -> str:
        states = [(state, self.counts[state]) for state in _ORDER if self.counts.get(state)]
        words = _WORDS[language_of(language)]
        if language_of(language) == "en":
            text = f"{self.total} task{'s' if self.total != 1 else ''}"
            if states:
                text += ": " + ", ".join(f"{count} {words[state]}" for state, count in states)
            if self.units:
                units = f"{self.on_time} of {self.units} unit{'s' if self.units != 1 else ''}"
                if self.before_report_day:
                    text += f"; as of {en_date(self.as_of)}, {units} ha{'ve' if self.on_time != 1 else 's'} reported"
                else:
                    text += f"; {units} reported on time"
            return text + "."
        text = f"{self.total}项任务"
        if states:
            text += "：" + "、".join(f"{words[state]}{count}项" for state, count in states)
        if self.units:
            if self.before_report_day:
                text += f"；截至{self.as_of.month}月{self.as_of.day}日，{self.units}个单位中{self.on_time}个已报送"
            else:
                text += f"；{self.units}个单位中{self.on_time}个按时报送"
        return text + "。"


def segments(counts: dict[TaskState, int]) -> tuple[Segment, ...]:
    """Widths proportional to the counts, whole percents adding up to 100 (largest remainders get the rest)."""
    total = sum(counts.values())
    present = [(state, counts[state]) for state in STATES if counts.get(state)]
    if not total:
        return ()
    widths = [count * 100 // total for _state, count in present]
    rest = 100 - sum(widths)
    by_remainder = sorted(range(len(present)), key=lambda i: -(present[i][1] * 100 % total))
    for i in by_remainder[:rest]:
        widths[i] += 1
    return tuple(Segment(state, count, width) for (state, count), width in zip(present, widths, strict=True))


def summarise(lines: Iterable[TaskLine], point: TrendPoint, as_of: date) -> Summary:
    """The summary of `lines` (the scope's task lines on `as_of`) with this cycle's reporting figures `point`."""
    counts = dict.fromkeys(STATES, 0)
    for line in lines:
        counts[line.state] += 1
    return Summary(sum(counts.values()), counts, segments(counts), point.units_asked, point.units_on_time, as_of,
                   point.report_by)
