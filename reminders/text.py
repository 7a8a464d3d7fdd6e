"""Which characters a text may hold, in one place, for everything people type or import.

Every note a unit or the office types and every imported cell ends up in the ledger, an XLSX file: XML 1.0 cannot
carry C0 controls other than tab, line feed and carriage return, lone surrogates, U+FFFE or U+FFFF, and one such
character makes the whole file unreadable (or its export fail). PostgreSQL refuses NUL in text. DEL and the C1
controls (U+007F–U+009F) are refused too: nobody types them, XML 1.0 discourages them, Excel shows them as boxes,
and they are what a file decoded in the wrong encoding is full of. Names and other single-line values also reach
mail headers (a unit's name is the display name of a To: address), where a line break would end the header, so a
single-line value may hold no line break of any kind (CR, LF, U+2028, U+2029, U+0085, VT, FF, U+001C–U+001E).

Input is refused naming the first offending character (`first_refused`, `refusal`); output written for people
(the ledger) replaces what rows stored before this rule may still hold (`writable`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Refused everywhere: outside XML 1.0's Char production, plus DEL and the C1 controls.
_REFUSED = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
# What str.splitlines() and mail headers treat as a line break (VT, FF, U+001C–U+001E and U+0085 are refused above).
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ONLY_IN_ONE_LINE = "\n\r\u2028\u2029"  # the line breaks free text may hold
_FREE_TEXT = re.compile(f"[{_REFUSED}]")
_SINGLE_LINE = re.compile(f"[{_REFUSED}{_ONLY_IN_ONE_LINE}]")
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class Offence:
    """The first character a text may not hold, and where: `position` counts characters from 1."""

    char: str
    position: int

    @property
    def code(self) -> str:
        return f"U+{ord(self.char):04X}"

    @property
    def line_break(self) -> bool:
        """Refused only because the value must be one line (any other character is refused in any text)."""
        return self.char in _ONLY_IN_ONE_LINE

    def message(self) -> str:
        """What is wrong, Chinese first; the caller puts the field (or file, row and column) in front."""
        if self.line_break:
            return (f"含有换行符 {self.code}（第 {self.position} 个字符），此处只能填一行 "
                    f"(line break {self.code} at character {self.position}: one line only)")
        return (f"含有非法字符 {self.code}（第 {self.position} 个字符），请删除后重试 "
                f"(character {self.code} at position {self.position} is not allowed)")


def first_refused(text: str, *, single_line: bool = False) -> Offence | None:
    """The first character `text` may not hold (with `single_line`, line breaks too), or None when all are fine."""
    found = (_SINGLE_LINE if single_line else _FREE_TEXT).search(text)
    return Offence(found[0], found.start() + 1) if found else None


def refusal(text: str, *, single_line: bool = False) -> str | None:
    """`first_refused`'s message, or None when the text is fine."""
    found = first_refused(text, single_line=single_line)
    return found.message() if found else None


def writable(text: str) -> str:
    """`text` with every character refused in free text replaced by U+FFFD, for output that must always open."""
    return _FREE_TEXT.sub(REPLACEMENT, text)
