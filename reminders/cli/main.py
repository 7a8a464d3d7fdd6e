"""The command line: a thin shell over the library; every domain error becomes a one-line message, exit 1."""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reminders.config import Config

F = TypeVar("F", bound=Callable[..., Any])
KIND_CHOICES = {"reminders": ("reminder",), "digests": ("digest",), "chases": ("chase",), "receipts": ("receipt",),
                "all": ("reminder", "digest")}
KIND_NAMES = {"reminder": "提醒", "digest": "汇总", "chase": "催报", "receipt": "回执"}


def _domain_errors() -> tuple[type[Exception], ...]:
    from reminders.config import ConfigError
    from reminders.delivery.outbox import OutboxError
    from reminders.delivery.smtp import DeliveryError
    from reminders.intake.deadlines import DeadlineError
    from reminders.intake.importer import ImportError_
    from reminders.intake.planparse import PlanError
    from reminders.intake.tables import TableError
    from reminders.mail.compose import CycleError
    from reminders.store.db import SchemaError
    from reminders.tracking.accounts import AccountError
    from reminders.tracking.office import OfficeError
    from reminders.tracking.progress import ProgressError
    from reminders.tracking.reporting import FormError

    return (ConfigError, SchemaError, PlanError, TableError, ImportError_, ProgressError, CycleError,
            DeadlineError, DeliveryError, OutboxError, AccountError, OfficeError, FormError)


def friendly(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _domain_errors() as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}") from None
        except Exception as exc:
            from sqlalchemy.exc import DBAPIError

            if not isinstance(exc, DBAPIError):
                raise
            from reminders.store.db import masked

            url = masked(click.get_current_context().find_object(State).config.database_url)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise click.ClickException(f"数据库错误 (database error) {url}: {reason}") from None

    return wrapper  # type: ignore[return-value]


class State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        from reminders import config

        if self._config is None:
            self._config = config.load(self.config_path)
        return self._config

    def engine(self, check: bool = True) -> Engine:
        from reminders.store import db

        engine = db.make_engine(self.config.database_url)
        if check:
            db.check_schema(engine)
        return engine

    def today(self) -> date:
        return datetime.now(self.config.schedule.tz).date()


pass_state = click.make_pass_decorator(State)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("reminders").setLevel(logging.DEBUG if verbose else logging.INFO)
    ctx.obj = State(config_path)


@cli.command()
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


@cli.command("check-config")
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


def _json_lines(records: list[dict[str, Any]]) -> str:
    """A JSON array with one object a line: readable, and encoded by json's C encoder (indent= is pure Python)."""
    return "[\n" + ",\n".join(json.dumps(record, ensure_ascii=False) for record in records) + "\n]" if records else "[]"


def _print_report(what: str, report: Any) -> None:
    if not report.changed:
        click.echo(f"{what}：无变化 (nothing changed; {report.unchanged} unchanged)")
        return
    for label, items in (("新增 added", report.added), ("更新 updated", report.updated),
                         ("移除 removed", report.removed)):
        if items:
            click.echo(f"{label}: {len(items)}  ({'、'.join(items[:30])}{' …' if len(items) > 30 else ''})")
    click.echo(f"未变 unchanged: {report.unchanged}")


@cli.command("import-plan")
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
    _print_report("计划", report)


def _table_import(name: str, function: str, doc: str) -> None:
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @pass_state
    @friendly
    def command(state: State, path: Path) -> None:
        from reminders.intake import importer
        from reminders.store.db import session_scope

        with session_scope(state.engine()) as session:
            report = getattr(importer, function)(session, path)
        _print_report(path.name, report)

    command.__doc__ = doc
    cli.command(name)(command)


_table_import("import-units", "import_units", """导入单位名单 Import units (CSV or XLSX).

    Columns: 单位|name, 邮箱|email (several split by ; or ,), 联系人|contact, 分管领导|leader.

    Example: reminders import-units examples/units.csv
    """)
_table_import("import-leaders", "import_leaders", """导入领导名单 Import leaders (CSV or XLSX).

    Columns: 姓名|name, 职务|title, 邮箱|email, 接收范围|scope (分管|own or 全部|all).

    Example: reminders import-leaders examples/leaders.csv
    """)
_table_import("import-assignments", "import_assignments", """导入任务分解表 Import task assignments (CSV or XLSX).

    Columns: 序号|task, 责任领导|leader, 牵头单位|lead_unit, 配合单位|co_units, 完成时限|deadline.
    All or nothing: any bad row leaves the database as it was.

    Example: reminders import-assignments examples/assignments.csv
    """)


@cli.command()
@click.argument("task")
@click.option("--unit", required=True, help="报送单位 The reporting unit.")
@click.option("--percent", type=click.IntRange(0, 100), help="完成进度 Percent complete.")
@click.option("--done", is_flag=True, help="已办结 The task is finished (it stops being reminded).")
@click.option("--note", required=True, help="进展情况 What was done.")
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), help="报送日期 Report date (default today).")
@pass_state
@friendly
def progress(state: State, task: str, unit: str, percent: int | None, done: bool, note: str,
             on: datetime | None) -> None:
    """记录进展 Record a progress report for a task (history is kept).

    Example: reminders progress 3 --unit 民族工作处 --percent 60 --note "完成宣讲12场"
    """
    from reminders.store.db import session_scope
    from reminders.tracking.progress import record_progress

    day = on.date() if on else state.today()
    with session_scope(state.engine()) as session:
        report = record_progress(session, task, unit, note, on=day, percent=percent, done=done)
    click.echo(f"已记录 recorded: 任务 {task} · {unit} · {report.cycle}"
               + (" · 已办结 done" if done else "") + (f" · {report.percent}%" if report.percent is not None else ""))


@cli.command()
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="按此日期计算 As of this date (default today).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_state
@friendly
def status(state: State, as_of: datetime | None, fmt: str) -> None:
    """任务状态 List every task with its state (unassigned, done, overdue, due_soon, on_track, ongoing).

    Example: reminders status --as-of 2021-07-01 --format json
    """
    from reminders.columns import STATE_LABELS, render_table
    from reminders.intake.importer import active_plan
    from reminders.store.db import session_scope
    from reminders.tracking.status import as_json, load_status

    day = as_of.date() if as_of else state.today()
    with session_scope(state.engine()) as session:
        result = load_status(session, active_plan(session), day, state.config.schedule.due_soon_days)
    records = [as_json(line) for line in result.lines]
    if fmt == "json":
        click.echo(_json_lines(records))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        fields = ["number", "section", "title", "lead_unit", "co_units", "leader", "deadline", "state", "reported"]
        writer.writerow(fields)
        for record in records:
            record["co_units"] = "、".join(record["co_units"])  # type: ignore[arg-type]
            writer.writerow([record[f] for f in fields])
        click.echo(buffer.getvalue(), nl=False)
    else:
        rows = [[line.number, STATE_LABELS[line.state], line.deadline.isoformat() if line.deadline else "-",
                 "是" if line.reported else "否", line.lead_unit or "-", line.title] for line in result.lines]
        click.echo(f"《{result.plan.title}》 截至 as of {day.isoformat()}")
        click.echo(render_table(["序号", "状态", "时限", "本月报送", "牵头单位", "任务"], rows, [6, 6, 10, 8, 20, 50]))
        counts: dict[str, int] = {}
        for line in result.lines:
            counts[line.state] = counts.get(line.state, 0) + 1
        click.echo("  ".join(f"{STATE_LABELS[s]} {n}" for s, n in counts.items()))


def _cycle_options(command: F) -> F:
    command = click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]),
                           help="按此日期计算 (default: when the cron fires in that month).")(command)
    command = click.option("--kind", type=click.Choice(list(KIND_CHOICES)), default="all", show_default=True,
                           help="提醒、汇总、催报、回执或全部(提醒+汇总) Which messages.")(command)
    return click.option("--cycle", required=True, metavar="YYYY-MM", help="月度周期 The month.")(command)


@cli.command()
@_cycle_options
@click.option("--dry-run", is_flag=True, help="只列出，不记录不发送 List what would be sent; change nothing.")
@pass_state
@friendly
def send(state: State, cycle: str, kind: str, as_of: datetime | None, dry_run: bool) -> None:
    """发送月度提醒与汇总 Build, record and send a cycle's reminders and digests.

    Every message is recorded in the outbox before it is sent: sending the same cycle again sends nothing twice,
    and a message that failed is retried. Exits 1 if any message failed.

    Example: reminders send --cycle 2021-06 --kind reminders
    """
    from reminders.delivery import cycle as jobs
    from reminders.mail.compose import build_drafts
    from reminders.store.db import session_scope

    engine = state.engine()
    kinds = KIND_CHOICES[kind]
    day = as_of.date() if as_of else None
    if dry_run:
        with session_scope(engine) as session:
            drafts = build_drafts(session, state.config, cycle, kinds, day)
        for draft in drafts:
            click.echo(f"将发送 would send  {draft.kind} {draft.recipient_name} <{', '.join(draft.addresses)}>"
                       f"  ({len(getattr(draft.context, 'tasks', ()))} tasks)")
        click.echo(f"共 {len(drafts)} 封 (dry run: nothing recorded or sent)")
        return
    result = jobs.send_cycle(engine, state.config, cycle, kinds, day, echo=click.echo)
    click.echo(f"周期 {cycle}: 新记录 recorded {result.recorded}, 已发送 sent {len(result.sent)}, "
               f"跳过(此前已发) skipped {result.skipped}, 失败 failed {len(result.failed)}")
    if result.failed:
        sys.exit(1)


@cli.command()
@_cycle_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="输出目录 Folder.")
@pass_state
@friendly
def preview(state: State, cycle: str, kind: str, as_of: datetime | None, out: Path) -> None:
    """预览邮件 Write every message of a cycle as .eml files, without recording or sending.

    Example: reminders preview --cycle 2021-06 --out preview/
    """
    from reminders.delivery import cycle as jobs

    paths = jobs.preview_cycle(state.engine(), state.config, cycle, KIND_CHOICES[kind], out,
                               as_of.date() if as_of else None)
    for path in paths:
        click.echo(str(path))
    click.echo(f"共 {len(paths)} 封 written to {out}")


STATE_NAMES = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "失败"}


@cli.group(invoke_without_command=True)
@click.option("--cycle", metavar="YYYY-MM", help="只看这个月 Only this month.")
@click.option("--state", "state_filter", type=click.Choice(list(STATE_NAMES)), help="只看这个状态 Only this state.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
@friendly
def outbox(ctx: click.Context, cycle: str | None, state_filter: str | None, fmt: str) -> None:
    """发件记录 What was sent to whom and when: the office's evidence of 催办.

    Example: reminders outbox --cycle 2021-06 --state failed
    """
    if ctx.invoked_subcommand is not None:
        return
    from reminders.columns import render_table
    from reminders.delivery import outbox as box
    from reminders.store.db import session_scope

    with session_scope(ctx.find_object(State).engine()) as session:
        rows = box.list_messages(session, cycle, state_filter)
        records = [box.as_json(row) for row in rows]
    if fmt == "json":
        click.echo(_json_lines(records))
        return
    table = [[str(r["id"]), str(r["cycle"]), KIND_NAMES.get(str(r["kind"]), str(r["kind"])), str(r["recipient"]),
              STATE_NAMES[str(r["state"])], str(r["attempts"]), str(r["sent_at"] or "-")[:19],
              "; ".join(r["addresses"]) + (f"  {r['last_error']}" if r["last_error"] else "")]  # type: ignore[arg-type]
             for r in records]
    click.echo(render_table(["编号", "周期", "类别", "收件人", "状态", "次数", "发送时间", "地址 / 错误"], table,
                            [8, 7, 4, 20, 6, 4, 19, 80]))
    counts: dict[str, int] = {}
    for record in records:
        counts[str(record["state"])] = counts.get(str(record["state"]), 0) + 1
    click.echo("  ".join(f"{STATE_NAMES[s]} {n}" for s, n in counts.items()) or "发件箱为空 (the outbox is empty)")


@outbox.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="所有失败的邮件 Every failed message.")
@pass_state
@friendly
def outbox_retry(state: State, ids: tuple[int, ...], all_failed: bool) -> None:
    """重新排队 Requeue failed messages; the next send (or the daemon's next run) sends them.

    Example: reminders outbox retry --all-failed
    """
    from reminders.delivery import outbox as box
    from reminders.store.db import session_scope

    if bool(ids) == all_failed:
        raise click.UsageError("请给出邮件编号或 --all-failed 其中之一 (give IDs or --all-failed)")
    with session_scope(state.engine()) as session:
        requeued = box.requeue(session, None if all_failed else list(ids))
    click.echo(f"已重新排队 requeued {len(requeued)}: {', '.join(map(str, requeued)) or '-'}")


@cli.command()
@pass_state
@friendly
def serve(state: State) -> None:
    """运行网页服务 Serve the units' report form and the office dashboard ([web] bind, port; needs the web secret).

    Example: REMINDERS_WEB_SECRET=… reminders serve
    """
    import uvicorn

    from reminders.web import create_app

    config = state.config
    app = create_app(config, state.engine())
    click.echo(f"网页服务 serving on http://{config.web.bind}:{config.web.port} (links: {config.web.base_url})")
    # No access log: the report links carry their token in the path, and a token is a credential.
    uvicorn.run(app, host=config.web.bind, port=config.web.port, proxy_headers=True, server_header=False,
                access_log=False)


@cli.command()
@pass_state
@friendly
def run(state: State) -> None:
    """运行调度守护进程 Run the scheduler daemon (cron jobs from [schedule]; stops on SIGTERM/SIGINT).

    Example: reminders --config /etc/reminders/reminders.toml run
    """
    from reminders.daemon import run_daemon

    run_daemon(state.config, state.engine())


from reminders.cli import office as cli_office  # noqa: E402, F401  (registers `admin` and `export` on `cli`)


def main() -> None:
    cli(prog_name="reminders")
