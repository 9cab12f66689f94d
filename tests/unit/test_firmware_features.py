"""firmware/features.py against a numpy reference (tests/support/firmware_reference.py): under CPython,
and under the real MicroPython unix port with the same signals.

Values must agree within float32 tolerance, the precision the link carries them in. The
signals are what a wheel-bearing node sees: gravity, a tone at the defect frequency and its
harmonic, noise and periodic impacts, as ADXL345 counts.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware import features
from tests.support.firmware_bench import FIRMWARE_DIR, SUPPORT_DIR, micropython_command
from tests.support.firmware_reference import (
    DB_FLOOR,
    G_PER_COUNT,
    VIBRATION_CHANNELS,
    Counts,
    bearing_counts,
    probe_reference,
    vibration_reference,
)

FS = 800
DEFECT_HZ = 87.5  # on a DFT bin for 256 or 8000 samples at 800 Hz
F32_RTOL = 4 * float(np.finfo(np.float32).eps)  # a few float32 roundings
DB_ATOL = 1e-4  # dB: 10 log10(1 + 2e-5)

SIGNALS: dict[str, tuple[Counts, float, int]] = {
    "tone on a bin": (bearing_counts(256, sample_rate_hz=FS, defect_hz=DEFECT_HZ, tone_g=0.1), DEFECT_HZ, 3),
    "tone between bins, with harmonic and noise": (
        bearing_counts(
            1000,
            sample_rate_hz=FS,
            defect_hz=91.3,
            tone_g=0.08,
            harmonic_g=0.03,
            noise_g=0.02,
            seed=1,
        ),
        91.3,
        3,
    ),
    "gaussian noise": (bearing_counts(8000, sample_rate_hz=FS, defect_hz=60.0, noise_g=0.3, seed=2), 60.0, 2),
    "impacts of a spalled race": (
        bearing_counts(
            4096,
            sample_rate_hz=FS,
            defect_hz=61.7,
            noise_g=0.01,
            impulse_g=1.5,
            seed=3,
        ),
        61.7,
        4,
    ),
    "full scale": (np.array([32767, -32768] * 300 + [0], dtype=np.int16), 133.3, 1),
    "harmonics beyond nyquist": (
        bearing_counts(512, sample_rate_hz=FS, defect_hz=300.0, tone_g=0.2, noise_g=0.05, seed=4),
        300.0,
        5,
    ),
}


def compute(
    counts: Counts, defect_hz: float, harmonics: int, capacity: int | None = None
) -> features.Vibration:
    window = features.Vibration(
        capacity=capacity or max(1, len(counts)),
        sample_rate_hz=FS,
        g_per_count=G_PER_COUNT,
        defect_hz=defect_hz,
        harmonics=harmonics,
    )
    for i, count in enumerate(counts.tolist()):
        window.counts[i] = count
    window.fill = len(counts)
    window.compute()
    return window


def as_channels(window: features.Vibration) -> dict[str, float]:
    return dict(
        zip(
            VIBRATION_CHANNELS,
            (window.rms, window.peak, window.crest, window.kurtosis, window.defect_db),
            strict=True,
        )
    )


def assert_features_close(got: dict[str, float], expected: dict[str, float], where: str) -> None:
    for name, want in expected.items():
        value = got[name]
        if math.isnan(want):
            assert math.isnan(value), f"{where}: {name} = {value}, expected NaN"
        elif name == "vib_defect_db":
            assert value == pytest.approx(want, abs=DB_ATOL), f"{where}: {name}"
        else:
            assert value == pytest.approx(want, rel=F32_RTOL, abs=1e-9), f"{where}: {name}"


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_vibration_features_match_the_numpy_reference(name: str) -> None:
    counts, defect_hz, harmonics = SIGNALS[name]
    expected = vibration_reference(counts, sample_rate_hz=FS, defect_hz=defect_hz, harmonics=harmonics)
    assert_features_close(as_channels(compute(counts, defect_hz, harmonics)), expected, name)


def test_a_tone_gives_its_textbook_features() -> None:
    """A sine of amplitude A on gravity: RMS A/sqrt 2, crest sqrt 2, kurtosis 1.5, and its
    mean square A^2/2 in the defect band (within what rounding to 3.9 mg counts changes)."""
    amplitude = 0.5
    counts = bearing_counts(8000, sample_rate_hz=FS, defect_hz=DEFECT_HZ, tone_g=amplitude)
    window = compute(counts, DEFECT_HZ, 1)
    assert window.rms == pytest.approx(amplitude / math.sqrt(2), rel=2e-3)
    assert window.crest == pytest.approx(math.sqrt(2), rel=5e-3)  # the peak is off by up to half a count
    assert window.kurtosis == pytest.approx(1.5, rel=2e-3)
    assert window.defect_db == pytest.approx(10 * math.log10(amplitude**2 / 2), abs=0.02)


def test_gaussian_noise_has_kurtosis_three_and_impacts_raise_it() -> None:
    noise = compute(*SIGNALS["gaussian noise"])
    assert noise.kurtosis == pytest.approx(3.0, abs=0.15)
    assert compute(*SIGNALS["impacts of a spalled race"]).kurtosis > 6.0


def test_goertzel_equals_the_fft_on_a_bin() -> None:
    counts = bearing_counts(1024, sample_rate_hz=FS, defect_hz=DEFECT_HZ, tone_g=0.1, noise_g=0.05, seed=7)
    x = counts.astype(np.float64) * G_PER_COUNT
    d = x - x.mean()
    spectrum = np.fft.rfft(d)
    bin_index = round(DEFECT_HZ * len(d) / FS)  # exactly on bin 112
    coeff = 2 * math.cos(2 * math.pi * DEFECT_HZ / FS)
    window = compute(counts, DEFECT_HZ, 1)
    power = features.goertzel_power(window.counts, len(counts), float(counts.mean()), G_PER_COUNT, coeff)
    assert power == pytest.approx(abs(spectrum[bin_index]) ** 2, rel=1e-9)


def test_a_window_without_variance_or_samples_reports_nan() -> None:
    still = compute(np.full(100, 256, dtype=np.int16), DEFECT_HZ, 3)
    assert (still.rms, still.peak) == (0.0, 0.0)
    assert math.isnan(still.crest) and math.isnan(still.kurtosis)
    assert still.defect_db == DB_FLOOR
    empty = compute(np.array([], dtype=np.int16), DEFECT_HZ, 3, capacity=10)
    assert all(math.isnan(v) for v in as_channels(empty).values())


def test_a_window_reuses_its_buffer() -> None:
    counts, defect_hz, harmonics = SIGNALS["tone on a bin"]
    window = compute(counts, defect_hz, harmonics)
    buffer = window.counts
    window.reset()
    assert window.fill == 0
    half = counts[:128]
    for i, count in enumerate(half.tolist()):
        window.counts[i] = count
    window.fill = len(half)
    window.compute()
    assert window.counts is buffer
    expected = vibration_reference(half, sample_rate_hz=FS, defect_hz=defect_hz, harmonics=harmonics)
    assert_features_close(as_channels(window), expected, "second window")


def test_buffers_are_typed_arrays_of_the_declared_size() -> None:
    window = features.Vibration(
        capacity=300, sample_rate_hz=FS, g_per_count=G_PER_COUNT, defect_hz=50, harmonics=2
    )
    assert (window.counts.typecode, len(window.counts)) == ("h", 300)
    probe = features.Probe(capacity=40, offset_uv=0.0, uv_per_unit=1.0)
    assert (probe.readings.typecode, len(probe.readings)) == ("i", 40)
    with pytest.raises(ValueError):
        features.Vibration(capacity=0, sample_rate_hz=FS, g_per_count=G_PER_COUNT, defect_hz=50, harmonics=2)
    with pytest.raises(ValueError):
        features.Probe(capacity=4, offset_uv=0.0, uv_per_unit=0.0)


PROBES: list[tuple[list[int], float, float]] = [
    ([750_000 + 1_000 * (i % 7) - 300 * (i % 3) for i in range(500)], 500_000.0, 10_000.0),  # TMP36, ~25 C
    ([600_000, 601_000, 599_000, 640_000], 330_000.0, 2_640.0),  # pressure, kPa
    ([2_000_000, 1_000_000, 1_500_000], 2_400_000.0, -20_000.0),  # an NTC divider: falling slope
    ([123_456], 0.0, 1.0),
]


@pytest.mark.parametrize("index", range(len(PROBES)))
def test_probe_features_match_the_numpy_reference(index: int) -> None:
    uv, offset_uv, uv_per_unit = PROBES[index]
    probe = features.Probe(capacity=len(uv), offset_uv=offset_uv, uv_per_unit=uv_per_unit)
    for value in uv:
        probe.add(value)
    probe.compute()
    low, mean, high = probe_reference(uv, offset_uv=offset_uv, uv_per_unit=uv_per_unit)
    assert probe.low == pytest.approx(low, rel=F32_RTOL)
    assert probe.mean == pytest.approx(mean, rel=F32_RTOL)
    assert probe.high == pytest.approx(high, rel=F32_RTOL)
    assert probe.low <= probe.mean <= probe.high


def test_probe_drops_readings_past_capacity_and_starts_again_on_reset() -> None:
    probe = features.Probe(capacity=3, offset_uv=0.0, uv_per_unit=1000.0)
    for value in (1000, 2000, 3000, 999_000):
        probe.add(value)
    probe.compute()
    assert (probe.fill, probe.low, probe.mean, probe.high) == (3, 1.0, 2.0, 3.0)
    probe.reset()
    probe.compute()
    assert math.isnan(probe.mean)


# --- the same signals under MicroPython -------------------------------------------------------


def from_f64(text: str) -> float:
    value: float = struct.unpack("<d", bytes.fromhex(text))[0]
    return value


def test_micropython_computes_the_same_features(tmp_path: Path) -> None:
    names = sorted(SIGNALS)
    request: dict[str, Any] = {
        "vibration": [
            {
                "counts_hex": SIGNALS[name][0].astype("<i2").tobytes().hex(),
                "capacity": len(SIGNALS[name][0]),
                "sample_rate_hz": FS,
                "g_per_count": G_PER_COUNT,
                "defect_hz": SIGNALS[name][1],
                "harmonics": SIGNALS[name][2],
            }
            for name in names
        ],
        "probes": [
            {"uv": uv, "capacity": len(uv), "offset_uv": offset, "uv_per_unit": per}
            for uv, offset, per in PROBES
        ],
    }
    request_path = tmp_path / "request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    result = subprocess.run(
        [*micropython_command(), str(SUPPORT_DIR / "firmware_features_check.py"), str(request_path)],
        env={"MICROPYPATH": str(FIRMWARE_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"MicroPython failed:\n{result.stdout}\n{result.stderr}"
    answer = json.loads(result.stdout)
    assert answer["implementation"] == "micropython"

    for name, got in zip(names, answer["vibration"], strict=True):
        counts, defect_hz, harmonics = SIGNALS[name]
        values = {f"vib_{key}": from_f64(text) for key, text in got.items()}
        expected = vibration_reference(counts, sample_rate_hz=FS, defect_hz=defect_hz, harmonics=harmonics)
        assert_features_close(values, expected, f"MicroPython, {name}")
        on_cpython = as_channels(compute(counts, defect_hz, harmonics))
        for channel, value in values.items():  # the same code and float64 on both: the same numbers
            assert value == pytest.approx(on_cpython[channel], rel=1e-12, nan_ok=True), (name, channel)

    for (uv, offset_uv, uv_per_unit), got in zip(PROBES, answer["probes"], strict=True):
        low, mean, high = probe_reference(uv, offset_uv=offset_uv, uv_per_unit=uv_per_unit)
        assert from_f64(got["low"]) == pytest.approx(low, rel=F32_RTOL)
        assert from_f64(got["mean"]) == pytest.approx(mean, rel=F32_RTOL)
        assert from_f64(got["high"]) == pytest.approx(high, rel=F32_RTOL)
        assert got["fill"] == len(uv)

    assert answer["alloc"] == {"probe_add": 0}, "storing a probe reading must not allocate"
