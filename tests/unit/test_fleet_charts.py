"""The fleet page's counts and band chart hold the same vehicles: the snapshot's `vehicle_band`
points, never registry rows that sent nothing (prognos.dashboard.charts)."""

from __future__ import annotations

import pandas as pd

from prognos.dashboard import charts

REGISTRY = pd.DataFrame(
    {
        "vin": ["V1", "V2", "V3", "V4"],
        "model": ["EV-1", "EV-1", "EV-2", "EV-2"],
    }
)
BANDS = pd.DataFrame({"vin": ["V1", "V3", "X9"], "band": ["act", "healthy", "watch"]})
ALERTS = pd.DataFrame(
    {"vin": ["V1", "X9"], "priority": ["P1", "P2"], "band": ["act", "watch"], "rank": [1, 2]}
)
COUNTS = {"vehicles_observed": 3, "vehicles_act": 1, "vehicles_watch": 1, "vehicles_healthy": 1}


def test_chart_without_filter_sums_to_the_snapshot_counts() -> None:
    figures = charts.key_figures(COUNTS, ALERTS, BANDS, None)
    table = charts.band_table(BANDS, REGISTRY, "model")
    assert table["vehicles"].sum() == figures["monitored"] == 3
    for band in ("act", "watch", "healthy"):
        assert table.loc[table["band"] == band, "vehicles"].sum() == figures[band]
    assert set(table["model"]) == {"EV-1", "EV-2", "(not registered)"}


def test_registered_vehicles_without_data_are_not_counted_healthy() -> None:
    selected = REGISTRY[REGISTRY["model"] == "EV-1"]  # V1 reported (act), V2 never did
    figures = charts.key_figures(COUNTS, ALERTS, BANDS, selected)
    assert figures == {"monitored": 1, "healthy": 0, "watch": 0, "act": 1, "alerts": 1, "p1": 1, "silent": 1}
    table = charts.band_table(BANDS[BANDS["vin"].isin(selected["vin"])], REGISTRY, "model")
    assert table.to_dict("records") == [{"model": "EV-1", "band": "act", "vehicles": 1}]


def test_no_vehicle_reported_gives_an_empty_chart_table() -> None:
    empty = pd.DataFrame({"vin": [], "band": []})
    assert charts.band_table(empty, REGISTRY, "model").empty
    assert charts.key_figures({}, ALERTS.iloc[0:0], empty, REGISTRY)["monitored"] == 0
