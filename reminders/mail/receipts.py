"""The receipt (回执) of a unit's submission: what it reported, repeated back, with its link to correct it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.errors import ReminderError
from reminders.mail.compose import Draft, office_of, unit_link
from reminders.mail.context import ReceiptContext, ReceiptLine
from reminders.store.models import ProgressReport, Task, Unit
from reminders.vocabulary import ReportStatus


def receipt_draft(session: Session, config: Config, unit_id: int, cycle: str, report_ids: Sequence[int]) -> Draft:
    """The receipt of the reports `report_ids`, keyed by the first of them: one receipt per submission."""
    unit = session.get(Unit, unit_id)
    if unit is None or not report_ids:
        raise ReminderError(f"没有可回执的报送 (nothing to acknowledge for unit {unit_id})")
    rows = session.execute(
        select(ProgressReport, Task.number, Task.title).join(Task, Task.id == ProgressReport.task_id)
        .where(ProgressReport.id.in_(list(report_ids))).order_by(ProgressReport.id)
    ).all()
    lines = tuple(ReceiptLine(number, title, cast(ReportStatus, r.status), r.percent, r.note, r.problems, r.next_steps,
                              r.requested_deadline, r.request_reason) for r, number, title in rows)
    recorded_on = max(r.reported_on for r, _, _ in rows)
    context = ReceiptContext(unit.name, unit.contact, cycle, recorded_on,
                             office_of(config), lines,
                             unit_link(config, unit_id, cycle))
    return Draft("receipt", cycle, f"unit:{unit_id}:receipt:{min(report_ids)}", unit.name, tuple(unit.addresses),
                 context)
