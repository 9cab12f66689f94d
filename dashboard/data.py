"""Every query the dashboard makes, cached, with bound parameters: pages import only this and
charts. Where the database is comes from PROGNOS_INFLUX_URL, or else from the stack in
PROGNOS_HOME; the database name from PROGNOS_DATABASE (default prognos)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from cloud.fleet_health import vehicle_table
from cloud.influx import InfluxClient
from prognos.errors import ConfigError, PrognosError
from prognos.stack import default_home, load_stack

LOOKBACK = "30d"


class DataUnavailableError(PrognosError):
    """The database cannot be reached or asked; the message says why, for the page to show."""


def database() -> str:
    return os.environ.get("PROGNOS_DATABASE", "prognos")


def influx_url() -> str:
    url = os.environ.get("PROGNOS_INFLUX_URL")
    if url:
        return url
    home = Path(os.environ["PROGNOS_HOME"]) if "PROGNOS_HOME" in os.environ else default_home()
    try:
        return load_stack(home).influx_url
    except ConfigError as exc:
        raise DataUnavailableError(str(exc)) from exc


@st.cache_resource
def _client(url: str) -> InfluxClient:
    return InfluxClient(url, timeout_s=5.0)


def _frame(text: str, params: dict[str, str] | None = None) -> pd.DataFrame:
    client = _client(influx_url())
    try:
        series = client.query(text, database=database(), params=params)
    except PrognosError as exc:
        raise DataUnavailableError(f"database unreachable or refused the query: {exc}") from exc
    rows = [row for s in series for row in s.rows()]
    return pd.DataFrame(rows)


@st.cache_data(ttl=10, show_spinner=False)
def fleet_vehicles() -> pd.DataFrame:
    """One row per vehicle with its latest health, worst first."""
    states = _frame(
        'SELECT last("health") AS health, last("anomaly_score") AS anomaly_score '
        f"FROM vehicle_health WHERE time > now() - {LOOKBACK} GROUP BY fleet, vin, subsystem"
    )
    if states.empty:
        return vehicle_table(states, states)
    # With two selectors InfluxQL stamps rows with the range start; a single selector keeps
    # the point's own time, so the time of each vehicle's latest record comes from here.
    latest = _frame(f'SELECT last("seq") FROM diag WHERE time > now() - {LOOKBACK} GROUP BY vin')
    latest_ms = latest.set_index("vin")["time"]
    states["time"] = states["vin"].map(latest_ms)
    faults = _frame(
        'SELECT last("confidence") AS confidence FROM fault '
        f"WHERE time > now() - {LOOKBACK} GROUP BY vin, code"
    )
    if faults.empty:
        faults = pd.DataFrame(columns=["vin", "code", "time"])
    else:
        faults = faults[faults["time"] >= faults["vin"].map(latest_ms)]
    return vehicle_table(states, faults)
