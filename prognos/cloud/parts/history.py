"""The parts demand history from the DMS work orders: the part units used per service center,
part and ISO week, and the rule that keeps a predicted failure from being counted twice. Pure:
DataFrames in, DataFrames out (docs/forecast.md states the rules).

- uses: one row per part unit fitted: vin, service_center, part, time (epoch ms, the order's
  opened_at). A work order's `parts` lists one entry per unit (the `work_order` kind).
- history: prognos.cloud.parts.plan.HISTORY_COLUMNS, ISO weeks (YYYY-Www).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from prognos.cloud.parts.plan import FAULT_PARTS, HISTORY_COLUMNS

USE_COLUMNS = ("vin", "service_center", "part", "time")
SEPARATOR = ";"  # between the part numbers of a work order (prognos.cloud.dealers.kinds)
WEEK_MS = 7 * 86_400_000


def _text(values: pd.Series) -> pd.Series:
    return values.fillna("").astype(str).str.strip().replace({"nan": "", "None": ""})


def part_uses(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per part unit of the work orders (dealer_id, vin, service_center, parts, time in
    epoch ms). An order without a service center was done at its dealer's one workshop, named
    by the dealer id (as the stock of prognos.cloud.analytics.reading.read_stock); orders
    without parts add nothing."""
    if orders.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "time" else str) for c in USE_COLUMNS})
    center = _text(orders["service_center"])
    frame = pd.DataFrame(
        {
            "vin": _text(orders["vin"]),
            "service_center": center.where(center != "", _text(orders["dealer_id"])),
            "part": _text(orders["parts"]).str.split(SEPARATOR),
            "time": pd.to_numeric(orders["time"], errors="coerce"),
        }
    )
    frame = frame.explode("part", ignore_index=True)
    frame["part"] = _text(frame["part"])
    frame = frame[(frame["part"] != "") & (frame["service_center"] != "") & frame["time"].notna()]
    return frame[list(USE_COLUMNS)].reset_index(drop=True)


def iso_week(ms: float) -> str:
    year, week, _ = datetime.fromtimestamp(ms / 1000, UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_start_ms(ms: float) -> int:
    """Monday 00:00 UTC of the ISO week holding `ms`."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    monday = (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(monday.timestamp() * 1000)


def demand_history(uses: pd.DataFrame, *, before_ms: int) -> pd.DataFrame:
    """Units used per ISO week, service center and part, over the whole weeks that ended by
    `before_ms`: the week still running is left out (its few days would read as a drop in
    demand). Weeks without a use have no row (the plan counts them as zero)."""
    cutoff = week_start_ms(before_ms)
    kept = uses[pd.to_numeric(uses["time"], errors="coerce") < cutoff]
    if kept.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "units" else str) for c in HISTORY_COLUMNS})
    weekly = (
        kept.assign(week=[iso_week(t) for t in kept["time"]])
        .groupby(["week", "service_center", "part"], as_index=False)
        .size()
        .rename(columns={"size": "units"})
    )
    weekly["units"] = weekly["units"].astype(float)
    return weekly.sort_values(["week", "service_center", "part"])[list(HISTORY_COLUMNS)].reset_index(
        drop=True
    )


def unrepaired(faults: pd.DataFrame, uses: pd.DataFrame) -> pd.DataFrame:
    """The open faults (vin, code, time: the fault's latest point, ...) whose part the vehicle
    has not had fitted since: a work order of the same vehicle that used the fault's part
    (FAULT_PARTS) at or after the fault's latest point is the repair, which the demand history
    already counts. Codes without a part pass unchanged."""
    if faults.empty or uses.empty:
        return faults
    parts = faults["code"].map(lambda code: FAULT_PARTS[code].part if code in FAULT_PARTS else "")
    last_use = uses.groupby(["vin", "part"])["time"].max()
    fitted = [
        bool(part) and (str(vin), part) in last_use.index and last_use[(str(vin), part)] >= float(t)
        for vin, part, t in zip(faults["vin"], parts, faults["time"], strict=True)
    ]
    return faults[[not f for f in fitted]].reset_index(drop=True)
