"""序时进度 (pro-rata progress): how far a task should be by a day, and whether its reported percentage lags.

The expected completion grows linearly from the task's start (the assignment's 开始日期, else the first day of the
plan's year) to its deadline: 0% on the start day, 100% on the deadline. A task whose milestones were read from its
deadline phrase (6月15日、12月15日前) is measured to the deadline stored, its last milestone, since the milestones
themselves are not stored. Only a reported percentage can lag: a task nobody has given a percentage for is judged by
its deadline alone, as before (a missing report is what chases are for, not a guess at progress).
"""

from __future__ import annotations

from datetime import date

DEFAULT_LAG_POINTS = 20


def plan_start(year: int | None, deadline: date) -> date:
    """Where the pace starts when the assignment names no 开始日期: 1 January of the plan's year (else the
    deadline's year, for a plan that never said its year)."""
    return date(year or deadline.year, 1, 1)


def expected_percent(start: date, deadline: date, as_of: date) -> int:
    """The share of the way from `start` to `deadline` that `as_of` has gone, in whole percent (0 to 100).

    A start on or after the deadline expects everything by the deadline and nothing before it.
    """
    if as_of >= deadline:
        return 100
    if as_of <= start:
        return 0
    return round(100 * (as_of - start).days / (deadline - start).days)


def is_lagging(percent: int | None, expected: int | None, lag_points: int) -> bool:
    """More than `lag_points` behind 序时进度; never without a reported percentage or an expected one."""
    return percent is not None and expected is not None and expected - percent > lag_points
