from __future__ import annotations

import email
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from reminders.mail.context import Office, ReceiptContext, ReceiptLine, ReminderContext
from reminders.mail.digest import DigestContext, UnitNotReported
from reminders.mail.mime import RenderedMail, build_message, make_message_id, seven_bit
from reminders.mail.render import Renderer
from reminders.tracking.status import Progress, TaskLine
from reminders.tracking.summary import Summary, segments
from reminders.vocabulary import Kind, TaskState

OFFICE = Office("市民宗局督查室", "dcs@example.gov.cn")
CST = timezone(timedelta(hours=8))
NOW = datetime(2021, 6, 20, 8, 30, tzinfo=CST)

LATE = TaskLine(
    number="1",
    section="一、",
    title="持续抓好习近平总书记关于民族宗教工作重要论述的学习贯彻落实",
    lead_unit="市民宗局办公室",
    co_units=("政策法规处",),
    leader="张副局长",
    deadline=date(2021, 6, 15),
    deadline_text="6月15日前",
    state="overdue",
    days_left=-5,
    reported=False,
    latest=None,
    role="lead",
)
ONGOING = TaskLine(
    number="3",
    section="二、",
    title="加强中华民族共同体意识宣传教育",
    lead_unit="宣传教育处",
    co_units=("市民宗局办公室",),
    leader=None,
    deadline=None,
    deadline_text="持续推进",
    state="ongoing",
    days_left=None,
    reported=True,
    latest=Progress(date(2021, 6, 10), "宣传教育处", 60, False, "已组织宣讲3场"),
    role="co",
)
SOON = TaskLine(
    number="7",
    section="三、",
    title="举办铸牢中华民族共同体意识培训班",
    lead_unit="市民宗局办公室",
    co_units=(),
    leader=None,
    deadline=date(2021, 6, 23),
    deadline_text="6月23日前",
    state="due_soon",
    days_left=3,
    reported=False,
    latest=Progress(date(2021, 5, 20), "市民宗局办公室", 30, False, "方案已拟定"),
    role="lead",
)
HOSTILE = replace(SOON, number="8", title="<script>alert(1)</script> {{ 7*7 }}")

REMINDER = ReminderContext(
    unit="市民宗局办公室",
    contact="李四",
    cycle="2021-06",
    as_of=date(2021, 6, 20),
    report_by=date(2021, 6, 25),
    office=OFFICE,
    tasks=(LATE, ONGOING, SOON),
)
VERY_LATE = replace(LATE, number="9", title="宗教活动场所安全检查", lead_unit="宗教一处", days_left=-20)
COUNTS = {TaskState(state): n for state, n in
          {"overdue": 2, "due_soon": 1, "on_track": 10, "ongoing": 3, "done": 6, "unassigned": 0}.items()}
DIGEST = DigestContext(
    leader="王五",
    leader_title="局长",
    scope="all",
    cycle="2021-06",
    as_of=date(2021, 6, 20),
    report_by=date(2021, 6, 25),
    office=OFFICE,
    total=22,
    counts={"overdue": 2, "due_soon": 1, "on_track": 10, "ongoing": 3, "done": 6, "unassigned": 0},
    overdue=(LATE, VERY_LATE),
    due_soon=(SOON,),
    not_reported=(UnitNotReported("市民宗局办公室", ("1", "7")), UnitNotReported("宗教一处", ("9",))),
    tasks=(LATE, ONGOING, SOON, VERY_LATE),
    summary=Summary(22, COUNTS, segments(COUNTS), 5, 3, date(2021, 6, 20), date(2021, 6, 25)),
)

GOLDEN_REMINDER_TEXT = """\
市民宗局办公室　李四同志：

根据年度重点工作任务督查督办安排，现将你单位牵头或配合的 3 项重点工作任务情况提醒如下。
统计截至2021年6月20日，本提醒按当日情况生成。

你单位牵头的任务，请于2021年6月25日前报送进展情况（含进展情况、存在问题、下一步措施）。

一、牵头任务（2 项）
----------------------------------------

1. 【1】持续抓好习近平总书记关于民族宗教工作重要论述的学习贯彻落实
   时限：2021年6月15日（6月15日前）
   状态：已逾期，逾期 5 天
   进展：待报送（2021年6月25日前）
   请说明逾期原因、整改措施，或申请延期。

2. 【7】举办铸牢中华民族共同体意识培训班
   时限：2021年6月23日（6月23日前）
   状态：临期，剩余 3 天
   进展：待报送（2021年6月25日前）；上次：2021年5月20日 完成30% 方案已拟定

二、配合任务（1 项）
----------------------------------------
配合任务请先将进展情况报送牵头单位，由牵头单位汇总后统一报送。

1. 【3】加强中华民族共同体意识宣传教育
   牵头单位：宣传教育处
   时限：长期坚持（持续推进）
   状态：长期推进
   进展：2021年6月10日 完成60% 已组织宣讲3场

----------------------------------------
如有疑问，请直接回复本邮件，或联系市民宗局督查室（dcs@example.gov.cn）。
本邮件由督查督办系统自动发送。

市民宗局督查室
2021年6月20日
"""


def _parse(mail: RenderedMail, **overrides: object) -> EmailMessage:
    args: dict[str, object] = {
        "sender": "dcs@example.gov.cn",
        "sender_name": "市民宗局督查室",
        "to": [("市民宗局办公室", "bgs@example.gov.cn")],
        "reply_to": "dcs@example.gov.cn",
        "message_id": make_message_id("reminder/2021-06/unit:3", "example.gov.cn"),
        "date": NOW,
    }
    args.update(overrides)
    raw = build_message(mail, **args)  # type: ignore[arg-type]
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_it_renders_the_golden_reminder_text() -> None:
    assert Renderer().render("reminder", REMINDER).text == GOLDEN_REMINDER_TEXT


def test_it_builds_a_chinese_subject_that_decodes() -> None:
    msg = _parse(Renderer().render("reminder", REMINDER))
    assert msg["Subject"] == "【工作提醒】2021年6月 重点工作任务进展报送（市民宗局办公室）"
    assert msg["To"].addresses[0].display_name == "市民宗局办公室"
    assert msg["From"].addresses[0].display_name == "市民宗局督查室"
    assert msg["Reply-To"] == "dcs@example.gov.cn"
    assert msg["Date"].datetime == NOW
    assert msg["MIME-Version"] == "1.0"


def test_it_sends_text_then_html_both_utf8() -> None:
    msg = _parse(Renderer().render("reminder", REMINDER))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["8bit", "8bit"]  # a third smaller than base64
    assert "请于2021年6月25日前报送进展情况" in parts[0].get_content()


def test_it_keeps_wire_lines_short_and_headers_encoded() -> None:
    long_title = replace(LATE, title="很长的任务标题" * 200)
    raw = build_message(
        Renderer().render("reminder", replace(REMINDER, tasks=(long_title,))),
        sender="dcs@example.gov.cn",
        sender_name="市民宗局督查室",
        to=[("市民宗局办公室", "bgs@example.gov.cn")],
        reply_to=None,
        message_id="<x@example.gov.cn>",
        date=NOW,
    )
    raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # every header is encoded; the text parts may travel as 8bit
    seven_bit(raw).decode("ascii")  # and as base64 for a relay without 8BITMIME
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"=?utf-8?" in raw


def test_it_shows_report_date_and_every_task_in_both_bodies() -> None:
    mail = Renderer().render("reminder", REMINDER)
    for body in (mail.text, mail.html):
        assert "2021年6月25日前" in body
        for task in REMINDER.tasks:
            assert task.number in body
            assert task.title in body
        assert "待报送（2021年6月25日前）" in body  # before the report day, neutral
        assert "长期坚持" in body
        assert "配合" in body and "牵头" in body
        assert "dcs@example.gov.cn" in body


def test_it_shows_the_overdue_light_and_days() -> None:
    mail = Renderer().render("reminder", REMINDER)
    assert "已逾期，逾期 5 天" in mail.text
    assert re.search(r'<b style="color:#c5221f;[^"]*">●&nbsp;已逾期</b>', mail.html)
    assert "逾期 5 天" in mail.html
    assert "●&nbsp;临期" in mail.html and "剩余 3 天" in mail.html


def test_it_escapes_html_but_not_text() -> None:
    mail = Renderer().render("reminder", replace(REMINDER, tasks=(HOSTILE,)))
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in mail.html
    assert "<script>alert(1)</script> {{ 7*7 }}" in mail.text
    assert "49" not in mail.text and "49" not in mail.html


def test_it_keeps_every_style_inline() -> None:
    for kind, ctx in (("reminder", REMINDER), ("digest", DIGEST)):
        html = Renderer().render(kind, ctx).html  # type: ignore[arg-type]
        assert "<style" not in html and "<link" not in html and "<img" not in html and "<script" not in html
        assert "class=" not in html
        assert "max-width:680px" in html
        for tag in re.findall(r"<(?:td|th|table|p)\b[^>]*>", html):
            assert 'style="' in tag or tag == '<td height="10">', tag  # the empty row between two cards


def test_it_renders_the_digest() -> None:
    mail = Renderer().render("digest", DIGEST)
    assert mail.subject == "【督办汇总】2021年6月 重点工作任务进展情况"
    for body in (mail.text, mail.html):
        assert "22项任务：办结6项、逾期2项、临期1项、正常推进10项、长期推进3项；截至6月20日，5个单位中3个已报送。" \
            in body
        assert "统计范围：全部重点工作任务" in body
        assert body.index("宗教活动场所安全检查") < body.index(LATE.title)  # most overdue first
        assert "逾期 20 天" in body and "逾期 5 天" in body
        assert SOON.title in body and "剩余 3 天" in body
        assert "宗教一处" in body
    assert "市民宗局办公室：任务 1、7" in mail.text
    assert "正常推进 10　长期推进 3" in mail.text  # the bar's legend, in text
    own = Renderer().render("digest", replace(DIGEST, scope="own"))
    assert "您分管的重点工作任务" in own.text


def test_it_renders_english() -> None:
    renderer = Renderer("en")
    mail = renderer.render("reminder", REMINDER)
    assert mail.subject == "[Reminder] June 2021 Work plan progress report (市民宗局办公室)"
    assert "Please report progress by 25 June 2021" in mail.text
    assert "Overdue, 5 days overdue" in mail.text
    assert "●&nbsp;Overdue" in mail.html and '<html lang="en">' in mail.html
    digest = renderer.render("digest", DIGEST)
    assert digest.subject == "[Supervision digest] June 2021 Work plan progress"
    assert ("22 tasks: 6 done, 2 overdue, 1 due soon, 10 on track, 3 ongoing; as of 20 June 2021, 3 of 5 units"
            " have reported.") in digest.text
    for text in (mail.subject, mail.text, mail.html, digest.text, digest.html):
        assert "请于" not in text and "统计范围" not in text and "年6月" not in text


def test_it_uses_an_override_and_falls_back_for_the_rest(tmp_path: Path) -> None:
    (tmp_path / "reminder-subject.txt").write_text("催办：{{ unit }}", encoding="utf-8")
    mail = Renderer(override_dir=tmp_path).render("reminder", REMINDER)
    assert mail.subject == "催办：市民宗局办公室"
    assert mail.text == GOLDEN_REMINDER_TEXT


def test_it_refuses_an_unknown_language() -> None:
    with pytest.raises(ValueError, match="fr"):
        Renderer("fr")


def test_it_refuses_a_context_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError):
        Renderer().render("digest", REMINDER)


@pytest.mark.parametrize(
    "override",
    [
        {"sender_name": "督查室\r\nBcc: x@evil.example"},
        {"to": [("单位\n", "bgs@example.gov.cn")]},
        {"reply_to": "dcs@example.gov.cn\r\nX: y"},
        {"message_id": "<a@b>\nX: y"},
    ],
)
def test_it_refuses_cr_or_lf_in_a_header(override: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        _parse(Renderer().render("reminder", REMINDER), **override)


def test_it_refuses_a_subject_with_a_newline() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        _parse(RenderedMail(subject="a\nBcc: x@evil.example", text="t", html="<p>h</p>"))


def test_it_makes_a_deterministic_message_id() -> None:
    first = make_message_id("reminder/2021-06/unit:3", "example.gov.cn")
    assert first == make_message_id("reminder/2021-06/unit:3", "example.gov.cn")
    assert re.fullmatch(r"<reminder\.2021-06\.unit-3\.[0-9a-f]{12}@example\.gov\.cn>", first)
    assert first != make_message_id("reminder/2021-06/unit:4", "example.gov.cn")
    assert first != make_message_id("reminder/2021-06/unit-3", "example.gov.cn")
    assert _parse(Renderer().render("reminder", REMINDER))["Message-ID"] == first


def test_it_says_how_many_tasks_a_long_digest_leaves_out() -> None:
    many = tuple(replace(LATE, number=str(n), days_left=-n) for n in range(1, 101))
    digest = replace(DIGEST, total=160, counts={**DIGEST.counts, "overdue": 150}, overdue=many,
                     not_reported_total=130)
    mail = Renderer().render("digest", digest)
    assert "逾期任务（150 项" in mail.text and "另有 50 项未列出" in mail.text
    assert "本月尚未报送单位（130 个）" in mail.text and "另有 128 个单位未列出" in mail.text
    assert "另有 50 项未列出" in mail.html
    assert "未列出" not in Renderer().render("digest", DIGEST).text


RECEIPT = ReceiptContext(
    unit="市民宗局办公室", contact="李四", cycle="2021-06", as_of=date(2021, 6, 21), office=OFFICE,
    reports=(ReceiptLine("1", LATE.title, "progress", 50, "已开展宣讲", "", "", None, None),),
)
STAFFED = replace(OFFICE, contact="王敏", phone="0371-65500000")
FOOTER_LINES = {
    "zh_CN": ("如有疑问，请直接回复本邮件，或联系市民宗局督查室（dcs@example.gov.cn）。",
              "联系人：王敏，电话：0371-65500000"),
    "en": ("Questions: reply to this email, or contact 市民宗局督查室 (dcs@example.gov.cn).",
           "Contact: 王敏, tel. 0371-65500000"),
}


@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize(("kind", "context"), [("reminder", REMINDER), ("chase", REMINDER), ("digest", DIGEST),
                                               ("receipt", RECEIPT)])
def test_it_names_the_office_contact_and_phone_in_every_footer(
    language: str, kind: Kind, context: ReminderContext | DigestContext | ReceiptContext
) -> None:
    renderer = Renderer(language)
    mail = renderer.render(kind, replace(context, office=STAFFED))
    asked, contact = FOOTER_LINES[language]
    assert f"\n{asked}\n{contact}\n" in mail.text
    assert f"{contact}<br>" in mail.html
    bare = renderer.render(kind, context)
    assert f"\n{asked}\n" in bare.text
    assert "0371" not in bare.text and "0371" not in bare.html


@pytest.mark.parametrize(("language", "contact"), [("zh_CN", "电话：0371-65500000"), ("en", "Tel. 0371-65500000")])
def test_it_gives_the_phone_alone_when_no_contact_person_is_set(language: str, contact: str) -> None:
    mail = Renderer(language).render("reminder", replace(REMINDER, office=replace(OFFICE, phone="0371-65500000")))
    assert f"\n{contact}\n" in mail.text and f"{contact}<br>" in mail.html
