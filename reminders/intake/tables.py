"""Read the CSV/XLSX tables users hand in into validated rows; every failure is a `TableError`."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import islice
from pathlib import Path

import openpyxl

from reminders.addresses import parse_emails
from reminders.errors import ReminderError
from reminders.text import LINE_BREAKS, first_refused, writable

__all__ = ["Column", "Table", "TableError", "TableErrors", "TableRow", "parse_day", "parse_emails", "read_table",
           "split_list"]

HEADER_SEARCH_ROWS = 10
_DELIMITERS = (",", ";", "\t")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other OLE2 files)
_EDGE_SPACE = re.compile(r"^[\s\u200b\ufeff]+|[\s\u200b\ufeff]+$")
_LIST_SEPARATORS = re.compile(r"[、，,;；]")
MAX_ERRORS = 50
_FOOTNOTE = re.compile(r"(?:注|备注|说明)\s*\d*\s*(?:[:：、.．]|$)")
_HEADING = re.compile(r"[一二三四五六七八九十]+\s*[、.．]|[(（]\s*[一二三四五六七八九十]+\s*[)）]")
_TITLE_END = re.compile(r"(?:表|名单|清单|方案|计划|台账|目录)$")
_SENTENCE = re.compile(r"[。；：:]")
# A day in a cell: 2021-03-01, 2021/3/1, 2021.3.1, 2021年3月1日, 3月1日 (an XLSX date cell arrives as ISO text,
# with " 00:00:00" only when it carries a time of day); 起/开始 after it are the way a 开始日期 is often written.
_DAY_CELL = re.compile(r"(?:(?P<y>\d{4})[-/.年])?(?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})[日号]?"
                       r"(?:\d{1,2}:\d{2}(?::\d{2})?)?(?:起|开始)?")

Record = tuple[int, list[str]]  # (row number as the user sees it, cell texts)
Header = tuple[int, list[tuple[str, int, str]]]  # (row number, [(field, position, header as written)])


@dataclass(frozen=True)
class Column:
    field: str
    headers: tuple[str, ...]
    required: bool = True


@dataclass(frozen=True)
class TableRow:
    number: int
    values: dict[str, str]


class TableError(ReminderError):
    def __init__(self, path: str, message: str, row: int | None = None, column: str | None = None) -> None:
        super().__init__(path, message, row, column)
        self.path, self.message, self.row, self.column = path, message, row, column

    def __str__(self) -> str:
        parts = (("row", self.row), ("column", self.column))
        where = [self.path, *(f"{name} {value}" for name, value in parts if value is not None)]
        return f"{', '.join(where)}: {self.message}"


class TableErrors(TableError):
    """Every error of a table found in one run, in row order; the first 50 are listed, then how many more."""

    def __init__(self, errors: Sequence[TableError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.message, first.row, first.column)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        lines = [f"{self.path}：共 {len(self.errors)} 处错误，未导入任何内容 "
                 f"({len(self.errors)} errors; nothing was imported)"]
        lines += [f"  {TableError.__str__(e)}" for e in self.errors[:MAX_ERRORS]]
        if len(self.errors) > MAX_ERRORS:
            more = len(self.errors) - MAX_ERRORS
            lines.append(f"  …另有 {more} 处错误未列出 (…and {more} more)")
        return "\n".join(lines)


def raise_errors(errors: Sequence[TableError]) -> None:
    """Raise the table's errors, if any: one alone as itself, several together, sorted by row."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise TableErrors(sorted(errors, key=lambda e: e.row or 0))


@dataclass(frozen=True)
class Table:
    path: str
    headers: dict[str, str]
    rows: tuple[TableRow, ...]
    errors: tuple[TableError, ...] = ()  # rows refused as read (left out of `rows`); see read_table's `collect`
    skipped: tuple[tuple[int, str], ...] = ()  # (row, text): footnotes, titles and headings between the rows

    def error(self, row: TableRow, field: str, message: str) -> TableError:
        return TableError(self.path, message, row=row.number, column=self.headers.get(field, field))


def read_table(path: str | Path, columns: Sequence[Column], *, sheet: str | None = None,
               collect: bool = False) -> Table:
    """Read a .csv, .xlsx or .xlsm table; `sheet` picks a worksheet by name (ignored for CSV).

    Rows with a bad cell raise every such error at once, or with `collect` are left in `Table.errors` for the
    caller to add its own checks to (and raise them all, with `raise_errors`).
    """
    table = _read(path, columns, sheet)
    if not collect:
        raise_errors(table.errors)
    return table


def _read(path: str | Path, columns: Sequence[Column], sheet: str | None) -> Table:
    shown, file = str(path), Path(path)
    index = _header_index(columns)
    suffix = file.suffix.lower()
    try:
        if not file.exists():
            raise TableError(shown, "文件不存在 (file not found)")
        if not file.is_file():
            raise TableError(shown, "不是文件 (not a file)")
        if suffix == ".csv":
            encoding = _csv_encoding(file)
            delimiter = max(_DELIMITERS, key=lambda d: _sniff_score(file, shown, encoding, d, index))
            with closing(_csv_records(file, shown, encoding, delimiter)) as records:
                return _build(shown, records, columns, index)
        if suffix in (".xlsx", ".xlsm"):
            with closing(_xlsx_records(file, shown, sheet)) as records:
                return _build(shown, records, columns, index)
    except OSError as e:
        raise TableError(shown, f"无法读取文件 (cannot read the file: {e.strerror or e})") from e
    raise TableError(shown, f"不支持的文件类型 “{file.suffix}” (unsupported file type; use .xlsx or .csv)")


def split_list(value: str) -> list[str]:
    return [item for item in (_strip(part) for part in _LIST_SEPARATORS.split(value)) if item]


def parse_day(text: str, year: int) -> date:
    """A calendar day written in a cell; a day without a year is in `year` (the plan's). ValueError if it is not
    one (the message says what is expected, Chinese first)."""
    m = _DAY_CELL.fullmatch(re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)))
    try:
        if m is None:
            raise ValueError(text)
        return date(int(m["y"] or year), int(m["m"]), int(m["d"]))
    except ValueError:
        raise ValueError(f"无法识别的日期 “{text}”，应为日期，如 2021-03-01 或 3月1日 "
                         f"(not a date; write it like 2021-03-01)") from None


def _strip(text: str) -> str:
    return _EDGE_SPACE.sub("", text)


def _header_key(text: str) -> str:
    key = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()
    return re.sub(r"^\*+|(?:\*|\(必填\))+$", "", key)  # "单位名称（必填）*", "*邮箱"


def _header_index(columns: Sequence[Column]) -> dict[str, str]:
    index: dict[str, str] = {}
    for column in columns:
        if not column.headers or not all(map(_header_key, column.headers)):
            raise ValueError(f"column {column.field!r} needs non-blank headers")
        for header in column.headers:
            key = _header_key(header)
            if index.setdefault(key, column.field) != column.field:
                raise ValueError(f"header {header!r} is accepted by both {index[key]!r} and {column.field!r}")
    return index


def _find_header(records: Iterable[Record], index: dict[str, str]) -> Header | None:
    for number, cells in islice(records, HEADER_SEARCH_ROWS):
        matches = [
            (index[key], i, " ".join(cell.split()))
            for i, cell in enumerate(cells)
            if (key := _header_key(cell)) in index
        ]
        if matches:
            return number, matches
    return None


def _build(shown: str, records: Iterator[Record], columns: Sequence[Column], index: dict[str, str]) -> Table:
    found = _find_header(records, index)
    if found is None:
        expected = "; ".join("/".join(c.headers) for c in columns if c.required)
        raise TableError(shown, f"找不到表头 (no header row in the first 10 rows; expected: {expected})")
    header_row, matches = found
    positions: dict[str, int] = {}
    headers: dict[str, str] = {}
    for field, position, written in matches:
        if field in headers:
            raise TableError(shown, f"与 “{headers[field]}” 重复 (duplicate column)", header_row, written)
        positions[field], headers[field] = position, written
    missing = [c for c in columns if c.required and c.field not in headers]
    if missing:
        names = "、".join(f"“{c.headers[0]}”" for c in missing)
        accepted = "; ".join(", ".join(c.headers) for c in missing)
        raise TableError(
            shown, f"缺少必填列 {names} (missing required column; accepted: {accepted})", header_row
        )
    rows: list[TableRow] = []
    errors: list[TableError] = []
    skipped: list[tuple[int, str]] = []
    in_note = False  # a footnote may go on over rows of one cell: "注：1.…", "2.…"
    for number, cells in records:
        texts = [_strip(cell) for cell in cells]
        filled = [text for text in texts if text]
        if not filled:
            continue
        in_note = bool(_FOOTNOTE.match(filled[0])) or (in_note and len(filled) == 1)
        if in_note or (len(filled) == 1 and _between_rows(filled[0])):
            skipped.append((number, writable(filled[0])))  # only shown, never stored
            continue
        values: dict[str, str] = {}
        for column in columns:
            at = positions.get(column.field)
            text = texts[at] if at is not None and at < len(texts) else ""
            if refused := first_refused(text, single_line=True):  # every stored cell passes here
                message = "单元格内有换行 (line break in cell)" if refused.char in LINE_BREAKS else refused.message()
                errors.append(TableError(shown, message, number, headers[column.field]))
            elif column.required and not text:
                errors.append(TableError(shown, "必填项为空 (required value is empty)", number, headers[column.field]))
            values[column.field] = text
        if not errors or errors[-1].row != number:
            rows.append(TableRow(number, values))
    return Table(shown, headers, tuple(rows), tuple(errors), tuple(skipped))


def _between_rows(text: str) -> bool:
    """A row of one cell that is not data: a merged title (…任务分解表), a heading (一、…) or a note in sentences."""
    return bool(_HEADING.match(text) or _TITLE_END.search(text) or _SENTENCE.search(text))


def _sniff_score(file: Path, shown: str, encoding: str, delimiter: str, index: dict[str, str]) -> int:
    """How many known columns the header row names when split by `delimiter`; ties go to the earlier one."""
    with closing(_csv_records(file, shown, encoding, delimiter)) as records:
        found = _find_header(records, index)
    return len({field for field, _, _ in found[1]}) if found else 0


def _csv_encoding(file: Path) -> str:
    """UTF-8 (BOM or not) if every line decodes, else GB18030 — what Excel in China saves."""
    with file.open("rb") as f:
        try:
            for line in f:
                line.decode("utf-8")
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8"


def _csv_lines(file: Path, shown: str, encoding: str) -> Generator[str]:
    # Decoding line by line (b"\n" is never part of a UTF-8 or GB18030 sequence) gives exact line numbers.
    with file.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                text = line.decode(encoding)
            except UnicodeDecodeError as e:
                raise TableError(shown, "无法识别编码，请存为 UTF-8 或 GBK (cannot decode)", number) from e
            yield text.removeprefix("\ufeff") if number == 1 else text


def _csv_records(file: Path, shown: str, encoding: str, delimiter: str) -> Generator[Record]:
    with closing(_csv_lines(file, shown, encoding)) as lines:
        reader = csv.reader(lines, delimiter=delimiter)
        start = 1  # the line where the record starts; a quoted field may span lines
        try:
            for cells in reader:
                yield start, cells
                start = reader.line_num + 1
        except csv.Error as e:
            raise TableError(shown, f"CSV 格式错误 (malformed CSV: {e})", start) from e


def _xlsx_records(file: Path, shown: str, sheet: str | None) -> Generator[Record]:
    with file.open("rb") as f:
        if f.read(len(_OLE_MAGIC)) == _OLE_MAGIC:
            raise TableError(shown, "这是旧版 .xls 文件，请另存为 .xlsx (legacy .xls file; save it as .xlsx)")
        f.seek(0)
        try:  # openpyxl raises a zoo of exception types for damaged files
            workbook = openpyxl.load_workbook(f, read_only=True, data_only=True)
        except Exception as e:
            raise TableError(shown, f"无法读取 Excel 文件 (damaged or not an .xlsx file: {e})") from e
        try:
            sheets = {ws.title: ws for ws in workbook.worksheets}
            name = sheet if sheet is not None else next(iter(sheets), None)
            if name is None or name not in sheets:
                listed = ", ".join(sheets) or "none"
                raise TableError(shown, f"找不到工作表 “{name or ''}” (no such sheet; sheets: {listed})")
            worksheet = sheets[name]
            worksheet.reset_dimensions()  # some writers record a wrong size; read every row that is there
            try:
                for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                    yield number, [_cell_text(value) for value in values]
            except Exception as e:
                raise TableError(shown, f"无法读取 Excel 文件 (damaged worksheet: {e})") from e
        finally:
            workbook.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"  # 15 digits, as Excel shows
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)
