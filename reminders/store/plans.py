"""The plan everything else refers to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from reminders.errors import ReminderError
from reminders.store.models import Plan


class NoPlanError(ReminderError):
    pass


def active_plan(session: Session) -> Plan:
    """The plan the tables, reports and mails refer to: the one imported last."""
    plan = session.scalars(select(Plan).order_by(Plan.id.desc()).limit(1)).first()
    if plan is None:
        raise NoPlanError("尚未导入工作计划，请先运行 reminders import-plan (no plan imported yet)")
    return plan
