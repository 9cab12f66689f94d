"""Dealer KPIs: SLA compliance, first-time fix, CSAT and NPS per dealer and region, their trends
and ranking, and the dealer-risk early warning with its reasons (docs/dms.md)."""

import streamlit as st

from prognos.dashboard import charts, data, widgets

st.title("Dealer KPIs")
period = st.radio("Period", ["month", "week"], horizontal=True, key="dealer_period")
report = widgets.load(data.dealers, period)
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
st.dataframe(
    charts.risk_table(risk),
    hide_index=True,
    column_config={
        "score": st.column_config.ProgressColumn("score", min_value=0, max_value=100, format="%.1f")
    },
)

kpi = (
    st.selectbox("KPI", list(charts.KPI_LABELS), format_func=charts.KPI_LABELS.__getitem__, key="dealer_kpi")
    or "sla_rate"
)
left, right = st.columns(2)
left.plotly_chart(charts.kpi_trend_chart(report.kpis, kpi, "dealer_id"))
right.plotly_chart(charts.kpi_trend_chart(report.regions, kpi, "region"))

periods = charts.periods(report.kpis)
chosen = st.selectbox("Ranking of", periods, index=len(periods) - 1, key="dealer_ranking_period")
if chosen is not None:
    st.subheader(f"Ranking by {charts.KPI_LABELS[kpi].lower()}, {chosen}")
    st.caption("Rates in %. The latest period may be under way: orders still open count only when closed.")
    st.dataframe(charts.ranking(report.kpis, kpi, chosen), hide_index=True)
    st.subheader(f"Regions, {chosen}")
    st.dataframe(charts.ranking(report.regions, kpi, chosen, by="region"), hide_index=True)
