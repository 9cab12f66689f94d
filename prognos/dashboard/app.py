"""The dashboard's entry point: navigation only."""

import streamlit as st

st.set_page_config(page_title="Prognos", layout="wide")
pages = {
    "Service": [
        st.Page("pages/fleet_health.py", title="Fleet health", default=True),
        st.Page("pages/vehicle.py", title="Vehicle detail", url_path="vehicle"),
        st.Page("pages/campaigns.py", title="Campaigns and cohorts", url_path="campaigns"),
        st.Page("pages/dealers.py", title="Dealer KPIs", url_path="dealers"),
    ],
    "Service desk": [
        st.Page("pages/customers.py", title="Customers", url_path="customers"),
        st.Page("pages/complaints.py", title="Complaints", url_path="complaints"),
    ],
    "Planning": [st.Page("pages/parts.py", title="Parts demand", url_path="parts")],
    "Operations": [st.Page("pages/system.py", title="System", url_path="system")],
}
st.navigation(pages).run()
