"""The office's commands: accounts for the dashboard, extension requests, the ledger export."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import click

from reminders.cli.common import State, friendly, pass_state


@click.group()
def admin() -> None:
    """督查室管理 Office administration: dashboard accounts (add, passwd, remove, unlock) and extension requests."""


@admin.command("add-user")
@click.argument("username")
@click.option("--password-env", metavar="NAME",
              help="从此环境变量读取密码 Read the password from this environment variable (else a prompt).")
@pass_state
@friendly
def add_user(state: State, username: str, password_env: str | None) -> None:
    """添加督查室账号 Add a dashboard account (the password is asked twice, or read from --password-env).

    The password is never an argument, so it stays out of the shell history and the process list.

    Example: reminders admin add-user ducha
    """
    from reminders.store.db import session_scope
    from reminders.tracking import accounts

    password = _password(password_env)
    with session_scope(state.engine()) as session:
        accounts.add_user(session, username, password)
    click.echo(f"已添加账号 user added: {username}")


def _password(password_env: str | None) -> str:
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise click.ClickException(f"环境变量 {password_env} 未设置 (environment variable not set)")
        return password
    return str(click.prompt("密码 Password", hide_input=True, confirmation_prompt=True))


@admin.command("passwd")
@click.argument("username")
@click.option("--password-env", metavar="NAME",
              help="从此环境变量读取新密码 Read the new password from this environment variable (else a prompt).")
@pass_state
@friendly
def passwd(state: State, username: str, password_env: str | None) -> None:
    """修改督查室账号密码 Change a dashboard account's password; every session of the account ends.

    Example: reminders admin passwd ducha
    """
    from reminders.store.db import session_scope
    from reminders.tracking import accounts

    password = _password(password_env)
    with session_scope(state.engine()) as session:
        accounts.set_password(session, username, password)
    click.echo(f"已修改密码，该账号的登录会话均已失效 password changed, sessions ended: {username}")


@admin.command("remove-user")
@click.argument("username")
@pass_state
@friendly
def remove_user(state: State, username: str) -> None:
    """删除督查室账号 Remove a dashboard account; its sessions end at their next request.

    Example: reminders admin remove-user ducha
    """
    from reminders.store.db import session_scope
    from reminders.tracking import accounts

    with session_scope(state.engine()) as session:
        accounts.remove_user(session, username)
    click.echo(f"已删除账号，其登录会话均已失效 user removed, sessions ended: {username}")


@admin.command("unlock")
@click.argument("username")
@pass_state
@friendly
def unlock(state: State, username: str) -> None:
    """解除账号的登录等待 Lift the login delay on an account name (failed logins slow a name down, never lock it).

    An address that failed itself still waits its own delay (at most a minute).

    Example: reminders admin unlock ducha
    """
    from reminders.store.db import session_scope
    from reminders.tracking import accounts

    with session_scope(state.engine()) as session:
        accounts.unlock(session, username)
    click.echo(f"已解除登录等待 login delay lifted: {username}")


@admin.command("extensions")
@pass_state
@friendly
def extensions(state: State) -> None:
    """待审核的延期申请 List extension requests awaiting a decision (approve or refuse them in the dashboard).

    Only a task's latest request is listed: a request the lead unit has since replaced by a new report can no longer
    be decided.

    Example: reminders admin extensions
    """
    from reminders.columns import render_table
    from reminders.store.db import session_scope
    from reminders.tracking import office

    with session_scope(state.engine()) as session:
        pending = office.pending_extensions(session)
    rows = [[str(e.report_id), e.task, e.unit, e.deadline.isoformat() if e.deadline else "-",
             e.requested_deadline.isoformat(), e.reported_on.isoformat(), e.reason] for e in pending]
    if not rows:
        click.echo("没有待审核的延期申请 (no extension requests pending)")
        return
    click.echo(render_table(["编号", "任务", "单位", "现时限", "申请延至", "申请日期", "理由"], rows,
                            [6, 6, 16, 10, 10, 10, 50]))
    click.echo("每项任务只列出牵头单位最新的申请；被新报送取代的申请不能再审批 "
               "(only each task's latest request is listed; a superseded one can no longer be decided)")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="输出文件 Output file.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="按此日期计算 As of this date (default today).")
@pass_state
@friendly
def export(state: State, fmt: str, out: Path, as_of: datetime | None) -> None:
    """导出工作台账 Export the work ledger (工作台账): XLSX laid out for printing (title, A4 landscape fitted to the
    width, header on every page, real dates and numbers, states as word and pattern), or CSV (UTF-8 with BOM, every
    field quoted; import-assignments reads it back).

    Example: reminders export --format xlsx --out 台账.xlsx
    """
    from reminders.store.db import session_scope
    from reminders.tracking import ledger

    day = as_of.date() if as_of else state.today()
    with session_scope(state.engine()) as session:
        if fmt == "xlsx":
            data = ledger.export_ledger_xlsx(session, state.config, day)
        else:
            data = ledger.export_ledger_csv(session, state.config, day).encode("utf-8")
    out.write_bytes(data)
    click.echo(f"已导出 exported: {out} ({fmt}, as of {day.isoformat()})")
