"""Random requests against every route of the app as `reminders serve` runs it (the Guard around the Starlette app),
signed in and not, on SQLite and PostgreSQL: no answer is a 500, and every answer carries the security headers.

Paths are the app's own with random parts (NUL, `..`, `%`, CJK, huge numbers, trailing slashes) or random
altogether; methods, headers, query strings and form bodies are random; a signed-in request carries the session's
CSRF token half of the time, so the actions behind the check are reached too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from reminders.config import load
from reminders.store.db import make_engine, session_scope
from reminders.store.models import Unit
from reminders.tracking import links
from reminders.tracking.accounts import add_user
from reminders.web import create_app
from reminders.web.security import HEADERS
from reminders.web.server import Guard
from tests.conftest import Cli
from tests.websupport import CYCLE, EXPIRES, NOW, PASSWORD, USER, Clock

SECRET = "fuzz-test-secret-9c2e4a7f1b3d5e8a0c6f2b4d9e1a"
HOST = "reminders.example.org"
BASE_URL = f"https://{HOST}"
EXAMPLES = 300

METHODS = st.one_of(st.sampled_from(["GET", "POST"]), st.sampled_from(["GET", "POST"]),
                    st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
                    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8))
WEIRD = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "..", "%00", "\x00", "12", "1", "99999999999999999999", "-1", "2147483648", "0", "１２",
                     "12/", "a/../b", "%2e%2e", "工作", "\ufffe", "x" * 3000]),
    st.integers(min_value=-2**70, max_value=2**70).map(str),
)
PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
FIELDS = ["csrf", "username", "password", "decision", "reason", "note", "10.note", "10.percent", "10.status",
          "10.problems", "10.next_steps", "12.status", "12.new_deadline", "12.reason", "12.note", "99.note"]
VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["approve", "refuse", "done", "extension", "progress",
                                                           "difficulty", "100", "-1", "2021-09-30", "\x00", "\ufffe",
                                                           "<script>", "=1+1", "x" * 5000]))


def encoded(part: str, raw: bool) -> str:
    """Percent-encoded as a segment, or with its slashes, dots and sub-delimiters left as they are."""
    return quote(part, safe="/%:@!$&'()*+,;=" if raw else "")


@st.composite
def paths(draw: st.DrawFn, token: str) -> str:
    part = encoded(draw(WEIRD), draw(st.booleans()) and draw(st.booleans()))
    template = draw(st.sampled_from([
        "/healthz", "/r/{token}", "/r/{x}", "/r/{token}{x}", "/admin", "/admin/", "/admin/login", "/admin/logout",
        "/admin/tasks/{x}", "/admin/tasks/12", "/admin/tasks/{x}/done", "/admin/tasks/12/done",
        "/admin/not-reported", "/admin/chase", "/admin/extensions", "/admin/extensions/{x}",
        "/admin/export.xlsx", "/admin/export.csv", "/{x}", "/{x}/{x}/", "/admin/{x}", "/r/", "/",
    ]))
    path = template.replace("{token}", token).replace("{x}", part)
    if draw(st.integers(0, 9)) == 0:
        path += "/"
    return path if path.startswith("/") else "/" + path


@dataclass
class Fuzz:
    client: TestClient
    engine: Engine
    token: str
    csrf: str
    session: dict[str, str]


@pytest.fixture
def fuzz(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fuzz]:
    monkeypatch.setenv("REMINDERS_WEB_SECRET", SECRET)
    with loaded.config.open("a", encoding="utf-8") as file:
        file.write(f'\n[web]\nbase_url = "{BASE_URL}"\n')
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    with session_scope(engine) as session:
        add_user(session, USER, PASSWORD)
        unit_id = session.scalars(select(Unit.id).where(Unit.name == "宗教二处")).one()
    token = links.make_token(SECRET.encode(), unit_id, CYCLE, EXPIRES)
    app = Guard(create_app(config, engine, Clock(NOW)), config)
    with TestClient(app, base_url=BASE_URL) as client:
        page = client.get("/admin/login")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        signed = client.post("/admin/login", data={"csrf": found[1], "username": USER, "password": PASSWORD},
                             follow_redirects=False)
        assert signed.status_code == 303, signed.text
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin").text)
        assert found
        yield Fuzz(client, engine, token, found[1], dict(client.cookies.items()))
    engine.dispose()


@st.composite
def requests(draw: st.DrawFn, token: str) -> dict[str, object]:
    form = draw(st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), VALUES, max_size=8))
    headers = draw(st.dictionaries(
        st.sampled_from(["accept", "accept-language", "user-agent", "content-type", "cookie", "range", "referer",
                         "x-forwarded-for", "x-forwarded-host", "if-none-match", "origin", "x-random", "host"]),
        PRINTABLE, max_size=4))
    query = draw(st.one_of(st.just(""), PRINTABLE.map(lambda text: quote(text, safe="=&")),
                           st.dictionaries(st.sampled_from(["unit", "leader", "state", "section", "notice", "as_of",
                                                            "x"]), st.text(max_size=20), max_size=3).map(urlencode)))
    return {"method": draw(METHODS), "path": draw(paths(token)), "query": query, "headers": headers, "form": form,
            "signed_in": draw(st.booleans()), "with_csrf": draw(st.booleans()), "multipart": draw(st.booleans())}


def check(fuzz: Fuzz, request: dict[str, object], caplog: pytest.LogCaptureFixture) -> int:
    form = dict(request["form"])  # type: ignore[call-overload]
    if request["signed_in"]:
        fuzz.client.cookies.update(fuzz.session)
        if request["with_csrf"]:
            form["csrf"] = fuzz.csrf
    else:
        fuzz.client.cookies.clear()
    url = f"{request['path']}?{request['query']}" if request["query"] else str(request["path"])
    url = str(fuzz.client.base_url).rstrip("/") + url  # absolute: a relative URL may not start "//" (////, //x)
    headers = dict(request["headers"])  # type: ignore[call-overload]
    caplog.clear()
    if request["multipart"] and form:
        response = fuzz.client.request(str(request["method"]), url, headers=headers,
                                       files={name: (None, value) for name, value in form.items()})
    else:
        response = fuzz.client.request(str(request["method"]), url, headers=headers, data=form or None)
    failure = "\n".join(record.getMessage() + "\n" + (logging.Formatter().formatException(record.exc_info)
                                                      if record.exc_info else "") for record in caplog.records
                        if record.levelno >= logging.ERROR)
    assert response.status_code != 500, (request, failure[-3000:])
    missing = [name for name in HEADERS if name not in response.headers]
    assert not missing, (request, response.status_code, missing)
    return response.status_code


def test_no_input_to_any_route_is_a_500_and_every_answer_is_secured(fuzz: Fuzz,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    answers: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request=requests(fuzz.token))
    def trial(request: dict[str, object]) -> None:
        status = check(fuzz, request, caplog)
        answers[status] = answers.get(status, 0) + 1

    trial()
    print(f"\nanswers by status: {dict(sorted(answers.items()))}")
    # The trial reached the routes, their refusals and their actions, not only the 404 page.
    assert {200, 400, 403, 404, 405} <= set(answers), answers


@pytest.mark.parametrize("path", ["/admin/tasks/%00", "/admin/tasks/12%00/done", "/admin/extensions/99999999999",
                                  "/r/%00", "/admin/tasks/" + "9" * 40])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_known_edges_signed_in(fuzz: Fuzz, caplog: pytest.LogCaptureFixture, path: str, method: str) -> None:
    for note in ("", "a\x00b", "\ufffe"):
        check(fuzz, {"method": method, "path": path, "query": "", "headers": {},
                     "form": {"note": note, "decision": "approve", "reason": note}, "signed_in": True,
                     "with_csrf": True, "multipart": False}, caplog)
