"""A `send` run at the command line: Ctrl-C and SIGTERM stop it cleanly, a terminal sees the recording's progress,
and whatever ends it (done, interrupted, the database gone) ends with the figures so far and, if the month is not
finished, the exact command that finishes it."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from types import FrameType
from typing import TYPE_CHECKING

import click

from reminders.cli.common import DAY_KIND, KIND_CHOICES, State

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reminders.delivery.dispatch import SendResult

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it


class Stop(threading.Event):
    """Set by the first SIGINT or SIGTERM; the second quits at once (the next run puts that run's claims back)."""

    signum: int | None = None


@contextmanager
def stoppable() -> Iterator[Stop]:
    stop = Stop()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stop.signum = signum
        stop.set()
        # os.write, not print: the handler may run while the main thread is in the middle of writing stdout.
        os.write(2, "\n正在停止：发送中的邮件发完即停，再按一次 Ctrl-C 立即退出 "
                    "(stopping after the messages in flight; press Ctrl-C again to quit at once)\n".encode())

    previous = {signum: signal.signal(signum, handle) for signum in EXIT_STATUS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def progress_line() -> Callable[[int], None] | None:
    """On a terminal, one line rewritten in place as drafts are built and recorded; elsewhere (a log) nothing."""
    if not sys.stdout.isatty():
        return None

    def show(count: int) -> None:
        click.echo(f"\r生成并记录 built and recorded: {count}", nl=False)

    return show


def finish_command(state: State, cycle: str, kind: str, as_of: date | None, force: bool = False) -> str:
    words = ["reminders"]
    if state.config_path:
        words += ["--config", state.config_path]
    # A day's heads-ups are named by their day alone (cli.common.cycle_and_day).
    words += ["send", "--kind", kind] if kind == DAY_KIND and as_of else ["send", "--cycle", cycle, "--kind", kind]
    if as_of:
        words += ["--as-of", as_of.isoformat()]
    if force:
        words.append("--force")
    return shlex.join(words)


def run_send(state: State, engine: Engine, cycle: str, kind: str, as_of: date | None, force: bool = False) -> None:
    """Send the cycle and report; exits 1 if a message failed or is left pending (the relay put it off or was away)
    or the database went away, 130 or 143 when a SIGINT or SIGTERM stopped the run."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.orm import Session

    from reminders.delivery import dispatch, outbox
    from reminders.store.db import masked

    kinds = KIND_CHOICES[kind]
    result = dispatch.SendResult()
    progress = progress_line()
    shown = progress

    def echo(line: str) -> None:
        nonlocal shown
        if shown is not None:  # end the progress line before the first per-message line
            click.echo()
            shown = None
        click.echo(line)

    try:
        with stoppable() as stop:
            dispatch.send_cycle(engine, state.config, cycle, kinds, as_of, echo=echo, stop=stop, progress=progress,
                                result=result)
    except (OperationalError, InterfaceError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        echo(_summary(cycle, result))
        click.echo(f"错误：数据库 {masked(state.config.database_url)} 无法连接或写入，发送已停止 "
                   f"(error: the database cannot be reached or written; sending stopped): {reason}", err=True)
        click.echo(f"完成本月发送请在数据库恢复后运行 (to finish once the database is back, run): "
                   f"{finish_command(state, cycle, kind, as_of, force)}", err=True)
        sys.exit(1)
    if shown is not None:
        click.echo()
    if result.interrupted:
        with Session(engine) as session:
            pending = outbox.counts(session, cycle, kinds).get("pending", 0)
        click.echo(f"已中断 interrupted: {_summary(cycle, result)}, 放回待发送 put back {result.released}, "
                   f"待发送 left pending {pending}")
        click.echo(f"完成本月发送请运行 (to finish, run): {finish_command(state, cycle, kind, as_of, force)}")
        sys.exit(EXIT_STATUS.get(signal.Signals(stop.signum or signal.SIGINT), 130))
    click.echo(_summary(cycle, result))
    if result.halted or result.pending:
        _say_pending(state, engine, cycle, kind, as_of, force, result)
    if result.failed:  # listed at the very end, as they always were; they are not retried by themselves
        click.echo("失败的邮件不会自动重发，修正地址或服务器后重发 (failed messages are not retried by themselves; "
                   "once fixed, send them again): reminders outbox retry --all-failed, then "
                   + finish_command(state, cycle, kind, as_of, force))
        click.echo(f"失败的邮件 failed messages ({len(result.failed)}):")
        for label in result.failed:
            click.echo(f"  {label}")
    if result.failed or result.pending or result.halted:
        sys.exit(1)


def _say_pending(state: State, engine: Engine, cycle: str, kind: str, as_of: date | None, force: bool,
                 result: SendResult) -> None:
    """What is left pending, when it is tried again, and how to send it now."""
    from sqlalchemy.orm import Session

    from reminders.delivery import outbox
    from reminders.vocabulary import shown_time

    if result.halted:
        click.echo(f"发送已提前停止 the run stopped early: {result.halted}")
    if result.pending:
        click.echo(f"暂未送达、将自动重试的邮件 put off by the relay, tried again later ({len(result.pending)}):")
        for label in result.pending:
            click.echo(f"  {label}")
    with Session(engine) as session:
        left, earliest = outbox.pending_left(session, cycle, KIND_CHOICES[kind])
    if earliest:
        when = shown_time(earliest, state.config.schedule.tz)
        when_zh, when_en = f"将于 {when} 起", f"from {when}"
    else:
        every = state.config.delivery.retry_every
        when_zh, when_en = f"将在 {every} 内", f"within {every}"
    click.echo(f"待发送 {left} 封：运行中的守护进程 (reminders run) {when_zh}自动重试；也可在服务器恢复后立即运行 "
               f"(pending: {left}; the running daemon retries them {when_en}; or once the relay is back, run): "
               f"{finish_command(state, cycle, kind, as_of, force)}")


def _summary(cycle: str, result: SendResult) -> str:
    # "will retry" last: the figures read as they did before messages could be put off.
    return (f"周期 {cycle}: 新记录 recorded {result.recorded}, 已发送 sent {len(result.sent)}, "
            f"跳过(此前已发) skipped {result.skipped}, 失败 failed {len(result.failed)}, "
            f"待重试 will retry {len(result.pending)}")
