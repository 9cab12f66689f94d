"""The vehicle simulator: determinism, batching, and physics checks that a wrong model fails.

In tests/integration though it starts no server: simulating months of windows takes about ten
seconds, too long for tests/unit, which stays under a minute."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from prognos.catalog import Catalog, default_catalog
from prognos.edge.features import FloatArray
from prognos.errors import ConfigError
from prognos.sim.fleet import BatchDefect, make_fleet
from prognos.sim.vehicle import (
    ATMOSPHERE_KPA,
    DRIFT_AT_FAILURE_C,
    FAULT_KINDS,
    FILL_PRESSURE_KPA,
    LEAK_LOSS_AT_FAILURE_KPA,
    MOVING_KMH,
    PAD_WEAR_LIMIT_PERCENT,
    Fault,
    Samples,
    VehicleSimulator,
    VehicleSpec,
)

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
DAY_MS = 86_400_000
WINDOW_S = 600.0
WHEELS = [f"Vehicle.Chassis.Axle.{r}.Wheel.{s}" for r in ("Row1", "Row2") for s in ("Left", "Right")]
MODULE = "Vehicle.Powertrain.TractionBattery.Module{}.Temperature"
SPEED = "Vehicle.Speed"
ODOMETER = "Vehicle.TraveledDistance"
AIR = "Vehicle.Exterior.AirTemperature"
HARD = "Vehicle.Chassis.Brake.HardBrakingCount"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


def sim(catalog: Catalog, seed: int = 3, **spec: Any) -> VehicleSimulator:
    return VehicleSimulator(VehicleSpec(vin="TEST00000000001", **spec), catalog, seed=seed, epoch_ms=EPOCH_MS)


def starts(first_day: float, days: float, per_day: int = 144) -> np.ndarray:
    """Window starts, per_day a day, from first_day (days after EPOCH_MS) for `days` days."""
    offsets = np.arange(int(days * per_day)) * (DAY_MS // per_day)
    return (EPOCH_MS + first_day * DAY_MS + offsets).astype(np.int64)


# --- determinism and batching -----------------------------------------------------------------


def test_same_seed_same_output_and_another_seed_differs(catalog: Catalog) -> None:
    first = sim(catalog).windows(starts(3, 1), WINDOW_S)
    again = sim(catalog).windows(starts(3, 1), WINDOW_S)
    other = sim(catalog, seed=4).windows(starts(3, 1), WINDOW_S)
    for path in catalog:
        np.testing.assert_array_equal(first[path][1], again[path][1])
    assert not np.allclose(first[AIR][1], other[AIR][1])
    assert not np.array_equal(first[SPEED][1], other[SPEED][1])


def test_window_equals_the_matching_row_of_windows(catalog: Catalog) -> None:
    spec: dict[str, Any] = {
        "faults": (Fault("bearing_wear", 1.0, 20.0, target=0), Fault("pad_wear", 0.0, 30.0, target=1))
    }
    batch_starts = starts(-2.0, 6.0)
    batch = sim(catalog, **spec).windows(batch_starts, WINDOW_S)
    single = sim(catalog, **spec)  # a fresh simulator, asked out of order and far apart
    for i in (700, 0, 863, 45, 301, 302):
        one = single.window(int(batch_starts[i]), WINDOW_S)
        assert one.keys() == batch.keys() == set(catalog)
        for path, (times, values) in one.items():
            np.testing.assert_array_equal(times, batch[path][0][i])
            np.testing.assert_array_equal(values, batch[path][1][i], err_msg=f"{path} window {i}")


def test_sample_counts_follow_the_catalog_rates(catalog: Catalog) -> None:
    out = sim(catalog).windows(starts(0, 0.1), WINDOW_S)
    for path, signal in catalog.items():
        times, values = out[path]
        assert times.shape == values.shape == (14, round(WINDOW_S * signal.rate_hz)), path
        np.testing.assert_allclose(np.diff(times, axis=1), 1.0 / signal.rate_hz)


def test_physics_functions_take_any_shape(catalog: Catalog) -> None:
    s = sim(catalog)
    t = EPOCH_MS / 1000.0 + np.linspace(0.0, 5 * 86400.0, 2 * 3 * 4000).reshape(2, 3, 4000)
    for function in (s.speed_kmh, s.odometer_km, s.ambient_c, s.humidity_percent, s.hard_brakings):
        np.testing.assert_array_equal(function(t), function(t.ravel()).reshape(t.shape))


def test_every_signal_stays_in_its_catalog_range(catalog: Catalog) -> None:
    for spec in make_fleet(6, seed=5):
        out = VehicleSimulator(spec, catalog, seed=5, epoch_ms=EPOCH_MS).windows(starts(0, 20, 24), WINDOW_S)
        for path, signal in catalog.items():
            values = out[path][1]
            finite = values[np.isfinite(values)]
            assert finite.size > 0, path
            assert signal.min <= finite.min() and finite.max() <= signal.max, path


def test_ninety_days_of_ten_minute_windows_take_well_under_ten_seconds(catalog: Catalog) -> None:
    s = sim(catalog, faults=(Fault("bearing_wear", 10.0, 80.0, target=1),))
    began = time.perf_counter()
    out = s.windows(starts(0, 90), WINDOW_S)
    elapsed = time.perf_counter() - began
    assert out[SPEED][1].shape == (12_960, 600)
    assert elapsed < 10.0, f"{elapsed:.1f} s"


# --- driving and mileage ----------------------------------------------------------------------


def test_odometer_rises_monotonically_and_matches_integrated_speed(catalog: Catalog) -> None:
    s = sim(catalog, urban_share=0.5, km_per_day=80.0)
    out = s.windows(starts(0, 10), WINDOW_S)
    odometer = out[ODOMETER][1]
    assert np.all(np.diff(odometer.ravel()) >= -1e-9)
    assert odometer[0, 0] == pytest.approx(s.spec.odometer_km)
    # Per window: the odometer's rise over its first to last sample against the speed samples
    # over the same span (1 Hz, rectangle rule).
    step = round(1.0 / catalog[ODOMETER].rate_hz)
    span = (odometer.shape[1] - 1) * step
    driven = odometer[:, -1] - odometer[:, 0]
    integrated = out[SPEED][1][:, :span].sum(axis=1) / 3600.0
    np.testing.assert_allclose(driven, integrated, rtol=0.01, atol=0.02)
    assert driven.sum() > 500.0  # the 10 days held real driving


def test_driving_cycles_and_usage_profile(catalog: Catalog) -> None:
    t = EPOCH_MS / 1000.0 + np.arange(0.0, 30 * 86400.0)
    urban = sim(catalog, urban_share=1.0, km_per_day=40.0).speed_kmh(t)
    highway = sim(catalog, urban_share=0.0, km_per_day=40.0).speed_kmh(t)
    assert 0.0 < urban.max() <= 75.0
    assert np.percentile(highway[highway > 0], 50) > 95.0
    assert highway.max() <= 135.0
    for v in (urban, highway):
        assert abs(v.sum() / 3600.0 / 30.0 - 40.0) < 8.0  # km per day as asked
    stops = np.sum((urban[1:] == 0) & (urban[:-1] > 0))
    assert stops > 10 * np.sum((highway[1:] == 0) & (highway[:-1] > 0))  # stop-and-go


# --- climate ----------------------------------------------------------------------------------


def test_climate_has_daily_and_seasonal_cycles_and_humidity_follows(catalog: Catalog) -> None:
    s = sim(catalog, climate_c=10.0, seasonal_amplitude_c=10.0, daily_amplitude_c=5.0, utc_offset_h=0.0)
    hours = np.arange(0.0, 24.0, 0.25)
    month = (np.arange(30)[:, None] * 86400.0 + hours * 3600.0).ravel()

    def profile(first_day: int) -> FloatArray:
        """The mean daily course over 30 days from first_day (weather fronts average out)."""
        air = s.ambient_c(EPOCH_MS / 1000.0 + first_day * 86400.0 + month)
        return np.asarray(air.reshape(30, -1).mean(axis=0))

    winter, summer = profile(0), profile(190)
    assert summer.mean() - winter.mean() > 14.0
    assert 13.0 <= hours[np.argmax(summer)] <= 17.0 and 1.0 <= hours[np.argmin(summer)] <= 5.0
    assert np.ptp(summer) == pytest.approx(10.0, abs=1.5)
    t = EPOCH_MS / 1000.0 + 190 * 86400.0 + month
    humidity = s.humidity_percent(t)
    assert humidity.min() > 0.0 and humidity.max() <= 100.0
    assert np.corrcoef(s.ambient_c(t), humidity)[0, 1] < -0.5  # relative humidity falls as air warms


# --- tires ------------------------------------------------------------------------------------


def test_parked_tire_pressure_follows_the_gas_law(catalog: Catalog) -> None:
    s = sim(catalog, trips_per_day=0.0, daily_amplitude_c=8.0)
    out = s.windows(starts(5, 2), WINDOW_S)
    absolute = out[WHEELS[0] + ".Tire.Pressure"][1].ravel() + ATMOSPHERE_KPA
    kelvin = out[AIR][1].ravel() + 273.15
    assert np.ptp(kelvin) > 10.0
    slope, intercept = np.polyfit(kelvin, absolute, 1)
    # p = n R T / V at constant volume: a line through the origin, slope p / T.
    assert slope == pytest.approx(absolute.mean() / kelvin.mean(), rel=0.08)
    assert abs(intercept) < 0.08 * absolute.mean()


def test_driving_warms_the_tires_and_raises_pressure(catalog: Catalog) -> None:
    s = sim(catalog, urban_share=0.0, km_per_day=150.0, trips_per_day=1.5)
    out = s.windows(starts(0, 20), WINDOW_S)
    speed = out[SPEED][1].mean(axis=1)
    pressure = out[WHEELS[0] + ".Tire.Pressure"][1].mean(axis=1)
    # What the tire would read at air temperature (no rolling heat, permeation aside).
    scale = (out[AIR][1].mean(axis=1) + 273.15) / (s.spec.climate_c + 273.15)
    at_air = (FILL_PRESSURE_KPA + ATMOSPHERE_KPA) * scale - ATMOSPHERE_KPA
    excess = pressure - at_air
    assert excess[speed > 90].mean() > excess[speed == 0].mean() + 8.0  # ~18 K warmer at 120 km/h


def test_a_leaking_tire_reaches_the_warning_level_at_the_failure_day(catalog: Catalog) -> None:
    s = sim(catalog, seasonal_amplitude_c=0.0, faults=(Fault("tire_leak", 2.0, 30.0, target=2),))
    out = s.windows(starts(30, 1), WINDOW_S)
    warning = FILL_PRESSURE_KPA - LEAK_LOSS_AT_FAILURE_KPA
    for wheel, path in enumerate(WHEELS):
        mean = float(np.mean(out[path + ".Tire.Pressure"][1]))
        if wheel == 2:
            assert mean == pytest.approx(warning, abs=10.0)
        else:
            assert mean > warning + 35.0


# --- brakes -----------------------------------------------------------------------------------


def test_aggressive_drivers_brake_hard_more_often_and_wear_pads_faster(catalog: Catalog) -> None:
    wear, hard = {}, {}
    for style in (0.1, 0.9):
        s = sim(catalog, aggressiveness=style, urban_share=0.8, pad_wear_percent=10.0)
        out = s.windows(starts(0, 60, 48), 1800.0)
        pad = out[WHEELS[0] + ".Brake.PadWear"][1]
        wear[style] = pad[-1].mean() - pad[0].mean()
        hard[style] = out[HARD][1].sum()
        t = np.array([EPOCH_MS / 1000.0, EPOCH_MS / 1000.0 + 60 * 86400.0])
        assert hard[style] == np.diff(s.hard_brakings(t))[0]  # the per-minute counts add up
    assert wear[0.1] > 0.2
    assert wear[0.9] > 2.0 * wear[0.1]
    assert hard[0.9] > 10 * max(hard[0.1], 1.0)


def test_a_sticking_caliper_wears_one_pad_to_the_limit_at_the_failure_day(catalog: Catalog) -> None:
    s = sim(catalog, faults=(Fault("pad_wear", 0.0, 25.0, target=1),))
    out = s.windows(starts(25, 0.05), WINDOW_S)
    worn = out[WHEELS[1] + ".Brake.PadWear"][1].mean()
    other = out[WHEELS[0] + ".Brake.PadWear"][1].mean()
    assert worn == pytest.approx(PAD_WEAR_LIMIT_PERCENT, abs=0.5)
    assert other < 40.0


# --- wheel bearings ---------------------------------------------------------------------------


def test_no_vibration_or_motor_noise_while_parked(catalog: Catalog) -> None:
    s = sim(catalog, faults=(Fault("bearing_wear", 0.0, 10.0, target=3),))
    out = s.windows(starts(0, 3), WINDOW_S)
    node_paths = [p for p in catalog if ".Bearing." in p] + ["Vehicle.Powertrain.ElectricMotor.Noise"]
    times = out[node_paths[0]][0]
    speed = s.speed_kmh(times)
    assert (speed == 0).mean() > 0.5 and (speed > 20).sum() > 100
    for path in node_paths:
        values = out[path][1]
        assert np.isnan(values[speed < MOVING_KMH]).all(), path
        assert np.isfinite(values[speed >= MOVING_KMH]).all(), path


def test_bearing_wear_raises_defect_energy_steadily_and_kurtosis_early(catalog: Catalog) -> None:
    s = sim(catalog, km_per_day=80.0, faults=(Fault("bearing_wear", 0.0, 60.0, target=0, growth=1.5),))
    out = s.windows(starts(0, 61, 48), 1800.0)
    bearing = WHEELS[0] + ".Bearing."
    times = out[bearing + "DefectBandEnergy"][0]
    speed = s.speed_kmh(times)
    moving = speed >= MOVING_KMH

    def by_day(path: str, transform: FloatArray | None = None) -> FloatArray:
        values = np.where(moving, out[path][1] if transform is None else transform, 0.0)
        per_day = values.reshape(61, -1).sum(axis=1) / np.maximum(moving.reshape(61, -1).sum(axis=1), 1)
        return np.asarray(per_day)

    # Defect power grows with the square of speed: compare linear band energy at 80 km/h.
    level = out[bearing + "DefectBandEnergy"][1]
    at_80 = 10 ** (level / 10) * (80.0 / np.where(moving, speed, 80.0)) ** 2
    energy = by_day(bearing + "DefectBandEnergy", at_80)
    driven = moving.reshape(61, -1).sum(axis=1) > 20
    every_ten = np.array([energy[d : d + 3][driven[d : d + 3]].mean() for d in range(0, 61, 10)])
    assert np.all(every_ten[1:] > 1.15 * every_ten[:-1])  # rises steadily with wear
    healthy = out[WHEELS[3] + ".Bearing.DefectBandEnergy"][1][moving]
    assert np.nanmean(level[moving][-200:]) - healthy.mean() > 25.0  # dB above a healthy bearing
    rms = by_day(bearing + "VibrationRMS")
    assert rms[driven][-3:].mean() > 3 * rms[driven][:2].mean()
    kurtosis = np.where(driven, by_day(bearing + "VibrationKurtosis"), np.nan)
    assert abs(kurtosis[0] - 3.0) < 0.3  # healthy: Gaussian
    peak = int(np.nanargmax(kurtosis))
    assert 1 <= peak <= 25 and kurtosis[peak] > 7.0  # impulsive while the spall is young
    assert np.nanmean(kurtosis[57:]) < 4.5  # back toward 3 as damage spreads


# --- battery ----------------------------------------------------------------------------------


def test_a_drifting_module_separates_by_the_documented_amount_at_failure(catalog: Catalog) -> None:
    s = sim(catalog, faults=(Fault("battery_drift", 0.0, 20.0, target=1),))
    healthy_day = s.windows(starts(-1, 1), WINDOW_S)
    failure_day = s.windows(starts(20, 1), WINDOW_S)

    def separation(out: Samples) -> float:
        means = [float(np.mean(out[MODULE.format(i)][1])) for i in range(1, 5)]
        return means[1] - float(np.mean([means[0], means[2], means[3]]))

    assert abs(separation(healthy_day)) < 1.0
    assert separation(failure_day) == pytest.approx(DRIFT_AT_FAILURE_C, abs=1.0)


def test_modules_warm_under_load_with_a_lag(catalog: Catalog) -> None:
    s = sim(catalog, urban_share=0.0, km_per_day=200.0, trips_per_day=1.5, coolant_setpoint_c=25.0)
    t = EPOCH_MS / 1000.0 + np.arange(0.0, 10 * 86400.0, 10.0)
    speed = s.speed_kmh(t)
    out = s.windows(starts(0, 10), WINDOW_S)
    module = out[MODULE.format(1)][1].ravel()
    assert module.shape == speed.shape
    start = int(np.flatnonzero((speed[1:] > 0) & (speed[:-1] == 0))[0]) + 1
    rise = module[start : start + 360] - module[start]
    assert rise[6] < 0.3 * rise[-1]  # a minute in, far from where an hour of driving takes it
    assert rise[-1] > 3.0


# --- fleets -----------------------------------------------------------------------------------


def test_motor_faults_are_likelier_in_cold_humid_climates(catalog: Catalog) -> None:
    fleet = make_fleet(4000, seed=2, batch_defects=())

    def motor_share(region: str) -> float:
        vehicles = [s for s in fleet if s.region == region]
        return sum(any(f.kind == "motor_noise" for f in s.faults) for s in vehicles) / len(vehicles)

    assert motor_share("north") > 2.0 * motor_share("south")
    overall = np.mean([len(s.faults) for s in fleet])
    assert 0.25 < overall < 0.6


def test_fleet_lots_models_suppliers_and_batch_defects(catalog: Catalog) -> None:
    fleet = make_fleet(200, seed=9)
    assert fleet == make_fleet(200, seed=9)
    assert make_fleet(50, seed=9) == fleet[:50]  # a vehicle does not depend on the fleet size
    assert len({s.vin for s in fleet}) == 200
    by_lot: dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]] = {}
    for s in fleet:
        by_lot.setdefault(s.lot, set()).add((s.model, s.suppliers))
        assert s.supplier("battery") and all(f.kind in FAULT_KINDS for f in s.faults)
    assert all(len(kinds) == 1 for kinds in by_lot.values())  # one model, one supplier set per lot
    hit = [s for s in fleet if s.lot == "L002"]
    assert np.mean([any(f.kind == "battery_drift" for f in s.faults) for s in hit]) > 0.5

    supplier = fleet[0].supplier("bearings")
    defect = BatchDefect("bearing_wear", supplier=supplier, share=1.0, onset_days=(0, 1))
    custom = make_fleet(200, seed=9, batch_defects=(defect,))
    for s in custom:
        has = any(f.kind == "bearing_wear" and 0 <= f.onset_day <= 1 for f in s.faults)
        assert has == (s.supplier("bearings") == supplier)


def test_faults_are_checked(catalog: Catalog) -> None:
    for args, message in [
        (("brake_fade", 0.0, 1.0), "not one of"),
        (("tire_leak", 5.0, 5.0), "after the onset"),
        (("pad_wear", 0.0, 5.0, 2), "target must be 0-1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Fault(*args)  # type: ignore[arg-type]
    fault = Fault("tire_leak", 10.0, 20.0, growth=2.0)
    np.testing.assert_allclose(fault.severity(np.array([0.0, 10.0, 15.0, 20.0])), [0, 0, 0.25, 1])
