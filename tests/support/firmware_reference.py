"""Reference features for the sensor-node firmware, written from the definitions in
firmware/features.py with numpy (vectorised, in float64, the DFT taken directly), and synthetic
signals to feed both: a wheel bearing's acceleration as ADXL345 counts.

The firmware's own code never imports this; the tests compare the two.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

G_PER_COUNT = 0.0039  # ADXL345, full resolution (firmware/hal.py)
DB_FLOOR = -120.0
ENERGY_FLOOR = 1e-12
VIBRATION_CHANNELS = ("vib_rms", "vib_peak", "vib_crest", "vib_kurtosis", "vib_defect_db")

Counts = npt.NDArray[np.int16]


def vibration_reference(
    counts: npt.ArrayLike,
    *,
    sample_rate_hz: float,
    defect_hz: float,
    harmonics: int,
    g_per_count: float = G_PER_COUNT,
) -> dict[str, float]:
    """vib_rms, vib_peak, vib_crest, vib_kurtosis and vib_defect_db of one window of counts."""
    x = np.asarray(counts, dtype=np.float64) * g_per_count
    n = len(x)
    if n == 0:
        return dict.fromkeys(VIBRATION_CHANNELS, math.nan)
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    m4 = float(np.mean(d**4))
    rms = math.sqrt(m2)
    peak = float(np.max(np.abs(d)))
    k = np.arange(n)
    energy = 0.0
    for h in range(1, harmonics + 1):
        f = h * defect_hz
        if 0 < f < sample_rate_hz / 2:
            spectrum = np.sum(d * np.exp(-2j * np.pi * f * k / sample_rate_hz))
            energy += 2.0 * abs(spectrum) ** 2 / n**2
    return {
        "vib_rms": rms,
        "vib_peak": peak,
        "vib_crest": peak / rms if m2 > 0 else math.nan,
        "vib_kurtosis": m4 / m2**2 if m2 > 0 else math.nan,
        "vib_defect_db": 10 * math.log10(energy) if energy > ENERGY_FLOOR else DB_FLOOR,
    }


def probe_reference(uv: npt.ArrayLike, *, offset_uv: float, uv_per_unit: float) -> tuple[float, float, float]:
    """(min, mean, max) of a probe's readings in its unit."""
    values = (np.asarray(uv, dtype=np.float64) - offset_uv) / uv_per_unit
    if len(values) == 0:
        return (math.nan, math.nan, math.nan)
    return (float(values.min()), float(values.mean()), float(values.max()))


def bearing_counts(
    n: int,
    *,
    sample_rate_hz: float,
    defect_hz: float,
    tone_g: float = 0.0,
    harmonic_g: float = 0.0,
    noise_g: float = 0.0,
    impulse_g: float = 0.0,
    gravity_g: float = 1.0,
    seed: int = 0,
) -> Counts:
    """Acceleration along the accelerometer's axis, as int16 counts: gravity, a tone at the defect
    frequency and one at its second harmonic, Gaussian noise, and impacts once per defect period
    (a ringing burst, as a spall on a race gives), rounded and clipped like the sensor's output."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate_hz
    g = gravity_g + tone_g * np.sin(2 * np.pi * defect_hz * t)
    g += harmonic_g * np.sin(2 * np.pi * 2 * defect_hz * t + 0.3)
    g += noise_g * rng.standard_normal(n)
    if impulse_g:
        period = sample_rate_hz / defect_hz
        for start in np.arange(period / 3, n, period):
            i = int(start)
            ring = np.arange(min(12, n - i))
            g[i : i + len(ring)] += impulse_g * np.exp(-ring / 3.0) * np.cos(ring * 1.9)
    return np.clip(np.round(g / G_PER_COUNT), -32768, 32767).astype(np.int16)
