"""The audit trail: who changed what, when, with the values before and after. Append-only (the
database refuses UPDATE and DELETE on it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import Connection, insert

from prognos.desk import schema


def as_json(values: Mapping[str, object]) -> dict[str, object]:
    """Values as JSON can hold them: times as ISO 8601 UTC text."""
    return {k: v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def record(
    connection: Connection,
    *,
    at: datetime,
    actor: str,
    entity: str,
    entity_id: str,
    action: str,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
) -> None:
    """Append one change to the trail, in the caller's transaction."""
    connection.execute(
        insert(schema.audit).values(
            at=at,
            actor=actor,
            entity=entity,
            entity_id=entity_id,
            action=action,
            before=None if before is None else as_json(before),
            after=None if after is None else as_json(after),
        )
    )
