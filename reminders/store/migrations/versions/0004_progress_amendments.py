"""progress reports: an amendment names the report it supersedes (the old one is kept, no longer counted)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("progress_reports") as batch:
        batch.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f("fk_progress_reports_supersedes_id_progress_reports"), "progress_reports",
                                 ["supersedes_id"], ["id"])
        batch.create_unique_constraint(batch.f("uq_progress_reports_supersedes_id"), ["supersedes_id"])


def downgrade() -> None:
    with op.batch_alter_table("progress_reports") as batch:
        batch.drop_constraint(batch.f("uq_progress_reports_supersedes_id"), type_="unique")
        batch.drop_constraint(batch.f("fk_progress_reports_supersedes_id_progress_reports"), type_="foreignkey")
        batch.drop_column("supersedes_id")
