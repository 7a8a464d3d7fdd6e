"""One benchmark stage, run in a fresh process so its peak RSS is the process's own.

    python -m benchmarks.stage STAGE --config TOML --data DIR --result JSON [--sample N] [--profile PROF] [-- ARGS]

STAGE: cli (ARGS: a reminders command line), progress, prepare, send, send-shared, clear, limit, naive. The result
file gets seconds (measured inside the process, start-up excluded), messages, DB queries (a before_cursor_execute
listener on every engine) and message sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, event, func, insert, select

from benchmarks import senders
from benchmarks.generate import CYCLE
from reminders import config as config_module
from reminders.config import Config
from reminders.delivery import dispatch
from reminders.mail.compose import KINDS, build_drafts
from reminders.store import db
from reminders.store.bulk import refresh_statistics
from reminders.store.models import LatestReport, OutboxBody, OutboxMessage, ProgressReport, Task, Unit
from reminders.store.plans import active_plan

QUERIES = [0]


def _count(*_args: Any) -> None:
    QUERIES[0] += 1


event.listen(Engine, "before_cursor_execute", _count)

Result = dict[str, float | int | str]


def run_cli(config: Config, data: Path, args: list[str]) -> Result:
    from reminders.cli.app import cli

    full = ["--config", config.path, *[a.replace("{data}", str(data)) for a in args]]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        start = time.perf_counter()
        cli.main(full, prog_name="reminders", standalone_mode=False)
        return {"seconds": time.perf_counter() - start}


def load_progress(config: Config, data: Path) -> Result:
    """progress.csv into progress_reports with one bulk Core insert (there is no CLI import for history).

    The rows stand for a year of reports sent one by one, over which a server's autovacuum would have gathered the
    table's statistics. A PostgreSQL without autovacuum (or whose autovacuum has not come round yet) would have
    none, so they are gathered here, once, as the product's own imports gather theirs."""
    engine = db.make_engine(config.database_url)
    start = time.perf_counter()
    with db.session_scope(engine) as session:
        plan = active_plan(session)
        tasks = {n: i for n, i in session.execute(select(Task.number, Task.id).where(Task.plan_id == plan.id))}
        units = {n: i for n, i in session.execute(select(Unit.name, Unit.id))}
        now = datetime.now(UTC)
        with (data / "progress.csv").open(encoding="utf-8", newline="") as handle:
            rows = [{"task_id": tasks[r["task"]], "unit_id": units[r["unit"]], "cycle": r["date"][:7],
                     "reported_on": date.fromisoformat(r["date"]), "percent": int(r["percent"]),
                     "done": r["done"] == "1", "note": r["note"], "created_at": now} for r in csv.DictReader(handle)]
        if rows:
            session.execute(insert(ProgressReport), rows)
            refresh_statistics(session, ProgressReport, LatestReport)  # the trigger filled the latter
    return {"seconds": time.perf_counter() - start, "rows": len(rows)}


def _fresh_outbox(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(OutboxMessage))


def _sizes(engine: Engine) -> Result:
    with engine.connect() as connection:
        total, largest = connection.execute(
            select(func.coalesce(func.sum(OutboxMessage.size), 0),
                   func.coalesce(func.max(OutboxMessage.size), 0))).one()
    return {"bytes": int(total), "max_bytes": int(largest)}


def prepare(config: Config) -> Result:
    engine = db.make_engine(config.database_url)
    _fresh_outbox(engine)
    QUERIES[0] = 0
    start = time.perf_counter()
    messages = dispatch.prepare_cycle(engine, config, CYCLE, KINDS)
    seconds, queries = time.perf_counter() - start, QUERIES[0]
    return {"seconds": seconds, "messages": messages, "queries": queries, **_sizes(engine)}


def send(config: Config) -> Result:
    engine = db.make_engine(config.database_url)
    _fresh_outbox(engine)
    QUERIES[0] = 0
    start = time.perf_counter()
    result = dispatch.send_cycle(engine, config, CYCLE, KINDS, echo=lambda _line: None)
    seconds, queries = time.perf_counter() - start, QUERIES[0]
    return {"seconds": seconds, "messages": len(result.sent), "failed": len(result.failed), "queries": queries,
            **_sizes(engine)}


def send_shared(config: Config) -> Result:
    """One of several senders started together on one cycle (the run empties the outbox once, before them): each
    records what is not recorded yet and sends what it claims; the counts say how the work was shared."""
    engine = db.make_engine(config.database_url)
    QUERIES[0] = 0
    start = time.perf_counter()
    result = dispatch.send_cycle(engine, config, CYCLE, KINDS, echo=lambda _line: None)
    seconds, queries = time.perf_counter() - start, QUERIES[0]
    return {"seconds": seconds, "messages": len(result.sent), "failed": len(result.failed), "queries": queries}


def clear(config: Config) -> Result:
    engine = db.make_engine(config.database_url)
    _fresh_outbox(engine)
    return {"seconds": 0.0}


def limit(config: Config) -> Result:
    """The outbox's bytes, as recorded by the send stage, through a bare aiosmtplib loop."""
    engine = db.make_engine(config.database_url)
    with engine.connect() as connection:
        rows = [(tuple(a for a in addresses.split(";") if a), data) for addresses, data in connection.execute(
            select(OutboxMessage.addresses, OutboxBody.data).join(OutboxBody).order_by(OutboxMessage.id))]
    smtp = config.smtp
    start = time.perf_counter()
    senders.bare_aiosmtplib(smtp.host, smtp.port, smtp.sender, rows, smtp.connections)
    return {"seconds": time.perf_counter() - start, "messages": len(rows)}


def naive(config: Config, sample: int) -> Result:
    """A cron script: render and build each message, then one new smtplib connection per message.

    The drafts (who gets what) are built once, untimed, which favours the naive sender."""
    engine = db.make_engine(config.database_url)
    with db.session_scope(engine) as session:
        drafts = build_drafts(session, config, CYCLE, KINDS)
    step = max(1, len(drafts) // max(1, sample))
    chosen = drafts[::step][:sample]
    start = time.perf_counter()
    senders.naive_smtplib(config, chosen)
    return {"seconds": time.perf_counter() - start, "messages": len(chosen), "population": len(drafts)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["cli", "progress", "prepare", "send", "send-shared", "clear", "limit",
                                          "naive"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the stage here")
    argv = sys.argv[1:] if argv is None else argv
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    config = config_module.load(args.config)
    stages: dict[str, Callable[[], Result]] = {
        "cli": lambda: run_cli(config, args.data, rest),
        "progress": lambda: load_progress(config, args.data),
        "prepare": lambda: prepare(config),
        "send": lambda: send(config),
        "send-shared": lambda: send_shared(config),
        "clear": lambda: clear(config),
        "limit": lambda: limit(config),
        "naive": lambda: naive(config, args.sample),
    }
    QUERIES[0] = 0
    profiler = cProfile.Profile() if args.profile else None
    with profiler or contextlib.nullcontext():
        result = stages[args.stage]()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    result.setdefault("queries", QUERIES[0])
    args.result.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
