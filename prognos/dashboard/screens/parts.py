"""Parts demand: the weekly forecast per service center and part with its interval, stock
against need, and what to order now (docs/forecast.md, docs/analytics.md)."""

import streamlit as st

from prognos.dashboard import charts, data, widgets

st.title("Parts demand")
snapshot = widgets.snapshot()
weekly = widgets.load(data.parts_forecast, snapshot.at)
reorder = widgets.load(data.parts_reorder, snapshot.at)
if weekly.empty and reorder.empty:
    widgets.no_data(
        "the latest analytics snapshot plans no parts: no open fault predicts a failure date at a "
        "vehicle with a home service center and no work order of the last year used a part (import "
        "the vehicle registry and the work orders with `prognos cloud import-dms`)."
    )

centers = sorted(set(weekly["service_center"]) | set(reorder["service_center"]))
parts = sorted(set(weekly["part"]) | set(reorder["part"]))
left, right = st.columns(2)
chosen_centers = left.multiselect("Service center", centers, placeholder="all", key="parts_centers")
chosen_parts = right.multiselect("Part", parts, placeholder="all", key="parts_parts")
if chosen_centers:
    weekly = weekly[weekly["service_center"].isin(chosen_centers)]
    reorder = reorder[reorder["service_center"].isin(chosen_centers)]
if chosen_parts:
    weekly = weekly[weekly["part"].isin(chosen_parts)]
    reorder = reorder[reorder["part"].isin(chosen_parts)]

orders = reorder[reorder["order_qty"] > 0]
cols = st.columns(4)
cols[0].metric("Expected units over the horizon", f"{weekly['forecast'].sum():.1f}")
cols[1].metric("Pairs to reorder", len(orders))
cols[2].metric("Units to order now", int(orders["order_qty"].sum()))
cols[3].metric("Cost of the orders", data.order_cost_text(orders))

st.subheader("Reorder recommendations")
if orders.empty:
    st.success("Stock covers the demand over lead time and review period everywhere selected.")
else:
    st.dataframe(
        orders,
        hide_index=True,
        column_config=widgets.view_config(charts.REORDER_VIEW),
        column_order=list(charts.REORDER_VIEW),
    )
widgets.csv_download(reorder, "Download reorder plan (CSV)", "parts-reorder.csv", "parts_reorder_csv")

if not weekly.empty:
    st.subheader("Forecast")
    st.plotly_chart(charts.demand_chart(weekly))
    pairs = data.pairs_by_demand(weekly)
    names = dict(zip(weekly["part"], weekly["name"], strict=False))
    center, part = st.selectbox(
        "Service center and part",
        pairs,
        format_func=lambda p: f"{p[0]} / {names.get(p[1], p[1])} ({p[1]})",
        key="parts_pair",
    )
    rows = weekly[(weekly["service_center"] == center) & (weekly["part"] == part)]
    title = f"{center} / {names.get(part, part)}: weekly demand with 90% interval"
    st.plotly_chart(charts.forecast_chart(rows, title))
    widgets.paged_table(
        weekly,
        "parts_weekly",
        column_config=widgets.view_config(charts.WEEKLY_VIEW),
        column_order=list(charts.WEEKLY_VIEW),
    )
    widgets.csv_download(weekly, "Download weekly forecast (CSV)", "parts-forecast.csv", "parts_forecast_csv")

if not reorder.empty:
    st.subheader("Stock against need")
    st.plotly_chart(charts.stock_chart(reorder))
