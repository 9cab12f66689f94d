"""Vehicle detail: one vehicle's scores and health over time, its fault hypotheses, records,
services and what to do. Reachable as vehicle?vin=VIN."""

import os
import time

import pandas as pd
import streamlit as st

from prognos.dashboard import charts, data, desk_data, desk_views, widgets
from prognos.desk import week
from prognos.errors import ConfigError, DecodeError
from prognos.record import VIN_PATTERN

st.title("Vehicle detail")
snapshot = widgets.load(data.latest_snapshot)
registry = widgets.load(data.registry)
alerts = widgets.load(data.alerts, snapshot.at) if snapshot is not None else pd.DataFrame()

# Vehicles with alerts first (most urgent first), then the registry.
choices = list(dict.fromkeys([*(alerts["vin"] if not alerts.empty else []), *registry["vin"]]))
asked = st.query_params.get("vin")
if asked and asked not in choices:
    choices.insert(0, asked)
vin = st.selectbox(
    "Vehicle (VIN)",
    choices,
    index=choices.index(asked) if asked else None,
    placeholder="pick or type a VIN",
    accept_new_options=True,
    key="vehicle_vin",
)
if not vin:
    if not choices:
        widgets.no_data("no vehicle has alerts and no registry is imported: type a VIN.")
    st.info("Pick a vehicle, or open this page as vehicle?vin=VIN.")
    st.stop()
vin = vin.strip().upper()
if not VIN_PATTERN.fullmatch(vin):
    st.error(f"{vin!r} is not a VIN: 1 to 32 letters A-Z and digits.")
    st.stop()
if st.query_params.get("vin") != vin:
    st.query_params["vin"] = vin

profile = registry[registry["vin"] == vin]
if not profile.empty:
    row = profile.iloc[0]
    facts = [
        f"{label}: {widgets.plain(row[column])}"
        for column, label in charts.FILTER_COLUMNS.items()
        if pd.notna(row[column])
    ]
    if pd.notna(row["owner_name"]):
        facts.append(f"Owner: {widgets.plain(row['owner_name'])} ({widgets.plain(row['owner_contact'])})")
    st.caption(" · ".join(facts))
else:
    st.caption("Not in the vehicle registry: no model, lot, owner or home service center known.")

mine = alerts[alerts["vin"] == vin] if not alerts.empty else alerts
st.subheader("Recommended action")
if mine.empty:
    st.success("No open alert for this vehicle in the latest analytics snapshot: no action needed.")
for alert in mine.itertuples():
    text = f"**{alert.priority} · {alert.code}** — {alert.action}\n\n{alert.reason}"
    (st.error if alert.priority == "P1" else st.warning if alert.priority == "P2" else st.info)(text)

st.subheader("Diagnosis reports")
if "report_booked" in st.session_state:
    st.success(st.session_state.pop("report_booked"))
try:
    reports = desk_data.vehicle_reports(vin)
except data.DataUnavailableError as exc:  # the desk is not this page's main source: say so, go on
    reports = []
    st.info(f"Diagnosis reports cannot be shown: {exc}")
else:
    if not reports:
        st.write(
            "No diagnosis report for this vehicle yet: the report worker (`prognos cloud reports run`) "
            "writes one within seconds when a record raises or escalates an alert."
        )
for index, detail in enumerate(reports):
    try:
        report = desk_views.report_of(detail)
    except DecodeError as exc:
        st.warning(f"Report {detail.report.report_id} cannot be read: {exc}")
        continue
    with st.expander(desk_views.report_heading(report), expanded=index == 0):
        st.markdown(f"**{widgets.plain(report.summary)}**")
        st.caption(f"{widgets.plain(report.reason)}. {desk_views.notifications_text(detail)}")
        st.download_button(
            "Download the report (HTML)",
            detail.html.encode("utf-8"),
            file_name=desk_views.report_file_name(report),
            mime="text/html",
            key=f"report_download_{report.report_id}",
        )
        st.markdown("**Evidence**")
        st.table(charts.shown_table(desk_views.report_subsystems_table(report), "Subsystem"))
        if report.evidence.series:
            st.line_chart(desk_views.report_series(report), height=220)
        st.markdown("**Trend**")
        st.write(desk_views.report_trend_text(report))
        st.markdown("**Likely causes**")
        if report.causes:
            st.table(charts.shown_table(desk_views.report_causes_table(report), "Rank"))
        else:
            st.write(desk_views.no_causes_text())
        st.markdown("**Recommended checks and parts**")
        st.markdown("\n".join(f"- {widgets.plain(check)}" for check in report.checks))
        if report.parts:
            st.table(charts.shown_table(desk_views.report_parts_table(report), "Part"))
        st.markdown("**Nearest capable service centers: stock and next free slots**")
        if report.centers:
            st.table(charts.shown_table(desk_views.report_centers_table(report), "Center"))
        else:
            st.write("No service center that repairs this subsystem is known to the desk.")
        st.write(desk_views.report_contact_text(report))
        offers = [(c, at) for c in report.centers for at in c.slots]
        if report.contact.customer_id and offers and not report.parts_are_candidates:
            labels = {
                i: f"{at:%a %Y-%m-%d %H:%M} UTC at {c.name} ({c.center_id})"
                for i, (c, at) in enumerate(offers)
            }
            chosen = st.selectbox(
                "Slot to book",
                list(labels),
                format_func=labels.__getitem__,
                key=f"report_slot_{report.report_id}",
            )
            if st.button("Book this slot", key=f"report_book_{report.report_id}") and chosen is not None:
                center, at = offers[chosen]
                try:
                    done = desk_data.book_visit(
                        customer_id=report.contact.customer_id,
                        vin=report.vin,
                        center_id=center.center_id,
                        at=at,
                        purpose=week.purpose_of(
                            week.Due(vin=report.vin, due=at.date(), reason=report.summary)
                        ),
                        actor=os.environ.get("USER", "dashboard"),
                        parts=tuple(p.part for p in report.parts),
                    )
                except ConfigError as exc:
                    st.error(f"{exc} Pick another slot; the report's slots were free when it was written.")
                else:
                    st.session_state["report_booked"] = (
                        f"Booked {done.appointment_id}: {done.vin} at {center.name} on "
                        f"{desk_views.minute(done.at)}. It is on [the owner's page]"
                        f"(customers?customer={report.contact.customer_id})."
                    )
                    st.rerun()

range_label = st.radio("Range", list(data.HISTORY_RANGES), index=1, horizontal=True, key="vehicle_range")
history = widgets.load(data.vehicle_history, vin, range_label)
records = widgets.load(data.vehicle_records, vin, range_label)
if history.empty and records.empty:
    st.info(f"No data yet: {vin} has sent no records in the last {range_label}.")
else:
    left, right = st.columns(2)
    left.plotly_chart(charts.score_chart(history))
    right.plotly_chart(charts.health_chart(history))

st.subheader("Fault hypotheses")
faults = widgets.load(data.vehicle_faults, vin)
if faults.empty:
    st.write("No fault reported in the last 30 days.")
else:
    last_record = float(records["time"].max()) if not records.empty else None
    st.dataframe(
        charts.fault_table(faults, last_record, int(time.time() * 1000)),
        hide_index=True,
        column_config={
            "code": st.column_config.TextColumn("fault"),
            "open": st.column_config.CheckboxColumn("open", width="small", help="in the latest record"),
            "confidence": st.column_config.ProgressColumn(
                "confidence", min_value=0.0, max_value=1.0, format="%.2f", width="small"
            ),
            "days_left": st.column_config.NumberColumn(
                "days left", format="%.1f", help="to the threshold, from now"
            ),
            "interval_80": st.column_config.TextColumn("80% interval (days)"),
            "estimated_at": st.column_config.DatetimeColumn("estimated (UTC)", format="YYYY-MM-DD HH:mm"),
            "last_reported": st.column_config.DatetimeColumn(
                "last reported (UTC)", format="YYYY-MM-DD HH:mm"
            ),
        },
    )

st.subheader("Records")
if records.empty:
    st.write(f"No records in the last {range_label}.")
else:
    st.plotly_chart(charts.records_chart(records))
    widgets.paged_table(
        charts.records_table(records),
        "vehicle_records",
        column_config={
            "window_end": st.column_config.DatetimeColumn("window end (UTC)", format="YYYY-MM-DD HH:mm"),
            "seq": st.column_config.NumberColumn("record no."),
            "window_min": st.column_config.NumberColumn("window (min)", format="%.1f"),
        },
    )

st.subheader("Maintenance intervals")
intervals = widgets.load(data.vehicle_intervals, snapshot.at, vin) if snapshot is not None else pd.DataFrame()
if intervals.empty:
    st.write(
        "No personalised interval yet: it needs a few days of this vehicle's wear data in the analytics "
        "snapshot (docs/analytics.md, maintenance intervals)."
    )
else:
    st.table(charts.shown_table(charts.interval_table(intervals), "Wear part"))
    st.caption(
        "Interval: the standard service interval scaled by how fast this vehicle wears the part against "
        "the fleet. Next service: when its health is expected to reach the act limit (0.2)."
    )

st.subheader("Services (DMS work orders)")
orders = widgets.load(data.vehicle_work_orders, vin)
if orders.empty:
    st.write("No work order for this vehicle in the imported DMS data.")
else:
    widgets.paged_table(charts.work_order_table(orders), "vehicle_orders", size=25, wrap_on="Order")
