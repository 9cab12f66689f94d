"""Opening the desk's store: a database URL (SQLite by default, PostgreSQL in deployment) to an
engine whose schema Alembic has brought up to date.

    sqlite:///path/desk.db                       the embedded default (--home's desk.db)
    postgresql+psycopg://user:pass@host:port/db  deployment (the postgresql:// form works too)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from prognos.errors import ConfigError, PrognosError

logging.getLogger("alembic").setLevel(logging.WARNING)  # every command migrates: no chatter

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DESK_FILE = "desk.db"


class StoreError(PrognosError):
    """The desk's database cannot be reached or used."""


def default_url(home: Path) -> str:
    """The embedded store in a stack home: SQLite, nothing to install or start."""
    return f"sqlite:///{home / DESK_FILE}"


def _normalised(url: str) -> str:
    """postgresql:// means the psycopg 3 driver, the one the desk extra installs."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"{url!r} is not a database URL (e.g. sqlite:///desk.db): {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"{url!r}: the desk runs on SQLite or PostgreSQL, not {parsed.get_backend_name()}")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(connection: Any, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
    cursor.execute("PRAGMA busy_timeout = 10000")
    cursor.close()


def connect(url: str, *, migrate: bool = True) -> Engine:
    """An engine on `url` with the schema migrated to the newest revision (unless `migrate` is
    False). A missing SQLite file is created; an unreachable server is a StoreError."""
    url = _normalised(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True)
    except NoSuchModuleError as exc:
        raise ConfigError(f"no driver for {url!r}: pip install 'prognos[desk]' ({exc})") from exc
    except ImportError as exc:
        raise ConfigError(
            f"the driver for {parsed.drivername} is not installed: pip install 'prognos[desk]'"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        try:
            upgrade(engine)
        except OperationalError as exc:
            engine.dispose()
            raise StoreError(
                f"cannot open the desk database {parsed.render_as_string()}: {exc.orig}"
            ) from exc
    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision` on `engine`."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back (nothing written) when it
    raises. Database errors become StoreError with the server's message."""
    try:
        with engine.begin() as connection:
            yield connection
    except OperationalError as exc:
        raise StoreError(f"the desk database failed: {exc.orig}") from exc
