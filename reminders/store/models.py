"""The database schema: the plan, the directory of units and leaders, who owns what, progress and the outbox."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Plan(Base):
    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500), unique=True)
    year: Mapped[int | None]
    details: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(1000))
    fingerprint: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sections: Mapped[list[Section]] = relationship(back_populates="plan", order_by="Section.number")
    tasks: Mapped[list[Task]] = relationship(back_populates="plan", order_by="Task.position")


class Section(Base):
    __tablename__ = "sections"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    label: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text)
    plan: Mapped[Plan] = relationship(back_populates="sections")


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    section_id: Mapped[int | None] = mapped_column(ForeignKey("sections.id"))
    number: Mapped[str] = mapped_column(String(20))
    position: Mapped[int]
    subsection: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    suggested_lead: Mapped[str | None] = mapped_column(Text)
    suggested_deadline: Mapped[str | None] = mapped_column(String(200))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    plan: Mapped[Plan] = relationship(back_populates="tasks")
    section: Mapped[Section | None] = relationship()
    assignment: Mapped[Assignment | None] = relationship(back_populates="task", uselist=False)


class Unit(Base):
    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    emails: Mapped[str] = mapped_column(Text)  # addresses joined by ";"
    contact: Mapped[str] = mapped_column(String(200), default="")
    leader_name: Mapped[str | None] = mapped_column(String(100))

    @property
    def addresses(self) -> list[str]:
        return [a for a in self.emails.split(";") if a]


class Leader(Base):
    __tablename__ = "leaders"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    emails: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(10), default="own")  # "own" | "all"

    @property
    def addresses(self) -> list[str]:
        return [a for a in self.emails.split(";") if a]


class Assignment(Base):
    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), unique=True)
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("leaders.id"), index=True)
    lead_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    deadline_text: Mapped[str] = mapped_column(String(200), default="")
    deadline: Mapped[date | None] = mapped_column(Date)
    deadline_kind: Mapped[str] = mapped_column(String(20))  # deadlines.DeadlineKind
    start_date: Mapped[date | None] = mapped_column(Date)  # 开始日期: where 序时进度 starts (tracking.pace)
    task: Mapped[Task] = relationship(back_populates="assignment")
    leader: Mapped[Leader | None] = relationship()
    lead_unit: Mapped[Unit] = relationship(foreign_keys=[lead_unit_id])
    co_units: Mapped[list[CoUnit]] = relationship(
        back_populates="assignment", order_by="CoUnit.position", cascade="all, delete-orphan"
    )


class CoUnit(Base):
    __tablename__ = "assignment_co_units"
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True, index=True)
    position: Mapped[int]
    assignment: Mapped[Assignment] = relationship(back_populates="co_units")
    unit: Mapped[Unit] = relationship()


class ProgressReport(Base):
    """One progress report; never updated, so the history of a task is every row for it (amendments included)."""

    __tablename__ = "progress_reports"
    # A lead unit's own reports of a task (the ladder, the 通报 and the trend ask for them): without it SQLite walked
    # every report of the lead unit for each task, 3.6 s at 100,000 tasks where this takes 0.3 s.
    __table_args__ = (Index("ix_progress_reports_task_id_unit_id", "task_id", "unit_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    cycle: Mapped[str] = mapped_column(String(7), index=True)  # "2021-06"
    reported_on: Mapped[date] = mapped_column(Date)
    percent: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[bool] = mapped_column(Boolean, default=False)  # status == "done"
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="progress")  # progress|done|difficulty|extension
    problems: Mapped[str] = mapped_column(Text, default="")  # 存在问题及需协调事项
    next_steps: Mapped[str] = mapped_column(Text, default="")  # 下一步措施
    requested_deadline: Mapped[date | None] = mapped_column(Date)  # 申请延期: the new date asked for
    request_reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(10), default="cli")  # cli|web|office
    # An amendment is a new report naming the one it corrects; that one is kept but no longer counts.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("progress_reports.id"), unique=True)
    unit: Mapped[Unit] = relationship()


class LatestReport(Base):
    """Each (task, unit)'s newest report that counts, and the newest percentage among those that gave one.

    Kept by a trigger on progress_reports (migration 0012), so every writer keeps it, bulk inserts included; status
    reads it instead of ranking every report of the plan (the reports are never updated or deleted one by one).
    A migration that rebuilds progress_reports (Alembic's batch mode on SQLite) drops the trigger with the old table
    and must create it again: a test checks the trigger at the head revision."""

    __tablename__ = "latest_reports"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("progress_reports.id", ondelete="CASCADE"))
    percent: Mapped[int | None] = mapped_column(Integer)


class DeadlineChange(Base):
    """An extension decided by the office: approved (the deadline moved from old to new) or refused."""

    __tablename__ = "deadline_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    old_deadline: Mapped[date | None] = mapped_column(Date)
    new_deadline: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    report_id: Mapped[int | None] = mapped_column(ForeignKey("progress_reports.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(10))  # approved|refused
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    """An office account for the dashboard; the password is stored as a scrypt hash only."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    # Carried in every session cookie; raising it (logout, a new password) ends every session of the account.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # How often `reminders admin unlock` lifted the login delay on the name; the web process compares it.
    unlocks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LadderStep(Base):
    """One step of the 督办 ladder taken for a unit (and, but for a 通报, a task): a 临期提醒, a 催办, a 督办通知
    or a 通报, with why and the message that carried it. `step_key` is unique, so two senders record a step once."""

    __tablename__ = "ladder_steps"
    id: Mapped[int] = mapped_column(primary_key=True)
    step_key: Mapped[str] = mapped_column(String(200), unique=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    rung: Mapped[int] = mapped_column(Integer)  # vocabulary.RUNG_*
    cycle: Mapped[str] = mapped_column(String(7), index=True)
    day: Mapped[date] = mapped_column(Date)  # the day the step was computed for
    reason: Mapped[str] = mapped_column(Text, default="")
    number: Mapped[str | None] = mapped_column(String(50))  # a 督办通知's 文号: 督办〔2021〕3号
    message_id: Mapped[str | None] = mapped_column(String(250))  # the outbox message that carried it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxMessage(Base):
    """A message recorded before it is sent; (kind, cycle, recipient) is unique, so a cycle is built once."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("kind", "cycle", "recipient_key", name="uq_outbox_kind_cycle_recipient"),
                      Index("ix_outbox_cycle_state", "cycle", "state"))
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    cycle: Mapped[str] = mapped_column(String(7))
    recipient_key: Mapped[str] = mapped_column(String(50))  # "unit:3", "leader:2"
    recipient_name: Mapped[str] = mapped_column(String(200))
    addresses: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # its bytes; 0: not built (Unbuilt)
    state: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # pending|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # "host:pid:start" of the sending process
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when the relay first took it
    # JSON {address: [outcome, answer]} once addresses fared differently: "sent", "failed" (5xx) or "deferred" (4xx)
    deliveries: Mapped[str] = mapped_column(Text, default="", server_default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the daemon's retry waits
    first_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # give_up_after counts from
    body: Mapped[OutboxBody | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class OutboxBody(Base):
    """A recorded message's bytes, in a table of their own: SQLite writes a row whole on every UPDATE, so with the
    bytes in the outbox row each claim and settle wrote the message again (a full-size cycle's 17,038 messages
    claimed and settled eight at a time: 6.2 s, against 0.3 s with the bytes apart). PostgreSQL keeps large values
    apart by itself (TOAST)."""

    __tablename__ = "outbox_bodies"
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)

