"""A unit's report form, reached through the signed link in its reminder: GET shows it, POST records it.

The link is the unit's credential: it is checked on every request, and a bad one gets a 403 page that names no unit.
Validation and recording are `reminders.tracking.reporting`'s; this module only turns form fields into `Answer`s and
back.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from reminders.delivery import dispatch
from reminders.store.models import OutboxMessage, ProgressReport, Unit
from reminders.tracking import links, reporting
from reminders.tracking.reporting import Answer, FormError, UnitForm
from reminders.web.pages import WebApp, web

log = logging.getLogger(__name__)

FIELDS = ("note", "percent", "status", "problems", "next_steps", "new_deadline", "reason", "withdraw")
MAX_FORM_FIELDS = 2000
HOUR = timedelta(hours=1)
LINK_PROBLEMS = {
    "malformed": ("链接无效", "这个报送链接不完整或已损坏，可能是复制时缺了一部分。"),
    "forged": ("链接无效", "这个报送链接无法验证，可能被修改过。"),
    "expired": ("链接已过期", "这个报送链接已超过有效期。"),
    "unknown": ("链接无效", "这个报送链接对应的单位已不在名单中。"),
}


def link_refused(app: WebApp, request: Request, reason: str) -> Response:
    headline, explanation = LINK_PROBLEMS.get(reason, LINK_PROBLEMS["malformed"])
    return app.page(request, "link_error.html", {"headline": headline, "explanation": explanation}, 403)


async def _load(app: WebApp, token: str, today: date) -> UnitForm | str:
    """The unit's form, or the reason the link is refused."""
    try:
        unit_id, cycle = links.read_token(app.secret, token, today)
    except links.LinkError as exc:
        return exc.reason
    try:
        return await app.db(lambda s: reporting.unit_form(s, app.config, unit_id, cycle, today))
    except FormError:
        return "unknown"  # a genuine link for a unit removed from the directory since


def _prefill(form: UnitForm) -> dict[str, str]:
    """Every field of this unit's own report of the cycle, so a second visit corrects rather than starts again; a
    pending extension request stays asked for (a request the office decided is not asked again by default)."""
    values: dict[str, str] = {}
    for task in form.tasks:
        key, own, pending = task.line.number, task.own, task.pending
        if own is not None:
            values |= {f"{key}.note": own.note, f"{key}.problems": own.problems,
                       f"{key}.next_steps": own.next_steps,
                       f"{key}.percent": "" if own.percent is None else str(own.percent),
                       f"{key}.status": "progress" if own.status == "extension" else own.status}
        if pending is not None:
            values |= {f"{key}.status": "extension", f"{key}.new_deadline": pending.requested_deadline.isoformat(),
                       f"{key}.reason": pending.reason}
    return values


async def show(request: Request) -> Response:
    app = web(request)
    form = await _load(app, request.path_params["token"], app.today())
    if isinstance(form, str):
        return link_refused(app, request, form)
    return app.page(request, "form.html", {"form": form, "values": _prefill(form), "errors": {}})


def _text(data: FormData, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def parse_answers(form: UnitForm, data: FormData) -> tuple[list[Answer], dict[str, str], dict[str, str]]:
    """One Answer per task on the form (fields for other tasks are ignored), the raw values to show again, and the
    fields that could not even be read (a percent that is not a number, a date that is not a date)."""
    answers: list[Answer] = []
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for task in form.tasks:
        key = task.line.number
        raw = {name: _text(data, f"{key}.{name}") for name in FIELDS}
        values |= {f"{key}.{name}": value for name, value in raw.items()}
        percent: int | None = None
        if raw["percent"].strip():
            try:
                percent = int(raw["percent"].strip())
            except ValueError:
                errors[f"{key}.percent"] = "请填写 0–100 之间的整数"
        new_deadline: date | None = None
        if raw["new_deadline"].strip():
            try:
                new_deadline = date.fromisoformat(raw["new_deadline"].strip())
            except ValueError:
                errors[f"{key}.new_deadline"] = "请按 年-月-日 填写日期，如 2021-12-31"
        answers.append(Answer(task=key, note=raw["note"], percent=percent, status=raw["status"] or "progress",
                              problems=raw["problems"], next_steps=raw["next_steps"], new_deadline=new_deadline,
                              reason=raw["reason"], withdraw=bool(raw["withdraw"])))
    return answers, values, errors


class TooMany(Exception):
    """The link's submissions of the last hour are at `[web] submissions_per_hour`; the next one is taken from
    `again_at`."""

    def __init__(self, again_at: datetime) -> None:
        super().__init__(again_at)
        self.again_at = again_at


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite's are naive UTC


def _check_limit(session: Session, app: WebApp, form: UnitForm, now: datetime) -> None:
    """At most `[web] submissions_per_hour` submissions of this unit and cycle in any hour (a link is a unit and a
    cycle); TooMany otherwise. The transaction starts by writing the unit's row (to itself): PostgreSQL locks that
    row and SQLite takes its write lock, so submissions of one unit are counted one at a time and a burst cannot
    slip past the count together (a plain read would not: SQLite's driver begins only at the first write)."""
    session.execute(update(Unit).where(Unit.id == form.unit_id).values(contact=Unit.contact))
    since = (now - HOUR).astimezone(UTC)
    times = sorted({_aware(moment) for moment in session.scalars(select(ProgressReport.created_at).where(
        ProgressReport.unit_id == form.unit_id, ProgressReport.cycle == form.cycle, ProgressReport.source == "web",
        ProgressReport.created_at > since))})  # one submission records its reports at one moment
    limit = app.config.web.submissions_per_hour
    if len(times) >= limit:
        raise TooMany(times[len(times) - limit] + HOUR)


def _receipt_problem(session: Session, form: UnitForm, key: str | None) -> str | None:
    """Why the submission's receipt is not on its way, or None when it is queued."""
    row = None if key is None else session.execute(select(OutboxMessage.state, OutboxMessage.last_error).where(
        OutboxMessage.kind == "receipt", OutboxMessage.cycle == form.cycle,
        OutboxMessage.recipient_key == key)).first()
    if row is None:
        return "not recorded"
    return (row.last_error or "failed") if row.state == "failed" else None


def _record(session: Session, app: WebApp, form: UnitForm, answers: list[Answer], today: date,
            now: datetime) -> bool:
    """The reports and their receipt, in one transaction: a receipt is never queued for reports not recorded. The
    web process sends no mail: the receipt waits in the outbox for the daemon's retry job or `serve`'s sender.

    TooMany when the link is over its hourly limit (nothing recorded). A receipt that cannot be built is recorded
    as a failed outbox row (delivery does that); any other fault queueing it only rolls back its savepoint. Either
    way the reports stay recorded and the fault is logged with the unit. Returns whether the receipt was queued.
    """
    _check_limit(session, app, form, now)
    ids = reporting.submit(session, app.config, form.unit_id, form.cycle, answers, today, now)
    where = f"receipt for unit {form.unit_id} ({form.unit}), cycle {form.cycle}, reports {ids}"
    try:
        with session.begin_nested():
            key = dispatch.queue_receipt(session, app.config, form.unit_id, form.cycle, ids)
    except Exception:  # whatever the receipt's fault, the unit's report must not be lost with it
        log.exception("%s was not queued; the reports are recorded", where)
        return False
    problem = _receipt_problem(session, form, key)
    if problem is not None:
        log.error("%s was not queued (%s); the reports are recorded", where, problem)
    return problem is None


async def submit(request: Request) -> Response:
    app = web(request)
    today = app.today()
    form = await _load(app, request.path_params["token"], today)
    if isinstance(form, str):
        return link_refused(app, request, form)
    async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS) as data:
        answers, values, errors = parse_answers(form, data)
    receipt, now = False, app.now()
    if not errors:
        try:
            receipt = await app.db(lambda s: _record(s, app, form, answers, today, now))
        except FormError as exc:
            errors = exc.errors
        except TooMany as exc:
            return _too_many(app, request, form, exc.again_at, now)
    if errors:
        return app.page(request, "form.html", {"form": form, "values": values, "errors": errors}, 400)
    titles = {task.line.number: task.line.title for task in form.tasks}
    recorded = [a for a in answers if any((a.note.strip(), a.problems.strip(), a.next_steps.strip()))
                or a.percent is not None or a.status != "progress"]
    withdrawn = {task.line.number for task in form.tasks if task.pending is not None}
    return app.page(request, "confirmed.html", {
        "form": form, "recorded": recorded, "titles": titles, "receipt": receipt, "recorded_at": now,
        "receipt_minutes": _receipt_minutes(app),
        "withdrawn": {a.task for a in recorded if a.withdraw and a.task in withdrawn}})


def _too_many(app: WebApp, request: Request, form: UnitForm, again_at: datetime, now: datetime) -> Response:
    log.info("unit %s (%s), cycle %s: over %d submissions an hour, refused until %s", form.unit_id, form.unit,
             form.cycle, app.config.web.submissions_per_hour, again_at.isoformat())
    response = app.page(request, "too_many.html", {"form": form, "again_at": again_at,
                                                   "limit": app.config.web.submissions_per_hour}, 429)
    response.headers["Retry-After"] = str(max(1, math.ceil((again_at - now).total_seconds())))
    return response


def _receipt_minutes(app: WebApp) -> int:
    """About how long a receipt takes: its window, then the sender's next turn."""
    wait = app.config.web.receipt_delay + app.config.delivery.retry_interval
    return max(1, -(-int(wait.total_seconds()) // 60))
