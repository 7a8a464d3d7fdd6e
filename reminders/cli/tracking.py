"""Progress by hand (recorded, listed, amended), and every task's state."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import TYPE_CHECKING

import click

from reminders.cli.common import (
    State,
    aware,
    collector_paused,
    echo_csv_rows,
    echo_json_lines,
    friendly,
    pass_state,
)
from reminders.cli.usage import DAY
from reminders.vocabulary import NO_DEADLINE, REPORT_SOURCE_LABELS, REPORT_STATUS_LABELS, STATES, state_label

if TYPE_CHECKING:
    from reminders.tracking.status import PlanStatus, TaskLine


class ProgressGroup(click.Group):
    """`progress list` and `progress amend`; anything else (`progress 3 --unit …`) records a report, as it always did.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["record", *args]
        return super().parse_args(ctx, args)


@click.group(cls=ProgressGroup)
def progress() -> None:
    """记录与查看进展 Record, list and amend progress reports (history is kept).

    \b
    Examples:
      reminders progress 3 --unit 民族工作处 --percent 60 --note "完成宣讲12场"
      reminders progress list 3
      reminders progress amend 12 --percent 70
    """


@progress.command("record")
@click.argument("task")
@click.option("--unit", required=True, help="报送单位 The reporting unit.")
@click.option("--percent", type=click.IntRange(0, 100), help="完成进度 Percent complete.")
@click.option("--done", is_flag=True, help="已办结 The task is finished (it stops being reminded).")
@click.option("--note", required=True, help="进展情况 What was done.")
@click.option("--date", "on", type=DAY, help="报送日期 Report date (default today; not in the future).")
@pass_state
@friendly
def record(state: State, task: str, unit: str, percent: int | None, done: bool, note: str,
           on: datetime | None) -> None:
    """记录进展 Record a progress report for a task (`reminders progress TASK …` does the same).

    Example: reminders progress 3 --unit 民族工作处 --percent 60 --note "完成宣讲12场"
    """
    from reminders.store.db import session_scope
    from reminders.tracking.progress import record_progress

    today = state.today()
    day = on.date() if on else today
    with session_scope(state.engine()) as session:
        report = record_progress(session, task, unit, note, on=day, percent=percent, done=done, today=today)
    click.echo(f"已记录 recorded: 任务 {task} · {unit} · {report.cycle}"
               + (" · 已办结 done" if done else "") + (f" · {report.percent}%" if report.percent is not None else ""))


@progress.command("list")
@click.argument("task")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_state
@friendly
def progress_list(state: State, task: str, fmt: str) -> None:
    """进展记录 A task's reports, newest first, with which report amended which.

    Example: reminders progress list 3
    """
    from reminders.columns import render_table
    from reminders.store.db import session_scope
    from reminders.text import writable
    from reminders.tracking.progress import history

    with session_scope(state.engine()) as session:
        lines = history(session, task)
    zone = state.config.schedule.tz
    if fmt == "json":
        echo_json_lines([{
            "id": line.id, "date": line.reported_on.isoformat(), "cycle": line.cycle, "unit": line.unit,
            "percent": line.percent, "done": line.done, "note": line.note, "status": line.status,
            "source": line.source, "recorded_at": aware(line.created_at).astimezone(zone).isoformat(),
            "supersedes": line.supersedes, "superseded_by": line.superseded_by,
        } for line in lines])
        return
    if not lines:
        click.echo(f"任务 {task} 尚无进展报告 (no reports yet)")
        return
    statuses, sources = REPORT_STATUS_LABELS["zh_CN"], REPORT_SOURCE_LABELS["zh_CN"]
    rows = [[str(line.id), line.reported_on.isoformat(), line.unit,
             "-" if line.percent is None else f"{line.percent}%", "是" if line.done else "否",
             statuses.get(line.status, line.status), sources.get(line.source, line.source),
             _amendment(line.supersedes, line.superseded_by), writable(line.note)] for line in lines]
    click.echo(render_table(["编号", "日期", "单位", "进度", "办结", "状态", "来源", "更正", "进展情况"], rows,
                            [6, 10, 16, 5, 4, 8, 6, 14, 50]))


def _amendment(supersedes: int | None, superseded_by: int | None) -> str:
    parts = ([f"更正 {supersedes}"] if supersedes else []) + ([f"已被 {superseded_by} 更正"] if superseded_by else [])
    return "；".join(parts) or "-"


@progress.command("amend")
@click.argument("report_id", metavar="ID", type=int)
@click.option("--percent", type=click.IntRange(0, 100), help="完成进度 Percent complete.")
@click.option("--done/--not-done", default=None, help="已办结或未办结 Finished or not.")
@click.option("--note", help="进展情况 What was done.")
@click.option("--date", "on", type=DAY, help="报送日期 Report date (not in the future).")
@pass_state
@friendly
def amend(state: State, report_id: int, percent: int | None, done: bool | None, note: str | None,
          on: datetime | None) -> None:
    """更正进展 Amend a report: a new report supersedes it; the old one is kept in the history but no longer counts.

    Example: reminders progress amend 12 --percent 70 --note "完成宣讲14场"
    """
    from reminders.store.db import session_scope
    from reminders.tracking.progress import amend_progress

    with session_scope(state.engine()) as session:
        report = amend_progress(session, report_id, today=state.today(), note=note, percent=percent, done=done,
                                on=on.date() if on else None)
    click.echo(f"已更正 amended: 报告 {report_id} → {report.id} · {report.reported_on.isoformat()}"
               + (" · 已办结 done" if report.done else "")
               + (f" · {report.percent}%" if report.percent is not None else ""))


@click.command()
@click.option("--as-of", type=DAY, help="按此日期计算 As of this date (default today).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_state
@friendly
def status(state: State, as_of: datetime | None, fmt: str) -> None:
    """任务状态 List every task with its state (unassigned, done, overdue, due_soon, lagging, on_track, ongoing).

    JSON gives each task's 序时进度 (expected_percent) beside its latest reported percentage (percent).

    Example: reminders status --as-of 2021-07-01 --format json
    """
    from reminders.store.db import session_scope
    from reminders.store.plans import active_plan
    from reminders.tracking.status import load_status

    day = as_of.date() if as_of else state.today()
    with collector_paused():
        with session_scope(state.engine()) as session:
            result = load_status(session, active_plan(session), day, state.config.schedule.due_soon_days,
                                 state.config.ladder.lag_points)
        _print_status(result, day, fmt)


def _print_status(result: PlanStatus, day: date, fmt: str) -> None:
    from reminders.columns import render_table
    from reminders.tracking.status import as_json

    if fmt == "json":
        echo_json_lines(map(as_json, result.lines))
    elif fmt == "csv":
        fields = ["number", "section", "title", "lead_unit", "co_units", "leader", "deadline", "state", "reported",
                  "expected_percent", "percent"]

        def row(line: TaskLine) -> list[object]:
            record = as_json(line)
            record["co_units"] = "、".join(line.co_units)
            return [record[f] for f in fields]

        echo_csv_rows(fields, map(row, result.lines))
    else:
        no_deadline = NO_DEADLINE["zh_CN"]
        rows = [[line.number, state_label(line.state), line.deadline.isoformat() if line.deadline else no_deadline,
                 "是" if line.reported else "否", line.lead_unit or "-", line.title] for line in result.lines]
        click.echo(f"《{result.plan.title}》 截至 as of {day.isoformat()}")
        click.echo(render_table(["序号", "状态", "时限", "本月报送", "牵头单位", "任务"], rows, [6, 8, 10, 8, 20, 50]))
        counts = Counter(line.state for line in result.lines)
        click.echo("  ".join(f"{state_label(state)} {counts[state]}" for state in STATES if counts[state]))
