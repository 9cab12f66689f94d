"""What a parts planner decides this week: transfers between service centers first, then the
orders that remain, each with its need-by date and a sentence that says why; and, for a
campaign, the parts to pre-stock at the centers its vehicles will visit. Pure: DataFrames in,
DataFrames out (docs/forecast.md, "Decisions").

Inputs:
- plan: the reorder table of prognos.cloud.parts.plan (REORDER_COLUMNS) with the parts
  master's columns (prognos.cloud.parts.master.with_costs): one row per service center and part.
- weekly: the weekly forecast (service_center, part, forecast), each pair's rows in week order,
  week 1 starting now (as plan_parts gives it).
- centers: the DMS `service_center` kind (service_center, dealer_id, lat, lon).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from prognos.cloud.parts.forecast import pmf_quantile
from prognos.cloud.parts.master import order_units, with_costs
from prognos.cloud.parts.plan import DEFAULT_SERVICE_LEVEL, bernoulli_sum_pmf

DAY_MS = 86_400_000
# Stock moves between two service centers within a day's drive of each other (or, where a
# center's place is unknown, between centers of the same dealer), and arrives TRANSFER_DAYS
# after it is asked for: picked one day, delivered the next.
TRANSFER_MAX_KM = 300.0
TRANSFER_DAYS = 2.0
EARTH_RADIUS_KM = 6371.0
UNIT = "EA"  # the unit of every quantity: each, one piece (a pack holds pack_size of them)

LANE_COLUMNS = ("from_center", "to_center", "distance_km", "transfer_days")
# One line per decision. action: "order" (from the supplier) or "transfer" (from from_center);
# service_center is where the parts go. line_cost: what an order costs, what a transfer's
# units are worth (nothing is bought).
DECISION_COLUMNS = (
    "action",
    "service_center",
    "part",
    "from_center",
    "name",
    "supplier",
    "quantity",
    "unit",
    "pack_size",
    "unit_cost",
    "line_cost",
    "currency",
    "need_by",
    "need_by_ms",
    "cover_days",
    "lead_time_days",
    "reason",
)
# What decide adds to each plan row.
DECIDED_COLUMNS = ("transfer_in", "transfer_from", "transfer_out", "transfer_to", "cover_days", "reason")
CAMPAIGN_STOCK_COLUMNS = (
    "cohort_id",
    "service_center",
    "part",
    "name",
    "code",
    "vehicles",
    "affected",
    "in_plan",
    "expected_units",
    "units_needed",
    "available",
    "to_stock",
    "order_units",
    "order_cost",
    "currency",
    "reason",
)
# The order list as a purchasing system imports it: stored name -> column heading.
ORDER_LIST_HEADINGS = {
    "supplier": "Supplier",
    "part": "Part number",
    "name": "Part name",
    "quantity": "Quantity",
    "unit": "Unit",
    "unit_cost": "Unit cost",
    "line_cost": "Line cost",
    "currency": "Currency",
    "service_center": "Deliver to",
    "need_by": "Need by",
}


# ---------------------------------------------------------------- where stock can move


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two WGS 84 points (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def transfer_lanes(
    centers: pd.DataFrame | None,
    *,
    max_km: float = TRANSFER_MAX_KM,
    transfer_days: float = TRANSFER_DAYS,
) -> pd.DataFrame:
    """LANE_COLUMNS: every ordered pair of service centers between which stock may move. Two
    centers with a place are within `max_km` of each other; a center without one may move
    stock only to and from centers of its own dealer (distance NaN)."""
    if centers is None or centers.empty:
        return pd.DataFrame({c: pd.Series(dtype=str if "center" in c else float) for c in LANE_COLUMNS})
    frame = centers.reindex(columns=["service_center", "dealer_id", "lat", "lon"]).copy()
    frame["service_center"] = frame["service_center"].fillna("").astype(str).str.strip()
    frame["dealer_id"] = frame["dealer_id"].fillna("").astype(str).str.strip()
    frame = frame[frame["service_center"] != ""].drop_duplicates("service_center", keep="last")
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(float)
    names, dealers = frame["service_center"].tolist(), frame["dealer_id"].tolist()
    rows = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                continue
            placed = bool(np.isfinite([lat[i], lon[i], lat[j], lon[j]]).all())
            km = distance_km(lat[i], lon[i], lat[j], lon[j]) if placed else math.nan
            if (placed and km <= max_km) or (not placed and dealers[i] and dealers[i] == dealers[j]):
                rows.append((a, b, round(km, 1) if placed else math.nan, transfer_days))
    return pd.DataFrame(rows, columns=list(LANE_COLUMNS))


# ---------------------------------------------------------------- time until stock runs out


def cover_days(forecast: npt.ArrayLike, position: float) -> float:
    """Days until the expected demand (`forecast`: units per week, week 1 starting now, spread
    evenly over each week) uses up `position` units; NaN when it lasts past the last week."""
    weekly = np.maximum(np.asarray(forecast, dtype=np.float64), 0.0)
    if position <= 0:
        return 0.0
    cumulative = np.concatenate(([0.0], np.cumsum(weekly)))
    k = int(np.searchsorted(cumulative, position, side="left"))
    if k >= cumulative.size:
        return math.nan
    step = cumulative[k] - cumulative[k - 1]
    return float(7.0 * (k - 1) + 7.0 * (position - cumulative[k - 1]) / step)


# ---------------------------------------------------------------- the sentence


def _count(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def window_text(weeks: float) -> str:
    """`2 weeks`, `1 week`, or in days when not whole weeks (`17 days`)."""
    days = round(7.0 * weeks)
    if days % 7 == 0:
        whole = days // 7
        return f"{whole} week" if whole == 1 else f"{whole} weeks"
    return f"{days} days"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def reason_text(row: Mapping[str, object], *, service_level: float = DEFAULT_SERVICE_LEVEL) -> str:
    """Why a service center and part gets what it gets, in one sentence: the demand over lead
    time + review period (predicted failures and the history's baseline), the need at the
    service level, the stock, the lead time, and the decision. `row` is a plan row after
    decide (REORDER_COLUMNS, the master's columns and DECIDED_COLUMNS); with
    `cover_after_days` (days the stock lasts after this week's transfers) an order whose stock
    runs out before its lead time says to expedite."""
    center = str(row["service_center"])
    window = window_text(float(str(row["lead_time_weeks"])) + float(str(row["review_weeks"])))
    due = int(_number(row, "failures_due"))
    from_failures = _number(row, "from_failures")
    baseline = _number(row, "baseline_per_week")
    parts = []
    if due > 0:
        parts.append(f"{_plural(due, 'predicted failure')} at {center} in the next {window}")
    elif from_failures >= 0.05:
        parts.append(
            f"predicted failures at {center} that may fall in the next {window} "
            f"({from_failures:.1f} expected)"
        )
    if baseline >= 0.05:
        parts.append(f"a baseline of {baseline:.1f} a week" + ("" if parts else f" at {center}"))
    demand = " plus ".join(parts) if parts else f"no demand expected at {center} in the next {window}"
    need = int(_number(row, "reorder_point"))
    expected = _number(row, "protection_demand")
    level = f"{100 * service_level:g} %"
    text = f"{demand[0].upper()}{demand[1:]}: needs {need} for {level} service ({expected:.1f} expected)"
    on_hand, on_order = _number(row, "on_hand"), _number(row, "on_order")
    text += f"; stock {_count(on_hand)}" + (f", {_count(on_order)} on order" if on_order > 0 else "")
    lead_days = round(7.0 * float(str(row["lead_time_weeks"])))
    text += f"; lead time {_plural(lead_days, 'day')}."
    steps = []
    taken = int(_number(row, "transfer_in"))
    if taken > 0:
        steps.append(f"take {taken} from {row.get('transfer_from', '')}")
    ordered = int(_number(row, "order_units"))
    if ordered > 0:
        needed = max(0, int(_number(row, "order_qty")) - taken)
        step = f"order {ordered}"
        if ordered > needed:
            pack, minimum = int(_number(row, "pack_size", 1)), int(_number(row, "min_order"))
            why = f"the minimum order of {minimum}" if minimum > needed else f"packs of {pack}"
            step += f" ({needed} needed, rounded up to {why})"
        steps.append(step)
    given = int(_number(row, "transfer_out"))
    if given > 0:
        steps.append(f"send {given} spare to {row.get('transfer_to', '')}")
    if not steps:
        steps.append("nothing to order")
    text += " " + "; ".join(steps)[0].upper() + "; ".join(steps)[1:] + "."
    cover = _number(row, "cover_after_days", math.nan)
    if ordered > 0 and math.isfinite(cover) and cover < 0.5:
        text += " No stock left: expedite."
    elif ordered > 0 and math.isfinite(cover) and cover < lead_days:
        text += f" Stock lasts about {_plural(round(cover), 'day')}, less than the lead time: expedite."
    return text


def _centers(moves: list[tuple[str, int]]) -> str:
    """`SC-01`, or `SC-01 (5), SC-04 (1)` when units move to or from several centers."""
    if len(moves) == 1:
        return moves[0][0]
    return ", ".join(f"{center} ({units})" for center, units in moves)


def _number(row: Mapping[str, object], key: str, default: float = 0.0) -> float:
    value = pd.to_numeric(pd.Series([row.get(key)]), errors="coerce").iloc[0]
    return float(value) if pd.notna(value) else default


# ---------------------------------------------------------------- transfers, then orders


@dataclass(frozen=True)
class Decisions:
    plan: pd.DataFrame  # the plan rows with DECIDED_COLUMNS; order_units/order_cost after transfers
    lines: pd.DataFrame  # DECISION_COLUMNS: transfers and orders, most urgent first


def surplus(on_hand: float, on_order: float, reorder_point: float) -> int:
    """What a center can give away: the stock on its shelf above what keeps its inventory
    position (on hand + on order) at its own reorder point, its need over its own lead time +
    review period at the service level; so a transfer never makes the giver reorder."""
    return max(0, math.floor(min(on_hand, on_hand + on_order - reorder_point)))


def decide(
    plan: pd.DataFrame,
    weekly: pd.DataFrame,
    lanes: pd.DataFrame | None,
    *,
    now_ms: int,
    service_level: float = DEFAULT_SERVICE_LEVEL,
) -> Decisions:
    """Transfers before orders. A center short of its reorder point (order_qty > 0) first takes
    what nearby centers (`lanes`) have spare (surplus), when a transfer arrives sooner than the
    supplier's lead time: the most urgent center first (fewest days of cover), the nearest
    giver first. What is still missing is ordered, rounded up to whole packs and the minimum
    order. Each order's need-by date is when its stock (with what is transferred in) is
    expected to run out, at the latest one lead time from now."""
    out = plan.reset_index(drop=True).copy()
    for column, default in (("pack_size", 1), ("min_order", 0), ("supplier", ""), ("currency", "")):
        if column not in out.columns:
            out[column] = default
    if "unit_cost" not in out.columns:
        out["unit_cost"] = math.nan
    if "name" not in out.columns:
        out["name"] = out["part"]
    forecasts = {
        (str(c), str(p)): group["forecast"].to_numpy(float)
        for (c, p), group in weekly.groupby(["service_center", "part"], sort=False)
    }
    empty = np.zeros(1)
    need = out["order_qty"].astype(int).to_numpy().copy()
    spare = np.array(
        [
            surplus(h, o, r) if q <= 0 else 0
            for h, o, r, q in zip(
                out["on_hand"], out["on_order"], out["reorder_point"], out["order_qty"], strict=True
            )
        ]
    )
    position = (out["on_hand"] + out["on_order"]).to_numpy(float)
    cover_now = [
        cover_days(forecasts.get((str(c), str(p)), empty), pos)
        for c, p, pos in zip(out["service_center"], out["part"], position, strict=True)
    ]
    lead_days = (7.0 * out["lead_time_weeks"].astype(float)).round(1).to_numpy()
    index = {
        (str(c), str(p)): i for i, (c, p) in enumerate(zip(out["service_center"], out["part"], strict=True))
    }
    routes: dict[str, list[tuple[str, float, float]]] = {}
    if lanes is not None:
        for lane in lanes.itertuples(index=False):
            routes.setdefault(str(lane.to_center), []).append(
                (str(lane.from_center), float(lane.transfer_days), float(lane.distance_km))
            )
    moves: list[tuple[int, int, int, float]] = []  # (to row, from row, units, transfer days)
    urgent_first = sorted(
        (i for i in range(len(out)) if need[i] > 0),
        key=lambda i: (
            _finite_or(cover_now[i], math.inf),
            -need[i],
            out.at[i, "service_center"],
            out.at[i, "part"],
        ),
    )
    for i in urgent_first:
        part = str(out.at[i, "part"])
        givers = sorted(
            (
                (days, _finite_or(km, math.inf), -int(spare[index[(giver, part)]]), giver)
                for giver, days, km in routes.get(str(out.at[i, "service_center"]), [])
                if (giver, part) in index and days < lead_days[i]
            ),
        )
        for days, _, _, giver in givers:
            j = index[(giver, part)]
            units = int(min(need[i], spare[j]))
            if units <= 0:
                continue
            moves.append((i, j, units, days))
            need[i] -= units
            spare[j] -= units
            if need[i] <= 0:
                break

    transfer_in = np.zeros(len(out), dtype=int)
    transfer_out = np.zeros(len(out), dtype=int)
    sources: dict[int, list[tuple[str, int]]] = {}
    sinks: dict[int, list[tuple[str, int]]] = {}
    for i, j, units, _ in moves:
        transfer_in[i] += units
        transfer_out[j] += units
        sources.setdefault(i, []).append((str(out.at[j, "service_center"]), units))
        sinks.setdefault(j, []).append((str(out.at[i, "service_center"]), units))
    remaining = np.maximum(out["order_qty"].astype(int).to_numpy() - transfer_in, 0)
    has_master = out["unit_cost"].notna() | (out["supplier"].astype(str) != "")
    out["order_units"] = [
        order_units(int(n), int(pack), int(minimum)) if known else int(n)
        for n, pack, minimum, known in zip(
            remaining, out["pack_size"], out["min_order"], has_master, strict=True
        )
    ]
    out["order_cost"] = (out["order_units"] * out["unit_cost"].astype(float)).round(2)
    out["transfer_in"] = transfer_in
    out["transfer_from"] = [_centers(sources.get(i, [])) for i in range(len(out))]
    out["transfer_out"] = transfer_out
    out["transfer_to"] = [_centers(sinks.get(i, [])) for i in range(len(out))]
    out["cover_days"] = np.round(cover_now, 1)
    after = position + transfer_in - transfer_out
    cover_after = [
        cover_days(forecasts.get((str(c), str(p)), empty), units)
        for c, p, units in zip(out["service_center"], out["part"], after, strict=True)
    ]
    out["reason"] = [
        reason_text({**row, "cover_after_days": cover}, service_level=service_level)
        for row, cover in zip(out.to_dict("records"), cover_after, strict=True)
    ]

    lines = []
    for i, j, units, days in moves:
        lines.append(
            _line(out, i, "transfer", units, str(out.at[j, "service_center"]), now_ms, cover_now[i], days)
        )
    for i in range(len(out)):
        if out.at[i, "order_units"] > 0:
            units = int(out.at[i, "order_units"])
            lines.append(_line(out, i, "order", units, "", now_ms, cover_after[i], lead_days[i]))
    table = pd.DataFrame(lines, columns=list(DECISION_COLUMNS))
    if not table.empty:
        table = table.sort_values(
            ["need_by_ms", "line_cost", "service_center", "part", "action"],
            ascending=[True, False, True, True, False],
            na_position="last",
        ).reset_index(drop=True)
    return Decisions(out, table)


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _line(
    plan: pd.DataFrame, i: int, action: str, units: int, giver: str, now_ms: int, cover: float, days: float
) -> tuple[object, ...]:
    """One decision line; it is needed by when the stock runs out, at the latest `days` from now
    (the lead time of an order, the transfer time of a transfer)."""
    by_days = min(_finite_or(cover, days), days)
    need_by_ms = int(now_ms + max(0.0, by_days) * DAY_MS)
    unit_cost = float(plan.at[i, "unit_cost"])
    return (
        action,
        str(plan.at[i, "service_center"]),
        str(plan.at[i, "part"]),
        giver,
        str(plan.at[i, "name"]),
        str(plan.at[i, "supplier"]) if action == "order" else "",
        units,
        UNIT,
        int(plan.at[i, "pack_size"]),
        unit_cost,
        round(units * unit_cost, 2) if math.isfinite(unit_cost) else math.nan,
        str(plan.at[i, "currency"]),
        datetime.fromtimestamp(need_by_ms / 1000, UTC).date().isoformat(),
        need_by_ms,
        round(cover, 1) if math.isfinite(cover) else math.nan,
        round(7.0 * float(plan.at[i, "lead_time_weeks"]), 1) if action == "order" else days,
        str(plan.at[i, "reason"]),
    )


def order_list(lines: pd.DataFrame) -> pd.DataFrame:
    """The orders as a purchasing system imports them: one row per order line, the columns and
    headings of ORDER_LIST_HEADINGS, by supplier, need-by date, center and part."""
    orders = lines[lines["action"] == "order"].sort_values(["supplier", "need_by", "service_center", "part"])
    table = orders[list(ORDER_LIST_HEADINGS)].reset_index(drop=True)
    return table.rename(columns=ORDER_LIST_HEADINGS)


# ---------------------------------------------------------------- campaigns


def campaign_stock(
    campaign: pd.DataFrame,
    cohorts: pd.DataFrame,
    failures: pd.DataFrame,
    plan: pd.DataFrame,
    master: pd.DataFrame | None = None,
    *,
    service_level: float = DEFAULT_SERVICE_LEVEL,
) -> pd.DataFrame:
    """CAMPAIGN_STOCK_COLUMNS per campaign cohort, service center and part: the parts to have
    on the shelf when the cohort's vehicles come to their home service center for the
    campaign's check.

    campaign: the campaign vehicles (cohort_id, vin, attribute, value, code, affected,
    service_center, part); cohorts: cohort_id, share; failures: the plan's predicted failures
    (vin, part); plan: the plan rows after decide. A vehicle that shows the cohort's fault needs
    its part; one that does not yet needs it with the cohort's share (the rate among its
    vehicles so far). A vehicle whose failure of that part the plan already holds is counted
    there, not again, and a vehicle in two cohorts counts in the first. A center's stock above
    its reorder point after this week's decisions is available; the rest is to pre-stock,
    rounded as an order (prognos.cloud.parts.master.with_costs)."""
    if campaign.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CAMPAIGN_STOCK_COLUMNS})
    frame = campaign.copy()
    for column in ("service_center", "part", "cohort_id", "vin"):
        frame[column] = frame[column].fillna("").astype(str).str.strip()
    frame = frame[(frame["service_center"] != "") & (frame["part"] != "")]
    frame = frame.sort_values(["cohort_id", "vin"]).drop_duplicates(["vin", "part"], keep="first")
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CAMPAIGN_STOCK_COLUMNS})
    planned = set(zip(failures["vin"].astype(str), failures["part"].astype(str), strict=True))
    shares = pd.to_numeric(cohorts.set_index("cohort_id")["share"], errors="coerce").to_dict()
    spare: dict[tuple[str, str], int] = {}
    for row in plan.to_dict("records"):
        kept = _number(row, "on_hand") + _number(row, "on_order") + _number(row, "transfer_in")
        kept += _number(row, "order_units") - _number(row, "transfer_out") - _number(row, "reorder_point")
        spare[(str(row["service_center"]), str(row["part"]))] = max(0, math.floor(kept))
    level = f"{100 * service_level:g} %"
    rows = []
    for (cohort, center, part), group in frame.groupby(["cohort_id", "service_center", "part"], sort=True):
        in_plan = np.array([(v, part) in planned for v in group["vin"]])
        shown = group["affected"].astype(str).str.lower().isin(["true", "1"]).to_numpy() & ~in_plan
        share = float(shares.get(cohort, 0.0)) if math.isfinite(float(shares.get(cohort, 0.0))) else 0.0
        chances = np.where(shown, 1.0, share)[~in_plan]
        pmf = bernoulli_sum_pmf([float(p) for p in chances], [1] * len(chances), np.ones(1))
        needed = pmf_quantile(pmf, service_level)
        available = min(spare.get((center, part), 0), needed)
        spare[(center, part)] = spare.get((center, part), 0) - available
        first = group.iloc[0]
        rest = len(group) - int(in_plan.sum()) - int(shown.sum())
        text = (
            f"{_plural(len(group), 'vehicle')} of {first['attribute']}={first['value']} ({first['code']}) "
            f"come to {center}: {int(shown.sum())} show the fault, {rest} not yet "
            f"({share:.0%} of the cohort does)"
        )
        if in_plan.any():
            text += f", {int(in_plan.sum())} already planned as predicted failures"
        expected = float(np.sum(chances))
        text += f". Needs {needed} for {level} service ({expected:.1f} expected)"
        text += f"; {available} spare after this week's plan"
        rows.append(
            {
                "cohort_id": cohort,
                "service_center": center,
                "part": part,
                "code": str(first["code"]),
                "vehicles": len(group),
                "affected": int(shown.sum()),
                "in_plan": int(in_plan.sum()),
                "expected_units": round(float(np.sum(chances)), 2),
                "units_needed": needed,
                "available": available,
                "to_stock": needed - available,
                "order_qty": needed - available,
                "reason": text,
            }
        )
    table = with_costs(pd.DataFrame(rows), master)
    table["reason"] = [
        f"{text}: pre-stock {units}." if units > 0 else f"{text}: nothing to pre-stock."
        for text, units in zip(table["reason"], table["order_units"], strict=True)
    ]
    return table[list(CAMPAIGN_STOCK_COLUMNS)].reset_index(drop=True)
