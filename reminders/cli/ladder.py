"""`reminders ladder`: who stands where on the 督办 ladder in a cycle, and why."""

from __future__ import annotations

import click

from reminders.cli.common import State, echo_json_lines, friendly, pass_state
from reminders.cli.usage import CYCLE
from reminders.vocabulary import RUNG_LABELS


@click.command()
@click.option("--cycle", type=CYCLE, help="月度周期 The month, YYYY-MM (default: this month).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_state
@friendly
def ladder(state: State, cycle: str | None, fmt: str) -> None:
    """督办阶梯 Who stands where on the ladder in a cycle: 催办 (rung 1), 督办通知 (2) or 通报 (3), the tasks, why,
    the notice's number and the state of the message that carries it, if recorded.

    The rules are judged on the day the month's reminders fire (督办通知 go out with them).

    Example: reminders ladder --cycle 2021-06 --format json
    """
    from reminders.columns import render_table
    from reminders.mail.compose import fire_time
    from reminders.store.db import session_scope
    from reminders.store.plans import active_plan
    from reminders.tracking.cycles import check_cycle_in_plan, cycle_of
    from reminders.tracking.ladder import standings

    config = state.config
    cycle = cycle or cycle_of(state.today())
    day = fire_time(config, cycle, "escalation").date()
    with session_scope(state.engine()) as session:
        check_cycle_in_plan(active_plan(session), cycle)  # the rules count the plan year's cycles
        found = standings(session, config, cycle, day)
    if fmt == "json":
        echo_json_lines([{
            "unit": s.unit, "rung": s.rung, "rung_label": RUNG_LABELS["zh_CN"][s.rung], "number": s.number,
            "recorded": s.recorded, "message_state": s.message_state,
            "tasks": [{"number": c.number, "title": c.title, "reason": c.reason,
                       "deadline": c.deadline.isoformat() if c.deadline else None,
                       "days_overdue": c.days_overdue, "missed_cycles": list(c.missed)} for c in s.causes],
        } for s in found])
        return
    click.echo(f"督办阶梯 ladder {cycle}，按 {day.isoformat()} 计算 (as of the reminders' day)")
    if not found:
        click.echo("无 (nobody on the ladder)")
        return
    rows = [[RUNG_LABELS["zh_CN"][s.rung], s.unit, "、".join(c.number for c in s.causes),
             "；".join(dict.fromkeys(c.reason.split(" (")[0] for c in s.causes)), s.number or "-",
             s.message_state or "-"] for s in found]
    click.echo(render_table(["阶梯", "单位", "任务", "原因", "文号", "邮件"], rows, [8, 16, 12, 30, 18, 8]))
