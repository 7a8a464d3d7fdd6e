"""督办通知 (kind "escalation"): one numbered notice per unit and cycle when the ladder puts the unit at rung 2 or 3
(tracking.ladder), sent with the month's reminders: to the unit, with its 分管领导 in Cc."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from reminders.config import Config
from reminders.mail.context import Office
from reminders.mail.draft import Draft, unit_link
from reminders.store.models import Leader, Unit
from reminders.tracking.ladder import Standing, notice_steps, standings_of
from reminders.tracking.status import LoadedPlan, PlanStatus
from reminders.vocabulary import RUNG_NOTICE, TaskState


@dataclass(frozen=True)
class NoticeTask:
    """A row of the notice's table (序号, 任务, 截止时间, 情况)."""

    number: str
    title: str
    deadline: date | None
    deadline_text: str
    state: TaskState
    days_overdue: int  # > 0: overdue past [ladder] overdue_days; asks 逾期原因、整改措施、新的完成时限
    missed: int  # months without a report; asks for the missing reports
    reason: str


@dataclass(frozen=True)
class EscalationContext:
    unit: str
    contact: str
    cycle: str
    as_of: date  # the day the notice was computed for (the reminders' fire day)
    office: Office
    notice_number: str  # 督办〔2021〕3号
    tasks: tuple[NoticeTask, ...]
    reply_by: date  # as_of + [ladder] reply_workdays working days
    cc_names: tuple[str, ...]  # the 分管领导 copied
    report_url: str | None = None
    address_form: str = "你单位"  # `[mail] address_form`: how the Chinese wording names the unit


def escalation_drafts(session: Session, config: Config, status: PlanStatus, units: Sequence[Unit],
                      leaders: Sequence[Leader], cycle: str, office: Office,
                      loaded: LoadedPlan | None = None) -> Iterator[Draft]:
    """One 督办通知 per unit at rung 2 or more on `status.as_of`, in unit-id order; `loaded`, the plan's tasks where
    the caller read them already."""
    by_unit = {standing.unit_id: standing for standing in standings_of(session, config, status, cycle, loaded)
               if standing.rung >= RUNG_NOTICE}
    if not by_unit:
        return
    reply_by = config.calendar.work_calendar.add_workdays(status.as_of, config.ladder.reply_workdays)
    for unit in units:
        standing = by_unit.get(unit.id)
        if standing is None or standing.number is None:
            continue
        copied = supervising_leaders(unit, standing, leaders)
        cc = tuple(dict.fromkeys(a for leader in copied for a in leader.addresses if a not in unit.addresses))
        context = EscalationContext(
            unit.name, unit.contact, cycle, status.as_of, office, standing.number, notice_tasks(standing), reply_by,
            tuple(leader.name for leader in copied), unit_link(config, unit.id, cycle), config.mail.address_form)
        yield Draft("escalation", cycle, f"unit:{unit.id}", unit.name, tuple(unit.addresses), context, cc=cc,
                    steps=notice_steps(standing, cycle, status.as_of))


def supervising_leaders(unit: Unit, standing: Standing, leaders: Sequence[Leader]) -> list[Leader]:
    """The unit's 分管领导 (Unit.leader_name) if the directory has them, else the tasks' 责任领导."""
    by_name = {leader.name: leader for leader in leaders}
    if unit.leader_name and unit.leader_name in by_name:
        return [by_name[unit.leader_name]]
    names = dict.fromkeys(cause.leader for cause in standing.causes if cause.leader)
    return [by_name[name] for name in names if name in by_name]


def notice_tasks(standing: Standing) -> tuple[NoticeTask, ...]:
    return tuple(NoticeTask(cause.number, cause.title, cause.deadline, cause.deadline_text, cause.state,
                            cause.days_overdue, len(cause.missed), cause.reason) for cause in standing.causes)
