"""The `reminders` command: the root group and, listed here, every command it has."""

from __future__ import annotations

import click

from reminders.cli import imports, ladder, office, sending, services, setup, tracking
from reminders.cli.common import State, configure_logging
from reminders.cli.usage import Translating


@click.group(cls=Translating, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH",
              help="配置文件 Config file (default: $REMINDERS_CONFIG, else ./reminders.toml).")
@click.option("-v", "--verbose", is_flag=True, help="详细日志 Verbose logging.")
@click.version_option(package_name="reminders")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """reminders — 年度工作计划督查督办：月度提醒与领导汇总邮件。

    Monthly reminders to units and digests to leaders for an annual work plan.

    \b
    Typical first run:
      reminders --config reminders.toml init
      reminders import-plan plan.txt
      reminders import-leaders leaders.csv
      reminders import-units units.csv
      reminders import-assignments assignments.xlsx
      reminders send --cycle 2021-06
    """
    ctx.obj = State(config_path, configure_logging(verbose))


for command in (
    setup.init, setup.check_config,
    imports.import_plan, imports.import_leaders, imports.import_units, imports.import_assignments,
    tracking.progress, tracking.status, ladder.ladder,
    sending.send, sending.preview, sending.outbox,
    office.admin, office.export,
    services.serve, services.run,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="reminders")
