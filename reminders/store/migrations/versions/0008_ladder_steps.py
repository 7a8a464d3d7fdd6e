"""ladder_steps: each step of the 督办 ladder (临期提醒, 催办, 督办通知, 通报) with its reason and message

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ladder_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_key", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.String(length=7), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("number", sa.String(length=50), nullable=True),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_ladder_steps_task_id_tasks"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_ladder_steps_unit_id_units"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ladder_steps")),
        sa.UniqueConstraint("step_key", name=op.f("uq_ladder_steps_step_key")),
    )
    op.create_index(op.f("ix_ladder_steps_task_id"), "ladder_steps", ["task_id"])
    op.create_index(op.f("ix_ladder_steps_unit_id"), "ladder_steps", ["unit_id"])
    op.create_index(op.f("ix_ladder_steps_cycle"), "ladder_steps", ["cycle"])


def downgrade() -> None:
    op.drop_table("ladder_steps")
