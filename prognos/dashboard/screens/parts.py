"""Parts demand: what to decide this week first (transfers between service centers, then
orders, each with its reason), the order list for purchasing, the campaigns' pre-stock, stock
against need, and the forecast behind it (docs/dashboard.md, docs/forecast.md)."""

import streamlit as st

from prognos.cloud.parts.accuracy import family
from prognos.dashboard import charts, data, widgets

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

st.title("Parts demand")
snapshot = widgets.snapshot()
weekly = widgets.load(data.parts_forecast, snapshot.at)
reorder = widgets.load(data.parts_reorder, snapshot.at)
lines = widgets.load(data.parts_decisions, snapshot.at)
campaign = widgets.load(data.parts_campaign, snapshot.at)
if weekly.empty and reorder.empty:
    widgets.no_data(
        "the latest analytics snapshot plans no parts: no open fault predicts a failure date at a "
        "vehicle with a home service center and no work order of the last year used a part (import "
        "the vehicle registry and the work orders with `prognos cloud import-dms`)."
    )

centers = sorted(set(weekly["service_center"]) | set(reorder["service_center"]))
names = {**dict(zip(weekly["part"], weekly["name"], strict=False))}
names.update(dict(zip(reorder["part"], reorder["name"], strict=False)))
left, right = st.columns(2)
chosen_centers = left.multiselect("Service center", centers, placeholder="all", key="parts_centers")
chosen_parts = right.multiselect(
    "Part",
    sorted(names, key=lambda p: (str(names[p]), p)),
    format_func=lambda p: charts.part_label(names[p], p),
    placeholder="all",
    key="parts_parts",
)
if chosen_centers:
    weekly = weekly[weekly["service_center"].isin(chosen_centers)]
    reorder = reorder[reorder["service_center"].isin(chosen_centers)]
    lines = lines[lines["service_center"].isin(chosen_centers) | lines["from_center"].isin(chosen_centers)]
    campaign = campaign[campaign["service_center"].isin(chosen_centers)]
if chosen_parts:
    weekly = weekly[weekly["part"].isin(chosen_parts)]
    reorder = reorder[reorder["part"].isin(chosen_parts)]
    lines = lines[lines["part"].isin(chosen_parts)]
    campaign = campaign[campaign["part"].isin(chosen_parts)]

orders = lines[lines["action"] == "order"]
transfers = lines[lines["action"] == "transfer"]
cols = st.columns(4)
cols[0].metric("Order lines to place", len(orders))
cols[1].metric("Cost of the orders", data.order_cost_text(orders, "line_cost"))
cols[2].metric("Transfers to make", len(transfers))
cols[3].metric("Stock moved instead of bought", data.order_cost_text(transfers, "line_cost"))

st.subheader("To decide this week")
if lines.empty:
    st.success(
        "Nothing to order or move: the stock on hand and on order covers the demand over lead time "
        "and review period everywhere selected (the plan below says why for each part)."
    )
else:
    by = st.radio(
        "Sort",
        list(charts.DECISION_ORDERS),
        format_func=charts.DECISION_ORDERS.__getitem__,
        horizontal=True,
        key="parts_sort",
        label_visibility="collapsed",
    )
    shown = charts.decision_table(charts.sorted_decisions(lines, by or "urgency"), snapshot.time_ms)
    widgets.paged_table(shown, "parts_decisions", size=25, wrap_on="Part")
    st.caption(
        "Transfers come first: a center short of its reorder point takes what a center within "
        "300 km holds above its own, when that arrives (2 days) sooner than the supplier's lead time. "
        "Orders are whole packs and at least the minimum order. Need by: when the center's stock is "
        "expected to run out, at the latest one lead time from now. Value: what an order costs, or "
        "what a transfer's units are worth."
    )
if not orders.empty:
    st.markdown("**Order list for purchasing** (one row per order line)")
    down_csv, down_xlsx, _ = st.columns([1, 1, 2])
    down_csv.download_button(
        "Download the order list (CSV)",
        charts.order_list_csv(orders),
        file_name="parts-orders.csv",
        mime="text/csv",
        key="parts_orders_csv",
        on_click="ignore",
    )
    down_xlsx.download_button(
        "Download the order list (XLSX)",
        charts.order_list_xlsx(orders),
        file_name="parts-orders.xlsx",
        mime=XLSX_MIME,
        key="parts_orders_xlsx",
        on_click="ignore",
    )

if not campaign.empty:
    st.subheader("Campaign pre-stock")
    st.caption(
        "Parts to have at each vehicle's home service center when a campaign cohort is called in: a "
        "vehicle that shows the fault needs the part, one that does not yet needs it at the cohort's "
        "rate; vehicles whose failure the plan already counts are not counted again."
    )
    widgets.paged_table(charts.campaign_stock_table(campaign), "parts_campaign", size=25, wrap_on="Part")

if not reorder.empty:
    st.subheader("Stock against need")
    acting = reorder[
        (reorder["order_units"].fillna(0) > 0)
        | (reorder["transfer_in"].fillna(0) > 0)
        | (reorder["transfer_out"].fillna(0) > 0)
    ]
    charted = acting if not acting.empty else reorder
    if not acting.empty and len(acting) < len(reorder):
        st.caption(f"The {len(acting)} service centers and parts with a decision this week.")
    st.plotly_chart(charts.stock_chart(charted.sort_values(["service_center", "name"])))

if not weekly.empty:
    st.subheader("Forecast")
    st.plotly_chart(charts.demand_chart(weekly))
    pairs = data.pairs_by_demand(weekly)
    center, part = st.selectbox(
        "Service center and part",
        pairs,
        format_func=lambda p: f"{p[0]} · {charts.part_label(names.get(p[1], p[1]), p[1])}",
        key="parts_pair",
    )
    rows = weekly[(weekly["service_center"] == center) & (weekly["part"] == part)]
    title = f"{center} · {names.get(part, part)}: weekly demand with 90 % interval"
    st.plotly_chart(charts.forecast_chart(rows, title))

st.subheader("How far to trust the forecast")
accuracy = widgets.load(data.parts_accuracy, snapshot.at)
kept = widgets.load(data.parts_forecast_actual, snapshot.at)
if chosen_centers:
    accuracy = accuracy[accuracy["service_center"].isin(chosen_centers)]
    kept = kept[kept["service_center"].isin(chosen_centers)]
if chosen_parts:
    accuracy = accuracy[accuracy["family"].isin({family(p) for p in chosen_parts})]
    kept = kept[kept["part"].isin(chosen_parts)]
if accuracy.empty:
    st.info(
        "No forecast week has passed yet: each week's plan is kept, and once its weeks are over they "
        "are compared here with the parts the work orders used. `prognos forecast accuracy` reports "
        "the same on the work orders' history now."
    )
else:
    if not kept.empty:
        st.plotly_chart(charts.forecast_actual_chart(kept))
    widgets.paged_table(charts.accuracy_view(accuracy), "parts_accuracy", size=25, wrap_on="Service center")
    st.caption(
        "The plans of the last 26 weeks, every week ahead, once the work orders of the week are "
        "imported. Bias: how much more (+) or less (-) the plans expected than was used. RMSSE: the "
        "forecast's error against that of guessing last week's units again (below 1 beats that "
        "guess). Within the 90 % interval: the share of weeks whose use fell in the plan's interval "
        "(about 90 % when the intervals are right)."
    )

if not reorder.empty:
    st.subheader("The plan per service center and part")
    widgets.paged_table(
        charts.plan_table(reorder.sort_values(["service_center", "name"])),
        "parts_plan",
        size=25,
        wrap_on="Part",
    )
    widgets.csv_download(reorder, "Download the plan (CSV)", "parts-plan.csv", "parts_reorder_csv")
if not weekly.empty:
    with st.expander("Weekly forecast per service center and part"):
        widgets.paged_table(charts.weekly_table(weekly), "parts_weekly", size=25, wrap_on="Part")
    widgets.csv_download(
        weekly, "Download the weekly forecast (CSV)", "parts-forecast.csv", "parts_forecast_csv"
    )
