"""A plan file's bytes to text: UTF-8, GB18030, UTF-16 (Notepad's "Unicode") or a Word/WPS .docx."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Callable, Iterator

from reminders.errors import ReminderError
from reminders.text import Offence, first_refused

_CJK = re.compile(r"[\u4e00-\u9fff]")
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x19\x1b-\x1f]")  # controls no text file holds: a binary file
_LINE_ENDS = re.compile(r"\r\n|\r|\n")  # as planparse splits lines
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .doc and .wps
_NUMBER_CELL = re.compile(r"\d{1,9}[.．、]?")


class PlanError(ReminderError):
    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}, line {line}: {message}" if line is not None else f"{path}: {message}")


def plan_text(data: bytes, path: str, is_label: Callable[[str], bool]) -> str:
    """The text of a plan file: a .docx (by its zip signature) or plain text in any encoding offices save;
    `is_label` tells a metadata label (索引号) in a .docx table cell."""
    if data.startswith(_ZIP_MAGIC):
        return docx_text(data, path, is_label)
    if data.startswith(_OLE_MAGIC):
        raise PlanError(path, None, "这是旧版 Word/WPS 文件（.doc/.wps），请另存为 .docx 或文本 "
                                    "(legacy .doc or .wps file: save it as .docx or text)")
    return decode_plan(data, path)


def decode_plan(data: bytes, path: str) -> str:
    if (utf16 := _utf16(data)) is not None:
        return _checked(_decode_utf16(data, utf16, path), path)
    if (nul := data.find(b"\x00")) >= 0:
        raise PlanError(path, data.count(b"\n", 0, nul) + 1, "含有 NUL 字节，不是文本文件 (binary file)")
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as utf8:
        if _CJK.search(body[: utf8.start].decode("utf-8")):
            line = body.count(b"\n", 0, utf8.start) + 1
            raise PlanError(path, line, "不是有效的 UTF-8 文本 (invalid UTF-8)") from None
        try:
            text = body.decode("gb18030")
        except UnicodeDecodeError as gb:
            line = body.count(b"\n", 0, gb.start) + 1
            raise PlanError(path, line, "无法按 UTF-8 或 GB18030 解码 (undecodable text)") from None
    return _checked(text, path)


def _checked(text: str, path: str) -> str:
    """Every line of a plan passes here: a page break (form feed, as Word's plain-text export writes one) is dropped;
    a line with a character the ledger or the database cannot carry is refused, naming the line and the character."""
    text = text.replace("\f", "")
    if m := _CONTROL.search(text):
        raise PlanError(path, _line_of(text, m.start()), "含有控制字符，不是文本文件 (binary file)")
    if found := first_refused(text):
        at = found.position - 1
        start = max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1
        in_line = Offence(found.char, at - start + 1)  # counted from the start of its line
        raise PlanError(path, _line_of(text, at), in_line.message())
    return text


def _line_of(text: str, at: int) -> int:
    """The line number of position `at`, counting lines as the parser does (CRLF, CR or LF ends one)."""
    return len(_LINE_ENDS.findall(text, 0, at)) + 1


def _utf16(data: bytes) -> str | None:
    """UTF-16 by its BOM, or without one when NULs crowd one side of the byte pairs (ASCII and line breaks of a
    Chinese text are enough: a NUL never appears in UTF-8 or GB18030 text)."""
    if data.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    if data.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    head = data[:4000]
    if len(head) < 4 or len(head) % 2 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > len(odd) // 8 and even.count(0) * 4 < odd.count(0):
        return "utf-16-le"
    if even.count(0) > len(even) // 8 and odd.count(0) * 4 < even.count(0):
        return "utf-16-be"
    return None


def _decode_utf16(data: bytes, encoding: str, path: str) -> str:
    body = data[2:] if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else data
    if len(body) % 2:
        raise PlanError(path, None, "UTF-16 文本的字节数为奇数，文件不完整 (truncated UTF-16 text)")
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as e:
        line = body[: e.start].decode(encoding, errors="replace").count("\n") + 1
        raise PlanError(path, line, "无法按 UTF-16 解码 (invalid UTF-16 text)") from None


def docx_text(data: bytes, path: str, is_label: Callable[[str], bool]) -> str:
    """The paragraphs and table cells of a .docx in document order, one line each.

    A table row whose cells alternate a short label and its value (a portal's 索引号 | 005252653/… | 主题分类 | 计划)
    becomes `label：value` lines, so the header reads like a labelled one; other cells are a line each.
    """
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        lines = list(_blocks(docx.Document(io.BytesIO(data)), is_label))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise PlanError(path, None, f"无法读取 Word 文件，请另存为 .docx 或文本 (damaged or not a .docx: {e})") from e
    except Exception as e:  # lxml and the zip reader raise many types for damaged files
        raise PlanError(path, None, f"无法读取 Word 文件 (damaged .docx: {type(e).__name__})") from e
    return _checked("\n".join(lines), path)


def _blocks(document: object, is_label: Callable[[str], bool]) -> Iterator[str]:
    from docx.document import Document
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    assert isinstance(document, Document)
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            yield block.text
        elif isinstance(block, Table):
            yield from _table_lines(block, is_label)


def _table_lines(table: object, is_label: Callable[[str], bool]) -> Iterator[str]:
    from docx.table import Table

    assert isinstance(table, Table)
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = cell.text.strip()
            if not cells or text != cells[-1]:  # a merged cell repeats itself across the columns it spans
                cells.append(text)
        cells = [c for c in cells if c]
        labels = [label.rstrip(":：") for label in cells[0::2]]
        if len(cells) >= 2 and len(cells) % 2 == 0 and all(map(is_label, labels)):
            yield from (f"{label}：{value}" for label, value in zip(labels, cells[1::2], strict=True))
        elif len(cells) >= 2 and _NUMBER_CELL.fullmatch(cells[0]):  # a task table: 序号 | 工作任务 | …
            yield f"{cells[0].rstrip('.．、')}．{cells[1]}"
            yield from cells[2:]
        else:
            for cell in cells:
                yield from cell.splitlines()
