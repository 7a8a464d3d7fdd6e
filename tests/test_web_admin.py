"""The office dashboard over HTTP: accounts, sessions, CSRF, the login delay, the task list, actions and exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.websupport import PASSWORD, USER, XSS, Site, answer, open_site

POSTS = ("/admin/logout", "/admin/chase", "/admin/tasks/12/done", "/admin/extensions/1")


@pytest.fixture
def site(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with open_site(loaded, monkeypatch) as site:
        yield site


def extension_request(site: Site, reason: str = "疫情影响换届会议", to: str = "2021-09-30") -> int:
    form = answer("10", "防控到位") | answer("12", "换届推迟", status="extension", new_deadline=to, reason=reason)
    assert site.client.post(site.link("宗教二处"), data=form).status_code == 200
    return site.reports("12")[-1].id


@pytest.mark.parametrize("path", ["/admin", "/admin/tasks/12", "/admin/not-reported", "/admin/extensions",
                                  "/admin/export.xlsx", "/admin/export.csv"])
def test_it_sends_a_visitor_to_the_login_page(site: Site, path: str) -> None:
    response = site.client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin/login"


def test_it_signs_in_with_a_secure_httponly_samesite_cookie(site: Site) -> None:
    token = site.csrf("/admin/login")
    response = site.client.post("/admin/login", data={"csrf": token, "username": USER, "password": PASSWORD},
                                follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"].lower()
    assert all(part in cookie for part in ("secure", "httponly", "samesite=strict", "path=/admin"))
    page = site.client.get("/admin")
    assert page.status_code == 200 and "任务台账" in page.text and "退出（ducha）" in page.text
    assert site.csrf("/admin") != token  # a new CSRF token once signed in


def test_it_refuses_a_wrong_password_and_an_unknown_user(site: Site) -> None:
    for username, password in ((USER, "wrong password!"), ("nobody", PASSWORD)):
        token = site.csrf("/admin/login")
        response = site.client.post("/admin/login", data={"csrf": token, "username": username, "password": password})
        assert response.status_code == 401 and "用户名或密码错误" in response.text
        assert site.client.get("/admin", follow_redirects=False).status_code == 303


def test_it_slows_down_repeated_failures_instead_of_locking_the_account(site: Site) -> None:
    for _ in range(3):
        token = site.csrf("/admin/login")
        site.client.post("/admin/login", data={"csrf": token, "username": USER, "password": "wrong password!"})
    token = site.csrf("/admin/login")
    slowed = site.client.post("/admin/login", data={"csrf": token, "username": USER, "password": PASSWORD})
    assert slowed.status_code == 429 and "尝试次数过多，请 1 秒后再试" in slowed.text
    assert slowed.headers["retry-after"] == "1"
    site.clock.now += timedelta(seconds=1)
    site.login()  # a second later, not 15 minutes


def test_it_refuses_a_login_without_its_csrf_token(site: Site) -> None:
    site.csrf("/admin/login")  # a session exists, but the form's token is left out or wrong
    for data in ({"username": USER, "password": PASSWORD}, {"csrf": "guess", "username": USER, "password": PASSWORD}):
        response = site.client.post("/admin/login", data=data, follow_redirects=False)
        assert response.status_code == 403 and "页面已过期" in response.text
    site.client.cookies.clear()
    response = site.client.post("/admin/login", data={"csrf": "x", "username": USER, "password": PASSWORD})
    assert response.status_code == 403


@pytest.mark.parametrize("path", POSTS)
def test_it_refuses_every_post_without_the_sessions_csrf_token(site: Site, path: str) -> None:
    site.login()
    for data in ({}, {"csrf": "forged", "decision": "approve"}):
        response = site.client.post(path, data=data, follow_redirects=False)
        assert response.status_code == 403 and "表单校验失败" in response.text
    assert site.client.get("/admin").status_code == 200  # still signed in: nothing was done
    assert site.reports("12") == []


@pytest.mark.parametrize("path", POSTS)
def test_it_refuses_every_post_without_a_session(site: Site, path: str) -> None:
    response = site.client.post(path, data={"csrf": "anything"}, follow_redirects=False)
    assert response.status_code == 403 and "请先登录" in response.text


def test_it_ignores_an_altered_session_cookie(site: Site) -> None:
    site.login()
    value = site.client.cookies.get("reminders_session", path="/admin")
    assert value
    for sent, status in ((value, 200), (value[:-3] + "AAA", 303), ("e30." + value.split(".")[1], 303)):
        site.client.cookies.clear()
        site.client.cookies.set("reminders_session", sent, domain="testserver.local", path="/admin")
        assert site.client.get("/admin", follow_redirects=False).status_code == status


def test_it_logs_out(site: Site) -> None:
    token = site.login()
    response = site.client.post("/admin/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert site.client.get("/admin", follow_redirects=False).status_code == 303


def test_it_lists_every_task_with_its_light_and_filters(site: Site) -> None:
    site.login()
    page = site.client.get("/admin").text
    assert page.count('<tr id="task-') == 19 and "已逾期" in page and "长期推进" in page
    assert site.client.get("/admin?unit=宗教二处").text.count('<tr id="task-') == 4  # leads 10, 12; co on 1, 2
    assert site.client.get("/admin?leader=陈静").text.count('<tr id="task-') == 3
    overdue = site.client.get("/admin?state=overdue").text
    assert 'id="task-12"' in overdue and 'id="task-13"' not in overdue
    section = site.client.get("/admin?section=nothing-like-it").text
    assert 'id="task-' not in section and "没有符合条件的任务" in section
    assert site.client.get("/admin?state=" + XSS).text.count('<tr id="task-') == 0


def test_it_shows_a_tasks_history_and_closes_it(site: Site) -> None:
    token = site.login()
    site.client.post(site.link("宗教二处"), data=answer("10", "防控到位") | answer("12", "已换届1个", percent="40"))
    history = site.client.get("/admin/tasks/12").text
    assert "已换届1个" in history and "网页报送" in history and "已逾期" in history
    done = site.client.post("/admin/tasks/12/done", data={"csrf": token, "note": "验收合格"})
    assert done.status_code == 200 and "已办结，任务不再提醒" in done.text
    assert "验收合格（ducha 办结）" in done.text and "● 已办结" in done.text.replace("&nbsp;", " ")
    assert 'id="task-12"' in site.client.get("/admin?state=done").text
    assert site.client.get("/admin/tasks/99").status_code == 404


def test_it_lists_units_that_have_not_reported_and_chases_them(site: Site, smtp: RecordingServer) -> None:
    token = site.login()
    site.client.post(site.link("宗教二处"), data=answer("10", "防控到位") | answer("12", "已换届1个"))
    page = site.client.get("/admin/not-reported").text
    assert "民族工作处" in page and "宗教二处" not in page
    before = len(smtp.messages)
    chased = site.client.post("/admin/chase", data={"csrf": token})
    assert chased.status_code == 200 and "催报已发送" in chased.text
    sent = {r for m in smtp.messages[before:] for r in m.recipients}
    assert "minzu@example.org" in sent and "zongjiao2@example.org" not in sent
    again = site.client.post("/admin/chase", data={"csrf": token})
    assert "没有需要催报的单位" in again.text and len(smtp.messages) == before + len(site.outbox("chase"))


def test_it_approves_and_refuses_extensions(site: Site) -> None:
    token = site.login()
    report_id = extension_request(site)
    pending = site.client.get("/admin/extensions").text
    assert "疫情影响换届会议" in pending and "2021年9月30日" in pending
    approved = site.client.post(f"/admin/extensions/{report_id}", data={"csrf": token, "decision": "approve"})
    assert "已同意延期" in approved.text and "没有待处理的延期申请" in approved.text
    assert "2021年9月30日" in site.client.get("/admin/tasks/12").text
    assert 'id="task-12"' not in site.client.get("/admin?state=overdue").text
    twice = site.client.post(f"/admin/extensions/{report_id}", data={"csrf": token, "decision": "approve"})
    assert twice.status_code == 400 and "已处理过" in twice.text
    refused_id = extension_request(site, to="2021-12-31")
    refused = site.client.post(f"/admin/extensions/{refused_id}",
                               data={"csrf": token, "decision": "refuse", "reason": "理由不充分"})
    assert "已不同意延期" in refused.text
    assert "理由不充分" in site.client.get("/admin/tasks/12").text
    assert site.client.post(f"/admin/extensions/{refused_id}", data={"csrf": token}).status_code == 400


def test_it_exports_the_ledger_as_xlsx_and_csv(site: Site) -> None:
    site.login()
    site.client.post(site.link("宗教二处"), data=answer("10", "防控到位") | answer("12", "已换届1个", percent="40"))
    xlsx = site.client.get("/admin/export.xlsx")
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in xlsx.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[2][0] == "序号" and len(rows) == 22  # a title, the plan and the day, then the header
    latest, percent = rows[2].index("最新进展"), rows[2].index("完成进度")
    assert [(row[latest], row[percent]) for row in rows if row[0] == 12] == [("宗教二处：已换届1个", 0.4)]
    text = site.client.get("/admin/export.csv").content.decode("utf-8-sig")
    records = list(csv.reader(io.StringIO(text)))
    assert records[0][0] == "序号" and len(records) == 20
    assert [(record[latest], record[percent]) for record in records if record[0] == "12"] == [
        ("宗教二处：已换届1个", "40%")]


def test_it_escapes_markup_everywhere_the_office_reads_it(site: Site) -> None:
    token = site.login()
    report_id = extension_request(site, reason=XSS)
    refused = site.client.post(f"/admin/extensions/{report_id}",
                               data={"csrf": token, "decision": "refuse", "reason": XSS})
    assert refused.status_code == 200
    site.client.post(site.link("宗教二处"), data=answer("10", XSS, problems=XSS, next_steps=XSS) | answer(
        "12", XSS, status="extension", new_deadline="2021-10-31", reason=XSS))  # a new request, pending
    site.client.post("/admin/tasks/10/done", data={"csrf": token, "note": XSS})
    pages = [site.client.get(path).text for path in ("/admin", "/admin/tasks/10", "/admin/tasks/12",
                                                     "/admin/extensions", "/admin/?unit=" + XSS)]
    for page in pages:
        assert "<script>" not in page and "<img" not in page
    assert all("&lt;script&gt;" in page for page in pages[:4])
    failed = site.client.post("/admin/login", data={"csrf": site.csrf("/admin/login"), "username": XSS,
                                                    "password": "x"})
    assert "<script>" not in failed.text


def test_it_keeps_the_report_date_in_the_offices_time_zone(site: Site) -> None:
    site.clock.now = site.clock.now.replace(hour=17)  # 01:00 on the 22nd in Shanghai
    site.client.post(site.link("宗教二处"), data=answer("10", "防控到位") | answer("12", "已换届1个"))
    assert site.reports("12")[0].reported_on == date(2021, 6, 22)
