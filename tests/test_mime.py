"""The hand-built MIME of mime.build_message, parsed back with the email package and compared with the
EmailMessage-based builder it replaced (kept below as the reference).

Run `python -m pytest tests/test_mime.py -s -k cost` (or `python -m tests.test_mime`) to see old vs new cost.
"""

from __future__ import annotations

import base64
import email
import re
import timeit
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from email import policy
from email.errors import NonPrintableDefect
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reminders.mail.mime import Attachment, RenderedMail, build_message, seven_bit
from reminders.mail.render import Renderer
from tests.test_render import LATE, ONGOING, REMINDER, SOON

# ---------------------------------------------------------------------------------------------------------------
# The reference: build_message as it was before the hand-built path (EmailMessage, policy.SMTP).


def _old_check_header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} header value contains CR or LF: {value!r}")
    return value


def _old_address(field: str, display_name: str, addr_spec: str) -> Address:
    _old_check_header(field, display_name)
    return Address(display_name=display_name, addr_spec=_old_check_header(field, addr_spec))


def old_build_message(
    mail: RenderedMail,
    *,
    sender: str,
    sender_name: str,
    to: Sequence[tuple[str, str]],
    reply_to: str | None,
    message_id: str,
    date: datetime,
    content_language: str = "zh-CN",  # the headers that say "automated" came later; compared on their own
) -> bytes:
    if not to:
        raise ValueError("a message needs at least one recipient")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = _old_check_header("Subject", mail.subject)
    msg["From"] = _old_address("From", sender_name, sender)
    msg["To"] = [_old_address("To", name, addr) for name, addr in to]
    if reply_to is not None:
        msg["Reply-To"] = _old_address("Reply-To", "", reply_to)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _old_check_header("Message-ID", message_id)
    msg.set_content(mail.text, subtype="plain", charset="utf-8")
    msg.add_alternative(mail.html, subtype="html", charset="utf-8")
    return msg.as_bytes()


# ---------------------------------------------------------------------------------------------------------------
# Inputs.

# str.splitlines() boundaries: refused in header values (tested separately).
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
ASCII_SPECIALS = " ,;:\"'@<>()[]\\.=?!#$%&*+/^_`{|}~-\t"
CJK = "市民宗局办公室督查重点工作任务进展报送提醒逾期临期中华人民共和国　，。（）【】《》"
EMOJI = "😀🎉📅✅❌🔔👍🏽👨‍👩‍👧"

any_char = st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS)
mixed_char = st.one_of(
    st.sampled_from(ASCII_SPECIALS),
    st.sampled_from(CJK),
    st.sampled_from(EMOJI),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    any_char,
)
header_text = st.one_of(st.text(mixed_char, max_size=500), st.text(any_char, max_size=80))
subjects = st.one_of(
    header_text,
    st.sampled_from(
        ["", " ", "=?utf-8?q?x?=", "a  b ", "【工作提醒】2021年6月 重点工作任务进展报送（市民宗局办公室）"]
    ),
)
names = st.one_of(
    st.text(mixed_char, max_size=60),
    st.text(st.sampled_from(CJK + "ab "), max_size=40),
    st.sampled_from(["", "市民宗局办公室", "Smith, John", 'A "B" C', "a\\b", "O'Neil", "x@y", "(c)", "a;b"]),
)
_atext = st.text(st.sampled_from("abcxyzABC019!#$%&'*+/=?^_`{|}~-"), min_size=1, max_size=12)
_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
addresses = st.builds(
    lambda local, domain: f"{'.'.join(local)}@{'.'.join(domain)}",
    st.lists(_atext, min_size=1, max_size=3),
    st.lists(_label, min_size=1, max_size=3),
)
line_ends = st.sampled_from(["\n", "\r\n", "\r", ""])
body_lines = st.one_of(
    st.text(mixed_char, max_size=200),
    st.text(st.sampled_from(CJK), min_size=340, max_size=500),  # lines past 998 octets
    st.text(st.sampled_from("abc <>&"), min_size=100, max_size=1100),
)
bodies = st.builds(
    lambda parts: "".join(line + end for line, end in parts), st.lists(st.tuples(body_lines, line_ends), max_size=5)
)
dates = st.builds(
    lambda moment, minutes: moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(-14 * 60 + 1, 14 * 60 - 1),
)
message_ids = st.builds(lambda local, domain: f"<{local}@{domain}>", _atext, _label)
languages = st.sampled_from(["zh-CN", "en", "zh-Hans-CN", "en-GB"])


@st.composite
def messages(draw: st.DrawFn) -> tuple[RenderedMail, dict[str, object]]:
    mail = RenderedMail(draw(subjects), draw(bodies), draw(bodies))
    args: dict[str, object] = {
        "sender": draw(addresses),
        "sender_name": draw(names),
        "to": draw(st.lists(st.tuples(names, addresses), min_size=1, max_size=5)),
        "reply_to": draw(st.none() | addresses),
        "message_id": draw(message_ids),
        "date": draw(dates),
        "content_language": draw(languages),
    }
    return mail, args


# ---------------------------------------------------------------------------------------------------------------
# Reading a message back.


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def wire(text: str) -> str:
    """A body as it comes back: every line end CRLF, with a final one (what set_content always did)."""
    text = re.sub(r"\r\n|\r|\n", "\r\n", text)
    return text if text.endswith("\r\n") else text + "\r\n"


def expected_encoding(text: str) -> str:
    """The transfer encoding a text/plain part should travel in: as it is (8bit, or 7bit when ASCII), unless a NUL
    would travel or a line could be taken for a boundary. A line over 998 octets is cut (format=flowed)."""
    body = wire(text).encode()
    lines = body.split(b"\r\n")
    if b"\0" in body or any(line.startswith(b"--=_") for line in lines):
        return "base64"
    return "7bit" if body.isascii() else "8bit"


def long_lines(text: str) -> bool:
    return max(map(len, wire(text).encode().split(b"\r\n"))) > 998


def read_plain(text: str) -> str:
    """What a text/plain part should read as: the text, and where a line passed 998 octets (so it travelled as
    format=flowed), without the spaces that ended its lines."""
    body = wire(text)
    return re.sub(" +\r\n", "\r\n", body) if long_lines(text) and expected_encoding(text) != "base64" else body


def unflowed(text: str) -> str:
    """RFC 3676 with delsp=yes, as a client reads it: a line that ends in a space joins the next, without that
    space; a line's first space is stuffing and goes."""
    out: list[str] = []
    joined = ""
    for line in text.split("\r\n")[:-1]:
        line = line.removeprefix(" ")
        if line.endswith(" "):
            joined += line[:-1]
        else:
            out.append(joined + line)
            joined = ""
    return "".join(f"{line}\r\n" for line in out)


HTML_CUT = "<!--\r\n-->"  # where mime cut an HTML line over 998 octets: a comment, which shows as nothing


def rfc2047_mailboxes(raw: bytes, field: str) -> list[tuple[str, str]]:
    """(display name, address) of a header read per RFC 2047 §6.2: white space between encoded-words is dropped.

    The email package's policy.default reads that space into a phrase as a space, so a display name too long
    for one encoded-word does not come back exactly there; this is the reading mail clients do.
    """
    value = _raw_header(raw, field).replace("\r\n", "")
    result = []
    for name, addr in getaddresses([value]):
        chunks = decode_header(name)
        if any(charset for _, charset in chunks):
            name = "".join(c.decode(cs or "ascii") if isinstance(c, bytes) else c for c, cs in chunks)
        result.append((name, addr))
    return result


def _raw_header(raw: bytes, field: str) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{field}:((?:[^\r\n]|\r\n[ \t])*)", head, re.MULTILINE)
    assert match, field
    return match[1].strip(" ")


def _python_reads_exactly(raw: bytes, field: str, index: int, name: str) -> bool:
    """Whether policy.default can give `name` back: it collapses white space in a phrase and puts a space
    between encoded-words, so only a name in one encoded-word with single inner spaces comes back exactly."""
    value = _raw_header(raw, field).replace("\r\n", "")
    mailbox = getaddresses([value])[index][0]
    if not mailbox.startswith("=?"):
        return True  # plain or quoted: exact
    return mailbox.count("=?") == 1 and not re.search(r"^[ \t]|[ \t]$|[ \t]\s|\t", name)


def decoded(msg: EmailMessage) -> dict[str, object]:
    """What a reader sees: headers decoded, bodies as text."""
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    plain_text = str(plain.get_content())
    if plain.get_param("format") == "flowed":
        assert plain.get_param("delsp") == "yes"
        plain_text = unflowed(plain_text)
    return {
        "subject": str(msg["Subject"]),
        "from": [(a.display_name, a.addr_spec) for a in msg["From"].addresses],
        "to": [(a.display_name, a.addr_spec) for a in msg["To"].addresses],
        "reply_to": msg["Reply-To"] and [a.addr_spec for a in msg["Reply-To"].addresses],
        "date": msg["Date"].datetime,
        "message_id": str(msg["Message-ID"]),
        "mime_version": str(msg["MIME-Version"]),
        "types": [(p.get_content_type(), p.get_content_charset()) for p in msg.iter_parts()],
        "plain": plain_text,
        "html": str(html.get_content()).replace(HTML_CUT, ""),
    }


# ---------------------------------------------------------------------------------------------------------------
# Properties.

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(messages())
def test_it_round_trips_through_the_email_parser(case: tuple[RenderedMail, dict[str, object]]) -> None:
    mail, args = case
    raw = build_message(mail, **args)  # type: ignore[arg-type]
    msg = parse(raw)
    got = decoded(msg)
    to: list[tuple[str, str]] = args["to"]  # type: ignore[assignment]

    assert got["subject"] == mail.subject
    assert rfc2047_mailboxes(raw, "From") == [(args["sender_name"], args["sender"])]
    assert rfc2047_mailboxes(raw, "To") == to
    assert [addr for _, addr in got["to"]] == [addr for _, addr in to]  # type: ignore[attr-defined]
    assert got["from"][0][1] == args["sender"]  # type: ignore[index]
    for field, index, name, parsed in [
        ("From", 0, args["sender_name"], got["from"][0][0]),  # type: ignore[index]
        *(("To", i, n, p) for i, ((n, _), (p, _)) in enumerate(zip(to, got["to"], strict=True))),  # type: ignore[arg-type]
    ]:
        if _python_reads_exactly(raw, field, index, name):  # type: ignore[arg-type]
            assert parsed == name
        else:  # policy.default puts a space between encoded-words and collapses runs of it: only spacing differs
            assert _same_but_space(parsed, name), (parsed, name)  # type: ignore[arg-type]
    assert got["reply_to"] == (None if args["reply_to"] is None else [args["reply_to"]])
    assert got["date"] == args["date"] and got["date"].utcoffset() == args["date"].utcoffset()  # type: ignore[attr-defined]
    assert got["message_id"] == args["message_id"]
    assert got["mime_version"] == "1.0"
    assert (msg["Auto-Submitted"], msg["X-Auto-Response-Suppress"]) == ("auto-generated", "All")
    assert msg["Content-Language"] == args["content_language"]
    assert msg["Precedence"] is None  # it hurts the delivery of official mail
    assert msg.get_content_type() == "multipart/alternative"
    assert got["types"] == [("text/plain", "utf-8"), ("text/html", "utf-8")]
    assert got["plain"] == read_plain(mail.text)
    assert got["html"] == wire(mail.html).replace(HTML_CUT, "")
    plain, html = (p["Content-Transfer-Encoding"] for p in msg.iter_parts())
    assert plain == expected_encoding(mail.text)
    # HTML whose long line cannot be cut unseen (a tag longer than a line) still goes as base64
    assert html == expected_encoding(mail.html) or (html == "base64" and long_lines(mail.html))
    assert not msg.defects and not any(p.defects for p in msg.iter_parts())
    for name in ("Subject", "From", "To", "Reply-To", "Date", "Message-ID", "Auto-Submitted",
                 "X-Auto-Response-Suppress", "Content-Language"):
        if name != "Reply-To" or args["reply_to"] is not None:
            # A control character the caller put in is reported as such; nothing else may be.
            defects = [d for d in msg[name].defects if not isinstance(d, NonPrintableDefect)]
            assert not defects, (name, defects)
    _assert_wire_form(raw)


def _assert_wire_form(raw: bytes) -> None:
    """Valid on the wire with 8BITMIME, and, through seven_bit, without: then pure ASCII, the same message."""
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)  # every line ends CRLF
    assert max(len(line) for line in lines) <= 998
    raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # the header: pure ASCII
    seven = seven_bit(raw)
    assert decoded(parse(seven)) == decoded(parse(raw))
    _assert_seven_bit_form(seven)


def _assert_seven_bit_form(raw: bytes) -> None:
    raw.decode("ascii")  # pure ASCII
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)  # every line ends CRLF
    assert max(len(line) for line in lines) <= 998
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for line in head:
        assert line.strip(b" \t"), "no blank folded line"
        for word in re.findall(rb"=\?[^?]*\?[bBqQ]\?[^?]*\?=", line):
            assert len(word) <= 75, word
    # encoded-words never push a header line past 78 (plain ASCII words longer than that cannot be folded)
    assert all(len(line) <= 78 for line in head if b"=?utf-8?b?" in line and b'"' not in line)
    for part in parse(raw).walk():  # base64 in lines of 76 (RFC 2045 §6.8); 7bit parts within 998, as above
        if part["Content-Transfer-Encoding"] == "base64":
            assert all(len(line) <= 76 for line in part.get_payload().splitlines())
        else:
            assert part["Content-Transfer-Encoding"] in (None, "7bit")


@FUZZ
@given(messages())
def test_it_reads_back_like_the_emailmessage_path(case: tuple[RenderedMail, dict[str, object]]) -> None:
    """Every field reads back as from the old path, or exactly as given where the old path got it wrong."""
    mail, args = case
    raw = build_message(mail, **args)  # type: ignore[arg-type]
    new = decoded(parse(raw))
    old = decoded(parse(old_build_message(mail, **args)))  # type: ignore[arg-type]
    assert {k: v for k, v in new.items() if k not in ("subject", "from", "to", "plain")} == {
        k: v for k, v in old.items() if k not in ("subject", "from", "to", "plain")
    }
    assert new["plain"] == read_plain(mail.text) and old["plain"] == wire(mail.text)
    assert new["subject"] == mail.subject
    given_boxes = [(args["sender_name"], args["sender"]), *args["to"]]  # type: ignore[misc]
    new_boxes = [*new["from"], *new["to"]]  # type: ignore[misc]
    old_boxes = [*old["from"], *old["to"]]  # type: ignore[misc]
    assert [addr for _, addr in new_boxes] == [addr for _, addr in given_boxes]
    # The old path can lose a recipient: after some encoded-word names policy.SMTP folds the separating comma into
    # an encoded-word ("=?utf-8?q?=2C?="), and the next two mailboxes read back as one. Where it did not, it read
    # back the same addresses.
    if len(old_boxes) == len(given_boxes):
        assert [addr for _, addr in old_boxes] == [addr for _, addr in given_boxes]
    for number, ((name, _), (read, _)) in enumerate(zip(given_boxes, new_boxes, strict=True)):
        field, index = ("From", 0) if number == 0 else ("To", number - 1)
        if _python_reads_exactly(raw, field, index, name):
            assert read == name
        else:  # policy.default puts a space between encoded-words and collapses runs of it: only spacing differs
            assert _same_but_space(read, name), (read, name)


def _same_but_space(read: str, name: str) -> bool:
    return re.sub(r"\s+", "", read) == re.sub(r"\s+", "", name)


@pytest.mark.parametrize(
    "subject",
    [
        "【工作提醒】2021年6月 重点工作任务进展报送（市民宗局办公室）",
        "[Reminder] June 2021 Work plan progress report (市民宗局办公室)",
        "Plain ASCII subject that is rather long, long enough to need folding onto a second line at a space",
        "",
    ],
)
def test_it_matches_the_old_path_on_real_subjects(subject: str) -> None:
    mail = replace(Renderer().render("reminder", REMINDER), subject=subject)
    args = {
        "sender": "dcs@example.gov.cn",
        "sender_name": "市民宗局督查室",
        "to": [("市民宗局办公室", "bgs@example.gov.cn"), ("Smith, John", "js@example.org")],
        "reply_to": "dcs@example.gov.cn",
        "message_id": "<reminder.2021-06.unit-3.abc@example.gov.cn>",
        "date": datetime(2021, 6, 20, 8, 30, tzinfo=timezone(timedelta(hours=8))),
    }
    new_raw = build_message(mail, **args)  # type: ignore[arg-type]
    assert decoded(parse(new_raw)) == decoded(parse(old_build_message(mail, **args)))  # type: ignore[arg-type]
    _assert_wire_form(new_raw)


@pytest.mark.parametrize(
    ("body", "read"),
    [
        ("", "\r\n"),
        ("\n", "\r\n"),
        ("a", "a\r\n"),
        ("a\n\n", "a\r\n\r\n"),
        ("a\rb\r\nc\n\rd\r", "a\r\nb\r\nc\r\n\r\nd\r\n"),
        ("中文\u2028x\x0bx\x85\n", "中文\u2028x\x0bx\x85\r\n"),  # only CR and LF are line ends in a body
    ],
)
def test_it_normalises_line_ends_to_crlf_as_the_old_path_did(body: str, read: str) -> None:
    args: dict[str, object] = {
        "sender": "a@example.org",
        "sender_name": "",
        "to": [("", "b@example.org")],
        "reply_to": None,
        "message_id": "<a@example.org>",
        "date": datetime(2021, 6, 20, tzinfo=UTC),
    }
    mail = RenderedMail("s", body, body)
    new, old = decoded(parse(build_message(mail, **args))), decoded(parse(old_build_message(mail, **args)))  # type: ignore[arg-type]
    assert new["plain"] == new["html"] == old["plain"] == old["html"] == read == wire(body)


def test_it_writes_ascii_as_it_is() -> None:
    raw = build_message(
        RenderedMail("Monthly reminder: June", "t", "h"),
        sender="dcs@example.org",
        sender_name="Supervision Office",
        to=[("Smith, John", "js@example.org"), ("", "x@example.org")],
        reply_to=None,
        message_id="<a@example.org>",
        date=datetime(2021, 6, 20, tzinfo=UTC),
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nSubject: Monthly reminder: June\r\n" in head
    assert b"\r\nAuto-Submitted: auto-generated\r\nX-Auto-Response-Suppress: All\r\nContent-Language: zh-CN\r\n" in head
    assert head.startswith(b"From: Supervision Office <dcs@example.org>\r\n")
    assert b'\r\nTo: "Smith, John" <js@example.org>, x@example.org\r\n' in head
    assert b"=?" not in head


@pytest.mark.parametrize(
    "name",
    ["Word " * 300 + "end", "x" * 1500, "a, " * 400, "市" * 400, "(" + "y" * 1200 + ")", "=?" * 500],
)
def test_it_folds_long_names_and_subjects_within_998(name: str) -> None:
    mail = RenderedMail(name, "t", "h")
    raw = build_message(
        mail,
        sender="a@example.org",
        sender_name=name,
        to=[(name, "b@example.org"), (name, "c@example.org")],
        reply_to=None,
        message_id="<a@example.org>",
        date=datetime(2021, 6, 20, tzinfo=UTC),
    )
    _assert_wire_form(raw)
    assert str(parse(raw)["Subject"]) == name
    assert rfc2047_mailboxes(raw, "To") == [(name, "b@example.org"), (name, "c@example.org")]


def test_it_uses_a_boundary_no_base64_line_can_hold() -> None:
    raw = build_message(
        RenderedMail("s", "-" * 3000, "=" * 3000),
        sender="a@example.org",
        sender_name="",
        to=[("", "b@example.org")],
        reply_to=None,
        message_id="<a@example.org>",
        date=datetime(2021, 6, 20, tzinfo=UTC),
    )
    boundary = re.search(rb'boundary="([^"]+)"', raw)[1]  # type: ignore[index]
    assert boundary.startswith(b"=_")  # "=" only ever ends base64, never starts a line
    assert raw.count(b"--" + boundary) == 3


@pytest.mark.parametrize("char", list(LINE_BREAKS))
@pytest.mark.parametrize("field", ["subject", "sender_name", "to_name", "to_addr", "reply_to", "message_id"])
def test_it_refuses_any_line_break_in_a_header(field: str, char: str) -> None:
    args: dict[str, object] = {
        "sender": "a@example.org",
        "sender_name": "n",
        "to": [("n", "b@example.org")],
        "reply_to": "c@example.org",
        "message_id": "<a@example.org>",
        "date": datetime(2021, 6, 20, tzinfo=UTC),
    }
    subject = "s"
    if field == "subject":
        subject = f"a{char}Bcc: x@evil.example"
    elif field == "to_name":
        args["to"] = [(f"n{char}", "b@example.org")]
    elif field == "to_addr":
        args["to"] = [("n", f"b@example.org{char}")]
    else:
        args[field] = f"{args[field]}{char}X: y"
    with pytest.raises(ValueError, match="CR or LF"):
        build_message(RenderedMail(subject, "t", "h"), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "override",
    [
        {"to": []},
        {"date": datetime(2021, 6, 20)},
        {"to": [("n", "not an address")]},
        {"to": [("n", "用户@example.cn")]},
        {"sender": "a@例子.cn"},
        {"message_id": "<é@example.org>"},
        {"content_language": "zh_CN"},
        {"content_language": ""},
        {"content_language": "zh-CN\r\nBcc: x@evil.example"},
    ],
)
def test_it_refuses_what_it_cannot_send(override: dict[str, object]) -> None:
    args: dict[str, object] = {
        "sender": "a@example.org",
        "sender_name": "n",
        "to": [("n", "b@example.org")],
        "reply_to": None,
        "message_id": "<a@example.org>",
        "date": datetime(2021, 6, 20, tzinfo=UTC),
    }
    args.update(override)
    with pytest.raises(ValueError):
        build_message(RenderedMail("s", "t", "h"), **args)  # type: ignore[arg-type]


@given(messages())
@settings(max_examples=30, deadline=None)
def test_it_is_deterministic(case: tuple[RenderedMail, dict[str, object]]) -> None:
    mail, args = case
    assert build_message(mail, **args) == build_message(mail, **args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Cost (printed, never asserted: these machines are noisy).


def big_reminder() -> tuple[RenderedMail, dict[str, object]]:
    """A realistic large reminder: about 30 KB of Chinese plain text (and its HTML)."""
    tasks = []
    for i in range(100):
        base = (LATE, ONGOING, SOON)[i % 3]
        tasks.append(replace(base, number=str(i + 1), title=f"{base.title}（第{i + 1}项）", deadline=date(2021, 6, 15)))
    mail = Renderer().render("reminder", replace(REMINDER, tasks=tuple(tasks)))
    args: dict[str, object] = {
        "sender": "dcs@example.gov.cn",
        "sender_name": "市民宗局督查室",
        "to": [("市民宗局办公室", "bgs@example.gov.cn")],
        "reply_to": "dcs@example.gov.cn",
        "message_id": "<reminder.2021-06.unit-3.0123456789ab@example.gov.cn>",
        "date": datetime(2021, 6, 20, 8, 30, tzinfo=timezone(timedelta(hours=8))),
    }
    return mail, args


def cost_report() -> str:
    mail, args = big_reminder()

    def per_message(build: object, number: int) -> float:
        return min(timeit.repeat(lambda: build(mail, **args), number=number, repeat=5)) / number  # type: ignore[operator]

    old = per_message(old_build_message, 20)
    new = per_message(build_message, 200)
    size = len(mail.text.encode()) // 1024
    return (
        f"build_message on a {size} KB Chinese reminder: EmailMessage path {old * 1e3:.2f} ms, "
        f"hand-built {new * 1e3:.3f} ms, {old / new:.0f}x cheaper"
    )


def test_it_prints_the_cost_of_old_and_new(capsys: pytest.CaptureFixture[str]) -> None:
    mail, args = big_reminder()
    assert 25_000 <= len(mail.text.encode()) <= 40_000
    assert decoded(parse(build_message(mail, **args))) == decoded(parse(old_build_message(mail, **args)))  # type: ignore[arg-type]
    report = cost_report()
    with capsys.disabled():
        print("\n" + report)


if __name__ == "__main__":
    print(cost_report())


# A message built by the code before attachments existed (commit 34d60d8): its SHA-256, to prove a message without
# attachments keeps every byte.
PLAIN_ARGS: dict[str, object] = {
    "sender": "ducha@example.org", "sender_name": "市民宗局督查室", "to": [("宗教一处", "zj1@example.org")],
    "reply_to": "ducha@example.org", "message_id": "<digest.2021-06.leader-1.abc@example.org>",
    "date": datetime(2021, 6, 28, 9, 0, tzinfo=timezone(timedelta(hours=8))),
}
PLAIN_MAIL = RenderedMail("【督办汇总】2021年6月 重点工作任务进展情况", "正文\n第二行", "<p>正文</p>")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_a_message_without_attachments_keeps_every_byte() -> None:
    import hashlib

    raw = build_message(PLAIN_MAIL, **PLAIN_ARGS)  # type: ignore[arg-type]
    # and seven_bit gives back, byte for byte, the base64 message made before the text parts travelled as 8bit
    assert hashlib.sha256(seven_bit(raw)).hexdigest() == \
        "6a3c3988f8d39edc84c174241451ca2ce8e01d05b2471eda3e94ea2e2c574117"
    assert build_message(PLAIN_MAIL, attachments=(), **PLAIN_ARGS) == raw  # type: ignore[arg-type]


@pytest.mark.parametrize("filename", ["工作台账-2021-06.xlsx", "ledger.xlsx",
                                      "市民宗局督查室重点工作任务推进台账（2021年度）第二版-2021-06-最终.xlsx"])
def test_an_attachment_round_trips_with_its_name_and_bytes(filename: str) -> None:
    data = bytes(range(256)) * 40  # every byte value, over many base64 lines
    raw = build_message(PLAIN_MAIL, attachments=(Attachment(filename, XLSX, data),), **PLAIN_ARGS)  # type: ignore[arg-type]
    _assert_wire_form(raw)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/mixed" and not msg.defects
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content() == "正文\r\n第二行\r\n"
    html = msg.get_body(("html",))
    assert html is not None and html.get_content() == "<p>正文</p>\r\n"
    (part,) = list(msg.iter_attachments())
    assert part.get_filename() == filename and part.get_content_type() == XLSX
    assert part.get_content() == data


@pytest.mark.parametrize("size", [0, 1, 57, 57 * 1024 - 1, 57 * 1024, 57 * 1024 + 1, 57 * 2048 + 58])
def test_a_large_attachment_is_whole_lines_across_the_encoders_blocks(size: int) -> None:
    """The attachment is encoded a block at a time: the lines are what the standard encoder makes, 76 characters
    each, and the file comes back whole at every block boundary."""
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    raw = build_message(PLAIN_MAIL, attachments=(Attachment("ledger.xlsx", XLSX, data),),
                        **PLAIN_ARGS)  # type: ignore[arg-type]
    _assert_wire_form(raw)
    body = raw.split(b"Content-Disposition: attachment;", 1)[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
    assert body == base64.encodebytes(data).rstrip(b"\n").replace(b"\n", b"\r\n")
    (part,) = list(parse(raw).iter_attachments())
    assert part.get_content() == data


def test_it_refuses_an_attachment_name_that_could_start_a_header() -> None:
    with pytest.raises(ValueError, match="line break"):
        build_message(PLAIN_MAIL, attachments=(Attachment("a\r\nBcc: x@y.org", XLSX, b"x"),),
                      **PLAIN_ARGS)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "encodings"), [
    ("正文\n第二行", ["8bit", "8bit"]),
    ("plain ASCII", ["7bit", "7bit"]),
    ("中" * 332, ["8bit", "8bit"]),  # 996 octets on one line
    ("中" * 333, ["8bit", "8bit"]),  # 999 octets on one line: past SMTP's 998, cut (flowed; a comment in HTML)
    ("a" * 999, ["7bit", "7bit"]),
    ("进展：" + "已完成前期调研，正在督导检查。" * 150 + "\n   下一行", ["8bit", "8bit"]),  # a 2,000-character report
    ("<p>" + "&nbsp;中" * 200 + "</p>", ["8bit", "8bit"]),  # never cut inside an entity
    ("<a href='" + "x" * 1000 + "'>链接</a>", ["8bit", "base64"]),  # a tag longer than a line: nowhere to cut it unseen
    ("<title>" + "中" * 400 + "</title>", ["8bit", "base64"]),  # a comment in a title would show
    ("<title>\n" + "中" * 400 + "\n</title>", ["8bit", "base64"]),  # … on a line of its own too
    ('<a\nhref="' + "x" * 1000 + '">链接</a>', ["8bit", "base64"]),  # a tag over two lines
    ("<!-- 注 -->" + "中" * 400, ["8bit", "8bit"]),  # cut after a comment, not inside it
    ("前\x00后", ["base64", "base64"]),  # a NUL never travels bare
    ("注意\n--=_x 像分隔行\n", ["base64", "base64"]),  # a line that could be taken for a boundary
    ("--=_开头", ["base64", "base64"]),
])
def test_a_text_part_travels_as_it_is_unless_it_cannot(text: str, encodings: list[str]) -> None:
    raw = build_message(RenderedMail("s", text, text), **PLAIN_ARGS)  # type: ignore[arg-type]
    msg = parse(raw)
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == encodings
    _assert_wire_form(raw)
    for sent in (raw, seven_bit(raw)):
        read = decoded(parse(sent))
        assert (read["plain"], read["html"]) == (read_plain(text), wire(text).replace(HTML_CUT, ""))
    assert seven_bit(raw).isascii()
    assert len(raw) <= len(seven_bit(raw))


def test_a_long_line_is_cut_where_a_reader_sees_no_difference() -> None:
    """A unit's 2,000-character report on one line: the text part flowed, with its lines stuffed where they begin
    with a space, ">" or "From "; the HTML cut by comments between characters, never inside a tag or an entity."""
    report = "已完成前期调研和方案论证，正在组织开展实地督导检查，&nbsp;<b>已建立问题台账</b>。" * 40
    text = f"1. 【3】任务\n   进展：{report}\n> 引用\nFrom 单位\n"
    html = f'<div style="color:#5f6368;">进展：{report}</div>\n'
    raw = build_message(RenderedMail("s", text, html), **PLAIN_ARGS)  # type: ignore[arg-type]
    plain_part, html_part = parse(raw).iter_parts()
    assert b'Content-Type: text/plain; charset="utf-8"; format=flowed; delsp=yes\r\n' in raw
    body = plain_part.get_payload(decode=True)
    lines = body.split(b"\r\n")
    assert max(map(len, lines)) <= 998 and len(lines) > 4
    assert lines[1].startswith(b"    \xe8\xbf\x9b\xe5\xb1\x95") and lines[-3:] == [b" > \xe5\xbc\x95\xe7\x94\xa8",
                                                                           b" From \xe5\x8d\x95\xe4\xbd\x8d", b""]
    assert all(line.endswith(b" ") for line in lines[1:-4])  # the cut lines end in the space a reader takes away
    assert unflowed(body.decode()) == wire(text)
    cut = html_part.get_payload(decode=True).decode()
    assert cut.count(HTML_CUT) >= 4 and cut.replace(HTML_CUT, "") == wire(html)
    for piece in cut.split(HTML_CUT)[1:]:  # each cut falls between characters of the text, outside tags and entities
        before = cut[:cut.index(piece) - len(HTML_CUT)]
        assert before.count("<") - before.count("<!--") == before.count(">") - before.count("-->")
        assert not re.search(r"&[#0-9A-Za-z]*$", before)
