"""Campaigns and cohorts: vehicles sharing a lot, model or supplier that show one fault more
often than the rest of the fleet, and every vehicle a campaign should reach."""

import streamlit as st

from prognos.dashboard import charts, data, widgets

st.title("Campaigns and cohorts")
snapshot = widgets.snapshot()
cohorts = widgets.load(data.cohorts, snapshot.at)
tested = snapshot.count("cohorts_tested")
if cohorts.empty:
    if snapshot.count("vehicles_registered") == 0:
        st.info(
            "No cohorts: the vehicle registry is not imported (`prognos cloud import-dms`), so "
            "vehicles cannot be grouped by lot, model or supplier."
        )
    else:
        st.success(f"No significant cohort among the {tested} groups tested: no campaign needed.")
    st.stop()

campaigns = cohorts[cohorts["status"] == "campaign"]
cols = st.columns(3)
cols[0].metric("Campaigns", len(campaigns))
cols[1].metric("Vehicles on campaign lists", int(campaigns["campaign_vehicles"].fillna(0).sum()))
cols[2].metric("Not yet affected", int(campaigns["not_yet_affected"].fillna(0).sum()))
st.caption(
    f"{len(cohorts)} significant cohorts of {tested} groups tested (Benjamini-Hochberg q <= 0.05, "
    "at least 3 affected, lift >= 2); a covered cohort is explained by the campaign named in covered_by."
)

st.plotly_chart(charts.cohort_chart(cohorts))
st.dataframe(
    cohorts.drop(columns=["p_value"]),
    hide_index=True,
    column_config={
        "share": st.column_config.NumberColumn("share", format="percent"),
        "base_rate": st.column_config.NumberColumn("base rate", format="percent"),
        "lift": st.column_config.NumberColumn("lift", format="%.1f"),
        "q_value": st.column_config.NumberColumn("q value", format="%.2g"),
    },
)
widgets.csv_download(cohorts, "Download cohorts (CSV)", "cohorts.csv", "cohorts_csv")

st.subheader("Campaign vehicles")
if campaigns.empty:
    st.write("Every significant cohort is covered by another; no campaign list.")
    st.stop()
cohort = st.selectbox("Campaign", list(campaigns["cohort_id"]), key="campaign_cohort")
chosen = campaigns[campaigns["cohort_id"] == cohort].iloc[0]
st.markdown(
    f"**Check:** {widgets.plain(chosen['check'])}  \n"
    f"**Part to have ready:** {widgets.plain(chosen['part'])} {widgets.plain(chosen['part_name'])}"
)
vehicles = widgets.load(data.campaign_vehicles, snapshot.at, cohort)
if vehicles.empty:
    st.write("No registered vehicle on this campaign's list.")
    st.stop()
st.plotly_chart(charts.campaign_chart(vehicles))
widgets.paged_table(
    charts.with_vehicle_links(vehicles.drop(columns=["cohort", "check"])),
    "campaign_vehicles",
    column_config={"vin": st.column_config.LinkColumn("VIN", display_text=r"vin=(.*)")},
)
name = "campaign-" + "".join(c if c.isalnum() else "-" for c in cohort).strip("-") + ".csv"
widgets.csv_download(vehicles, "Download this campaign's vehicles (CSV)", name, "campaign_csv")
