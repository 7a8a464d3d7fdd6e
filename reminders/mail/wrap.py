"""A text part's lines kept within SMTP's 998 octets, so that it can travel as 8bit and not as base64.

A unit's report can run to 2,000 characters, and a mail shows it on one line: 6,000 octets of UTF-8 that SMTP
cannot carry as they are. The whole part then went as base64, a third larger. Here a long line is cut instead,
where the cut changes nothing the reader sees:

- HTML: `<!--` CRLF `-->` in the text between tags, never inside a tag, an entity or a character. A bare line break
  there would show as a space between two Chinese characters; a comment shows as nothing.
- Plain text: format=flowed with delsp=yes (RFC 3676): the cut line ends in a space that a client reading flowed
  text takes away with the line break; one that does not shows a line break inside the paragraph. Lines that
  begin with a space, ">" or "From " gain one space, which such a client takes away again (space-stuffing).

html_lines gives None where it cannot (a tag longer than a line, or a long line inside <title>, <textarea>,
<script> or <style>, where a comment would show); the part then goes as base64 as before.
"""

from __future__ import annotations

import bisect
import re

MAX_LINE = 998
# Room left on a cut line for what the cut adds: "<!--" at its end and "-->" at the next one's start.
_HTML_PIECE = MAX_LINE - len(b"<!--") - len(b"-->")
_FLOWED_PIECE = MAX_LINE - len(b" ") - len(b" ")  # the soft break's space, and a stuffed space
# Where no cut may fall, over the whole part (a tag may run over lines): a comment, an element whose text a comment
# would show in (RCDATA and raw text), a tag; one left open runs to the end.
_UNCUT = re.compile(rb"<!--.*?(?:-->|\Z)|<(title|textarea|script|style|xmp)\b.*?(?:</\1\s*>|\Z)|<[^>]*(?:>|\Z)",
                    re.DOTALL | re.IGNORECASE)
# What a cut may fall before: a character reference or a UTF-8 character, whole.
_TOKEN = re.compile(rb"&#?[0-9A-Za-z]+;|[\x00-\x7f]|[\xc0-\xff][\x80-\xbf]*")
_STUFFED = (b" ", b">", b"From ")


def html_lines(data: bytes) -> bytes | None:
    """`data` (CRLF lines) with every line over 998 octets cut by comments, or None where that cannot be done."""
    spans = [match.span() for match in _UNCUT.finditer(data)]
    starts = [start for start, _ in spans]
    out: list[bytes] = []
    offset = 0
    for line in data.split(b"\r\n"):
        if len(line) > MAX_LINE:
            pieces = _html_pieces(line, offset, spans, starts)
            if pieces is None:
                return None
            out.append(b"<!--\r\n-->".join(pieces))
        else:
            out.append(line)
        offset += len(line) + len(b"\r\n")
    return b"\r\n".join(out)


def _html_pieces(line: bytes, offset: int, spans: list[tuple[int, int]], starts: list[int]) -> list[bytes] | None:
    """The line in pieces of at most _HTML_PIECE octets, each cut before a token and outside every span."""
    pieces: list[bytes] = []
    start = last_cut = 0
    for token in _TOKEN.finditer(line):
        at = offset + token.start()
        before = bisect.bisect_right(starts, at - 1) - 1  # the last span that starts before this token
        if before < 0 or spans[before][1] <= at:
            last_cut = token.start()
        if token.end() - start > _HTML_PIECE:
            if last_cut == start or token.end() - last_cut > _HTML_PIECE:
                return None  # a tag, comment or title longer than a line: nowhere to cut it unseen
            pieces.append(line[start:last_cut])
            start = last_cut
    pieces.append(line[start:])
    return pieces


def flowed_lines(data: bytes) -> bytes:
    """`data` (CRLF lines, ending in one) as format=flowed with delsp=yes: every line within 998 octets."""
    out: list[bytes] = []
    lines = data.split(b"\r\n")
    for line in lines[:-1]:
        line = line.rstrip(b" ")  # a line that ends in a space would be taken for a cut one
        while len(line) > _FLOWED_PIECE:
            cut = _FLOWED_PIECE
            while line[cut] & 0xC0 == 0x80 or line.startswith(b"--=_", cut):
                cut -= 1  # never inside a UTF-8 character, nor where the next line would read as a boundary
            out.append(_stuffed(line[:cut]) + b" ")
            line = line[cut:]
        out.append(_stuffed(line))
    out.append(lines[-1])
    return b"\r\n".join(out)


def _stuffed(line: bytes) -> bytes:
    return b" " + line if line.startswith(_STUFFED) else line
