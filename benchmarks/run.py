"""Run the whole benchmark suite and print one table per database.

    python -m benchmarks.run [--units 10000 --tasks 100000 --leaders 500] [--db sqlite|postgres|both]
                             [--repeat 3] [--quick] [--json PATH] [--profile DIR]

Every stage runs in a fresh process (its peak RSS is that process's ru_maxrss); each repeat starts from an empty
database. Two SMTP sinks (benchmarks.smtp_server) run in their own processes on 127.0.0.1: one replying at once,
one delaying each reply by 20 ms. Ratios are taken within each repeat, then the median is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.databases import Database, pg_url, write_config
from benchmarks.generate import AS_OF
from benchmarks.probes import PYTHON, ROOT, SmtpSink, StageFailed, help_seconds, idle_cpu, run_stage


@dataclass
class Options:
    units: int
    tasks: int
    leaders: int
    dbs: list[str]
    repeat: int
    quick: bool
    connections: int
    delays: list[float]
    naive_sample: int
    scale_divisor: int
    work: Path
    profile: Path | None = None
    naive_samples: dict[float, int] = field(default_factory=dict)


class Bench:
    def __init__(self, options: Options, sinks: dict[float, SmtpSink]) -> None:
        self.o = options
        self.sinks = sinks
        self.log = options.work / "stages.log"
        self.log.write_text("")

    def stage(self, name: str, config: Path, data: Path, *args: str, sample: int = 0,
              profile: str = "", result: str = "result.json") -> dict[str, Any]:
        path = self.o.work / result
        command = [PYTHON, "-m", "benchmarks.stage", name, "--config", str(config), "--data", str(data),
                   "--result", str(path)]
        if sample:
            command += ["--sample", str(sample)]
        if profile and self.o.profile:
            command += ["--profile", str(self.o.profile / f"{profile}.prof")]
        return run_stage([*command, *(["--", *args] if args else [])], path, self.log)

    def configs(self, database: Database) -> dict[float, Path]:
        return {d: write_config(self.o.work / f"{database.name}-{d:g}ms.toml", database, sink.port,
                                self.o.connections) for d, sink in self.sinks.items()}

    def load(self, database: Database, data: Path, runs: dict[str, list[dict[str, Any]]]) -> dict[float, Path]:
        """An empty database, then every import; the timings go into `runs`."""
        database.reset()
        configs = self.configs(database)
        config = configs[self.o.delays[0]]
        self.stage("cli", config, data, "init")
        add = runs.setdefault
        add("import-plan", []).append(self.stage("cli", config, data, "import-plan", "{data}/plan.txt"))
        leaders = self.stage("cli", config, data, "import-leaders", "{data}/leaders.csv")
        units = self.stage("cli", config, data, "import-units", "{data}/units.csv")
        add("import-directory", []).append({"seconds": leaders["seconds"] + units["seconds"],
                                            "rss_mb": max(leaders["rss_mb"], units["rss_mb"]),
                                            "queries": leaders["queries"] + units["queries"]})
        add("import-assignments", []).append(self.stage("cli", config, data, "import-assignments",
                                                        "{data}/assignments.csv"))
        add("progress", []).append(self.stage("progress", config, data))
        return configs

    def repeat(self, database: Database, data: Path, runs: dict[str, list[dict[str, Any]]]) -> None:
        configs = self.load(database, data, runs)
        config = configs[self.o.delays[0]]
        runs.setdefault("status", []).append(self.stage("cli", config, data, "status", "--as-of",
                                                        AS_OF.isoformat(), "--format", "json"))
        runs.setdefault("prepare", []).append(self.stage("prepare", config, data))
        for delay, sink in self.sinks.items():
            key = f"{delay:g}"
            for kind in ("send", "limit", "naive"):
                before = sink.count()
                run = self.stage(kind, configs[delay], data, sample=self.o.naive_samples[delay])
                received = sink.count() - before
                if received != run["messages"]:
                    raise StageFailed(f"{kind}@{key}ms: the server received {received} of {run['messages']}")
                runs.setdefault(f"{kind}@{key}", []).append(run)
            runs.setdefault(f"send2@{key}", []).append(
                self.two_senders(configs[delay], data, sink, runs[f"send@{key}"][-1]["messages"]))

    def two_senders(self, config: Path, data: Path, sink: SmtpSink, messages: int) -> dict[str, Any]:
        """The whole cycle by two `send` processes started together on an emptied outbox, as two hosts sharing one
        database would run it: every message sent once between them (the sink counts what it received)."""
        self.stage("clear", config, data)
        before = sink.count()
        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            pair = list(pool.map(lambda n: self.stage("send-shared", config, data, result=f"result-{n}.json"),
                                 (1, 2)))
        wall = time.perf_counter() - start
        received = sink.count() - before
        sent = sum(int(run["messages"]) for run in pair)
        if not received == sent == messages:
            raise StageFailed(f"two senders: {messages} messages in the cycle, the senders said they sent {sent}, "
                              f"the server received {received}")
        # Each process's own seconds, start-up excluded as in every stage: the later of the two to finish.
        return {"seconds": max(run["seconds"] for run in pair), "wall": wall, "messages": sent,
                "rss_mb": max(r["rss_mb"] for r in pair),
                "queries": sum(r["queries"] for r in pair), "shares": [r["messages"] for r in pair]}

    def profile(self, database: Database, data: Path) -> None:
        """cProfile stats of the cycle and of the whole send (first delay), on the last repeat's database;
        an extra pass, so the timed repeats run without the profiler's overhead."""
        config = self.configs(database)[self.o.delays[0]]
        self.stage("prepare", config, data, profile=f"{database.kind}-prepare")
        self.stage("send", config, data, profile=f"{database.kind}-send")

    def queries(self, database: Database, data: Path) -> dict[str, float]:
        """DB queries of prepare_cycle and of send_cycle (which records then sends every message)."""
        configs = self.load(database, data, {})
        config = configs[self.o.delays[0]]
        prepare = self.stage("prepare", config, data)
        send = self.stage("send", config, data)
        return {"prepare": prepare["queries"], "send": send["queries"], "messages": send["messages"]}


def generate(o: Options, folder: Path, units: int, tasks: int, leaders: int) -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-m", "benchmarks.generate", "--units", str(units), "--tasks", str(tasks),
                    "--leaders", str(leaders), "--out", str(folder)], check=True, cwd=ROOT)
    return time.perf_counter() - start


def run(o: Options) -> dict[str, Any]:
    started = datetime.now().astimezone()
    sinks = {d: SmtpSink(d, o.work).start() for d in o.delays}
    bench = Bench(o, sinks)
    out: dict[str, Any] = {"date": started.isoformat(timespec="seconds"), "cores": os.cpu_count(),
                           "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
                           "sizes": {"units": o.units, "tasks": o.tasks, "leaders": o.leaders},
                           "repeat": o.repeat, "connections": o.connections, "databases": {}}
    try:
        data, small = o.work / "data", o.work / "data-small"
        generated = generate(o, data, o.units, o.tasks, o.leaders)
        small_units = max(1, o.units // o.scale_divisor)
        generate(o, small, small_units, max(1, o.tasks // o.scale_divisor), max(1, o.leaders // o.scale_divisor))
        idle_db: Database | None = None
        for kind in o.dbs:
            url = pg_url()
            database = Database(kind, o.work, f"bench_{os.getpid()}", url)
            scaled = Database(kind, o.work, f"bench_{os.getpid()}_small", url)
            runs: dict[str, list[dict[str, Any]]] = {"generate": [{"seconds": generated}]}
            try:
                for _ in range(o.repeat):
                    bench.repeat(database, data, runs)
                if o.profile:
                    bench.profile(database, data)
                queries = {small_units: bench.queries(scaled, small)}
                sizes = runs["prepare"][0]
                queries[o.units] = {"prepare": sizes["queries"], "send": runs[f"send@{o.delays[0]:g}"][0]["queries"],
                                    "messages": sizes["messages"]}
                if idle_db is None or kind == "sqlite":
                    idle_db = database
                out["databases"][kind] = _finish(o, runs, queries, sizes)
            finally:
                scaled.drop()
                if kind == "postgres":
                    database.drop()
        out["help_seconds"] = help_seconds(3 if o.quick else 10)
        out["idle_cpu"] = _idle(o, idle_db, sinks)
    finally:
        out["server_counts"] = {f"{d:g}ms": sink.stop() for d, sink in sinks.items()}
    for result in out["databases"].values():
        items = report.targets([report.Row(**r) for r in result["rows"]], o.delays, result["queries_by_units"],
                               out["help_seconds"], out["idle_cpu"], o.tasks)
        result["targets"] = [asdict(t) for t in items]
    return out


def _idle(o: Options, database: Database | None, sinks: dict[float, SmtpSink]) -> float:
    if database is None:
        return 0.0
    if database.kind == "postgres":  # its schema is gone: the daemon needs any initialised database
        database = Database("sqlite", o.work, "idle")
        database.reset()
    config = write_config(o.work / "idle.toml", database, next(iter(sinks.values())).port, 1, idle=True)
    if database.name == "idle":
        subprocess.run([PYTHON, "-m", "reminders", "--config", str(config), "init"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    return idle_cpu(config, settle=1.0 if o.quick else 2.0, window=2.0 if o.quick else 5.0)


def _finish(o: Options, runs: dict[str, list[dict[str, Any]]], queries: dict[int, dict[str, float]],
            sizes: dict[str, Any]) -> dict[str, Any]:
    labels = report.stage_labels(o.delays, o.naive_samples)
    rows = report.summarise(runs, o.delays, labels)
    return {"rows": [asdict(r) for r in rows], "runs": runs, "queries_by_units": queries,
            "messages": sizes["messages"], "bytes": sizes["bytes"], "max_bytes": sizes["max_bytes"]}


def print_report(o: Options, out: dict[str, Any]) -> None:
    print(f"reminders benchmark, {out['date']}: {out['cores']} cores, {out['machine']}")
    print(f"sizes: {o.units} units, {o.tasks} tasks, {o.leaders} leaders; {o.connections} SMTP connections; "
          f"medians of {o.repeat} repeat(s); naive sender: a spread sample, its msgs/s extrapolated")
    for kind, result in out["databases"].items():
        print(f"\n== {kind}: {result['messages']} messages per cycle, {result['bytes'] / 1e6:.1f} MB, "
              f"largest {result['max_bytes'] / 1e3:.0f} kB ==")
        print(report.table([report.Row(**r) for r in result["rows"]]))
        print(f"{'reminders --help (median)':44}{out['help_seconds']:9.3f}")
        print(f"{'daemon idle CPU (share of a core)':44}{out['idle_cpu']:9.2%}")
        for units, q in sorted(result["queries_by_units"].items()):
            print(f"DB queries per cycle at {units} units: prepare_cycle {q['prepare']:.0f}, send_cycle "
                  f"{q['send']:.0f} ({q['send'] / max(q['messages'], 1):.1f} per message, {q['messages']} messages)")
        print("targets:")
        print(report.targets_text([report.Target(**t) for t in result["targets"]]))
    print(f"\nSMTP sinks received: {out['server_counts']}")


def parse(argv: list[str] | None = None) -> tuple[Options, Path | None, bool]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int)
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--leaders", type=int)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, short probes (a smoke run)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--delays", default="0,20", help="server reply delays in ms (default 0,20)")
    parser.add_argument("--naive-sample", type=int, help="messages the naive sender sends (default 500; /5 if delayed)")
    parser.add_argument("--scale-divisor", type=int, default=10, help="the query-scaling run is this much smaller")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", type=Path, help="after the repeats, profile the cycle and send stages into DIR")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed after)")
    a = parser.parse_args(argv)
    quick = a.quick
    work = a.work or Path(tempfile.mkdtemp(prefix="reminders-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    delays = [float(d) for d in a.delays.split(",")]
    sample = a.naive_sample or (10 if quick else 500)
    o = Options(
        units=a.units or (20 if quick else 10_000), tasks=a.tasks or (60 if quick else 100_000),
        leaders=a.leaders or (3 if quick else 500), dbs=["sqlite", "postgres"] if a.db == "both" else [a.db],
        repeat=a.repeat or (1 if quick else 3), quick=quick, connections=a.connections, delays=delays,
        naive_sample=sample, scale_divisor=a.scale_divisor, work=work, profile=a.profile,
        naive_samples={d: max(1, sample // 5) if d > 0 else sample for d in delays},
    )
    return o, a.json, a.work is None


def main(argv: list[str] | None = None) -> None:
    o, json_path, temporary = parse(argv)
    try:
        out = run(o)
        print_report(o, out)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    finally:
        if temporary:
            shutil.rmtree(o.work, ignore_errors=True)


if __name__ == "__main__":
    main()
