"""Set up: create or upgrade the database, and check the config."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from reminders.cli.common import State, friendly, pass_state

if TYPE_CHECKING:
    from reminders.config import Config


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
@click.pass_context
@friendly
def check_config(ctx: click.Context) -> None:
    """检查配置文件 Validate the config file and show what it resolves to (no secrets shown).

    Shows everything that shapes the mails (office, sender, Reply-To, links, language, transport), renders a
    sample reminder exactly as `send` would, and warns about what units would notice. Exits 1 if no config file
    is found or it is invalid.

    Example: reminders --config reminders.toml check-config
    """
    from reminders.config import ENV_PATH, NoConfigFile

    state = ctx.ensure_object(State)
    try:
        config = state.config
    except NoConfigFile as missing:
        click.echo("未找到配置文件 (no config file found). 查找过 (tried):")
        click.echo(f"  {'--config':<24}未指定 (not given)")
        click.echo(f"  {'$' + ENV_PATH:<24}未设置 (not set)")
        click.echo(f"  {'./reminders.toml':<24}{missing.default} 不存在 (does not exist)")
        click.echo("可复制 config.example.toml 为 reminders.toml 后修改 "
                   "(copy config.example.toml to reminders.toml and edit it)")
        ctx.exit(1)
    from reminders.mail.message import check_sample

    check_sample(config)
    _check_secret(config)
    for label, value in _summary(config):
        click.echo(f"{label}: {value}")
    for warning in _warnings(config):
        click.echo(f"警告：{warning}")


NOT_SET = "未设置 (not set)"


def _check_secret(config: Config) -> None:
    """A web secret too short to keep the links and the sessions safe is refused, as `serve` refuses it."""
    from reminders.config import ConfigError
    from reminders.tracking.links import secret_problem

    secret = config.web_secret()
    problem = secret_problem(secret) if secret is not None else None
    if problem is not None:
        raise ConfigError(config.path, "web.secret_env", f"环境变量 {config.web.secret_env}：{problem}")


def _summary(config: Config) -> list[tuple[str, str]]:
    from reminders.store import db

    office, smtp, secret_env = config.office, config.smtp, config.web.secret_env
    if config.delivery.transport == "maildir":
        transport = f"maildir → {config.delivery.maildir}"
    else:
        transport = f"smtp → {smtp.host}:{smtp.port} ({smtp.security})"
    helo = smtp.helo_name or f"{socket.getfqdn()}（本机完整域名 this machine's fully qualified name）"
    ca_file = str(smtp.ca_file) if smtp.ca_file is not None else "系统证书库 (the system's CA store)"
    sender = f"{smtp.sender_name} <{config.from_address()}>" if smtp.sender_name else config.from_address()
    if not smtp.sender:
        sender += "（未设置 [smtp] sender，仅可写入 Maildir (not set: Maildir only)）"
    if config.web_secret() is None:
        links = (f"未开启：环境变量 {secret_env} 未设置，提醒邮件不带填报链接 "
                 f"(off: ${secret_env} is not set; reminders carry no report link)")
    else:
        links = f"已开启，密钥取自环境变量 {secret_env} (on: secret from ${secret_env})"
    password = NOT_SET
    if smtp.password_env:
        state = "已设置 set" if smtp.password_env in os.environ else "未设置 NOT set"
        password = f"取自环境变量 {smtp.password_env}（{state}）"
    schedule = config.schedule
    return [
        ("配置文件 config", config.path),
        ("数据库 database", db.masked(config.database_url)),
        ("发送方式 transport", transport),
        ("SMTP 密码 password", password),
        ("EHLO 主机名 helo_name", helo),
        ("CA 证书 ca_file", ca_file),
        ("办公室 office", office.name),
        ("办公室邮箱 office email", office.email or NOT_SET),
        ("联系人 contact", office.contact or NOT_SET),
        ("电话 phone", office.phone or NOT_SET),
        ("发件人 From", sender),
        ("回复地址 Reply-To", office.email or "无 (none)"),
        ("邮件语言 language", config.mail.language),
        ("填报链接 report links", links),
        ("网址 base URL", config.web.base_url),
        ("时区 timezone", schedule.timezone),
        ("日程 schedule", f"reminders '{schedule.reminders}', digests '{schedule.digests}', chase '{schedule.chase}'; "
                         f"report day {schedule.report_day}"),
        ("工作日 workdays", config.calendar.describe()),
    ]


def _warnings(config: Config) -> list[str]:
    warnings = []
    host = (urlsplit(config.web.base_url).hostname or "").lower()
    local = host == "localhost" or host.endswith(".localhost") or host.startswith("127.") or host == "::1"
    if local and config.delivery.transport == "smtp":
        warnings.append(f"[web] base_url 指向本机 {config.web.base_url}，各单位收到的填报链接在他们的电脑上打不开；"
                        "请设为各单位能访问的地址 (warning: base_url points at this machine; units could not open "
                        "their links)")
    if config.web_secret() is None:
        secret_env = config.web.secret_env
        warnings.append(f"填报链接未开启，请设置环境变量 {secret_env} "
                        f"(warning: report links are off: set ${secret_env})")
    return warnings + _calendar_warnings(config)


def _calendar_warnings(config: Config) -> list[str]:
    """This year and the active plan's year (when the database can tell) that the holiday library does not know."""
    years = {datetime.now(config.schedule.tz).year}
    plan_year = _plan_year(config)
    if plan_year is not None:
        years.add(plan_year)
    calendar = config.calendar.work_calendar
    return [warning for year in sorted(years) if (warning := calendar.coverage_warning(year)) is not None]


def _plan_year(config: Config) -> int | None:
    """The active plan's year, or None when there is no database, schema or plan: check-config creates nothing and
    waits at most a few seconds for a database server."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from reminders.errors import ReminderError
    from reminders.store import db
    from reminders.store.plans import active_plan

    url = make_url(config.database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or not Path(url.database).is_file():
            return None
    elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "5"})
    engine = db.make_engine(url.render_as_string(hide_password=False))
    try:
        db.check_schema(engine)
        with db.session_scope(engine) as session:
            return active_plan(session).year
    except (SQLAlchemyError, ReminderError, OSError):
        return None
    finally:
        engine.dispose()
