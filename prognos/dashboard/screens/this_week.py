"""This week: the owners to call, each vehicle's reason and due date, the nearest center able to
do the repair and a free slot there to offer, bookable from the page; and each center's plan of
booked visits with the parts to have ready (docs/dashboard.md)."""

import os
from datetime import timedelta

import streamlit as st

from prognos.cloud.parts.plan import FAULT_PARTS
from prognos.dashboard import data, desk_data, desk_views, widgets
from prognos.desk import week
from prognos.errors import ConfigError

HORIZONS = {7: "the next 7 days", 14: "the next 14 days", 28: "the next 4 weeks"}
SORTS = {
    "Due date": None,
    "Service center": "Service center",
    "Owner": "Owner",
    "Proposed slot": "Proposed slot",
}

st.title("This week")
snapshot = widgets.snapshot()
calls_tab, plan_tab = st.tabs(["Calls", "Center plan"])
with plan_tab:
    names = dict(widgets.load(desk_data.centers))
    center = st.selectbox(
        "Center", sorted(names), format_func=lambda c: f"{names[c]} ({c})", key="plan_center"
    )
    if center:
        visits = widgets.load(desk_data.center_plan, str(center))
        if not visits:
            st.info(f"No visit is booked at {widgets.plain(names[center])} from now on.")
        else:
            part_names = {spec.part: spec.name for spec in FAULT_PARTS.values()}
            widgets.paged_table(
                desk_views.center_plan_table(visits, part_names), "center_plan", wrap_on="When"
            )
            st.caption("Booked visits from the last hour on, earliest first, with the parts each needs.")
            widgets.csv_download(
                desk_views.center_plan_table(visits, part_names, links=False),
                "Download the center plan (CSV)",
                f"center-plan-{center}.csv",
                key="plan_csv",
            )
with calls_tab:
    horizon = st.selectbox(
        "Vehicles due within", list(HORIZONS), format_func=lambda d: HORIZONS[d], key="week_days"
    )
    days = int(horizon or 7)
    service = widgets.load(data.service_list, snapshot.at)
    alerts = widgets.load(data.alerts, snapshot.at)
    today = desk_data.now().date()
    dues = desk_views.dues_from_snapshot(service, alerts, last_day=today + timedelta(days=days))
    if not dues:
        st.success(f"No vehicle is due for a visit in {HORIZONS[days]} and none has a P1 alert.")
        st.stop()
    calls = widgets.load(desk_data.week_calls, tuple(dues))

    if "week_booked" in st.session_state:
        st.success(st.session_state.pop("week_booked"))
    booked = sum(call.booked for call in calls)
    offered = sum(call.slot is not None for call in calls)
    cols = st.columns(4)
    cols[0].metric("Vehicles due", len(calls))
    cols[1].metric("To call", len(calls) - booked, help="due and without an open appointment")
    cols[2].metric("Already booked", booked)
    cols[3].metric("Slot to offer", offered, help="a free slot at the nearest capable center")

    left, middle, right = st.columns([2, 2, 1])
    center_names = sorted({c.center.id for c in calls if c.center is not None})
    chosen_centers = left.multiselect("Service center", center_names, placeholder="all", key="week_centers")
    sort = middle.selectbox("Sort by", list(SORTS), key="week_sort") or "Due date"
    show_booked = right.toggle("Show booked", value=False, key="week_show_booked")
    shown = [
        call
        for call in calls
        if (show_booked or not call.booked)
        and (not chosen_centers or (call.center is not None and call.center.id in chosen_centers))
    ]
    table = desk_views.week_table(shown)
    if SORTS[sort] is not None:
        table = table.sort_values(SORTS[sort], kind="stable")
    if table.empty:
        st.info("Every vehicle of this selection has its appointment booked.")
    else:
        widgets.paged_table(table, "week_calls", size=25, wrap_on="Due by")
    st.caption(
        "Due by: the last day to see the vehicle, from the predicted failure's early bound less a "
        "safety margin; a P1 alert without a trend is due at once. Service center: the home "
        "center if it repairs the subsystem, else the nearest one that does, of a working dealer. "
        "Proposed slot: the first free bay there, given out in due order."
    )
    widgets.csv_download(
        desk_views.week_table(shown, links=False),
        "Download the call list (CSV)",
        "this-week.csv",
        key="week_csv",
    )

    bookable = [c for c in shown if not c.booked and c.slot is not None and c.owner is not None and c.center]
    if bookable:
        with st.expander("Book a proposed slot", expanded=False):
            labels = {
                c.due.vin: f"{c.owner.name if c.owner else ''}: {c.due.vin} at "
                f"{c.center.id if c.center else ''}"
                for c in bookable
            }
            vin = st.selectbox(
                "Vehicle to book", list(labels), format_func=labels.__getitem__, key="week_book_vin"
            )
            call = next(c for c in bookable if c.due.vin == vin)
            st.markdown(
                f"Proposed: **{call.slot:%a %Y-%m-%d %H:%M} UTC** at "
                f"{widgets.plain(call.center.name if call.center else '')}. "
                f"Reason: {widgets.plain(call.due.reason)}"
            )
            if st.button("Book this slot", key="week_book") and call.owner and call.center and call.slot:
                try:
                    done = desk_data.book_visit(
                        customer_id=call.owner.customer_id,
                        vin=call.due.vin,
                        center_id=call.center.id,
                        at=call.slot,
                        purpose=week.purpose_of(call.due),
                        actor=os.environ.get("USER", "dashboard"),
                        parts=week.parts_of(call.due),
                    )
                except ConfigError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["week_booked"] = (
                        f"Booked {done.appointment_id}: {done.vin} on {desk_views.minute(done.at)}. "
                        f"It is on [{call.owner.name}'s page](customers?customer={call.owner.customer_id})."
                    )
                    st.rerun()
