"""Tables and Plotly figures for the pages: pure, DataFrames in, DataFrames or figures out.
No queries and no Streamlit here; times arrive as epoch milliseconds (UTC)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from prognos.cloud.analytics.fleet_health import ACT_HEALTH, WATCH_HEALTH
from prognos.cloud.dealers.dms import period_bounds
from prognos.cloud.parts.decisions import order_list
from prognos.record import Trigger

DAY_MS = 86_400_000
ALERT_THRESHOLD = 1.0  # anomaly score 1.0 is the alert threshold (prognos.record.SubsystemState)
BANDS = ("act", "watch", "healthy")
BAND_COLORS = {"act": "#d62728", "watch": "#ff7f0e", "healthy": "#2ca02c"}
STATUS_COLORS = {"affected": "#d62728", "not yet affected": "#ff7f0e", "no recent data": "#9e9e9e"}
TRIGGER_NAMES = {int(t): t.name.lower() for t in Trigger}
FILTER_COLUMNS = {"model": "Model", "region": "Region", "lot": "Lot", "service_center": "Service center"}
KPI_LABELS = {
    "sla_rate": "SLA compliance",
    "ftf_rate": "First-time fix",
    "csat": "CSAT (1-5)",
    "nps": "NPS",
    "fcr_rate": "First-contact resolution",
    "complaint_rate": "Complaints per 100 orders",
    "handling_minutes": "Handling time (min)",
    "orders": "Orders opened",
    "revenue": "Revenue",
    "parts_turnover": "Parts turnover",
}
RATE_KPIS = ("sla_rate", "ftf_rate", "fcr_rate")  # shares 0-1, shown as percentages
LOWER_IS_BETTER = ("complaint_rate", "handling_minutes")
KPI_DECIMALS = {"sla_rate": 1, "ftf_rate": 1, "fcr_rate": 1, "csat": 2, "nps": 0, "complaint_rate": 1}
RANKING_HEADINGS = {  # stored name -> the heading a manager reads, with its unit
    "rank": "Rank",
    "dealer_id": "Dealer",
    "region": "Region",
    "orders": "Orders opened",
    "orders_closed": "Orders closed",
    "sla_rate": "SLA compliance (%)",
    "ftf_rate": "First-time fix (%)",
    "fcr_rate": "First-contact resolution (%)",
    "csat": "CSAT (1-5)",
    "nps": "NPS (-100 to 100)",
    "complaint_rate": "Complaints per 100 orders",
}
RISK_HEADINGS = {
    "dealer_id": "Dealer",
    "region": "Region",
    "level": "Risk",
    "score": "Risk score (0-100)",
    "reasons": "Reasons",
    "not_assessed": "Not assessed",
    "months": "Months of data",
}
# decimals shown per heading; counts are whole numbers
TABLE_DECIMALS = {
    "Orders opened": 0,
    "Orders closed": 0,
    "SLA compliance (%)": 1,
    "First-time fix (%)": 1,
    "First-contact resolution (%)": 1,
    "CSAT (1-5)": 2,
    "NPS (-100 to 100)": 0,
    "Complaints per 100 orders": 1,
    "Risk score (0-100)": 1,
    "Months of data": 0,
}
RISK_COLORS = {"at risk": "#d62728", "watch": "#ff7f0e"}
CALM_COLORS = ("#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#7f7f7f", "#8c564b", "#bcbd22", "#aec7e8")


def _layout(figure: go.Figure, title: str, height: int = 360) -> go.Figure:
    figure.update_layout(
        title=title, height=height, margin={"l": 40, "r": 20, "t": 50, "b": 40}, legend_title_text=""
    )
    return figure


def utc(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.to_numeric(ms, errors="coerce"), unit="ms", utc=True)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    text: str = frame.to_csv(index=False)
    return text.encode("utf-8")


def page_of(frame: pd.DataFrame, page: int, size: int) -> pd.DataFrame:
    """Rows of page `page` (1-based) when the frame is cut into pages of `size` rows."""
    start = (max(page, 1) - 1) * size
    return frame.iloc[start : start + size]


def page_count(rows: int, size: int) -> int:
    return max(1, math.ceil(rows / size))


def interval_text(value: float, low: float, high: float) -> str:
    """`9.0 (6.0-14.0)`; the interval left out when unknown, empty when the value is."""
    if value is None or pd.isna(value):
        return ""
    text = f"{value:.1f}"
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
        text += f" ({low:.1f}-{high:.1f})"
    return text


# ---------------------------------------------------------------- fleet health


def filter_options(registry: pd.DataFrame) -> dict[str, list[str]]:
    """Per filter column of the registry, its values, sorted."""
    options = {}
    for column in FILTER_COLUMNS:
        values = registry[column].dropna().astype(str) if column in registry else pd.Series(dtype=str)
        options[column] = sorted(set(values) - {""})
    return options


def select_vehicles(registry: pd.DataFrame, selection: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The registry rows matching every non-empty selection (column -> accepted values)."""
    chosen = pd.Series(True, index=registry.index)
    for column, values in selection.items():
        if values:
            chosen &= registry[column].astype(str).isin(list(values))
    return registry[chosen]


def key_figures(
    counts: Mapping[str, float], alerts: pd.DataFrame, bands: pd.DataFrame, selected: pd.DataFrame | None
) -> dict[str, int]:
    """Vehicles monitored, healthy / watch / act, open alerts, and (with a selection) the
    selected vehicles without data in the window.

    Without a selection: the snapshot's counts. With a selection of registry rows: its vehicles
    among the snapshot's `bands` (vin, band: every vehicle with data in the window), so the
    counts and the band chart always hold the same vehicles."""
    if selected is None:
        return {
            "monitored": int(counts.get("vehicles_observed", 0)),
            "healthy": int(counts.get("vehicles_healthy", 0)),
            "watch": int(counts.get("vehicles_watch", 0)),
            "act": int(counts.get("vehicles_act", 0)),
            "alerts": len(alerts),
            "p1": int((alerts["priority"] == "P1").sum()) if not alerts.empty else 0,
            "silent": 0,
        }
    vins = set(selected["vin"])
    mine = alerts[alerts["vin"].isin(vins)] if not alerts.empty else alerts
    seen = bands[bands["vin"].isin(vins)] if not bands.empty else bands
    per_band = seen["band"].value_counts() if not seen.empty else pd.Series(dtype=int)
    return {
        "monitored": len(seen),
        "healthy": int(per_band.get("healthy", 0)),
        "watch": int(per_band.get("watch", 0)),
        "act": int(per_band.get("act", 0)),
        "alerts": len(mine),
        "p1": int((mine["priority"] == "P1").sum()) if not mine.empty else 0,
        "silent": len(vins) - len(seen),
    }


def band_table(bands: pd.DataFrame, registry: pd.DataFrame, by: str) -> pd.DataFrame:
    """Vehicles per value of `by` (a registry column) and band, for the snapshot's `bands`
    (vin, band); a vehicle the registry does not hold is in the group "(not registered)"."""
    if bands.empty:
        return pd.DataFrame({by: pd.Series(dtype=str), "band": pd.Series(dtype=str), "vehicles": []})
    groups = registry.drop_duplicates("vin").set_index("vin")[by] if by in registry else pd.Series(dtype=str)
    group = bands["vin"].map(groups).fillna("(not registered)").astype(str)
    table = pd.DataFrame({by: group, "band": bands["band"]}).value_counts().rename("vehicles").reset_index()
    return table.sort_values([by, "band"]).reset_index(drop=True)


def band_chart(table: pd.DataFrame, by: str) -> go.Figure:
    figure = go.Figure()
    for band in BANDS:
        rows = table[table["band"] == band]
        figure.add_bar(x=rows[by], y=rows["vehicles"], name=band, marker_color=BAND_COLORS[band])
    figure.update_layout(barmode="stack", xaxis_title=FILTER_COLUMNS.get(by, by), yaxis_title="vehicles")
    return _layout(figure, f"Health bands by {FILTER_COLUMNS.get(by, by).lower()}")


def fleet_band_chart(figures: Mapping[str, int]) -> go.Figure:
    """The fleet's band counts when no registry groups them."""
    figure = go.Figure(
        go.Bar(
            x=list(BANDS),
            y=[figures[b] for b in BANDS],
            marker_color=[BAND_COLORS[b] for b in BANDS],
        )
    )
    figure.update_layout(yaxis_title="vehicles")
    return _layout(figure, "Health bands")


def band_history_chart(history: pd.DataFrame) -> go.Figure:
    """Vehicles per band over the kept analytics snapshots."""
    figure = go.Figure()
    times = utc(history["time"])
    for band in BANDS:
        column = f"vehicles_{band}"
        if column in history:
            figure.add_scatter(
                x=times, y=history[column], name=band, mode="lines+markers", line_color=BAND_COLORS[band]
            )
    figure.update_layout(yaxis_title="vehicles", yaxis_rangemode="tozero")
    if len(history) == 1:  # one snapshot: a day either side, not a millisecond axis
        figure.update_xaxes(
            range=[times.iloc[0] - pd.Timedelta(days=1), times.iloc[0] + pd.Timedelta(days=1)]
        )
    return _layout(figure, "Bands over the last 30 days (analytics snapshots)")


def vehicle_link(vins: pd.Series) -> pd.Series:
    """Relative links to the vehicle detail page, e.g. `vehicle?vin=PRG001`."""
    return "vehicle?vin=" + vins.astype(str)


def with_vehicle_links(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its `vin` column as links to each vehicle's page."""
    return frame.assign(vin=vehicle_link(frame["vin"]))


ALERT_HEADINGS = (
    "Rank",
    "Priority",
    "Vehicle",
    "Owner",
    "Contact",
    "Service center",
    "Fault",
    "What to do",
    "Why",
    "Days to threshold (80% interval)",
    "Subsystem health (0-1)",
    "Anomaly score (alert at 1.0)",
    "Confidence (%)",
    "Last report (UTC)",
    "Evidence",
    "Owner and contact",
)
# What the page's table shows (the CSV has every heading): few enough columns that none is cut off.
ALERT_PAGE_COLUMNS = [
    "Rank",
    "Priority",
    "Vehicle",
    "Owner and contact",
    "Service center",
    "Fault",
    "Days to threshold (80% interval)",
    "What to do",
]
NO_ESTIMATE = "— (no trend to extrapolate)"


def alert_table(
    alerts: pd.DataFrame, registry: pd.DataFrame | None = None, *, links: bool = True
) -> pd.DataFrame:
    """The alerts as a service manager reads them, most urgent first: who to call (owner,
    contact, home center from the registry), what to do and why, and the figures with their
    units; a dash with the reason where a figure is unknown, never None. `links`: the vehicle as
    a Markdown link to its page (for the page; the CSV keeps the bare VIN)."""
    people = (
        registry.set_index("vin")[["owner_name", "owner_contact", "service_center"]]
        if registry is not None and not registry.empty
        else pd.DataFrame(columns=["owner_name", "owner_contact", "service_center"])
    )
    rows = []
    for alert in alerts.itertuples():
        vin = str(alert.vin)
        known = vin in people.index
        days = interval_text(alert.days_left, alert.days_low_left, alert.days_high_left)
        rows.append(
            {
                "Rank": int(alert.rank),
                "Priority": str(alert.priority),
                "Vehicle": f"[{vin}](vehicle?vin={vin})" if links else vin,
                "Owner": _text(people.at[vin, "owner_name"]) if known else "— (not in the registry)",
                "Contact": _text(people.at[vin, "owner_contact"]) if known else "—",
                "Service center": _text(people.at[vin, "service_center"]) if known else "—",
                "Fault": fault_words(str(alert.code)),
                "What to do": _text(alert.action),
                "Why": _text(alert.reason),
                "Days to threshold (80% interval)": days or NO_ESTIMATE,
                "Subsystem health (0-1)": _fixed(alert.health, 2),
                "Anomaly score (alert at 1.0)": _fixed(alert.anomaly_score, 2),
                "Confidence (%)": _fixed(100 * alert.confidence, 0) if pd.notna(alert.confidence) else "—",
                "Last report (UTC)": f"{utc(pd.Series([alert.last_seen_ms])).iloc[0]:%Y-%m-%d %H:%M}"
                if pd.notna(alert.last_seen_ms)
                else "—",
                "Evidence": _evidence(alert),
                "Owner and contact": (
                    f"{_text(people.at[vin, 'owner_name'])}, {_text(people.at[vin, 'owner_contact'])}"
                    if known
                    else "— (not in the registry)"
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(ALERT_HEADINGS))


def fault_words(code: str) -> str:
    """A fault code as a reader scans it: `brakes.pad_wear` -> `brakes: pad wear`."""
    subsystem, _, fault = code.partition(".")
    return f"{subsystem}: {fault.replace('_', ' ')}" if fault else code.replace("_", " ")


def _evidence(alert: Any) -> str:
    """The alert's figures in one sentence with their scales."""
    parts = [
        f"health {_fixed(alert.health, 2)} (act at 0.2)",
        f"score {_fixed(alert.anomaly_score, 2)} (alert at 1.0)",
    ]
    if pd.notna(alert.confidence):
        parts.append(f"confidence {_fixed(100 * alert.confidence, 0)} %")
    reason = _text(alert.reason)
    return "; ".join(parts) + (f". {reason}" if reason != "—" else "")


def _text(value: object) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
        else str(value)
    )


def _fixed(value: object, digits: int) -> str:
    number = float(value) if isinstance(value, int | float) else math.nan
    return f"{number:.{digits}f}" if math.isfinite(number) else "—"


# ---------------------------------------------------------------- one vehicle


def score_chart(history: pd.DataFrame) -> go.Figure:
    """Anomaly score per subsystem (bucket maxima) with the alert threshold line at 1.0."""
    figure = go.Figure()
    for subsystem, rows in history.groupby("subsystem", sort=True):
        figure.add_scatter(x=utc(rows["time"]), y=rows["anomaly_score"], name=str(subsystem), mode="lines")
    figure.add_hline(
        y=ALERT_THRESHOLD,
        line_dash="dash",
        line_color=BAND_COLORS["act"],
        annotation_text="alert threshold",
        annotation_position="top left",
    )
    figure.update_layout(yaxis_title="anomaly score (max per bucket)")
    return _layout(figure, "Anomaly scores")


def health_chart(history: pd.DataFrame) -> go.Figure:
    """Health per subsystem (bucket means) with the watch and act band limits."""
    figure = go.Figure()
    for subsystem, rows in history.groupby("subsystem", sort=True):
        figure.add_scatter(x=utc(rows["time"]), y=rows["health"], name=str(subsystem), mode="lines")
    for limit, band in ((WATCH_HEALTH, "watch"), (ACT_HEALTH, "act")):
        figure.add_hline(
            y=limit,
            line_dash="dot",
            line_color=BAND_COLORS[band],
            annotation_text=f"{band} below {limit}",
            annotation_position="bottom left",
        )
    figure.update_layout(yaxis_title="health (mean per bucket)", yaxis_range=[0, 1.05])
    return _layout(figure, "Health")


def fault_table(faults: pd.DataFrame, last_record_ms: float | None, now_ms: int) -> pd.DataFrame:
    """Fault hypotheses: open (in the latest record) first, with days to threshold counted from
    now and the 80% interval."""
    if faults.empty:
        return pd.DataFrame(
            columns=[
                "code",
                "open",
                "confidence",
                "days_left",
                "interval_80",
                "estimated_at",
                "last_reported",
            ]
        )
    elapsed = (now_ms - pd.to_numeric(faults["estimated_at"], errors="coerce")) / DAY_MS
    days = pd.to_numeric(faults["days_to_threshold"], errors="coerce") - elapsed
    low = pd.to_numeric(faults["days_low"], errors="coerce") - elapsed
    high = pd.to_numeric(faults["days_high"], errors="coerce") - elapsed
    is_open = faults["time"] >= last_record_ms if last_record_ms is not None else False
    table = pd.DataFrame(
        {
            "code": faults["code"],
            "open": is_open,
            "confidence": pd.to_numeric(faults["confidence"], errors="coerce"),
            "days_left": days.round(1),
            "interval_80": [
                "" if pd.isna(lo) or pd.isna(hi) else f"{lo:.1f}-{hi:.1f}"
                for lo, hi in zip(low, high, strict=True)
            ],
            "estimated_at": utc(faults["estimated_at"]),
            "last_reported": utc(faults["time"]),
        }
    )
    return table.sort_values(["open", "confidence"], ascending=[False, False]).reset_index(drop=True)


def records_table(records: pd.DataFrame) -> pd.DataFrame:
    """The vehicle's records, newest first, with the trigger named."""
    return pd.DataFrame(
        {
            "window_end": utc(records["time"]),
            "seq": records["seq"],
            "trigger": [
                TRIGGER_NAMES.get(int(t), str(t)) if not pd.isna(t) else "" for t in records["trigger"]
            ],
            "model": records["model_id"].astype(str) + " " + records["model_version"].astype(str),
            "window_min": ((records["time"] - records["window_start_ms"]) / 60_000).round(1),
        }
    )


def records_chart(records: pd.DataFrame) -> go.Figure:
    """Records per day by trigger: when the gateway saw changes and anomalies."""
    days = utc(records["time"]).dt.floor("D")
    triggers = [TRIGGER_NAMES.get(int(t), str(t)) for t in records["trigger"].fillna(0)]
    counts = pd.DataFrame({"day": days, "trigger": triggers}).value_counts().rename("records").reset_index()
    figure = go.Figure()
    colors = {"heartbeat": "#9e9e9e", "change": "#1f77b4", "anomaly": BAND_COLORS["act"]}
    for name, color in colors.items():
        rows = counts[counts["trigger"] == name].sort_values("day")
        figure.add_bar(x=rows["day"], y=rows["records"], name=name, marker_color=color)
    figure.update_layout(barmode="stack", yaxis_title="records per day")
    return _layout(figure, "Records by trigger", height=300)


WORK_ORDER_HEADINGS = (
    "Order",
    "Opened (UTC)",
    "Closed (UTC)",
    "Dealer",
    "Service center",
    "Parts",
    "Labour (h)",
    "Fixed first time",
    "Amount",
)


def work_order_table(orders: pd.DataFrame) -> pd.DataFrame:
    """The vehicle's DMS work orders, newest first, as a reader wants them: times to the minute,
    the amount with its currency, parts or a dash, never None."""

    def when(ms: object) -> str:
        return f"{utc(pd.Series([ms])).iloc[0]:%Y-%m-%d %H:%M}" if pd.notna(ms) else "open"

    rows = []
    for order in orders.itertuples():
        values = order._asdict()
        amount = values.get("amount")
        currency = _text(values.get("currency"))
        rows.append(
            {
                "Order": str(order.order_id),
                "Opened (UTC)": when(order.opened_at_ms),
                "Closed (UTC)": when(order.closed_at_ms),
                "Dealer": _text(values.get("dealer_id")),
                "Service center": _text(values.get("service_center")),
                "Parts": _text(values.get("parts")).replace(";", ", "),
                "Labour (h)": _fixed(values.get("labour_hours"), 1),
                "Fixed first time": {True: "yes", False: "no"}.get(values.get("fixed_first_time"), "—"),
                "Amount": f"{float(amount):,.2f} {'' if currency == '—' else currency}".strip()
                if isinstance(amount, int | float) and math.isfinite(amount)
                else "—",
            }
        )
    return pd.DataFrame(rows, columns=list(WORK_ORDER_HEADINGS))


INTERVAL_METHODS = {
    "trend": "its own wear trend",
    "fault": "its open wear fault's days to threshold",
}


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """A vehicle's maintenance intervals for a reader: part, interval against the standard, the
    next service, and what the figure rests on; a dash where a figure is unknown."""
    rows = []
    for row in intervals.itertuples():
        rate = float(row.relative_rate) if pd.notna(row.relative_rate) else math.nan
        basis = INTERVAL_METHODS.get(str(row.method), str(row.method))
        if pd.notna(row.days_of_data):
            basis += f", {int(row.days_of_data)} days of data"
        due = (
            row.next_service_date if isinstance(row.next_service_date, str) and row.next_service_date else "—"
        )
        rows.append(
            {
                "Wear part": str(row.part),
                "Interval (days)": _days(row.interval_days),
                "Standard (days)": _days(row.standard_interval_days),
                "Wears": f"{rate:.1f}x the fleet's rate" if math.isfinite(rate) else "as the fleet",
                "Next service": due,
                "In (days)": _days(row.next_service_days),
                "Health now (0-1)": f"{float(row.health):.2f}" if pd.notna(row.health) else "—",
                "From": basis,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "Wear part",
            "Interval (days)",
            "Standard (days)",
            "Wears",
            "Next service",
            "In (days)",
            "Health now (0-1)",
            "From",
        ],
    )


def _days(value: object) -> str:
    number = float(value) if isinstance(value, int | float) else math.nan
    return f"{number:.0f}" if math.isfinite(number) else "—"


# ---------------------------------------------------------------- cohorts and campaigns


def cohort_chart(cohorts: pd.DataFrame) -> go.Figure:
    """Per cohort: affected vehicles, vehicles with data not (yet) affected, and registered
    vehicles without recent data."""
    rows = cohorts.iloc[::-1]  # the first cohort on top
    with_data = rows["cohort_size"] - rows["affected"]
    silent = (rows["registered"] - rows["cohort_size"]).clip(lower=0)
    figure = go.Figure()
    parts = {"affected": rows["affected"], "not yet affected": with_data, "no recent data": silent}
    for name, values in parts.items():
        figure.add_bar(
            y=rows["cohort_id"], x=values, name=name, orientation="h", marker_color=STATUS_COLORS[name]
        )
    figure.update_layout(barmode="stack", xaxis_title="vehicles", yaxis_title="")
    return _layout(figure, "Cohorts: affected vehicles", height=max(260, 60 + 40 * len(rows)))


def campaign_chart(vehicles: pd.DataFrame) -> go.Figure:
    """One campaign's vehicles per home service center and status."""
    centers = vehicles["service_center"].fillna("(none)").astype(str)
    counts = pd.DataFrame({"service_center": centers, "status": vehicles["status"]})
    counts = counts.value_counts().rename("vehicles").reset_index()
    figure = go.Figure()
    for status, color in STATUS_COLORS.items():
        rows = counts[counts["status"] == status].sort_values("service_center")
        figure.add_bar(x=rows["service_center"], y=rows["vehicles"], name=status, marker_color=color)
    figure.update_layout(barmode="stack", xaxis_title="home service center", yaxis_title="vehicles")
    return _layout(figure, "Campaign vehicles by service center", height=320)


# ---------------------------------------------------------------- dealers


def kpi_value_text(kpi: str, value: float) -> str:
    if value is None or pd.isna(value):
        return "-"
    if kpi in RATE_KPIS:
        return f"{100 * value:.1f}%"
    return f"{value:,.1f}" if kpi != "orders" else f"{value:,.0f}"


def risk_levels(risk: pd.DataFrame) -> dict[str, str]:
    """Dealer -> its risk level (at risk, watch, ok) from the risk list."""
    if risk.empty:
        return {}
    return dict(zip(risk["dealer_id"].astype(str), risk["level"].astype(str), strict=True))


def line_colors(keys: Sequence[str], levels: Mapping[str, str] | None = None) -> dict[str, str]:
    """A colour per dealer or region: red for a dealer at risk, orange on watch, and calm colours
    for the rest, so that red on a chart always means the same as on the risk list."""
    levels = levels or {}
    colors: dict[str, str] = {}
    calm = iter(CALM_COLORS * (len(keys) // len(CALM_COLORS) + 1))
    for key in keys:
        colors[key] = RISK_COLORS.get(levels.get(key, "ok")) or next(calm)
    return colors


def kpi_trend_chart(
    kpis: pd.DataFrame, kpi: str, by: str, levels: Mapping[str, str] | None = None
) -> go.Figure:
    """One KPI per period, one line per dealer or region, coloured by the dealer's risk level."""
    figure = go.Figure()
    scale = 100.0 if kpi in RATE_KPIS else 1.0
    keys = sorted(str(key) for key in kpis[by].unique()) if by in kpis else []
    colors = line_colors(keys, levels)
    for key, rows in kpis.groupby(by, sort=True):
        rows = rows.sort_values("period_start")
        figure.add_scatter(
            x=rows["period"],
            y=rows[kpi] * scale,
            name=str(key),
            mode="lines+markers",
            line={"color": colors[str(key)]},
        )
    unit = " (%)" if kpi in RATE_KPIS else ""
    figure.update_layout(yaxis_title=KPI_LABELS.get(kpi, kpi) + unit, xaxis_type="category")
    return _layout(figure, f"{KPI_LABELS.get(kpi, kpi)} per {'dealer' if by == 'dealer_id' else 'region'}")


def kpi_basis_text(kpis: pd.DataFrame) -> str:
    """Where first-contact resolution, handling time and SLA compliance come from."""
    basis = set(kpis["basis"].dropna()) if "basis" in kpis else set()
    if "tickets" in basis:
        return (
            "First-contact resolution, handling time and SLA compliance come from the service desk's "
            "complaint tickets (business hours on each dealer's calendar) where it has them, else "
            "from the work orders' open and close times."
        )
    return (
        "First-contact resolution, handling time and SLA compliance come from the work orders' "
        "open and close times: the service desk has no complaint tickets for these periods."
    )


def periods(kpis: pd.DataFrame) -> list[str]:
    """The period labels of the KPIs, oldest first."""
    return [str(p) for p in kpis.sort_values("period_start")["period"].drop_duplicates()]


def period_complete(label: str, now: datetime) -> bool:
    """Whether a period (2026-11, 2026-W48) has ended by `now`."""
    return period_bounds(label)[1] <= now


def ranked_period_index(labels: Sequence[str], now: datetime) -> int:
    """The period a ranking shows first: the latest complete one (a period under way ranks
    dealers on orders not closed yet), or the latest when none is complete."""
    complete = [i for i, label in enumerate(labels) if period_complete(label, now)]
    return complete[-1] if complete else max(len(labels) - 1, 0)


def period_choice_text(label: str, now: datetime) -> str:
    return label if period_complete(label, now) else f"{label} (under way)"


def ranking(kpis: pd.DataFrame, kpi: str, period: str, by: str = "dealer_id") -> pd.DataFrame:
    """The dealers (or regions) of one period ranked by `kpi`, best first (NaN last), with
    readable headings that carry the units and rounded values."""
    rows = kpis[kpis["period"] == period]
    ascending = kpi in LOWER_IS_BETTER
    rows = rows.sort_values([kpi, by], ascending=[ascending, True], na_position="last")
    columns = [by, *(["region"] if by == "dealer_id" else []), "orders", "orders_closed"]
    columns += ["sla_rate", "ftf_rate", "fcr_rate", "csat", "nps", "complaint_rate"]
    table = rows[columns].reset_index(drop=True)
    for column in RATE_KPIS:
        table[column] = 100 * table[column]
    for column, decimals in KPI_DECIMALS.items():
        table[column] = table[column].astype(float).round(decimals)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.rename(columns=RANKING_HEADINGS)


def shown_table(table: pd.DataFrame, index: str) -> Styler:
    """A table for st.table (which wraps long text, so no column is cut off): `index` as the row
    labels, each number with the decimals of its column, a dash where a value is unknown."""
    formats = {
        column: f"{{:,.{decimals}f}}"
        for column, decimals in TABLE_DECIMALS.items()
        if column in table.columns and column != index
    }
    return table.set_index(index).style.format(formats, na_rep="-")


def risk_table(risk: pd.DataFrame) -> pd.DataFrame:
    """The risk list with readable headings; the score rounded to one decimal."""
    table = risk[[c for c in RISK_HEADINGS if c in risk]].reset_index(drop=True)
    if "not_assessed" in table and not table["not_assessed"].astype(str).str.strip().any():
        table = table.drop(columns="not_assessed")  # every dealer assessed: an empty column says nothing
    if "score" in table:
        table["score"] = table["score"].astype(float).round(1)
    return table.rename(columns=RISK_HEADINGS)


# ---------------------------------------------------------------- parts

DECISION_HEADINGS = (
    "Part",
    "Decision",
    "Deliver to",
    "Quantity (units)",
    "Cost",
    "Need by",
    "Why",
)
PLAN_HEADINGS = (
    "Part",
    "Service center",
    "Stock (units)",
    "Need over lead time + review (units)",
    "Decision",
    "Why",
)
WEEKLY_HEADINGS = (
    "Part",
    "Service center",
    "Week starting",
    "Forecast (units, 90 % interval)",
    "Baseline (units)",
    "From predicted failures (units)",
)
CAMPAIGN_STOCK_HEADINGS = (
    "Part",
    "Cohort",
    "Service center",
    "Vehicles",
    "Needed (units)",
    "Spare (units)",
    "To pre-stock (units)",
    "Cost",
    "Why",
)
DECISION_ORDERS = {"urgency": "most urgent first", "cost": "largest value first"}


def money(value: object, currency: object) -> str:
    """`1,234.50 EUR`; a dash when the value is unknown."""
    number = float(value) if isinstance(value, int | float) else math.nan
    if not math.isfinite(number):
        return "—"
    unit = "" if _text(currency) == "—" else str(currency)
    return f"{number:,.2f} {unit}".strip()


def part_label(name: object, part: object) -> str:
    """`Brake pad set, front axle (PG-BRK-3100)`; the number alone when the name is."""
    text, number = _text(name), str(part)
    return number if text in ("—", number) else f"{text} ({number})"


def _units(value: object) -> str:
    number = float(value) if isinstance(value, int | float) else math.nan
    if not math.isfinite(number):
        return "—"
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"


def _days_from(ms: object, now_ms: int) -> str:
    number = float(ms) if isinstance(ms, int | float) else math.nan
    if not math.isfinite(number):
        return "—"
    day = f"{utc(pd.Series([number])).iloc[0]:%Y-%m-%d}"
    days = math.floor((number - now_ms) / DAY_MS + 0.5)
    if days <= 0:
        return f"{day} (now)"
    return f"{day} (in {days} day{'s' if days != 1 else ''})"


def sorted_decisions(lines: pd.DataFrame, by: str) -> pd.DataFrame:
    """The decisions most urgent first (their rank: earliest need-by date, then largest cost)
    or largest cost first (a transfer's units at what they are worth)."""
    if by == "cost":
        return lines.sort_values(["line_cost", "rank"], ascending=[False, True], na_position="last")
    return lines.sort_values("rank")


def decision_table(lines: pd.DataFrame, now_ms: int) -> pd.DataFrame:
    """This week's transfers and orders as a planner reads them (DECISION_HEADINGS): the part
    by name, where from, how many (and in how many packs), what it costs, by when, and why."""
    rows = []
    for line in lines.itertuples():
        pack = int(line.pack_size) if isinstance(line.pack_size, int | float) and line.pack_size > 1 else 1
        quantity = _units(line.quantity)
        if pack > 1 and isinstance(line.quantity, int | float) and line.quantity % pack == 0:
            packs = int(line.quantity // pack)
            quantity += f" ({packs} pack{'s' if packs != 1 else ''} of {pack})"
        if line.action == "transfer":
            decision = f"Transfer from {_text(line.from_center)}"
            cost = f"none: moves {money(line.line_cost, line.currency)} of stock"
        else:
            supplier = _text(line.supplier)
            decision = "Order" + ("" if supplier == "—" else f" from {supplier}")
            cost = money(line.line_cost, line.currency)
        rows.append(
            (
                part_label(line.name, line.part),
                decision,
                str(line.service_center),
                quantity,
                cost,
                _days_from(line.need_by_ms, now_ms),
                _text(line.reason),
            )
        )
    return pd.DataFrame(rows, columns=list(DECISION_HEADINGS))


def plan_table(reorder: pd.DataFrame) -> pd.DataFrame:
    """Every service center and part of the plan (PLAN_HEADINGS): stock, the need over lead time
    + review period with its interval and reorder point, the decision and why."""
    rows = []
    for row in reorder.itertuples():
        stock = _units(row.on_hand)
        if isinstance(row.on_order, int | float) and row.on_order > 0:
            stock += f" + {_units(row.on_order)} on order"
        need = f"{_fixed(row.protection_demand, 1)} expected"
        if pd.notna(row.protection_low) and pd.notna(row.protection_high):
            need += f" (90 %: {_units(row.protection_low)}-{_units(row.protection_high)})"
        need += f"; reorder point {_units(row.reorder_point)}"
        steps = []
        if isinstance(row.transfer_in, int | float) and row.transfer_in > 0:
            steps.append(f"take {_units(row.transfer_in)} from {_text(row.transfer_from)}")
        if isinstance(row.order_units, int | float) and row.order_units > 0:
            steps.append(f"order {_units(row.order_units)} ({money(row.order_cost, row.currency)})")
        if isinstance(row.transfer_out, int | float) and row.transfer_out > 0:
            steps.append(f"send {_units(row.transfer_out)} to {_text(row.transfer_to)}")
        decision = "; ".join(steps) if steps else "nothing to order"
        rows.append(
            (
                part_label(row.name, row.part),
                str(row.service_center),
                stock,
                need,
                decision[0].upper() + decision[1:],
                _text(row.reason),
            )
        )
    return pd.DataFrame(rows, columns=list(PLAN_HEADINGS))


def weekly_table(weekly: pd.DataFrame) -> pd.DataFrame:
    """The weekly forecast (WEEKLY_HEADINGS): the units with their 90 % interval, split into the
    history's baseline and the predicted failures."""
    rows = []
    for row in weekly.itertuples():
        forecast = _fixed(row.forecast, 1)
        if pd.notna(row.low) and pd.notna(row.high):
            forecast += f" ({_units(row.low)}-{_units(row.high)})"
        rows.append(
            (
                part_label(row.name, row.part),
                str(row.service_center),
                _text(row.week_start),
                forecast,
                _fixed(row.baseline, 1),
                _fixed(row.from_failures, 1),
            )
        )
    return pd.DataFrame(rows, columns=list(WEEKLY_HEADINGS))


def campaign_stock_table(campaign: pd.DataFrame) -> pd.DataFrame:
    """The campaigns' pre-stock (CAMPAIGN_STOCK_HEADINGS)."""
    rows = []
    for row in campaign.itertuples():
        rows.append(
            (
                part_label(row.name, row.part),
                str(row.cohort).replace(":", ": "),
                str(row.service_center),
                _units(row.vehicles),
                _units(row.units_needed),
                _units(row.available),
                _units(row.order_units),
                money(row.order_cost, row.currency),
                _text(row.reason),
            )
        )
    return pd.DataFrame(rows, columns=list(CAMPAIGN_STOCK_HEADINGS))


ACCURACY_HEADINGS = (
    "Service center",
    "Part family",
    "Pairs",
    "Weeks compared",
    "Forecast (units)",
    "Used (units)",
    "Bias",
    "RMSSE",
    "Within the 90 % interval",
)


def accuracy_view(accuracy: pd.DataFrame) -> pd.DataFrame:
    """The kept plans' accuracy (ACCURACY_HEADINGS): bias as a signed percentage (above 0: the plan
    expected more than was used), RMSSE to two decimals, the interval's coverage in percent."""
    rows = []
    for row in accuracy.itertuples():
        bias = float(row.bias) if isinstance(row.bias, int | float) else math.nan
        rows.append(
            (
                "all" if row.service_center == "all" else str(row.service_center),
                "all" if row.family == "all" else str(row.family),
                _units(row.pairs),
                _units(row.weeks),
                _fixed(row.forecast_units, 1),
                _units(row.actual_units),
                f"{100 * bias:+.0f} %" if math.isfinite(bias) else "—",
                _fixed(row.rmsse, 2),
                f"{_fixed(100 * float(row.coverage), 0)} %" if isinstance(row.coverage, int | float) else "—",
            )
        )
    return pd.DataFrame(rows, columns=list(ACCURACY_HEADINGS))


def forecast_actual_chart(kept: pd.DataFrame) -> go.Figure:
    """What the plans expected one week ahead against what the work orders used, per week (the
    service centers and parts selected, summed)."""
    weeks = kept.assign(week=utc(kept["window_start_ms"]).dt.strftime("%Y-%m-%d"))
    totals = weeks.groupby("week", as_index=False)[["forecast", "actual"]].sum()
    figure = go.Figure()
    figure.add_bar(x=totals["week"], y=totals["actual"], name="used (work orders)", marker_color="#2ca02c")
    figure.add_scatter(
        x=totals["week"],
        y=totals["forecast"],
        mode="lines+markers",
        name="forecast a week ahead",
        line_color="#1f77b4",
    )
    figure.update_layout(
        xaxis={"title": "week starting", "type": "category"}, yaxis={"title": "units", "rangemode": "tozero"}
    )
    return _layout(figure, "Forecast against what was used", height=320)


def order_list_csv(lines: pd.DataFrame) -> bytes:
    """The order list (prognos.cloud.parts.decisions.order_list) as CSV, costs to the cent."""
    text: str = order_list(lines).to_csv(index=False, float_format="%.2f", lineterminator="\n")
    return text.encode("utf-8")


def order_list_xlsx(lines: pd.DataFrame) -> bytes:
    """The order list as an XLSX workbook: one sheet, the headings in bold, quantities whole
    numbers, costs to the cent, need-by as dates, columns wide enough for their values."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    table = order_list(lines)
    book = Workbook()
    sheet = book.active
    sheet.title = "Order list"
    sheet.append(list(table.columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    formats = {"Quantity": "0", "Unit cost": "#,##0.00", "Line cost": "#,##0.00", "Need by": "yyyy-mm-dd"}
    for record in table.to_dict("records"):
        values: list[object] = []
        for column, value in record.items():
            if column == "Need by":
                value = datetime.fromisoformat(str(value)).date()
            elif column == "Quantity":
                value = int(value)
            elif column in ("Unit cost", "Line cost"):
                value = float(value) if pd.notna(value) else None
            values.append(value)
        sheet.append(values)
    for index, column in enumerate(table.columns, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        width = max([len(str(column)), *(len(str(v)) for v in table[column])]) + 2
        sheet.column_dimensions[letter].width = min(60, width)
        if column in formats:
            for cell in sheet[letter][1:]:
                cell.number_format = formats[column]
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def forecast_chart(weekly: pd.DataFrame, title: str) -> go.Figure:
    """One service center's and part's weekly forecast with its 90% interval, the predicted
    failures' share as bars."""
    rows = weekly.sort_values("week_index")
    x = rows["week_start"].astype(str)
    figure = go.Figure()
    figure.add_bar(x=x, y=rows["from_failures"], name="from predicted failures", marker_color="#ff7f0e")
    figure.add_scatter(x=x, y=rows["high"], mode="lines", line_width=0, showlegend=False, hoverinfo="skip")
    figure.add_scatter(
        x=x,
        y=rows["low"],
        mode="lines",
        line_width=0,
        fill="tonexty",
        fillcolor="rgba(31,119,180,0.2)",
        name="90 % interval",
    )
    figure.add_scatter(x=x, y=rows["forecast"], mode="lines+markers", name="forecast", line_color="#1f77b4")
    figure.update_layout(
        xaxis_title="week starting",
        yaxis={"title": "units", "rangemode": "tozero"},
        xaxis_type="category",
    )
    return _layout(figure, title, height=320)


def demand_chart(weekly: pd.DataFrame) -> go.Figure:
    """Expected units over the horizon per part, by name, split into the history's baseline and
    the predicted failures: horizontal bars, the most demanded part on top."""
    named = weekly.assign(
        label=[part_label(n, p) for n, p in zip(weekly["name"], weekly["part"], strict=True)]
    )
    totals = named.groupby("label", as_index=False)[["baseline", "from_failures"]].sum()
    totals = totals.assign(total=totals["baseline"] + totals["from_failures"]).sort_values(
        "total", ascending=False
    )
    figure = go.Figure()
    figure.add_bar(
        y=totals["label"],
        x=totals["baseline"],
        name="baseline (work-order history)",
        orientation="h",
        marker_color="#1f77b4",
    )
    figure.add_bar(
        y=totals["label"],
        x=totals["from_failures"],
        name="predicted failures",
        orientation="h",
        marker_color="#ff7f0e",
    )
    figure.update_layout(
        barmode="stack",
        xaxis={"title": "expected units over the horizon", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "automargin": True},
    )
    return _layout(figure, "Expected demand per part", height=max(300, 34 * len(totals) + 130))


def stock_chart(reorder: pd.DataFrame) -> go.Figure:
    """Per service center and part: the stock (on hand, on order) and what this week's decisions
    add (transfers in, the order) against the reorder point, the stock that covers the demand
    over lead time + review period at the service level. Horizontal bars labelled with the part's
    name, the first row of `reorder` on top."""
    name = reorder["name"].fillna(reorder["part"]) if "name" in reorder.columns else reorder["part"]
    label = reorder["service_center"].astype(str) + " · " + name.astype(str)
    moved = reorder.get("transfer_in", pd.Series(0, index=reorder.index)).fillna(0)
    gone = reorder.get("transfer_out", pd.Series(0, index=reorder.index)).fillna(0)
    ordered = reorder.get("order_units", pd.Series(0, index=reorder.index)).fillna(0)
    figure = go.Figure()
    figure.add_bar(
        y=label,
        x=reorder["on_hand"] - gone,
        name="on hand (less transfers out)",
        orientation="h",
        marker_color="#2ca02c",
    )
    figure.add_bar(y=label, x=reorder["on_order"], name="on order", orientation="h", marker_color="#98df8a")
    figure.add_bar(y=label, x=moved, name="transfer in", orientation="h", marker_color="#17becf")
    figure.add_bar(y=label, x=ordered, name="order now", orientation="h", marker_color="#9edae5")
    figure.add_scatter(
        y=label,
        x=reorder["reorder_point"],
        mode="markers",
        name="reorder point (95 % of the demand)",
        marker={"symbol": "line-ns-open", "size": 22, "line": {"width": 3}, "color": BAND_COLORS["act"]},
    )
    figure.add_scatter(
        y=label,
        x=reorder["protection_demand"],
        mode="markers",
        name="expected demand",
        marker={"symbol": "diamond-open", "size": 9, "color": "#444444"},
    )
    figure.update_layout(
        barmode="stack",
        xaxis={"title": "units over lead time + review", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "automargin": True},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "xanchor": "left",
            "x": 0,
            "traceorder": "normal",
        },
    )
    figure = _layout(
        figure, "Stock against need over lead time + review", height=max(360, 28 * len(reorder) + 190)
    )
    figure.update_layout(
        margin={"t": 110}, title={"yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": 12}}
    )
    return figure


# ---------------------------------------------------------------- system


def fleet_ingest_rate(rate: pd.DataFrame) -> pd.DataFrame:
    """Records stored per second by all workers together, per bucket."""
    if rate.empty:
        return pd.DataFrame({"time": [], "records_per_s": []})
    return rate.groupby("time", as_index=False)["records_per_s"].sum().sort_values("time")


def ingest_chart(rate: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for worker, rows in rate.groupby("worker", sort=True):
        rows = rows.sort_values("time")
        figure.add_scatter(x=utc(rows["time"]), y=rows["records_per_s"], name=str(worker), stackgroup="rate")
    figure.update_layout(yaxis_title="records stored per second")
    return _layout(figure, "Ingest rate (stacked by worker)", height=320)


def dead_letter_chart(counts: pd.DataFrame) -> go.Figure:
    figure = go.Figure(
        go.Bar(x=utc(counts["time"]), y=counts["dead_letters"], marker_color=BAND_COLORS["act"])
    )
    figure.update_layout(yaxis_title="dead letters")
    return _layout(figure, "Dead letters", height=260)


def gateway_summary(gateways: pd.DataFrame, known_vins: Sequence[str]) -> dict[str, int]:
    """Online, offline (its latest status says so) and silent (known, no status in the range)."""
    online = int(gateways["online"].fillna(False).astype(bool).sum()) if not gateways.empty else 0
    heard = set(gateways["vin"]) if not gateways.empty else set()
    return {
        "online": online,
        "offline": len(gateways) - online,
        "silent": len(set(known_vins) - heard),
    }


def model_versions(gateways: pd.DataFrame) -> pd.DataFrame:
    """Gateways per model and version, most common first."""
    if gateways.empty:
        return pd.DataFrame({"model": [], "gateways": []})
    known = gateways["model_version"].notna()
    model = gateways["model_id"].fillna("").astype(str) + " " + gateways["model_version"].astype(str)
    model = model.str.strip().where(known, "not reported")
    return model.value_counts().rename("gateways").rename_axis("model").reset_index()


def model_version_chart(versions: pd.DataFrame) -> go.Figure:
    figure = go.Figure(go.Bar(x=versions["model"], y=versions["gateways"], marker_color="#1f77b4"))
    figure.update_layout(xaxis_title="model and version", yaxis_title="gateways", xaxis_type="category")
    return _layout(figure, "Model versions across the fleet", height=300)


# ---------------------------------------------------------------- condition mining

CONDITION_HEADINGS = {
    "code": "Fault",
    "condition": "Condition",
    "lift": "Lift (x)",
    "interval": "95% interval (x)",
    "onsets": "Onsets inside",
    "exposure_months": "Exposure inside (vehicle-months)",
    "rate_per_1000": "Onsets per 1,000 vehicle-months inside",
    "rate_elsewhere_per_1000": "Onsets per 1,000 vehicle-months elsewhere",
    "q_value": "q-value",
    "finding": "Finding",
}


def condition_table(findings: pd.DataFrame) -> pd.DataFrame:
    """Every test of a condition-mining run with headings that carry their units, rounded."""
    low = pd.to_numeric(findings["lift_low"], errors="coerce")
    high = pd.to_numeric(findings["lift_high"], errors="coerce")
    interval = [f"{a:.1f}-{b:.1f}" if a == a and b == b else "—" for a, b in zip(low, high, strict=True)]
    table = pd.DataFrame(
        {
            "code": findings["code"].astype(str),
            "condition": findings["condition"].astype(str),
            "lift": pd.to_numeric(findings["lift"], errors="coerce").map(
                lambda v: f"{v:.2f}" if v == v else "—"
            ),
            "interval": interval,
            "onsets": pd.to_numeric(findings["onsets"], errors="coerce").fillna(0).astype(int),
            "exposure_months": pd.to_numeric(findings["exposure_months"], errors="coerce").round(1),
            "rate_per_1000": pd.to_numeric(findings["rate_per_1000"], errors="coerce").round(1),
            "rate_elsewhere_per_1000": pd.to_numeric(
                findings["rate_elsewhere_per_1000"], errors="coerce"
            ).round(1),
            "q_value": pd.to_numeric(findings["q_value"], errors="coerce").map(lambda v: f"{v:.3f}"),
            "finding": findings["finding"].map(lambda f: "yes" if bool(f) else "no"),
        }
    )
    return table.rename(columns=CONDITION_HEADINGS)
