"""Import the plan and the tables into the database, each import all or nothing.

Callers run each import inside one transaction (db.session_scope): an error raised here rolls everything back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.intake.assignments import ASSIGNMENT_COLUMNS, import_assignments
from reminders.intake.changes import (
    PROGRESS_EVERY,
    ImportRefused,
    ImportReport,
    Progress,
    Rows,
    change,
    fit,
    skipped_rows,
)
from reminders.intake.planparse import ParsedPlan
from reminders.intake.tables import Column, Table, TableError, TableRow, parse_emails, raise_errors, read_table
from reminders.store.bulk import Values, changed, insert_returning, insert_rows, refresh_statistics, update_rows
from reminders.store.models import Leader, Plan, Section, Task, Unit

__all__ = ["ASSIGNMENT_COLUMNS", "LEADER_COLUMNS", "UNIT_COLUMNS", "ImportRefused", "ImportReport", "fingerprint",
           "import_assignments", "import_leaders", "import_plan", "import_units"]

UNIT_COLUMNS = (
    Column("name", ("单位", "单位名称", "name", "unit")),
    Column("email", ("邮箱", "电子邮箱", "email", "e-mail")),
    Column("contact", ("联系人", "contact"), required=False),
    Column("leader", ("分管领导", "leader"), required=False),
)
LEADER_COLUMNS = (
    Column("name", ("姓名", "name")),
    Column("title", ("职务", "title"), required=False),
    Column("email", ("邮箱", "电子邮箱", "email", "e-mail")),
    Column("scope", ("接收范围", "scope"), required=False),
)
TASK_FIELDS = ("section_id", "position", "subsection", "title", "text", "suggested_lead", "suggested_deadline",
               "removed_at")  # what a plan import sets
# The table column each database column is read from, to name it in an error.
TABLE_FIELDS = {"name": "name", "title": "title", "emails": "email", "contact": "contact", "leader_name": "leader",
                "scope": "scope"}
SCOPES = {"分管": "own", "own": "own", "": "own", "全部": "all", "all": "all"}


def fingerprint(parsed: ParsedPlan) -> str:
    payload = json.dumps(asdict(parsed), ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def import_plan(session: Session, parsed: ParsedPlan, source: str,
                progress: Progress | None = None) -> tuple[Plan, ImportReport]:
    """Create the plan, or update it in place when a plan with the same 索引号 (or title) exists."""
    report = ImportReport()
    now = datetime.now(UTC)
    plan = _find_plan(session, parsed)
    digest = fingerprint(parsed)
    if plan is not None and plan.fingerprint == digest:
        report.unchanged = len(parsed.tasks)
        return plan, report
    _refuse_repeated_numbers(parsed, source)
    if plan is None:
        plan = Plan(title=parsed.title, year=parsed.year, details={}, source=source, fingerprint="", imported_at=now)
        session.add(plan)
    plan.title, plan.year, plan.details = parsed.title, parsed.year, dict(parsed.metadata)
    plan.source, plan.fingerprint, plan.imported_at = source, digest, now
    session.flush()

    section_ids = _import_sections(session, plan.id, parsed)
    existing = {row.number: row for row in session.execute(
        select(Task.id, Task.number, *(getattr(Task, name) for name in TASK_FIELDS))
        .where(Task.plan_id == plan.id).order_by(Task.id)
    )}
    added: list[Values] = []
    updated: list[Values] = []
    total = len(parsed.tasks)
    for position, item in enumerate(parsed.tasks, start=1):
        if progress is not None and total >= PROGRESS_EVERY and (position % PROGRESS_EVERY == 0 or position == total):
            progress(position, total)
        fields: Values = {
            "section_id": section_ids.get(item.section), "position": position, "subsection": item.subsection,
            "title": item.title, "text": item.text, "suggested_lead": item.suggested_lead,
            "suggested_deadline": item.suggested_deadline, "removed_at": None,
        }
        task = existing.pop(item.number, None)
        if task is None:
            added.append({"plan_id": plan.id, "number": item.number, **fields})
            report.added.append(item.number)
        elif changed(task._mapping, fields):
            updated.append({"id": task.id, **fields})
            (report.added if task.removed_at is not None else report.updated).append(item.number)
            if task.removed_at is None:
                report.changes += _task_changes(item.number, task._mapping, fields)
        else:
            report.unchanged += 1
    removed = [task for task in existing.values() if task.removed_at is None]
    report.removed = [task.number for task in removed]
    insert_rows(session, Task, added)
    update_rows(session, Task, updated)
    update_rows(session, Task, [{"id": task.id, "removed_at": now} for task in removed])
    refresh_statistics(session, Section, Task)
    session.expire(plan, ["sections", "tasks"])
    return plan, report


def _task_changes(number: str, old: Mapping[Any, Any], new: Values) -> list[str]:
    lines = []
    if old["title"] != new["title"]:
        lines.append(change(f"任务 {number}", "标题", old["title"], new["title"]))
    elif old["text"] != new["text"]:
        lines.append(f"任务 {number}：正文有改动 (text changed)")
    if old["section_id"] != new["section_id"]:
        lines.append(f"任务 {number}：移到了另一部分 (moved to another section)")
    return lines


def _refuse_repeated_numbers(parsed: ParsedPlan, source: str) -> None:
    lines: dict[str, int] = {}
    for item in parsed.tasks:
        if item.number in lines:
            message = f"任务编号 {item.number} 与第 {lines[item.number]} 行重复 (duplicate task number)"
            raise ImportRefused(f"{source}, line {item.line}: {message}")
        lines[item.number] = item.line


def _import_sections(session: Session, plan_id: int, parsed: ParsedPlan) -> dict[int, int]:
    """Add or update the plan's sections; returns their ids by number. Sections the plan no longer has stay."""
    wanted = {s.number: {"label": s.label, "title": s.title} for s in parsed.sections}  # a repeated number: last wins
    ids: dict[int, int] = {}
    updated: list[Values] = []
    for row in session.execute(
        select(Section.id, Section.number, Section.label, Section.title).where(Section.plan_id == plan_id)
    ):
        ids[row.number] = row.id
        if row.number in wanted and changed(row._mapping, wanted[row.number]):
            updated.append({"id": row.id, **wanted[row.number]})
    added = [{"plan_id": plan_id, "number": number, **values} for number, values in wanted.items() if number not in ids]
    ids.update((row.number, row.id) for row in insert_returning(session, Section, added, Section.number, Section.id))
    update_rows(session, Section, updated)
    return ids


def _find_plan(session: Session, parsed: ParsedPlan) -> Plan | None:
    index_no = parsed.metadata.get("index_no")
    if index_no:
        for plan in session.scalars(select(Plan)):
            if plan.details.get("index_no") == index_no:
                return plan
    return session.scalars(select(Plan).where(Plan.title == parsed.title)).first()


class _Problems:
    """The errors of one row's cells, raised together."""

    def __init__(self) -> None:
        self.errors: list[TableError] = []

    def add(self, error: TableError) -> None:
        self.errors.append(error)

    def emails(self, table: Table, row: TableRow, value: str) -> str:
        try:
            return ";".join(parse_emails(value))
        except ValueError as exc:
            self.add(table.error(row, "email", str(exc)))
            return ""

    def check(self) -> None:
        raise_errors(self.errors)


def _import_directory(session: Session, table: Table, model: type[Leader] | type[Unit],
                      values_of: Callable[[TableRow], Values], progress: Progress | None) -> ImportReport:
    """Add or update people and units by name; the ones the table does not name are left as they are."""
    checked = Rows(table, progress)
    seen: dict[str, int] = {}
    rows: list[tuple[str, Values]] = []
    for row in checked.each():  # every row checked before any write
        with checked.guard():
            name = row.values["name"]
            if name in seen:
                raise table.error(row, "name", f"与第 {seen[name]} 行重复 (duplicate of row {seen[name]})")
            seen[name] = row.number
            rows.append((name, fit(table, row, model, {"name": name, **values_of(row)}, TABLE_FIELDS)))
    checked.check()
    existing = {row.name: row for row in session.execute(select(*model.__table__.columns))}
    report = ImportReport(skipped=skipped_rows(table))
    added: list[Values] = []
    updated: list[Values] = []
    for name, values in rows:
        old = existing.get(name)
        if old is None:
            added.append(values)
            report.added.append(name)
        elif changed(old._mapping, values):
            updated.append({"id": old.id, **values})
            report.updated.append(name)
            report.changes += [change(name, table.headers.get(TABLE_FIELDS[key], key), old._mapping[key] or "",
                                      value or "") for key, value in values.items() if old._mapping[key] != value]
        else:
            report.unchanged += 1
    insert_rows(session, model, added)
    update_rows(session, model, updated)
    if added or updated:
        refresh_statistics(session, model)
    return report


def import_leaders(session: Session, path: Path, *, progress: Progress | None = None) -> ImportReport:
    table = read_table(path, LEADER_COLUMNS, collect=True)

    def values_of(row: TableRow) -> Values:
        v = row.values
        scope = SCOPES.get(v.get("scope", "").strip().lower())
        problems = _Problems()
        emails = problems.emails(table, row, v["email"])
        if scope is None:
            problems.add(table.error(
                row, "scope", f"接收范围应为 分管/own 或 全部/all，而不是 “{v['scope']}” (unknown scope)"))
        problems.check()
        return {"title": v.get("title", ""), "emails": emails, "scope": scope}

    return _import_directory(session, table, Leader, values_of, progress)


def import_units(session: Session, path: Path, *, progress: Progress | None = None) -> ImportReport:
    table = read_table(path, UNIT_COLUMNS, collect=True)
    leader_names = set(session.scalars(select(Leader.name)))

    def values_of(row: TableRow) -> Values:
        v = row.values
        leader = v.get("leader") or None
        problems = _Problems()
        emails = problems.emails(table, row, v["email"])
        if leader is not None and leader not in leader_names:
            problems.add(table.error(row, "leader", f"未知的领导 “{leader}”，请先导入领导名单 (unknown leader)"))
        problems.check()
        return {"emails": emails, "contact": v.get("contact", ""), "leader_name": leader}

    return _import_directory(session, table, Unit, values_of, progress)
