"""The benchmark suite at tiny sizes, so it cannot rot: every stage runs and reports numbers (no timing asserted)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.generate import Sizes, generate, task_numbers
from benchmarks.report import stage_labels
from reminders.intake.deadlines import parse_deadline
from reminders.intake.planparse import read_plan

ROOT = Path(__file__).resolve().parent.parent


def test_the_generated_plan_and_tables_are_in_the_projects_formats(tmp_path: Path) -> None:
    generate(Sizes(units=12, tasks=40, leaders=3), tmp_path, seed=3)
    plan = read_plan(tmp_path / "plan.txt")
    assert [t.number for t in plan.tasks] == [str(n) for n in range(1, 41)]
    assert plan.year == 2025
    assert all(80 <= len(t.text) <= 400 and t.text.startswith(t.title) for t in plan.tasks)
    with (tmp_path / "assignments.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["序号"] for r in rows] == [t.number for t in plan.tasks]
    for row in rows:
        parse_deadline(row["完成时限"], 2025)
    with (tmp_path / "progress.csv").open(encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == ["task", "unit", "date", "percent", "done", "note"]


def test_plans_past_999_tasks_restart_numbering_in_each_sub_level() -> None:
    numbers = [n for _, _, n in task_numbers(2500)]
    assert numbers[0] == "1.1.1" and len(set(numbers)) == 2500


def test_a_tiny_run_prints_every_stage_and_writes_numbers(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--db", "sqlite", "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for _, label in stage_labels([0.0, 20.0], {0.0: 10, 20.0: 2}):
        assert label in result.stdout
    for text in ("reminders --help", "daemon idle CPU", "DB queries per cycle", "targets:"):
        assert text in result.stdout
    data = json.loads(out.read_text())
    sqlite = data["databases"]["sqlite"]
    rows = {row["key"]: row for row in sqlite["rows"]}
    assert len(rows) == len(stage_labels([0.0, 20.0], {0.0: 10, 20.0: 2}))
    assert all(row["seconds"] > 0 for row in rows.values())
    for key in ("prepare", "send@0", "send2@0", "limit@0", "naive@0", "send@20", "send2@20", "limit@20", "naive@20"):
        assert rows[key]["rate"] > 0, key
    for delay in ("0", "20"):  # two senders shared the cycle, each message sent by one of them
        (pair,) = sqlite["runs"][f"send2@{delay}"]
        assert len(pair["shares"]) == 2 and sum(pair["shares"]) == sqlite["messages"]
    assert rows["send@0"]["vs_limit"] > 0 and rows["send@20"]["vs_naive"] > 0
    assert sqlite["messages"] > 0 and rows["prepare"]["rss_mb"] > 0 and rows["prepare"]["queries"] > 0
    assert data["help_seconds"] > 0 and data["idle_cpu"] >= 0
    assert data["server_counts"]["0ms"] > 0
