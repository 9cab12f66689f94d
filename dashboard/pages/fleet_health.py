"""Fleet health: how many vehicles need action, and which."""

import pandas as pd
import streamlit as st

from dashboard import data

st.title("Fleet health")
try:
    vehicles = data.fleet_vehicles()
except data.DataUnavailableError as exc:
    st.error(f"Database unreachable: {exc}")
    st.stop()

if vehicles.empty:
    st.info(
        "No data yet: no vehicle has reported in the last 30 days. "
        "Start `prognos cloud ingest` and a fleet (`prognos edge simulate`)."
    )
    st.stop()

counts = vehicles["band"].value_counts()
cols = st.columns(4)
cols[0].metric("Vehicles monitored", len(vehicles))
cols[1].metric("Healthy", int(counts.get("healthy", 0)))
cols[2].metric("Watch", int(counts.get("watch", 0)))
cols[3].metric("Act", int(counts.get("act", 0)))

table = vehicles.assign(last_seen=pd.to_datetime(vehicles["last_seen"], unit="ms", utc=True))
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "health": st.column_config.ProgressColumn("health", min_value=0.0, max_value=1.0, format="%.2f"),
        "max_score": st.column_config.NumberColumn("max anomaly score", format="%.2f"),
        "last_seen": st.column_config.DatetimeColumn("last record (UTC)"),
    },
)
