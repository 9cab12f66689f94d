"""The desk's store on SQLite and on a real PostgreSQL: the migrations build exactly the schema
prognos.desk.schema defines, run again they change nothing, and the ledger and audit trail
refuse UPDATE and DELETE in the database itself."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import DBAPIError

from prognos.desk import cli as desk_cli
from prognos.desk import schema
from prognos.desk.store import MIGRATIONS, StoreError, connect, default_url
from prognos.errors import ConfigError
from prognos.ops.stack import stack_down, stack_status, stack_up


def test_migrations_build_the_declared_schema(desk_url: str) -> None:
    engine = connect(desk_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), schema.metadata)
        assert differences == []
        assert set(schema.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    again = connect(desk_url)  # at head already: nothing to do, nothing lost
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with again.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    again.dispose()


@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = 'x'", "DELETE FROM {table}"])
def test_audit_and_ledger_are_append_only(desk_url: str, statement: str) -> None:
    engine = connect(desk_url)
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(schema.audit).values(
                at=now, actor="desk", entity="complaint", entity_id="CP-1", action="open", after={"a": 1}
            )
        )
        connection.execute(
            insert(schema.ledger).values(
                seq=1,
                at=now,
                kind="grant",
                entitlement_id="E1",
                customer_id="C1",
                body="{}",
                prev_hash="0" * 64,
                hash="1" * 64,
                signature="s",
                key_id="k",
            )
        )
    for table, column in (("audit", "actor"), ("ledger", "kind")):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement.format(table=table, column=column)))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit")).scalar_one() == 1
        assert connection.execute(text("SELECT count(*) FROM ledger")).scalar_one() == 1
    engine.dispose()


def test_bad_urls_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        connect("no url at all")
    with pytest.raises(ConfigError, match="SQLite or PostgreSQL"):
        connect("mysql://localhost/desk")
    with pytest.raises(StoreError, match="cannot open the desk database"):
        connect("postgresql://nobody:x@127.0.0.1:1/desk")
    assert default_url(tmp_path).endswith("/desk.db")


def test_the_stack_runs_the_desks_postgresql_when_asked() -> None:
    home = Path(tempfile.mkdtemp(prefix="prognos-stack-"))
    home.chmod(0o755)  # PostgreSQL runs as the postgres user, who must reach its data
    try:
        info, started = stack_up(home, secure=False, desk_postgres=True)
        assert started and info.postgres_port is not None
        assert stack_status(home)["postgres"]
        url = desk_cli.desk_url(argparse.Namespace(db=None, home=home))
        assert url.startswith("postgresql+psycopg://") and f":{info.postgres_port}/desk" in url
        assert info.desk_url_file.stat().st_mode & 0o077 == 0  # the password is the owner's alone
        engine = connect(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM customer")).scalar_one() == 0
        engine.dispose()
    finally:
        stack_down(home)
    assert not Path(home / "postgres" / "data" / "postmaster.pid").exists()
    # without a running stack the desk falls back to SQLite in the home
    assert desk_cli.desk_url(argparse.Namespace(db=None, home=home)) == f"sqlite:///{home / 'desk.db'}"
    shutil.rmtree(home, ignore_errors=True)
