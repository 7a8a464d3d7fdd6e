"""The databases a run uses: a SQLite file, or a PostgreSQL schema the run creates and drops; and their configs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" | "postgres"
    folder: Path
    name: str  # file stem or schema name
    pg_url: str = DEFAULT_PG

    @property
    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder / (self.name + '.sqlite3')}"
        return f"{self.pg_url}?options=-csearch_path%3D{self.name}"

    def reset(self) -> None:
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.folder / self.name}.sqlite3{suffix}").unlink(missing_ok=True)
            return
        self._pg(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE', f'CREATE SCHEMA "{self.name}"')

    def drop(self) -> None:
        if self.kind == "postgres":
            self._pg(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        else:
            self.reset()

    def _pg(self, *statements: str) -> None:
        import psycopg

        url = self.pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)


def pg_url() -> str:
    return os.environ.get("REMINDERS_TEST_PG", DEFAULT_PG)


def write_config(path: Path, database: Database, smtp_port: int, connections: int, idle: bool = False) -> Path:
    """A reminders.toml for a stage: this database, the SMTP sink's port; `idle`: crons that never fire soon."""
    schedule = ('reminders = "0 0 29 2 *"\ndigests = "0 0 29 2 *"\nmisfire_grace = "1m"\n' if idle
                else 'reminders = "0 9 20 * *"\ndigests = "0 9 26 * *"\n')
    path.write_text(f"""[database]
url = "{database.url}"

[office]
name = "省政府督查室"
email = "ducha@example.org"

[delivery]
transport = "smtp"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "ducha@example.org"
sender_name = "省政府督查室"
connections = {connections}
timeout = 60
retries = 3
backoff = 0.2

[schedule]
timezone = "Asia/Shanghai"
{schedule}report_day = 25
due_soon_days = 7
""", encoding="utf-8")
    return path
