"""progress_reports: an index on (task_id, unit_id), for a lead unit's own reports of each task

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_progress_reports_task_id_unit_id", "progress_reports", ["task_id", "unit_id"])


def downgrade() -> None:
    op.drop_index("ix_progress_reports_task_id_unit_id", table_name="progress_reports")
