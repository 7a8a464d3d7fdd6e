"""progress reports gain status, problems, next steps, extension requests and their source; deadline changes; users

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("progress_reports") as batch:
        batch.add_column(sa.Column("status", sa.String(length=20), nullable=False, server_default="progress"))
        batch.add_column(sa.Column("problems", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("next_steps", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("requested_deadline", sa.Date(), nullable=True))
        batch.add_column(sa.Column("request_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("source", sa.String(length=10), nullable=False, server_default="cli"))
    reports = sa.table("progress_reports", sa.column("done", sa.Boolean()), sa.column("status", sa.String()))
    op.execute(reports.update().where(reports.c.done.is_(True)).values(status="done"))

    op.create_table(
        "deadline_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("old_deadline", sa.Date(), nullable=True),
        sa.Column("new_deadline", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"],
                                name=op.f("fk_deadline_changes_assignment_id_assignments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["report_id"], ["progress_reports.id"],
                                name=op.f("fk_deadline_changes_report_id_progress_reports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_changes")),
        sa.UniqueConstraint("report_id", name=op.f("uq_deadline_changes_report_id")),
    )
    with op.batch_alter_table("deadline_changes") as batch:
        batch.create_index(batch.f("ix_deadline_changes_assignment_id"), ["assignment_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )


def downgrade() -> None:
    op.drop_table("users")
    with op.batch_alter_table("deadline_changes") as batch:
        batch.drop_index(batch.f("ix_deadline_changes_assignment_id"))
    op.drop_table("deadline_changes")
    with op.batch_alter_table("progress_reports") as batch:
        for column in ("source", "request_reason", "requested_deadline", "next_steps", "problems", "status"):
            batch.drop_column(column)
