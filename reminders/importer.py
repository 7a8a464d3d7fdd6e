"""Import the plan and the tables into the database, each import all or nothing.

Callers run each import inside one transaction (db.session_scope): an error raised here rolls everything back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from reminders.deadlines import DeadlineError, parse_deadline
from reminders.models import Assignment, CoUnit, Leader, Plan, Section, Task, Unit
from reminders.planparse import ParsedPlan
from reminders.tables import Column, Table, TableError, TableRow, parse_emails, read_table, split_list

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
SCOPES = {"分管": "own", "own": "own", "": "own", "全部": "all", "all": "all"}


class ImportError_(Exception):
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


def active_plan(session: Session) -> Plan:
    """The plan the tables refer to: the one imported last."""
    plan = session.scalars(select(Plan).order_by(Plan.id.desc()).limit(1)).first()
    if plan is None:
        raise ImportError_("尚未导入工作计划，请先运行 reminders import-plan (no plan imported yet)")
    return plan


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
    if plan is None:
        plan = Plan(title=parsed.title, year=parsed.year, details={}, source=source, fingerprint="", imported_at=now)
        session.add(plan)
    plan.title, plan.year, plan.details = parsed.title, parsed.year, dict(parsed.metadata)
    plan.source, plan.fingerprint, plan.imported_at = source, digest, now
    session.flush()

    sections = {s.number: s for s in session.scalars(select(Section).where(Section.plan_id == plan.id))}
    for parsed_section in parsed.sections:
        section = sections.get(parsed_section.number)
        if section is None:
            section = sections[parsed_section.number] = Section(plan_id=plan.id, number=parsed_section.number)
            session.add(section)
        section.label, section.title = parsed_section.label, parsed_section.title
    session.flush()

    existing = {t.number: t for t in session.scalars(select(Task).where(Task.plan_id == plan.id))}
    for position, item in enumerate(parsed.tasks, start=1):
        section_id = sections[item.section].id if item.section in sections else None
        fields = {
            "section_id": section_id, "position": position, "subsection": item.subsection, "title": item.title,
            "text": item.text, "suggested_lead": item.suggested_lead, "suggested_deadline": item.suggested_deadline,
            "removed_at": None,
        }
        task = existing.pop(item.number, None)
        if task is None:
            session.add(Task(plan_id=plan.id, number=item.number, **fields))
            report.added.append(item.number)
        elif any(getattr(task, key) != value for key, value in fields.items()):
            was_removed = task.removed_at is not None
            for key, value in fields.items():
                setattr(task, key, value)
            (report.added if was_removed else report.updated).append(item.number)
        else:
            report.unchanged += 1
    for task in existing.values():
        if task.removed_at is None:
            task.removed_at = now
            report.removed.append(task.number)
    session.flush()
    return plan, report


def _find_plan(session: Session, parsed: ParsedPlan) -> Plan | None:
    index_no = parsed.metadata.get("index_no")
    if index_no:
        for plan in session.scalars(select(Plan)):
            if plan.details.get("index_no") == index_no:
                return plan
    return session.scalars(select(Plan).where(Plan.title == parsed.title)).first()


def _upsert(report: ImportReport, existing: object | None, name: str, values: dict[str, object]) -> None:
    if existing is None:
        report.added.append(name)
    elif any(getattr(existing, key) != value for key, value in values.items()):
        report.updated.append(name)
    else:
        report.unchanged += 1
    if existing is not None:
        for key, value in values.items():
            setattr(existing, key, value)


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


def _import_directory(session: Session, table: Table, model: type[Leader] | type[Unit],
                      values_of: Callable[[TableRow], dict[str, object]]) -> ImportReport:
    """Add or update people and units by name; the ones the table does not name are left as they are."""
    _unique_names(table)
    report = ImportReport()
    existing = {item.name: item for item in session.scalars(select(model))}
    for row in table.rows:
        name, values = row.values["name"], values_of(row)
        item = existing.get(name)
        _upsert(report, item, name, values)
        if item is None:
            session.add(model(name=name, **values))
    session.flush()
    return report


def import_leaders(session: Session, path: Path) -> ImportReport:
    table = read_table(path, LEADER_COLUMNS)

    def values_of(row: TableRow) -> dict[str, object]:
        v = row.values
        scope = SCOPES.get(v.get("scope", "").strip().lower())
        if scope is None:
            raise table.error(row, "scope", f"接收范围应为 分管/own 或 全部/all，而不是 “{v['scope']}” (unknown scope)")
        return {"title": v.get("title", ""), "emails": _emails(table, row, v["email"]), "scope": scope}

    return _import_directory(session, table, Leader, values_of)


def import_units(session: Session, path: Path) -> ImportReport:
    table = read_table(path, UNIT_COLUMNS)
    leader_names = set(session.scalars(select(Leader.name)))

    def values_of(row: TableRow) -> dict[str, object]:
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
    tasks = {t.number: t for t in session.scalars(
        select(Task).where(Task.plan_id == plan.id, Task.removed_at.is_(None))
        .options(selectinload(Task.assignment).selectinload(Assignment.co_units))
    )}
    units = {u.name: u for u in session.scalars(select(Unit))}
    leaders = {leader.name: leader for leader in session.scalars(select(Leader))}
    year = plan.year or datetime.now(UTC).year
    report, seen = ImportReport(), dict[str, int]()

    def unit(row: TableRow, column: str, name: str) -> Unit:
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
        try:
            deadline = parse_deadline(v.get("deadline", ""), year)
        except DeadlineError as exc:
            raise table.error(row, "deadline", str(exc)) from None
        task = tasks[number]
        values = {
            "leader_id": leaders[leader_name].id if leader_name else None, "lead_unit_id": lead.id,
            "deadline_text": deadline.text, "deadline": deadline.due, "deadline_kind": deadline.kind,
        }
        co_ids = [u.id for u in co_units if u.id != lead.id]
        assignment = task.assignment
        before = None if assignment is None else [c.unit_id for c in assignment.co_units]
        changed_co = before is not None and before != co_ids
        _upsert(report, assignment, number, values)
        if changed_co and number not in report.updated:
            report.updated.append(number)
            report.unchanged -= 1
        if assignment is None:
            assignment = Assignment(task_id=task.id, **values)
            session.add(assignment)
            task.assignment = assignment
        if before != co_ids:
            if before:
                assignment.co_units.clear()
                session.flush()
            assignment.co_units = [CoUnit(unit_id=uid, position=i) for i, uid in enumerate(dict.fromkeys(co_ids))]
    session.flush()
    return report
