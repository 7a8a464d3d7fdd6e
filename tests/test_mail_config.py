"""Whatever the config loader accepts, a message can be built from: the sender, office and Message-ID domain are
checked at load the way the MIME builder checks them. And what the config puts into every mail (headers, footer)."""

from __future__ import annotations

import email
import re
import tempfile
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reminders import config as config_module
from reminders.config import Config, ConfigError
from reminders.mail.context import ReceiptContext, ReceiptLine, ReminderContext
from reminders.mail.draft import Draft, office_of
from reminders.mail.message import render_draft, renderer_for
from reminders.mail.mime import seven_bit
from tests.test_mime import CJK
from tests.test_render import LATE, SOON


def toml_string(text: str) -> str:
    escaped = re.sub(r'["\\\x00-\x1f\x7f]', lambda m: f"\\u{ord(m[0]):04x}", text)
    return f'"{escaped}"'


def load(tmp: Path, sections: dict[str, dict[str, str]]) -> Config:
    path = tmp / "reminders.toml"
    path.write_text("".join(f"[{name}]\n" + "".join(f"{key} = {toml_string(value)}\n" for key, value in table.items())
                            for name, table in sections.items()), encoding="utf-8")
    return config_module.load(str(path))


def reminder_draft(config: Config) -> Draft:
    context = ReminderContext("市民宗局办公室", "李四", "2021-06", date(2021, 6, 20), date(2021, 6, 25),
                              office_of(config), (LATE, SOON), "https://ducha.example/r/abc")
    return Draft("reminder", "2021-06", "unit:3", "市民宗局办公室", ("bgs@example.gov.cn",), context)


def receipt_draft(config: Config) -> Draft:
    line = ReceiptLine("1", LATE.title, "progress", 50, "已开展宣讲", "", "", None, None)
    context = ReceiptContext("市民宗局办公室", "李四", "2021-06", date(2021, 6, 21), office_of(config), (line,))
    return Draft("receipt", "2021-06", "unit:3:receipt:9", "市民宗局办公室", ("bgs@example.gov.cn",), context)


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


# Values an operator might write, including the forms that used to pass `check-config` and break `send`.
_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_ANY = st.characters(codec="utf-8")  # anything but a lone surrogate
_GOOD_LOCAL = st.sampled_from(["ducha", "duchashi", "a.b", "x+y", "o'neil", "z_9", '"a b"', "A"])
_LOCAL = st.one_of(_GOOD_LOCAL, _GOOD_LOCAL,
                   st.text(st.sampled_from("abcxyz019._-+!#$%&'*/=?^`{|}~\"()<>[]:;@,\\ 督"), max_size=12))
_GOOD_DOMAIN = st.sampled_from(["example.org", "bureau.example", "例子.中国", "localhost", "xn--fsqu00a.xn--fiqs8s",
                                "ÄÖ.de", "müller.de", "例子.org", "EXAMPLE.ORG", "a-b.c-d.example"])
_DOMAIN = st.one_of(
    _GOOD_DOMAIN, _GOOD_DOMAIN,
    st.sampled_from(["ex\u0430mple.org", "bureau.example>", "[127.0.0.1]", "exa_mple.org", "-x.org", "x-.org", "a..b",
                     ".org", "x" * 70 + ".org", "", "αβγ.org", "xαy.org"]),
    st.text(st.sampled_from("abz09.-_[]>< 例"), max_size=20),
)
_ADDRESS = st.builds(lambda local, at, domain: f"{local}{at}{domain}", _LOCAL,
                     st.sampled_from(["@", "@", "@", "@", "", "@@"]), _DOMAIN)
_NAME = st.one_of(st.sampled_from(["", "督查室", "市民宗局督查室", '"Office, Supervision"', "Office", "a\\b", "=?x?="]),
                  st.text(_ASCII, max_size=20), st.text(_ANY, max_size=20), st.text(st.sampled_from(CJK), max_size=20))
_SENDER = st.one_of(
    _ADDRESS,
    st.builds(lambda name, local, domain: f"{name} <{local}@{domain}>", _NAME, _GOOD_LOCAL, _GOOD_DOMAIN),
    st.builds(lambda name, sep, addr, end: f"{name}{sep}<{addr}{end}", _NAME, st.sampled_from([" ", "", "  "]),
              _ADDRESS, st.sampled_from([">", ">", "", "> ", ">x"])),
)


@st.composite
def mail_sections(draw: st.DrawFn) -> dict[str, dict[str, str]]:
    office = {"name": draw(_NAME), "email": draw(_ADDRESS), "contact": draw(_NAME), "phone": draw(_NAME)}
    smtp = {"sender": draw(_SENDER)}
    if draw(st.booleans()):
        smtp["sender_name"] = draw(_NAME)
    mail = {"language": draw(st.sampled_from(["zh_CN", "en"]))}
    if draw(st.booleans()):
        mail["message_id_domain"] = draw(_DOMAIN)
    sections = {"office": {k: v for k, v in office.items() if draw(st.booleans()) or k == "email"}, "smtp": smtp,
                "mail": mail, "delivery": {"transport": draw(st.sampled_from(["smtp", "maildir"]))}}
    if draw(st.booleans()):
        del sections["office"]["email"]
    if draw(st.booleans()):
        del sections["smtp"]["sender"]
    return sections


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections=mail_sections())
@example(sections={"smtp": {"sender": "督查室 <duchashi@bureau.example>"}, "office": {"email": "ducha@example.org"},
                   "mail": {}, "delivery": {"transport": "smtp"}})
@example(sections={"smtp": {"sender": "boss@ex\u0430mple.org"}, "office": {}, "mail": {},
                   "delivery": {"transport": "maildir"}})
@example(sections={"smtp": {"sender_name": "a\u2028b"}, "office": {}, "mail": {}, "delivery": {}})
def test_it_builds_a_message_from_any_config_it_accepts(sections: dict[str, dict[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            config = load(Path(folder), sections)
        except ConfigError as exc:
            assert str(exc).startswith(f"{Path(folder) / 'reminders.toml'}: "), str(exc)
            return
    now = datetime(2021, 6, 20, 1, 0, tzinfo=UTC)
    renderer = renderer_for(config)
    for draft in (reminder_draft(config), receipt_draft(config)):
        message = render_draft(config, renderer, draft, now)
        msg = parsed(message.data)
        assert [a.addr_spec for a in msg["From"].addresses] == [config.from_address()]
        assert message.data.split(b"\r\n\r\n", 1)[0].isascii()  # the header; the text may travel as 8bit
        assert seven_bit(message.data).isascii()  # and as base64 for a relay without 8BITMIME
    if config.delivery.transport == "smtp":
        assert config.smtp.sender and config.office.email


def _config(tmp_path: Path, office: dict[str, str], language: str = "zh_CN") -> Config:
    return load(tmp_path, {"office": {"name": "市民宗局督查室", "email": "dcs@example.gov.cn", **office},
                           "smtp": {"sender": "dcs@example.gov.cn"}, "mail": {"language": language}})


@pytest.mark.parametrize(("language", "tag"), [("zh_CN", "zh-CN"), ("en", "en")])
def test_it_marks_every_mail_as_automated_and_in_its_language(tmp_path: Path, language: str, tag: str) -> None:
    config = _config(tmp_path, {}, language)
    message = render_draft(config, renderer_for(config), reminder_draft(config), datetime(2021, 6, 20, tzinfo=UTC))
    msg = parsed(message.data)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Content-Language"] == tag
    assert msg["Precedence"] is None


def test_it_dates_a_mail_in_the_schedule_time_zone(tmp_path: Path) -> None:
    config = _config(tmp_path, {})
    utc = datetime(2021, 6, 20, 10, 3, tzinfo=UTC)
    message = render_draft(config, renderer_for(config), reminder_draft(config), utc)
    assert "\r\nDate: Sun, 20 Jun 2021 18:03:00 +0800\r\n" in message.data.split(b"\r\n\r\n")[0].decode("ascii")


def test_it_leaves_reply_to_out_while_the_office_has_no_address(tmp_path: Path) -> None:
    config = load(tmp_path, {"office": {"name": "督查室"}})
    message = render_draft(config, renderer_for(config), reminder_draft(config), datetime(2021, 6, 20, tzinfo=UTC))
    msg = parsed(message.data)
    assert msg["Reply-To"] is None
    assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == [("督查室", "reminders@localhost")]
    assert str(msg["Message-ID"]).endswith("@localhost>")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "如有疑问，请直接回复本邮件，或联系督查室。\r\n" in text
