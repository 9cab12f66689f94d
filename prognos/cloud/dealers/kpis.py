"""Dealer KPIs and the dealer risk score: pure, DataFrame in, DataFrame out.

The inputs are the frames of the imported DMS data (prognos.cloud.dealers.dms.records_frame, or read back by
prognos.cloud.dealers.data), one per kind, with the columns docs/dms.md lists; only the columns each
KPI needs must be present. docs/dms.md defines every KPI and the risk score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from prognos.cloud.dealers.dms import period_bounds
from prognos.cloud.dealers.kinds import PARTS_SEPARATOR
from prognos.errors import ConfigError

PERIODS = ("week", "month")
GROUPINGS = ("dealer_id", "region")
UNKNOWN_REGION = "unknown"

KPI_COLUMNS = [
    "period",
    "period_start",
    "orders",
    "orders_closed",
    "ftf_rate",
    "fcr_rate",
    "handling_minutes",
    "repair_hours",
    "sla_rate",
    "revenue",
    "surveys",
    "csat",
    "nps",
    "complaints",
    "complaint_rate",
    "parts_used",
    "avg_stock",
    "parts_turnover",
    "basis",
]
# Where fcr_rate, handling_minutes and sla_rate come from: the service desk's complaint tickets
# when it has them for the dealer and period (with_ticket_metrics), else the work orders.
BASIS_TICKETS = "tickets"
BASIS_ORDERS = "work orders"
TICKET_COLUMNS = (
    "dealer_id",
    "period",
    "resolved",
    "fcr_rate",
    "handling_h_median",
    "response_clocks",
    "response_sla_rate",
    "resolution_clocks",
    "resolution_sla_rate",
)

# --- the risk score (docs/dms.md, "Dealer risk score") -----------------------------------------
WEIGHTS = {"cash": 30.0, "complaints": 25.0, "fulfilment": 25.0, "satisfaction": 20.0}
WATCH_SCORE = 25.0
AT_RISK_SCORE = 50.0
MIN_PERIODS = 3  # fewer points than this in the window: the component is not assessed
REASON_POINTS = 5.0  # a component adding at least this many points is named as a reason
DEFAULT_WINDOW = 6


@dataclass(frozen=True)
class Ramp:
    """Severity 0 at `low`, rising linearly to 1 at `high`."""

    low: float
    high: float

    def severity(self, value: float) -> float:
        return float(np.clip((value - self.low) / (self.high - self.low), 0.0, 1.0))


CASH_VOLATILITY = Ramp(0.10, 0.35)  # std over months of net cash flow / cash in
COMPLAINTS_RISING = Ramp(0.3, 1.2)  # complaints per 100 orders, rise per month
FULFILMENT_FALLING = Ramp(0.005, 0.03)  # share of orders fulfilled, fall per month
CSAT_FALLING = Ramp(0.03, 0.15)  # CSAT points (1-5), fall per month
NPS_FALLING = Ramp(2.0, 8.0)  # NPS points (-100..100), fall per month

RISK_COLUMNS = [
    "dealer_id",
    "region",
    "score",
    "level",
    "reasons",
    "not_assessed",
    "months",
    "cash_volatility",
    "complaint_trend",
    "fulfilment_trend",
    "csat_trend",
    "nps_trend",
    "points_cash",
    "points_complaints",
    "points_fulfilment",
    "points_satisfaction",
]


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise ConfigError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")


def _utc_naive(values: Any) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_localize(None)


def period_start(times: Any, period: str) -> pd.Series:
    """The start (naive UTC) of the week (Monday) or month each time falls in."""
    _check_period(period)
    stamps = _utc_naive(times)
    if period == "month":
        return stamps.dt.to_period("M").dt.start_time
    day = stamps.dt.normalize()
    return day - pd.to_timedelta(day.dt.day_of_week, unit="D")


def period_label(start: pd.Timestamp, period: str) -> str:
    if period == "month":
        return f"{start.year:04d}-{start.month:02d}"
    year, week, _ = start.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _part_units(value: object) -> int:
    if isinstance(value, list | tuple):
        return len(value)
    if isinstance(value, str):
        return sum(1 for part in value.split(PARTS_SEPARATOR) if part.strip())
    return 0


def dealer_regions(orders: pd.DataFrame) -> dict[str, str]:
    """Each dealer's region: the one most of its orders name."""
    if orders.empty or "region" not in orders:
        return {}
    named = orders.dropna(subset=["region"])
    named = named[named["region"].astype(str) != ""]
    if named.empty:
        return {}
    counts = named.groupby(["dealer_id", "region"]).size().reset_index(name="n")
    counts = counts.sort_values(["dealer_id", "n", "region"], ascending=[True, False, True])
    return {str(d): str(r) for d, r in counts.drop_duplicates("dealer_id")[["dealer_id", "region"]].values}


def _empty(frame: pd.DataFrame | None) -> bool:
    return frame is None or frame.empty


def dealer_kpis(
    orders: pd.DataFrame,
    complaints: pd.DataFrame | None = None,
    surveys: pd.DataFrame | None = None,
    stock: pd.DataFrame | None = None,
    *,
    period: str = "month",
    by: str = "dealer_id",
) -> pd.DataFrame:
    """KPIs per dealer (by="dealer_id") or region (by="region") and period, oldest first.

    orders: dealer_id, order_id, opened_at, closed_at, promised_minutes, first_contact_resolved,
    fixed_first_time, labour_hours, amount; optional repeat_of_order_id, parts, region.
    complaints: dealer_id, opened_at. surveys: dealer_id, answered_at, csat, nps.
    stock: dealer_id, part, on_hand, as_of; optional service_center.
    A region's KPIs are computed from its rows, not averaged over its dealers.
    """
    _check_period(period)
    if by not in GROUPINGS:
        raise ConfigError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}")
    regions = dealer_regions(orders)

    def key_of(frame: pd.DataFrame) -> pd.Series:
        dealers = frame["dealer_id"].astype(str)
        if by == "dealer_id":
            return dealers
        return dealers.map(regions).fillna(UNKNOWN_REGION)

    parts: list[pd.DataFrame] = []
    if not orders.empty:
        parts.extend(_order_kpis(orders, key_of(orders), period))
    if not _empty(complaints):
        assert complaints is not None
        grouped = complaints.groupby(
            [key_of(complaints).values, period_start(complaints["opened_at"], period).values]
        )
        parts.append(grouped.size().to_frame("complaints"))
    if not _empty(surveys):
        assert surveys is not None
        parts.append(_survey_kpis(surveys, key_of(surveys), period))
    if not _empty(stock):
        assert stock is not None
        parts.append(_stock_kpis(stock, key_of(stock), period))
    columns = [by, *(["region"] if by == "dealer_id" else []), *KPI_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, axis=1, sort=True)
    table.index = table.index.set_names([by, "period_start"])
    table = table.reset_index()
    for name in ("orders", "orders_closed", "complaints", "surveys", "parts_used"):
        table[name] = table[name].fillna(0).astype(int) if name in table else 0
    for name in KPI_COLUMNS:
        if name not in table:
            table[name] = math.nan
    table["revenue"] = table["revenue"].fillna(0.0)
    table["complaint_rate"] = _ratio(100.0 * table["complaints"], table["orders"])
    table["parts_turnover"] = _ratio(table["parts_used"], table["avg_stock"])
    table["period"] = [period_label(start, period) for start in table["period_start"]]
    table["basis"] = BASIS_ORDERS
    if by == "dealer_id":
        table["region"] = table["dealer_id"].map(regions).fillna(UNKNOWN_REGION)
    return table.sort_values([by, "period_start"])[columns].reset_index(drop=True)


def with_ticket_metrics(
    kpis: pd.DataFrame, tickets: pd.DataFrame, regions: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """KPIs whose first-contact resolution, handling time and SLA compliance come from the
    service desk's complaint tickets (TICKET_COLUMNS, per dealer and period: prognos.desk's
    ticket_metrics) wherever it has resolved tickets or decided SLA clocks, in place of the work
    orders' open-to-close figures; `basis` says which. Handling time is business minutes from
    opening to resolved (the median); SLA compliance is the share of response and resolution
    clocks met. With `regions` (dealer -> region) the KPIs are per region, the tickets' figures
    weighted by their counts."""
    if kpis.empty or tickets.empty:
        return kpis
    missing = [name for name in TICKET_COLUMNS if name not in tickets.columns]
    if missing:
        raise ConfigError(f"ticket metrics lack {', '.join(missing)}")
    t = tickets.copy()
    by = "dealer_id"
    if regions is not None:
        by = "region"
        t["region"] = t["dealer_id"].astype(str).map(regions).fillna(UNKNOWN_REGION)
    clocks = t["response_clocks"].fillna(0) + t["resolution_clocks"].fillna(0)
    t["met"] = t["response_sla_rate"].fillna(0) * t["response_clocks"].fillna(0) + t[
        "resolution_sla_rate"
    ].fillna(0) * t["resolution_clocks"].fillna(0)
    t["clocks"] = clocks
    t["fcr_weight"] = t["resolved"].where(t["fcr_rate"].notna(), 0)
    t["fcr_sum"] = t["fcr_rate"].fillna(0) * t["fcr_weight"]
    t["handling_weight"] = t["resolved"].where(t["handling_h_median"].notna(), 0)
    t["handling_sum"] = t["handling_h_median"].fillna(0) * t["handling_weight"]
    grouped = t.groupby([by, "period"])[
        ["met", "clocks", "fcr_sum", "fcr_weight", "handling_sum", "handling_weight"]
    ].sum()
    ticket = pd.DataFrame(
        {
            "t_sla": _ratio(grouped["met"], grouped["clocks"]),
            "t_fcr": _ratio(grouped["fcr_sum"], grouped["fcr_weight"]),
            "t_handling": 60.0 * _ratio(grouped["handling_sum"], grouped["handling_weight"]),
        }
    ).reset_index()
    merged = kpis.merge(ticket, on=[by, "period"], how="left")
    known = merged[["t_sla", "t_fcr", "t_handling"]].notna().any(axis=1)
    for column, source in (("sla_rate", "t_sla"), ("fcr_rate", "t_fcr"), ("handling_minutes", "t_handling")):
        merged[column] = merged[column].where(~known, merged[source])
    merged["basis"] = merged["basis"].where(~known, BASIS_TICKETS)
    return merged[list(kpis.columns)]


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    denominator = denominator.astype(float)
    return (numerator.astype(float) / denominator.where(denominator > 0)).astype(float)


def _order_kpis(orders: pd.DataFrame, keys: pd.Series, period: str) -> list[pd.DataFrame]:
    opened = _utc_naive(orders["opened_at"])
    closed = _utc_naive(orders["closed_at"])
    volume = orders.groupby([keys.values, period_start(opened, period).values]).size().to_frame("orders")
    repeats: set[tuple[str, str]] = set()
    if "repeat_of_order_id" in orders:
        pairs = orders.dropna(subset=["repeat_of_order_id"])
        repeats = {(str(d), str(o)) for d, o in pairs[["dealer_id", "repeat_of_order_id"]].values}
    repeated = np.array(
        [(str(d), str(o)) in repeats for d, o in orders[["dealer_id", "order_id"]].values], dtype=bool
    )
    handling = (closed - opened).dt.total_seconds() / 60.0
    frame = pd.DataFrame(
        {
            "key": keys.values,
            "start": period_start(closed, period).values,
            "ftf": orders["fixed_first_time"].astype(bool).values & ~repeated,
            "fcr": orders["first_contact_resolved"].astype(bool).values,
            "handling": handling.values,
            "repair": orders["labour_hours"].astype(float).values,
            "sla": (handling <= orders["promised_minutes"].astype(float)).values,
            "units": orders["parts"].map(_part_units).values if "parts" in orders else 0,
            "amount": orders["amount"].astype(float).values,
        }
    )
    frame = frame[closed.notna().values]
    outcome = frame.groupby(["key", "start"]).agg(
        orders_closed=("ftf", "size"),
        ftf_rate=("ftf", "mean"),
        fcr_rate=("fcr", "mean"),
        handling_minutes=("handling", "mean"),
        repair_hours=("repair", "mean"),
        sla_rate=("sla", "mean"),
        parts_used=("units", "sum"),
        revenue=("amount", "sum"),
    )
    return [volume, outcome]


def _survey_kpis(surveys: pd.DataFrame, keys: pd.Series, period: str) -> pd.DataFrame:
    nps = pd.to_numeric(surveys["nps"], errors="coerce") if "nps" in surveys else pd.Series(math.nan)
    csat = pd.to_numeric(surveys["csat"], errors="coerce") if "csat" in surveys else pd.Series(math.nan)
    frame = pd.DataFrame(
        {
            "key": keys.values,
            "start": period_start(surveys["answered_at"], period).values,
            "csat": csat.values,
            "promoter": np.where(nps.isna(), np.nan, (nps >= 9).astype(float)),
            "detractor": np.where(nps.isna(), np.nan, (nps <= 6).astype(float)),
        }
    )
    grouped = frame.groupby(["key", "start"]).agg(
        surveys=("csat", "size"),
        csat=("csat", "mean"),
        promoters=("promoter", "mean"),
        detractors=("detractor", "mean"),
    )
    grouped["nps"] = 100.0 * (grouped["promoters"] - grouped["detractors"])
    return grouped[["surveys", "csat", "nps"]]


def _stock_kpis(stock: pd.DataFrame, keys: pd.Series, period: str) -> pd.DataFrame:
    if "service_center" in stock:
        centers = stock["service_center"].fillna("").astype(str).values
    else:
        centers = np.full(len(stock), "", dtype=object)
    frame = pd.DataFrame(
        {
            "key": keys.values,
            "dealer": stock["dealer_id"].astype(str).values,
            "center": centers,
            "part": stock["part"].astype(str).values,
            "start": period_start(stock["as_of"], period).values,
            "on_hand": stock["on_hand"].astype(float).values,
        }
    )
    # Average each store's stock of each part over the period, then add them up.
    per_part = frame.groupby(["key", "dealer", "center", "part", "start"])["on_hand"].mean()
    return per_part.groupby(level=["key", "start"]).sum().to_frame("avg_stock")


# --- risk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trend:
    slope: float  # per period
    first: float  # the fitted line at the window's first and last point
    last: float
    points: int


def _trend(positions: Sequence[float], values: Sequence[float]) -> _Trend | None:
    x = np.asarray(positions, dtype=float)
    y = np.asarray(values, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(y) < MIN_PERIODS or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    return _Trend(float(slope), float(intercept + slope * x[0]), float(intercept + slope * x[-1]), len(y))


def finance_by_period(finance: pd.DataFrame, period: str) -> pd.DataFrame:
    """Finance rows summed into weeks or months: dealer_id, period_start, cash_in, cash_out,
    net_cash, orders_received, orders_fulfilled, fulfilment_rate."""
    columns = ["cash_in", "cash_out", "orders_received", "orders_fulfilled"]
    if finance.empty:
        return pd.DataFrame(columns=["dealer_id", "period_start", *columns, "net_cash", "fulfilment_rate"])
    starts = [period_bounds(str(label))[0] for label in finance["period"]]
    frame = finance.assign(period_start=period_start(starts, period).values)
    for name in columns:
        frame[name] = pd.to_numeric(frame[name], errors="coerce") if name in frame else math.nan
    summed = frame.groupby(["dealer_id", "period_start"])[columns].sum(min_count=1).reset_index()
    summed["net_cash"] = summed["cash_in"] - summed["cash_out"]
    summed["fulfilment_rate"] = _ratio(summed["orders_fulfilled"], summed["orders_received"])
    return summed


def risk_level(score: float) -> str:
    if score >= AT_RISK_SCORE:
        return "at risk"
    if score >= WATCH_SCORE:
        return "watch"
    return "ok"


def dealer_risk(
    kpis: pd.DataFrame,
    finance: pd.DataFrame | None = None,
    *,
    window: int = DEFAULT_WINDOW,
) -> pd.DataFrame:
    """The early-warning score of each dealer, highest first.

    kpis: dealer_kpis(..., period="month", by="dealer_id"). finance: dealer_id, period,
    cash_in, cash_out, orders_received, orders_fulfilled (the dealer_finance kind; weekly
    rows are summed into months). The score looks at the last `window` months of the data;
    docs/dms.md gives the formula. It always works on months: weekly rates are too noisy to
    draw a trend from, and dealers close their books monthly.
    """
    if window < MIN_PERIODS:
        raise ConfigError(f"the risk window needs at least {MIN_PERIODS} months, not {window}")
    if kpis.empty:
        kpis = pd.DataFrame(columns=["dealer_id", "region", *KPI_COLUMNS])
    elif kpis["period"].astype(str).str.contains("W").any():
        raise ConfigError("the risk score needs monthly KPIs: dealer_kpis(..., period='month')")
    money = finance_by_period(finance if finance is not None else pd.DataFrame(), "month")
    recent = sorted(set(kpis["period_start"]) | set(money["period_start"]))[-window:]
    position = {start: i for i, start in enumerate(recent)}
    regions = dict(zip(kpis["dealer_id"], kpis["region"], strict=True))
    rows = []
    for dealer in sorted(set(kpis["dealer_id"]) | set(money["dealer_id"])):
        k = kpis[(kpis["dealer_id"] == dealer) & kpis["period_start"].isin(position)]
        m = money[(money["dealer_id"] == dealer) & money["period_start"].isin(position)]
        k = k.assign(x=[position[s] for s in k["period_start"]])
        m = m.assign(x=[position[s] for s in m["period_start"]])
        rows.append(_assess(str(dealer), regions.get(dealer, UNKNOWN_REGION), k, m, len(recent)))
    table = pd.DataFrame(rows, columns=RISK_COLUMNS)
    if table.empty:
        return table
    return table.sort_values(["score", "dealer_id"], ascending=[False, True]).reset_index(drop=True)


def _assess(dealer: str, region: str, k: pd.DataFrame, m: pd.DataFrame, months: int) -> dict[str, object]:
    """One dealer's score. k: its monthly KPIs in the window, m: its monthly finance; both with
    `x`, the month's place in the window."""
    points: dict[str, float] = dict.fromkeys(WEIGHTS, 0.0)
    reasons: list[tuple[float, str]] = []
    missing: list[str] = []

    volatility = math.nan
    cash_in = m["cash_in"].astype(float)
    margin = (m["net_cash"].astype(float) / cash_in.where(cash_in > 0)).dropna()
    if len(margin) >= MIN_PERIODS:
        volatility = float(margin.std(ddof=1))
        points["cash"] = WEIGHTS["cash"] * CASH_VOLATILITY.severity(volatility)
        reasons.append(
            (
                points["cash"],
                f"cash flow is unsteady: net cash moved between {margin.min():+.0%} and "
                f"{margin.max():+.0%} of income over the last {len(margin)} months "
                f"(volatility {volatility:.0%})",
            )
        )
    else:
        missing.append("cash flow (fewer than 3 months of finance data)")

    # A month with under half the dealer's usual orders (one just begun, a holiday) says
    # little about rates; it is left out of the complaint and satisfaction trends.
    orders = k["orders"].astype(float)
    usual = float(orders.median()) if len(orders) else 0.0
    full = k[orders >= 0.5 * usual] if usual > 0 else k

    complaints = _trend(full["x"].tolist(), full["complaint_rate"].tolist())
    if complaints is not None:
        points["complaints"] = WEIGHTS["complaints"] * COMPLAINTS_RISING.severity(complaints.slope)
        reasons.append(
            (
                points["complaints"],
                f"complaints are rising: from {complaints.first:.1f} to {complaints.last:.1f} per 100 "
                f"orders over {complaints.points} months ({complaints.slope:+.1f} a month)",
            )
        )
    else:
        missing.append("complaints (fewer than 3 months with orders)")

    fulfilment = _trend(m["x"].tolist(), m["fulfilment_rate"].tolist())
    if fulfilment is not None:
        points["fulfilment"] = WEIGHTS["fulfilment"] * FULFILMENT_FALLING.severity(-fulfilment.slope)
        reasons.append(
            (
                points["fulfilment"],
                f"fewer orders fulfilled: from {fulfilment.first:.0%} to {fulfilment.last:.0%} of "
                f"orders received over {fulfilment.points} months "
                f"({100 * fulfilment.slope:+.1f} points a month)",
            )
        )
    else:
        missing.append("fulfilment (fewer than 3 months of finance data)")

    csat = _trend(full["x"].tolist(), full["csat"].tolist())
    nps = _trend(full["x"].tolist(), full["nps"].tolist())
    severities = []
    if csat is not None:
        severities.append(CSAT_FALLING.severity(-csat.slope))
    if nps is not None:
        severities.append(NPS_FALLING.severity(-nps.slope))
    if severities:
        points["satisfaction"] = WEIGHTS["satisfaction"] * float(np.mean(severities))
        said = []
        if csat is not None:
            said.append(f"CSAT from {csat.first:.1f} to {csat.last:.1f}")
        if nps is not None:
            said.append(f"NPS from {nps.first:+.0f} to {nps.last:+.0f}")
        count = max(t.points for t in (csat, nps) if t is not None)
        reasons.append(
            (points["satisfaction"], f"customers are less satisfied: {', '.join(said)} over {count} months")
        )
    else:
        missing.append("satisfaction (fewer than 3 months with surveys)")

    score = round(sum(points.values()), 1)
    named = [text for weight, text in sorted(reasons, key=lambda r: -r[0]) if weight >= REASON_POINTS]
    return {
        "dealer_id": dealer,
        "region": region,
        "score": score,
        "level": risk_level(score),
        "reasons": "; ".join(named) if named else "no warning signs",
        "not_assessed": "; ".join(missing),
        "months": months,
        "cash_volatility": volatility,
        "complaint_trend": complaints.slope if complaints else math.nan,
        "fulfilment_trend": fulfilment.slope if fulfilment else math.nan,
        "csat_trend": csat.slope if csat else math.nan,
        "nps_trend": nps.slope if nps else math.nan,
        "points_cash": round(points["cash"], 1),
        "points_complaints": round(points["complaints"], 1),
        "points_fulfilment": round(points["fulfilment"], 1),
        "points_satisfaction": round(points["satisfaction"], 1),
    }


# --- text for the command line --------------------------------------------------------------------


def _percent(value: float) -> str:
    return "-" if pd.isna(value) else f"{100 * value:.0f}%"


def _number(value: float, digits: int = 1) -> str:
    return "-" if pd.isna(value) else f"{value:.{digits}f}"


def format_kpis(kpis: pd.DataFrame, *, periods: int = 1) -> str:
    """The last `periods` periods of a KPI table as aligned text."""
    if kpis.empty:
        return "no KPIs (no work orders, complaints or surveys)"
    key = "dealer_id" if "dealer_id" in kpis else "region"
    latest = sorted(set(kpis["period_start"]))[-periods:]
    shown = kpis[kpis["period_start"].isin(latest)]
    header = (
        f"{key:<12}{'period':<10}{'orders':>7}{'FTF':>6}{'FCR':>6}{'SLA':>6}{'handl.min':>10}"
        f"{'repair h':>9}{'CSAT':>6}{'NPS':>6}{'compl/100':>10}{'turnover':>9}"
    )
    lines = [header]
    for row in shown.itertuples(index=False):
        lines.append(
            f"{getattr(row, key)!s:<12}{row.period:<10}{row.orders:>7}{_percent(row.ftf_rate):>6}"
            f"{_percent(row.fcr_rate):>6}{_percent(row.sla_rate):>6}{_number(row.handling_minutes, 0):>10}"
            f"{_number(row.repair_hours):>9}{_number(row.csat):>6}{_number(row.nps, 0):>6}"
            f"{_number(row.complaint_rate):>10}{_number(row.parts_turnover, 2):>9}"
        )
    return "\n".join(lines)


def format_risk(risk: pd.DataFrame) -> str:
    """The risk list as text: one line per dealer, highest score first, with its reasons."""
    if risk.empty:
        return "no dealers to assess"
    lines = [f"{'dealer':<12}{'region':<10}{'score':>6}  {'level':<8}  reasons"]
    for row in risk.itertuples(index=False):
        lines.append(f"{row.dealer_id:<12}{row.region:<10}{row.score:>6.0f}  {row.level:<8}  {row.reasons}")
    return "\n".join(lines)
