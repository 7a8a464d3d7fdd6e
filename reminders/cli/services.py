"""The long-running services: the web app (with its receipt sender) and the scheduler daemon."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from reminders.cli.common import State, friendly, pass_state

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reminders.config import Config

log = logging.getLogger("reminders.serve")
SENDER_STOP_WAIT = 3.0  # seconds the server waits, when it stops, for the sender to finish a message in flight


def _send_receipts(config: Config, engine: Engine, stop: threading.Event) -> None:
    """The receipts the units' submissions recorded, every `[delivery] retry_every`, each once due, until `stop`."""
    from reminders.daemon import Finisher

    finisher = Finisher(config, engine, stop=stop, kinds=("receipt",))
    while not stop.is_set():
        try:
            finisher()
        except Exception:  # the next turn tries again: a sender that died would leave every receipt unsent
            log.exception("回执发送出错 (receipt sender failed); 下次重试 (tried again at its next turn)")
        stop.wait(config.delivery.retry_interval.total_seconds())


@contextmanager
def receipt_sender(config: Config, engine: Engine, enabled: bool) -> Iterator[None]:
    """A thread of its own (its own event loop and database connection, never one of the web's worker threads)
    that sends the receipts while the server runs; stopped with it, within `SENDER_STOP_WAIT` seconds.

    uvicorn hands SIGTERM/SIGINT back to the handler it found once it has shut down: that handler only asks the
    sender to stop, so the server's own shutdown comes first and the process then ends here, not by the signal.
    """
    if not enabled:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=_send_receipts, args=(config, engine, stop), name="receipt-sender",
                              daemon=True)  # a relay that never answers must not keep the process alive
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _number, _frame: stop.set())
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(SENDER_STOP_WAIT)
        if thread.is_alive():  # stuck on a relay that does not answer: what it claimed is put back at the next run
            log.warning("回执发送未在 %.0f 秒内结束，已放弃本次发送，未发出的回执留待下次 (the receipt sender did not "
                        "finish in %.0f s; unsent receipts stay pending)", SENDER_STOP_WAIT, SENDER_STOP_WAIT)


@click.command()
@click.option("--no-sender", is_flag=True,
              help="不发送回执，由守护进程 reminders run 发送 (send no receipts: the daemon sends them).")
@pass_state
@friendly
def serve(state: State, no_sender: bool) -> None:
    """运行网页服务 Serve the units' report form and the office dashboard ([web] bind, port; needs the web secret).

    The web process never talks to the mail server: a unit's receipt waits in the outbox, and a sender thread of
    `serve` (every [delivery] retry_every) sends it once its [web] receipt_window has passed. When the daemon runs,
    it sends them: start `serve --no-sender`.

    Example: REMINDERS_WEB_SECRET=… reminders serve --no-sender
    """
    from reminders.web import create_app
    from reminders.web.server import run as run_server

    config = state.config
    engine = state.engine()
    app = create_app(config, engine)
    click.echo(f"网页服务 serving on http://{config.web.bind}:{config.web.port} (links: {config.web.base_url})")
    with receipt_sender(config, engine, not no_sender):
        run_server(app, config)  # timeouts, limits, one trusted host, no access log (a link's token is in its path)


@click.command()
@pass_state
@friendly
def run(state: State) -> None:
    """运行调度守护进程 Run the scheduler daemon (cron jobs from [schedule]; stops on SIGTERM/SIGINT).

    Example: reminders --config /etc/reminders/reminders.toml run
    """
    from reminders.daemon import run_daemon

    run_daemon(state.config, state.engine())
