"""Deadline phrases (完成时限) from a work plan, turned into dates."""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from reminders.errors import ReminderError
from reminders.workdays import DEFAULT, WorkCalendar

DeadlineKind = Literal["date", "ongoing", "recurring", "inferred"]

_PAIRS = (
    "號号 發发 佈布 機机 構构 題题 類类 牽牵 頭头 單单 責责 時时 間间 節节 點点 劃划 計计 內内 長长 堅坚 "
    "續续 進进 態态 於于 與与 個个 門门 負负 務务 辦办 關关 會会 廳厅 縣县 區区 級级 協协 項项 規规 總总 "
    "結结 報报 週周 後后 實实 現现 執执 據据 導导 處处 網网 標标 準准 歸归 開开 論论 織织 黨党 設设"
)
SIMPLIFY = str.maketrans({pair[0]: pair[1] for pair in _PAIRS.split()})
"""Traditional → Simplified for the characters plan keywords use; one character for one, so offsets hold."""

_CN_DIGITS = {"〇": 0, "○": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_RUN = re.compile("[〇○零一二三四五六七八九十]+")
_LEADING = ("要求", "截止到", "截至", "截止", "于", "在", "到", "至")
_TRAILING = ("完成", "以前", "之前", "前", "为止", "止", "。", ".", ",", ";")
_ONGOING = frozenset({"长期坚持", "持续推进", "常态化", "长期", "持续", "持续开展", "常态化推进", "长期推进"})
_YEAR_WORDS = frozenset(
    {"年底", "年末", "年内", "全年", "本年度", "本年", "今年", "今年内", "今年底", "年度内", "本年内", "年度"}
)
_RECURRING = re.compile(r"每(?:月|季度|季|半年|年|周)(?P<rest>.*)")
_SPLIT = re.compile(r"[、,;和及与]")
_Y = r"(?:(?P<y>\d{4})年)?"
# A spreadsheet date cell with a time of day arrives as "2021-06-30 14:30:00"; the time is dropped.
_ISO = re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})日?(?:T?\d{1,2}:\d{2}(?::\d{2})?)?")
_DAY = re.compile(_Y + r"(?P<m>\d{1,2})月(?P<d>\d{1,2})[日号]")
_DEKAD = re.compile(_Y + r"(?P<m>\d{1,2})月(?P<x>上旬|中旬|下旬)")
_MONTH = re.compile(_Y + r"(?P<m>\d{1,2})月份?(?:底|末)?")
_HALF = re.compile(_Y + r"(?P<h>[上下])半年(?:末|底)?")
_QUARTER = re.compile(_Y + r"第?(?P<q>[1-4])季度?(?:末|底)?")
_YEAR = re.compile(r"(?P<y>\d{4})年(?:底|末|内|度|度内)?")
# 3个工作日内, 交办后三个工作日内完成, 自交办之日起5个工作日内, 收到后2个工作日以内: counted from the 交办 date.
_FROM_ASSIGNED = r"(?:自?交办(?:之日)?[起后]|收到(?:通知)?后)?"
_WORKDAYS = re.compile(_FROM_ASSIGNED + r"(?P<n>\d+)个?工作日(?:以?内)?")
# 5日内, 交办后5天内, 10个自然日内: calendar days from the 交办 date. 内 is required: "5日前" alone is a day of a month.
_DAYS = re.compile(_FROM_ASSIGNED + r"(?P<n>\d+)(?:日|天|个?自然日|个?日历日)以?内")
_MOST_WORKDAYS = 366

_INLINE_DATE = r"(?:\d{4}年)?\d{1,2}月(?:\d{1,2}[日号]|上旬|中旬|下旬|份)?"
_INLINE = re.compile(
    rf"{_INLINE_DATE}(?:[、和及]{_INLINE_DATE})*(?:底|末)?(?:前|以前|之前)?"
    r"|年底前|年底|年内|[上下]半年|第?[一二三四1-4]季度末?"
)


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    due: date | None
    text: str
    milestones: tuple[date, ...] = ()


class DeadlineError(ReminderError, ValueError):
    pass


class NoAssignedDate(DeadlineError):
    """A phrase counted from the 交办 date (3个工作日内, 5日内) without one."""


def normalise(phrase: str) -> str:
    """NFKC, Simplified keywords, no whitespace, Chinese numerals as arabic digits."""
    folded = unicodedata.normalize("NFKC", phrase).translate(SIMPLIFY)
    return _CN_RUN.sub(lambda m: _cn_number(m.group()), re.sub(r"\s+", "", folded))


def _cn_number(run: str) -> str:
    if "十" not in run:
        return "".join(str(_CN_DIGITS[ch]) for ch in run)
    tens, _, units = run.partition("十")
    if len(tens) > 1 or len(units) > 1 or "十" in units or "零" in tens + units:
        return run
    return str((_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[units] if units else 0))


def _strip(s: str) -> str:
    previous = None
    while s != previous:
        previous = s
        for word in _LEADING:
            s = s.removeprefix(word)
        for word in _TRAILING:
            s = s.removesuffix(word)
    return s


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _single(s: str, year: int) -> tuple[date, int] | None:
    """One date, and the year it used so that later dates in a list inherit it."""
    if s in _YEAR_WORDS:
        return date(year, 12, 31), year
    if m := _YEAR.fullmatch(s):
        return date(int(m["y"]), 12, 31), int(m["y"])
    for pattern in (_ISO, _DAY, _DEKAD, _MONTH, _HALF, _QUARTER):
        if m := pattern.fullmatch(s):
            break
    else:
        return None
    y = int(m["y"]) if m["y"] else year
    if pattern is _HALF:
        return date(y, 6, 30) if m["h"] == "上" else date(y, 12, 31), y
    if pattern is _QUARTER:
        return _month_end(y, int(m["q"]) * 3), y
    month = int(m["m"])
    if not 1 <= month <= 12:
        raise ValueError(month)
    if pattern is _DEKAD:
        return (_month_end(y, month) if m["x"] == "下旬" else date(y, month, 10 if m["x"] == "上旬" else 20)), y
    if pattern is _MONTH:
        return _month_end(y, month), y
    return date(y, month, int(m["d"])), y


def _dates(s: str, year: int, text: str) -> list[date]:
    found: list[date] = []
    for part in _SPLIT.split(s):
        try:
            one = _single(_strip(part), year)
        except ValueError:
            raise DeadlineError(f"完成时限中的日期不存在 “{text}” (no such date)") from None
        if one is None:
            raise DeadlineError(f"无法识别的完成时限 “{text}” (unknown deadline phrase)")
        found.append(one[0])
        year = one[1]
    return found


def parse_deadline(phrase: str, year: int, assigned: date | None = None,
                   calendar: WorkCalendar | None = None) -> Deadline:
    """The phrase as a Deadline; `year` completes dates without one. `N个工作日内` needs the 交办 date `assigned`
    and counts working days of `calendar` (default: the Chinese calendar with 调休) after it; `N日内` / `N天内`
    needs it too and counts calendar days."""
    text = phrase.strip()
    s = _strip(normalise(text))
    if not s:
        return Deadline("inferred", date(year, 12, 31), text)
    if m := _WORKDAYS.fullmatch(s):
        return _in_workdays(int(m["n"]), text, assigned, calendar or DEFAULT)
    if m := _DAYS.fullmatch(s):
        return _in_days(int(m["n"]), text, assigned)
    if s in _ONGOING:
        return Deadline("ongoing", None, text)
    if m := _RECURRING.fullmatch(s):
        named = re.search(r"\((.+)\)", m["rest"])
        milestones = tuple(sorted(_dates(named[1], year, text))) if named else ()
        return Deadline("recurring", date(year, 12, 31), text, milestones)
    found = sorted(_dates(s, year, text))
    return Deadline("date", found[-1], text, tuple(found) if len(found) > 1 else ())


def _in_workdays(n: int, text: str, assigned: date | None, calendar: WorkCalendar) -> Deadline:
    return Deadline("date", calendar.add_workdays(_counted_from(n, text, assigned, "按工作日", "in working days"),
                                                  n), text)


def _in_days(n: int, text: str, assigned: date | None) -> Deadline:
    return Deadline("date", _counted_from(n, text, assigned, "按日历天数", "in calendar days") + timedelta(days=n),
                    text)


def _counted_from(n: int, text: str, assigned: date | None, how: str, how_en: str) -> date:
    """The 交办 date a count of `n` days starts from; the day of the assignment itself is not counted."""
    if not 1 <= n <= _MOST_WORKDAYS:
        raise DeadlineError(f"完成时限 “{text}” 的天数应在 1–{_MOST_WORKDAYS} 之间 "
                            f"(the number of days must be 1–{_MOST_WORKDAYS})")
    if assigned is None:
        raise NoAssignedDate(f"完成时限 “{text}” 从交办日期起{how}计算，但缺少交办日期；请在“交办日期”列填写，"
                            f"或写明具体日期，如 6月30日前 (counted {how_en} from the assignment date, which is "
                            "missing: fill in a 交办日期 column or give a date instead)")
    return assigned


def find_deadline(text: str) -> str | None:
    """The first phrase inside free task text that parse_deadline accepts, as written."""
    for m in _INLINE.finditer(text.translate(SIMPLIFY)):
        phrase = text[m.start() : m.end()]
        try:
            parse_deadline(phrase, 2000)
        except DeadlineError:
            continue
        return phrase
    return None
