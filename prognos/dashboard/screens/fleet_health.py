"""Fleet health: how many vehicles need action, and which first."""

import streamlit as st

from prognos.dashboard import charts, data, widgets

st.title("Fleet health")
snapshot = widgets.snapshot()
registry = widgets.load(data.registry)
alerts = widgets.load(data.alerts, snapshot.at)
bands = widgets.load(data.vehicle_bands, snapshot.at)

selected = widgets.registry_filters(registry, "fleet")
figures = charts.key_figures(snapshot.counts, alerts, bands, selected)
if selected is not None:
    alerts = alerts[alerts["vin"].isin(set(selected["vin"]))]
    bands = bands[bands["vin"].isin(set(selected["vin"]))]
    silent = figures["silent"]
    st.caption(
        "With a filter the counts hold the selection's vehicles with data in the snapshot's window"
        + (f"; {silent} more of the selection sent nothing in it." if silent else ".")
        + " Vehicles missing from the registry are not in any selection."
    )

cols = st.columns(5)
cols[0].metric("Vehicles monitored", figures["monitored"])
cols[1].metric("Healthy", figures["healthy"])
cols[2].metric("Watch", figures["watch"])
cols[3].metric("Act", figures["act"])
cols[4].metric("Open alerts", figures["alerts"], help=f"{figures['p1']} of them P1")

left, right = st.columns(2)
with left:
    if figures["monitored"] == 0:
        st.info("No vehicle has sent data in the snapshot's window, so no band to chart.")
    elif registry.empty or bands.empty:
        st.plotly_chart(charts.fleet_band_chart(figures))
    else:
        by = (
            st.selectbox(
                "Group by",
                list(charts.FILTER_COLUMNS),
                format_func=charts.FILTER_COLUMNS.__getitem__,
                key="fleet_by",
            )
            or "model"
        )
        st.plotly_chart(charts.band_chart(charts.band_table(bands, registry, by), by))
with right:
    history = widgets.load(data.snapshot_history)
    st.plotly_chart(charts.band_history_chart(history))

st.subheader("Alerts, most urgent first")
if alerts.empty:
    if figures["monitored"]:
        st.success(f"No open alerts: all {figures['monitored']} vehicles with data are healthy.")
    else:
        st.info("No open alerts, and no vehicle has sent data in the window.")
    st.stop()
priorities = st.multiselect("Priority", ["P1", "P2", "P3"], placeholder="all", key="fleet_priority")
if priorities:
    alerts = alerts[alerts["priority"].isin(priorities)]
shown = charts.alert_table(alerts, registry)[charts.ALERT_PAGE_COLUMNS]
widgets.paged_table(shown, "fleet_alerts", size=25, wrap_on="Rank")
st.caption(
    "Days to threshold: counted from now, for faults with a trend (wear, drift); an anomaly without "
    "a trend has none. The CSV adds the evidence (subsystem health, anomaly score, confidence, last "
    "report); the vehicle's page shows it over time."
)
widgets.csv_download(
    charts.alert_table(alerts, registry, links=False),
    "Download the alerts (CSV)",
    "alerts.csv",
    key="alerts_csv",
)
