"""outbox: each message's bytes in a table of their own (outbox_bodies), its size in the outbox row

SQLite writes a row whole on every UPDATE: with the bytes in the outbox row, each claim and settle of a message wrote
the message again (a 17,000-message cycle, 410 MB, written twice more while it was sent).

The bodies table is made without its foreign key first and given it last: on SQLite, dropping the outbox's `data`
column rebuilds the outbox table, and dropping the old one would cascade into a table that already referred to it.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_outbox_bodies_outbox_id_outbox"


def upgrade() -> None:
    op.create_table(
        "outbox_bodies",
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("outbox_id", name="pk_outbox_bodies"),
    )
    op.execute("INSERT INTO outbox_bodies (outbox_id, data) SELECT id, data FROM outbox WHERE length(data) > 0")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("size", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE outbox SET size = length(data)")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("data")
    with op.batch_alter_table("outbox_bodies") as batch:
        batch.create_foreign_key(FOREIGN_KEY, "outbox", ["outbox_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("outbox_bodies") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=False, server_default=sa.text("''")))
    op.execute("UPDATE outbox SET data = (SELECT data FROM outbox_bodies WHERE outbox_id = outbox.id) "
               "WHERE EXISTS (SELECT 1 FROM outbox_bodies WHERE outbox_id = outbox.id)")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("size")
    op.drop_table("outbox_bodies")
