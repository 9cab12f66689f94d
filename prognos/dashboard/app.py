"""The dashboard's entry point: navigation only. The pages live in screens/, not pages/: Streamlit
would take a pages/ folder for its older multipage mode when a page's URL is opened first."""

import streamlit as st

st.set_page_config(page_title="Prognos", layout="wide")
pages = {
    "Service": [
        st.Page("screens/fleet_health.py", title="Fleet health", default=True),
        st.Page("screens/vehicle.py", title="Vehicle detail", url_path="vehicle"),
        st.Page("screens/campaigns.py", title="Campaigns and cohorts", url_path="campaigns"),
        st.Page("screens/conditions.py", title="Fleet conditions", url_path="conditions"),
        st.Page("screens/dealers.py", title="Dealer KPIs", url_path="dealers"),
    ],
    "Service desk": [
        st.Page("screens/this_week.py", title="This week", url_path="week"),
        st.Page("screens/customers.py", title="Customers", url_path="customers"),
        st.Page("screens/complaints.py", title="Complaints", url_path="complaints"),
    ],
    "Planning": [st.Page("screens/parts.py", title="Parts demand", url_path="parts")],
    "Operations": [st.Page("screens/system.py", title="System", url_path="system")],
}
st.navigation(pages).run()
