"""Data stays true through the form and the office's decisions: a reopened form shows everything the unit sent, a
correction keeps a pending extension unless the unit withdraws it, last month's link counts for the month it is used
in, only the latest extension request can be decided, a receipt that cannot be built never hides the report, and
every time on a page is in the office's time zone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy import update

from reminders.store.db import session_scope
from reminders.store.models import Unit
from reminders.tracking import office
from reminders.tracking.reporting import Answer, form_cycle, submit
from tests.conftest import Cli
from tests.websupport import Site, answer, open_site

UNIT = "宗教二处"  # leads 10 and 12, co-operates on 1 and 2


@pytest.fixture
def site(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    with open_site(loaded, monkeypatch) as site:
        yield site


class _Fields(HTMLParser):
    """What a browser would send back from the page's form untouched: text inputs, textareas, checked choices."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "textarea":
            self._textarea = a["name"]
            self.values[a["name"]] = ""
        elif tag == "input" and "name" in a:
            if a.get("type") in ("radio", "checkbox") and "checked" not in a:
                return
            self.values[a["name"]] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def fields_of(page: str) -> dict[str, str]:
    parser = _Fields()
    parser.feed(page)
    return parser.values


EXTENSION = answer("12", "换届推迟", percent="60", status="extension", problems="会场不足", next_steps="协调场地",
                   new_deadline="2021-09-30", reason="疫情影响换届会议")
DIFFICULTY = answer("10", "常态化防控", percent="40", status="difficulty", problems="人手紧张", next_steps="增派人员")


def test_it_fills_every_field_the_unit_sent_when_the_form_is_reopened(site: Site) -> None:
    assert site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION).status_code == 200
    values = fields_of(site.client.get(site.link(UNIT)).text)
    for name, value in (DIFFICULTY | EXTENSION).items():
        assert values[name] == value, name


def test_it_keeps_a_pending_extension_when_the_unit_corrects_a_typo(site: Site) -> None:
    site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION)
    values = fields_of(site.client.get(site.link(UNIT)).text)
    values["12.note"] = "换届推迟至三季度"
    assert site.client.post(site.link(UNIT), data=values).status_code == 200
    first, second = site.reports("12")
    with session_scope(site.engine) as session:
        [pending] = office.pending_extensions(session)
    assert (pending.report_id, pending.requested_deadline, pending.reason) == (
        second.id, date(2021, 9, 30), "疫情影响换届会议")
    assert second.note == "换届推迟至三季度" and first.id != second.id


def test_it_refuses_to_drop_a_pending_extension_unless_the_unit_withdraws_it(site: Site) -> None:
    site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION)
    [request] = site.reports("12")
    changed = DIFFICULTY | answer("12", "换届推迟", percent="60")
    refused = site.client.post(site.link(UNIT), data=changed)
    assert refused.status_code == 400
    assert "延期申请（延至2021年9月30日）尚待督查室审批" in refused.text
    assert [r.id for r in site.reports("12")] == [request.id]
    withdrawn = site.client.post(site.link(UNIT), data=changed | {"12.withdraw": "1"})
    assert withdrawn.status_code == 200 and "已撤回延期申请" in withdrawn.text
    with session_scope(site.engine) as session:
        assert office.pending_extensions(session) == []
    assert [r.status for r in site.reports("12")] == ["extension", "progress"]


def test_it_refuses_a_withdrawal_that_still_asks_for_an_extension(site: Site) -> None:
    site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION)
    refused = site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION | {"12.withdraw": "1"})
    assert refused.status_code == 400 and "撤回延期申请时，状态不能再选“申请延期”" in refused.text


def test_it_counts_a_report_through_last_months_link_for_the_month_it_is_sent_in(site: Site, loaded: Cli) -> None:
    site.clock.now = datetime(2021, 7, 2, 2, 0, tzinfo=UTC)
    link = site.link(UNIT, cycle="2021-06")
    page = site.client.get(link).text
    assert "这是2021年6月的报送链接，现已进入2021年7月：本次报送计入2021年7月" in page
    confirmed = site.client.post(link, data=DIFFICULTY | answer("12", "已换届1个"))
    assert confirmed.status_code == 200 and "2021年7月工作进展报送" in confirmed.text
    assert "这是2021年6月的报送链接；本次报送已计入2021年7月" in confirmed.text
    assert {r.cycle for r in site.reports("12")} == {"2021-07"}
    with session_scope(site.engine) as session:
        waiting = office.not_reported(session, site.config, "2021-07", date(2021, 7, 2))
    assert UNIT not in [unit for unit, _ in waiting]
    assert loaded("status", "--as-of", "2021-07-02", "--format", "json").output.count('"reported": true') == 2


def test_it_refuses_to_decide_a_superseded_extension_request(site: Site, loaded: Cli) -> None:
    token = site.login()
    site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION)
    site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION | answer("12", "换届推迟", status="extension",
                                                                            new_deadline="2021-10-31", reason="改期"))
    old, new = site.reports("12")
    stale = site.client.post(f"/admin/extensions/{old.id}", data={"csrf": token, "decision": "approve"})
    assert stale.status_code == 400
    assert f"延期申请 {old.id} 已被宗教二处2021年6月21日的报送（编号 {new.id}）取代" in stale.text
    assert "2021年5月31日" in site.client.get("/admin/tasks/12").text  # the deadline did not move
    listing = loaded("admin", "extensions").output
    assert f"{new.id} " in listing and "2021-10-31" in listing and "2021-09-30" not in listing
    assert "被新报送取代的申请不能再审批" in listing
    approved = site.client.post(f"/admin/extensions/{new.id}", data={"csrf": token, "decision": "approve"})
    assert approved.status_code == 200 and "已同意延期" in approved.text


def test_it_keeps_the_report_when_its_receipt_cannot_be_built(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    with session_scope(site.engine) as session:
        session.execute(update(Unit).where(Unit.name == UNIT).values(emails="boss@exаmple.org"))  # Cyrillic а
    with caplog.at_level(logging.ERROR, logger="reminders.web.unit"):
        response = site.client.post(site.link(UNIT), data=DIFFICULTY | answer("12", "已换届1个"))
    assert response.status_code == 200 and "报送成功" in response.text
    assert "回执未能生成" in response.text and "回执已发送" not in response.text
    assert [r.note for r in site.reports("12")] == ["已换届1个"]
    [receipt] = site.outbox("receipt")
    assert receipt.state == "failed" and "boss@exаmple.org" in (receipt.last_error or "")
    [record] = [r for r in caplog.records if "receipt" in r.getMessage()]
    assert f"unit {site.unit_id(UNIT)} ({UNIT})" in record.getMessage() and "2021-06" in record.getMessage()


def test_it_shows_times_on_pages_in_the_offices_time_zone(site: Site) -> None:
    site.clock.now = datetime(2021, 6, 21, 17, 5, tzinfo=UTC)  # 01:05 on the 22nd in Shanghai
    site.client.post(site.link(UNIT), data=DIFFICULTY | EXTENSION)
    [request] = site.reports("12")
    confirmed = site.client.get(site.link(UNIT)).text
    assert "上次提交：2021-06-22 01:05（Asia/Shanghai）" in confirmed
    token = site.login()
    assert "2021-06-22 01:05（Asia/Shanghai）申请" in site.client.get("/admin/extensions").text
    site.clock.now = datetime(2021, 6, 22, 16, 30, tzinfo=UTC)  # 00:30 on the 23rd
    token = site.login()  # a session lasts 8 hours
    site.client.post(f"/admin/extensions/{request.id}", data={"csrf": token, "decision": "refuse"})
    history = site.client.get("/admin/tasks/12").text
    assert "2021-06-23 00:30（Asia/Shanghai）" in history and "记录于 2021-06-22 01:05（Asia/Shanghai）" in history


def test_it_keeps_asking_for_last_months_pending_extension_and_not_for_a_decided_one(site: Site) -> None:
    with session_scope(site.engine) as session:
        submit(session, site.config, site.unit_id(UNIT), "2021-05",
               [Answer("10", "防控到位", None, "progress"),
                Answer("12", "换届推迟", 50, "extension", new_deadline=date(2021, 9, 30), reason="疫情影响")],
               date(2021, 5, 20))
    values = fields_of(site.client.get(site.link(UNIT)).text)
    assert (values["12.note"], values["12.status"], values["12.new_deadline"], values["12.reason"]) == (
        "", "extension", "2021-09-30", "疫情影响")
    [request] = site.reports("12")
    with session_scope(site.engine) as session:
        office.decide_extension(session, request.id, False, "ducha", "", datetime(2021, 6, 21, 1, tzinfo=UTC))
    values = fields_of(site.client.get(site.link(UNIT)).text)
    assert (values["12.status"], values["12.new_deadline"], values["12.reason"]) == ("progress", "", "")
    assert "12.withdraw" not in site.client.get(site.link(UNIT)).text


@pytest.mark.parametrize(("link", "today", "recorded"), [
    ("2021-06", date(2021, 6, 30), "2021-06"),
    ("2021-06", date(2021, 7, 1), "2021-07"),
    ("2021-12", date(2022, 1, 3), "2022-01"),
    ("2021-07", date(2021, 6, 30), "2021-07"),  # a link sent ahead of its month keeps its month
])
def test_it_records_a_submission_under_the_later_of_the_links_month_and_the_current_one(
        link: str, today: date, recorded: str) -> None:
    assert form_cycle(link, today) == recorded
