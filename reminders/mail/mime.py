"""Rendered mails as wire bytes: multipart/alternative MIME built directly, headers folded and encoded by hand."""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime

from reminders.mail.wrap import MAX_LINE, flowed_lines, html_lines


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Attachment:
    """A file sent with a mail (the digest's 工作台账): its name as the reader sees it, its type and its bytes."""

    filename: str
    content_type: str
    data: bytes


# Header lines aim at RFC 5322's 78 characters; 998 (wrap.MAX_LINE) is the hard limit.
_FOLD_AT = 78
# What str.splitlines() breaks on. The email package's parser cracks header lines with it, so any of these in a
# header value could start a new header (the EmailMessage path refused them too).
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# Printable ASCII and space: the only characters written into a header as they are.
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
# RFC 5322 atext: a display name made of such words, separated by single spaces, needs no quoting.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EW_PREFIX = b"=?utf-8?b?"
_EW_OVERHEAD = len(_EW_PREFIX) + 2  # "=?utf-8?b?" + "?="
_EW_MAX = 75  # RFC 2047 §2: an encoded-word is at most 75 characters
_B64_LINE = 76  # RFC 2045 §6.8
_B64_BLOCK = 57 * 1024  # bytes encoded at a time: 57 make one whole line of 76 characters
_BOUNDARY_LINE = b"\n--=_"  # how every boundary line of build_message starts
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")  # RFC 5646, as Content-Language carries it


def _check_header(name: str, value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError(f"{name} header value contains CR or LF (or another line break): {value!r}")
    return value


def _encoded_words(value: str, first_room: int) -> list[str]:
    """`value` as RFC 2047 "B" encoded-words of whole UTF-8 characters, the first at most `first_room` long.

    Adjacent encoded-words are separated by folding white space, which decoders drop (RFC 2047 §6.2).
    """
    data = value.encode("utf-8")
    words: list[str] = []
    room = first_room
    while True:
        take = (room - _EW_OVERHEAD) // 4 * 3
        if take < len(data):
            # Step back to the start of a UTF-8 sequence: an encoded-word must hold whole characters.
            while data[take] & 0xC0 == 0x80:
                take -= 1
        chunk, data = data[:take], data[take:]
        words.append(f"=?utf-8?b?{binascii.b2a_base64(chunk, newline=False).decode('ascii')}?=")
        if not data:
            return words
        room = _EW_MAX


def _fold(name: str, tokens: Sequence[str]) -> bytes:
    """`Name: tok tok …` with CRLF + space before a token wherever the line would pass 78 characters.

    Tokens are joined by one space each, so unfolding (deleting the CRLFs) gives the value back exactly; an empty
    token (from a run of spaces) is never folded before, so no line is white space only.
    """
    lines: list[str] = []
    line = name + ":"
    bare = True  # the line holds no token yet: folding here would leave an empty or blank line
    for token in tokens:
        if not bare and token and len(line) + 1 + len(token) > _FOLD_AT:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
        bare = bare and not token
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _unstructured(name: str, value: str) -> bytes:
    """A Subject-like header: plain ASCII as it is, anything else as encoded-words."""
    _check_header(name, value)
    if not value:
        return f"{name}:\r\n".encode("ascii")
    words = value.split(" ")
    if (
        _PRINTABLE.fullmatch(value)
        and "=?" not in value  # would be decoded as an encoded-word
        and value == value.strip(" ")  # leading white space is lost in parsing, trailing may be stripped in transit
        and max(map(len, words)) < _FOLD_AT
    ):
        return _fold(name, words)
    return _fold(name, _encoded_words(value, _FOLD_AT - len(name) - 2))


@functools.lru_cache(maxsize=4096)
def _mailbox(field: str, display_name: str, addr_spec: str) -> tuple[str, ...]:
    """The tokens of one `name <addr>` mailbox; pure, so caching it cannot carry anything between messages."""
    _check_header(field, display_name)
    _check_header(field, addr_spec)
    # Address parses addr_spec and raises ValueError (a MessageDefect) for a malformed one, as before.
    addr = Address(display_name=display_name, addr_spec=addr_spec).addr_spec
    if not addr.isascii():
        raise ValueError(f"{field} address must be ASCII (no SMTPUTF8 or IDNA here): {addr_spec!r}")
    if not display_name:
        return (addr,)
    words = display_name.split(" ")
    if _ATOM_PHRASE.fullmatch(display_name) and "=?" not in display_name and max(map(len, words)) < _FOLD_AT:
        name = words  # foldable between words
    elif _PRINTABLE.fullmatch(display_name) and "=?" not in display_name and len(display_name) < _FOLD_AT - 4:
        # RFC 5322 quoted-string; white space inside survives parsing exactly.
        name = ['"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    else:
        # Encoded-words of full length: a name that fits in one is parsed back exactly even by the email
        # package, which (unlike RFC 2047 §6.2) reads the space between two encoded-words in a phrase as a space.
        name = _encoded_words(display_name, _EW_MAX)
    return (*name, f"<{addr}>")


def _address_header(field: str, mailboxes: Sequence[tuple[str, str]]) -> bytes:
    tokens: list[str] = []
    for i, (display_name, addr_spec) in enumerate(mailboxes):
        if i:
            tokens[-1] += ","
        tokens.extend(_mailbox(field, display_name, addr_spec))
    return _fold(field, tokens)


def _crlf(text: str) -> bytes:
    # Line ends become CRLF, and the text gains a final one if it lacks it, as on the EmailMessage path (the
    # email package's set_content does the same): text/* on the wire has CRLF line ends (RFC 2046 §4.1.1).
    data = text.encode("utf-8")
    if b"\r" in data:
        return b"\r\n".join(data.splitlines()) + b"\r\n"  # bytes.splitlines breaks at \r\n, \r and \n only
    data = data.replace(b"\n", b"\r\n")  # the same result, faster, for what templates give (LF only)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _base64_lines(data: bytes, head: bytes = b"") -> bytes:
    """`head`, then `data` in base64 lines joined by CRLF, encoded a block of whole lines at a time: a 13 MB ledger
    is never also a list of its 230,000 lines, joined, then joined again to its head."""
    out = bytearray(head)
    view = memoryview(data)
    for start in range(0, len(data), _B64_BLOCK):
        if start:
            out += b"\r\n"
        encoded = binascii.b2a_base64(view[start : start + _B64_BLOCK], newline=False)
        out += b"\r\n".join([encoded[i : i + _B64_LINE] for i in range(0, len(encoded), _B64_LINE)])
    return bytes(out)


def _text_body(text: str, subtype: str) -> tuple[str, str, bytes]:
    """A text part's transfer encoding, Content-Type parameters after the charset, and body: the UTF-8 as it is
    ("8bit", "7bit" when it is all ASCII), a third smaller than base64 for Chinese text, its lines over SMTP's 998
    octets cut where the reader sees no difference (mail.wrap); base64 where they cannot be, a NUL would travel, or
    a line could be taken for a boundary. A relay without 8BITMIME gets the 8bit parts as base64 (`seven_bit`)."""
    data = _crlf(text)
    if b"\0" in data or _BOUNDARY_LINE in data or data.startswith(_BOUNDARY_LINE[1:]):
        return "base64", "", _base64_lines(data)
    params = ""
    if max(map(len, data.split(b"\r\n"))) > MAX_LINE:
        if subtype == "plain":
            data, params = flowed_lines(data), "; format=flowed; delsp=yes"
        else:
            cut = html_lines(data)
            if cut is None:
                return "base64", "", _base64_lines(data)
            data = cut
    return ("7bit" if data.isascii() else "8bit"), params, data


_EIGHT_BIT_PART = re.compile(rb"Content-Transfer-Encoding: 8bit\r\n\r\n(.*?)\r\n(?=--=_)", re.DOTALL)


def seven_bit(data: bytes) -> bytes:
    """`data` (as build_message made it) with every 8bit text part as base64, for a relay that does not announce
    8BITMIME (RFC 6152): the same message, in the bytes build_message made before it wrote 8bit parts."""
    if data.isascii():
        return data
    return _EIGHT_BIT_PART.sub(
        lambda part: b"Content-Transfer-Encoding: base64\r\n\r\n" + _base64_lines(part.group(1)) + b"\r\n", data)


def build_message(
    mail: RenderedMail,
    *,
    sender: str,
    sender_name: str,
    to: Sequence[tuple[str, str]],
    reply_to: str | None,
    cc: Sequence[tuple[str, str]] = (),
    message_id: str,
    date: datetime,
    content_language: str = "zh-CN",
    attachments: Sequence[Attachment] = (),
) -> bytes:
    """The mail as wire bytes: multipart/alternative of text/plain and text/html, both UTF-8, CRLF.

    Built by hand rather than with `email.message.EmailMessage`: that path (header objects, policy-driven
    folding, content managers, a generator) cost about 5-9 ms a message, more than rendering the templates and
    sending put together, for a message whose shape never changes. Here every header is ASCII-only (non-ASCII as
    RFC 2047 encoded-words, lines folded at 78), each body 8bit or base64 as `_text_body` chooses, and the boundary
    starts with "=_", which no base64 line can start with and no 8bit body is let hold. tests/test_mime.py parses
    the output with the email package and compares it against the EmailMessage path for generated inputs.

    Every message says it is automated (RFC 3834 Auto-Submitted, and Exchange's X-Auto-Response-Suppress), so
    out-of-office replies stay away from the office's mailbox; `Precedence: bulk` is left out on purpose: relays
    treat it as a mass mailing, which official reminders are not.

    With `attachments`, a multipart/mixed wraps the alternative part and the files (base64, the file name RFC 2231
    encoded); without, the bytes are those of a message that never had any.
    """
    if not to:
        raise ValueError("a message needs at least one recipient")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    _check_header("Message-ID", message_id)
    if not _PRINTABLE.fullmatch(message_id) or len(message_id) > MAX_LINE - len("Message-ID: "):
        raise ValueError(f"Message-ID must be printable ASCII: {message_id!r}")
    if not _LANGUAGE_TAG.fullmatch(content_language):
        raise ValueError(f"Content-Language must be a language tag such as zh-CN: {content_language!r}")
    subject = _unstructured("Subject", mail.subject)
    # Deterministic, so a rebuilt message has the same bytes; "=_" keeps it out of base64 and the part headers.
    boundary = "=_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:32]
    parts = [
        _address_header("From", [(sender_name, sender)]),
        _address_header("To", to),
    ]
    if cc:
        parts.append(_address_header("Cc", cc))
    if reply_to is not None:
        parts.append(_address_header("Reply-To", [("", reply_to)]))
    parts += [
        subject,
        f"Date: {format_datetime(date)}\r\nMessage-ID: {message_id}\r\n"
        f"Auto-Submitted: auto-generated\r\nX-Auto-Response-Suppress: All\r\nContent-Language: {content_language}\r\n"
        "MIME-Version: 1.0\r\n".encode("ascii"),
    ]
    if attachments:  # the alternative part's header folded: in the body, lines stay under 76 characters
        mixed = "=_m" + boundary[2:]
        parts.append(f'Content-Type: multipart/mixed; boundary="{mixed}"\r\n\r\n--{mixed}\r\n'
                     f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"))
    else:
        parts.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii"))
    for subtype, text in (("plain", mail.text), ("html", mail.html)):
        encoding, params, body = _text_body(text, subtype)
        parts += [
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"{params}\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode("ascii"),
            body,
            b"\r\n",
        ]
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    if attachments:
        for attachment in attachments:
            parts += [f"--{mixed}\r\n".encode("ascii"), _attachment_part(attachment), b"\r\n"]
        parts.append(f"--{mixed}--\r\n".encode("ascii"))
    return b"".join(parts)


_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def _attachment_part(attachment: Attachment) -> bytes:
    """One file's part: the name as RFC 2231 continuations (filename*0*=utf-8''…), each line short and ASCII."""
    if not _CONTENT_TYPE.fullmatch(attachment.content_type):
        raise ValueError(f"bad attachment content type {attachment.content_type!r}")
    name = _check_header("Content-Disposition", attachment.filename)
    if not name:
        raise ValueError("an attachment needs a file name")
    quoted = urllib.parse.quote(name, safe="")
    pieces: list[str] = []
    while quoted:  # 48 characters a piece (a line under 76), never cutting a %XX escape
        cut = min(48, len(quoted))
        while cut < len(quoted) and "%" in quoted[cut - 2:cut]:
            cut -= 1
        pieces.append(quoted[:cut])
        quoted = quoted[cut:]
    charset = "utf-8''"
    params = ";\r\n".join(f" filename*{i}*={charset if i == 0 else ''}{piece}" for i, piece in enumerate(pieces))
    folded = "\r\n " if len(attachment.content_type) > 60 else " "  # the xlsx type alone is 65 characters
    head = (f"Content-Type:{folded}{attachment.content_type}\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment;\r\n{params}\r\n\r\n")
    return _base64_lines(attachment.data, head.encode("ascii"))


def make_message_id(key: str, domain: str) -> str:
    """A Message-ID that only depends on `key`, so a resend of the same mail reuses it.

    The readable part is lossy (non-ASCII becomes "-"); the hash of the full key keeps ids distinct.
    """
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", domain):
        raise ValueError(f"bad Message-ID domain {domain!r}")
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", key.replace("/", "."))
    readable = re.sub(r"\.{2,}", ".", readable).strip(".-")
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"<{readable}.{digest}@{domain}>" if readable else f"<{digest}@{domain}>"
