"""Features of one measurement window; runs unchanged on the node (MicroPython) and on CPython.

The node computes them; on CPython the tests hold them against a numpy reference.

Samples go into buffers allocated once (`array("h")` accelerometer counts, `array("i")` probe
microvolts); storing a sample is an index and an integer, so the sample loop allocates nothing.
The floats are computed once per window, at its end:

    vibration  x = (count - mean count) * g_per_count over the window's N samples
      vib_rms        sqrt(sum(x^2) / N)                               g
      vib_peak       max |x|                                          g
      vib_crest      vib_peak / vib_rms                               ratio
      vib_kurtosis   (sum(x^4) / N) / (sum(x^2) / N)^2                ratio, 3 for Gaussian noise
      vib_defect_db  10 log10(sum over h of 2 |X(h f_d)|^2 / N^2)     dB re 1 g^2
                     X(f) = sum x[n] exp(-2j pi f n / fs), by a Goertzel filter, for the defect
                     frequency f_d and its harmonics h = 1..H below fs / 2. A sine of amplitude A
                     on one of them gives A^2 / 2, its mean square.
    probe      value = (microvolts - offset_uv) / uv_per_unit
      min, mean and max of the window's readings

The mean is taken out first: gravity on the accelerometer's axis is not vibration. A value
that does not exist (no samples, or a signal without variance for crest and kurtosis) is NaN,
which the link carries and the gateway drops. Energy below 1e-12 g^2 reports DB_FLOOR.

Sums run in blocks of BLOCK samples, so that on a node with single-precision floats (ESP32)
the rounding error grows with BLOCK + N / BLOCK rather than with N.
"""

import math
from array import array

NAN = float("nan")
DB_FLOOR = -120.0
_ENERGY_FLOOR = 1e-12
BLOCK = 64


class Vibration:
    """Accelerometer counts of one window (one axis) and the features computed from them.

    The sampler writes counts into `counts` from index `fill` on and advances `fill`; it stops
    at `capacity`. `compute()` reads the first `fill` counts."""

    def __init__(
        self,
        *,
        capacity: int,
        sample_rate_hz: float,
        g_per_count: float,
        defect_hz: float,
        harmonics: int,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.counts = array("h", bytearray(2 * capacity))
        self.fill = 0
        self.g_per_count = g_per_count
        # Goertzel coefficient 2 cos(w) of each harmonic of the defect frequency below Nyquist.
        coeffs = []
        for h in range(1, harmonics + 1):
            f = h * defect_hz
            if 0 < f < sample_rate_hz / 2:
                coeffs.append(2.0 * math.cos(2.0 * math.pi * f / sample_rate_hz))
        self.coeffs = coeffs
        self.rms = NAN
        self.peak = NAN
        self.crest = NAN
        self.kurtosis = NAN
        self.defect_db = NAN

    def reset(self) -> None:
        """Start the next window."""
        self.fill = 0

    def compute(self) -> None:
        """The features of counts[:fill], into rms, peak, crest, kurtosis and defect_db."""
        n = self.fill
        if n == 0:
            self.rms = self.peak = self.crest = self.kurtosis = self.defect_db = NAN
            return
        counts = self.counts
        total = 0
        for i in range(n):
            total += counts[i]
        mean = total / n
        scale = self.g_per_count
        m2 = 0.0
        m4 = 0.0
        peak = 0.0
        start = 0
        while start < n:
            end = min(start + BLOCK, n)
            b2 = 0.0
            b4 = 0.0
            for i in range(start, end):
                x = (counts[i] - mean) * scale
                x2 = x * x
                b2 += x2
                b4 += x2 * x2
                if x2 > peak:
                    peak = x2
            m2 += b2
            m4 += b4
            start = end
        m2 /= n
        m4 /= n
        self.rms = math.sqrt(m2)
        self.peak = math.sqrt(peak)
        if m2 > 0.0:
            self.crest = self.peak / self.rms
            self.kurtosis = m4 / (m2 * m2)
        else:
            self.crest = NAN
            self.kurtosis = NAN
        energy = 0.0
        for coeff in self.coeffs:
            energy += 2.0 * goertzel_power(counts, n, mean, scale, coeff) / (n * n)
        self.defect_db = 10.0 * math.log10(energy) if energy > _ENERGY_FLOOR else DB_FLOOR


def goertzel_power(counts: "array[int]", n: int, mean: float, scale: float, coeff: float) -> float:
    """|X(w)|^2 = |sum x[k] exp(-j w k)|^2 over x[k] = (counts[k] - mean) * scale, k < n, for
    coeff = 2 cos(w). Exact for any w, not only the DFT's bins."""
    s1 = 0.0
    s2 = 0.0
    for i in range(n):
        s0 = (counts[i] - mean) * scale + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


class Probe:
    """Readings of one slow analog probe (temperature, pressure) over a window, in microvolts,
    and their min, mean and max in the probe's unit: (uv - offset_uv) / uv_per_unit."""

    def __init__(self, *, capacity: int, offset_uv: float, uv_per_unit: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if uv_per_unit == 0:
            raise ValueError("uv_per_unit must not be 0")
        self.capacity = capacity
        self.readings = array("i", bytearray(4 * capacity))
        self.fill = 0
        self.offset_uv = offset_uv
        self.uv_per_unit = uv_per_unit
        self.low = NAN
        self.mean = NAN
        self.high = NAN

    def add(self, uv: int) -> None:
        """One reading; past capacity, readings are dropped until reset()."""
        if self.fill < self.capacity:
            self.readings[self.fill] = uv
            self.fill += 1

    def reset(self) -> None:
        self.fill = 0

    def compute(self) -> None:
        n = self.fill
        if n == 0:
            self.low = self.mean = self.high = NAN
            return
        readings = self.readings
        total = 0
        low = high = readings[0]
        for i in range(n):
            uv = readings[i]
            total += uv
            if uv < low:
                low = uv
            elif uv > high:
                high = uv
        a = self.to_unit(low)
        b = self.to_unit(high)
        self.low = min(a, b)  # a negative slope swaps them
        self.high = max(a, b)
        self.mean = (total / n - self.offset_uv) / self.uv_per_unit

    def to_unit(self, uv: float) -> float:
        return (uv - self.offset_uv) / self.uv_per_unit
