"""Streamlit dashboard: app (navigation), pages (render only), data (every query), charts."""
