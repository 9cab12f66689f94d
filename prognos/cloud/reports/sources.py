"""What a diagnosis report reads from InfluxDB: the alerting subsystem's recent points, the
latest days estimate of the fault, the vehicle's registry row, and the DMS stock and parts
master (these two cached for a while: they change with imports, not with records).

Each query is fixed text with bound values. A database that does not exist yet answers as
empty. One client per thread: the worker builds reports in a few threads at once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prognos.cloud.reports.report import Point, StockLevel, utc_ms
from prognos.cloud.storage.client import DatabaseNotFoundError, InfluxClient
from prognos.errors import RejectedError

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000

Q_HISTORY = (
    'SELECT "health", "anomaly_score" FROM "vehicle_health" WHERE "vin" = $vin AND "subsystem" = $subsystem '
    "AND time > $start AND time <= $end ORDER BY time DESC LIMIT {limit}"
)
Q_ESTIMATE = (
    'SELECT last("days_to_threshold") AS days, "days_low", "days_high" FROM "fault" '
    'WHERE "vin" = $vin AND "code" = $code AND time > $start AND time <= $end'
)
Q_REGISTRY = 'SELECT * FROM "vehicle" WHERE "vin" = $vin'
Q_STOCK = (
    'SELECT last("on_hand") AS on_hand, "on_order", "lead_time_weeks" FROM "parts_stock" '
    'GROUP BY "dealer_id", "service_center", "part"'
)
Q_MASTER = 'SELECT "name", "unit_cost", "currency" FROM "part" GROUP BY "part"'


def rfc3339(ms: int) -> str:
    return utc_ms(ms).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RegistryRow:
    """What the vehicle registry (DMS `vehicle`) says about the vehicle's owner and home."""

    owner_name: str = ""
    owner_contact: str = ""
    service_center: str | None = None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


class InfluxSources:
    """The report's reads, each thread with its own client from `connect`."""

    def __init__(
        self,
        *,
        connect: Callable[[], InfluxClient],
        database: str,
        history_hours: float = 72.0,
        history_points: int = 200,
        cache_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self.database = database
        self.history_hours = history_hours
        self.history_points = history_points
        self._cache_s = cache_s
        self._clock = clock
        self._local = threading.local()
        self._clients: list[InfluxClient] = []
        self._lock = threading.Lock()
        self._stock: tuple[float, dict[tuple[str, str], StockLevel]] | None = None
        self._master: tuple[float, dict[str, dict[str, Any]]] | None = None

    def _client(self) -> InfluxClient:
        client: InfluxClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._connect()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()

    def _rows(self, text: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        try:
            series = self._client().query(text, database=self.database, params=dict(params) or None)
        except DatabaseNotFoundError:
            return []
        except RejectedError as exc:
            if "database not found" in str(exc):
                return []
            raise
        return [row for s in series for row in s.rows()]

    def history(self, vin: str, subsystem: str, end_ms: int) -> list[Point]:
        """The subsystem's points of the last history_hours up to `end_ms`, at most
        history_points of them (the newest), oldest first."""
        start_ms = end_ms - int(self.history_hours * HOUR_MS)
        rows = self._rows(
            Q_HISTORY.format(limit=int(self.history_points)),
            {"vin": vin, "subsystem": subsystem, "start": rfc3339(start_ms), "end": rfc3339(end_ms)},
        )
        points = []
        for row in rows:
            health, score = _number(row.get("health")), _number(row.get("anomaly_score"))
            if health is not None and score is not None and isinstance(row.get("time"), int):
                points.append(Point(at=utc_ms(row["time"]), health=health, anomaly_score=score))
        return sorted(points, key=lambda p: p.at)

    def last_estimate(
        self, vin: str, code: str, end_ms: int
    ) -> tuple[int, float, float | None, float | None] | None:
        """The latest days estimate of the fault within history_hours before `end_ms`: its time
        (ms), days, low and high."""
        start_ms = end_ms - int(self.history_hours * HOUR_MS)
        rows = self._rows(
            Q_ESTIMATE, {"vin": vin, "code": code, "start": rfc3339(start_ms), "end": rfc3339(end_ms)}
        )
        for row in rows:
            days = _number(row.get("days"))
            if days is not None and isinstance(row.get("time"), int):
                return row["time"], days, _number(row.get("days_low")), _number(row.get("days_high"))
        return None

    def registry(self, vin: str) -> RegistryRow | None:
        rows = self._rows(Q_REGISTRY, {"vin": vin})
        if not rows:
            return None
        row = rows[-1]
        return RegistryRow(
            owner_name=_text(row.get("owner_name")),
            owner_contact=_text(row.get("owner_contact")),
            service_center=_text(row.get("service_center")) or None,
        )

    def stock(self) -> dict[tuple[str, str], StockLevel]:
        """(service center, part) -> the latest count, cached for cache_s. A count without a
        service center is its dealer's one store (named by the dealer id), as the parts plan
        reads it (prognos.cloud.analytics.reading.read_stock)."""
        with self._lock:
            if self._stock is not None and self._clock() - self._stock[0] < self._cache_s:
                return self._stock[1]
        levels: dict[tuple[str, str], StockLevel] = {}
        for row in self._rows(Q_STOCK, {}):
            center = _text(row.get("service_center")) or _text(row.get("dealer_id"))
            part = _text(row.get("part"))
            if not center or not part:
                continue
            before = levels.get((center, part))
            on_hand = _number(row.get("on_hand")) or 0.0
            on_order = _number(row.get("on_order")) or 0.0
            lead = _number(row.get("lead_time_weeks"))
            if before is not None:
                on_hand += before.on_hand
                on_order += before.on_order
                lead = max((x for x in (lead, before.lead_time_weeks) if x is not None), default=None)
            levels[(center, part)] = StockLevel(on_hand=on_hand, on_order=on_order, lead_time_weeks=lead)
        with self._lock:
            self._stock = (self._clock(), levels)
        return levels

    def master(self) -> dict[str, dict[str, Any]]:
        """The parts master by part number (name, unit_cost, currency), cached for cache_s."""
        with self._lock:
            if self._master is not None and self._clock() - self._master[0] < self._cache_s:
                return self._master[1]
        master = {
            _text(row.get("part")): {
                "name": _text(row.get("name")),
                "unit_cost": _number(row.get("unit_cost")),
                "currency": _text(row.get("currency")),
            }
            for row in self._rows(Q_MASTER, {})
            if _text(row.get("part"))
        }
        with self._lock:
            self._master = (self._clock(), master)
        return master


def now_utc() -> datetime:
    return datetime.now(UTC)
