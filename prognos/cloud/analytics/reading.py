"""What the analytics job reads: the window of diagnostic records, from daily rollups for whole
settled days and from raw points for the rest, the registry and the stock, as the DataFrames
the pure analytics take (docs/analytics.md)."""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from prognos.cloud.analytics.alerts import open_faults
from prognos.cloud.analytics.analyse import Inputs, parts_failures
from prognos.cloud.analytics.common import DAY_MS, DEFAULT_SETTINGS, AnalyticsSettings
from prognos.cloud.dealers.data import read_frame, vehicles
from prognos.cloud.parts.accuracy import KEPT_COLUMNS, TRACK_WEEKS
from prognos.cloud.parts.history import part_uses
from prognos.cloud.parts.plan import DEFAULT_LEAD_TIME_WEEKS
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import DatabaseNotFoundError, InfluxClient, quote_identifier
from prognos.cloud.storage.encode import encode
from prognos.cloud.storage.writer import InfluxWriter
from prognos.errors import ConfigError, RejectedError, TransientError

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 30.0
HISTORY_DAYS = 366.0  # the work orders the parts plan's demand history reads
BASELINE_DAYS = 7.0  # the drift baseline: mean health over the window's first days
BATCH_LINES = 5000

# A failed write ends the run, whose snapshot then has no marker: the next run writes it again,
# and `--every` reports the failure and goes on at the next run's time.
WRITE_ATTEMPTS = 1
PRECISION = schema.ANALYTICS_RUN.precision  # of every point the job writes


def job_writer(influx: InfluxClient, database: str) -> InfluxWriter:
    return InfluxWriter(client=influx, database=database, batch_lines=BATCH_LINES, attempts=WRITE_ATTEMPTS)


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- Daily rollups. A run reads the window (T - lookback, T] from two sources: whole UTC days
# that are settled (ended SETTLE_DAYS ago or more) from rollups the job keeps with SELECT ... INTO,
# one point per series and day, in a retention policy of their own whose shards are years long;
# the rest (the window's partial first day, the unsettled days) from the raw points. InfluxDB
# 1.x spends most of a query on every series in every shard it touches (the raw points sit in
# week-long shards), so a run that reads a month of rollups from one shard and a day or two of
# raw points is several times cheaper than one that reads the month raw, and gives the same
# results. A day is rolled up once, by the first run that needs it, and marked; records that
# arrive later than SETTLE_DAYS after their day are stored but left out of that day's rollup
# until its marker is deleted (DELETE FROM analytics_rollup_day WHERE time = ...; the next run
# rolls the day up again).
SETTLE_DAYS = 1.0
ROLLUP_RP = schema.ROLLUP_POLICY
ROLLUP_SHARD = "520w"
ROLLED_SPAN_DAYS = 31  # rolled days read in one query
ROLLUP_BUDGET_S = 2.0  # about how long one rollup query may take
MAX_ROLLUP_DAYS = 31  # days rolled up in one query
VIN_CHUNK = 100  # vehicles per query when a series' latest point lies in a rolled day
Q_POLICIES = "SHOW RETENTION POLICIES"
Q_SUBSYSTEMS = 'SHOW TAG VALUES FROM vehicle_health WITH KEY = "subsystem"'
Q_ROLLUP_HEALTH = (  # one subsystem at a time, so that each query stays short
    'SELECT sum("health") AS health_sum, count("health") AS health_points, '
    'max("anomaly_score") AS score_max INTO "rollup"."health_day" FROM vehicle_health '
    'WHERE "subsystem" = $subsystem AND time >= $lo AND time < $hi '
    "GROUP BY time(1d), fleet, vin, subsystem fill(none)"
)
ROLLUP_QUERIES = (
    'SELECT count("seq") AS records INTO "rollup"."diag_day" FROM diag '
    "WHERE time >= $lo AND time < $hi GROUP BY time(1d), fleet, vin fill(none)",
    'SELECT count("confidence") AS points, count("days_to_threshold") AS estimates '
    'INTO "rollup"."fault_day" FROM fault '
    "WHERE time >= $lo AND time < $hi GROUP BY time(1d), fleet, vin, code fill(none)",
)
ROLLUP_MARKER = schema.ANALYTICS_ROLLUP_DAY.name  # one point per rolled-up day, in the default policy
Q_MARKERS = f'SELECT "done" FROM {ROLLUP_MARKER} WHERE time >= $lo AND time < $hi'

# Each input as (raw query, rollup query); {where} is a piece's time condition. Queries of
# vehicle_health name one subsystem: InfluxDB 1.x's cost grows faster than the number of series
# a query groups, and five queries of 10,000 series each take a third of one of 50,000.
Q_STATES = (
    'SELECT last("health") AS health, "anomaly_score" FROM vehicle_health '
    'WHERE "subsystem" = $subsystem AND {where} GROUP BY fleet, vin, subsystem'
)
Q_LAST_SEEN = (
    'SELECT last("seq") AS seq FROM diag WHERE {where} GROUP BY fleet, vin',
    'SELECT last("records") AS n FROM "rollup"."diag_day" WHERE {where} GROUP BY fleet, vin',
)
Q_FAULTS = (  # the causes come from the latest point itself (docs/storage.md, "Causes and conditions")
    'SELECT last("confidence") AS confidence, "cause_1_code" AS cause_code, '
    '"cause_1_probability" AS cause_probability FROM fault WHERE {where} GROUP BY fleet, vin, code',
    'SELECT last("points") AS n FROM "rollup"."fault_day" WHERE {where} GROUP BY fleet, vin, code',
)
Q_ESTIMATES = (
    'SELECT last("days_to_threshold") AS days_to_threshold, "days_low", "days_high" FROM fault '
    "WHERE {where} GROUP BY vin, code",
    'SELECT last("estimates") AS n FROM "rollup"."fault_day" WHERE "estimates" > 0 AND {where} '
    "GROUP BY vin, code",
)
Q_FAULT_COUNTS = (
    'SELECT count("confidence") AS points FROM fault WHERE {where} GROUP BY vin, code',
    'SELECT sum("points") AS points FROM "rollup"."fault_day" WHERE {where} GROUP BY vin, code',
)
Q_PEAKS = (
    'SELECT max("anomaly_score") AS max_score FROM vehicle_health '
    'WHERE "subsystem" = $subsystem AND {where} GROUP BY vin, subsystem',
    'SELECT max("score_max") AS max_score FROM "rollup"."health_day" '
    'WHERE "subsystem" = $subsystem AND {where} GROUP BY vin, subsystem',
)
Q_BASELINE = (  # one query of raw points: rolled days would come with a raw query for each partial day
    'SELECT mean("health") AS health FROM vehicle_health '
    'WHERE "subsystem" = $subsystem AND time > $start AND time <= $baseline_end GROUP BY vin, subsystem'
)
Q_WEAR = (
    'SELECT sum("health") AS health_sum, count("health") AS points FROM vehicle_health '
    'WHERE "subsystem" = $subsystem AND {where} GROUP BY time(1d), vin fill(none)',
    'SELECT "health_sum", "health_points" AS points FROM "rollup"."health_day" '
    'WHERE "subsystem" = $subsystem AND {where} GROUP BY vin',
)
Q_STOCK = (
    'SELECT last("on_hand") AS on_hand, "on_order", "lead_time_weeks" FROM parts_stock '
    "GROUP BY dealer_id, service_center, part"
)
Q_PART_USES = (
    'SELECT "vin", "service_center", "parts" FROM work_order '
    "WHERE time > $lo AND time <= $hi AND part_count > 0 GROUP BY dealer_id"
)


@dataclass(frozen=True)
class Piece:
    """A stretch of the window read from one source: rolled-up whole days, or raw points."""

    lo_ms: int
    hi_ms: int
    lo_closed: bool  # time >= lo, else time > lo
    hi_closed: bool  # time <= hi, else time < hi
    rolled: bool

    def where(self) -> tuple[str, dict[str, str]]:
        text = f"time {'>=' if self.lo_closed else '>'} $lo AND time {'<=' if self.hi_closed else '<'} $hi"
        return text, {"lo": rfc3339(self.lo_ms), "hi": rfc3339(self.hi_ms)}


def window_pieces(
    start_ms: int, end_ms: int, rolled: Collection[int] = (), *, head_rolled: bool = False
) -> list[Piece]:
    """(start, end] cut at every midnight (UTC). A whole day inside it whose rollup exists (its
    midnight in `rolled`) is read from the rollup, consecutive days together (at most
    ROLLED_SPAN_DAYS); the rest from the raw points, consecutive stretches together. With
    `head_rolled`, the partial first day counts as rolled too when its whole day is (for the
    latest points, which are then looked up within the window)."""
    first_day = start_ms // DAY_MS * DAY_MS
    cuts = [start_ms, *range(first_day + DAY_MS, end_ms, DAY_MS), end_ms]
    out: list[Piece] = []
    for lo, hi in itertools.pairwise(cuts):
        lo_closed, hi_closed = lo != start_ms, hi == end_ms
        whole = lo_closed and not hi_closed and hi - lo == DAY_MS and lo in rolled
        if head_rolled and not lo_closed and not hi_closed and first_day in rolled:
            lo, lo_closed, whole = first_day, True, True
        last = out[-1] if out else None
        if (
            last is not None
            and last.rolled == whole
            and (not whole or last.hi_ms - last.lo_ms < ROLLED_SPAN_DAYS * DAY_MS)
        ):
            out[-1] = Piece(last.lo_ms, hi, last.lo_closed, hi_closed, whole)
        else:
            out.append(Piece(lo, hi, lo_closed, hi_closed, whole))
    return out


def query_rows(
    influx: InfluxClient, database: str, text: str, params: Mapping[str, str], *, method: str = "GET"
) -> list[dict[str, Any]]:
    try:
        series = influx.query(text, database=database, params=dict(params) or None, method=method)
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise
    return [row for s in series for row in s.rows()]


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(
                dtype=object if column in ("fleet", "vin", "code", "subsystem") else float
            )
    return frame[list(columns)].reset_index(drop=True)


def _frame(
    influx: InfluxClient, database: str, text: str, params: Mapping[str, str], columns: tuple[str, ...]
) -> pd.DataFrame:
    return _table(query_rows(influx, database, text, params), columns)


def ensure_rollup_policy(influx: InfluxClient, database: str) -> None:
    """The rollups' retention policy, created if missing (creating one takes an admin login:
    on a secure stack `prognos stack up` creates it with the database)."""
    if ROLLUP_RP not in {str(row.get("name")) for row in query_rows(influx, database, Q_POLICIES, {})}:
        query_rows(
            influx,
            database,
            f"CREATE RETENTION POLICY {quote_identifier(ROLLUP_RP)} ON {quote_identifier(database)} "
            f"DURATION INF REPLICATION 1 SHARD DURATION {ROLLUP_SHARD}",
            {},
            method="POST",
        )


def roll_up(influx: InfluxClient, database: str, start_ms: int, end_ms: int, *, now_ms: int) -> set[int]:
    """The midnights of the days of (start, end] that have a rollup: the whole days settled by
    `now_ms` (real time), rolled up now if they were not before. Missing days are rolled up a
    few at a time: one day first, then as many as fit ROLLUP_BUDGET_S a query. If a rollup
    query fails for a transient reason (a timeout), the rest waits for the next run and this
    run reads those days raw."""
    first = start_ms // DAY_MS * DAY_MS
    last = min(end_ms - DAY_MS, now_ms - int((1 + SETTLE_DAYS) * DAY_MS))
    days = list(range(first, last + 1, DAY_MS))
    if not days:
        return set()
    ensure_rollup_policy(influx, database)
    span = {"lo": rfc3339(days[0]), "hi": rfc3339(days[-1] + DAY_MS)}
    done = {int(row["time"]) for row in query_rows(influx, database, Q_MARKERS, span)}
    missing = [day for day in days if day not in done]
    subsystems = _subsystems(influx, database) if missing else ()
    step = 1
    while missing:
        chunk = [missing[0]]
        while len(chunk) < step and len(chunk) < len(missing) and missing[len(chunk)] == chunk[-1] + DAY_MS:
            chunk.append(missing[len(chunk)])
        bounds = {"lo": rfc3339(chunk[0]), "hi": rfc3339(chunk[-1] + DAY_MS)}
        queries = [(Q_ROLLUP_HEALTH, {**bounds, "subsystem": name}) for name in subsystems]
        queries += [(text, bounds) for text in ROLLUP_QUERIES]
        longest = 0.0
        try:
            for text, params in queries:
                started = time.monotonic()
                query_rows(influx, database, text, params, method="POST")
                longest = max(longest, time.monotonic() - started)
            markers = [encode(schema.ANALYTICS_ROLLUP_DAY, {}, {"done": True}, day) for day in chunk]
            job_writer(influx, database).write(markers, precision=PRECISION)
        except TransientError as exc:
            log.warning("rollup of %s stopped (%s); the next run goes on with it", rfc3339(chunk[0]), exc)
            break
        done.update(chunk)
        step = max(1, min(MAX_ROLLUP_DAYS, int(ROLLUP_BUDGET_S * len(chunk) / max(longest, 1e-3))))
        missing = missing[len(chunk) :]
        log.debug("rolled up %d days from %s", len(chunk), rfc3339(chunk[0]))
    return {day for day in days if day in done}


def _subsystems(influx: InfluxClient, database: str) -> tuple[str, ...]:
    return tuple(sorted(str(row["value"]) for row in query_rows(influx, database, Q_SUBSYSTEMS, {})))


def _each_piece(
    influx: InfluxClient,
    database: str,
    queries: tuple[str, str],
    pieces: Sequence[Piece],
    params: Mapping[str, str] | None = None,
) -> Iterator[tuple[Piece, list[dict[str, Any]]]]:
    for piece in pieces:
        where, bounds = piece.where()
        text = queries[1 if piece.rolled else 0].format(where=where)
        yield piece, query_rows(influx, database, text, {**(params or {}), **bounds})


@dataclass(frozen=True)
class Window:
    """The window (start, end] and how it is read: `pieces` for the sums and maxima, `latest`
    for the latest points (the partial first day from its rollup too, then looked up)."""

    start_ms: int
    end_ms: int
    pieces: tuple[Piece, ...]
    latest: tuple[Piece, ...]
    rolled: frozenset[int]
    subsystems: tuple[str, ...]  # those vehicle_health has points of


def _latest(
    influx: InfluxClient,
    database: str,
    queries: tuple[str, str],
    window: Window,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
) -> pd.DataFrame:
    """Per group of `keys`, the latest row of the raw query over the window. Raw pieces answer
    directly; a rolled piece tells each group's last day with data, and the groups whose latest
    point lies in such a day are looked up in that day's raw points (within the window), a few
    vehicles a query."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    last_day: dict[tuple[Any, ...], int] = {}

    def take(row: dict[str, Any]) -> None:
        key = tuple(row.get(k) for k in keys)
        if key not in found or row["time"] > found[key]["time"]:
            found[key] = row

    for piece, rows in _each_piece(influx, database, queries, window.latest):
        for row in rows:
            if piece.rolled:
                key = tuple(row.get(k) for k in keys)
                last_day[key] = max(last_day.get(key, row["time"]), row["time"])
            else:
                take(row)
    wanted: dict[int, set[str]] = defaultdict(set)
    for key, day in last_day.items():
        if key not in found or found[key]["time"] < day + DAY_MS:
            wanted[day].add(str(key[keys.index("vin")]))
    for day, vins in sorted(wanted.items()):
        after = ">" if day <= window.start_ms else ">="
        bounds = {"lo": rfc3339(max(day, window.start_ms)), "hi": rfc3339(day + DAY_MS)}
        ordered = sorted(vins)
        for at in range(0, len(ordered), VIN_CHUNK):
            names = {f"v{i}": vin for i, vin in enumerate(ordered[at : at + VIN_CHUNK])}
            who = " OR ".join(f'"vin" = ${name}' for name in names)
            where = f"({who}) AND time {after} $lo AND time < $hi"
            for row in query_rows(influx, database, queries[0].format(where=where), {**names, **bounds}):
                take(row)
    return _table(list(found.values()), columns)


def _states(
    influx: InfluxClient, database: str, window: Window, known: Collection[tuple[str, str]]
) -> pd.DataFrame:
    """The latest state of every (vin, subsystem) of `known` (those with points in the window):
    from the raw points after the last rolled day, where nearly every vehicle reports; the
    others are looked up over the whole window, a few vehicles a query."""
    columns = ("fleet", "vin", "subsystem", "time", "health", "anomaly_score")
    tail: list[Piece] = []
    for piece in window.pieces:
        tail = [] if piece.rolled else [*tail, piece]
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def take(row: dict[str, Any]) -> None:
        key = (str(row["vin"]), str(row["subsystem"]))
        if key not in found or row["time"] > found[key]["time"]:
            found[key] = row

    for piece in tail:
        where, bounds = piece.where()
        for name in window.subsystems:
            for row in query_rows(
                influx, database, Q_STATES.format(where=where), {**bounds, "subsystem": name}
            ):
                take(row)
    if len(tail) < len(window.pieces):
        bounds = {"lo": rfc3339(window.start_ms), "hi": rfc3339(window.end_ms)}
        unseen: dict[str, list[str]] = defaultdict(list)
        for vin, subsystem in sorted(known):
            if (vin, subsystem) not in found:
                unseen[subsystem].append(vin)
        for subsystem, vins in unseen.items():
            for at in range(0, len(vins), VIN_CHUNK):
                names = {f"v{i}": vin for i, vin in enumerate(vins[at : at + VIN_CHUNK])}
                who = " OR ".join(f'"vin" = ${name}' for name in names)
                where = f"({who}) AND time > $lo AND time <= $hi"
                params = {**names, **bounds, "subsystem": subsystem}
                for row in query_rows(influx, database, Q_STATES.format(where=where), params):
                    take(row)
    return _table(list(found.values()), columns)


def _summed(
    influx: InfluxClient,
    database: str,
    queries: tuple[str, str],
    pieces: Sequence[Piece],
    keys: tuple[str, ...],
    how: Mapping[str, str],
    params: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The pieces' rows combined per group of `keys`: each column of `how` by its function."""
    rows = [row for _, part in _each_piece(influx, database, queries, pieces, params) for row in part]
    frame = _table(rows, (*keys, *how))
    if frame.empty:
        return frame
    return frame.groupby(list(keys), as_index=False, sort=False).agg(dict(how))


def _stacked(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """The frames one under the other (an empty table of `columns` when there are none)."""
    filled = [frame for frame in frames if not frame.empty]
    return pd.concat(filled, ignore_index=True) if filled else _table([], columns)


def _mean(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """health = health_sum / points, per group."""
    health = pd.to_numeric(frame["health_sum"], errors="coerce") / pd.to_numeric(
        frame["points"], errors="coerce"
    )
    return frame[list(keys)].assign(health=health.to_numpy(float))


def _window(as_of_ms: int, lookback_days: float) -> tuple[int, int]:
    return as_of_ms - int(lookback_days * DAY_MS), as_of_ms


def read_window(
    influx: InfluxClient, database: str, start_ms: int, end_ms: int, *, now_ms: int | None = None
) -> Window:
    """How to read (start, end]: rolls up the settled days first (settled by `now_ms`, default
    the clock)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    rolled = frozenset(roll_up(influx, database, start_ms, end_ms, now_ms=now))
    return Window(
        start_ms,
        end_ms,
        tuple(window_pieces(start_ms, end_ms, rolled)),
        tuple(window_pieces(start_ms, end_ms, rolled, head_rolled=True)),
        rolled,
        _subsystems(influx, database),
    )


def _faults(influx: InfluxClient, database: str, window: Window) -> pd.DataFrame:
    latest = _latest(
        influx,
        database,
        Q_FAULTS,
        window,
        ("fleet", "vin", "code"),
        ("fleet", "vin", "code", "time", "confidence", "cause_code", "cause_probability"),
    )
    estimates = _latest(
        influx,
        database,
        Q_ESTIMATES,
        window,
        ("vin", "code"),
        ("vin", "code", "time", "days_to_threshold", "days_low", "days_high"),
    ).rename(columns={"time": "estimated_at"})
    if latest.empty:
        return latest.assign(
            **{
                c: pd.Series(dtype=float)
                for c in ("days_to_threshold", "days_low", "days_high", "estimated_at")
            }
        )
    latest = latest.groupby(["vin", "code"], as_index=False).agg(
        fleet=("fleet", "last"),
        time=("time", "max"),
        confidence=("confidence", "last"),
        cause_code=("cause_code", "last"),
        cause_probability=("cause_probability", "last"),
    )
    merged = latest.merge(estimates, on=["vin", "code"], how="left")
    return merged[
        [
            "fleet",
            "vin",
            "code",
            "time",
            "confidence",
            "cause_code",
            "cause_probability",
            "days_to_threshold",
            "days_low",
            "days_high",
            "estimated_at",
        ]
    ]


def read_faults(influx: InfluxClient, database: str, as_of_ms: int, lookback_days: float) -> pd.DataFrame:
    """Per vehicle and fault code: the latest point and the latest days estimate (the `faults`
    frame of prognos.cloud.analytics)."""
    return _faults(influx, database, read_window(influx, database, *_window(as_of_ms, lookback_days)))


def _last_seen(influx: InfluxClient, database: str, window: Window) -> pd.DataFrame:
    return _latest(influx, database, Q_LAST_SEEN, window, ("fleet", "vin"), ("fleet", "vin", "time"))


def read_last_seen(influx: InfluxClient, database: str, as_of_ms: int, lookback_days: float) -> pd.DataFrame:
    return _last_seen(influx, database, read_window(influx, database, *_window(as_of_ms, lookback_days)))


def read_registry(influx: InfluxClient, database: str) -> pd.DataFrame:
    try:
        return vehicles(influx, database)
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise


def read_stock(
    influx: InfluxClient, database: str, *, default_lead_time_weeks: float = DEFAULT_LEAD_TIME_WEEKS
) -> pd.DataFrame:
    """The latest count of every store and part imported from DMS `parts_stock`, as the stock
    table of prognos.cloud.parts.plan: a row without a service center is the dealer's one store (named by
    the dealer id); a missing lead time is `default_lead_time_weeks`, a missing on_order 0."""
    frame = _frame(
        influx,
        database,
        Q_STOCK,
        {},
        ("dealer_id", "service_center", "part", "on_hand", "on_order", "lead_time_weeks"),
    )
    columns = ["service_center", "part", "on_hand", "on_order", "lead_time_weeks"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=str if c in columns[:2] else float) for c in columns})
    center = frame["service_center"].fillna("").astype(str).str.strip()
    frame["service_center"] = center.where(center != "", frame["dealer_id"].astype(str))
    frame["on_order"] = pd.to_numeric(frame["on_order"], errors="coerce").fillna(0.0)
    frame["lead_time_weeks"] = pd.to_numeric(frame["lead_time_weeks"], errors="coerce").fillna(
        default_lead_time_weeks
    )
    frame["on_hand"] = pd.to_numeric(frame["on_hand"], errors="coerce").fillna(0.0)
    grouped = frame.groupby(["service_center", "part"], as_index=False).agg(
        on_hand=("on_hand", "sum"), on_order=("on_order", "sum"), lead_time_weeks=("lead_time_weeks", "max")
    )
    return grouped[columns]


def read_part_uses(
    influx: InfluxClient, database: str, as_of_ms: int, *, history_days: float = HISTORY_DAYS
) -> pd.DataFrame:
    """The part units fitted on the DMS work orders opened in (as_of - history_days, as_of]
    (prognos.cloud.parts.history.part_uses)."""
    start, end = _window(as_of_ms, history_days)
    bounds = {"lo": rfc3339(start), "hi": rfc3339(end)}
    orders = _frame(
        influx, database, Q_PART_USES, bounds, ("dealer_id", "vin", "service_center", "parts", "time")
    )
    return part_uses(orders)


def read_parts_master(influx: InfluxClient, database: str) -> pd.DataFrame:
    """The parts master: the DMS `part` kind, one row per part number."""
    try:
        return read_frame(influx, database, "part")
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise


Q_PARTS_KEPT = 'SELECT * FROM "parts_forecast_kept" WHERE time > $lo AND time <= $hi'


def read_parts_kept(
    influx: InfluxClient, database: str, as_of_ms: int, *, weeks: int = TRACK_WEEKS
) -> pd.DataFrame:
    """The kept weekly forecasts of the plans made in the last `weeks` weeks
    (prognos.cloud.parts.accuracy.KEPT_COLUMNS, with `actual` where a run has written it)."""
    bounds = {"lo": rfc3339(as_of_ms - (weeks + 1) * 7 * int(DAY_MS)), "hi": rfc3339(as_of_ms)}
    frame = _frame(influx, database, Q_PARTS_KEPT, bounds, ("time", *KEPT_COLUMNS[1:], "actual"))
    frame = frame.rename(columns={"time": "origin_ms"})
    frame["lead"] = pd.to_numeric(frame["lead"], errors="coerce")
    return frame[~frame["lead"].isna()].astype({"lead": int}).reset_index(drop=True)


def read_service_centers(influx: InfluxClient, database: str) -> pd.DataFrame:
    """The service centers: the DMS `service_center` kind, one row per center."""
    try:
        return read_frame(influx, database, "service_center")
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise


def read_inputs(
    influx: InfluxClient,
    database: str,
    as_of_ms: int,
    *,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
    now_ms: int | None = None,
) -> Inputs:
    """Everything prognos.cloud.analytics.analyse needs, for the window (as_of - lookback, as_of]; rolls
    up the settled days it needs first (settled by `now_ms`, default the clock)."""
    start, end = _window(as_of_ms, lookback_days)
    baseline_end = as_of_ms - int(max(lookback_days - BASELINE_DAYS, 0.0) * DAY_MS)
    window = read_window(influx, database, start, end, now_ms=now_ms)
    peaks = _stacked(
        [
            _summed(
                influx,
                database,
                Q_PEAKS,
                window.pieces,
                ("vin", "subsystem"),
                {"max_score": "max"},
                {"subsystem": name},
            )
            for name in window.subsystems
        ],
        ("vin", "subsystem", "max_score"),
    )
    known = set(zip(peaks["vin"].astype(str), peaks["subsystem"].astype(str), strict=True))
    wear = [
        _mean(
            _summed(
                influx,
                database,
                Q_WEAR,
                window.pieces,
                ("vin", "time"),
                {"health_sum": "sum", "points": "sum"},
                {"subsystem": item.subsystem},
            ),
            ("vin", "time"),
        ).assign(subsystem=item.subsystem)
        for item in settings.wear_items
    ]
    return Inputs(
        registry=read_registry(influx, database),
        states=_states(influx, database, window, known),
        last_seen=_last_seen(influx, database, window),
        faults=_faults(influx, database, window),
        fault_counts=_summed(
            influx, database, Q_FAULT_COUNTS, window.pieces, ("vin", "code"), {"points": "sum"}
        ),
        peaks=peaks,
        baseline=_stacked(
            [
                _frame(
                    influx,
                    database,
                    Q_BASELINE,
                    {"start": rfc3339(start), "baseline_end": rfc3339(baseline_end), "subsystem": name},
                    ("vin", "subsystem", "health"),
                )
                for name in window.subsystems
            ],
            ("vin", "subsystem", "health"),
        ),
        wear=pd.concat(wear, ignore_index=True)
        if wear
        else pd.DataFrame(columns=["vin", "time", "health", "subsystem"]),
        stock=read_stock(influx, database),
        part_uses=read_part_uses(influx, database, as_of_ms),
        parts_master=read_parts_master(influx, database),
        service_centers=read_service_centers(influx, database),
        parts_kept=read_parts_kept(influx, database, as_of_ms),
    )


def read_failures(
    influx: InfluxClient, database: str, as_of_ms: int, *, lookback_days: float = DEFAULT_LOOKBACK_DAYS
) -> pd.DataFrame:
    """The failures table of prognos.cloud.parts.plan from the open faults and the registry, days counted
    from `as_of_ms` (for `prognos forecast parts` without --failures)."""
    window = read_window(influx, database, *_window(as_of_ms, lookback_days))
    opened = open_faults(_faults(influx, database, window), _last_seen(influx, database, window))
    return parts_failures(opened, read_registry(influx, database), as_of_ms)


# ---- The latest snapshot's results, for readers outside the job (docs/analytics.md, "Snapshots").
Q_LATEST_RUN = f'SELECT last("alerts") AS alerts FROM {quote_identifier(schema.ANALYTICS_RUN.name)}'
Q_SNAPSHOT_ALERTS = f"SELECT * FROM {quote_identifier(schema.ALERT.name)} WHERE time = $t"
SNAPSHOT_ALERT_COLUMNS = (
    "time",
    *schema.ALERT.column_names(first=("rank", "priority", "vin", "fleet", "code")),
)


def latest_snapshot_ms(influx: InfluxClient, database: str) -> int | None:
    """The time T of the latest complete snapshot (its `analytics_run` marker, epoch ms), or None
    before the job has completed one, a database that does not exist yet included."""
    try:
        series = influx.query(Q_LATEST_RUN, database=database)
    except (RejectedError, DatabaseNotFoundError) as exc:
        if "database not found" in str(exc):
            return None
        raise
    rows = [row for s in series for row in s.rows()]
    return int(rows[0]["time"]) if rows else None


def snapshot_alerts(influx: InfluxClient, database: str, at_ms: int) -> pd.DataFrame:
    """The `alert` points of the snapshot at `at_ms`, most urgent first (rank 1), with the columns
    SNAPSHOT_ALERT_COLUMNS (a field a point lacks is NaN)."""
    frame = _frame(influx, database, Q_SNAPSHOT_ALERTS, {"t": rfc3339(at_ms)}, SNAPSHOT_ALERT_COLUMNS)
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)
