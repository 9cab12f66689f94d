"""Bearing features on synthetic signals: an impulse train at a defect order shows that order's
line and no other, at any shaft speed, sample rate and gain."""

from __future__ import annotations

import numpy as np
import pytest

from prognos.edge.features import FloatArray
from prognos.edge.vibration.features import (
    FEATURE_NAMES,
    HOP_FRACTION,
    SKF_6205,
    WINDOW_REVOLUTIONS,
    signal_features,
    window_length,
    window_starts,
)
from prognos.models.vibration.fit import LINE_VISIBLE_DB

LINES = {"inner_race": "bpfi_line_db", "outer_race": "bpfo_line_db", "ball": "bsf_line_db"}
ORDERS = {"inner_race": SKF_6205.bpfi, "outer_race": SKF_6205.bpfo, "ball": 2 * SKF_6205.bsf}


def bearing_signal(
    *,
    rate_hz: float = 12_000.0,
    rpm: float = 1800.0,
    seconds: float = 2.0,
    order: float | None = None,
    shaft_modulation: float = 0.0,
    seed: int = 0,
) -> FloatArray:
    """Gaussian noise plus, for a defect, an impulse per defect period (1% jitter, as rolling
    elements slip), each ringing a 3 kHz resonance; an inner-race defect's impulses are
    modulated by the shaft's turn through the load zone."""
    rng = np.random.default_rng(seed)
    n = int(rate_hz * seconds)
    x = rng.normal(0.0, 1.0, n)
    if order is None:
        return x
    shaft_hz = rpm / 60.0
    period_s = 1.0 / (order * shaft_hz)
    times_s = np.arange(0.0, seconds, period_s)
    times_s += rng.normal(0.0, 0.01 * period_s, len(times_s))
    impulses = np.zeros(n)
    at = np.clip(np.round(times_s * rate_hz).astype(int), 0, n - 1)
    impulses[at] = 4.0 * (1.0 + shaft_modulation * np.cos(2 * np.pi * shaft_hz * times_s))
    k = np.arange(int(0.004 * rate_hz)) / rate_hz
    ring = np.exp(-k / 0.0008) * np.sin(2 * np.pi * 3000.0 * k)
    return np.asarray(x + np.convolve(impulses, ring)[:n])


def median_features(x: FloatArray, *, rate_hz: float = 12_000.0, rpm: float = 1800.0) -> dict[str, float]:
    _, features = signal_features(x, rate_hz=rate_hz, rpm=rpm)
    return dict(zip(FEATURE_NAMES, np.median(features, axis=0).tolist(), strict=True))


@pytest.mark.parametrize("rpm", [1200.0, 1800.0, 2400.0])
@pytest.mark.parametrize("fault", ["outer_race", "inner_race", "ball"])
def test_an_impulse_train_at_a_defect_order_shows_that_line(fault: str, rpm: float) -> None:
    modulation = 0.8 if fault == "inner_race" else 0.0
    f = median_features(bearing_signal(order=ORDERS[fault], rpm=rpm, shaft_modulation=modulation), rpm=rpm)
    own = f[LINES[fault]]
    assert own > 10.0
    for other in set(LINES) - {fault}:
        assert own > f[LINES[other]] + 5.0
    assert f["impulsiveness_ln"] > np.log(3.5)


def test_an_inner_race_defect_carries_shaft_sidebands() -> None:
    modulated = median_features(bearing_signal(order=SKF_6205.bpfi, shaft_modulation=0.8))
    steady = median_features(bearing_signal(order=SKF_6205.bpfi, shaft_modulation=0.0))
    assert modulated["bpfi_sideband_db"] > LINE_VISIBLE_DB
    assert modulated["bpfi_sideband_db"] > steady["bpfi_sideband_db"] + 3.0


def test_noise_shows_no_line() -> None:
    for seed in range(3):
        f = median_features(bearing_signal(seed=seed))
        assert max(f[name] for name in LINES.values()) < LINE_VISIBLE_DB
        assert f["impulsiveness_ln"] == pytest.approx(np.log(3.0), abs=0.1)
        assert f["kurtosis"] == pytest.approx(3.0, abs=0.3)


def test_a_line_read_at_the_wrong_shaft_speed_is_gone() -> None:
    x = bearing_signal(order=SKF_6205.bpfo, rpm=1800.0)
    assert median_features(x, rpm=1800.0)["bpfo_line_db"] > 10.0
    assert median_features(x, rpm=1500.0)["bpfo_line_db"] < LINE_VISIBLE_DB


def test_gain_changes_only_the_rms() -> None:
    x = bearing_signal(order=SKF_6205.bpfo)
    _, once = signal_features(x, rate_hz=12_000.0, rpm=1800.0)
    _, scaled = signal_features(1000.0 * x, rate_hz=12_000.0, rpm=1800.0)
    rms = FEATURE_NAMES.index("rms")
    np.testing.assert_allclose(
        np.delete(scaled, rms, axis=1), np.delete(once, rms, axis=1), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(scaled[:, rms], 1000.0 * once[:, rms])


def test_the_same_signal_at_48_khz_gives_the_same_features() -> None:
    """A band-limited signal at 48 kHz, and every fourth sample of it at 12 kHz."""
    x = bearing_signal(order=SKF_6205.bpfo, rate_hz=48_000.0)
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / 48_000.0) > 5_500.0] = 0.0
    fast = np.fft.irfft(spectrum, len(x))
    starts_fast, at_48k = signal_features(fast, rate_hz=48_000.0, rpm=1800.0)
    starts_slow, at_12k = signal_features(fast[::4], rate_hz=12_000.0, rpm=1800.0)
    np.testing.assert_allclose(starts_fast, starts_slow)
    # the window's edges leak a little above 6 kHz at 48 kHz: half a dB on the noise-level lines
    np.testing.assert_allclose(at_48k, at_12k, rtol=0.01, atol=0.5)


def test_windows_span_whole_revolutions_half_a_window_apart() -> None:
    length = window_length(12_000.0, 1800.0)
    assert length == round(WINDOW_REVOLUTIONS / 30.0 * 12_000.0)
    starts = window_starts(10 * length, 12_000.0, 1800.0)
    assert starts[1] - starts[0] == round(HOP_FRACTION * length)
    assert starts[-1] + length <= 10 * length
    assert window_starts(length - 1, 12_000.0, 1800.0) == []
    # half the speed, twice the samples: the same revolutions
    assert window_length(12_000.0, 900.0) == 2 * length


def test_a_flat_window_has_no_features_but_its_rms() -> None:
    x = bearing_signal()
    x[: 2 * window_length(12_000.0, 1800.0)] = 0.25
    _, features = signal_features(x, rate_hz=12_000.0, rpm=1800.0)
    rms = FEATURE_NAMES.index("rms")
    assert features[0, rms] == 0.0
    assert np.isnan(np.delete(features[0], rms)).all()
    assert np.isfinite(features[-1]).all()
