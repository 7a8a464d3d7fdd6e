"""Plain data handed to the email templates.

The composer builds these from the database; templates read them and never touch a session.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Literal

from reminders.tracking.status import TaskLine
from reminders.vocabulary import SETTLED, ReportStatus
from reminders.workdays import WorkCalendar


@dataclass(frozen=True)
class Office:
    """Who signs the mails: the footer of every mail names them ("" leaves a part out)."""

    name: str
    email: str
    contact: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class MailLine(TaskLine):
    """A task line as a mail shows it: beside the calendar days left, the working days left (剩余 12 天（9 个工作日）),
    counted on the `[calendar]` working days the way a deadline phrase `N个工作日内` is."""

    workdays_left: int | None = None  # None without a deadline, when settled, or when the deadline is past


def mail_line(line: TaskLine, work: WorkCalendar, as_of: date,
              role: Literal["lead", "co"] | None = None) -> MailLine:
    """`line` with its working days left from `as_of` (today not counted, the deadline counted) and, if given, the
    addressed unit's role."""
    values = {f.name: getattr(line, f.name) for f in fields(line) if f.name != "workdays_left"}
    if role is not None:
        values["role"] = role
    left = None
    if line.deadline is not None and line.state not in SETTLED and line.deadline > as_of:
        left = work.workdays_between(as_of, line.deadline)
    return MailLine(**values, workdays_left=left)


@dataclass(frozen=True)
class ReminderContext:
    """A unit's reminder (or chase). The templates put its lead tasks first and its co-operated (配合) tasks after,
    each group numbered; "本月尚未报送" turns red only once `as_of` is past `report_by`, and only on lead tasks."""

    unit: str
    contact: str  # the unit's contact person, a bare name as the units table holds it (刘洋); "" when unknown
    cycle: str  # "2021-06"
    as_of: date  # the day the figures were computed for, stated in the mail
    report_by: date
    office: Office
    tasks: tuple[TaskLine, ...]
    report_url: str | None = None  # the unit's signed link to the report form; None without a web secret
    address_form: str = "你单位"  # `[mail] address_form`: how the Chinese wording names the unit (你处/你单位/贵单位)


@dataclass(frozen=True)
class ReceiptLine:
    """One recorded report, as the receipt (回执) repeats it."""

    number: str
    title: str
    status: ReportStatus
    percent: int | None
    note: str
    problems: str
    next_steps: str
    requested_deadline: date | None
    request_reason: str | None


@dataclass(frozen=True)
class ReceiptContext:
    unit: str
    contact: str
    cycle: str
    as_of: date  # the day the reports were recorded
    office: Office
    reports: tuple[ReceiptLine, ...]
    report_url: str | None = None  # the same link again, to correct the report within the cycle
