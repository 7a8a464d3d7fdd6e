"""latest_reports: each (task, unit)'s newest report that counts, kept by a trigger on progress_reports

Status ranked every report of the plan on every read (a window over 300,000 reports at 100,000 tasks); it reads
one row per task and unit instead. A trigger keeps the rows, so that every writer does, bulk inserts included.

The trigger first takes the pair's row (inserting it, or locking it with an update that changes nothing), then ranks
the pair's reports in a statement of its own: on PostgreSQL two transactions reporting on one pair at once are
thereby put in order, and the second ranks with the first one's report committed (PL/pgSQL takes a new snapshot
for each statement), where ranking in the first statement could keep whichever report committed last.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TRIGGER = "progress_reports_latest"

_COUNTING = ("FROM progress_reports r WHERE r.task_id = {task} AND r.unit_id = {unit} AND NOT EXISTS "
             "(SELECT 1 FROM progress_reports n WHERE n.supersedes_id = r.id)")
_NEWEST = "ORDER BY r.reported_on DESC, r.created_at DESC, r.id DESC LIMIT 1"


def _ranked(task: str, unit: str) -> tuple[str, str]:
    """The pair's newest counting report, and the newest percentage it gave, as two scalar subqueries."""
    counting = _COUNTING.format(task=task, unit=unit)
    return (f"(SELECT r.id {counting} {_NEWEST})",
            f"(SELECT r.percent {counting} AND r.percent IS NOT NULL {_NEWEST})")


def _trigger_body() -> str:
    report, percent = _ranked("NEW.task_id", "NEW.unit_id")
    return (
        "INSERT INTO latest_reports (task_id, unit_id, report_id, percent) "
        "VALUES (NEW.task_id, NEW.unit_id, NEW.id, NEW.percent) "
        "ON CONFLICT (task_id, unit_id) DO UPDATE SET report_id = latest_reports.report_id; "
        f"UPDATE latest_reports SET report_id = {report}, percent = {percent} "
        "WHERE task_id = NEW.task_id AND unit_id = NEW.unit_id;"
    )


def create_trigger() -> None:
    """The trigger, in each dialect's words; the statements it runs are the same."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN {_trigger_body()} RETURN NULL; END $$")
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON progress_reports "
                   f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()")
    else:
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON progress_reports BEGIN {_trigger_body()} END")


def upgrade() -> None:
    op.create_table(
        "latest_reports",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_latest_reports_task_id_tasks"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_latest_reports_unit_id_units")),
        sa.ForeignKeyConstraint(["report_id"], ["progress_reports.id"],
                                name=op.f("fk_latest_reports_report_id_progress_reports"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "unit_id", name=op.f("pk_latest_reports")),
    )
    report, percent = _ranked("p.task_id", "p.unit_id")  # the trigger's own ranking, for each pair there is
    op.execute("INSERT INTO latest_reports (task_id, unit_id, report_id, percent) "
               f"SELECT p.task_id, p.unit_id, {report}, {percent} "
               "FROM (SELECT DISTINCT task_id, unit_id FROM progress_reports) p")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE latest_reports")  # filled at once, as an import fills its tables (store.bulk)
    create_trigger()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON progress_reports")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
    op.drop_table("latest_reports")
