"""Import the task breakdown (任务分解表) into the active plan's assignments, all or nothing.

An extension the office approved (the latest approved row of deadline_changes, whose new date is the deadline now)
is the office's decision: a table that still carries the old deadline does not undo it unless asked to
(`replace_approved`); the import says which tasks kept it.

The optional 开始日期 column is where a task's 序时进度 starts (tracking.pace); a table without that column leaves
the start dates already imported as they are, an empty cell in it clears one.

The optional 交办日期 column is what a deadline counted from the assignment (3个工作日内, 5日内) counts from, in
the working days of the `[calendar]` section; only the date it resolves to is stored, beside the phrase as given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from reminders.intake.changes import ImportReport, Progress, Rows, change, fit, shown_deadline, skipped_rows
from reminders.intake.deadlines import Deadline, DeadlineError, NoAssignedDate, parse_deadline
from reminders.intake.tables import Column, Table, TableError, TableRow, parse_day, read_table, split_list
from reminders.store.bulk import Values, changed, delete_in, insert_rows, refresh_statistics, update_rows
from reminders.store.models import Assignment, CoUnit, DeadlineChange, Leader, Plan, Task, Unit
from reminders.store.plans import active_plan
from reminders.workdays import WorkCalendar

ASSIGNMENT_COLUMNS = (
    Column("task", ("序号", "任务序号", "task", "number")),
    Column("leader", ("责任领导", "leader"), required=False),
    Column("lead_unit", ("牵头单位", "lead_unit", "lead unit"), required=False),
    Column("units", ("责任单位", "responsible_units", "units"), required=False),
    Column("co_units", ("配合单位", "co_units", "co-units", "co units"), required=False),
    Column("deadline", ("完成时限", "时限", "完成时间", "deadline"), required=False),
    Column("start_date", ("开始日期", "开始时间", "start_date", "start date", "start"), required=False),
    Column("assigned", ("交办日期", "交办时间", "assigned", "assigned_date", "assigned date"), required=False),
)
SECTION_ROW = re.compile(r"^[一二三四五六七八九十]+[、.．]")  # a section heading row inside a breakdown table
ASSIGNMENT_FIELDS = ("leader_id", "lead_unit_id", "deadline_text", "deadline", "deadline_kind", "start_date")
TABLE_FIELDS = {"deadline_text": "deadline", "leader_id": "leader", "lead_unit_id": "lead_unit",
                "deadline": "deadline", "deadline_kind": "deadline", "start_date": "start_date"}
_DEADLINE = ("deadline_text", "deadline", "deadline_kind")


class _Names:
    """The unit and leader directories, by name and by id."""

    def __init__(self, units: Mapping[str, Row[str, int, str | None]], leaders: dict[str, int]) -> None:
        self.units, self.leaders = dict(units), leaders  # units by name: (name, id, leader_name)
        self._unit_names = {row.id: name for name, row in units.items()}
        self._leader_names = {id_: name for name, id_ in leaders.items()}

    def unit(self, unit_id: int | None) -> str:
        return self._unit_names.get(unit_id, "") if unit_id is not None else ""

    def leader(self, leader_id: int | None) -> str:
        return self._leader_names.get(leader_id, "") if leader_id is not None else ""


def import_assignments(session: Session, path: Path, *, replace_approved: bool = False,
                       progress: Progress | None = None, calendar: WorkCalendar | None = None) -> ImportReport:
    """Assign tasks of the active plan; tasks the file does not name keep their assignment. `calendar` (the
    config's `[calendar]`; default: the Chinese calendar) counts `N个工作日内` from a row's 交办日期."""
    plan = active_plan(session)
    table = read_table(path, ASSIGNMENT_COLUMNS, collect=True)
    if "lead_unit" not in table.headers and "units" not in table.headers:
        raise TableError(table.path, "缺少“牵头单位”或“责任单位”列 (no lead_unit or units column)")
    tasks = {row.number: row for row in session.execute(
        select(Task.number, Task.id.label("task_id"), Assignment.id.label("assignment_id"),
               *(getattr(Assignment, name) for name in ASSIGNMENT_FIELDS))
        .outerjoin(Assignment, Assignment.task_id == Task.id)
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None))
    )}
    units = {row.name: row for row in session.execute(select(Unit.name, Unit.id, Unit.leader_name))}
    names = _Names(units,
                   {name: id_ for name, id_ in session.execute(select(Leader.name, Leader.id))})
    rows = _assignment_rows(table, plan, tasks, names, progress, calendar)  # every row checked before any write
    co_before: dict[int, list[int]] = {}
    for assignment_id, unit_id in session.execute(
        select(CoUnit.assignment_id, CoUnit.unit_id).join(Assignment).join(Task)
        .where(Task.plan_id == plan.id, Task.removed_at.is_(None)).order_by(CoUnit.assignment_id, CoUnit.position)
    ):
        co_before.setdefault(assignment_id, []).append(unit_id)
    approved = _approved_deadlines(session, plan)

    report = ImportReport(skipped=skipped_rows(table))
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
        if task.assignment_id in approved and approved[task.assignment_id] == task.deadline \
                and values["deadline"] != task.deadline:
            values = _approved_conflict(report, number, task, values, replace_approved)
        values_changed = changed(task._mapping, values)
        co_changed = co_before.get(task.assignment_id, []) != co_ids
        if values_changed:
            updated.append({"id": task.assignment_id, **values})
            report.changes += _changes(number, task._mapping, values, names)
        if co_changed:
            co_units[task.task_id] = co_ids
            if task.assignment_id in co_before:
                replaced.append(task.assignment_id)
            old, new = ("、".join(map(names.unit, ids)) for ids in (co_before.get(task.assignment_id, []), co_ids))
            report.changes.append(change(f"任务 {number}", "配合单位", old, new))
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
    if added or updated or co_units:
        refresh_statistics(session, Assignment, CoUnit)
    return report


def _approved_deadlines(session: Session, plan: Plan) -> dict[int, date | None]:
    """Each assignment's latest approved extension: the date the office moved its deadline to."""
    return dict(session.execute(
        select(DeadlineChange.assignment_id, DeadlineChange.new_deadline).join(Assignment).join(Task)
        .where(Task.plan_id == plan.id, DeadlineChange.decision == "approved")
        .order_by(DeadlineChange.decided_at, DeadlineChange.id)
    ).all())


def _approved_conflict(report: ImportReport, number: str, task: Row[Any], values: Values,
                       replace_approved: bool) -> Values:
    office = shown_deadline(task.deadline_text, task.deadline)
    table = shown_deadline(values["deadline_text"], values["deadline"])
    if replace_approved:
        report.conflicts.append(f"任务 {number}：按 --replace-approved 以表为准，已批准的延期 {office} 改为 {table} "
                                f"(approved extension replaced by the table's deadline)")
        return values
    report.conflicts.append(f"任务 {number}：督查室已批准延期至 {office}，表中为 {table}，保留已批准的延期；"
                            f"以表为准请加 --replace-approved (kept the approved extension)")
    return {**values, **{key: getattr(task, key) for key in _DEADLINE}}


def _changes(number: str, old: Mapping[Any, Any], new: Values, names: _Names) -> list[str]:
    what = f"任务 {number}"
    lines = []
    if old["leader_id"] != new["leader_id"]:
        lines.append(change(what, "责任领导", names.leader(old["leader_id"]), names.leader(new["leader_id"])))
    if old["lead_unit_id"] != new["lead_unit_id"]:
        lines.append(change(what, "牵头单位", names.unit(old["lead_unit_id"]), names.unit(new["lead_unit_id"])))
    if any(old[key] != new[key] for key in _DEADLINE):
        lines.append(change(what, "完成时限", shown_deadline(old["deadline_text"], old["deadline"]),
                            shown_deadline(new["deadline_text"], new["deadline"])))
    if "start_date" in new and old["start_date"] != new["start_date"]:
        lines.append(change(what, "开始日期", _shown_day(old["start_date"]), _shown_day(new["start_date"])))
    return lines


def _shown_day(day: date | None) -> str:
    return day.isoformat() if day else ""


def _assignment_rows(table: Table, plan: Plan, tasks: Mapping[str, Any], names: _Names, progress: Progress | None,
                     calendar: WorkCalendar | None) -> list[tuple[str, Values, list[int]]]:
    """Each row of the table as (task number, the assignment's columns, its co-units' ids in order); every bad row
    is reported at once."""
    year = plan.year or datetime.now(UTC).year
    deadlines: dict[tuple[str, date | None], Deadline] = {}  # by phrase and 交办日期
    rows: list[tuple[str, Values, list[int]]] = []
    seen: dict[str, int] = {}
    checked = Rows(table, progress)

    def unit(row: TableRow, column: str, name: str) -> Row[str, int, str | None]:
        if name not in names.units:
            raise table.error(row, column, f"未知的单位 “{name}”，请先导入单位名单 (unknown unit)")
        return names.units[name]

    for row in checked.each():
        v = row.values
        if SECTION_ROW.match(v["task"]):
            continue
        found = len(checked.errors)
        number = v["task"].rstrip(".．、")
        with checked.guard():
            if number not in tasks:
                raise table.error(row, "task", f"计划中没有第 {number} 项任务 (task not in the plan “{plan.title}”)")
            if number in seen:
                raise table.error(row, "task", f"任务 {number} 与第 {seen[number]} 行重复 (duplicate task)")
            seen[number] = row.number
        responsible = split_list(v.get("units", ""))  # 责任单位: the first listed leads
        lead = None
        with checked.guard():
            if v.get("lead_unit"):
                lead = unit(row, "lead_unit", v["lead_unit"])
            elif responsible:
                lead = unit(row, "units", responsible.pop(0))
            else:
                column = "lead_unit" if "lead_unit" in table.headers else "units"
                raise table.error(row, column, "缺少牵头单位 (no lead unit)")
        co_units = []
        for column, listed in (("units", responsible), ("co_units", split_list(v.get("co_units", "")))):
            with checked.guard():
                co_units += [unit(row, column, name) for name in listed]
        leader_name = v.get("leader") or (lead.leader_name if lead is not None else None)
        with checked.guard():
            if leader_name and leader_name not in names.leaders:
                raise table.error(row, "leader", f"未知的领导 “{leader_name}” (unknown leader)")
        assigned: date | None = None
        with checked.guard():
            if v.get("assigned"):
                try:
                    assigned = parse_day(v["assigned"], year)
                except ValueError as exc:
                    raise table.error(row, "assigned", str(exc)) from None
        phrase = v.get("deadline", "")
        key = (phrase, assigned)
        with checked.guard():
            if key not in deadlines and (assigned is not None or not v.get("assigned")):  # not after a bad 交办日期
                try:
                    deadlines[key] = parse_deadline(phrase, year, assigned, calendar)
                except NoAssignedDate as exc:  # the empty 交办日期 cell, else the phrase that needs the column
                    raise table.error(row, "assigned" if "assigned" in table.headers else "deadline",
                                      str(exc)) from None
                except DeadlineError as exc:
                    raise table.error(row, "deadline", str(exc)) from None
        start: date | None = None
        with checked.guard():
            if v.get("start_date"):
                try:
                    start = parse_day(v["start_date"], year)
                except ValueError as exc:
                    raise table.error(row, "start_date", str(exc)) from None
                due = deadlines[key].due if key in deadlines else None
                if due is not None and start > due:
                    raise table.error(row, "start_date", f"开始日期 {start.isoformat()} 晚于完成时限 "
                                      f"{due.isoformat()} (the start date is after the deadline)")
        if len(checked.errors) > found or lead is None:
            continue
        deadline = deadlines[key]
        values: Values = {
            "leader_id": names.leaders[leader_name] if leader_name else None, "lead_unit_id": lead.id,
            "deadline_text": deadline.text, "deadline": deadline.due, "deadline_kind": deadline.kind,
        }
        if "start_date" in table.headers:  # without the column, the start dates already imported stay
            values["start_date"] = start
        co_ids = list(dict.fromkeys(u.id for u in co_units if u.id != lead.id))  # in order, without repeats
        with checked.guard():
            rows.append((number, fit(table, row, Assignment, values, TABLE_FIELDS), co_ids))
    checked.check()
    return rows
