"""Annual work plan text (工作计划) to sections and tasks; pure, no database."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Literal

from reminders.intake.deadlines import SIMPLIFY, find_deadline, normalise
from reminders.intake.plantext import PlanError, decode_plan, plan_text
from reminders.text import refusal

__all__ = ["ParsedPlan", "ParsedSection", "ParsedTask", "PlanError", "decode_plan", "parse_plan", "read_plan"]

MAX_LINE = 20_000
_NUMERALS = "一二三四五六七八九十"
_SECTION = re.compile(rf"([{_NUMERALS}]{{1,3}})\s*[、.．]\s*(.*)")
_SUB = re.compile(rf"[(（]\s*([{_NUMERALS}]{{1,3}})\s*[)）]\s*[、.．]?\s*(.*)")
_TASK = re.compile(r"(\d{1,9})\s*[.．、](?!\d)\s*(.*)")
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
    "主题词": "keywords", "有效性": "validity", "发布机关": "issuer", "所属机构": "issuer", "来源": "source",
    "信息来源": "source", "体裁分类": "genre", "组配分类": "topic", "服务对象分类": "audience", "公文种类": "genre",
    "主题": "topic", "关键词": "keywords", "生成日期": "written_on", "发文日期": "written_on", "索取号": "index_no",
    "统一编号": "index_no", "公开方式": "disclosure", "公开范围": "disclosure", "公开形式": "disclosure",
    "有效期": "validity", "时效": "validity", "时效性": "validity", "效力状况": "validity", "名称": "name",
    "浏览次数": "views", "访问量": "views", "字号": "font_size",
}  # fmt: skip
_META_PREFIX = re.compile(r"(?:\d{1,2}\s*[.．、]|[•·●▪◦])\s*")  # a numbered or bulleted metadata list
_BRACKETED = re.compile(r"[\[【［]\s*([^\]】］]{1,10}?)\s*[\]】］]\s*[:：]?\s*(.*)")
_LABEL = re.compile("(" + "|".join(sorted(_LABELS, key=len, reverse=True)) + r")\s*[:：]")
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_INDEX = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.\-]{5,}")
_DOC_NO = re.compile(r"[〔\[［【(（]\d{4}[〕\]］】)）]\s*\d+\s*号")
_BULLETS = "•·●▪◦"


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


def read_plan(path: str | Path, *, title: str | None = None, year: int | None = None) -> ParsedPlan:
    """Read a plan file (text in any encoding offices save, or .docx); `title` and `year` supply what it lacks."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PlanError(str(path), None, f"无法读取文件 (cannot read: {exc.strerror})") from exc
    return parse_plan(plan_text(data, str(path), _is_label), str(path), title=title, year=year)


def parse_plan(text: str, path: str = "<text>", *, title: str | None = None, year: int | None = None) -> ParsedPlan:
    """Sections and tasks of a plan text. `title` replaces the text's title line (or stands for a missing one);
    `year` the year found in the title or metadata; a plan with no year from either is refused."""
    if title is not None and (problem := refusal(title, single_line=True)):
        raise PlanError(path, None, f"计划标题（--title）{problem}")
    given_title = title.strip() if title and title.strip() else None
    lines = re.split(r"\r\n|\r|\n", text)
    metadata: dict[str, str] = {}
    sections: list[ParsedSection] = []
    drafts: list[_Draft] = []
    title, title_line = "", 0
    cur: _Draft | None = None
    sub: _Draft | None = None
    gap = body = titled = False
    for no, raw in enumerate(lines, 1):
        if len(raw) > MAX_LINE:
            raise PlanError(path, no, f"行过长：{len(raw)} 字符，上限 {MAX_LINE} (line too long)")
        s = raw.strip().strip("\ufeff\u200b").strip()
        key = s.translate(SIMPLIFY)
        if not s:
            gap = True
            continue
        if not body and _metadata(s, key, metadata, bullets=not titled):
            continue
        if not titled:
            titled = True
            if not (_SECTION.match(s) or _SUB.match(s) or _TASK.match(s)):
                title, title_line = s, no
                continue
            if given_title is None and not metadata.get("name"):
                raise PlanError(path, no, "缺少标题，文件以编号条目开头；请用 --title 给出计划标题 "
                                          "(no title line: give one with --title)")
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
    title = given_title or title or metadata.get("name", "")
    if not title:
        raise PlanError(path, len(lines), "缺少标题；请用 --title 给出计划标题 (no title: give one with --title)")
    tasks = [d for d in drafts if d.kind == "task"]
    if not tasks:
        titles = {s.number: s.title for s in sections}
        tasks = [d for d in drafts if not _preamble(titles.get(d.section, ""), _head_title(_join(d.parts)))]
    if not tasks:
        raise PlanError(path, title_line or None, f"标题“{title}”之后没有找到编号任务 (no tasks)")
    numbers = _numbers(path, tasks)
    if year is None and (year := _year(title, metadata)) is None:
        raise PlanError(path, title_line or None,
                        f"计划“{title}”的标题和元数据中都没有年份，请用 --year 指定 "
                        "(no year in the title or metadata: give --year)")
    return ParsedPlan(
        title=title,
        year=year,
        metadata=metadata,
        sections=tuple(sections),
        tasks=tuple(_task(d, n) for d, n in zip(tasks, numbers, strict=True)),
    )


def _is_footer(key: str, gap: bool) -> bool:
    """Page furniture after the tasks; a bare keyword counts only after a blank line, as text may wrap onto it."""
    return bool(_LABEL.match(key) or (_FOOTER.match(key) and (gap or re.search(r"[:：]", key))))


def _is_label(text: str) -> bool:
    return text.translate(SIMPLIFY).strip() in _LABELS


def _metadata(s: str, key: str, metadata: dict[str, str], *, bullets: bool) -> bool:
    """Take a header line into metadata; False when the line is not metadata.

    Portals publish it in several shapes: the seed's unlabelled bullets, `索引号：…` labels (several on a line),
    numbered or bulleted `[索引号] …` lists, and label/value cells pasted from a table (tab-separated).
    """
    if (m := _META_PREFIX.match(s)) and _is_metadata_text(s[m.end() :]):
        s = s[m.end() :]
        key = s.translate(SIMPLIFY)
    if (b := _BRACKETED.fullmatch(s)) and _is_label(b[1]):
        metadata.setdefault(_LABELS[b[1].translate(SIMPLIFY).strip()], _iso(b[2].strip()))
        return True
    cells = [c.strip() for c in s.split("\t") if c.strip()]
    if len(cells) >= 2 and len(cells) % 2 == 0 and all(_is_label(c.rstrip(":：")) for c in cells[0::2]):
        for label, value in zip(cells[0::2], cells[1::2], strict=True):
            metadata.setdefault(_LABELS[label.rstrip(":：").translate(SIMPLIFY)], _iso(value))
        return True
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


def _is_metadata_text(text: str) -> bool:
    """What follows a list number or bullet is metadata when it is a known label, bracketed or not."""
    b = _BRACKETED.fullmatch(text)
    return bool((b and _is_label(b[1])) or _LABEL.match(text.translate(SIMPLIFY)))


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
    """Through-numbered, restarting per section, or restarting per （一） level; anything else is an error.

    Each number must be the previous one plus 1, or 1 (a restart): a number that jumps (999 then 1001, or a
    line of text that happens to start with `2021、`) is refused naming its line, never merged into the task above.
    """
    for a, b in pairwise(tasks):
        if a.kind == b.kind == "task" and b.value not in (a.value + 1, 1):
            message = (f"任务编号 {b.value} 跟在第 {a.line} 行的 {a.value} 之后，既不连续也不是重新编号，"
                       f"应为 {a.value + 1} 或 1 (unexpected task number: expected {a.value + 1} or 1)")
            raise PlanError(path, b.line, message)
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
