"""A unit's report form, reached through the signed link in its reminder: GET shows it, POST records it.

The link is the unit's credential: it is checked on every request, and a bad one gets a 403 page that names no unit.
Validation and recording are `reminders.tracking.reporting`'s; this module only turns form fields into `Answer`s and
back.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from reminders.delivery import dispatch
from reminders.errors import ReminderError
from reminders.store.models import OutboxMessage
from reminders.tracking import links, reporting
from reminders.tracking.reporting import Answer, FormError, UnitForm
from reminders.web.pages import WebApp, web

log = logging.getLogger(__name__)

FIELDS = ("note", "percent", "status", "problems", "next_steps", "new_deadline", "reason", "withdraw")
MAX_FORM_FIELDS = 2000
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


def _deliver_receipts(app: WebApp, cycle: str) -> None:
    """Send the receipt just recorded; if the mail server is down it stays pending for the next send."""
    try:
        dispatch.deliver_pending(app.engine, app.config, cycle, ("receipt",))
    except (ReminderError, OSError):  # the report is recorded; a late receipt is no error page
        log.exception("receipt delivery failed for cycle %s; it stays in the outbox", cycle)


def _receipt_problem(session: Session, form: UnitForm, ids: list[int]) -> str | None:
    """Why the submission's receipt is not on its way, or None when it is queued."""
    row = session.execute(select(OutboxMessage.state, OutboxMessage.last_error).where(
        OutboxMessage.kind == "receipt", OutboxMessage.cycle == form.cycle,
        OutboxMessage.recipient_key == f"unit:{form.unit_id}:receipt:{min(ids)}")).first()  # receipt_draft's key
    if row is None:
        return "not recorded"
    return (row.last_error or "failed") if row.state == "failed" else None


def _record(session: Session, app: WebApp, form: UnitForm, answers: list[Answer], today: date,
            now: datetime) -> bool:
    """The reports and their receipt, in one transaction: a receipt is never queued for reports not recorded.

    A receipt that cannot be built is recorded as a failed outbox row (delivery does that); any other fault queueing
    it only rolls back its savepoint. Either way the reports stay recorded and the fault is logged with the unit.
    Returns whether the receipt was queued.
    """
    ids = reporting.submit(session, app.config, form.unit_id, form.cycle, answers, today, now)
    where = f"receipt for unit {form.unit_id} ({form.unit}), cycle {form.cycle}, reports {ids}"
    try:
        with session.begin_nested():
            dispatch.queue_receipt(session, app.config, form.unit_id, form.cycle, ids)
    except Exception:  # whatever the receipt's fault, the unit's report must not be lost with it
        log.exception("%s was not queued; the reports are recorded", where)
        return False
    problem = _receipt_problem(session, form, ids)
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
    if errors:
        return app.page(request, "form.html", {"form": form, "values": values, "errors": errors}, 400)
    titles = {task.line.number: task.line.title for task in form.tasks}
    recorded = [a for a in answers if any((a.note.strip(), a.problems.strip(), a.next_steps.strip()))
                or a.percent is not None or a.status != "progress"]
    withdrawn = {task.line.number for task in form.tasks if task.pending is not None}
    response = app.page(request, "confirmed.html", {
        "form": form, "recorded": recorded, "titles": titles, "receipt": receipt, "recorded_at": now,
        "withdrawn": {a.task for a in recorded if a.withdraw and a.task in withdrawn}})
    if receipt:
        response.background = BackgroundTask(_deliver_receipts, app, form.cycle)
    return response
