"""The office dashboard's pages: login and logout, the task list with filters, a task's history, the units that have
not reported, and the pending extension requests. What the office changes is in `actions.py`.

A login passes the throttle (a growing delay per address and per name, never a lock), then its password is checked
on the small password pool; a known and an unknown name get the same answers. Every /admin request checks the
session's epoch against the account, so logout, a new password or a removed account ends it."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from reminders.store.plans import active_plan
from reminders.tracking import accounts, office
from reminders.tracking.accounts import DUMMY_HASH, address_key, has_control_characters, verify_password
from reminders.tracking.cycles import cycle_of
from reminders.tracking.status import PlanStatus, load_plan, load_status
from reminders.tracking.summary import Summary, summarise
from reminders.tracking.trend import TrendPoint, load_year, since_first_report, trend
from reminders.vocabulary import STATES
from reminders.web.pages import WebApp, web
from reminders.web.security import (
    COOKIE,
    PoolBusy,
    WebSession,
    clear_session,
    csrf_ok,
    current_session,
    new_session,
    set_session,
)

Handler = Callable[[Request, WebApp, WebSession], Awaitable[Response]]
FILTERS = ("unit", "leader", "state", "section")
# Messages after an action, chosen by a fixed code in the query string: nothing the client sends is echoed.
NOTICES = {
    "done": "已办结，任务不再提醒。",
    "approved": "已同意延期，完成时限已更新。",
    "refused": "已不同意延期，完成时限不变。",
    "chased": "催报已发送。",
    "nochase": "没有需要催报的单位。",
}


def refused(app: WebApp, request: Request, headline: str, explanation: str, status: int,
            back: str | None = None) -> Response:
    return app.page(request, "error.html", {"headline": headline, "explanation": explanation, "back": back}, status)


async def _signed_in_session(request: Request, app: WebApp) -> WebSession | None:
    """The cookie's session if it is signed in, and its account still exists with the same session epoch."""
    session = current_session(request, app.signer, app.now())
    if session is None or session.user is None:
        return None
    user = session.user
    epoch = await app.db(lambda s: accounts.session_epoch(s, user))
    return session if epoch == session.epoch else None


def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Only for a signed-in user; every POST must also carry the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        app = web(request)
        session = await _signed_in_session(request, app)
        if session is None:
            if request.method == "GET":
                response: Response = RedirectResponse("/admin/login", status_code=303)
            else:
                response = refused(app, request, "请先登录", "登录已失效，请重新登录后再操作。", 403, "/admin/login")
            if request.cookies.get(COOKIE):
                clear_session(response)
            return response
        if request.method == "POST":
            async with request.form(max_files=0, max_fields=50) as data:
                token = data.get("csrf")
            if not csrf_ok(session, token):
                return refused(app, request, "页面已过期", "表单校验失败，请返回刷新页面后重试。", 403, "/admin")
        if any(isinstance(value, str) and has_control_characters(value) for value in request.path_params.values()):
            return refused(app, request, "页面不存在", "请检查地址是否完整。", 404, "/admin")  # no task has such a name
        return await handler(request, app, session)

    return endpoint


async def login_page(request: Request) -> Response:
    app = web(request)
    if await _signed_in_session(request, app) is not None:
        return RedirectResponse("/admin", status_code=303)
    session = current_session(request, app.signer, app.now())
    if session is None or session.user is not None:  # none, or one that has ended
        session = new_session(None, app.now())
    response = app.page(request, "admin/login.html", {"csrf": session.csrf, "error": None, "username": ""})
    set_session(response, app.signer, session)
    return response


async def login(request: Request) -> Response:
    app = web(request)
    now = app.now()
    session = current_session(request, app.signer, now)
    async with request.form(max_files=0, max_fields=10) as data:
        token, username, password = data.get("csrf"), data.get("username"), data.get("password")
    if not csrf_ok(session, token):
        return refused(app, request, "页面已过期", "登录页已过期，请重新打开登录页。", 403, "/admin/login")
    assert session is not None
    username = username.strip() if isinstance(username, str) else ""
    password = password if isinstance(password, str) else ""
    if has_control_characters(username):  # no account holds one, and PostgreSQL takes no NUL
        return refused(app, request, "用户名无效", "用户名不能含有控制字符，请重新输入。", 400, "/admin/login")
    address = address_key(request.client.host if request.client else None)
    wait = app.throttle.address_wait(address, now)
    account = None
    if not wait:
        account = await app.db(lambda s: accounts.find_account(s, username))
        wait = app.throttle.begin(address, username, account.unlocks if account else 0, now)
    if wait:
        seconds = math.ceil(wait)
        return _form(app, request, session, username, f"尝试次数过多，请 {seconds} 秒后再试。", 429, seconds)
    stored = account.password_hash if account else DUMMY_HASH  # an unknown name costs the same check
    try:
        ok = await app.passwords.check(lambda: verify_password(password, stored))
    except PoolBusy:
        app.throttle.undo(address, username)
        return _form(app, request, session, username, "登录繁忙，请稍后再试。", 503, 1)
    if not ok or account is None:
        return _form(app, request, session, username, "用户名或密码错误。", 401)
    app.throttle.succeeded(address, username)
    response = RedirectResponse("/admin", status_code=303)
    set_session(response, app.signer, new_session(account.username, now, account.epoch))  # a fresh CSRF token
    return response


def _form(app: WebApp, request: Request, session: WebSession, username: str, error: str, status: int,
          retry_after: int | None = None) -> Response:
    context = {"csrf": session.csrf, "error": error, "username": username}
    response = app.page(request, "admin/login.html", context, status)
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    return response


async def _logout(request: Request, app: WebApp, session: WebSession) -> Response:
    user = session.user or ""
    await app.db(lambda s: accounts.end_sessions(s, user))  # a captured cookie is worth nothing from now on
    response = RedirectResponse("/admin/login", status_code=303)
    clear_session(response)
    return response


def _status(app: WebApp) -> Callable[[Session], PlanStatus]:
    today = app.today()
    return lambda s: load_status(s, active_plan(s), today, app.config.schedule.due_soon_days,
                              app.config.ladder.lag_points)


def _base(request: Request, session: WebSession, app: WebApp) -> dict[str, object]:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return {"user": session.user, "csrf": session.csrf, "today": app.today(), "notice": notice}


def _overview(app: WebApp) -> Callable[[Session], tuple[PlanStatus, Summary, tuple[TrendPoint, ...]]]:
    """Today's status with the digest's summary and trend, in one database call (the plan is read once)."""
    today = app.today()

    def load(s: Session) -> tuple[PlanStatus, Summary, tuple[TrendPoint, ...]]:
        loaded = load_plan(s, active_plan(s))
        status = load_status(s, loaded, today, app.config.schedule.due_soon_days, app.config.ladder.lag_points)
        year = load_year(s, app.config, loaded, cycle_of(today), today)
        points = since_first_report(year, trend(year))
        return status, summarise(status.lines, points[-1], today), points

    return load


async def _dashboard(request: Request, app: WebApp, session: WebSession) -> Response:
    status, summary, points = await app.db(_overview(app))
    chosen = {name: request.query_params.get(name, "") for name in FILTERS}
    lines = [line for line in status.lines
             if (not chosen["unit"] or chosen["unit"] == line.lead_unit or chosen["unit"] in line.co_units)
             and (not chosen["leader"] or chosen["leader"] == line.leader)
             and (not chosen["state"] or chosen["state"] == line.state)
             and (not chosen["section"] or chosen["section"] == line.section)]
    counts = {state: sum(1 for line in status.lines if line.state == state) for state in STATES}
    options = {
        "unit": sorted({u for line in status.lines for u in (line.lead_unit, *line.co_units) if u}),
        "leader": sorted({line.leader for line in status.lines if line.leader}),
        "section": list(dict.fromkeys(line.section for line in status.lines if line.section)),
        "state": list(STATES),
    }
    context = _base(request, session, app) | {
        "plan": status.plan.title, "lines": lines, "total": len(status.lines), "counts": counts,
        "chosen": chosen, "options": options, "cycle": cycle_of(app.today()), "summary": summary, "trend": points,
    }
    return app.page(request, "admin/dashboard.html", context)


async def _task(request: Request, app: WebApp, session: WebSession) -> Response:
    number = request.path_params["number"]
    status = await app.db(_status(app))
    line = next((line for line in status.lines if line.number == number), None)
    if line is None:
        return refused(app, request, "没有这项任务", f"计划中没有第 {number} 项任务。", 404, "/admin")
    try:
        history = await app.db(lambda s: office.task_history(s, number))
    except office.OfficeError:
        history = []  # an unassigned task has no history yet
    context = _base(request, session, app) | {"line": line, "history": history}
    return app.page(request, "admin/task.html", context)


async def _not_reported(request: Request, app: WebApp, session: WebSession) -> Response:
    cycle = cycle_of(app.today())
    units = await app.db(lambda s: office.not_reported(s, app.config, cycle, app.today()))
    context = _base(request, session, app) | {"cycle": cycle, "units": units}
    return app.page(request, "admin/not_reported.html", context)


async def _extensions(request: Request, app: WebApp, session: WebSession) -> Response:
    pending = await app.db(office.pending_extensions)
    return app.page(request, "admin/extensions.html", _base(request, session, app) | {"pending": pending})


logout = signed_in(_logout)
dashboard = signed_in(_dashboard)
task = signed_in(_task)
not_reported = signed_in(_not_reported)
extensions = signed_in(_extensions)
