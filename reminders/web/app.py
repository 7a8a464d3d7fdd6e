"""`create_app(config, engine)`: the routes, the security headers and the error pages.

Run it with `reminders serve` (uvicorn). The web secret signs both the units' links and the dashboard's session
cookie, so the app refuses to start without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from reminders.config import Config, ConfigError
from reminders.errors import ReminderError
from reminders.tracking import links
from reminders.web import actions, admin, unit
from reminders.web.pages import WebApp, make_env, web
from reminders.web.security import SecurityHeaders, Signer

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # a month's report of every task fits many times over
ERRORS = {
    400: ("请求无效", "请返回上一页重试。"),
    404: ("页面不存在", "请检查地址是否完整。"),
    405: ("请求方式不支持", "请返回上一页重试。"),
    413: ("提交内容过长", "请精简填写内容后重试。"),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def healthz(request: Request) -> Response:
    app = web(request)
    await app.db(lambda s: s.execute(text("select 1")))
    return PlainTextResponse("ok")


async def admin_root(request: Request) -> Response:
    return RedirectResponse("/admin", status_code=307)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headline, explanation = ERRORS.get(exc.status_code, ("请求出错", "请稍后重试。"))
    response = web(request).page(request, "error.html", {"headline": headline, "explanation": explanation,
                                                          "back": None}, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


class Unrouted:
    """Every path and method no route takes: 405 with `Allow` when the path exists under other methods, a redirect
    to the same path with or without its trailing slash built on `[web] base_url` (never the request's Host), else
    404. It replaces Starlette's own answers, which name one route's methods and redirect to the Host header."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        routes = [route for route in request.app.router.routes if isinstance(route, Route) and route.methods]
        allowed = sorted({method for route in routes if route.matches(scope)[0] is not Match.NONE
                          for method in route.methods or ()})
        response: Response
        if allowed:
            response = await http_error(request, HTTPException(405, headers={"Allow": ", ".join(allowed)}))
        else:
            path = request.url.path
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            if path != "/" and any(route.matches({**scope, "path": other})[0] is not Match.NONE for route in routes):
                query = f"?{request.url.query}" if request.url.query else ""
                response = RedirectResponse(web(request).config.web.base_url.rstrip("/") + other + query, 307)
            else:
                response = await http_error(request, HTTPException(404))
        await response(scope, receive, send)


async def refusal(request: Request, exc: Exception) -> Response:
    """A ReminderError that reached the top (no plan imported yet, a database not upgraded): the office sees what it
    says, since it can act on it; a unit's page says only to ask the office, and the log keeps the message."""
    assert isinstance(exc, ReminderError)
    log.warning("%s %s refused: %s", request.method, request.url.path, exc)
    explanation = str(exc) if request.url.path.startswith("/admin") else "请联系督查室。"
    return web(request).page(request, "error.html", {"headline": "暂时无法处理", "explanation": explanation,
                                                     "back": None}, 409)


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/r/{token}", unit.show, methods=["GET"]),
        Route("/r/{token}", unit.submit, methods=["POST"]),
        Route("/admin/login", admin.login_page, methods=["GET"]),
        Route("/admin/login", admin.login, methods=["POST"]),
        Route("/admin/logout", admin.logout, methods=["POST"]),
        Route("/admin", admin.dashboard, methods=["GET"]),
        Route("/admin/", admin_root, methods=["GET"]),
        Route("/admin/tasks/{number}", admin.task, methods=["GET"]),
        Route("/admin/tasks/{number}/done", actions.done, methods=["POST"]),
        Route("/admin/not-reported", admin.not_reported, methods=["GET"]),
        Route("/admin/chase", actions.chase, methods=["POST"]),
        Route("/admin/extensions", admin.extensions, methods=["GET"]),
        Route("/admin/extensions/{report_id:int}", actions.decide, methods=["POST"]),
        Route("/admin/export.xlsx", actions.export_xlsx, methods=["GET"]),
        Route("/admin/export.csv", actions.export_csv, methods=["GET"]),
        Route("/{path:path}", Unrouted()),  # last: an ASGI endpoint, so every method reaches it
    ]


def create_app(config: Config, engine: Engine, clock: Callable[[], datetime] = _utcnow) -> Starlette:
    """The ASGI app. `clock` gives the current moment (tz-aware); tests pass a fixed one."""
    secret = config.web_secret()
    if not secret:
        raise ConfigError(config.path, "web.secret_env",
                          f"环境变量 {config.web.secret_env} 未设置，网页服务需要它签名链接和登录会话 "
                          "(the web secret is not set)")
    problem = links.secret_problem(secret)
    if problem is not None:
        raise ConfigError(config.path, "web.secret_env", f"环境变量 {config.web.secret_env}：{problem}")
    app = Starlette(routes=routes(), middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={HTTPException: http_error, ReminderError: refusal}, max_body_size=MAX_BODY)
    env = make_env(config.mail.language, config.schedule.tz)
    app.state.web = WebApp(config, engine, secret, Signer(secret), env, clock)
    return app
