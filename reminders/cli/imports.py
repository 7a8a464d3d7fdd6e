"""The imports: the plan text and the leaders, units and assignments tables."""

from __future__ import annotations

from pathlib import Path

import click

from reminders.cli.common import State, friendly, pass_state, print_report


@click.command("import-plan")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
@friendly
def import_plan(state: State, path: Path) -> None:
    """导入工作计划文本 Import a work plan (UTF-8 or GB18030 text).

    Importing the same plan again changes nothing; a changed plan is updated in place.

    Example: reminders import-plan examples/plan-2021.txt
    """
    from reminders.intake import importer
    from reminders.intake.planparse import read_plan
    from reminders.store.db import session_scope

    parsed = read_plan(path)
    with session_scope(state.engine()) as session:
        plan, report = importer.import_plan(session, parsed, str(path))
    click.echo(f"《{plan.title}》: {len(parsed.sections)} 个部分 sections, {len(parsed.tasks)} 项任务 tasks")
    print_report("计划", report)


def _table_import(name: str, function: str, doc: str) -> click.Command:
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @pass_state
    @friendly
    def command(state: State, path: Path) -> None:
        from reminders.intake import importer
        from reminders.store.db import session_scope

        with session_scope(state.engine()) as session:
            report = getattr(importer, function)(session, path)
        print_report(path.name, report)

    command.__doc__ = doc
    return click.command(name)(command)


import_units = _table_import(
    "import-units", "import_units",
    """导入单位名单 Import units (CSV or XLSX).

    Columns: 单位|name, 邮箱|email (several split by ; or ,), 联系人|contact, 分管领导|leader.

    Example: reminders import-units examples/units.csv
    """)
import_leaders = _table_import(
    "import-leaders", "import_leaders",
    """导入领导名单 Import leaders (CSV or XLSX).

    Columns: 姓名|name, 职务|title, 邮箱|email, 接收范围|scope (分管|own or 全部|all).

    Example: reminders import-leaders examples/leaders.csv
    """)
import_assignments = _table_import(
    "import-assignments", "import_assignments",
    """导入任务分解表 Import task assignments (CSV or XLSX).

    Columns: 序号|task, 责任领导|leader, 牵头单位|lead_unit, 配合单位|co_units, 完成时限|deadline.
    All or nothing: any bad row leaves the database as it was.

    Example: reminders import-assignments examples/assignments.csv
    """)
