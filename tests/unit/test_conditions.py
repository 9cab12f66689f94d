"""Condition mining: a fault three times as frequent in the cold and damp is found with its lift
and interval; noise across many conditions gives no finding (prognos.cloud.analytics.conditions)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from prognos.cloud.analytics.conditions import (
    HOURS_PER_MONTH,
    binned,
    binomial_upper_tail,
    finding_text,
    mine_conditions,
)


def fleet(seed: int, cold_damp_factor: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly slices of 200 vehicles over 60 days with a daily temperature cycle; motor noise
    starts at 1 per 10 vehicle-months, times `cold_damp_factor` below 5 °C above 80% RH."""
    rng = np.random.default_rng(seed)
    vehicles, hours = 200, 60 * 24
    vin = np.repeat([f"V{i:03d}" for i in range(vehicles)], hours // 6)
    slices = len(vin)
    ambient = rng.normal(10, 8, slices)
    humidity = np.clip(rng.normal(70, 15, slices), 0, 100)
    region = rng.choice(["north", "south"], slices)
    exposure = pd.DataFrame(
        {"vin": vin, "hours": 6.0, "ambient_c": ambient, "humidity_pct": humidity, "region": region}
    )
    base = 0.1 / HOURS_PER_MONTH * 6  # onsets per 6-hour slice
    cold_damp = (ambient < 5) & (humidity > 80)
    rate = np.where(cold_damp, base * cold_damp_factor, base)
    hits = rng.random(slices) < rate
    onsets = exposure[hits].assign(code="motor.noise")
    noise_hits = rng.random(slices) < base  # a second fault with no condition at all
    onsets = pd.concat([onsets, exposure[noise_hits].assign(code="tires.pressure_loss")], ignore_index=True)
    return binned(exposure), binned(onsets)


def test_a_fault_three_times_as_frequent_in_the_cold_and_damp_is_found() -> None:
    exposure, onsets = fleet(seed=1, cold_damp_factor=3.0)
    table = mine_conditions(exposure, onsets)
    found = table[table["finding"]]
    top = found.iloc[0]
    assert top["code"] == "motor.noise"
    assert top["condition"] == "below 5 °C and above 80% RH"
    assert top["lift_low"] < 3.0 < top["lift_high"]
    assert 2.0 < top["lift"] < 4.5
    assert not (found["code"] == "tires.pressure_loss").any()  # that fault has no condition
    text = finding_text(top, {"motor.noise": "motor noise"})
    assert text.startswith("motor noise ") and "more frequent below 5 °C and above 80% RH (95% CI" in text
    assert "vehicle-months)" in text


def test_no_condition_effect_gives_no_finding() -> None:
    exposure, onsets = fleet(seed=2, cold_damp_factor=1.0)
    table = mine_conditions(exposure, onsets)
    assert len(table) > 20  # many conditions were tested
    assert not table["finding"].any()
    assert table["q_value"].between(0, 1).all()


def test_binomial_upper_tail_matches_the_exact_sum() -> None:
    n, p = 12, 0.3
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(5, n + 1))
    assert math.isclose(binomial_upper_tail(5, n, p), exact, rel_tol=1e-9)
    assert binomial_upper_tail(0, n, p) == 1.0 and binomial_upper_tail(13, n, p) == 0.0


def test_missing_conditions_are_not_binned() -> None:
    frame = binned(pd.DataFrame({"ambient_c": [None, 3.0], "humidity_pct": [85.0, float("nan")]}))
    assert list(frame["temperature"]) == ["", "below 5 °C"]
    assert list(frame["humidity"]) == ["above 80% RH", ""]
    assert list(frame["mileage"]) == ["", ""]


def test_no_data_gives_an_empty_table() -> None:
    assert mine_conditions(pd.DataFrame(), pd.DataFrame()).empty
