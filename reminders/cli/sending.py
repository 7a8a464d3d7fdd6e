"""Sending: a cycle's messages sent or previewed, and the outbox that records them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import click

from reminders.cli.common import (
    KIND_CHOICES,
    State,
    aware,
    check_cycle,
    cycle_and_day,
    cycle_options,
    echo_json_lines,
    friendly,
    pass_state,
)
from reminders.cli.usage import CYCLE
from reminders.vocabulary import KIND_LABELS, OUTBOX_STATE_LABELS, shown_time


@click.command()
@cycle_options
@click.option("--dry-run", is_flag=True, help="只列出，不记录不发送 List what would be sent; change nothing.")
@click.option("--force", is_flag=True, help="计划年度以外的月份也发送 Send a month outside the plan's year.")
@pass_state
@friendly
def send(state: State, cycle: str | None, kind: str, as_of: datetime | None, dry_run: bool, force: bool) -> None:
    """发送月度提醒与汇总 Build, record and send a cycle's reminders, 督办通知 and digests, or a day's 临期提醒.

    Every message is recorded in the outbox before it is sent: sending the same cycle again sends nothing twice,
    and every pending message of the cycle is tried at once, whatever its wait (an address the relay put off gets
    it; one that has it never twice). Exits 1 if any message failed or is left pending (each is listed, with
    why and when it is tried again) or the database went away. Ctrl-C or SIGTERM stops after the messages in
    flight, puts the rest back and prints the command that finishes the month (exit 130 or 143).

    Without --as-of a month's mails are computed for the day its cron fires, moved off a holiday by `[schedule]
    shift`. Heads-ups (临期提醒) are a day's: --as-of names the day, --cycle may be left out.

    Example: reminders send --cycle 2021-06 --kind reminders

    Example: reminders send --kind headsups --as-of 2021-06-24
    """
    from reminders.cli.sendrun import run_send
    from reminders.mail.compose import build_drafts
    from reminders.store.db import session_scope

    cycle, day = cycle_and_day(cycle, kind, as_of)
    engine = state.engine()
    check_cycle(engine, cycle, force)
    kinds = KIND_CHOICES[kind]
    if dry_run:
        with session_scope(engine) as session:
            drafts = build_drafts(session, state.config, cycle, kinds, day)
        for draft in drafts:
            click.echo(f"将发送 would send  {draft.kind} {draft.recipient_name} <{', '.join(draft.addresses)}>"
                       f"  ({len(getattr(draft.context, 'tasks', ()))} tasks)")
        click.echo(f"共 {len(drafts)} 封 (dry run: nothing recorded or sent)")
        return
    run_send(state, engine, cycle, kind, day, force)


@click.command()
@cycle_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="输出目录 Folder.")
@pass_state
@friendly
def preview(state: State, cycle: str | None, kind: str, as_of: datetime | None, out: Path) -> None:
    """预览邮件 Write every message of a cycle (or a day's heads-ups) as .eml files, without recording or sending.

    Example: reminders preview --cycle 2021-06 --out preview/

    Example: reminders preview --kind headsups --as-of 2021-06-24 --out preview/
    """
    from reminders.delivery import dispatch

    cycle, day = cycle_and_day(cycle, kind, as_of)
    failed: list[str] = []
    paths = dispatch.preview_cycle(state.engine(), state.config, cycle, KIND_CHOICES[kind], out, day, failed)
    for path in paths:
        click.echo(str(path))
    click.echo(f"共 {len(paths)} 封 written to {out}")
    if failed:
        click.echo(f"无法生成的邮件 messages that cannot be built ({len(failed)}):")
        for label in failed:
            click.echo(f"  {label}")
        raise SystemExit(1)


STATE_NAMES = OUTBOX_STATE_LABELS["zh_CN"]
KIND_NAMES = KIND_LABELS["zh_CN"]


@click.group(invoke_without_command=True)
@click.option("--cycle", type=CYCLE, help="只看这个月 Only this month.")
@click.option("--state", "state_filter", type=click.Choice(list(STATE_NAMES)), help="只看这个状态 Only this state.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@friendly
def outbox(ctx: click.Context, cycle: str | None, state_filter: str | None, fmt: str) -> None:
    """发件记录 What was sent to whom and when: the office's evidence of 催办.

    Example: reminders outbox --cycle 2021-06 --state failed
    """
    if ctx.invoked_subcommand is not None:
        return
    from reminders.columns import render_table
    from reminders.delivery import outbox as box
    from reminders.store.db import session_scope

    state = ctx.ensure_object(State)
    zone = state.config.schedule.tz
    with session_scope(state.engine()) as session:
        rows = box.list_messages(session, cycle, state_filter)
        records = [{**box.as_json(row), "created_at": aware(row.created_at).astimezone(zone).isoformat(),
                    "sent_at": aware(row.sent_at).astimezone(zone).isoformat() if row.sent_at else None,
                    "next_attempt_at": aware(row.next_attempt_at).astimezone(zone).isoformat()
                    if row.next_attempt_at and row.state == "pending" else None}
                   for row in rows]
        sent = [shown_time(row.sent_at, zone) if row.sent_at else "-" for row in rows]
        details = [_addresses(box.as_json(row), zone) for row in rows]
    if fmt == "json":
        echo_json_lines(records)
        return
    table = [[str(r["id"]), str(r["cycle"]), KIND_NAMES.get(str(r["kind"]), str(r["kind"])), str(r["recipient"]),
              STATE_NAMES.get(str(r["state"]), str(r["state"])), str(r["attempts"]), when, detail]
             for r, when, detail in zip(records, sent, details, strict=True)]
    click.echo(render_table(["编号", "周期", "类别", "收件人", "状态", "次数", "发送时间", "地址 / 错误"], table,
                            [8, 7, 4, 20, 6, 4, 22, 120]))
    counts = Counter(str(record["state"]) for record in records)
    click.echo("  ".join(f"{label} {counts[state]}" for state, label in STATE_NAMES.items() if counts[state])
               or "发件箱为空 (the outbox is empty)")


def _addresses(record: dict[str, Any], zone: tzinfo) -> str:
    """The addresses, each with its own outcome where they fared differently; the next try; the relay's answers
    last, as they are long and the column is cut at its width."""
    deliveries: list[dict[str, str | None]] = record["deliveries"]
    states = {entry["state"] for entry in deliveries}
    if len(states) <= 1:
        text = "; ".join(str(entry["address"]) for entry in deliveries)
        answers = str(record["last_error"] or "")
    else:
        text = "; ".join(f"{entry['address']} {STATE_NAMES.get(str(entry['state']), entry['state'])}"
                         for entry in deliveries)
        answered = [entry for entry in deliveries if entry["answer"] and entry["state"] != "sent"]
        answers = "; ".join(str(entry["answer"]) if len(answered) == 1 else f"{entry['address']}: {entry['answer']}"
                            for entry in answered)
    if record["state"] == "pending" and record["next_attempt_at"]:
        moment = datetime.fromisoformat(str(record["next_attempt_at"]))
        text += f"  下次重试 next try {shown_time(moment, zone)}"
    return f"{text}  {answers}" if answers else text


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="所有失败的邮件 Every failed message.")
@pass_state
@friendly
def outbox_retry(state: State, ids: tuple[int, ...], all_failed: bool) -> None:
    """重新排队 Requeue failed messages; the next send (or the daemon's next run) sends them.

    Example: reminders outbox retry --all-failed
    """
    from reminders.delivery import outbox as box
    from reminders.store.db import session_scope

    if bool(ids) == all_failed:
        raise click.UsageError("请给出邮件编号或 --all-failed 其中之一 (give IDs or --all-failed)")
    with session_scope(state.engine()) as session:
        requeued = box.requeue(session, None if all_failed else list(ids))
    click.echo(f"已重新排队 requeued {len(requeued)}: {', '.join(map(str, requeued)) or '-'}")
