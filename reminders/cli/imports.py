"""The imports: the plan (text or .docx) and the leaders, units and assignments tables."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reminders.cli.common import State, friendly, pass_state, print_report

if TYPE_CHECKING:
    from reminders.intake.changes import ImportReport


def progress_line(what: str) -> Callable[[int, int], None] | None:
    """A progress line on stderr for long imports, only when a person is watching (stderr is a terminal): a log
    or a pipe gets nothing."""
    stream = sys.stderr
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        stream.write(f"\r导入中 importing {what}: {done}/{total}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def print_details(report: ImportReport) -> None:
    """Each change old → new, the office's decisions kept against the table, and the rows that were not data."""
    for line in report.changes:
        click.echo(f"  {line}")
    if report.conflicts:
        click.echo(f"保留督查室的决定 kept the office's decision: {len(report.conflicts)}")
        for line in report.conflicts:
            click.echo(f"  {line}")
    if report.skipped:
        click.echo(f"跳过非数据行 skipped rows that are not data: {len(report.skipped)}")
        for line in report.skipped:
            click.echo(f"  {line}")


@click.command("import-plan")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--title", help="计划标题，文本没有标题行时使用 The plan's title, when the text has no title line.")
@click.option("--year", type=click.IntRange(2000, 2100), metavar="YYYY",
              help="计划年份，标题和元数据都没有年份时使用 The plan's year, when neither title nor metadata has one.")
@pass_state
@friendly
def import_plan(state: State, path: Path, title: str | None, year: int | None) -> None:
    """导入工作计划 Import a work plan: text (UTF-8, GB18030 or UTF-16) or a Word/WPS .docx.

    Importing the same plan again changes nothing; a changed plan is updated in place and each change listed.

    Example: reminders import-plan examples/plan-2021.txt
    Example: reminders import-plan 重点任务.docx --title "市民宗局2021年重点工作任务" --year 2021
    """
    from reminders.intake import importer
    from reminders.intake.planparse import read_plan
    from reminders.store.db import session_scope

    parsed = read_plan(path, title=title, year=year)
    with session_scope(state.engine()) as session:
        plan, report = importer.import_plan(session, parsed, str(path), progress_line(path.name))
    click.echo(f"《{plan.title}》: {len(parsed.sections)} 个部分 sections, {len(parsed.tasks)} 项任务 tasks")
    print_report("计划", report)
    print_details(report)


def _table_import(name: str, function: str, doc: str) -> click.Command:
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @pass_state
    @friendly
    def command(state: State, path: Path) -> None:
        from reminders.intake import importer
        from reminders.store.db import session_scope

        with session_scope(state.engine()) as session:
            report = getattr(importer, function)(session, path, progress=progress_line(path.name))
        print_report(path.name, report)
        print_details(report)

    command.__doc__ = doc
    return click.command(name)(command)


import_units = _table_import(
    "import-units", "import_units",
    """导入单位名单 Import units (CSV or XLSX).

    Columns: 单位|name, 邮箱|email (several split by ; or ,), 联系人|contact, 分管领导|leader.
    Every bad row is reported at once (the first 50); nothing is imported unless all are good.

    Example: reminders import-units examples/units.csv
    """)
import_leaders = _table_import(
    "import-leaders", "import_leaders",
    """导入领导名单 Import leaders (CSV or XLSX).

    Columns: 姓名|name, 职务|title, 邮箱|email, 接收范围|scope (分管|own or 全部|all).
    Every bad row is reported at once (the first 50); nothing is imported unless all are good.

    Example: reminders import-leaders examples/leaders.csv
    """)


@click.command("import-assignments")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace-approved", is_flag=True,
              help="以表中完成时限替换督查室已批准的延期 Take the table's deadline over an approved extension.")
@pass_state
@friendly
def import_assignments(state: State, path: Path, replace_approved: bool) -> None:
    """导入任务分解表 Import task assignments (CSV or XLSX).

    Columns: 序号|task, 责任领导|leader, 牵头单位|lead_unit, 配合单位|co_units, 完成时限|deadline; optional
    开始日期|start_date and 交办日期|assigned (needed by deadlines counted from it: 3个工作日内, 5日内).
    All or nothing: any bad row leaves the database as it was, and every bad row is reported at once (the first 50).
    A deadline the office moved by approving an extension is kept (and the conflict listed) unless
    --replace-approved is given.

    Example: reminders import-assignments examples/assignments.csv
    """
    from reminders.intake import importer
    from reminders.store.db import session_scope

    with session_scope(state.engine()) as session:
        report = importer.import_assignments(session, path, replace_approved=replace_approved,
                                             progress=progress_line(path.name),
                                             calendar=state.config.calendar.work_calendar)
    print_report(path.name, report)
    print_details(report)
