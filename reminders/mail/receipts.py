"""The receipt (回执) of a unit's submissions: what it reported, repeated back, with its link to correct it.

One receipt covers a window (`[web] receipt_window`): every report the unit's link recorded in the cycle from the
window's first one on, so a unit that corrects itself gets one mail listing every change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.errors import ReminderError
from reminders.mail.context import ReceiptContext, ReceiptLine
from reminders.mail.draft import Draft, office_of, unit_link
from reminders.store.models import ProgressReport, Task, Unit
from reminders.vocabulary import ReportStatus


def receipt_prefix(unit_id: int) -> str:
    """What the outbox keys of every receipt of the unit start with."""
    return f"unit:{unit_id}:receipt:"


def receipt_key(unit_id: int, first_report: int) -> str:
    """The outbox key of a unit's receipt: its window's first report."""
    return f"{receipt_prefix(unit_id)}{first_report}"


def first_report(key: str) -> int:
    """The first report of the receipt keyed `key` (see `receipt_key`)."""
    return int(key.rpartition(":")[2])


def window_reports(session: Session, unit_id: int, cycle: str, first: int) -> list[int]:
    """The reports the unit's link recorded in the cycle from report `first` on: what one receipt lists."""
    return list(session.scalars(select(ProgressReport.id).where(
        ProgressReport.unit_id == unit_id, ProgressReport.cycle == cycle, ProgressReport.source == "web",
        ProgressReport.id >= first).order_by(ProgressReport.id)))


def receipt_draft(session: Session, config: Config, unit_id: int, cycle: str, report_ids: Sequence[int]) -> Draft:
    """The receipt of the reports `report_ids`, keyed by the first of them. A task reported more than once is
    listed at each report, in the order sent, its versions together (the last one counts)."""
    unit = session.get(Unit, unit_id)
    if unit is None or not report_ids:
        raise ReminderError(f"没有可回执的报送 (nothing to acknowledge for unit {unit_id})")
    found = session.execute(
        select(ProgressReport, Task.number, Task.title).join(Task, Task.id == ProgressReport.task_id)
        .where(ProgressReport.id.in_(list(report_ids))).order_by(ProgressReport.id)
    ).all()
    first_of: dict[str, int] = {}
    for r, number, _ in found:
        first_of.setdefault(number, r.id)
    rows = sorted(found, key=lambda row: (first_of[row[1]], row[0].id))
    lines = tuple(ReceiptLine(number, title, cast(ReportStatus, r.status), r.percent, r.note, r.problems, r.next_steps,
                              r.requested_deadline, r.request_reason) for r, number, title in rows)
    recorded_on = max(r.reported_on for r, _, _ in rows)
    context = ReceiptContext(unit.name, unit.contact, cycle, recorded_on,
                             office_of(config), lines,
                             unit_link(config, unit_id, cycle))
    return Draft("receipt", cycle, receipt_key(unit_id, min(report_ids)), unit.name, tuple(unit.addresses), context)
