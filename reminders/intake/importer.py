"""Import the plan and the tables into the database, each import all or nothing.

Callers run each import inside one transaction (db.session_scope): an error raised here rolls everything back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from reminders.errors import ReminderError
from reminders.intake.deadlines import Deadline, DeadlineError, parse_deadline
from reminders.intake.planparse import ParsedPlan
from reminders.intake.tables import Column, Table, TableError, TableRow, parse_emails, read_table, split_list
from reminders.store.bulk import Values, changed, delete_in, insert_returning, insert_rows, update_rows
from reminders.store.models import Assignment, Base, CoUnit, Leader, Plan, Section, Task, Unit
from reminders.store.plans import active_plan

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
ASSIGNMENT_COLUMNS = (
    Column("task", ("序号", "任务序号", "task", "number")),
    Column("leader", ("责任领导", "leader"), required=False),
    Column("lead_unit", ("牵头单位", "lead_unit", "lead unit"), required=False),
    Column("units", ("责任单位", "responsible_units", "units"), required=False),
    Column("co_units", ("配合单位", "co_units", "co-units", "co units"), required=False),
    Column("deadline", ("完成时限", "时限", "完成时间", "deadline"), required=False),
)
SECTION_ROW = re.compile(r"^[一二三四五六七八九十]+[、.．]")  # a section heading row inside a breakdown table
TASK_FIELDS = ("section_id", "position", "subsection", "title", "text", "suggested_lead", "suggested_deadline",
               "removed_at")  # what a plan import sets
ASSIGNMENT_FIELDS = ("leader_id", "lead_unit_id", "deadline_text", "deadline", "deadline_kind")
# The table column each database column is read from, to name it in an error.
TABLE_FIELDS = {"name": "name", "title": "title", "emails": "email", "contact": "contact", "leader_name": "leader",
                "scope": "scope", "deadline_text": "deadline", "leader_id": "leader", "lead_unit_id": "lead_unit",
                "deadline": "deadline", "deadline_kind": "deadline"}
SCOPES = {"分管": "own", "own": "own", "": "own", "全部": "all", "all": "all"}


class ImportRefused(ReminderError):
    """An import refused as a whole (no plan, a table naming what is not there)."""


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def fingerprint(parsed: ParsedPlan) -> str:
    payload = json.dumps(asdict(parsed), ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def import_plan(session: Session, parsed: ParsedPlan, source: str) -> tuple[Plan, ImportReport]:
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
    for position, item in enumerate(parsed.tasks, start=1):
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
        else:
            report.unchanged += 1
    removed = [task for task in existing.values() if task.removed_at is None]
    report.removed = [task.number for task in removed]
    insert_rows(session, Task, added)
    update_rows(session, Task, updated)
    update_rows(session, Task, [{"id": task.id, "removed_at": now} for task in removed])
    session.expire(plan, ["sections", "tasks"])
    return plan, report


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


def _unique_names(table: Table) -> None:
    seen: dict[str, int] = {}
    for row in table.rows:
        name = row.values["name"]
        if name in seen:
            raise table.error(row, "name", f"与第 {seen[name]} 行重复 (duplicate of row {seen[name]})")
        seen[name] = row.number


def _emails(table: Table, row: TableRow, value: str) -> str:
    try:
        return ";".join(parse_emails(value))
    except ValueError as exc:
        raise table.error(row, "email", str(exc)) from None


def _fit(table: Table, row: TableRow, model: type[Base], values: Values) -> Values:
    """Refuse a value longer than its column, naming the row and column, before the database sees it (PostgreSQL
    would refuse it naming neither; SQLite would keep it)."""
    for key, value in values.items():
        column = model.__table__.c[key]
        length = getattr(column.type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise table.error(row, TABLE_FIELDS[key],
                              f"内容过长：{len(value)} 字，最多 {length} 字 (longer than {length} characters)")
    return values


def _import_directory(session: Session, table: Table, model: type[Leader] | type[Unit],
                      values_of: Callable[[TableRow], Values]) -> ImportReport:
    """Add or update people and units by name; the ones the table does not name are left as they are."""
    _unique_names(table)
    rows = [(row.values["name"], _fit(table, row, model, {"name": row.values["name"], **values_of(row)}))
            for row in table.rows]  # every row checked before any write
    existing = {row.name: row for row in session.execute(select(*model.__table__.columns))}
    report = ImportReport()
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
        else:
            report.unchanged += 1
    insert_rows(session, model, added)
    update_rows(session, model, updated)
    return report


def import_leaders(session: Session, path: Path) -> ImportReport:
    table = read_table(path, LEADER_COLUMNS)

    def values_of(row: TableRow) -> Values:
        v = row.values
        scope = SCOPES.get(v.get("scope", "").strip().lower())
        if scope is None:
            raise table.error(row, "scope", f"接收范围应为 分管/own 或 全部/all，而不是 “{v['scope']}” (unknown scope)")
        return {"title": v.get("title", ""), "emails": _emails(table, row, v["email"]), "scope": scope}

    return _import_directory(session, table, Leader, values_of)


def import_units(session: Session, path: Path) -> ImportReport:
    table = read_table(path, UNIT_COLUMNS)
    leader_names = set(session.scalars(select(Leader.name)))

    def values_of(row: TableRow) -> Values:
        v = row.values
        leader = v.get("leader") or None
        if leader is not None and leader not in leader_names:
            raise table.error(row, "leader", f"未知的领导 “{leader}”，请先导入领导名单 (unknown leader)")
        return {"emails": _emails(table, row, v["email"]), "contact": v.get("contact", ""), "leader_name": leader}

    return _import_directory(session, table, Unit, values_of)


def import_assignments(session: Session, path: Path) -> ImportReport:
    """Assign tasks of the active plan; tasks the file does not name keep their assignment."""
    plan = active_plan(session)
    table = read_table(path, ASSIGNMENT_COLUMNS)
    if "lead_unit" not in table.headers and "units" not in table.headers:
        raise TableError(table.path, "缺少“牵头单位”或“责任单位”列 (no lead_unit or units column)")
    tasks = {row.number: row for row in session.execute(
        select(Task.number, Task.id.label("task_id"), Assignment.id.label("assignment_id"),
               *(getattr(Assignment, name) for name in ASSIGNMENT_FIELDS))
        .outerjoin(Assignment, Assignment.task_id == Task.id)
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None))
    )}
    rows = _assignment_rows(session, table, plan, tasks)  # every row checked before any write
    co_before: dict[int, list[int]] = {}
    for assignment_id, unit_id in session.execute(
        select(CoUnit.assignment_id, CoUnit.unit_id).join(Assignment).join(Task)
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None)).order_by(CoUnit.assignment_id, CoUnit.position)
    ):
        co_before.setdefault(assignment_id, []).append(unit_id)

    report = ImportReport()
    added: list[Values] = []
    updated: list[Values] = []
    co_units: dict[int, list[int]] = {}  # by task id: the co-units of new assignments and of changed ones
    replaced: list[int] = []  # assignments whose old co-units go
    for number, values, co_ids in rows:
        task = tasks[number]
        if task.assignment_id is None:
            added.append({"task_id": task.task_id, **values})
            co_units[task.task_id] = co_ids
            report.added.append(number)
            continue
        values_changed = changed(task._mapping, values)
        co_changed = co_before.get(task.assignment_id, []) != co_ids
        if values_changed:
            updated.append({"id": task.assignment_id, **values})
        if co_changed:
            co_units[task.task_id] = co_ids
            if task.assignment_id in co_before:
                replaced.append(task.assignment_id)
        if values_changed or co_changed:
            report.updated.append(number)
        else:
            report.unchanged += 1

    insert_rows(session, Assignment, added)
    update_rows(session, Assignment, updated)
    assignment_ids = {task.task_id: task.assignment_id for task in tasks.values()}
    if added:  # a SELECT of the new ids: quicker on PostgreSQL than INSERT … RETURNING (psycopg's executemany)
        assignment_ids.update((row.task_id, row.id) for row in session.execute(
            select(Assignment.task_id, Assignment.id).join(Task)
            .where(Task.plan_id == plan.id, Task.removed_at.is_(None))
        ))
    delete_in(session, CoUnit, CoUnit.assignment_id, replaced)
    insert_rows(session, CoUnit, [
        {"assignment_id": assignment_ids[task_id], "unit_id": unit_id, "position": position}
        for task_id, ids in co_units.items() for position, unit_id in enumerate(ids)
    ])
    return report


def _assignment_rows(session: Session, table: Table, plan: Plan,
                     tasks: Mapping[str, Any]) -> list[tuple[str, Values, list[int]]]:
    """Each row of the table as (task number, the assignment's columns, its co-units' ids in order)."""
    units = {row.name: row for row in session.execute(select(Unit.name, Unit.id, Unit.leader_name))}
    leaders: dict[str, int] = {name: id_ for name, id_ in session.execute(select(Leader.name, Leader.id))}
    year = plan.year or datetime.now(UTC).year
    deadlines: dict[str, Deadline] = {}
    rows: list[tuple[str, Values, list[int]]] = []
    seen: dict[str, int] = {}

    def unit(row: TableRow, column: str, name: str) -> Row[str, int, str | None]:
        if name not in units:
            raise table.error(row, column, f"未知的单位 “{name}”，请先导入单位名单 (unknown unit)")
        return units[name]

    for row in table.rows:
        v = row.values
        if SECTION_ROW.match(v["task"]):
            continue
        number = v["task"].rstrip(".．、")
        if number not in tasks:
            raise table.error(row, "task", f"计划中没有第 {number} 项任务 (task not in the plan “{plan.title}”)")
        if number in seen:
            raise table.error(row, "task", f"任务 {number} 与第 {seen[number]} 行重复 (duplicate task)")
        seen[number] = row.number
        responsible = split_list(v.get("units", ""))  # 责任单位: the first listed leads
        if v.get("lead_unit"):
            lead = unit(row, "lead_unit", v["lead_unit"])
        elif responsible:
            lead = unit(row, "units", responsible.pop(0))
        else:
            column = "lead_unit" if "lead_unit" in table.headers else "units"
            raise table.error(row, column, "缺少牵头单位 (no lead unit)")
        co_units = [unit(row, "units", name) for name in responsible]
        co_units += [unit(row, "co_units", name) for name in split_list(v.get("co_units", ""))]
        leader_name = v.get("leader") or lead.leader_name
        if leader_name and leader_name not in leaders:
            raise table.error(row, "leader", f"未知的领导 “{leader_name}” (unknown leader)")
        phrase = v.get("deadline", "")
        if phrase not in deadlines:
            try:
                deadlines[phrase] = parse_deadline(phrase, year)
            except DeadlineError as exc:
                raise table.error(row, "deadline", str(exc)) from None
        deadline = deadlines[phrase]
        values: Values = {
            "leader_id": leaders[leader_name] if leader_name else None, "lead_unit_id": lead.id,
            "deadline_text": deadline.text, "deadline": deadline.due, "deadline_kind": deadline.kind,
        }
        co_ids = list(dict.fromkeys(u.id for u in co_units if u.id != lead.id))  # in order, without repeats
        rows.append((number, _fit(table, row, Assignment, values), co_ids))
    return rows
