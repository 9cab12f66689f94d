"""The dashboard's entry point: navigation only."""

import streamlit as st

st.set_page_config(page_title="Prognos", layout="wide")
pages = [st.Page("pages/fleet_health.py", title="Fleet health", default=True)]
st.navigation(pages).run()
