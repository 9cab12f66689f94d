"""The imported DMS data read back from InfluxDB into the frames prognos.cloud.dealers.kpis takes.

Every query is fixed text; values (times, dealer ids) are bound parameters, never pasted in.
A dashboard page calls these through its data module (with its own caching).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from prognos.cloud.dealers.dms import from_stored, records_frame
from prognos.cloud.dealers.kinds import KINDS, Record, kind_named
from prognos.cloud.dealers.kpis import (
    DEFAULT_WINDOW,
    dealer_kpis,
    dealer_regions,
    dealer_risk,
    with_ticket_metrics,
)
from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.errors import ConfigError, RejectedError


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("give times with a time zone (UTC)")
    return moment.isoformat().replace("+00:00", "Z")


def read_records(
    influx: InfluxClient,
    database: str,
    kind: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    dealer: str | None = None,
) -> list[Record]:
    """The stored records of one kind, oldest first. `start` (inclusive) and `end` (exclusive)
    bound the point's time (docs/dms.md says which column that is per kind); `dealer` keeps
    one dealer's rows (not for the vehicle registry, which has no dealer)."""
    spec = kind_named(kind)
    conditions: list[str] = []
    params: dict[str, str] = {}
    if start is not None:
        conditions.append("time >= $start")
        params["start"] = _rfc3339(start)
    if end is not None:
        conditions.append("time < $end")
        params["end"] = _rfc3339(end)
    if dealer is not None:
        conditions.append('"dealer_id" = $dealer')
        params["dealer"] = dealer
    text = f"SELECT * FROM {quote_identifier(spec.name)}"
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    try:
        series = influx.query(text, database=database, params=params or None)
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise
    return [from_stored(spec, row) for s in series for row in s.rows()]


def read_frame(
    influx: InfluxClient,
    database: str,
    kind: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    dealer: str | None = None,
) -> pd.DataFrame:
    """read_records as a DataFrame (prognos.cloud.dealers.dms.records_frame): one column per
    column of the kind."""
    spec = kind_named(kind)
    records = read_records(influx, database, spec.name, start=start, end=end, dealer=dealer)
    return records_frame(spec, records)


def vehicles(influx: InfluxClient, database: str) -> pd.DataFrame:
    """The vehicle registry: one row per VIN."""
    return records_frame(KINDS["vehicle"], read_records(influx, database, "vehicle"))


@dataclass(frozen=True)
class DealerReport:
    kpis: pd.DataFrame  # per dealer and period (prognos.cloud.dealers.kpis.dealer_kpis)
    regions: pd.DataFrame  # per region and period
    risk: pd.DataFrame  # per dealer, highest score first (prognos.cloud.dealers.kpis.dealer_risk, on months)


def dealer_report(
    influx: InfluxClient,
    database: str,
    *,
    period: str = "month",
    start: datetime | None = None,
    end: datetime | None = None,
    window: int = DEFAULT_WINDOW,
    tickets: pd.DataFrame | None = None,
) -> DealerReport:
    """Dealer and region KPIs per `period` and the risk list (always on months, the last
    `window` of them) from everything imported between start and end; with the service desk's
    ticket metrics for `period` (`tickets`), first-contact resolution, handling time and SLA
    compliance come from the complaint tickets (kpis.with_ticket_metrics)."""

    def frame(kind: str) -> pd.DataFrame:
        return read_frame(influx, database, kind, start=start, end=end)

    orders, complaints, surveys = frame("work_order"), frame("complaint"), frame("survey")
    stock, finance = frame("parts_stock"), frame("dealer_finance")
    kpis = dealer_kpis(orders, complaints, surveys, stock, period=period)
    regions = dealer_kpis(orders, complaints, surveys, stock, period=period, by="region")
    if tickets is not None:
        kpis = with_ticket_metrics(kpis, tickets)
        regions = with_ticket_metrics(regions, tickets, regions=dealer_regions(orders))
    monthly = kpis if period == "month" else dealer_kpis(orders, complaints, surveys, stock, period="month")
    risk = dealer_risk(monthly, finance, window=window)
    return DealerReport(kpis, regions, risk)
