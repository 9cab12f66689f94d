"""The agent's pure parts: features, smoothing, trends, the assessor's record decisions, and
the base every source derives from (reading with a timeout, counters, closing)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from prognos.edge.agent import VehicleAssessor
from prognos.edge.buffers import Sample
from prognos.edge.features import FEATURE_NAMES, feature_matrix, window_features
from prognos.edge.smoothing import ScoreSmoother
from prognos.edge.sources import FrameSource, SampleSource
from prognos.edge.trend import Trend
from prognos.errors import ConfigError, TransientError
from prognos.record import Trigger


def test_features_match_their_definitions_and_skip_missing_samples() -> None:
    times = np.arange(0.0, 600.0, 10.0)
    values = 20.0 + times / 86_400.0 * 3.0 + np.sin(times)  # trend of 3 units a day
    values[5] = np.nan
    f = window_features(times, values)
    kept = np.delete(values, 5)
    assert f.count == 59
    assert f.mean == pytest.approx(kept.mean())
    assert f.std == pytest.approx(kept.std())
    assert (f.min, f.max) == (kept.min(), kept.max())
    assert f.rms == pytest.approx(math.sqrt(np.mean(kept**2)))
    assert f.slope_per_day == pytest.approx(3.0, abs=600.0)  # the sine dominates a short window
    steady = window_features(np.arange(0.0, 86_400.0, 600.0), 5.0 + np.arange(144) * 600.0 / 86_400.0 * 2.0)
    assert steady.slope_per_day == pytest.approx(2.0)


def test_a_batch_of_windows_gives_the_same_features_as_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    times = np.tile(np.arange(60.0), (5, 1))
    values = rng.normal(size=(5, 60))
    values[2, :] = np.nan
    values[3, ::2] = np.nan
    batch = feature_matrix(times, values)
    assert batch.shape == (5, len(FEATURE_NAMES))
    for row in range(5):
        np.testing.assert_array_equal(batch[row], feature_matrix(times[row], values[row]))
    assert batch[2, 0] == 0 and np.isnan(batch[2, 1:]).all()


def test_a_window_without_samples_has_count_zero_and_nan_features() -> None:
    empty = feature_matrix(np.array([]), np.array([]))
    assert empty.shape == (len(FEATURE_NAMES),)
    assert empty[0] == 0 and np.isnan(empty[1:]).all()
    assert feature_matrix(np.zeros((3, 0)), np.zeros((3, 0))).shape == (3, len(FEATURE_NAMES))


def test_smoothing_does_not_depend_on_how_often_windows_come() -> None:
    def smoothed(windows_per_day: int) -> float:
        smoother = ScoreSmoother(tau_days=0.5)
        value = math.nan
        for k in range(windows_per_day * 3):
            day = k / windows_per_day
            value = smoother.update(day, 2.0 if day >= 1.0 else 0.0)
        return value

    assert smoothed(24) == pytest.approx(smoothed(144), abs=0.02)
    assert smoothed(144) == pytest.approx(2.0 - 2.0 * math.exp(-2.0 / 0.5), abs=0.02)


def test_alert_has_hysteresis_and_ignores_missing_scores() -> None:
    smoother = ScoreSmoother(tau_days=0.01, release=0.7)
    smoother.update(0.0, 0.5)
    assert not smoother.alerting
    smoother.update(1.0, 1.2)
    assert smoother.alerting
    smoother.update(2.0, 0.8)
    assert smoother.alerting, "0.8 is above the release level"
    assert smoother.update(2.5, float("nan")) == pytest.approx(0.8)
    smoother.update(3.0, 0.5)
    assert not smoother.alerting


def test_trend_estimates_days_to_threshold_with_an_interval() -> None:
    rng = np.random.default_rng(1)
    trend = Trend()
    for k in range(200):
        day = k * 0.05
        trend.add(day, 10.0 + 0.5 * day + rng.normal(0, 0.05))
    estimate = trend.days_to(20.0)
    assert estimate is not None
    truth = (20.0 - (10.0 + 0.5 * 9.95)) / 0.5
    assert estimate.days == pytest.approx(truth, rel=0.05)
    assert estimate.low <= truth <= estimate.high
    assert trend.days_to(5.0) is None, "the trend heads away from 5"


def test_trend_needs_history_before_it_answers() -> None:
    trend = Trend()
    for k in range(5):
        trend.add(k * 0.01, float(k))
    assert trend.days_to(100.0) is None


def window(vin_assessor: VehicleAssessor, start_ms: int, module_offsets: list[float]) -> object:
    times = start_ms / 1000.0 + np.arange(600.0)
    samples = {
        f"Vehicle.Powertrain.TractionBattery.Module{m + 1}.Temperature": (times, np.full(600, 25.0 + off))
        for m, off in enumerate(module_offsets)
    }
    return vin_assessor.window(start_ms, start_ms + 600_000, samples, {"frames_seen": 1})


def test_assessor_sends_anomalies_changes_and_heartbeats_only() -> None:
    assessor = VehicleAssessor(vin="TEST0000000000001", heartbeat_s=3600.0)
    first = window(assessor, 0, [0.0, 0.1, 0.0, 0.1])
    assert first is not None and first.trigger == Trigger.HEARTBEAT
    quiet = [window(assessor, k * 600_000, [0.0, 0.1, 0.0, 0.1]) for k in range(1, 6)]
    assert quiet == [None] * 5, "nothing changed within the heartbeat interval"
    beat = window(assessor, 6 * 600_000, [0.0, 0.1, 0.0, 0.1])
    assert beat is not None and beat.trigger == Trigger.HEARTBEAT
    hot = window(assessor, 7 * 600_000, [0.0, 0.1, 5.0, 0.1])
    assert hot is not None and hot.trigger == Trigger.ANOMALY
    assert [f.code for f in hot.faults] == ["battery.module_temperature_drift"]
    assert hot.subsystems["battery"].anomaly_score > 1.0
    assert hot.seq == 3


def test_records_carry_the_latest_ambient_temperature_and_humidity_while_they_are_fresh() -> None:
    assessor = VehicleAssessor(vin="TEST0000000000001", heartbeat_s=600.0)
    times = np.arange(0.0, 600.0, 10.0)
    air = np.linspace(4.0, 2.0, times.size)
    air[-1] = np.nan  # the latest sample that was reported counts
    humid = np.full(times.size, 83.0)
    conditions = {
        "Vehicle.Exterior.AirTemperature": (times, air),
        "Vehicle.Exterior.Humidity": (times, humid),
    }
    first = assessor.window(0, 600_000, conditions, {})
    assert first is not None and first.causes == ()
    assert first.ambient_c == pytest.approx(air[-2], abs=1e-6) and first.humidity_pct == 83.0
    battery_only = {"Vehicle.Powertrain.TractionBattery.Module1.Temperature": (times, np.full(60, 20.0))}
    kept = [assessor.window(k * 600_000, (k + 1) * 600_000, battery_only, {}) for k in range(1, 8)]
    assert [r is not None and r.humidity_pct for r in kept] == [83.0] * 6 + [None], "an hour at most"
    wet = {"Vehicle.Exterior.Humidity": (times, np.full(60, 104.0))}  # a sensor out of its range
    record = assessor.window(8 * 600_000, 9 * 600_000, wet, {})
    assert record is not None and record.humidity_pct is None and record.ambient_c is None


# --- the source base ---------------------------------------------------------------------------


class ScriptedSource(FrameSource[str]):
    """The least adapter: its interface hands out the units of `script`, then, like a quiet bus,
    nothing until the timeout (a recording, `ends`, closes itself instead). Units: "PATH=VALUE"
    decodes to a sample, "?" is a frame without samples (unknown), "!" a line the interface
    cannot parse, "gone" a failing interface, "closed" a wait ended by close() from another
    thread, "bad" a recording that cannot be read on."""

    def __init__(
        self, script: list[str], *, ends: bool = False, dated_by: Callable[[], float] | None = None
    ) -> None:
        super().__init__(dated_by=dated_by)
        self.script = script
        self.ends = ends
        self.waits: list[float | None] = []
        self.frames_seen = 0
        self.frames_unknown = 0
        self.released = 0

    def _read_raw(self, timeout_s: float | None) -> str | None:
        self.waits.append(timeout_s)
        if not self.script:
            if self.ends:
                self.close()
            else:
                time.sleep(0.01 if timeout_s is None else timeout_s)
            return None
        unit = self.script.pop(0)
        if unit == "!":
            self._count_unreadable()
            return None
        if unit == "gone":
            raise TransientError("the interface went away")
        if unit in ("closed", "bad"):
            self.close()
            raise TransientError("closed") if unit == "closed" else ConfigError("cannot read on")
        return unit

    def _decode(self, raw: str) -> list[Sample]:
        self.frames_seen += 1
        if raw == "?":
            self.frames_unknown += 1
            return []
        path, value = raw.split("=")
        return [Sample(path, 100.0, float(value))]

    def _decoder_counters(self) -> Mapping[str, int]:
        return {"frames_seen": self.frames_seen, "frames_unknown": self.frames_unknown, "frames_bad": 0}

    def _release(self) -> None:
        self.released += 1


def test_a_read_with_nothing_coming_waits_out_its_timeout() -> None:
    source = ScriptedSource([])
    started = time.monotonic()
    assert source.read(0.2) == []
    assert 0.2 <= time.monotonic() - started < 2.0
    assert not source.finished  # a timeout, not the end
    assert source.waits[0] == pytest.approx(0.2, abs=0.05)


def test_a_read_goes_past_units_without_samples_until_one_has_some() -> None:
    source = ScriptedSource(["?", "!", "?", "A=1.5", "B=2"])
    assert source.read(5.0) == [Sample("A", 100.0, 1.5)]
    waits = [w for w in source.waits if w is not None]
    assert len(waits) == 4 and waits == sorted(waits, reverse=True) and waits[0] <= 5.0  # one deadline
    assert source.read(0.0) == [Sample("B", 100.0, 2.0)]
    assert source.read(0.0) == [] and source.waits[-1] == 0.0  # timeout 0: one look, no wait
    # The decoder's counters, with the unparseable line seen and bad.
    assert source.counters() == {"frames_seen": 5, "frames_unknown": 2, "frames_bad": 1}


def test_a_read_without_timeout_waits_until_samples_come() -> None:
    source = ScriptedSource([])
    later = threading.Timer(0.1, source.script.append, args=["C=3"])
    later.start()
    try:
        assert source.read(None) == [Sample("C", 100.0, 3.0)]
    finally:
        later.join()
    assert None in source.waits


def test_samples_are_dated_by_the_given_clock() -> None:
    source = ScriptedSource(["A=1", "B=2"], dated_by=lambda: 42.0)
    assert source.read(0.0) == [Sample("A", 42.0, 1.0)]
    assert ScriptedSource(["B=2"]).read(0.0) == [Sample("B", 100.0, 2.0)]  # else the decoder's time


def test_a_recording_ends_and_iterating_yields_every_sample() -> None:
    source = ScriptedSource(["A=1", "?", "B=2"], ends=True)
    assert list(source) == [Sample("A", 100.0, 1.0), Sample("B", 100.0, 2.0)]
    assert source.finished and source.released == 1


def test_closing_releases_the_interface_once_and_reads_nothing_after() -> None:
    with ScriptedSource(["A=1"]) as source:
        as_agent_sees_it: SampleSource = source
        assert as_agent_sees_it.live and not as_agent_sees_it.finished
    assert source.finished and source.released == 1
    source.close()
    assert source.released == 1
    assert source.read(None) == [] and source.waits == []  # at once, without touching the interface


def test_a_failing_interface_raises_unless_the_source_was_closed_meanwhile() -> None:
    source = ScriptedSource(["gone", "A=1", "closed"])
    with pytest.raises(TransientError, match="went away"):
        source.read(1.0)
    assert source.read(1.0) == [Sample("A", 100.0, 1.0)]  # the reader tries again
    assert source.read(1.0) == [] and source.finished  # closed while waiting: the end, no error
    unreadable = ScriptedSource(["bad"])
    with pytest.raises(ConfigError, match="cannot read on"):  # not only a TransientError ends quietly
        unreadable.read(1.0)
    assert unreadable.finished
