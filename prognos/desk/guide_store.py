"""Guided diagnosis over the desk's store: the work-order history read for prognos.desk.guide,
advice for a vehicle that comes in, and the backtest (docs/desk.md, "Guided diagnosis")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from prognos.cloud.dealers.kinds import tag_list
from prognos.desk import schema
from prognos.desk.guide import (
    NO_PREVIOUS,
    Advice,
    Backtest,
    Features,
    NoHistoryError,
    Order,
    backtest,
    cases,
    learn,
)
from prognos.errors import ConfigError


class UnknownVehicleError(ConfigError):
    """The desk holds no vehicle with that VIN."""


def history(connection: Connection, *, code: str | None = None) -> list[Order]:
    """The orders a case can be made of: those with a fault code (`code` only, when given) and
    those that repeat another order, with the model of their vehicle where the desk knows it."""
    w, v = schema.work_order, schema.vehicle
    wanted = w.c.fault_code.is_not(None) if code is None else w.c.fault_code == code
    rows = connection.execute(
        select(w, v.c.model)
        .select_from(w.outerjoin(v, v.c.vin == w.c.vin))
        .where(or_(wanted, w.c.repeat_of_order_id.is_not(None)))
    )
    return [_order(row) for row in rows]


def _order(row: Row[Any]) -> Order:
    return Order(
        dealer_id=row.dealer_id,
        order_id=row.order_id,
        vin=row.vin,
        model=row.model,
        opened_at=_utc(row.opened_at),
        closed_at=_utc(row.closed_at) if row.closed_at is not None else None,
        fault_code=row.fault_code or None,
        symptoms=frozenset(tag_list(row.symptoms)),
        mileage_km=row.mileage_km,
        root_cause=row.root_cause or None,
        repair=tag_list(row.repair),
        repeat_of_order_id=row.repeat_of_order_id or None,
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def advise(
    connection: Connection,
    *,
    vin: str,
    code: str,
    symptoms: frozenset[str],
    mileage_km: int | None,
    now: datetime,
    limit: int = 5,
) -> Advice:
    """Advice for `vin` coming in with `code` now: the guide learns from every case of the code
    settled by now; the model comes from the desk's vehicle, the past repair from the vehicle's
    latest order for the code, and the mileage, when not given, from its latest order that
    records one. The symptoms given are all that was observed; none given: not looked at, so
    symptoms do not count."""
    model = connection.execute(select(schema.vehicle.c.model).where(schema.vehicle.c.vin == vin)).scalar()
    if model is None:
        raise UnknownVehicleError(f"no vehicle with VIN {vin!r} in the desk")
    orders = history(connection, code=code)
    known = [case for case in cases(orders) if case.code == code]
    guide = learn(known, at=now)
    if code not in guide.counts:
        raise NoHistoryError(
            f"no settled case of fault code {code!r} in the work-order history to learn from "
            f"(codes with one: {', '.join(_codes_with_history(connection)) or 'none'})"
        )
    own = sorted(
        (o for o in orders if o.vin == vin and o.opened_at <= now),
        key=lambda o: o.opened_at,
    )
    previous = next((o.root_cause for o in reversed(own) if o.fault_code == code and o.root_cause), None)
    if mileage_km is None:
        mileage_km = _latest_mileage_km(connection, vin, now)
    features = Features(
        code=code,
        symptoms=symptoms,
        symptoms_known=bool(symptoms),
        model=model,
        mileage_km=mileage_km,
        previous=previous or NO_PREVIOUS,
    )
    return guide.advise(features, limit=limit)


def _latest_mileage_km(connection: Connection, vin: str, now: datetime) -> int | None:
    w = schema.work_order
    value = connection.execute(
        select(w.c.mileage_km)
        .where(w.c.vin == vin, w.c.mileage_km.is_not(None), w.c.opened_at <= now)
        .order_by(w.c.opened_at.desc())
        .limit(1)
    ).scalar()
    return None if value is None else int(value)


def _codes_with_history(connection: Connection) -> list[str]:
    w = schema.work_order
    found = connection.execute(
        select(w.c.fault_code).where(w.c.fault_code.is_not(None), w.c.root_cause.is_not(None)).distinct()
    )
    return sorted(str(code) for code in found.scalars())


def run_backtest(connection: Connection, *, split: datetime | None = None) -> Backtest:
    """prognos.desk.guide.backtest over the desk's whole work-order history."""
    return backtest(history(connection), split=split)
