"""A bigger cycle for the crash and concurrency tests: 40 units, 4 leaders, 60 tasks, prepared once and copied.

`write_inputs` writes the plan text and the three tables; `prepare` runs `init` and the imports through the CLI.
A prepared SQLite file is copied per trial with SQLite's backup API (which also carries what is still in the WAL);
a prepared PostgreSQL schema is reused, its outbox and ladder steps emptied between trials (the only state a send
changes).
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import ROOT, Cli, write_config

CYCLE = "2021-06"
# The messages of CYCLE: 40 reminders, 4 digests and 5 督办通知 — to the units leading a task due 2021年4月底前 (tasks
# 8, 20, 32, 44, 56: units 8, 20, 32, 4 and 16), over 30 days overdue on 21 June, each with its 分管领导 in Cc.
CYCLE_MESSAGES = 49
CYCLE_STEPS = 5  # one rung-2 step per overdue task of the 督办通知
UNITS = 40
TASKS = 60
SECTIONS = ("一", "二", "三", "四", "五")

# (name, title, scope): the first sees the whole plan, the others the tasks they are responsible for.
LEADERS = (
    ("赵局长", "局长", "全部"),
    ("钱副局长", "副局长", "分管"),
    ("孙副局长", "副局长", "分管"),
    ("李组长", "驻局纪检监察组组长", "分管"),
)
DEADLINES = ("2021年6月底前", "2021年10月", "年底前", "三季度末", "2021年9月30日", "持续推进", "上半年",
             "2021年12月31日", "2021年4月底前", "长期坚持", "2021年6月25日", "全年")


@dataclass(frozen=True)
class Inputs:
    plan: Path
    leaders: Path
    units: Path
    assignments: Path


def unit_name(number: int) -> str:
    return f"测试单位{number:02d}"


def unit_address(number: int) -> str:
    return f"unit{number:02d}@example.org"


def leader_address(number: int) -> str:
    return f"leader{number}@example.org"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_inputs(folder: Path, units: int = UNITS, tasks: int = TASKS) -> Inputs:
    """The plan (5 sections, `tasks` tasks) and the tables: every task assigned, every unit leads at least one
    (while `tasks` >= `units`)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_section = tasks // len(SECTIONS)
    lines = ["2021年测试工作计划", ""]
    for index, numeral in enumerate(SECTIONS):
        lines.append(f"{numeral}、第{numeral}部分测试工作")
        for number in range(index * per_section + 1, (index + 1) * per_section + 1):
            lines.append(f"{number}.完成第{number}项测试任务。按要求推进第{number}项工作，按时报送进展情况。")
    plan = folder / "plan.txt"
    plan.write_text("\n".join(lines) + "\n", encoding="utf-8")

    leaders = _write_csv(folder / "leaders.csv", ["姓名", "职务", "邮箱", "接收范围"],
                         [[name, title, leader_address(n), scope]
                          for n, (name, title, scope) in enumerate(LEADERS, start=1)])
    # Units are looked after by the three 分管 leaders in turn.
    unit_table = _write_csv(folder / "units.csv", ["单位", "邮箱", "联系人", "分管领导"],
                            [[unit_name(n), unit_address(n), f"联系人{n:02d}", LEADERS[1 + n % 3][0]]
                             for n in range(1, units + 1)])
    rows = []
    for task in range(1, tasks + 1):
        lead = (task - 1) % units + 1
        co_units = [unit_name((lead + step - 1) % units + 1) for step in (7, 13) if task % (step % 5 + 2) == 0]
        rows.append([str(task), "", unit_name(lead), "、".join(co_units), DEADLINES[task % len(DEADLINES)]])
    assignments = _write_csv(folder / "assignments.csv", ["序号", "责任领导", "牵头单位", "配合单位", "完成时限"],
                             rows)
    return Inputs(plan, leaders, unit_table, assignments)


def prepare(config: Path, inputs: Inputs) -> None:
    """Create the schema and import everything into the database `config` names."""
    cli = Cli(config)
    cli("init")
    cli("import-plan", str(inputs.plan))
    cli("import-leaders", str(inputs.leaders))
    cli("import-units", str(inputs.units))
    cli("import-assignments", str(inputs.assignments))


def prepared_config(folder: Path, db_url: str, smtp_port: int, smtp: str = "", schedule: str = "") -> Path:
    """A config for the database at `db_url` delivering by SMTP to 127.0.0.1:`smtp_port`; `smtp` and `schedule`
    are lines added to those sections."""
    path = write_config(folder / "reminders.toml", db_url, transport="smtp", smtp_port=smtp_port, extra=schedule)
    if smtp:
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("\n[schedule]\n", f"\n{smtp}\n[schedule]\n", 1), encoding="utf-8")
    return path


def copy_sqlite(template_url: str, target: Path) -> str:
    """A private copy of a prepared SQLite database; returns its URL."""
    source_path = make_url(template_url).database
    assert source_path
    source, copy = sqlite3.connect(source_path), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return f"sqlite:///{target}"


def sqlite_template_at(folder: Path) -> str:
    """A prepared SQLite database under `folder`; returns its URL (copy it with `copy_sqlite`, never use it)."""
    url = f"sqlite:///{folder / 'template.sqlite3'}"
    prepare(prepared_config(folder, url, 25), write_inputs(folder / "inputs"))
    return url


@contextmanager
def postgres_schema(base: str, folder: Path) -> Iterator[str]:
    """A prepared PostgreSQL schema of its own (dropped afterwards); yields its URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"create schema {schema}"))
    url = f"{base}?options=-csearch_path%3D{schema}"
    try:
        prepare(prepared_config(folder, url, 25), write_inputs(folder / "inputs"))
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"drop schema {schema} cascade"))
        admin.dispose()


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    cycle: str
    recipient_key: str
    addresses: str
    message_id: str
    state: str
    attempts: int
    claimed_by: str | None


def outbox_rows(db_url: str) -> list[Row]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            result = connection.execute(text(
                "select id, kind, cycle, recipient_key, addresses, message_id, state, attempts, claimed_by"
                " from outbox order by id"))
            return [Row(*row) for row in result]
    finally:
        engine.dispose()


def reminders_process(config: Path, *args: str, output: Path) -> subprocess.Popen[bytes]:
    """`python -m reminders --config CONFIG ARGS…` as a real process, its output (both streams) into `output`."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "reminders", "--config", str(config), *args], cwd=ROOT,
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def reset_outbox(db_url: str) -> None:
    """Forget every message recorded and the ladder steps they took: the database is back to its prepared state."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("delete from ladder_steps"))
            connection.execute(text("delete from outbox"))
    finally:
        engine.dispose()


def set_plan_year(db_url: str, year: int) -> None:
    """The prepared plan made a plan of `year`: the daemon sends only within its plan's year."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("update plans set year = :year"), {"year": year})
    finally:
        engine.dispose()


LANES = 2  # trials run two at a time, each on its own database and SMTP server


def trial_database(database: str, template: str, folder: Path) -> str:
    """A trial's own database: a copy of the SQLite template in `folder`, or the lane's PostgreSQL schema emptied of
    its outbox (each lane has a schema of its own)."""
    if database == "sqlite":
        return copy_sqlite(template, folder / "reminders.sqlite3")
    reset_outbox(template)
    return template
