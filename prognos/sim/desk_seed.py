"""`prognos desk seed`: fill an empty desk database with the simulator's customers
(prognos.sim.customers) through the desk's own operations: entitlements are granted and
consumed as signed ledger entries, the DMS's complaints come in through the DMS import, and
complaints raised at the desk are opened and moved with their audit trail, at the times the
story gives them. The failing dealer is left at risk; `prognos desk dealer-failed` fails it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, Table, func, insert, select
from tqdm import tqdm

from prognos.desk import complaints, ledger, schema
from prognos.desk.entitlements import Body
from prognos.desk.store import transaction
from prognos.errors import ConfigError
from prognos.sim.customers import DeskData, Grant, make_desk_data
from prognos.sim.dealers import Row, make_dms, write_dms

T = TypeVar("T")
ACTOR = "seed"
BATCH = 5_000  # rows per INSERT


@dataclass(frozen=True)
class Seeded:
    customers: int
    vehicles: int
    ledger_entries: int
    complaints: int
    failing_dealer: str


def seed_desk(
    engine: Engine,
    *,
    customers: int,
    seed: int,
    key: Ed25519PrivateKey,
    now: datetime,
    dms: dict[str, list[Row]] | None = None,
    show_progress: bool = False,
) -> Seeded:
    """Seed an empty desk with `customers` customers at `now`, consistent with `dms` (default:
    the simulator's dealer data for `seed`). A desk that holds customers already is refused."""
    with engine.connect() as connection:
        present = connection.execute(select(func.count()).select_from(schema.customer)).scalar_one()
    if present:
        raise ConfigError(f"the desk already holds {present} customers; seed an empty database")
    dms = dms if dms is not None else make_dms(seed=seed)
    data = make_desk_data(customers=customers, seed=seed, now=now, dms=dms)
    _insert_rows(engine, data)
    entries = _ledger(engine, data.grants, key, now, show_progress)
    _import_dms_complaints(engine, dms, now)
    opened = _desk_complaints(engine, data, show_progress)
    return Seeded(
        customers=len(data.customers),
        vehicles=len(data.vehicles),
        ledger_entries=entries,
        complaints=opened,
        failing_dealer=data.failing_dealer,
    )


def _insert_rows(engine: Engine, data: DeskData) -> None:
    tables: list[tuple[Table, list[dict[str, object]]]] = [
        (schema.dealer, data.dealers),
        (schema.holiday, data.holidays),
        (schema.service_center, data.centers),
        (schema.customer, data.customers),
        (schema.vehicle, data.vehicles),
        (schema.appointment, data.appointments),
        (schema.work_order, _unique(data.work_orders, ("dealer_id", "order_id"))),
        (schema.alert, data.alerts),
    ]
    with transaction(engine) as connection:
        for table, rows in tables:
            for start in range(0, len(rows), BATCH):
                connection.execute(insert(table), rows[start : start + BATCH])


def _unique(rows: list[dict[str, object]], key: tuple[str, ...]) -> list[dict[str, object]]:
    seen: dict[tuple[object, ...], dict[str, object]] = {}
    for row in rows:
        seen.setdefault(tuple(row[name] for name in key), row)
    return list(seen.values())


def _ledger(
    engine: Engine, grants: list[Grant], key: Ed25519PrivateKey, now: datetime, show_progress: bool
) -> int:
    """Every grant and consumption, appended in time order as the brand would have signed them."""
    events: list[tuple[datetime, int, Body]] = []
    for grant in grants:
        granted_at = min(grant.valid_from, now)
        events.append(
            (
                granted_at,
                0,
                {
                    "kind": "grant",
                    "entitlement_id": grant.entitlement_id,
                    "customer_id": grant.customer_id,
                    "actor": ACTOR,
                    "vin": grant.vin,
                    "product": grant.product,
                    "units": grant.units,
                    "valid_from": ledger.utc_text(grant.valid_from),
                    "valid_until": ledger.utc_text(grant.valid_until),
                    "center_id": grant.center_id,
                    "dealer_id": grant.dealer_id,
                },
            )
        )
        for used_at, reference in grant.consumed:
            events.append(
                (
                    max(used_at, granted_at),
                    1,
                    {
                        "kind": "consume",
                        "entitlement_id": grant.entitlement_id,
                        "actor": ACTOR,
                        "units": 1,
                        "reference": reference,
                    },
                )
            )
    events.sort(key=lambda event: (event[0], event[1], str(event[2]["entitlement_id"])))
    with transaction(engine) as connection:
        for at, _, body in _progress(events, "ledger entries", show_progress):
            ledger.append(connection, body, key, at)
    return len(events)


def _import_dms_complaints(engine: Engine, dms: dict[str, list[Row]], now: datetime) -> None:
    rows = dms.get("complaint", [])
    if not rows:
        return
    with tempfile.TemporaryDirectory(prefix="prognos-seed-") as scratch:
        files = write_dms({"complaint": rows}, Path(scratch))
        complaints.import_dms_complaints(engine, files["complaint"], now=now, actor="dms-import")


def _desk_complaints(engine: Engine, data: DeskData, show_progress: bool) -> int:
    for spec in _progress(data.complaints, "complaints", show_progress):
        if spec.customer_id is None:
            continue
        ticket = complaints.open_complaint(
            engine,
            customer_id=spec.customer_id,
            category=spec.category,
            actor=ACTOR,
            summary=spec.summary,
            vin=spec.vin,
            dealer_id=spec.dealer_id,
            complaint_id=spec.complaint_id,
            now=spec.opened_at,
        )
        for state, at in spec.moves:
            ticket = complaints.move(
                engine, ticket.complaint_id, state, actor=ACTOR, expected_version=ticket.version, now=at
            )
    return len(data.complaints)


def _progress(items: Sequence[T], what: str, show: bool) -> Iterable[T]:
    shown: Iterable[T] = tqdm(items, desc=what, unit="", disable=not show, leave=False)
    return shown


def seed_command(args: argparse.Namespace) -> int:
    """The handler of `prognos desk seed`."""
    from prognos.desk.cli import desk_url, signing_key
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    logging.getLogger("prognos.desk").setLevel(logging.WARNING)  # a line per ticket move is noise here
    try:
        seeded = seed_desk(
            engine,
            customers=args.customers,
            seed=args.seed,
            key=signing_key(args, create=True),
            now=datetime.now(UTC),
            show_progress=True,
        )
    finally:
        engine.dispose()
    print(
        f"seeded {seeded.customers} customers with {seeded.vehicles} vehicles, {seeded.ledger_entries} "
        f"signed ledger entries and {seeded.complaints} desk complaints (besides the DMS's); dealer "
        f"{seeded.failing_dealer} is at risk: `prognos desk dealer-failed {seeded.failing_dealer}` fails it"
    )
    return 0
