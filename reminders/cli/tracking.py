"""Progress by hand, and every task's state."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime

import click

from reminders.cli.common import State, friendly, json_lines, pass_state
from reminders.vocabulary import NO_DEADLINE, STATES, state_label


@click.command()
@click.argument("task")
@click.option("--unit", required=True, help="报送单位 The reporting unit.")
@click.option("--percent", type=click.IntRange(0, 100), help="完成进度 Percent complete.")
@click.option("--done", is_flag=True, help="已办结 The task is finished (it stops being reminded).")
@click.option("--note", required=True, help="进展情况 What was done.")
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="报送日期 Report date (default today).")
@pass_state
@friendly
def progress(state: State, task: str, unit: str, percent: int | None, done: bool, note: str,
             on: datetime | None) -> None:
    """记录进展 Record a progress report for a task (history is kept).

    Example: reminders progress 3 --unit 民族工作处 --percent 60 --note "完成宣讲12场"
    """
    from reminders.store.db import session_scope
    from reminders.tracking.progress import record_progress

    day = on.date() if on else state.today()
    with session_scope(state.engine()) as session:
        report = record_progress(session, task, unit, note, on=day, percent=percent, done=done)
    click.echo(f"已记录 recorded: 任务 {task} · {unit} · {report.cycle}"
               + (" · 已办结 done" if done else "") + (f" · {report.percent}%" if report.percent is not None else ""))


@click.command()
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="按此日期计算 As of this date (default today).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_state
@friendly
def status(state: State, as_of: datetime | None, fmt: str) -> None:
    """任务状态 List every task with its state (unassigned, done, overdue, due_soon, on_track, ongoing).

    Example: reminders status --as-of 2021-07-01 --format json
    """
    from reminders.columns import render_table
    from reminders.store.db import session_scope
    from reminders.store.plans import active_plan
    from reminders.tracking.status import as_json, load_status

    day = as_of.date() if as_of else state.today()
    with session_scope(state.engine()) as session:
        result = load_status(session, active_plan(session), day, state.config.schedule.due_soon_days)
    records = [as_json(line) for line in result.lines]
    if fmt == "json":
        click.echo(json_lines(records))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        fields = ["number", "section", "title", "lead_unit", "co_units", "leader", "deadline", "state", "reported"]
        writer.writerow(fields)
        for record in records:
            record["co_units"] = "、".join(record["co_units"])  # type: ignore[arg-type]
            writer.writerow([record[f] for f in fields])
        click.echo(buffer.getvalue(), nl=False)
    else:
        no_deadline = NO_DEADLINE["zh_CN"]
        rows = [[line.number, state_label(line.state), line.deadline.isoformat() if line.deadline else no_deadline,
                 "是" if line.reported else "否", line.lead_unit or "-", line.title] for line in result.lines]
        click.echo(f"《{result.plan.title}》 截至 as of {day.isoformat()}")
        click.echo(render_table(["序号", "状态", "时限", "本月报送", "牵头单位", "任务"], rows, [6, 8, 10, 8, 20, 50]))
        counts = Counter(line.state for line in result.lines)
        click.echo("  ".join(f"{state_label(state)} {counts[state]}" for state in STATES if counts[state]))
