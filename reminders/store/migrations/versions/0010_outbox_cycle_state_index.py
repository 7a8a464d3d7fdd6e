"""outbox: an index on (cycle, state) in place of the one on cycle, for a sender's claim of a cycle's next pending
messages

Without it SQLite walked every message of the cycle, sent ones included, to find the next pending ones, and read
each row's state past its body: a claim took 0.15 s once 15,000 of a 17,000-message cycle had gone.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_cycle_state", "outbox", ["cycle", "state"])
    op.drop_index("ix_outbox_cycle", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_cycle", "outbox", ["cycle"])
    op.drop_index("ix_outbox_cycle_state", table_name="outbox")
