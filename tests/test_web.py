"""The unit's report form over HTTP: the signed link, the form, submitting it, the receipt, and every refusal."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta

import httpx2 as httpx
import pytest

from reminders.delivery import dispatch
from tests.conftest import Cli
from tests.smtpserver import RecordingServer, free_port
from tests.websupport import SECRET, XSS, Site, answer, open_site

UNIT = "宗教二处"  # leads 10 (常态化) and 12 (5月底前: overdue in June), co-operates on 1 and 2
OTHERS = ("办公室", "民族工作处", "宗教一处", "政策法规处", "机关党委", "信息中心")


@pytest.fixture
def site(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with open_site(loaded, monkeypatch) as site:
        yield site


def lead_answers(**extra: str) -> dict[str, str]:
    return answer("10", "完成疫情防控检查3次", percent="50") | answer("12", "指导宗教团体换届2个", percent="80") | extra


def test_it_answers_healthz(site: Site) -> None:
    response = site.client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok"


def test_it_shows_the_units_tasks_lead_first_with_deadline_light_and_last_report(site: Site, loaded: Cli) -> None:
    loaded("progress", "12", "--unit", UNIT, "--percent", "30", "--note", "已召开专题会议", "--date", "2021-05-20")
    page = site.client.get(site.link(UNIT))
    assert page.status_code == 200
    text = page.text
    order = [text.index(f'id="task-{n}"') for n in ("10", "12", "1", "2")]
    assert order == sorted(order)
    assert text.count('class="tag lead"') == 2
    assert "2021年5月31日" in text and "已逾期" in text and "长期推进" in text
    assert "2021年5月20日 宗教二处 · 30%：已召开专题会议" in text
    assert "请于2021年6月25日前提交" in text
    for name in ("note", "percent", "status", "problems", "next_steps", "new_deadline", "reason"):
        assert f'name="12.{name}"' in text
    assert "<script" not in text.lower()


def test_it_records_a_report_per_task_confirms_and_queues_a_receipt(site: Site, smtp: RecordingServer) -> None:
    form = lead_answers() | answer("2", "配合完成学习材料汇编", percent="100", next_steps="报送牵头单位")
    response = site.client.post(site.link(UNIT), data=form)
    assert response.status_code == 200, response.text
    assert "报送成功" in response.text and "已记录 3 项任务" in response.text
    [report] = site.reports("12")
    assert (report.note, report.percent, report.status, report.source) == ("指导宗教团体换届2个", 80, "progress", "web")
    assert report.reported_on == date(2021, 6, 21) and report.cycle == "2021-06"
    assert [r.next_steps for r in site.reports("2")] == ["报送牵头单位"]
    assert site.reports("1") == []  # a co task left empty is not a report
    [receipt] = site.outbox("receipt")
    # The web process sends no mail (issue 11): the receipt waits out [web] receipt_window (10m) in the outbox.
    assert receipt.state == "pending" and smtp.messages == []
    assert receipt.next_attempt_at is not None and receipt.next_attempt_at - receipt.created_at == timedelta(minutes=10)
    dispatch.deliver_pending(site.engine, site.config, "2021-06", ("receipt",))  # send --kind receipts
    assert [m.recipients for m in smtp.messages] == [("zongjiao2@example.org",)]


def test_it_records_a_done_task_and_an_extension_request(site: Site) -> None:
    form = answer("10", "常态化防控已落实", status="done") | answer(
        "12", "换届推迟", percent="60", status="extension", new_deadline="2021-09-30", reason="疫情影响换届会议")
    assert site.client.post(site.link(UNIT), data=form).status_code == 200
    assert site.reports("10")[0].done is True
    [request] = site.reports("12")
    assert (request.status, request.requested_deadline, request.request_reason) == (
        "extension", date(2021, 9, 30), "疫情影响换届会议")


def test_it_requires_progress_for_lead_tasks_and_records_nothing(site: Site) -> None:
    form = answer("10", "完成检查") | answer("12", "", percent="20")
    response = site.client.post(site.link(UNIT), data=form)
    assert response.status_code == 400
    assert "牵头任务必须填写进展情况" in response.text
    assert "完成检查" in response.text  # what was typed is kept
    assert site.reports("10") == [] and site.reports("12") == []
    assert site.outbox("receipt") == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("12.percent", "120", "0–100"),
    ("12.percent", "八十", "0–100 之间的整数"),
    ("12.new_deadline", "明年", "年-月-日"),
    ("12.status", "whatever", "状态应为"),
])
def test_it_refuses_a_bad_field_and_says_which(site: Site, field: str, value: str, message: str) -> None:
    form = lead_answers() | answer("12", "有进展", status="extension", reason="原因") | {field: value}
    response = site.client.post(site.link(UNIT), data=form)
    assert response.status_code == 400
    assert message in response.text
    assert site.reports("12") == []


def test_it_refuses_an_oversized_submission(site: Site) -> None:
    response = site.client.post(site.link(UNIT), data=lead_answers() | {"10.note": "长" * 1_000_000})
    assert response.status_code == 413
    assert site.reports("10") == []


def test_it_ignores_fields_for_another_units_task(site: Site) -> None:
    form = lead_answers() | answer("19", "篡改办公室的任务", status="done")  # 19 belongs to 办公室 alone
    assert site.client.post(site.link(UNIT), data=form).status_code == 200
    assert site.reports("19") == []


def test_it_shows_a_co_units_input_to_the_lead_unit(site: Site) -> None:
    site.client.post(site.link(UNIT), data=lead_answers() | answer("2", "已提供宗教二处学习材料"))
    lead = site.client.get(site.link("宗教一处")).text
    assert "配合单位本月报送" in lead and "宗教二处" in lead and "已提供宗教二处学习材料" in lead


def test_it_fills_the_form_again_with_the_units_own_report(site: Site) -> None:
    site.client.post(site.link(UNIT), data=lead_answers())
    page = site.client.get(site.link(UNIT)).text
    assert ">指导宗教团体换届2个</textarea>" in page and 'value="80"' in page


def refusal(site: Site, path: str, method: str = "GET") -> str:
    response = site.client.request(method, path, data=lead_answers() if method == "POST" else None)
    assert response.status_code == 403
    text = response.text
    assert "ducha@example.org" in text and "督查室" in text  # says what to do, and where
    assert UNIT not in text and not any(name in text for name in OTHERS)  # and nothing about any unit
    return text


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_it_refuses_a_forged_altered_malformed_or_foreign_link(site: Site, method: str) -> None:
    genuine = site.link(UNIT).removeprefix("/r/")
    payload, signature = genuine.split(".")
    other = site.link("宗教一处").removeprefix("/r/")
    cases = {
        "forged": site.link(UNIT, secret="not-the-secret"),  # signed with another key
        "altered": f"/r/{other.split('.')[0]}.{signature}",  # another unit's payload under this unit's signature
        "truncated": f"/r/{payload}.{signature[:-4]}",
        "malformed": "/r/not-a-token",
    }
    for name, path in cases.items():
        assert "链接无效" in refusal(site, path, method), name
    assert site.reports("10") == [] and site.reports("12") == []


def test_it_refuses_an_expired_link(site: Site) -> None:
    assert "链接已过期" in refusal(site, site.link(UNIT, expires=date(2021, 6, 20)))
    assert "请联系" in refusal(site, site.link(UNIT, expires=date(2021, 6, 20)), "POST")
    assert site.client.get(site.link(UNIT, expires=date(2021, 6, 21))).status_code == 200  # valid through the day


def test_it_refuses_a_link_for_a_unit_that_does_not_exist(site: Site) -> None:
    from reminders.tracking.links import make_token

    assert "链接无效" in refusal(site, "/r/" + make_token(SECRET.encode(), 999, "2021-06", date(2021, 7, 31)))


def test_it_escapes_markup_in_every_text_field_of_the_form(site: Site) -> None:
    form = answer("10", XSS, percent="10", problems=XSS, next_steps=XSS) | answer(
        "12", XSS, status="extension", new_deadline="2021-10-31", reason=XSS) | answer("2", XSS, problems=XSS)
    confirmation = site.client.post(site.link(UNIT), data=form).text
    again = site.client.get(site.link(UNIT)).text
    lead = site.client.get(site.link("宗教一处")).text  # the co input shown to the lead unit
    for page in (confirmation, again, lead):
        assert "<script>" not in page and "<img" not in page
        assert html.escape(XSS, quote=False).replace('"', "&#34;") in page  # the whole of it, escaped
    assert confirmation.count("&lt;script&gt;") == 7
    [report] = site.reports("12")
    assert report.note == XSS  # stored as typed: data, never markup


def test_it_re_shows_a_refused_form_escaped(site: Site) -> None:
    response = site.client.post(site.link(UNIT), data=answer("10", XSS) | answer("12", "", problems=XSS))
    assert response.status_code == 400
    assert "<script>" not in response.text and response.text.count("&lt;script&gt;") == 2


def test_it_sends_security_headers_and_no_referrer(site: Site) -> None:
    for path in ("/healthz", site.link(UNIT), "/r/bad", "/admin/login", "/nowhere"):
        headers = site.client.get(path).headers
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_it_shows_a_chinese_page_for_an_unknown_path_and_method(site: Site) -> None:
    missing = site.client.get("/nowhere")
    assert missing.status_code == 404 and "页面不存在" in missing.text
    assert site.client.put(site.link(UNIT)).status_code == 405


def test_it_refuses_to_serve_without_the_web_secret(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMINDERS_WEB_SECRET", raising=False)
    result = loaded("serve", ok=False)
    assert result.exit_code == 1 and "web.secret_env" in result.output and "REMINDERS_WEB_SECRET" in result.output


def test_it_serves_from_the_command_line(loaded: Cli) -> None:
    port = free_port()
    with loaded.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[web]\nbind = "127.0.0.1"\nport = {port}\n')
    env = os.environ | {"REMINDERS_WEB_SECRET": SECRET}
    command = [sys.executable, "-m", "reminders", "--config", str(loaded.config), "serve"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    health = client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, "reminders serve did not start"
                    time.sleep(0.1)
            assert health.text == "ok"
            assert client.get("/r/forged.link").status_code == 403
    finally:
        server.terminate()
        server.wait(timeout=10)
