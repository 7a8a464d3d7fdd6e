"""Set up: create or upgrade the database, and check the config."""

from __future__ import annotations

import click

from reminders.cli.common import State, friendly, pass_state


@click.command()
@pass_state
@friendly
def init(state: State) -> None:
    """创建或升级数据库结构 Create or upgrade the database schema (Alembic migrations)."""
    from reminders.store import db

    engine = state.engine(check=False)
    before, after = db.upgrade(engine)
    where = db.masked(state.config.database_url)
    if before == after:
        click.echo(f"数据库已是最新 (schema up to date at {after}): {where}")
    else:
        click.echo(f"数据库结构 {before or '无'} → {after}: {where}")


@click.command("check-config")
@pass_state
@friendly
def check_config(state: State) -> None:
    """检查配置文件 Validate the config file and show what it resolves to (no secrets shown)."""
    from reminders.store import db

    config = state.config
    click.echo(f"config:    {config.path}")
    click.echo(f"database:  {db.masked(config.database_url)}")
    click.echo(f"transport: {config.delivery.transport}"
               + (f" → {config.delivery.maildir}" if config.delivery.transport == "maildir"
                  else f" → {config.smtp.host}:{config.smtp.port} ({config.smtp.security})"))
    click.echo(f"schedule:  reminders '{config.schedule.reminders}', digests '{config.schedule.digests}', "
               f"chase '{config.schedule.chase}' "
               f"({config.schedule.timezone}); report day {config.schedule.report_day}")
