"""A leader's digest (督办汇总), built to be read in ten seconds: the summary sentence and bar, the trend of the last
cycles, the units ranked, the overdue tasks, the units that did not report, the 通报; the 工作台账 attached for
leaders who see every task.

What is the same for every leader is worked out once per cycle: the year's reports for the trend (one query), the
通报, and the ledger's bytes, which every all-scope leader's draft shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.mail.context import Office, mail_line
from reminders.mail.draft import Draft
from reminders.mail.mime import Attachment
from reminders.store.models import Leader, Unit
from reminders.tracking.bulletin import Bulletin, bulletin
from reminders.tracking.cycles import report_by
from reminders.tracking.status import LoadedPlan, PlanStatus, TaskLine, awaiting_report
from reminders.tracking.summary import Summary, summarise
from reminders.tracking.trend import TrendPoint, UnitFigures, load_year, rate, since_first_report, trend
from reminders.vocabulary import SETTLED, STATES, TaskState

if TYPE_CHECKING:
    from reminders.tracking.ledger import PendingSheet
    from reminders.workdays import WorkCalendar

# The part of a leader's title a salutation keeps: 驻局纪检监察组组长 → 陈静组长 (the longest of these it ends with).
SALUTATION_TITLES = ("副局长", "局长", "副组长", "组长", "副主任", "主任", "副书记", "书记", "副处长", "处长",
                     "部长", "主席")
LIST_LIMIT = 100  # a digest names at most this many overdue tasks, due-soon tasks and silent units; counts are whole
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MB = 1 << 20  # a megabyte as file managers and `[digest] ledger_max_mb` count it

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitNotReported:
    name: str
    tasks: tuple[str, ...]  # task numbers it owns in the digest's scope


@dataclass(frozen=True)
class LedgerLeftOut:
    """The 工作台账 a digest does not attach because its file is larger than `[digest] ledger_max_mb`: a relay
    refuses a message over its size limit whole, and the leader would get no digest at all."""

    filename: str
    size: str  # "13.2 MB", "8.5 KB"
    limit: str  # "6 MB"


@dataclass(frozen=True)
class RankRow:
    """A unit's place in a ranking: `rank` shared by ties (1, 1, 3), `change` against last cycle's place."""

    rank: int
    name: str
    figure: str  # "3/4（75%）" reported on time, or "2" overdue tasks
    change: str  # "↑2", "↓1", "—" (same place, or not ranked last cycle)


@dataclass(frozen=True)
class DigestContext:
    leader: str
    leader_title: str  # as the salutation says it (short_title): 陈静组长
    scope: Literal["own", "all"]
    cycle: str
    as_of: date
    report_by: date
    office: Office
    total: int
    counts: dict[TaskState, int]  # every state present, in the order of vocabulary.STATES
    overdue: tuple[TaskLine, ...]  # mail lines (context.mail_line): with their working days left
    due_soon: tuple[TaskLine, ...]  # mail lines too
    not_reported: tuple[UnitNotReported, ...]  # units that did not report on some or all of their lead tasks
    tasks: tuple[TaskLine, ...] = field(default=())  # every task in scope, as status has it
    not_reported_total: int = 0  # the lists above are cut at a readable length; counts hold the totals
    summary: Summary | None = None
    trend: tuple[TrendPoint, ...] = ()  # oldest first, this cycle last
    on_time_ranking: tuple[RankRow, ...] = ()
    overdue_ranking: tuple[RankRow, ...] = ()
    reported_nothing: tuple[UnitNotReported, ...] = ()  # none of their lead tasks reported this cycle
    reported_some: tuple[UnitNotReported, ...] = ()  # some reported; the numbers are those still missing
    bulletin: Bulletin | None = None  # the cycle's 通报 (批评 / 表扬)
    attachment: str | None = None  # the attached ledger's file name
    ledger_left_out: LedgerLeftOut | None = None  # the ledger that was too large to attach


def start_ledger(session: Session, config: Config, status: PlanStatus,
                 leaders: Sequence[Leader]) -> PendingSheet | None:
    """The ledger the digests of `status`'s day attach, begun before any message is built, so that a large plan's
    workbook is made while the cycle renders its reminders; None when no digest attaches it."""
    if not config.digest.attach_ledger or not any(leader.scope == "all" for leader in leaders):
        return None
    # Lazy: the spreadsheet library is loaded only by a run that attaches the ledger (.importlinter's
    # no-spreadsheets-in-sending contract names this one exception).
    from reminders.tracking.ledger import start_ledger_xlsx

    return start_ledger_xlsx(session, config, status.as_of, status)


def digest_drafts(session: Session, config: Config, status: PlanStatus, loaded: LoadedPlan, units: Sequence[Unit],
                  leaders: Sequence[Leader], cycle: str, office: Office,
                  pending: PendingSheet | None = None) -> Iterator[Draft]:
    """Each leader's digest of the tasks in their scope (all, or those they are 责任领导 of); none for a leader
    with no task."""
    work = config.calendar.work_calendar
    by = report_by(config, cycle)
    unit_names = {unit.id: unit.name for unit in units}
    by_leader: dict[str | None, list[TaskLine]] = {}
    for line in status.lines:
        by_leader.setdefault(line.leader, []).append(line)
    year = load_year(session, config, loaded, cycle, status.as_of)
    notice = bulletin(session, config, cycle, status.as_of, status, loaded)
    shown_notice = notice if notice.criticised or notice.praised else None
    ledger: Attachment | LedgerLeftOut | None = None
    all_points: tuple[TrendPoint, ...] | None = None
    for leader in leaders:
        scope: Literal["own", "all"] = "all" if leader.scope == "all" else "own"
        lines: Sequence[TaskLine] = status.lines if scope == "all" else by_leader.get(leader.name, [])
        if not lines:
            continue
        attachments: tuple[Attachment, ...] = ()
        if scope == "all" and config.digest.attach_ledger:
            if ledger is None:  # made once, for the first leader who gets it, and shared
                if pending is None or pending.as_of != status.as_of:
                    pending = start_ledger(session, config, status, leaders)
                    assert pending is not None
                ledger = _ledger_or_note(config, f"工作台账-{cycle}.xlsx", pending.result())
            attachments = (ledger,) if isinstance(ledger, Attachment) else ()
        if scope == "all":
            if all_points is None:  # the same for every leader of 全部
                all_points = since_first_report(year, trend(year))
            points = all_points
        else:
            points = since_first_report(year, trend(year, {line.number for line in lines}))
        counts = dict.fromkeys(STATES, 0)
        for line in lines:
            counts[line.state] += 1
        waiting = awaiting_report(status, lines)
        not_reported = tuple(UnitNotReported(unit_names[unit_id], tuple(line.number for line in missing))
                             for unit_id, missing in waiting.items())
        asked = _asked(status, lines)
        nothing = tuple(u for u, unit_id in zip(not_reported, waiting, strict=True)
                        if len(waiting[unit_id]) >= asked.get(unit_id, 0))
        silent = set(nothing)
        some = tuple(u for u in not_reported if u not in silent)
        context = DigestContext(
            leader.name, short_title(leader.title), scope, cycle, status.as_of, by, office, len(lines), counts,
            _most_urgent(lines, TaskState.OVERDUE, work, status.as_of),
            _most_urgent(lines, TaskState.DUE_SOON, work, status.as_of),
            not_reported[:LIST_LIMIT], tuple(lines), len(not_reported),
            summary=summarise(lines, points[-1], status.as_of), trend=points,
            on_time_ranking=_ranking(points, unit_names, _on_time_key, _on_time_figure),
            overdue_ranking=_ranking(points, unit_names, _overdue_key, lambda f: str(f.overdue)),
            reported_nothing=nothing[:LIST_LIMIT], reported_some=some[:LIST_LIMIT], bulletin=shown_notice,
            attachment=attachments[0].filename if attachments else None,
            ledger_left_out=ledger if scope == "all" and isinstance(ledger, LedgerLeftOut) else None,
        )
        yield Draft("digest", cycle, f"leader:{leader.id}", leader.name, tuple(leader.addresses), context,
                    steps=notice.steps, attachments=attachments)


def _ledger_or_note(config: Config, filename: str, workbook: bytes) -> Attachment | LedgerLeftOut:
    limit = config.digest.ledger_max_mb
    if len(workbook) <= limit * MB:
        return Attachment(filename, XLSX, workbook)
    size = f"{len(workbook) / MB:.1f} MB" if len(workbook) >= MB else f"{len(workbook) / 1024:.1f} KB"
    left_out = LedgerLeftOut(filename, size, f"{limit:g} MB")
    log.warning("工作台账 %s 为 %s，超过 [digest] ledger_max_mb = %g，未附于督办汇总 (the ledger is larger than the "
                "limit and is not attached; the digest says so)", filename, size, limit)
    return left_out


def short_title(title: str) -> str:
    """The title a salutation uses: the longest of SALUTATION_TITLES the full title ends with, else all of it."""
    endings = [ending for ending in SALUTATION_TITLES if title.endswith(ending)]
    return max(endings, key=len) if endings else title


def _asked(status: PlanStatus, lines: Sequence[TaskLine]) -> dict[int, int]:
    """Lead unit id -> its lead tasks among `lines` that ask for a report this month."""
    asked: dict[int, int] = {}
    for line in lines:
        if line.state not in SETTLED:
            unit_id = status.lead_unit_ids[line.number]
            asked[unit_id] = asked.get(unit_id, 0) + 1
    return asked


def _most_urgent(lines: Sequence[TaskLine], state: TaskState, work: WorkCalendar, as_of: date
                 ) -> tuple[TaskLine, ...]:
    """The LIST_LIMIT lines in `state` nearest their deadline (the most overdue first), as mail lines: working days
    are counted only for the lines a digest lists, not for every task in scope."""
    urgent = sorted((line for line in lines if line.state == state), key=lambda line: line.days_left or 0)
    return tuple(mail_line(line, work, as_of) for line in urgent[:LIST_LIMIT])


def _on_time_key(figures: UnitFigures) -> float | None:
    """No row of zeros: a unit that reported nothing on time is named in the not-reported lists, not ranked."""
    return figures.on_time / figures.asked if figures.asked and figures.on_time else None


def _on_time_figure(figures: UnitFigures) -> str:
    return f"{figures.on_time}/{figures.asked}（{rate(figures.on_time, figures.asked)}%）"


def _overdue_key(figures: UnitFigures) -> float | None:
    return figures.overdue or None  # no row of zeros: a unit with nothing overdue is not ranked


Key = Callable[[UnitFigures], float | None]


def _places(point: TrendPoint, key: Key) -> dict[int, int]:
    """Unit id -> place by `key` (higher first), ties sharing a place; units whose key is None are left out."""
    scored = [(unit_id, key(figures)) for unit_id, figures in point.units.items()]
    ranked = sorted(((unit_id, score) for unit_id, score in scored if score is not None), key=lambda item: -item[1])
    places: dict[int, int] = {}
    for i, (unit_id, score) in enumerate(ranked):
        places[unit_id] = places[ranked[i - 1][0]] if i and ranked[i - 1][1] == score else i + 1
    return places


def _ranking(points: tuple[TrendPoint, ...], names: dict[int, str], key: Key, figure: Callable[[UnitFigures], str]
             ) -> tuple[RankRow, ...]:
    now = _places(points[-1], key)
    before = _places(points[-2], key) if len(points) > 1 else {}
    rows = []
    for unit_id, place in sorted(now.items(), key=lambda item: (item[1], names.get(item[0], ""))):
        was = before.get(unit_id)
        change = "—" if was is None or was == place else (f"↑{was - place}" if was > place else f"↓{place - was}")
        rows.append(RankRow(place, names.get(unit_id, str(unit_id)), figure(points[-1].units[unit_id]), change))
    return tuple(rows[:LIST_LIMIT])
