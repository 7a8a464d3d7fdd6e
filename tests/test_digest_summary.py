"""The digest a leader reads in ten seconds, end to end: the CLI sends a cycle to a real SMTP server, and the
dashboard's home shows the same summary."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from reminders.config import load
from reminders.mail import digest
from reminders.mail.compose import build_drafts
from reminders.mail.render import Renderer
from reminders.store.db import make_engine
from reminders.tracking.bulletin import Bulletin
from reminders.tracking.steps import Step
from reminders.vocabulary import RUNG_BULLETIN
from tests.conftest import Cli
from tests.smtpserver import RecordingServer
from tests.test_render import DIGEST
from tests.websupport import Site, open_site

# Reports of 2021-05 and 2021-06 on the seed plan (examples/): lead units and their tasks are
# 机关党委 1 16 17 18 · 宗教一处 2 11 · 民族工作处 3–9 · 宗教二处 10 12 · 信息中心 13 · 政策法规处 14 15 · 办公室 19.
# The report day is 25 June; the digests fire on 26 June, a Saturday, moved to Monday 28 June.
REPORTS = [
    ("1", "机关党委", "2021-05-20"), ("16", "机关党委", "2021-05-20"), ("17", "机关党委", "2021-05-20"),
    ("18", "机关党委", "2021-05-20"), ("13", "信息中心", "2021-05-28"),  # 信息中心 late in May
    ("13", "信息中心", "2021-06-20"), ("1", "机关党委", "2021-06-21"), ("15", "政策法规处", "2021-06-22"),
]
WANG = "wang.jianguo@example.org"  # 局长, scope 全部
CHEN = "chen.jing@example.org"  # 驻局纪检监察组组长, 责任领导 of 16, 17, 18


def report(run: Cli) -> None:
    for number, unit, day in REPORTS:
        run("progress", number, "--unit", unit, "--percent", "50", "--note", f"{unit}推进中", "--date", day)
    run("progress", "19", "--unit", "办公室", "--done", "--note", "已办结", "--date", "2021-06-10")


def digests(smtp: RecordingServer) -> dict[str, EmailMessage]:
    found = {}
    for m in smtp.messages:
        mail = message_from_bytes(m.data, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        if "督办汇总" in str(mail["Subject"]) or "Supervision digest" in str(mail["Subject"]):
            found[m.recipients[0]] = mail
    return found


def bodies(mail: EmailMessage) -> tuple[str, str]:
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


@pytest.fixture
def sent(loaded: Cli, smtp: RecordingServer) -> dict[str, EmailMessage]:
    report(loaded)
    loaded("send", "--cycle", "2021-06", "--kind", "digests")
    return digests(smtp)


def test_it_opens_with_one_sentence_of_the_plans_figures(sent: dict[str, EmailMessage]) -> None:
    text, html = bodies(sent[WANG])
    # 19: done 19; overdue 12, 14, 17; due soon 2, 8; on time by 25 June only 办公室 (19) and 信息中心 (13) of 7 units
    sentence = "19项任务：办结1项、逾期3项、临期2项、正常推进9项、长期推进4项；7个单位中2个按时报送。"
    assert text.startswith("王建国局长：\n\n" + sentence)
    assert sentence in html
    assert "数据统计截至2021年6月28日" in text  # the day the figures were computed for
    own_text, _ = bodies(sent[CHEN])
    assert own_text.startswith("陈静组长：\n\n3项任务：逾期1项、正常推进2项；1个单位中0个按时报送。")


def test_it_draws_the_states_as_one_stacked_bar(sent: dict[str, EmailMessage]) -> None:
    _, html = bodies(sent[WANG])
    cells = re.findall(r'<td width="(\d+)%" height="16" bgcolor="(#[0-9a-f]{6})" title="([^"]+)"', html)
    assert [title for _w, _c, title in cells] == [
        "已逾期 3项", "临期 2项", "正常推进 9项", "长期推进 4项", "已办结 1项"]
    assert [int(width) for width, _c, _t in cells] == [16, 11, 47, 21, 5]  # of 19, adding up to 100
    assert cells[0][1] == "#c5221f" and cells[-1][1] == "#5f6368"  # vocabulary.LIGHT_COLOURS


def test_it_shows_six_months_of_trend_as_table_bars(sent: dict[str, EmailMessage]) -> None:
    text, html = bodies(sent[WANG])
    assert "近2个月趋势" in html and "<img" not in html
    rows = re.findall(r'>(\d+)月</td>.*?>(\d+)%</td>', html, re.S)
    # 完成率 then 按时报送率 from May, the month of the first report (January to April are no rows of zeros):
    # 机关党委 alone all on time in May (1/7), two units in June (2/7)
    assert rows == [("5", "0"), ("6", "5"), ("5", "14"), ("6", "29")]
    assert re.search(r"6月\s+完成率 █░+ +5%\s+按时报送率 ███░+ +29%", text)


def test_it_ranks_units_with_the_change_since_last_month(sent: dict[str, EmailMessage]) -> None:
    text, _ = bodies(sent[WANG])
    on_time = text[text.index("按时报送（名次"):text.index("逾期任务（名次")]
    assert re.search(r"1  信息中心 +1/1（100%） +—", on_time)  # not ranked in May (0 of 1 on time), 1st now
    assert "（0%）" not in on_time and "宗教一处" not in on_time  # no rows of zeros
    assert re.search(r"4  机关党委 +1/4（25%） +↓3", on_time)  # May's only unit on time on all four
    overdue = text[text.index("逾期任务（名次"):text.index("逾期任务（3 项")]
    assert re.search(r"1  机关党委 +1 项 +—", overdue)  # overdue on 17 in May too
    assert "0 项" not in overdue and "宗教一处" not in overdue  # no rows of zeros


def test_it_lists_overdue_tasks_with_their_leader_and_latest_word(sent: dict[str, EmailMessage]) -> None:
    text, html = bodies(sent[WANG])
    assert ("【17】加强机关党的建设\n      牵头单位：机关党委；责任领导：陈静\n"
            "      时限：2021年3月31日（2021年3月）；逾期 89 天\n"
            "      最新进展：2021年5月20日 完成50% 机关党委推进中") in text
    assert "【12】支持宗教团体加强自身建设" in text and "未报送进展或逾期原因" in text
    assert "责任领导：张华" in html


def test_it_tells_units_that_reported_nothing_from_those_that_reported_some(sent: dict[str, EmailMessage]) -> None:
    text, _ = bodies(sent[WANG])
    nothing = text[text.index("全部任务均未报送："):text.index("部分任务未报送：")]
    some = text[text.index("部分任务未报送："):]
    assert "宗教一处：任务 2、11" in nothing and "民族工作处：任务 3、4、5、6、7、8、9" in nothing
    assert "机关党委" not in nothing and "信息中心" not in nothing
    assert "机关党委：缺任务 16、17、18" in some and "政策法规处：缺任务 14" in some


def test_only_leaders_who_see_every_task_get_the_ledger(sent: dict[str, EmailMessage]) -> None:
    attached = {address: list(mail.iter_attachments()) for address, mail in sent.items()}
    assert [len(files) for address, files in attached.items() if address != WANG] == [0, 0, 0]
    (ledger,) = attached[WANG]
    assert ledger.get_filename() == "工作台账-2021-06.xlsx"
    sheet = load_workbook(io.BytesIO(ledger.get_content())).active
    assert sheet is not None
    cells = [str(cell.value) for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert any("加强机关党的建设" in cell for cell in cells)
    assert any("提高机关服务保障能力建设" in cell for cell in cells)
    assert "附件：工作台账-2021-06.xlsx" in bodies(sent[WANG])[0]


def test_no_ledger_is_attached_when_attach_ledger_is_off(loaded: Cli, smtp: RecordingServer) -> None:
    with loaded.config.open("a", encoding="utf-8") as config:
        config.write("\n[digest]\nattach_ledger = false\n")
    loaded("send", "--cycle", "2021-06", "--kind", "digests")
    sent = digests(smtp)
    assert len(sent) == 4 and all(not list(mail.iter_attachments()) for mail in sent.values())
    assert sent[WANG].get_content_type() == "multipart/alternative"
    assert "附件" not in bodies(sent[WANG])[0]


RELAY_LIMIT = 25_000  # bytes: the 全部 digest of the seed plan is about 18 kB, and 30 kB with its ledger attached


def _to_a_relay_with_a_size_limit(loaded: Cli, relay: RecordingServer, settings: str) -> dict[str, EmailMessage]:
    text = loaded.config.read_text(encoding="utf-8")
    loaded.config.write_text(re.sub(r"(?m)^port = \d+$", f"port = {relay.port}", text) + settings, encoding="utf-8")
    result = loaded("send", "--cycle", "2021-06", "--kind", "digests", ok=False)
    assert "Traceback" not in result.output
    return digests(relay)


def test_a_relay_refuses_a_digest_whose_ledger_makes_it_too_large(loaded: Cli) -> None:
    """The fault `[digest] ledger_max_mb` prevents: a relay refuses an oversized message whole (552), so the leader
    who sees every task gets no digest at all, while the others get theirs."""
    with RecordingServer(size_limit=RELAY_LIMIT) as relay:
        sent = _to_a_relay_with_a_size_limit(loaded, relay, "\n[digest]\nledger_max_mb = 1\n")
        assert WANG not in sent and len(sent) == 3
        (record,) = [r for r in json.loads(loaded("outbox", "--format", "json").output)
                     if r["kind"] == "digest" and WANG in r["addresses"]]
        assert record["state"] == "failed" and "552" in record["last_error"]


def test_a_ledger_over_the_limit_is_left_out_and_the_digest_says_so(
        loaded: Cli, caplog: pytest.LogCaptureFixture) -> None:
    with RecordingServer(size_limit=RELAY_LIMIT) as relay:
        sent = _to_a_relay_with_a_size_limit(loaded, relay, "\n[digest]\nledger_max_mb = 0.005\n")
    assert len(sent) == 4 and all(not list(mail.iter_attachments()) for mail in sent.values())
    text, html = bodies(sent[WANG])
    said = ("工作台账（工作台账-2021-06.xlsx，{} KB）超过邮件附件上限 0.005 MB，本邮件未附送；"
            "可由督查室在督办工作台“导出 XLSX”后提供。")
    size = re.search(r"工作台账-2021-06\.xlsx，([\d.]+) KB", text)
    assert size and 5.12 < float(size[1]) < 100  # over the 5.12 kB limit: the seed plan's workbook is about 9 kB
    assert said.format(size[1]) in text and said.format(size[1]) in html
    assert "附件：" not in text
    assert all("工作台账" not in bodies(mail)[0] for address, mail in sent.items() if address != WANG)
    assert any("ledger_max_mb" in record.getMessage() for record in caplog.records)


def test_it_says_how_many_have_reported_so_far_before_the_report_day(loaded: Cli, smtp: RecordingServer) -> None:
    report(loaded)
    loaded("send", "--cycle", "2021-06", "--kind", "digests", "--as-of", "2021-06-20")
    text, _ = bodies(digests(smtp)[WANG])
    # on 20 June: 19 done on the 10th (办公室), 13 reported that day (信息中心); 14 and 8 not yet due
    assert "；截至6月20日，7个单位中2个已报送。" in text.split("\n")[2]
    assert "本月尚未报送单位" in text


def test_it_reads_in_english(loaded: Cli, smtp: RecordingServer) -> None:
    with loaded.config.open("a", encoding="utf-8") as config:
        config.write('\n[mail]\nlanguage = "en"\n')
    report(loaded)
    loaded("send", "--cycle", "2021-06", "--kind", "digests")
    text, html = bodies(digests(smtp)[CHEN])
    assert text.startswith("Dear 陈静 (组长),\n\n3 tasks: 1 overdue, 2 on track; 0 of 1 unit reported on time.")
    assert "Reported nothing:\n    机关党委: tasks 16, 17, 18" in text
    assert "The last 2 months" in html and "Jun</td>" in html
    for body in (text, html):
        assert "按时报送" not in body and "逾期任务" not in body


def test_it_renders_the_bulletin_when_it_names_anyone() -> None:
    notice = Bulletin((("宗教二处", "连续3个月被督办 (supervised 3 months running)"),), ("信息中心", "办公室"), ())
    mail = Renderer().render("digest", replace(DIGEST, bulletin=notice))
    assert "通报\n  批评：\n    宗教二处：连续3个月被督办" in mail.text
    assert "表扬：信息中心、办公室" in mail.text
    assert ">批评</p>" in mail.html and "信息中心、办公室" in mail.html
    assert "通报" not in Renderer().render("digest", DIGEST).text  # no 通报 section while it names no one
    english = Renderer("en").render("digest", replace(DIGEST, bulletin=notice)).text
    assert "Bulletin\n  Criticised:\n    宗教二处" in english and "Praised: 信息中心, 办公室" in english


@pytest.fixture
def site(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    report(loaded)
    with open_site(loaded, monkeypatch) as site:
        yield site


def test_the_dashboard_home_shows_the_same_summary(site: Site) -> None:
    site.login()
    page = site.client.get("/admin").text
    # 21 June, before the report day (14 due soon; 2 and 8 not yet): 办公室 (19, done on the 10th) and 信息中心
    # (13, on the 20th) have reported
    assert ('<p class="sentence">19项任务：办结1项、逾期2项、临期1项、正常推进11项、长期推进4项；'
            '截至6月21日，7个单位中2个已报送。</p>') in page
    assert re.findall(r'<span class="fill-(\w+)" style="width:(\d+)%"', page)[:5] == [
        ("overdue", "11"), ("due_soon", "5"), ("on_track", "58"), ("ongoing", "21"), ("done", "5")]
    assert "<td>6月</td>" in page and "29%（2/7）" in page  # 按时报送率 so far
    assert "<script" not in page


def test_its_charts_are_tables_that_outlook_and_a_phone_can_draw(sent: dict[str, EmailMessage]) -> None:
    _, html = bodies(sent[WANG])
    assert "class=" not in html and "<style" not in html and "<img" not in html and "<div" not in html
    for tag in re.findall(r"<(?:td|th|table|p)\b[^>]*>", html):
        assert 'style="' in tag, tag
    filled = re.findall(r"<td\b[^>]*bgcolor[^>]*>", html)
    assert len(filled) >= 5 + 4  # the bar's segments, and the trend's rows (May and June, twice)
    for tag in filled:  # Outlook reads the attributes, other clients the style
        width = re.search(r'width="(\d+)%"', tag)
        assert width and f"width:{width[1]}%" in tag and "background-color:" in tag, tag
    assert 'width="100%"' in html and "max-width:680px" in html  # fills a 390 px phone, no fixed page width


def test_every_digest_carries_the_bulletins_steps(loaded: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    step = Step("bulletin:2021-06:unit:4", 4, None, RUNG_BULLETIN, "2021-06", date(2021, 6, 28), "连续3个月被督办")
    calls: list[str] = []

    def bulletin(*args: object) -> Bulletin:
        calls.append(str(args[2]))
        return Bulletin((("宗教二处", "连续3个月被督办"),), (), (step,))

    monkeypatch.setattr(digest, "bulletin", bulletin)
    config = load(str(loaded.config))
    engine = make_engine(config.database_url)
    with Session(engine) as session:
        drafts = build_drafts(session, config, "2021-06", ("digest",))
    engine.dispose()
    assert calls == ["2021-06"]  # once for the cycle, not once per leader
    assert len(drafts) == 4 and all(d.steps == (step,) and d.context.bulletin is not None for d in drafts)
    ledgers = [d.attachments[0].data for d in drafts if d.attachments]
    assert len(ledgers) == 1  # 王建国 alone sees every task
