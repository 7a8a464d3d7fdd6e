"""Reminders that read like a 督办 notice (issue 12, item 6): lead tasks first and 配合 tasks under their own heading,
本月尚未报送 in red only after the report day and only on lead tasks, the ask on overdue rows, 序时进度 beside the
reported percentage on lagging rows, `[mail] address_form`, a salutation naming the contact person, the day the mail
was computed for, the office's contact and phone in the footer, and cards that read on a 390 px phone."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from reminders.mail.context import Office, ReminderContext
from reminders.mail.render import Renderer
from reminders.tracking.status import Progress, TaskLine
from reminders.vocabulary import TaskState
from tests.conftest import EXAMPLES, Cli, write_config
from tests.smtpserver import RecordingServer

CHROMIUM = "/usr/bin/chromium"
OFFICE = Office("市民宗局督查室", "dcs@example.gov.cn")
STAFFED = replace(OFFICE, contact="王敏", phone="0371-65500000")
BEFORE, REPORT_BY, AFTER = date(2021, 6, 20), date(2021, 6, 25), date(2021, 6, 27)

CO = TaskLine("3", "二、", "加强中华民族共同体意识宣传教育", "宣传教育处", ("办公室",), None, None, "持续推进",
              TaskState.ONGOING, None, False, None, "co")
LATE = TaskLine("1", "一、", "持续抓好重要论述的学习贯彻落实", "办公室", (), "张副局长", date(2021, 6, 15), "6月15日前",
                TaskState.OVERDUE, -5, False, None, "lead")
SLOW = TaskLine("7", "三、", "举办铸牢中华民族共同体意识培训班", "办公室", (), None, date(2021, 9, 30), "9月底前",
                TaskState.LAGGING, 102, True, Progress(date(2021, 6, 18), "办公室", 20, False, "方案已拟定"), "lead",
                expected_percent=64, percent=20)
CO_LATE = replace(LATE, number="9", title="宗教活动场所安全检查", lead_unit="宗教一处", role="co")


def _context(*tasks: TaskLine, as_of: date = BEFORE, **changes: object) -> ReminderContext:
    context = ReminderContext("办公室", "刘洋", "2021-06", as_of, REPORT_BY, OFFICE, tasks)
    return replace(context, **changes)  # type: ignore[arg-type]


def _render(kind: str, context: ReminderContext, language: str = "zh_CN") -> tuple[str, str]:
    mail = Renderer(language).render(kind, context)  # type: ignore[arg-type]
    return mail.text, mail.html


@pytest.mark.parametrize(("language", "lead", "co"), [("zh_CN", "一、牵头任务（2 项）", "二、配合任务（1 项）"),
                                                      ("en", "Tasks you lead (2)", "Tasks you support (1)")])
def test_it_lists_lead_tasks_first_then_co_tasks_under_their_own_heading(language: str, lead: str, co: str) -> None:
    for body in _render("reminder", _context(CO, LATE, SLOW), language):
        assert body.index(lead) < body.index(LATE.title) < body.index(SLOW.title) < body.index(co)
        assert body.index(co) < body.index(CO.title)
        assert re.search(r"1\. [【\[]1[】\]]", body) and re.search(r"2\. [【\[]7[】\]]", body)  # numbered per group
        assert re.search(r"1\. [【\[]3[】\]]", body)


def test_it_leaves_out_the_heading_of_an_empty_group() -> None:
    for body in _render("reminder", _context(LATE)):
        assert "牵头任务（1 项）" in body and "配合任务" not in body
    for body in _render("reminder", _context(CO)):
        assert "一、配合任务（1 项）" in body and "牵头任务" not in body
        assert "请于" not in body  # a unit that only supports reports to the lead unit, not to the office


def test_it_shows_not_yet_reported_in_red_only_after_the_report_day_and_only_on_lead_tasks() -> None:
    text, html = _render("reminder", _context(LATE, CO_LATE, as_of=BEFORE))
    assert "本月尚未报送" not in text and "本月尚未报送" not in html
    assert "进展：待报送（2021年6月25日前）" in text and "待报送（2021年6月25日前）" in html
    assert text.count("待报送") == 1  # the co task shows neither: its lead unit reports

    text, html = _render("reminder", _context(LATE, CO_LATE, as_of=AFTER))
    assert "待报送" not in text and "待报送" not in html
    assert text.count("本月尚未报送") == 1 and html.count("本月尚未报送") == 1
    assert re.search(r'<b style="color:#c5221f;">本月尚未报送</b>', html)
    assert text.index("本月尚未报送") < text.index("配合任务")


def test_it_words_the_english_report_state_by_the_report_day() -> None:
    before, _ = _render("reminder", _context(LATE), "en")
    after, _ = _render("reminder", _context(LATE, as_of=AFTER), "en")
    assert "Progress: report due by 25 June 2021" in before and "not yet reported" not in before
    assert "Progress: not yet reported this month" in after


@pytest.mark.parametrize(("language", "ask"), [
    ("zh_CN", "请说明逾期原因、整改措施，或申请延期。"),
    ("en", "Please explain the delay and the corrective measures, or request an extension."),
])
def test_it_asks_an_overdue_lead_task_for_reasons_measures_or_an_extension(language: str, ask: str) -> None:
    for kind in ("reminder", "chase"):
        text, html = _render(kind, _context(LATE, SLOW, as_of=AFTER), language)
        for body in (text, html):  # once, in the overdue task's own block
            assert body.count(ask) == 1
            assert body.index(LATE.title) < body.index(ask) < body.index(SLOW.title)
    text, html = _render("reminder", _context(CO_LATE), language)
    assert ask not in text and ask not in html  # the lead unit answers for an overdue task, not a co unit


@pytest.mark.parametrize(("language", "pace"), [("zh_CN", "序时进度 64% · 实际 20%"),
                                                ("en", "expected 64%, reported 20%")])
def test_it_shows_a_lagging_task_its_expected_and_reported_percent(language: str, pace: str) -> None:
    text, html = _render("reminder", _context(SLOW, LATE), language)
    assert pace in text
    assert pace.replace(", r", " · r").replace("expected", "Expected") in html
    assert text.count("64%") == 1  # only the lagging task


@pytest.mark.parametrize("form", ["你处", "你单位", "贵单位"])
def test_it_addresses_the_unit_by_the_configured_form(form: str) -> None:
    for kind in ("reminder", "chase"):
        text, html = _render(kind, _context(LATE, SLOW, address_form=form))
        for body in (text, html):
            assert f"{form}牵头的" in body
            assert all(other not in body for other in {"你处", "你单位", "贵单位"} - {form})
    reminder, _ = _render("reminder", _context(LATE, SLOW, address_form=form))
    assert f"{form}牵头的任务，请于2021年6月25日前报送进展情况" in reminder


@pytest.mark.parametrize(("contact", "zh", "en"), [
    ("刘洋", "办公室　刘洋同志：", "Dear 刘洋 (办公室),"),
    ("刘洋主任", "办公室　刘洋主任：", "Dear 刘洋主任 (办公室),"),
    ("", "办公室：", "Dear 办公室,"),
])
def test_it_salutes_the_unit_and_its_contact_person(contact: str, zh: str, en: str) -> None:
    for kind in ("reminder", "chase"):
        text, html = _render(kind, _context(LATE, contact=contact))
        assert text.startswith(zh + "\n") and f">{zh}</p>" in html
        text, html = _render(kind, _context(LATE, contact=contact), "en")
        assert text.startswith(en + "\n") and f">{en}</p>" in html


def test_it_states_the_day_it_was_computed_for() -> None:
    for body in _render("reminder", _context(LATE)):
        assert "统计截至2021年6月20日，本提醒按当日情况生成" in body
    for body in _render("reminder", _context(LATE), "en"):
        assert "Figures as of 20 June 2021" in body
    for body in _render("chase", _context(LATE, as_of=AFTER)):
        assert "截至2021年6月27日" in body


@pytest.mark.parametrize(("language", "line"), [("zh_CN", "联系人：王敏，电话：0371-65500000"),
                                                ("en", "Contact: 王敏, tel. 0371-65500000")])
def test_the_footer_names_the_office_contact_and_phone_and_leaves_them_out_when_unset(language: str, line: str) -> None:
    for kind in ("reminder", "chase"):
        text, html = _render(kind, _context(LATE, office=STAFFED), language)
        assert f"\n{line}\n" in text and f"{line}<br>" in html
        text, html = _render(kind, _context(LATE), language)
        for body in (text, html):
            assert "王敏" not in body and "0371" not in body and "联系人" not in body and "Contact:" not in body


def test_the_text_part_runs_parallel_to_the_html() -> None:
    text, html = _render("reminder", _context(CO, LATE, SLOW, office=STAFFED, report_url="https://x.example/r/t"))
    for piece in ("一、牵头任务（2 项）", "二、配合任务（1 项）", "牵头单位：宣传教育处",
                  "时限：2021年9月30日（9月底前）", "序时进度 64% · 实际 20%", "请说明逾期原因",
                  "https://x.example/r/t", "统计截至2021年6月20日，本提醒按当日情况生成"):
        assert piece in text and piece in html
    assert "职责：" not in text  # the heading says the role; no label repeated per row


def _many(count: int) -> tuple[TaskLine, ...]:
    title = "全面推进宗教事务管理法治化建设，健全完善民族宗教工作责任制和协调机制，" * 4 + "Supercalifragilistic" * 6
    states = (LATE, SLOW, CO, CO_LATE)
    return tuple(replace(states[n % 4], number=f"{n // 4 + 1}.{n % 4 + 10}", title=f"{title}{n}")
                 for n in range(count))


@pytest.fixture
def phone() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("REMINDERS_REQUIRE_BROWSER"):
            pytest.fail(f"REMINDERS_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser.new_page(viewport={"width": 390, "height": 844})
        browser.close()


@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize("kind", ["reminder", "chase"])
def test_25_long_tasks_read_on_a_390px_phone_without_scrolling_sideways(
        phone: Page, tmp_path: Path, language: str, kind: str) -> None:
    context = _context(*_many(25), as_of=AFTER, office=STAFFED, report_url="https://x.example/r/" + "t" * 150)
    _, html = _render(kind, context, language)
    page = tmp_path / "mail.html"
    page.write_text(html, encoding="utf-8")
    phone.goto(page.as_uri())
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    # every task is a card of its own, the full width of the page, not a column of a squeezed table: a cell with a
    # border all round, its light's colour 4 px wide on the left, 10 px of white between one card and the next
    cards = phone.evaluate("""Array.from(document.querySelectorAll('td td td')).filter(
        c => getComputedStyle(c).borderLeftWidth === '4px').map(c => {
            const box = c.getBoundingClientRect(), style = getComputedStyle(c);
            return {width: box.width, top: box.top, bottom: box.bottom, left: style.borderLeftColor,
                    edges: [style.borderTopWidth, style.borderRightWidth, style.borderBottomWidth]};
        })""")
    assert len(cards) == 25 and min(card["width"] for card in cards) > 300
    tasks = _many(25)
    lead, co = [t for t in tasks if t.role != "co"], [t for t in tasks if t.role == "co"]
    groups = [tasks] if kind == "chase" else [lead, co]  # a reminder lists the lead tasks first
    colours = {state: "rgb({}, {}, {})".format(*bytes.fromhex(light.colour[1:]))
               for state, light in Renderer(language).lights.items()}
    assert [card["left"] for card in cards] == [colours[t.state] for group in groups for t in group]
    assert all(card["edges"] == ["1px", "1px", "1px"] for card in cards)
    first = 0
    for group in groups:
        within = cards[first:first + len(group)]
        # 10 px of white, and half of each 1 px border: a collapsed border straddles its cell's edge
        assert [round(b["top"] - a["bottom"]) for a, b in pairwise(within)] == [11] * (len(group) - 1)
        first += len(group)


def test_a_sent_reminder_puts_lead_tasks_first_and_uses_the_configured_form(
        tmp_path: Path, smtp: RecordingServer) -> None:
    extra = '[mail]\naddress_form = "贵单位"\n'
    config = write_config(tmp_path / "reminders.toml", f"sqlite:///{tmp_path}/r.sqlite3", transport="smtp",
                          smtp_port=smtp.port, extra=extra)
    run = Cli(config)
    run("init")
    run("import-plan", str(EXAMPLES / "plan-2021.txt"))
    run("import-leaders", str(EXAMPLES / "leaders.csv"))
    run("import-units", str(EXAMPLES / "units.csv"))
    run("import-assignments", str(EXAMPLES / "assignments.csv"))
    run("send", "--cycle", "2021-06", "--kind", "reminders", "--as-of", "2021-06-20")
    found = [message_from_bytes(m.data, policy=policy.default) for m in smtp.messages
             if "minzu@example.org" in m.recipients]
    mail = found[0]
    assert isinstance(mail, EmailMessage)
    part = mail.get_body(("plain",))
    assert part is not None
    text = str(part.get_content()).replace("\r\n", "\n")
    # 民族工作处 (contact 马丽) supports tasks 1 and 2 and leads 3 to 9: its lead tasks come first all the same
    assert text.startswith("民族工作处　马丽同志：\n")
    assert "贵单位牵头的任务，请于2021年6月25日前报送进展情况" in text
    lead, co = text.index("一、牵头任务（7 项）"), text.index("二、配合任务（2 项）")
    assert lead < text.index("【3】") < co < text.index("【1】")
