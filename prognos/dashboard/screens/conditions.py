"""Fleet conditions: which faults are more frequent in the cold, the damp, a region, a model or
a lot, with the interval and the evidence (docs/analytics.md, "Condition mining")."""

from datetime import UTC, datetime

import streamlit as st

from prognos.cloud.analytics.conditions import finding_text
from prognos.dashboard import charts, data, widgets

st.title("Fleet conditions")
run = widgets.load(data.condition_run)
if run is None:
    widgets.no_data(
        "no condition-mining run has been stored. Run `prognos cloud conditions` (or `--every 1h`) "
        "once records with temperature and humidity have been ingested."
    )
at = datetime.fromtimestamp(int(run["time"]) / 1000, UTC)
st.caption(
    f"Condition-mining run of {at:%Y-%m-%d %H:%M} UTC over {float(run['lookback_days']):g} days; "
    f"false-discovery rate {float(run['fdr']):g}."
)
cols = st.columns(5)
cols[0].metric("Vehicles", int(run["vehicles"]))
cols[1].metric("Exposure (vehicle-months)", f"{float(run['exposure_months']):,.1f}")
cols[2].metric("Fault onsets", int(run["onsets"]))
cols[3].metric("Conditions tested", int(run["tests"]), help="fault code x condition pairs")
cols[4].metric("Findings", int(run["findings"]))

findings = widgets.load(data.condition_findings, data.rfc3339(int(run["time"])))
found = findings[findings["finding"].astype(bool)] if not findings.empty else findings
st.subheader("Findings")
if findings.empty:
    st.info(
        "No condition was tested: each needs at least 10 vehicle-months of data inside it and "
        "outside it. More vehicles or a longer --lookback give the run something to test."
    )
elif found.empty:
    st.success(
        f"No fault is significantly more frequent under any of the {len(findings)} conditions tested "
        f"(false-discovery rate {float(run['fdr']):g})."
    )
for _, row in found.iterrows():
    st.warning(widgets.plain(finding_text(row)))
if not findings.empty:
    st.subheader("Every test")
    table = charts.condition_table(findings)
    widgets.paged_table(table, "conditions", size=25, wrap_on="Fault")
    st.caption(
        "Lift: the onset rate inside the condition over the rate elsewhere. q-value: the p-value "
        "adjusted for every test of the run (Benjamini-Hochberg). A finding needs q at or below the "
        "false-discovery rate, a lift of at least 1.5 and at least 5 onsets inside."
    )
    widgets.csv_download(
        findings, "Download every test (CSV)", "condition-findings.csv", key="conditions_csv"
    )
