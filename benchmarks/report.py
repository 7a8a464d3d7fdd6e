"""Medians, ratios, the printed table and the targets of the issue."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Run = dict[str, Any]
COLUMNS = ("stage", "seconds", "msgs/s", "vs limit", "vs naive", "peak RSS", "DB queries")
WIDTHS = (44, 9, 9, 9, 9, 10, 11)


def stage_labels(delays: Sequence[float], naive_samples: dict[float, int]) -> list[tuple[str, str]]:
    labels = [("generate", "generate data (not in ratios)"), ("import-plan", "plan import (reminders import-plan)"),
              ("import-directory", "leaders + units import"), ("import-assignments", "assignment import"),
              ("progress", "progress history (bulk insert)"), ("status", "status, all tasks (json)"),
              ("prepare", "cycle: build+render+record (prepare_cycle)")]
    for d in delays:
        labels += [(f"send@{d:g}", f"send: whole cycle, {d:g} ms replies"),
                   (f"send2@{d:g}", f"send: 2 senders sharing it, {d:g} ms"),
                   (f"limit@{d:g}", f"limit: bare aiosmtplib, {d:g} ms"),
                   (f"naive@{d:g}", f"naive: smtplib/msg, {d:g} ms, {naive_samples[d]} sampled")]
    return labels


def rate(run: Run) -> float | None:
    return run["messages"] / run["seconds"] if run.get("messages") and run["seconds"] > 0 else None


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio_runs(numerators: list[Run], denominators: list[Run]) -> float | None:
    """Median over repeats of the per-repeat ratio of message rates (both measured in the same repeat)."""
    ratios = []
    for a, b in zip(numerators, denominators, strict=False):
        ra, rb = rate(a), rate(b)
        if ra and rb:
            ratios.append(ra / rb)
    return median(ratios)


@dataclass
class Row:
    key: str
    label: str
    seconds: float | None
    rate: float | None
    vs_limit: float | None
    vs_naive: float | None
    rss_mb: float | None
    queries: float | None


def summarise(results: dict[str, list[Run]], delays: Sequence[float], labels: list[tuple[str, str]]) -> list[Row]:
    rows = []
    for key, label in labels:
        runs = results.get(key, [])
        if not runs:
            continue
        vs_limit = vs_naive = None
        if "@" in key:
            kind, delay = key.split("@")
            if kind != "limit":
                vs_limit = ratio_runs(runs, results.get(f"limit@{delay}", []))
            if kind != "naive":
                vs_naive = ratio_runs(runs, results.get(f"naive@{delay}", []))
        rows.append(Row(key, label, median([r["seconds"] for r in runs]), median([rate(r) for r in runs]),
                        vs_limit, vs_naive, median([r.get("rss_mb") for r in runs]),
                        median([r.get("queries") for r in runs])))
    return rows


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def table(rows: list[Row]) -> str:
    lines = ["".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(COLUMNS, WIDTHS,
                                                                                           strict=True)))]
    lines.append("-" * sum(WIDTHS))
    for row in rows:
        cells = (row.label, _fmt(row.seconds, ".3f"), _fmt(row.rate, ".1f"), _fmt(row.vs_limit, ".2f", "x"),
                 _fmt(row.vs_naive, ".1f", "x"), _fmt(row.rss_mb, ".0f", " MB"), _fmt(row.queries, ".0f"))
        lines.append("".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS,
                                                                                                 strict=True))))
    return "\n".join(lines)


@dataclass
class Target:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: not measured


def targets(rows: list[Row], delays: Sequence[float], queries: dict[int, dict[str, float]],
            help_s: float, idle: float, tasks: int) -> list[Target]:
    by = {r.key: r for r in rows}
    out = []
    first, last = f"{min(delays):g}", f"{max(delays):g}"
    if (send := by.get(f"send@{first}")) and send.vs_limit is not None:
        out.append(Target(f"whole cycle vs limit, {first} ms replies", f"{send.vs_limit:.0%}", ">= 60%",
                          send.vs_limit >= 0.6))
    if (send := by.get(f"send@{last}")) and send.vs_naive is not None:
        out.append(Target(f"whole cycle vs naive, {last} ms replies", f"{send.vs_naive:.1f}x", ">= 10x",
                          send.vs_naive >= 10))
    for d in dict.fromkeys((first, last)):  # once where there is one delay
        one, two = by.get(f"send@{d}"), by.get(f"send2@{d}")
        if one and two and one.rate and two.rate:
            # measured, not judged: the run fails if a message went twice or not at all (run.two_senders)
            out.append(Target(f"2 senders vs 1, {d} ms replies", f"{two.rate / one.rate:.2f}x",
                              "each message once", True))
    if len(queries) >= 2:
        (small_u, small), (big_u, big) = sorted(queries.items())[:1] + sorted(queries.items())[-1:]
        text = ", ".join(f"{k} {small[k]:.0f} -> {big[k]:.0f}" for k in ("prepare", "send"))
        out.append(Target(f"DB queries per cycle, {small_u} -> {big_u} units", text, "constant",
                          all(big[k] <= small[k] for k in ("prepare", "send"))))
    rss = [r.rss_mb for k in ("prepare", f"send@{first}") if (r := by.get(k)) and r.rss_mb is not None]
    if rss:
        out.append(Target("peak RSS of a cycle", f"{max(rss):.0f} MB", "<= 300 MB", max(rss) <= 300))
    if (status := by.get("status")) and status.seconds is not None:
        out.append(Target(f"status of {tasks} tasks", f"{status.seconds:.2f} s", "<= 2 s (at 100,000)",
                          status.seconds <= 2))
    if (imp := by.get("import-assignments")) and imp.seconds is not None:
        out.append(Target(f"import of {tasks} assignment rows", f"{imp.seconds:.2f} s", "<= 20 s (at 100,000)",
                          imp.seconds <= 20))
    out.append(Target("reminders --help", f"{help_s:.3f} s", "<= 0.3 s", help_s <= 0.3))
    out.append(Target("daemon CPU between jobs", f"{idle:.2%} of a core", "~0 (<= 0.5%)", idle <= 0.005))
    return out


def targets_text(items: list[Target]) -> str:
    width = max(len(t.name) for t in items)
    marks = {True: "met", False: "MISSED", None: "-"}
    return "\n".join(f"  {t.name.ljust(width)}  {t.measured:>22}  target {t.goal:<20} {marks[t.met]}" for t in items)
