"""System: is data flowing? Ingest rate, dead letters, gateways online and the model versions
they run (docs/ingest.md, docs/gateway.md)."""

import streamlit as st

from prognos.dashboard import charts, data, widgets

st.title("System")
range_label = st.radio("Range", list(data.RANGES), index=1, horizontal=True, key="system_range")
rate = widgets.load(data.ingest_rate, range_label)
workers = widgets.load(data.ingest_workers)
letters = widgets.load(data.dead_letters)
gateways = widgets.load(data.gateways)
registry = widgets.load(data.registry)
if rate.empty and workers.empty and letters.empty and gateways.empty:
    widgets.no_data(
        f"no ingest metrics or dead letters in database {data.database()!r} in the last {range_label}, "
        "and no gateway status in the last hour. Start `prognos cloud ingest` and the gateways."
    )

st.subheader("Ingest")
current = float(workers["records_per_s"].fillna(0).sum()) if not workers.empty else 0.0
cols = st.columns(4)
cols[0].metric("Records stored per second", f"{current:.1f}", help="sum of the workers' latest metrics")
cols[1].metric("Workers reporting (last hour)", len(workers))
lag = workers["lag_s"].max() if not workers.empty else None
cols[2].metric("Worst lag", "-" if lag is None or lag != lag else f"{lag:.0f} s")
cols[3].metric("Queued in workers", int(workers["queue_depth"].fillna(0).sum()) if not workers.empty else 0)
if rate.empty:
    st.write(f"No ingest metrics in the last {range_label}.")
else:
    st.plotly_chart(charts.ingest_chart(rate))
if not workers.empty:
    st.dataframe(workers.assign(time=charts.utc(workers["time"])), hide_index=True)

st.subheader("Dead letters")
if letters.empty:
    st.success("No dead letters in the last 30 days.")
else:
    counts = widgets.load(data.dead_letter_counts, range_label)
    st.metric(
        f"Dead letters, last {range_label}", int(counts["dead_letters"].sum()) if not counts.empty else 0
    )
    if not counts.empty:
        st.plotly_chart(charts.dead_letter_chart(counts))
    st.caption(f"The latest {len(letters)} (at most {data.DEAD_LETTERS_LIMIT}), newest first.")
    st.dataframe(
        letters.assign(time=charts.utc(letters["time"]))[["time", "topic", "reason", "size"]],
        hide_index=True,
        column_config={"time": st.column_config.DatetimeColumn("received (UTC)")},
    )

st.subheader("Gateways")
summary = charts.gateway_summary(gateways, list(registry["vin"]))
online, offline_box, silent = st.columns(3)
online.metric("Online", summary["online"])
offline_box.metric(
    "Offline", summary["offline"], help="the latest status says offline (or the Last Will did)"
)
if not registry.empty:
    silent.metric("Silent", summary["silent"], help="registered, but no status in the last hour")
st.caption(
    "Latest status of each gateway heard from in the last hour (an online gateway reports every minute)."
)
if not gateways.empty:
    versions = charts.model_versions(gateways)
    st.plotly_chart(charts.model_version_chart(versions))
    offline = gateways[~gateways["online"].fillna(False).astype(bool)]
    if not offline.empty:
        st.write("Offline gateways")
        widgets.paged_table(
            offline.assign(time=charts.utc(offline["time"]))[
                ["vin", "fleet", "time", "model_id", "model_version"]
            ],
            "system_offline",
            column_config={"time": st.column_config.DatetimeColumn("offline since (UTC)")},
        )
