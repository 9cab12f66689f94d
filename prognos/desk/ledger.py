"""The entitlement ledger: append-only entries, each chained to the one before by its hash and
signed with the brand's ed25519 key (docs/desk.md)."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, select

from prognos.desk import schema
from prognos.desk.entitlements import Body, Entitlement, fold


def current_entitlements(
    connection: Connection, *, now: datetime, customer_ids: Collection[str] | None = None
) -> dict[str, Entitlement]:
    """Every entitlement's state at `now` (or only those held by `customer_ids` now)."""
    ledger = schema.ledger
    query = select(ledger.c.body).order_by(ledger.c.seq)
    if customer_ids is not None:
        held = select(ledger.c.entitlement_id).where(ledger.c.customer_id.in_(list(customer_ids)))
        query = query.where(ledger.c.entitlement_id.in_(held))
    bodies: list[Body] = [json.loads(body) for body in connection.execute(query).scalars()]
    states = fold(bodies, now)
    if customer_ids is None:
        return states
    wanted = set(customer_ids)
    return {key: state for key, state in states.items() if state.customer_id in wanted}
