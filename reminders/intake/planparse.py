"""Annual work plan text (工作计划) to sections and tasks; pure, no database."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Literal

from reminders.errors import ReminderError
from reminders.intake.deadlines import SIMPLIFY, find_deadline, normalise

MAX_LINE = 20_000
_NUMERALS = "一二三四五六七八九十"
_SECTION = re.compile(rf"([{_NUMERALS}]{{1,3}})\s*[、.．]\s*(.*)")
_SUB = re.compile(rf"[(（]\s*([{_NUMERALS}]{{1,3}})\s*[)）]\s*[、.．]?\s*(.*)")
_TASK = re.compile(r"(\d{1,3})\s*[.．、](?!\d)\s*(.*)")
_ITEM = re.compile(r"[(（]\s*\d{1,2}\s*[)）]|[①-⑳]|\d{1,2}\s*[)）]")
_UNITS = r"牵头单位|牵头部门|责任单位|责任部门|主责单位"
_ATTR = re.compile(rf"({_UNITS}|配合单位|协办单位|完成时限|完成时间|时间节点)\s*[:：]")
_UNIT_LABEL = re.compile(rf"(?:{_UNITS})\s*[:：]")
_BRACKET = re.compile(r"[（(]([^（）()]*(?:牵头|负责|责任单位)[^（）()]*)[)）]\s*[。.；;]?\s*$")
_FOOTER = re.compile(r"主办|承办|地址|邮编|联系电话|网站标识码|版权所有|ICP|附件|抄送|扫一扫|打印本页|关闭窗口")
_PREAMBLE = re.compile(r"总体要求|指导思想|基本原则|工作目标|总体目标|主要目标|总体思路|工作思路")
_PLAN_WORD = re.compile(r"计划|方案|要点|安排|规划")
_LABELS = {
    "索引号": "index_no", "发布机构": "issuer", "发文机关": "issuer", "发布单位": "issuer",
    "主题分类": "category", "信息分类": "category", "分类": "category", "类别": "category",
    "文号": "doc_no", "发文字号": "doc_no", "成文日期": "written_on", "成文时间": "written_on",
    "发布日期": "published_on", "发布时间": "published_on", "公开日期": "published_on",
    "主题词": "keywords", "有效性": "validity",
}  # fmt: skip
_LABEL = re.compile("(" + "|".join(sorted(_LABELS, key=len, reverse=True)) + r")\s*[:：]")
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_INDEX = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.\-]{5,}")
_DOC_NO = re.compile(r"[〔\[［【(（]\d{4}[〕\]］】)）]\s*\d+\s*号")
_BULLETS = "•·●▪◦"
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x19\x1b-\x1f]")


@dataclass(frozen=True)
class ParsedSection:
    number: int
    label: str
    title: str
    line: int


@dataclass(frozen=True)
class ParsedTask:
    number: str
    section: int
    subsection: str | None
    title: str
    text: str
    line: int
    suggested_lead: str | None
    suggested_deadline: str | None


@dataclass(frozen=True)
class ParsedPlan:
    title: str
    year: int | None
    metadata: dict[str, str]
    sections: tuple[ParsedSection, ...]
    tasks: tuple[ParsedTask, ...]


class PlanError(ReminderError):
    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}, line {line}: {message}" if line is not None else f"{path}: {message}")


@dataclass
class _Draft:
    """A numbered item while its lines are still being collected (hence mutable)."""

    kind: Literal["task", "sub"]
    value: int
    section: int
    ordinal: int
    sub: _Draft | None
    line: int
    parts: list[str]
    attrs: list[tuple[str, str, str]] = field(default_factory=list)  # (label, value, raw line)


def decode_plan(data: bytes, path: str) -> str:
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
    if m := _CONTROL.search(text):
        raise PlanError(path, text.count("\n", 0, m.start()) + 1, "含有控制字符，不是文本文件 (binary file)")
    return text


def read_plan(path: str | Path) -> ParsedPlan:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PlanError(str(path), None, f"无法读取文件 (cannot read: {exc.strerror})") from exc
    return parse_plan(decode_plan(data, str(path)), str(path))


def parse_plan(text: str, path: str = "<text>") -> ParsedPlan:
    lines = re.split(r"\r\n|\r|\n", text)
    metadata: dict[str, str] = {}
    sections: list[ParsedSection] = []
    drafts: list[_Draft] = []
    title, title_line = "", 0
    cur: _Draft | None = None
    sub: _Draft | None = None
    gap = body = False
    for no, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:
            raise PlanError(path, no, f"行过长：{len(raw)} 字符，上限 {MAX_LINE} (line too long)")
        s = raw.strip().strip("\ufeff\u200b").strip()
        key = s.translate(SIMPLIFY)
        if not s:
            gap = True
            continue
        if not body and _metadata(s, key, metadata, bullets=not title):
            continue
        if not title:
            if _SECTION.match(s) or _SUB.match(s) or _TASK.match(s):
                raise PlanError(path, no, "缺少标题，文件以编号条目开头 (no title)")
            title, title_line = s, no
            continue
        if body and _is_footer(key, gap):
            break
        if m := _SECTION.match(s):
            sections.append(ParsedSection(len(sections) + 1, m[1], _head_title(m[2]), no))
            cur = sub = None
            body = True
        elif m := _SUB.match(s):
            ordinal = 1 + sum(d.kind == "sub" and d.section == len(sections) for d in drafts)
            cur = sub = _Draft("sub", _cn_value(m[1]), len(sections), ordinal, None, no, [m[2]])
            drafts.append(sub)
            body = True
        elif m := _TASK.match(s):
            cur = _Draft("task", int(m[1]), len(sections), 0, sub, no, [m[2]])
            drafts.append(cur)
            body = True
        elif not body and no == title_line + 1 and not _PLAN_WORD.search(title) and _PLAN_WORD.search(s):
            title, title_line = title + s, no
        elif cur is not None and (m := _ATTR.match(key)):
            cur.attrs.append((m[1], s[m.end() :].strip(), s))
        elif cur is not None and (not gap or _ITEM.match(s)):
            cur.parts.append(s)
        else:
            cur = None
        gap = False
    if not title:
        raise PlanError(path, len(lines), "缺少标题 (no title)")
    tasks = [d for d in drafts if d.kind == "task"]
    if not tasks:
        titles = {s.number: s.title for s in sections}
        tasks = [d for d in drafts if not _preamble(titles.get(d.section, ""), _head_title(_join(d.parts)))]
    if not tasks:
        raise PlanError(path, title_line, f"标题“{title}”之后没有找到编号任务 (no tasks)")
    numbers = _numbers(path, tasks)
    return ParsedPlan(
        title=title,
        year=_year(title, metadata),
        metadata=metadata,
        sections=tuple(sections),
        tasks=tuple(_task(d, n) for d, n in zip(tasks, numbers, strict=True)),
    )


def _is_footer(key: str, gap: bool) -> bool:
    """Page furniture after the tasks; a bare keyword counts only after a blank line, as text may wrap onto it."""
    return bool(_LABEL.match(key) or (_FOOTER.match(key) and (gap or re.search(r"[:：]", key))))


def _metadata(s: str, key: str, metadata: dict[str, str], *, bullets: bool) -> bool:
    """Take a header line into metadata; False when the line is not metadata."""
    if bullets and s[0] in _BULLETS:
        s = s[1:].strip()
        key = s.translate(SIMPLIFY)
        if s and not _LABEL.match(key):
            _unlabelled(s, metadata)
            return True
    if _LABEL.match(key):
        found = list(_LABEL.finditer(key))
        for m, after in zip(found, [*found[1:], None], strict=True):
            value = s[m.end() : after.start() if after else len(s)].strip()
            metadata.setdefault(_LABELS[m[1]], _iso(value))
        return True
    if _DOC_NO.search(s) and len(s) <= 40 and "doc_no" not in metadata:
        metadata["doc_no"] = s
        return True
    return False


def _unlabelled(value: str, metadata: dict[str, str]) -> None:
    """The seed's bullets carry no labels: recognise each value by its shape."""
    if _DATE.fullmatch(value):
        name = next((k for k in ("written_on", "published_on") if k not in metadata), "")
    elif _INDEX.fullmatch(value):
        name = "index_no"
    elif _DOC_NO.search(value):
        name = "doc_no"
    elif len(value) <= 4:
        name = "category"
    else:
        name = "issuer"
    if not name or name in metadata:
        name = f"extra_{len(metadata) + 1}"
    metadata[name] = _iso(value)


def _iso(value: str) -> str:
    if m := _DATE.fullmatch(value):
        return f"{int(m[1]):04d}-{int(m[2]):02d}-{int(m[3]):02d}"
    return value


def _cn_value(label: str) -> int:
    return int(value) if (value := normalise(label)).isdigit() else 0


def _preamble(*titles: str) -> bool:
    return any(_PREAMBLE.fullmatch(t) for t in titles)


def _head_title(text: str) -> str:
    return re.split(r"[。：:]", text, maxsplit=1)[0].strip()


def _join(parts: list[str]) -> str:
    joined = ""
    for part in parts:
        if joined and part and joined[-1].isascii() and joined[-1].isalnum() and part[0].isascii():
            joined += " "
        joined += part
    return joined


def _numbers(path: str, tasks: list[_Draft]) -> list[str]:
    """Through-numbered, restarting per section, or restarting per （一） level; anything else is an error."""
    if all(b.value > a.value for a, b in pairwise(tasks)):
        return [str(t.value) for t in tasks]
    by_section = _backwards(tasks, lambda t: (t.section,))
    if by_section is None:
        return [f"{t.section}.{t.value}" for t in tasks]
    if _backwards(tasks, lambda t: (t.section, t.sub.ordinal if t.sub else 0)) is None:
        return [f"{t.section}.{t.sub.ordinal if t.sub else 0}.{t.value}" for t in tasks]
    a, b = by_section
    message = f"任务编号 {b.value} 跟在第 {a.line} 行的 {a.value} 之后，既不连续也不是重新编号 (numbers go backwards)"
    raise PlanError(path, b.line, message)


def _backwards(tasks: list[_Draft], scope: Callable[[_Draft], tuple[int, ...]]) -> tuple[_Draft, _Draft] | None:
    for a, b in pairwise(tasks):
        if b.value <= a.value and (scope(a) == scope(b) or b.value != 1):
            return a, b
    return None


def _task(draft: _Draft, number: str) -> ParsedTask:
    paragraph = _join(draft.parts)
    bracket = _BRACKET.search(paragraph.translate(SIMPLIFY))
    head = paragraph[: bracket.start()] if bracket else paragraph
    title = head.split("。", 1)[0].strip() if "。" in head else head.strip().rstrip("；;，,")
    text = "\n".join([paragraph, *(raw for _, _, raw in draft.attrs)]) if draft.attrs else paragraph
    return ParsedTask(
        number=number,
        section=draft.section,
        subsection=_head_title(_join(draft.sub.parts)) if draft.sub else None,
        title=title,
        text=text,
        line=draft.line,
        suggested_lead=_lead(paragraph, draft.attrs, bracket),
        suggested_deadline=next(
            (v for label, v, _ in draft.attrs if label.startswith(("完成", "时间")) and v), None
        ) or find_deadline(paragraph),
    )  # fmt: skip


def _lead(paragraph: str, attrs: list[tuple[str, str, str]], bracket: re.Match[str] | None) -> str | None:
    for wanted in ("牵头", "责任", "主责"):
        for label, value, _ in attrs:
            if label.startswith(wanted) and (unit := _first_unit(value)):
                return unit
    key = paragraph.translate(SIMPLIFY)
    if m := _UNIT_LABEL.search(key):
        return _first_unit(re.split(r"[。；;)）]", paragraph[m.end() :], maxsplit=1)[0])
    if bracket is None:
        return None
    start = bracket.start(1)
    clauses = [(start + c.start(), c.group()) for c in re.finditer(r"[^，,；;]+", bracket[1])]
    for word in ("牵头", "负责"):
        for offset, clause in clauses:
            if (at := clause.find(word)) > 0:
                unit = _first_unit(paragraph[offset : offset + at].removeprefix("由"))
                if unit and not unit.startswith("各"):
                    return unit
    return None


def _first_unit(value: str) -> str | None:
    units = [u.strip().removesuffix("等") for u in re.split(r"[、，,；;/\s]+", value)]
    return next((u for u in units if u), None)


def _year(title: str, metadata: dict[str, str]) -> int | None:
    if m := re.search(r"(\d{4})年", normalise(title)):
        return int(m[1])
    for name in ("written_on", "published_on"):
        if re.fullmatch(r"\d{4}-\d\d-\d\d", metadata.get(name, "")):
            return int(metadata[name][:4])
    return None
