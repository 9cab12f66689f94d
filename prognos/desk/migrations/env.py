"""Alembic's environment for the desk: migrations run on the connection prognos.desk.store.upgrade
hands over (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

from prognos.desk.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
