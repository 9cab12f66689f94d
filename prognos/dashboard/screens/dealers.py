"""Dealer KPIs: SLA compliance, first-time fix, CSAT and NPS per dealer and region, their trends
and ranking, and the dealer-risk early warning with its reasons (docs/dms.md)."""

from datetime import UTC, datetime

import streamlit as st

from prognos.dashboard import charts, data, desk_data, widgets

st.title("Dealer KPIs")
period = st.radio("Period", ["month", "week"], horizontal=True, key="dealer_period")
tickets = desk_data.ticket_metrics(period)
report = widgets.load(data.dealers, period, tickets)
if report.kpis.empty:
    widgets.no_data(
        f"no DMS work orders, complaints or surveys in database {data.database()!r} for the last "
        f"{data.DEALER_MONTHS} months. Import the dealers' exports with `prognos cloud import-dms`."
    )

st.subheader("Dealer risk early warning")
risk = report.risk
flagged = risk[risk["level"] != "ok"] if not risk.empty else risk
if flagged.empty:
    st.success("No dealer shows warning signs over the last months.")
for dealer in flagged.itertuples():
    note = st.error if dealer.level == "at risk" else st.warning
    reasons = str(dealer.reasons).replace("; ", "\n- ")
    note(f"**{dealer.dealer_id}** ({dealer.region}) — {dealer.level}, score {dealer.score:.1f}\n- {reasons}")
risk_rows = charts.risk_table(risk)
if not risk_rows.empty:
    st.table(charts.shown_table(risk_rows, "Dealer"))
widgets.csv_download(risk_rows, "Download the risk list (CSV)", "dealer-risk.csv", key="dealer_risk_csv")

kpi = (
    st.selectbox("KPI", list(charts.KPI_LABELS), format_func=charts.KPI_LABELS.__getitem__, key="dealer_kpi")
    or "sla_rate"
)
left, right = st.columns(2)
levels = (
    dict(zip(risk["dealer_id"].astype(str), risk["level"].astype(str), strict=True)) if not risk.empty else {}
)
left.plotly_chart(charts.kpi_trend_chart(report.kpis, kpi, "dealer_id", levels))
right.plotly_chart(charts.kpi_trend_chart(report.regions, kpi, "region"))
st.caption("Red: a dealer at risk; orange: on watch (the early warning above).")
st.caption(charts.kpi_basis_text(report.kpis))

now = datetime.now(UTC)
periods = charts.periods(report.kpis)
chosen = st.selectbox(
    "Ranking of",
    periods,
    index=charts.ranked_period_index(periods, now),
    format_func=lambda label: charts.period_choice_text(label, now),
    key="dealer_ranking_period",
)
if chosen is not None:
    st.subheader(f"Ranking by {charts.KPI_LABELS[kpi]}, {chosen}")
    if not charts.period_complete(chosen, now):
        st.caption("This period is under way: orders still open count only once they are closed.")
    dealer_rows = charts.ranking(report.kpis, kpi, chosen)
    st.table(charts.shown_table(dealer_rows, "Dealer"))
    widgets.csv_download(
        dealer_rows, "Download the dealer ranking (CSV)", f"dealers-{chosen}.csv", key="dealer_ranking_csv"
    )
    st.subheader(f"Regions, {chosen}")
    region_rows = charts.ranking(report.regions, kpi, chosen, by="region")
    st.table(charts.shown_table(region_rows, "Region"))
    widgets.csv_download(
        region_rows, "Download the region ranking (CSV)", f"regions-{chosen}.csv", key="region_ranking_csv"
    )
