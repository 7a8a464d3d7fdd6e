"""What the office changes from the dashboard: chase now (催报), close a task (办结), decide an extension (延期),
and the ledger's exports. Each is one call into tracking (office, ledger) or delivery (the chase); every POST passed
`signed_in`'s CSRF check.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from reminders.delivery.dispatch import send_chase_now
from reminders.errors import ReminderError
from reminders.tracking import ledger, office
from reminders.tracking.cycles import cycle_of
from reminders.tracking.reporting import MAX_TEXT
from reminders.web.admin import refused, signed_in
from reminders.web.pages import WebApp
from reminders.web.security import WebSession

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds (PostgreSQL's; SQLite's is larger)


async def _field(request: Request, name: str) -> str:
    value = (await request.form()).get(name)
    return value[:MAX_TEXT + 1] if isinstance(value, str) else ""


def _too_long(app: WebApp, request: Request, back: str) -> Response:
    return refused(app, request, "内容过长", f"说明不能超过 {MAX_TEXT} 字，请精简后重试。", 400, back)


async def _chase(request: Request, app: WebApp, session: WebSession) -> Response:
    cycle, today = cycle_of(app.today()), app.today()
    try:
        result = await run_in_threadpool(send_chase_now, app.engine, app.config, cycle, today)
    except (ReminderError, OSError) as exc:
        return refused(app, request, "催报未能发出", f"邮件服务器出错：{exc}。催报已记入发件箱，稍后会重试。", 502,
                       "/admin/not-reported")
    if result.failed or result.pending or result.halted:
        problems = "；".join([*result.failed, *result.pending, *([result.halted] if result.halted else [])])
        return refused(app, request, "部分催报未能发出", f"{problems}。已记入发件箱，暂未送达的会自动重试。", 502,
                       "/admin/not-reported")
    notice = "chased" if result.sent or result.recorded else "nochase"
    return RedirectResponse(f"/admin/not-reported?notice={notice}", status_code=303)


async def _done(request: Request, app: WebApp, session: WebSession) -> Response:
    number = request.path_params["number"]
    note = await _field(request, "note")
    if len(note) > MAX_TEXT:
        return _too_long(app, request, "/admin")
    user, today = session.user or "", app.today()
    try:
        await app.db(lambda s: office.mark_done(s, number, user, note, today))
    except office.OfficeError as exc:
        return refused(app, request, "无法办结", str(exc), 400, "/admin")
    return RedirectResponse(f"/admin/tasks/{quote(number, safe='')}?notice=done", status_code=303)


async def _decide(request: Request, app: WebApp, session: WebSession) -> Response:
    raw_id = request.path_params["report_id"]
    if not 0 < raw_id <= MAX_ID:  # no such report: the database would refuse the number itself
        return refused(app, request, "延期申请不存在", "请返回延期申请列表重试。", 404, "/admin/extensions")
    decision = await _field(request, "decision")
    reason = await _field(request, "reason")
    if len(reason) > MAX_TEXT:
        return _too_long(app, request, "/admin/extensions")
    if decision not in ("approve", "refuse"):
        return refused(app, request, "请选择同意或不同意", "请返回选择是否同意延期。", 400, "/admin/extensions")
    user, now = session.user or "", app.now()
    try:
        await app.db(lambda s: office.decide_extension(s, raw_id, decision == "approve", user, reason, now))
    except office.OfficeError as exc:
        return refused(app, request, "无法处理延期申请", str(exc), 400, "/admin/extensions")
    notice = "approved" if decision == "approve" else "refused"
    return RedirectResponse(f"/admin/extensions?notice={notice}", status_code=303)


def _attachment(name: str) -> str:
    return f"attachment; filename=\"ledger.{name.rsplit('.', 1)[1]}\"; filename*=UTF-8''{quote(name)}"


async def _export_xlsx(request: Request, app: WebApp, session: WebSession) -> Response:
    today = app.today()
    content = await app.db(lambda s: ledger.export_ledger_xlsx(s, app.config, today))
    return Response(content, media_type=XLSX,
                    headers={"content-disposition": _attachment(f"工作台账-{today.isoformat()}.xlsx")})


async def _export_csv(request: Request, app: WebApp, session: WebSession) -> Response:
    today = app.today()
    content = await app.db(lambda s: ledger.export_ledger_csv(s, app.config, today))
    return Response(content.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": _attachment(f"工作台账-{today.isoformat()}.csv")})


chase = signed_in(_chase)
done = signed_in(_done)
decide = signed_in(_decide)
export_xlsx = signed_in(_export_xlsx)
export_csv = signed_in(_export_csv)
