"""The agent's decision path, free of I/O: one window of samples in, a record (or nothing) out.

A record goes out when the vehicle shows an anomaly, when a subsystem's health moved by more
than `change_threshold` since the last record, and otherwise as a heartbeat every
`heartbeat_s`; never as a raw stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from prognos import __version__
from prognos.edge.detector import Bundle, Detector
from prognos.edge.features import FloatArray, WindowFeatures, feature_matrix
from prognos.edge.inputs import assemble
from prognos.edge.rules import assess
from prognos.edge.smoothing import ScoreSmoother
from prognos.edge.trend import DaysCalibration, DaysToThreshold, Trend
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger

RULES_MODEL_ID = "rules"
MS_PER_DAY = 86_400_000
DETECTOR_FAULT_CODES = {
    "battery": "battery.module_temperature_drift",
    "tires": "tires.pressure_loss",
    "brakes": "brakes.pad_wear",
    "bearings": "bearings.wheel_bearing_wear",
    "motor": "motor.noise",
}


class VehicleAssessor:
    def __init__(
        self,
        *,
        vin: str,
        heartbeat_s: float = 3600.0,
        change_threshold: float = 0.02,
        model_id: str = RULES_MODEL_ID,
        model_version: str = __version__,
        detectors: Mapping[str, Detector] | None = None,
        days_calibration: Mapping[str, DaysCalibration] | None = None,
        first_seq: int = 1,
    ) -> None:
        """With `detectors` (subsystem -> trained detector) their smoothed scores replace the
        rules' anomaly scores, and their alerts raise faults; the rules still give health and
        days-to-threshold. Without, the rules decide alone. Records are numbered from
        `first_seq` on."""
        self.vin = vin
        self.heartbeat_ms = int(heartbeat_s * 1000)
        self.change_threshold = change_threshold
        self.model_id = model_id
        self.model_version = model_version
        self._trends: dict[str, Trend] = {}
        self._seq = first_seq - 1
        self._last_sent_ms: int | None = None
        self._last_health: dict[str, float] = {}
        self._detectors: dict[str, Detector] = {}
        self._smoothers: dict[str, ScoreSmoother] = {}
        self._days_calibration: dict[str, DaysCalibration] = {}
        self.use_detectors(detectors or {}, model_id, model_version, days_calibration)

    def use_detectors(
        self,
        detectors: Mapping[str, Detector],
        model_id: str,
        model_version: str,
        days_calibration: Mapping[str, DaysCalibration] | None = None,
    ) -> None:
        """Run these detectors from the next window on (a model update); their scores start over.
        `days_calibration` (fault code -> calibration) corrects the trend's days-to-threshold."""
        self._days_calibration = dict(days_calibration or {})
        self._detectors = dict(detectors)
        self._smoothers = {name: ScoreSmoother(tau_days=d.meta.tau_days) for name, d in detectors.items()}
        self.model_id = model_id
        self.model_version = model_version

    def use_bundle(self, bundle: Bundle) -> None:
        """Run a model bundle's detectors, under its id and version, from the next window on."""
        self.use_detectors(bundle.detectors, bundle.bundle_id, bundle.version, bundle.days_calibration)

    def window(
        self,
        start_ms: int,
        end_ms: int,
        samples: Mapping[str, tuple[FloatArray, FloatArray]],
        counters: Mapping[str, int],
    ) -> DiagnosticRecord | None:
        """Assess one window of samples (VSS path -> (times_s, values)); the record to send, if any."""
        matrices = {path: feature_matrix(t, v) for path, (t, v) in samples.items()}
        return self.window_features(start_ms, end_ms, matrices, counters)

    def window_features(
        self,
        start_ms: int,
        end_ms: int,
        matrices: Mapping[str, FloatArray],
        counters: Mapping[str, int],
    ) -> DiagnosticRecord | None:
        """The same, from the window's feature rows (VSS path -> features in FEATURE_NAMES order)."""
        features = {path: WindowFeatures.from_row(m) for path, m in matrices.items()}
        day = end_ms / MS_PER_DAY

        def days_to(key: str, threshold: float) -> DaysToThreshold | None:
            trend = self._trends.get(key)
            return trend.days_to(threshold) if trend else None

        result = assess(features, days_to)
        result.faults[:] = [self._calibrated(f) for f in result.faults]
        for key, value in result.trend_inputs.items():
            self._trends.setdefault(key, Trend()).add(day, value)
        self._apply_detectors(day, matrices, result.subsystems, result.faults)
        trigger = self._trigger(
            end_ms, result.faults != [], {name: state.health for name, state in result.subsystems.items()}
        )
        if trigger is None:
            return None
        self._seq += 1
        self._last_sent_ms = end_ms
        self._last_health.update({n: s.health for n, s in result.subsystems.items()})
        return DiagnosticRecord(
            vin=self.vin,
            seq=self._seq,
            window_start_ms=start_ms,
            window_end_ms=end_ms,
            model_id=self.model_id,
            model_version=self.model_version,
            trigger=trigger,
            subsystems=result.subsystems,
            faults=tuple(result.faults),
            counters=dict(counters),
        )

    def _calibrated(self, fault: FaultHypothesis) -> FaultHypothesis:
        calibration = self._days_calibration.get(fault.code)
        if calibration is None or fault.days_to_threshold is None:
            return fault
        estimate = calibration.apply(DaysToThreshold(fault.days_to_threshold, 0.0, 0.0))
        return dataclasses.replace(
            fault, days_to_threshold=estimate.days, days_low=estimate.low, days_high=estimate.high
        )

    def _apply_detectors(
        self,
        day: float,
        matrices: Mapping[str, FloatArray],
        subsystems: dict[str, SubsystemState],
        faults: list[FaultHypothesis],
    ) -> None:
        for name, detector in self._detectors.items():
            if not all(path in matrices for _, paths in detector.meta.inputs for path in paths):
                continue
            raw = float(detector.anomaly_scores(assemble(matrices, detector.meta.inputs))[0])
            smoother = self._smoothers[name]
            smoothed = smoother.update(day, raw)
            if name in subsystems and smoothed == smoothed:  # not NaN
                subsystems[name] = SubsystemState(subsystems[name].health, min(smoothed, 1e6))
            code = DETECTOR_FAULT_CODES[name]
            if smoother.alerting and not any(f.code == code for f in faults):
                faults.append(FaultHypothesis(code, confidence=min(1.0, 0.5 + 0.25 * (smoothed - 1.0))))

    def _trigger(self, end_ms: int, anomalous: bool, health: dict[str, float]) -> Trigger | None:
        if anomalous:
            return Trigger.ANOMALY
        if self._last_sent_ms is None:
            return Trigger.HEARTBEAT
        if any(
            abs(h - self._last_health.get(name, h + 1.0)) > self.change_threshold
            for name, h in health.items()
        ):
            return Trigger.CHANGE
        if end_ms - self._last_sent_ms >= self.heartbeat_ms:
            return Trigger.HEARTBEAT
        return None
