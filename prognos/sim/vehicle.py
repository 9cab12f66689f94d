"""A seedable vehicle simulator: sensor signals of one vehicle over any windows of time.

Every signal is a closed-form function of the sample time (plus a per-day trip plan drawn from
a counter-based hash), so a window can be computed on its own, many windows at once, and in
any order, with the same values. docs/simulator.md lists every parameter with unit and value.

Effects, each with its physical reason:

- Driving cycles. Up to four trips a day start in commute-shaped time slots (local time). An
  urban trip is a chain of 2-minute stop-and-go cycles: accelerate, cruise at 25-60 km/h,
  brake, wait at the light. A highway trip accelerates to a steady 100-130 km/h with a slow
  +-3 km/h wobble and brakes at the exit. The vehicle's usage profile sets trips per day,
  km per day and the urban share; the driver style (0 gentle ... 1 aggressive) sets
  acceleration, braking deceleration and cruising speed.
- Hard braking: a deceleration of 3.4 m/s^2 (0.35 g) or more from above 20 km/h, the usual
  telematics threshold. Aggressive drivers brake harder, so far more of their stops count.
- Odometer: the exact integral of the speed profile (piecewise linear plus a sine), so it
  increases monotonically and matches the integrated speed.
- Climate: regional mean, a seasonal cosine from the day of the year (peak late July), a
  daily cosine (peak 15:00 local), and weather fronts (smooth noise shared by a region).
  Relative humidity follows from a dew point with the Magnus formula, so it falls as the
  air warms during the day and saturates on cold nights, as real humidity does.
- Traction battery modules: the pack follows ambient with a 3-hour lag when parked (its
  thermal mass); while driving each module responds with a first-order lag (20 min) to
  Joule heating I^2 R (I from traction power: inertia on acceleration, rolling and air
  resistance at speed, regeneration on braking) and to the thermal management pulling it
  toward the coolant setpoint. Modules differ by a small fixed offset and gain (position on
  the cooling plate). A drifting sensor or failing cell adds an offset to one module.
- Tire pressure: ideal gas law at constant volume, p_abs proportional to the absolute tire
  temperature (ambient plus rolling heat with a 15-minute lag); permeation through the rubber
  loses about 3 kPa a month between the owner's pressure checks; a slow leak adds a growing
  loss that reaches the TPMS warning level (25 % below placard) at the failure day.
- Brake pads wear in proportion to the energy the friction brakes turn into heat. An EV
  recovers gentle braking by regeneration (up to 1.5 m/s^2, above 8 km/h); harder stops and
  the last metres of every stop go to the pads. So hard braking wears pads much faster. A
  small per-km term stands for pad drag. A sticking caliper adds wear on one wheel that
  reaches the wear limit at the failure day.
- Wheel bearings, as the vibration node reports them every 10 s while moving (the node needs
  rotation; NaN when parked): RMS, kurtosis and defect-band energy. Road noise grows with
  speed. A spall makes impacts at the bearing defect frequency whose energy grows with
  damage and with the square of speed. Early, the impacts are sparse (impulsive: kurtosis far
  above the Gaussian 3); as damage spreads they overlap and kurtosis falls back toward 3,
  while RMS and the defect-band energy keep rising.
- Drive motor: temperature follows ambient plus a lagged response to traction power; its
  noise grows with speed, and a motor fault (bearing or winding, made likelier by cold and
  humid climates through condensation) adds up to 21 dB at the failure day.

A fault has an onset day and a failure day; its severity grows from 0 at onset to 1 at the
failure day (severity = progress ** growth), the ground-truth day of functional failure.

The vehicle model is one file of about a thousand lines on purpose: every signal is a function
of the same trip plan, motion and constants, and each effect above reads best beside them.
Fleets are prognos.sim.fleet.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np
import numpy.typing as npt

from prognos.catalog import Catalog
from prognos.edge.features import FloatArray
from prognos.errors import ConfigError

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U64Array = npt.NDArray[np.uint64]
Samples = dict[str, tuple[FloatArray, FloatArray]]

FAULT_KINDS = ("battery_drift", "tire_leak", "pad_wear", "bearing_wear", "motor_noise")
FAULT_PARTS = {
    "battery_drift": "battery",
    "tire_leak": "tires",
    "pad_wear": "brakes",
    "bearing_wear": "bearings",
    "motor_noise": "motor",
}
FAULT_TARGETS = {"battery_drift": 4, "tire_leak": 4, "pad_wear": 2, "bearing_wear": 4, "motor_noise": 1}
WHEELS = ("Row1.Wheel.Left", "Row1.Wheel.Right", "Row2.Wheel.Left", "Row2.Wheel.Right")
MODULES = 4

# --- driving ----------------------------------------------------------------------------------
SLOT_START_H = (7.0, 12.0, 16.5, 19.5)  # local time of the earliest start of each trip slot
SLOT_WEIGHTS = (1.3, 0.6, 1.3, 0.8)  # relative likelihood of a trip in each slot
SLOT_JITTER_S = 2700.0  # a trip starts up to 45 min after its slot opens
MAX_TRIP_S = 7200.0  # so trips never run into the next slot
URBAN_CYCLE_S = 120.0  # one stop-and-go cycle
MAX_CYCLES = int(MAX_TRIP_S / URBAN_CYCLE_S)
URBAN_PEAK_KMH = (25.0, 60.0)
URBAN_STOP_S = (5.0, 40.0)
HIGHWAY_KMH = (100.0, 130.0)
HIGHWAY_WOBBLE_KMH = 3.0
HIGHWAY_WOBBLE_PERIOD_S = 240.0
ACCEL_MS2 = (1.0, 3.0)  # median acceleration, gentle ... aggressive driver
DECEL_MS2 = (1.2, 2.6)  # median braking deceleration, gentle ... aggressive driver
ACCEL_SPREAD = 0.2  # log-normal sigma of acceleration from one start to the next
DECEL_SPREAD = 0.3  # log-normal sigma of deceleration from one stop to the next
TRIP_KM_SPREAD = 0.4  # log-normal sigma of trip length
HARD_BRAKE_MS2 = 3.4
HARD_BRAKE_MIN_KMH = 20.0
MOVING_KMH = 3.0  # below this the wheel nodes and the motor microphone do not report

# --- vehicle ----------------------------------------------------------------------------------
GRAVITY_MS2 = 9.81
ROLLING_RESISTANCE = 0.010
AIR_DENSITY_KG_M3 = 1.2
DRAG_AREA_M2 = 0.6  # drag coefficient times frontal area
PACK_VOLTAGE_V = 350.0
PACK_RESISTANCE_OHM = 0.1
REGEN_MAX_MS2 = 1.5  # deceleration the motor can recover; beyond it the friction brakes work
REGEN_FADE_KMH = 8.0  # below it regeneration fades and the friction brakes finish the stop
FRONT_PAD_SHARE = 0.35  # share of the friction braking energy taken by each front pad
PAD_WEAR_PERCENT_PER_MJ = 0.2
PAD_WEAR_PERCENT_PER_1000_KM = 0.3  # residual drag and light applications
PAD_WEAR_LIMIT_PERCENT = 80.0  # worn to the limit: functional failure

# --- battery, tires, motor (first-order lags) -------------------------------------------------
BATTERY_TAU_S = 1200.0
BATTERY_K_PER_W = 0.01  # steady rise of a module per watt of Joule heat
COOLING_GAIN = 0.5  # share of the gap to the coolant setpoint the thermal system closes
PACK_AMBIENT_TAU_S = 3 * 3600.0
MODULE_OFFSET_SD_C = 0.25
MODULE_GAIN_SD = 0.02
DRIFT_AT_FAILURE_C = 8.0  # offset of the drifting module at the failure day
TIRE_TAU_S = 900.0
TIRE_HEAT_C_PER_KMH = 0.15  # steady tire warming per km/h of mean speed
FILL_PRESSURE_KPA = 240.0  # placard cold pressure (gauge)
ATMOSPHERE_KPA = 101.325
PERMEATION_KPA_PER_DAY = 0.1
LEAK_LOSS_AT_FAILURE_KPA = 60.0  # 25 % below placard: the TPMS warning level
MOTOR_TAU_S = 600.0
MOTOR_C_PER_KW = 1.5  # steady motor rise per kW of RMS traction power
MOTOR_NOISE_BASE_DB = 55.0
MOTOR_NOISE_SPEED_DB = 12.0  # times log10(1 + v / 20 km/h)
MOTOR_FAULT_DB = 21.0  # added at the failure day

# --- wheel bearings ---------------------------------------------------------------------------
BEARING_BACKGROUND_G = (0.08, 0.22)  # road and wheel vibration RMS: a + b * v / 100 km/h
BEARING_REF_KMH = 80.0
DEFECT_G2_AT_FAILURE = 3.9  # defect vibration power at the failure day and reference speed
IMPACT_DUTY_EARLY = 0.1  # share of time a young spall's impacts ring
DEFECT_BAND_SHARE = 0.6  # share of the defect power in the defect-frequency band
BACKGROUND_BAND_SHARE = 0.02  # share of the background power in that band

# --- climate ----------------------------------------------------------------------------------
SEASON_PEAK_DAY = 201.0  # day of year of the warmest days (late July)
DAYS_PER_YEAR = 365.2425
DAILY_PEAK_H = 15.0
WEATHER_C = 3.0  # amplitude of weather fronts on temperature
DEW_WEATHER_C = 2.0  # and on the dew point
WEATHER_KNOT_S = 12 * 3600.0
DEW_SEASON_SHARE = 0.8  # the dew point follows the season a little less than the temperature
MAGNUS_B = 17.62
MAGNUS_C = 243.12


# Sensor noise (standard deviation), in each signal's unit.
NOISE = {
    "speed": 0.3,
    "air": 0.2,
    "humidity": 1.5,
    "module": 0.1,
    "pressure": 0.5,
    "pad": 0.05,
    "rms": 0.05,  # relative
    "kurtosis": 0.08,  # relative
    "band": 0.5,
    "motor_temp": 0.3,
    "motor_noise": 0.8,
}

_K = len(SLOT_START_H)
_S = MAX_CYCLES + 1  # cycle slots per trip; the last one is always empty (after the trip)
_BLOCK_DAYS = 32
_CACHED_BLOCKS = 4  # about 1.2 MB each
_CHUNK_SAMPLES = 400_000
_SLOT_BASE_S = np.array(SLOT_START_H) * 3600.0
_TAUS = np.array([BATTERY_TAU_S, TIRE_TAU_S, MOTOR_TAU_S])


@dataclass(frozen=True)
class Fault:
    """A developing fault of one part: module (battery), wheel (tires, pads, bearings) or 0."""

    kind: str
    onset_day: float
    failure_day: float
    target: int = 0  # which module or wheel
    growth: float = 1.5

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if not self.failure_day > self.onset_day:
            raise ConfigError(f"{self.kind}: failure day must come after the onset day")
        if not 0 <= self.target < FAULT_TARGETS[self.kind]:
            raise ConfigError(f"{self.kind}: target must be 0-{FAULT_TARGETS[self.kind] - 1}")
        if not self.growth > 0:
            raise ConfigError(f"{self.kind}: growth must be positive")

    def severity(self, day: FloatArray) -> FloatArray:
        """0 before onset, 1 at the failure day, growing on (progress ** growth) after it."""
        progress = np.clip((day - self.onset_day) / (self.failure_day - self.onset_day), 0.0, None)
        return np.asarray(progress**self.growth, dtype=np.float64)


@dataclass(frozen=True)
class VehicleSpec:
    """One vehicle: identity and cohort (model, lot, suppliers), climate, usage, driver, state at
    day 0 and faults. docs/simulator.md gives each field's unit and effect."""

    vin: str
    model: str = "EV-1"
    lot: str = "L001"
    region: str = "north"
    climate_c: float = 12.0  # annual mean air temperature
    humidity_percent: float = 65.0  # typical relative humidity
    aggressiveness: float = 0.3  # 0 gentle ... 1 aggressive
    pad_wear_percent: float = 20.0  # at day 0
    faults: tuple[Fault, ...] = field(default_factory=tuple)
    seasonal_amplitude_c: float = 8.0
    daily_amplitude_c: float = 5.0
    utc_offset_h: float = 1.0
    urban_share: float = 0.6  # share of trips that are urban
    trips_per_day: float = 2.5
    km_per_day: float = 45.0
    mass_kg: float = 2000.0
    odometer_km: float = 15_000.0  # at day 0
    coolant_setpoint_c: float = 25.0
    tire_check_days: float = 60.0  # the owner refills the tires this often
    suppliers: tuple[tuple[str, str], ...] = ()  # (part, supplier), part as in FAULT_PARTS

    def supplier(self, part: str) -> str:
        """Supplier of `part` ("battery", "tires", ...), or "" where unknown."""
        return dict(self.suppliers).get(part, "")


# --- counter-based random numbers -------------------------------------------------------------
# Every random quantity is a hash of (key, stream, counters), so a value depends only on what it
# describes (this vehicle, this day, this trip, this sample time), never on how many values were
# drawn before it or on how the windows were batched.

_U = np.uint64


def _splitmix(x: U64Array) -> U64Array:
    z = x + _U(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    return np.asarray(z ^ (z >> _U(31)), dtype=np.uint64)


def _mix(*keys: npt.ArrayLike) -> U64Array:
    """64 hashed bits of the keys (integers or integer arrays, broadcast)."""
    with np.errstate(over="ignore"):
        h = np.zeros((), dtype=np.uint64)
        for key in keys:
            k = np.asarray(key)
            h = _splitmix(h ^ (k.astype(np.uint64) if k.dtype != np.uint64 else k))
    return h


def _prefix(*keys: int) -> int:
    """_mix of leading integer keys, to continue with _mix(prefix, more keys): the same bits."""
    h = 0
    for key in keys:
        z = ((h ^ (key % 2**64)) + 0x9E3779B97F4A7C15) % 2**64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        h = z ^ (z >> 31)
    return h


def _continue(prefix: int, key: npt.ArrayLike) -> U64Array:
    k = np.asarray(key)
    with np.errstate(over="ignore"):
        return _splitmix(_U(prefix) ^ (k.astype(np.uint64) if k.dtype != np.uint64 else k))


def _uniform(h: U64Array) -> FloatArray:
    """Uniform in [0, 1)."""
    return np.asarray((h >> _U(11)).astype(np.float64) * 2.0**-53, dtype=np.float64)


def _normal(h: U64Array) -> FloatArray:
    """Approximately standard normal (sum of four 16-bit uniforms, within +-3.46)."""
    mask = _U(0xFFFF)
    total = (h & mask) + ((h >> _U(16)) & mask) + ((h >> _U(32)) & mask) + (h >> _U(48))
    return np.asarray((total.astype(np.float64) / 65536.0 - 2.0) * math.sqrt(3.0), dtype=np.float64)


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


# Streams: one per random quantity.
(_OCCURS, _JITTER, _TYPE, _LENGTH, _HIGHWAY, _PEAK, _STOP, _ACCEL, _DECEL, _WEATHER, _DEW) = range(1, 12)


# --- kinematics of one stop-and-go cycle ------------------------------------------------------
# A cycle accelerates at `a` to `vp`, cruises (with an optional sine wobble of `amp` over
# `cycles` periods), brakes at `b` and stands still until the next cycle. Columns of a cycle row:
_D, _VP, _A, _B, _T1, _T2, _AMP, _CYC, _HARD, _SHARE = range(10)


def _phase(phi: FloatArray, kin: FloatArray) -> tuple[FloatArray, ...]:
    d, t1, t2 = kin[..., _D], kin[..., _T1], kin[..., _T2]
    ph = np.clip(phi, 0.0, d)
    plateau = np.maximum(t2 - t1, 1e-9)
    cruise = np.clip(ph - t1, 0.0, plateau)
    down = np.clip(ph - t2, 0.0, np.maximum(d - t2, 0.0))
    return ph, plateau, cruise, down


def _cycle_speed_ms(phi: FloatArray, kin: FloatArray) -> FloatArray:
    ph, plateau, cruise, down = _phase(phi, kin)
    vp, a, b, t1 = kin[..., _VP], kin[..., _A], kin[..., _B], kin[..., _T1]
    wobble = kin[..., _AMP] * np.sin(2 * math.pi * kin[..., _CYC] * cruise / plateau)
    v = np.where(ph < t1, a * ph, np.where(down > 0.0, vp - b * down, vp + wobble))
    return np.where((phi >= 0.0) & (phi < kin[..., _D]), np.maximum(v, 0.0), 0.0)


def _cycle_distance_m(phi: FloatArray, kin: FloatArray) -> FloatArray:
    ph, plateau, cruise, down = _phase(phi, kin)
    vp, a, b = kin[..., _VP], kin[..., _A], kin[..., _B]
    up = np.minimum(ph, kin[..., _T1])
    turns = 2 * math.pi * kin[..., _CYC]
    wobble = kin[..., _AMP] * plateau / turns * (1.0 - np.cos(turns * cruise / plateau))
    return np.asarray(0.5 * a * up * up + vp * cruise + wobble + vp * down - 0.5 * b * down * down)


def _cycle_counts(phi: FloatArray, kin: FloatArray, mass_kg: float) -> FloatArray:
    """(distance m, hard brakings, friction energy per front pad J) from the cycle start to phi."""
    ph, _, _, down = _phase(phi, kin)
    vp = kin[..., _VP]
    v = np.maximum(vp - kin[..., _B] * down, 0.0)
    fade = REGEN_FADE_KMH / 3.6
    regen_part = np.maximum(vp, fade) ** 2 - np.maximum(v, fade) ** 2
    fade_part = np.minimum(vp, fade) ** 2 - np.minimum(v, fade) ** 2
    friction = 0.5 * mass_kg * FRONT_PAD_SHARE * (kin[..., _SHARE] * regen_part + fade_part)
    hard = kin[..., _HARD] * (ph >= kin[..., _T2]) * (kin[..., _D] > 0.0)
    return np.stack([_cycle_distance_m(phi, kin), hard, friction], axis=-1)


@dataclass(frozen=True)
class _Plan:
    """Trips and cycles of days [first_day, first_day + days), flattened for gathers.

    Cumulative counts (distance, hard brakings, pad friction energy) are kept at three levels
    so a sample needs three lookups: before its day (from the epoch day), before its trip within
    the day, before its cycle within the trip."""

    first_day: int
    days: int
    trip_start_s: FloatArray  # (days * K,) seconds after local midnight
    trip_s: FloatArray  # duration; 0 for no trip
    cycle_s: FloatArray
    cycles: FloatArray
    kin: FloatArray  # (days * K * S, 10)
    cum_cycle: FloatArray  # (days * K * S, 3) before the cycle, within the trip
    cum_trip: FloatArray  # (days * (K + 1), 3) before the trip, within the day
    cum_day: FloatArray  # (days, 3) since the start of the epoch day (negative before it)
    lag_x: FloatArray  # (days * K * S, 3) battery, tire, motor lag state at the cycle start
    lag_u: FloatArray  # (days * K * S, 3) their inputs during the cycle


@dataclass(frozen=True)
class _Motion:
    """Where each sample time falls in the plan."""

    plan: _Plan
    day: IntArray  # index into the plan's days
    started: BoolArray  # after the first trip slot of the day opened
    slot: IntArray  # trip slot (0 where not started)
    row: IntArray  # cycle row in the plan
    phi: FloatArray  # seconds into the cycle, or since the trip ended
    in_trip: BoolArray


class VehicleSimulator:
    """Signals of one vehicle; day 0 is `epoch_ms`. Deterministic for a given seed and window."""

    def __init__(self, spec: VehicleSpec, catalog: Catalog, *, seed: int, epoch_ms: int) -> None:
        self.spec = spec
        self.catalog = catalog
        self.seed = seed
        self.epoch_ms = epoch_ms
        self._key = seed % 2**64
        self._region = _key(spec.region)
        rng = np.random.default_rng([seed % 2**63, 1])
        self._module_offsets = rng.normal(0.0, MODULE_OFFSET_SD_C, MODULES)
        self._module_gains = 1.0 + rng.normal(0.0, MODULE_GAIN_SD, MODULES)
        self._wheel_heat = 1.0 + rng.normal(0.0, 0.05, len(WHEELS))
        self._pad_rate = 1.0 + rng.normal(0.0, 0.05, len(WHEELS))
        self._check_phase_days = float(rng.uniform(0.0, spec.tire_check_days))
        aggr = float(np.clip(spec.aggressiveness, 0.0, 1.0))
        self._accel = ACCEL_MS2[0] + (ACCEL_MS2[1] - ACCEL_MS2[0]) * aggr
        self._decel = DECEL_MS2[0] + (DECEL_MS2[1] - DECEL_MS2[0]) * aggr
        self._urban_speed_factor = 0.9 + 0.2 * aggr
        self._cycle_km = self._typical_cycle_km()
        self._dew_mean_c = _dew_point(spec.climate_c, spec.humidity_percent)
        self._epoch_day = math.floor((epoch_ms / 1000.0 + spec.utc_offset_h * 3600.0) / 86400.0)
        self._blocks: dict[int, dict[str, FloatArray]] = {}  # LRU of detailed blocks
        self._day_totals: dict[int, FloatArray] = {}  # per block: (days, 3), small, all kept
        self._forward: list[FloatArray] = [np.zeros(3)]  # counts before day epoch_day + i
        self._backward: list[FloatArray] = [np.zeros(3)]  # counts after day epoch_day - i, positive
        self._plan: _Plan | None = None
        self._epoch_counts: FloatArray | None = None
        self._caliper_extra: dict[int, float] = {}
        self._producers = [(path, sig.rate_hz, self._producer(path)) for path, sig in catalog.items()]
        self._noise_by_rate: dict[float, list[int]] = {}
        for path, sig in catalog.items():
            self._noise_by_rate.setdefault(sig.rate_hz, []).append(self._noise_prefix(path))

    # --- public API ---------------------------------------------------------------------------

    def window(self, start_ms: int, duration_s: float) -> Samples:
        """Samples of every catalog signal in [start_ms, start_ms + duration): path -> (times_s, values)."""
        batch = self.windows(np.array([start_ms], dtype=np.int64), duration_s)
        return {path: (times[0], values[0]) for path, (times, values) in batch.items()}

    def windows(self, starts_ms: npt.ArrayLike, duration_s: float) -> Samples:
        """Samples of every catalog signal in n windows at once: path -> (times_s, values), each
        of shape (n, samples per window). Row i equals window(starts_ms[i], duration_s).
        Signals of one rate share one read-only times array."""
        starts = np.asarray(starts_ms, dtype=np.int64).reshape(-1)
        shapes = {path: _sample_count(duration_s, rate) for path, rate, _ in self._producers}
        out: Samples = {}
        shared: dict[tuple[float, int], FloatArray] = {}  # signals of one rate share their times
        for path, rate, _ in self._producers:
            times = shared.get((rate, shapes[path]))
            if times is None:
                times = starts[:, None] / 1000.0 + np.arange(shapes[path]) / rate
                times.flags.writeable = False
                shared[(rate, shapes[path])] = times
            out[path] = (times, np.empty_like(times))
        if starts.size == 0:
            return out
        self._epoch_count()
        self._calibrate_calipers()
        reach_s = duration_s + max((1.0 / rate for _, rate, _ in self._producers), default=0.0)
        self._ensure_plan(float(starts.min()) / 1000.0, float(starts.max()) / 1000.0 + reach_s)
        per_row = max(shapes.values(), default=1)
        step = max(1, _CHUNK_SAMPLES // per_row)
        for lo in range(0, starts.size, step):
            grids: dict[float, _Grid] = {}
            for path, rate, produce in self._producers:
                times, values = out[path]
                grid = grids.get(rate)
                if grid is None:
                    grid = grids[rate] = _Grid(self, times[lo : lo + step], rate, rows=True)
                    if grid.t.size <= 4096:
                        grid.draw_noise(self._noise_by_rate[rate])
                values[lo : lo + step] = produce(grid)
        return out

    def speed_kmh(self, times_s: FloatArray) -> FloatArray:
        """True vehicle speed at `times_s` (UTC seconds, any shape)."""
        return _Grid(self, times_s, 1.0).speed_kmh

    def odometer_km(self, times_s: FloatArray) -> FloatArray:
        """Odometer reading: odometer_km at day 0 plus the distance driven since."""
        return _Grid(self, times_s, 1.0).odometer_km

    def hard_brakings(self, times_s: FloatArray) -> FloatArray:
        """Hard brakings since day 0 (negative before it)."""
        return _Grid(self, times_s, 1.0).counts[..., 1]

    def ambient_c(self, times_s: FloatArray) -> FloatArray:
        return self._air_c(np.asarray(times_s, dtype=np.float64), 0.0)

    def humidity_percent(self, times_s: FloatArray, air_c: FloatArray | None = None) -> FloatArray:
        """Relative humidity from the dew point and the air temperature (Magnus formula)."""
        t = np.asarray(times_s, dtype=np.float64)
        air = self._air_c(t, 0.0) if air_c is None else air_c
        dew = self._dew_mean_c + DEW_SEASON_SHARE * self._season_c(t) + DEW_WEATHER_C * self._weather(t, _DEW)
        dew = np.minimum(dew, air)
        exponent = MAGNUS_B * dew / (MAGNUS_C + dew) - MAGNUS_B * air / (MAGNUS_C + air)
        return np.asarray(100.0 * np.exp(exponent), dtype=np.float64)

    def day(self, times_s: FloatArray) -> FloatArray:
        """Days since epoch_ms (the time base of Fault days)."""
        return np.asarray((np.asarray(times_s) * 1000.0 - self.epoch_ms) / 86_400_000.0, dtype=np.float64)

    # --- climate ------------------------------------------------------------------------------

    def _season_c(self, t: FloatArray) -> FloatArray:
        day_of_year = (t / 86400.0) % DAYS_PER_YEAR
        angle = 2 * math.pi * (day_of_year - SEASON_PEAK_DAY) / DAYS_PER_YEAR
        return np.asarray(self.spec.seasonal_amplitude_c * np.cos(angle), dtype=np.float64)

    def _weather(self, t: FloatArray, stream: int) -> FloatArray:
        """Smooth noise (standard normal at knots 12 h apart), the same for a whole region."""
        x = t / WEATHER_KNOT_S
        knot = np.floor(x)
        w = 0.5 - 0.5 * np.cos(math.pi * (x - knot))
        n = knot.astype(np.int64)
        a = _normal(_mix(self._region, stream, n))
        b = _normal(_mix(self._region, stream, n + 1))
        return np.asarray(a + (b - a) * w, dtype=np.float64)

    def _air_c(self, t: FloatArray, tau_s: float) -> FloatArray:
        """Air temperature as seen through a first-order lag of `tau_s` (0: the air itself).
        The daily sine is lagged exactly; season and weather change slowly enough to shift."""
        spec = self.spec
        omega = 2 * math.pi / 86400.0
        gain = 1.0 / math.hypot(1.0, omega * tau_s)
        local_h = ((t + spec.utc_offset_h * 3600.0) / 3600.0) % 24.0
        daily_angle = 2 * math.pi * (local_h - DAILY_PEAK_H) / 24.0 - math.atan(omega * tau_s)
        daily = spec.daily_amplitude_c * gain * np.cos(daily_angle)
        lagged = t - tau_s
        weather = WEATHER_C * self._weather(lagged, _WEATHER)
        return np.asarray(spec.climate_c + self._season_c(lagged) + daily + weather, dtype=np.float64)

    # --- the trip plan ------------------------------------------------------------------------

    def _typical_cycle_km(self) -> float:
        kin = np.zeros(10)
        kin[_VP] = np.mean(URBAN_PEAK_KMH) * self._urban_speed_factor / 3.6
        kin[_D] = URBAN_CYCLE_S - np.mean(URBAN_STOP_S)
        kin[_A], kin[_B], kin[_CYC] = self._accel, self._decel, 1.0
        _shape_cycle(kin)
        return float(_cycle_distance_m(np.asarray(kin[_D]), kin)) / 1000.0

    def _ensure_plan(self, first_s: float, last_s: float) -> _Plan:
        """The plan of every day in [first_s, last_s], reusing the current one if it covers them."""
        offset = self.spec.utc_offset_h * 3600.0
        lo = math.floor((first_s + offset) / 86400.0) // _BLOCK_DAYS
        hi = math.floor((last_s + offset) / 86400.0) // _BLOCK_DAYS
        plan = self._plan
        if plan is not None and plan.first_day <= lo * _BLOCK_DAYS < (hi + 1) * _BLOCK_DAYS <= (
            plan.first_day + plan.days
        ):
            return plan
        parts = [self._block(b) for b in range(lo, hi + 1)]
        joined = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        first_day = lo * _BLOCK_DAYS
        n = joined["day_total"].shape[0]
        self._plan = _Plan(
            first_day=first_day,
            days=n,
            trip_start_s=joined["trip_start_s"].reshape(-1),
            trip_s=joined["trip_s"].reshape(-1),
            cycle_s=joined["cycle_s"].reshape(-1),
            cycles=joined["cycles"].reshape(-1),
            kin=joined["kin"].reshape(-1, 10),
            cum_cycle=joined["cum_cycle"].reshape(-1, 3),
            cum_trip=joined["cum_trip"].reshape(-1, 3),
            cum_day=self._cum_days(first_day, n),
            lag_x=joined["lag_x"].reshape(-1, 3),
            lag_u=joined["lag_u"].reshape(-1, 3),
        )
        return self._plan

    def _block(self, block: int) -> dict[str, FloatArray]:
        """Plan of one block of days; the last few stay cached (bounded memory in long runs)."""
        found = self._blocks.pop(block, None)
        if found is None:
            days = np.arange(block * _BLOCK_DAYS, (block + 1) * _BLOCK_DAYS, dtype=np.int64)
            found = self._plan_days(days)
            self._day_totals[block] = found["day_total"]
        self._blocks[block] = found  # most recently used last
        while len(self._blocks) > _CACHED_BLOCKS:
            del self._blocks[next(iter(self._blocks))]
        return found

    def _totals(self, first_day: int, count: int) -> FloatArray:
        """Distance, hard brakings and pad friction energy of each of `count` days."""
        blocks = range(first_day // _BLOCK_DAYS, (first_day + count - 1) // _BLOCK_DAYS + 1)
        for b in blocks:
            if b not in self._day_totals:
                self._block(b)
        joined = np.concatenate([self._day_totals[b] for b in blocks])
        skip = first_day - blocks[0] * _BLOCK_DAYS
        return joined[skip : skip + count]

    def _cum_days(self, first_day: int, count: int) -> FloatArray:
        """Counts from the start of the epoch day to the start of each day (negative before it),
        always summed day by day outward from the epoch day, so a day's value is the same
        bits whatever range is asked for."""
        e = self._epoch_day
        last = first_day + count - 1
        if last > e + len(self._forward) - 1:
            known = len(self._forward)
            more = self._totals(e + known - 1, last - (e + known - 1))
            self._forward.extend(np.cumsum(np.vstack([self._forward[-1][None, :], more]), axis=0)[1:])
        if first_day < e - (len(self._backward) - 1):
            known = len(self._backward)
            more = self._totals(first_day, e - known + 1 - first_day)[::-1]
            self._backward.extend(np.cumsum(np.vstack([self._backward[-1][None, :], more]), axis=0)[1:])
        out = np.empty((count, 3))
        for i in range(count):
            day = first_day + i
            out[i] = self._forward[day - e] if day >= e else -self._backward[e - day]
        return out

    def _plan_days(self, days: IntArray) -> dict[str, FloatArray]:
        """Trips and cycles of whole local days; a pure function of (seed, day)."""
        spec = self.spec
        aggr = float(np.clip(spec.aggressiveness, 0.0, 1.0))
        d = days[:, None]
        k = np.arange(_K)[None, :]
        key = self._key

        def trip_u(stream: int) -> FloatArray:
            return _uniform(_mix(key, stream, d, k))

        weights = np.array(SLOT_WEIGHTS)
        chance = np.clip(max(spec.trips_per_day, 0.0) * weights / weights.sum(), 0.0, 1.0)
        occurs = trip_u(_OCCURS) < chance
        start = _SLOT_BASE_S + trip_u(_JITTER) * SLOT_JITTER_S
        highway = trip_u(_TYPE) >= spec.urban_share
        km_mean = spec.km_per_day / max(spec.trips_per_day, 1e-9)
        km = km_mean * np.exp(TRIP_KM_SPREAD * _normal(_mix(key, _LENGTH, d, k)) - TRIP_KM_SPREAD**2 / 2)
        pace = np.clip(aggr + 0.25 * (2 * trip_u(_HIGHWAY) - 1), 0.0, 1.0)
        v_highway = (HIGHWAY_KMH[0] + (HIGHWAY_KMH[1] - HIGHWAY_KMH[0]) * pace) / 3.6
        ramps = v_highway / (2 * self._accel) + v_highway / (2 * self._decel)
        highway_s = np.clip(km * 1000.0 / v_highway + ramps, 60.0, MAX_TRIP_S)
        urban_cycles = np.clip(np.round(km / self._cycle_km), 1, MAX_CYCLES)
        cycle_s = np.where(highway, highway_s, URBAN_CYCLE_S)
        cycles = np.where(occurs, np.where(highway, 1.0, urban_cycles), 0.0)
        trip_s = cycles * cycle_s

        # Cycles: (days, K, S).
        d3, k3 = d[..., None], k[..., None]
        j = np.arange(_S)[None, None, :]

        def cycle_u(stream: int) -> FloatArray:
            return _uniform(_mix(key, stream, d3, k3, j))

        valid = j < cycles[..., None]
        hw = highway[..., None]
        peak = URBAN_PEAK_KMH[0] + (URBAN_PEAK_KMH[1] - URBAN_PEAK_KMH[0]) * cycle_u(_PEAK)
        v = np.where(hw, v_highway[..., None], peak * self._urban_speed_factor / 3.6)
        stop = np.where(hw, 0.0, URBAN_STOP_S[0] + (URBAN_STOP_S[1] - URBAN_STOP_S[0]) * cycle_u(_STOP))
        kin = np.zeros((*valid.shape, 10))
        kin[..., _D] = np.where(valid, cycle_s[..., None] - stop, 0.0)
        kin[..., _VP] = np.where(valid, v, 0.0)
        kin[..., _A] = self._accel * np.exp(ACCEL_SPREAD * _normal(_mix(key, _ACCEL, d3, k3, j)))
        kin[..., _B] = self._decel * np.exp(DECEL_SPREAD * _normal(_mix(key, _DECEL, d3, k3, j)))
        _shape_cycle(kin)
        plateau = kin[..., _T2] - kin[..., _T1]
        turns = np.floor(plateau / HIGHWAY_WOBBLE_PERIOD_S)
        kin[..., _AMP] = np.where(hw & (turns >= 1), HIGHWAY_WOBBLE_KMH / 3.6, 0.0)
        kin[..., _CYC] = np.maximum(turns, 1.0)
        kin[..., _HARD] = (kin[..., _B] >= HARD_BRAKE_MS2) & (kin[..., _VP] * 3.6 >= HARD_BRAKE_MIN_KMH)
        kin[..., _SHARE] = np.clip((kin[..., _B] - REGEN_MAX_MS2) / kin[..., _B], 0.0, 1.0)

        totals = _cycle_counts(kin[..., _D], kin, spec.mass_kg)  # (days, K, S, 3)
        cum_cycle = np.zeros_like(totals)
        cum_cycle[..., 1:, :] = np.cumsum(totals[..., :-1, :], axis=-2)
        trip_total = cum_cycle[..., -1, :]  # the last cycle slot is always empty
        cum_trip = np.zeros((days.size, _K + 1, 3))
        cum_trip[:, 1:] = np.cumsum(trip_total, axis=1)

        # Lag inputs per cycle: Joule heat and cooling (battery), mean speed (tires), power (motor).
        lasting = np.where(valid, cycle_s[..., None], 0.0)
        power_sq = self._mean_power_sq(kin) / np.where(lasting > 0, lasting, 1.0)
        start_utc = days[:, None] * 86400.0 + start - spec.utc_offset_h * 3600.0
        pack_c = self._air_c(start_utc, PACK_AMBIENT_TAU_S)
        cooling = COOLING_GAIN * (spec.coolant_setpoint_c - pack_c)[..., None]
        lag_u = np.zeros_like(totals)
        joule_w = power_sq * PACK_RESISTANCE_OHM / PACK_VOLTAGE_V**2
        lag_u[..., 0] = np.where(valid, BATTERY_K_PER_W * joule_w + cooling, 0.0)
        mean_kmh = 3.6 * totals[..., 0] / np.maximum(lasting, 1.0)
        lag_u[..., 1] = np.where(valid, TIRE_HEAT_C_PER_KMH * mean_kmh, 0.0)
        lag_u[..., 2] = np.where(valid, MOTOR_C_PER_KW * np.sqrt(power_sq) / 1000.0, 0.0)
        lag_x = self._lag_states(lag_u, lasting, start, trip_s)
        return {
            "trip_start_s": start,
            "trip_s": trip_s,
            "cycle_s": cycle_s,
            "cycles": cycles,
            "kin": kin,
            "cum_cycle": cum_cycle,
            "cum_trip": cum_trip,
            "day_total": cum_trip[:, -1],
            "lag_x": lag_x,
            "lag_u": lag_u,
        }

    def _mean_power_sq(self, kin: FloatArray) -> FloatArray:
        """Integral over a cycle of the squared traction power (W^2 s): inertia while
        accelerating, rolling and air resistance while cruising, regeneration while braking."""
        m = self.spec.mass_kg
        vp, t1, t2, d = kin[..., _VP], kin[..., _T1], kin[..., _T2], kin[..., _D]
        resist = m * GRAVITY_MS2 * ROLLING_RESISTANCE + 0.5 * AIR_DENSITY_KG_M3 * DRAG_AREA_M2 * vp * vp
        accel = (m * kin[..., _A] * vp) ** 2 / 3.0
        cruise = (resist * vp) ** 2
        regen = (m * np.minimum(kin[..., _B], REGEN_MAX_MS2) * vp) ** 2 / 3.0
        return np.asarray(t1 * accel + (t2 - t1) * cruise + (d - t2) * regen)

    @staticmethod
    def _lag_states(u: FloatArray, lasting: FloatArray, start: FloatArray, trip_s: FloatArray) -> FloatArray:
        """First-order lag states at each cycle start, in closed form within a trip:
        x_j = e^(-T_j/tau) (x_0 + sum_{i<j} (1 - e^(-P_i/tau)) u_i e^(T_{i+1}/tau)).
        A trip starts from what is left of the previous trip that day; the night's 8+ hours
        leave nothing worth carrying into the next day."""
        tau = _TAUS
        begin = np.zeros_like(lasting)
        begin[..., 1:] = np.cumsum(lasting[..., :-1], axis=-1)
        end = begin + lasting
        b, e = begin[..., None] / tau, end[..., None] / tau
        terms = (1.0 - np.exp(-(lasting[..., None] / tau))) * u * np.exp(e)
        sums = np.zeros_like(terms)
        sums[..., 1:, :] = np.cumsum(terms[..., :-1, :], axis=-2)
        x = np.zeros_like(u)
        carried = np.zeros((u.shape[0], 3))
        for k in range(_K):
            if k > 0:
                gap = start[:, k] - (start[:, k - 1] + trip_s[:, k - 1])
                carried = x[:, k - 1, -1, :] * np.exp(-gap[:, None] / tau)
            x[:, k] = np.exp(-b[:, k]) * (carried[:, None, :] + sums[:, k])
        return x

    def _motion(self, t: FloatArray) -> _Motion:
        if t.size:
            plan = self._ensure_plan(float(np.min(t)), float(np.max(t)))
        else:
            plan = self._ensure_plan(self.epoch_ms / 1000.0, self.epoch_ms / 1000.0)
        local = t + self.spec.utc_offset_h * 3600.0
        whole = np.floor(local / 86400.0)
        sec = local - whole * 86400.0
        day = whole.astype(np.int64) - plan.first_day
        candidate = np.searchsorted(_SLOT_BASE_S, sec, side="right") - 1
        before = sec < plan.trip_start_s[day * _K + np.maximum(candidate, 0)]
        slot = np.where(before, candidate - 1, candidate)
        started = slot >= 0
        slot = np.maximum(slot, 0)
        trip = day * _K + slot
        tau = np.where(started, sec - plan.trip_start_s[trip], 0.0)
        trip_s = plan.trip_s[trip]
        in_trip = started & (tau < trip_s)
        cycle_s = plan.cycle_s[trip]
        j = np.where(in_trip, np.minimum(np.floor(tau / cycle_s), plan.cycles[trip] - 1), plan.cycles[trip])
        phi = np.where(in_trip, tau - j * cycle_s, tau - trip_s)
        row = trip * _S + j.astype(np.int64)
        return _Motion(plan, day, started, slot, row, phi, in_trip)

    def _counts(self, m: _Motion) -> FloatArray:
        plan = m.plan
        within = plan.cum_trip[m.day * (_K + 1) + m.slot] + (
            plan.cum_cycle[m.row] + _cycle_counts(m.phi, plan.kin[m.row], self.spec.mass_kg)
        )
        return np.asarray(plan.cum_day[m.day] + np.where(m.started[..., None], within, 0.0))

    def _lags(self, m: _Motion) -> FloatArray:
        x, u = m.plan.lag_x[m.row], m.plan.lag_u[m.row]
        decay = np.exp(-np.maximum(m.phi, 0.0)[..., None] / _TAUS)
        return np.asarray(np.where(m.started[..., None], u + (x - u) * decay, 0.0))

    def _epoch_count(self) -> FloatArray:
        if self._epoch_counts is None:
            self._epoch_counts = self._counts(self._motion(np.array([self.epoch_ms / 1000.0])))[0]
        return self._epoch_counts

    # --- faults -------------------------------------------------------------------------------

    def _fault(self, kind: str, target: int, day: FloatArray) -> FloatArray:
        total = np.zeros_like(day)
        for fault in self.spec.faults:
            if fault.kind == kind and fault.target == target:
                total = total + fault.severity(day)
        return total

    def _calibrate_calipers(self) -> None:
        """Extra wear of each sticking caliper at its failure day: what the pad still lacks
        from the wear limit then (at least 5 %)."""
        for index, fault in enumerate(self.spec.faults):
            if fault.kind == "pad_wear" and index not in self._caliper_extra:
                t_fail = np.array([self.epoch_ms / 1000.0 + fault.failure_day * 86400.0])
                base = _Grid(self, t_fail, 1.0).pad_wear_base(fault.target)[0]
                self._caliper_extra[index] = max(PAD_WEAR_LIMIT_PERCENT - float(base), 5.0)

    def _caliper(self, wheel: int, day: FloatArray) -> FloatArray:
        """Extra wear of a sticking caliper: it reaches the wear limit at the failure day."""
        self._calibrate_calipers()
        total = np.zeros_like(day)
        for index, fault in enumerate(self.spec.faults):
            if fault.kind == "pad_wear" and fault.target == wheel:
                total = total + self._caliper_extra[index] * fault.severity(day)
        return total

    # --- signals ------------------------------------------------------------------------------

    def _noise_prefix(self, path: str) -> int:
        return _prefix(self._key, _key(path))

    def _producer(self, path: str) -> Callable[[_Grid], FloatArray]:
        """The function of a sample grid that gives the signal at `path` (NaN if unknown)."""
        simple: dict[str, Callable[[_Grid, _Noise], FloatArray]] = {
            "Vehicle.Speed": _Grid.speed_signal,
            "Vehicle.TraveledDistance": _Grid.odometer_signal,
            "Vehicle.Exterior.AirTemperature": _Grid.air_signal,
            "Vehicle.Exterior.Humidity": _Grid.humidity_signal,
            "Vehicle.Chassis.Brake.HardBrakingCount": _Grid.hard_braking_signal,
            "Vehicle.Powertrain.ElectricMotor.Temperature": _Grid.motor_temperature_signal,
            "Vehicle.Powertrain.ElectricMotor.Noise": _Grid.motor_noise_signal,
        }
        if path in simple:
            return partial(_noisy, simple[path], self._noise_prefix(path))
        if path.startswith("Vehicle.Powertrain.TractionBattery.Module") and path.endswith(".Temperature"):
            number = path.removeprefix("Vehicle.Powertrain.TractionBattery.Module").split(".")[0]
            if number.isdigit() and 1 <= int(number) <= MODULES:
                module = partial(_Grid.module_signal, module=int(number) - 1)
                return partial(_noisy, module, self._noise_prefix(path))
        wheel_signals = {
            "Tire.Pressure": _Grid.pressure_signal,
            "Brake.PadWear": _Grid.pad_wear_signal,
            "Bearing.VibrationRMS": _Grid.bearing_rms_signal,
            "Bearing.VibrationKurtosis": _Grid.bearing_kurtosis_signal,
            "Bearing.DefectBandEnergy": _Grid.bearing_band_signal,
        }
        for wheel, name in enumerate(WHEELS):
            for suffix, method in wheel_signals.items():
                if path == f"Vehicle.Chassis.Axle.{name}.{suffix}":
                    return partial(_noisy, partial(method, wheel=wheel), self._noise_prefix(path))
        return _unknown


def _speed_kmh(m: _Motion) -> FloatArray:
    v = _cycle_speed_ms(m.phi, m.plan.kin[m.row]) * 3.6
    return np.asarray(np.where(m.in_trip, v, 0.0))


class _Noise:
    """Standard normal sensor noise of one signal, a hash of (seed, signal, sample time in ms):
    the same for a sample however the windows are batched; drawn only where asked for."""

    def __init__(self, grid: _Grid, prefix: int) -> None:
        self.grid = grid
        self.prefix = prefix  # _prefix(seed, signal key)

    def __call__(self, where: BoolArray | None = None) -> FloatArray:
        preset = self.grid.preset_noise.get(self.prefix)
        if preset is not None:
            return preset if where is None else np.where(where, preset, 0.0)
        if where is None or where.size < 1024:
            full = _normal(_continue(self.prefix, self.grid.ms))
            return full if where is None else np.where(where, full, 0.0)
        out = np.zeros(self.grid.t.shape)
        out[where] = _normal(_continue(self.prefix, np.rint(self.grid.t[where] * 1000.0).astype(np.int64)))
        return out


def _noisy(method: Callable[..., FloatArray], prefix: int, grid: _Grid) -> FloatArray:
    return method(grid, _Noise(grid, prefix))


def _unknown(grid: _Grid) -> FloatArray:
    return np.full(grid.t.shape, np.nan)


def _shape_cycle(kin: FloatArray) -> None:
    """Peak speed the cycle reaches and when it stops accelerating / starts braking."""
    a, b, d = kin[..., _A], kin[..., _B], kin[..., _D]
    kin[..., _VP] = np.minimum(kin[..., _VP], a * b * d / (a + b))
    kin[..., _T1] = kin[..., _VP] / a
    kin[..., _T2] = np.maximum(d - kin[..., _VP] / b, kin[..., _T1])


def _dew_point(air_c: float, humidity_percent: float) -> float:
    gamma = math.log(max(humidity_percent, 1.0) / 100.0) + MAGNUS_B * air_c / (MAGNUS_C + air_c)
    return MAGNUS_C * gamma / (MAGNUS_B - gamma)


def _sample_count(duration_s: float, rate_hz: float) -> int:
    return max(1, math.floor(duration_s * rate_hz + 1e-9))


class _Grid:
    """Sample times of one rate (any shape) and what the signals share, each computed once."""

    def __init__(
        self, sim: VehicleSimulator, times_s: FloatArray, rate_hz: float, *, rows: bool = False
    ) -> None:
        """rows: the last axis holds windows' samples in ascending time (lets parked windows
        skip the kinematics; the values are the same either way)."""
        self.sim = sim
        self.spec = sim.spec
        self.t = np.asarray(times_s, dtype=np.float64)
        self.period_s = 1.0 / rate_hz
        self.rows = rows and self.t.ndim == 2 and self.t.shape[0] >= 16 and self.t.shape[1] > 1
        self.preset_noise: dict[int, FloatArray] = {}

    def draw_noise(self, prefixes: list[int]) -> None:
        """Noise of several signals in one pass (saves per-call overhead on small grids)."""
        keys = np.array(prefixes, dtype=np.uint64).reshape(-1, *([1] * self.t.ndim))
        with np.errstate(over="ignore"):
            table = _normal(_splitmix(keys ^ self.ms.astype(np.uint64)))
        self.preset_noise = dict(zip(prefixes, table, strict=True))

    @cached_property
    def ms(self) -> IntArray:
        return np.rint(self.t * 1000.0).astype(np.int64)

    @cached_property
    def motion(self) -> _Motion:
        return self.sim._motion(self.t)

    @cached_property
    def day(self) -> FloatArray:
        return self.sim.day(self.t)

    @cached_property
    def speed_kmh(self) -> FloatArray:
        if not self.rows or "motion" in self.__dict__:
            return _speed_kmh(self.motion)
        # A window whose first and last samples lie after the same trip (or both before the
        # day's first trip) contains no driving.
        first = self.sim._motion(self.t[..., 0])
        last = self.sim._motion(self.t[..., -1])
        parked = (
            (first.day == last.day)
            & (first.slot == last.slot)
            & (first.started == last.started)
            & ~first.in_trip
            & ~last.in_trip
        )
        speed = np.zeros_like(self.t)
        driving = ~parked
        if driving.any():
            speed[driving] = _speed_kmh(self.sim._motion(self.t[driving]))
        return speed

    @cached_property
    def moving(self) -> BoolArray:
        return np.asarray(self.speed_kmh >= MOVING_KMH)

    @cached_property
    def counts(self) -> FloatArray:
        """(..., 3): distance m, hard brakings, pad friction energy J since day 0."""
        return np.asarray(self.sim._counts(self.motion) - self.sim._epoch_count())

    @cached_property
    def odometer_km(self) -> FloatArray:
        return np.asarray(self.spec.odometer_km + self.counts[..., 0] / 1000.0)

    @cached_property
    def lags(self) -> FloatArray:
        """(..., 3): battery, tire and motor rise over their resting temperature."""
        return self.sim._lags(self.motion)

    @cached_property
    def air_c(self) -> FloatArray:
        return self.sim._air_c(self.t, 0.0)

    @cached_property
    def pack_c(self) -> FloatArray:
        """Where the battery pack would rest: the air through the pack's 3-hour lag."""
        return self.sim._air_c(self.t, PACK_AMBIENT_TAU_S)

    def pad_wear_base(self, wheel: int) -> FloatArray:
        km = self.counts[..., 0] / 1000.0
        mj = self.counts[..., 2] / 1e6
        wear = PAD_WEAR_PERCENT_PER_1000_KM * km / 1000.0 + PAD_WEAR_PERCENT_PER_MJ * mj
        return np.asarray(self.spec.pad_wear_percent + self.sim._pad_rate[wheel] * wear)

    # Signals: each takes the signal's noise source.

    def speed_signal(self, noise: _Noise) -> FloatArray:
        v = self.speed_kmh
        moving = v > 0.0
        return np.asarray(np.where(moving, np.maximum(v + NOISE["speed"] * noise(moving), 0.0), 0.0))

    def odometer_signal(self, noise: _Noise) -> FloatArray:
        return self.odometer_km

    def air_signal(self, noise: _Noise) -> FloatArray:
        return np.asarray(self.air_c + NOISE["air"] * noise())

    def humidity_signal(self, noise: _Noise) -> FloatArray:
        humidity = self.sim.humidity_percent(self.t, self.air_c)
        return np.clip(humidity + NOISE["humidity"] * noise(), 0.0, 100.0)

    def hard_braking_signal(self, noise: _Noise) -> FloatArray:
        """Hard brakings in [t, t + sample period): summed over a window, those of the window."""
        edges = _Grid(self.sim, np.stack([self.t, self.t + self.period_s]), 1.0 / self.period_s)
        counts = edges.counts[..., 1]
        return np.asarray(np.rint(counts[1] - counts[0]))

    def module_signal(self, noise: _Noise, module: int) -> FloatArray:
        sim = self.sim
        pack = self.pack_c
        rise = sim._module_gains[module] * self.lags[..., 0] + sim._module_offsets[module]
        drift = DRIFT_AT_FAILURE_C * sim._fault("battery_drift", module, self.day)
        return np.asarray(pack + rise + drift + NOISE["module"] * noise())

    def pressure_signal(self, noise: _Noise, wheel: int) -> FloatArray:
        sim = self.sim
        tire_c = self.air_c + sim._wheel_heat[wheel] * self.lags[..., 1]
        since_check = (self.t / 86400.0 - sim._check_phase_days) % self.spec.tire_check_days
        leak = LEAK_LOSS_AT_FAILURE_KPA * sim._fault("tire_leak", wheel, self.day)
        cold = FILL_PRESSURE_KPA - PERMEATION_KPA_PER_DAY * since_check - leak
        absolute = (cold + ATMOSPHERE_KPA) * (tire_c + 273.15) / (self.spec.climate_c + 273.15)
        return np.asarray(np.maximum(absolute - ATMOSPHERE_KPA, 0.0) + NOISE["pressure"] * noise())

    def pad_wear_signal(self, noise: _Noise, wheel: int) -> FloatArray:
        wear = self.pad_wear_base(wheel) + self.sim._caliper(wheel, self.day)
        return np.clip(wear + NOISE["pad"] * noise(), 0.0, 100.0)

    def _bearing(self, wheel: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Background power, defect power (g^2) and impact duty cycle."""
        v = self.speed_kmh
        background = (BEARING_BACKGROUND_G[0] + BEARING_BACKGROUND_G[1] * v / 100.0) ** 2
        wear = self.sim._fault("bearing_wear", wheel, self.day)
        defect = DEFECT_G2_AT_FAILURE * wear * (v / BEARING_REF_KMH) ** 2
        duty = np.minimum(IMPACT_DUTY_EARLY + (1.0 - IMPACT_DUTY_EARLY) * wear, 1.0)
        return np.asarray(background), np.asarray(defect), np.asarray(duty)

    def bearing_rms_signal(self, noise: _Noise, wheel: int) -> FloatArray:
        background, defect, _ = self._bearing(wheel)
        rms = np.sqrt(background + defect) * (1.0 + NOISE["rms"] * noise(self.moving))
        return np.asarray(np.where(self.moving, rms, np.nan))

    def bearing_kurtosis_signal(self, noise: _Noise, wheel: int) -> FloatArray:
        """Gaussian background plus Gaussian impacts present a share `duty` of the time:
        kurtosis = 3 (1 + (1 - duty) / duty * (P / (sigma^2 + P))^2)."""
        background, defect, duty = self._bearing(wheel)
        share = defect / (background + defect)
        kurtosis = 3.0 * (1.0 + (1.0 - duty) / duty * share * share)
        kurtosis = np.maximum(kurtosis * (1.0 + NOISE["kurtosis"] * noise(self.moving)), 1.0)
        return np.asarray(np.where(self.moving, kurtosis, np.nan))

    def bearing_band_signal(self, noise: _Noise, wheel: int) -> FloatArray:
        """Energy in the band around the defect frequency and its harmonics, dB re 1 g^2."""
        background, defect, _ = self._bearing(wheel)
        energy = BACKGROUND_BAND_SHARE * background + DEFECT_BAND_SHARE * defect
        level = 10.0 * np.log10(np.maximum(energy, 1e-12)) + NOISE["band"] * noise(self.moving)
        return np.asarray(np.where(self.moving, level, np.nan))

    def motor_temperature_signal(self, noise: _Noise) -> FloatArray:
        return np.asarray(self.air_c + self.lags[..., 2] + NOISE["motor_temp"] * noise())

    def motor_noise_signal(self, noise: _Noise) -> FloatArray:
        v = self.speed_kmh
        level = MOTOR_NOISE_BASE_DB + MOTOR_NOISE_SPEED_DB * np.log10(1.0 + v / 20.0)
        level = level + MOTOR_FAULT_DB * self.sim._fault("motor_noise", 0, self.day)
        return np.asarray(np.where(self.moving, level + NOISE["motor_noise"] * noise(self.moving), np.nan))
