"""Features of accelerometer windows on a rolling-element bearing, normalised by shaft speed.
Pure numpy: the gateway's classifier, training and evaluation all call `signal_features`.

A window spans WINDOW_REVOLUTIONS turns of the shaft, so its envelope spectrum resolves the
same fraction of an order at any speed. Each window is brought to ANALYSIS_RATE_HZ (exact FFT
resampling), then:

- whitened: every spectral bin divided by its own magnitude (cepstral pre-whitening). That
  removes discrete tones (mains, the rig's own lines) and the colouring of the transfer path,
  and keeps the repeated impulses a defect makes;
- per band of ENVELOPE_BANDS_HZ, demodulated: the squared envelope |analytic signal|^2 of the
  whitened band and its spectrum (Hann window, zero-padded), on an axis of orders (Hz / shaft
  Hz);
- a defect's line strength: for h = 1..HARMONICS, the highest envelope-spectrum value within
  the tolerance of h x its order, in dB above the spectrum's mean level between 0.3 and 12
  orders; the mean over the harmonics, in the band where it is highest.

Features, in FEATURE_NAMES order:

    bpfi_line_db            inner-race defect line (BPFI order)                     dB
    bpfo_line_db            outer-race defect line (BPFO order)                     dB
    bsf_line_db             ball defect line at 2 x BSF (a ball strikes both races)  dB
    bpfi_sideband_db        BPFI +- 1 order: an inner-race defect turns with the shaft, in and
                            out of the load zone, so its line carries shaft sidebands   dB
    impulsiveness_ln        ln(kurtosis) of the whitened band signal, highest band;
                            ln 3 = 1.10 for Gaussian noise, higher with impacts
    resonance_ratio_log10   log10(highest median power density of RESONANCE_BANDS_HZ /
                            median power density of LOW_BAND_HZ): impacts ring the housing's
                            resonances; medians, so a tone does not count
    rms, crest, kurtosis    of the window at ANALYSIS_RATE_HZ (rms in the signal's unit)

Every feature but rms is a ratio: the sensor's gain and unit do not matter. A window without
variance has NaN features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from prognos.edge.features import FloatArray

ANALYSIS_RATE_HZ = 12_000.0
ENVELOPE_BANDS_HZ = ((500.0, 5000.0), (500.0, 2000.0), (1500.0, 3500.0), (3000.0, 5000.0))
RESONANCE_BANDS_HZ = ((1000.0, 2000.0), (2000.0, 3000.0), (3000.0, 4000.0), (4000.0, 5000.0))
LOW_BAND_HZ = (100.0, 500.0)
# Nothing above the highest band edge is read, so a signal must resolve it.
MIN_RATE_HZ = 2 * max(hi for _, hi in ENVELOPE_BANDS_HZ + RESONANCE_BANDS_HZ)
WINDOW_REVOLUTIONS = 16.0
HOP_FRACTION = 0.5
HARMONICS = 3
# Real defect frequencies sit up to a few percent off the kinematic ones (rolling elements
# slip); plus 0.7 of the spectrum's resolution, 1 / WINDOW_REVOLUTIONS order.
LINE_TOLERANCE_FRACTION = 0.015
REFERENCE_ORDERS = (0.3, 12.0)
ZERO_PADDING = 4
# Defect lines are read up to HARMONICS x BPFI (16.2 orders) inside a band 1.5 kHz wide.
RPM_RANGE = (60.0, 5_000.0)

FEATURE_NAMES = (
    "bpfi_line_db",
    "bpfo_line_db",
    "bsf_line_db",
    "bpfi_sideband_db",
    "impulsiveness_ln",
    "resonance_ratio_log10",
    "rms",
    "crest",
    "kurtosis",
)
# What the classifier reads: every ratio, not the signal's level (a sensor's gain and unit).
CLASSIFIER_INPUTS = tuple(name for name in FEATURE_NAMES if name != "rms")
# Windows go through the FFTs together, up to this many samples at a time (memory, not speed).
BATCH_SAMPLES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class BearingOrders:
    """Defect frequencies of a bearing as multiples of the shaft frequency (inner ring turning,
    outer ring fixed)."""

    bpfi: float  # ball pass frequency, inner race
    bpfo: float  # ball pass frequency, outer race
    bsf: float  # ball spin frequency
    ftf: float  # fundamental train (cage) frequency

    def to_json(self) -> dict[str, float]:
        return {"bpfi": self.bpfi, "bpfo": self.bpfo, "bsf": self.bsf, "ftf": self.ftf}


# SKF 6205-2RS JEM, the drive-end bearing of the CWRU rig (its data centre's table).
SKF_6205 = BearingOrders(bpfi=5.4152, bpfo=3.5848, bsf=2.357, ftf=0.39828)


def window_length(rate_hz: float, rpm: float) -> int:
    """Samples in one window: WINDOW_REVOLUTIONS turns of the shaft at `rate_hz`."""
    return round(WINDOW_REVOLUTIONS * 60.0 / rpm * rate_hz)


def window_starts(n_samples: int, rate_hz: float, rpm: float) -> list[int]:
    """First sample of each whole window, HOP_FRACTION of a window apart."""
    length = window_length(rate_hz, rpm)
    hop = max(1, round(length * HOP_FRACTION))
    return list(range(0, n_samples - length + 1, hop))


def signal_features(
    samples: FloatArray, *, rate_hz: float, rpm: float, bearing: BearingOrders = SKF_6205
) -> tuple[FloatArray, FloatArray]:
    """(start_s of each window, features of each window in FEATURE_NAMES order) of a whole
    signal; no windows if it is shorter than one."""
    starts = window_starts(len(samples), rate_hz, rpm)
    length = window_length(rate_hz, rpm)
    rows = [
        window_features(
            np.stack([samples[s : s + length] for s in batch]), rate_hz=rate_hz, rpm=rpm, bearing=bearing
        )
        for batch in _batches(starts, max(1, BATCH_SAMPLES // length))
    ]
    matrix = np.concatenate(rows) if rows else np.empty((0, len(FEATURE_NAMES)))
    return np.asarray(starts, dtype=np.float64) / rate_hz, matrix


def _batches(starts: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(starts), size):
        yield starts[i : i + size]


def window_features(
    windows: FloatArray, *, rate_hz: float, rpm: float, bearing: BearingOrders = SKF_6205
) -> FloatArray:
    """Features of windows (shape (k, n), samples at `rate_hz`): shape (k, len(FEATURE_NAMES))."""
    raw = np.atleast_2d(np.asarray(windows, dtype=np.float64))
    raw = raw - raw.mean(axis=1, keepdims=True)
    x = resample(raw, rate_hz, ANALYSIS_RATE_HZ)
    n = x.shape[1]
    fs = ANALYSIS_RATE_HZ
    shaft_hz = rpm / 60.0
    spectrum = np.fft.rfft(x, axis=1)
    freqs_hz = np.asarray(np.fft.rfftfreq(n, 1.0 / fs), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.abs(spectrum)
        floor = 1e-12 * magnitude.max(axis=1, keepdims=True) + np.finfo(np.float64).tiny
        white = spectrum / np.maximum(magnitude, floor)
        white[:, 0] = 0.0
        lines = np.full((x.shape[0], 4, len(ENVELOPE_BANDS_HZ)), -np.inf)
        impulsiveness = np.full(x.shape[0], -np.inf)
        for b, (low_hz, high_hz) in enumerate(ENVELOPE_BANDS_HZ):
            band = np.flatnonzero((freqs_hz >= low_hz) & (freqs_hz <= high_hz))
            analytic_spectrum = np.zeros((x.shape[0], n), dtype=np.complex128)
            analytic_spectrum[:, band] = 2.0 * white[:, band]
            analytic = np.fft.ifft(analytic_spectrum, axis=1)
            impulsiveness = np.maximum(impulsiveness, np.log(_kurtosis(analytic.real)))
            lines[:, :, b] = _defect_lines(np.abs(analytic) ** 2, fs / shaft_hz, bearing)
        best = lines.max(axis=2)
        power = magnitude**2
        resonance = np.max([_band_median(power, freqs_hz, band) for band in RESONANCE_BANDS_HZ], axis=0)
        resonance_ratio = np.log10(resonance / _band_median(power, freqs_hz, LOW_BAND_HZ))
        rms = np.sqrt(np.mean(x**2, axis=1))
        crest = np.max(np.abs(x), axis=1) / rms
        kurtosis = _kurtosis(x)
    features = np.column_stack([best, impulsiveness, resonance_ratio, rms, crest, kurtosis])
    flat = ~(rms > 0)
    features[flat, :] = np.nan
    features[flat, FEATURE_NAMES.index("rms")] = 0.0
    return np.where(np.isfinite(features) | flat[:, None], features, np.nan)


def resample(x: FloatArray, rate_hz: float, target_rate_hz: float) -> FloatArray:
    """Rows of `x` at `target_rate_hz`: the spectrum cut (or padded) at the new Nyquist
    frequency, so nothing aliases."""
    if rate_hz == target_rate_hz:
        return x
    n = x.shape[1]
    m = round(n * target_rate_hz / rate_hz)
    spectrum = np.fft.rfft(x, axis=1)
    kept = np.zeros((x.shape[0], m // 2 + 1), dtype=np.complex128)
    bins = min(spectrum.shape[1], kept.shape[1])
    kept[:, :bins] = spectrum[:, :bins]
    return np.asarray(np.fft.irfft(kept, m, axis=1) * (m / n), dtype=np.float64)


def _kurtosis(x: FloatArray) -> FloatArray:
    centred = x - x.mean(axis=1, keepdims=True)
    m2 = np.mean(centred**2, axis=1)
    return np.asarray(np.mean(centred**4, axis=1) / (m2 * m2))


def _band_median(power: FloatArray, freqs_hz: FloatArray, band_hz: tuple[float, float]) -> FloatArray:
    inside = (freqs_hz >= band_hz[0]) & (freqs_hz < band_hz[1])
    return np.asarray(np.median(power[:, inside], axis=1))


def _defect_lines(
    squared_envelope: FloatArray, samples_per_revolution: float, bearing: BearingOrders
) -> FloatArray:
    """(k, 4): BPFI, BPFO, 2 x BSF line strengths and the BPFI sidebands, dB above the mean
    envelope-spectrum level."""
    n = squared_envelope.shape[1]
    centred = squared_envelope - squared_envelope.mean(axis=1, keepdims=True)
    padded = ZERO_PADDING * n
    ses = np.abs(np.fft.rfft(centred * np.hanning(n), padded, axis=1)) ** 2
    orders = np.fft.rfftfreq(padded, 1.0 / samples_per_revolution)
    low, high = REFERENCE_ORDERS
    reference = ses[:, (orders > low) & (orders < high)].mean(axis=1)
    resolution = samples_per_revolution / n  # orders per bin before padding

    def strength(order: float) -> FloatArray:
        tolerance = LINE_TOLERANCE_FRACTION * order + 0.7 * resolution
        near = np.abs(orders - order) <= tolerance
        return np.asarray(10.0 * np.log10(ses[:, near].max(axis=1) / reference))

    def line(order: float) -> FloatArray:
        harmonics = [h * order for h in range(1, HARMONICS + 1)]
        return np.asarray(np.mean([strength(o) for o in harmonics if o < orders[-1]], axis=0))

    sidebands = np.mean([strength(bearing.bpfi - 1.0), strength(bearing.bpfi + 1.0)], axis=0)
    return np.column_stack(
        [line(bearing.bpfi), line(bearing.bpfo), line(2.0 * bearing.bsf), sidebands]
    ).astype(np.float64)
