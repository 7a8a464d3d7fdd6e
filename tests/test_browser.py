"""End to end in a real browser: a reminder arrives by SMTP, its link opens the form in headless Chromium on a phone,
the unit reports, and the office signs in, sees the report and the changed light, and exports the ledger.

Needs Debian's chromium at /usr/bin/chromium (Playwright drives it; no browser is downloaded). Without it the test is
skipped, unless REMINDERS_REQUIRE_BROWSER is set (as .ci/run does), when it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import uvicorn
from openpyxl import load_workbook
from playwright.sync_api import Browser, sync_playwright

from reminders.config import load
from reminders.store.db import make_engine
from reminders.web import create_app
from tests.conftest import EXAMPLES, ROOT, Cli, write_config
from tests.smtpserver import RecordingServer, free_port
from tests.websupport import NOW, PASSWORD, SECRET, USER, Clock

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--lang=zh-CN"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
UNIT, ADDRESS = "宗教二处", "zongjiao2@example.org"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("REMINDERS_REQUIRE_BROWSER"):
            pytest.fail(f"REMINDERS_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path, smtp: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cli, str]]:
    """The example data, and the web app served by uvicorn on a free port (in a thread, with the clock at
    2021-06-21 so the June links are current)."""
    monkeypatch.setenv("REMINDERS_WEB_SECRET", SECRET)
    monkeypatch.setenv("REMINDERS_ADMIN_PASSWORD", PASSWORD)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = f'[web]\nbase_url = "{base}"\nbind = "127.0.0.1"\nport = {port}\n'
    config = write_config(tmp_path / "reminders.toml", f"sqlite:///{tmp_path / 'web.sqlite3'}", transport="smtp",
                          smtp_port=smtp.port, extra=web)
    run = Cli(config)
    run("init")
    for command, name in (("import-plan", "plan-2021.txt"), ("import-leaders", "leaders.csv"),
                          ("import-units", "units.csv"), ("import-assignments", "assignments.csv")):
        run(command, str(EXAMPLES / name))
    run("admin", "add-user", USER, "--password-env", "REMINDERS_ADMIN_PASSWORD")
    settings = load(str(config))
    engine = make_engine(settings.database_url)
    app = create_app(settings, engine, Clock(NOW))
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, "uvicorn to start")
    yield run, base
    uv.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def wait_for(condition: Callable[[], object], what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def mail_to(smtp: RecordingServer, address: str, subject: str) -> EmailMessage | None:
    for received in smtp.messages:
        message = message_from_bytes(received.data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        if address in received.recipients and subject in str(message["Subject"]):
            return message
    return None


def link_in(message: EmailMessage, base: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(re.escape(base) + r"/r/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", body.get_content())
    assert match, body.get_content()
    return match[0]


def save(path: Path, name: str) -> None:
    """Refresh the README's screenshot too when asked (REMINDERS_UPDATE_SCREENSHOTS=1); runs leave the tree clean."""
    if os.environ.get("REMINDERS_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)


def test_it_takes_a_unit_from_its_reminder_to_the_offices_ledger(
    server: tuple[Cli, str], smtp: RecordingServer, browser: Browser, tmp_path: Path
) -> None:
    run, base = server
    # A process of its own: Playwright's sync API keeps an event loop running in this thread.
    sent = subprocess.run([sys.executable, "-m", "reminders", "--config", str(run.config), "send", "--cycle",
                           "2021-06", "--kind", "reminders"], capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    reminder = mail_to(smtp, ADDRESS, "提醒")
    assert reminder is not None, [m.recipients for m in smtp.messages]
    link = link_in(reminder, base)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                has_touch=True, locale="zh-CN")
    page = phone.new_page()
    page.goto(link)
    assert page.locator("h1").inner_text() == UNIT
    assert page.locator("#task-12 .light").inner_text().replace("\xa0", " ") == "● 已逾期"
    page.fill('textarea[name="10.note"]', "本月开展常态化疫情防控检查3次，覆盖全部宗教活动场所。")
    page.fill('input[name="10.percent"]', "60")
    page.fill('textarea[name="10.next_steps"]', "7月开展第二轮检查。")
    page.fill('textarea[name="12.note"]', "指导2个宗教团体完成换届，自身建设任务已完成。")
    page.check('input[name="12.status"][value="done"]')
    page.locator("h1").scroll_into_view_if_needed()  # the top of the form: the unit, the first task filled in
    page.screenshot(path=tmp_path / "form.png")
    page.screenshot(path=tmp_path / "form-full.png", full_page=True)
    page.get_by_role("button", name="提交本月报送").click()
    page.wait_for_selector("text=报送成功")
    page.screenshot(path=tmp_path / "confirmation.png", full_page=True)
    # The web process sends no mail: the receipt waits in the outbox for its window; the office can send it now.
    assert not mail_to(smtp, ADDRESS, "回执")
    receipts = subprocess.run([sys.executable, "-m", "reminders", "--config", str(run.config), "send", "--cycle",
                               "2021-06", "--kind", "receipts"], capture_output=True, text=True, timeout=120)
    assert receipts.returncode == 0, receipts.stdout + receipts.stderr
    wait_for(lambda: mail_to(smtp, ADDRESS, "回执"), "the receipt")
    phone.close()

    desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
    page = desk.new_page()
    page.goto(f"{base}/admin")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("text=任务台账")
    row = page.locator("#task-12")
    assert row.locator(".light").inner_text().replace("\xa0", " ") == "● 已办结"
    assert "指导2个宗教团体完成换届" in row.inner_text()
    assert "本月开展常态化疫情防控检查3次" in page.locator("#task-10").inner_text()
    page.select_option('select[name="unit"]', UNIT)  # the filter, as the office would use it
    page.get_by_role("button", name="筛选").click()
    page.wait_for_url("**/admin?unit=*")
    assert page.locator(".scroll tbody tr").count() == 4
    page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="导出 XLSX").click()
    download.value.save_as(tmp_path / "ledger.xlsx")
    desk.close()

    rows = {str(r[0]): r for r in load_workbook(tmp_path / "ledger.xlsx").active.iter_rows(values_only=True)}
    assert rows["12"][8] == "已办结" and "指导2个宗教团体完成换届" in str(rows["12"][11])
    assert rows["10"][12] == datetime(2021, 6, 21)
    for name in ("form.png", "dashboard.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        save(tmp_path / name, name)
