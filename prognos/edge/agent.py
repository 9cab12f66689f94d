"""The agent's decision path, free of I/O: one window of samples in, a record (or nothing) out.

A record goes out when the vehicle shows an anomaly, when a subsystem's health moved by more
than `change_threshold` since the last record, and otherwise as a heartbeat every
`heartbeat_s`; never as a raw stream.

Every record carries the ambient temperature and humidity at the window's end (the latest
values, up to CONDITION_MAX_AGE_MS old). A record that reports a fault (trigger anomaly) also
carries the fault classifier's most likely causes, when the bundle has a classifier: it runs
only for those windows, so a heartbeat costs nothing more. Through windows that cannot show a
fault (its sensors asleep) the latest verdict stands (docs/gateway.md, "Causes and
conditions").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from prognos import __version__
from prognos.edge.detector import Bundle, Detector
from prognos.edge.features import FEATURE_NAMES, FloatArray, WindowFeatures, feature_matrix
from prognos.edge.inputs import MEAN, assemble
from prognos.edge.rules import assess
from prognos.edge.smoothing import ScoreSmoother
from prognos.edge.trend import DaysCalibration, DaysToThreshold, Trend
from prognos.record import (
    AMBIENT_RANGE_C,
    FAULT_CODE_PATTERN,
    HUMIDITY_RANGE_PCT,
    MAX_CAUSES,
    MAX_FAULT_CODE,
    Cause,
    DiagnosticRecord,
    FaultHypothesis,
    SubsystemState,
    Trigger,
)

RULES_MODEL_ID = "rules"
MS_PER_DAY = 86_400_000
DETECTOR_FAULT_CODES = {
    "battery": "battery.module_temperature_drift",
    "tires": "tires.pressure_loss",
    "brakes": "brakes.pad_wear",
    "bearings": "bearings.wheel_bearing_wear",
    "motor": "motor.noise",
}
# The fault classifier's classes (prognos/models/train.py: CLASSES) as the fault codes a record
# names; its healthy class is never a cause. A class not listed here (a newer bundle's) is named
# by itself when that is a valid fault code, else left out.
HEALTHY_CLASS = "none"
CLASSIFIER_FAULT_CODES = {
    "battery_drift": DETECTOR_FAULT_CODES["battery"],
    "tire_leak": DETECTOR_FAULT_CODES["tires"],
    "pad_wear": DETECTOR_FAULT_CODES["brakes"],
    "bearing_wear": DETECTOR_FAULT_CODES["bearings"],
    "motor_noise": DETECTOR_FAULT_CODES["motor"],
}
MIN_CAUSE_PROBABILITY = 0.01  # a class below this is no cause worth a line in the record
CAUSE_MAX_AGE_MS = 86_400_000  # how long a verdict stands through windows that cannot show the fault
AMBIENT_SIGNAL = "Vehicle.Exterior.AirTemperature"
HUMIDITY_SIGNAL = "Vehicle.Exterior.Humidity"
CONDITION_MAX_AGE_MS = 3_600_000  # a condition last seen longer ago than this is not known
_NOT_REPORTED = np.full(len(FEATURE_NAMES), np.nan)  # the features of a signal without samples
_NOT_REPORTED[0] = 0.0


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
        classifier: Detector | None = None,
        first_seq: int = 1,
    ) -> None:
        """With `detectors` (subsystem -> trained detector) their smoothed scores replace the
        rules' anomaly scores, and their alerts raise faults; the rules still give health and
        days-to-threshold. Without, the rules decide alone. With `classifier` (the fault
        classifier), records that report a fault carry its causes. Records are numbered from
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
        self._classifier: Detector | None = None
        self._verdict: tuple[int, tuple[Cause, ...]] | None = None  # (window end ms, causes)
        self._conditions: dict[str, tuple[int, float]] = {}  # path -> (window end ms, value)
        self.use_detectors(detectors or {}, model_id, model_version, days_calibration, classifier)

    def use_detectors(
        self,
        detectors: Mapping[str, Detector],
        model_id: str,
        model_version: str,
        days_calibration: Mapping[str, DaysCalibration] | None = None,
        classifier: Detector | None = None,
    ) -> None:
        """Run these detectors from the next window on (a model update); their scores start over.
        `days_calibration` (fault code -> calibration) corrects the trend's days-to-threshold;
        `classifier` names the causes of faults (None: records carry no causes)."""
        self._days_calibration = dict(days_calibration or {})
        self._classifier = classifier
        self._verdict = None
        self._detectors = dict(detectors)
        self._smoothers = {name: ScoreSmoother(tau_days=d.meta.tau_days) for name, d in detectors.items()}
        self.model_id = model_id
        self.model_version = model_version

    def use_bundle(self, bundle: Bundle) -> None:
        """Run a model bundle's detectors, under its id and version, from the next window on."""
        self.use_detectors(
            bundle.detectors, bundle.bundle_id, bundle.version, bundle.days_calibration, bundle.classifier
        )

    def window(
        self,
        start_ms: int,
        end_ms: int,
        samples: Mapping[str, tuple[FloatArray, FloatArray]],
        counters: Mapping[str, int],
    ) -> DiagnosticRecord | None:
        """Assess one window of samples (VSS path -> (times_s, values)); the record to send, if any.
        The conditions are the window's latest values."""
        for path in (AMBIENT_SIGNAL, HUMIDITY_SIGNAL):
            if path in samples:
                values = np.asarray(samples[path][1], dtype=np.float64)
                present = np.flatnonzero(np.isfinite(values))
                if present.size:
                    self._conditions[path] = (end_ms, float(values[present[-1]]))
        matrices = {path: feature_matrix(t, v) for path, (t, v) in samples.items()}
        return self._assess(start_ms, end_ms, matrices, counters)

    def window_features(
        self,
        start_ms: int,
        end_ms: int,
        matrices: Mapping[str, FloatArray],
        counters: Mapping[str, int],
    ) -> DiagnosticRecord | None:
        """The same, from the window's feature rows (VSS path -> features in FEATURE_NAMES order).
        Without the samples, the conditions are the window's means."""
        for path in (AMBIENT_SIGNAL, HUMIDITY_SIGNAL):
            if path in matrices and np.isfinite(matrices[path][MEAN]):
                self._conditions[path] = (end_ms, float(matrices[path][MEAN]))
        return self._assess(start_ms, end_ms, matrices, counters)

    def _assess(
        self,
        start_ms: int,
        end_ms: int,
        matrices: Mapping[str, FloatArray],
        counters: Mapping[str, int],
    ) -> DiagnosticRecord | None:
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
            causes=self._causes(end_ms, matrices) if trigger is Trigger.ANOMALY else (),
            ambient_c=self._condition(AMBIENT_SIGNAL, end_ms, AMBIENT_RANGE_C),
            humidity_pct=self._condition(HUMIDITY_SIGNAL, end_ms, HUMIDITY_RANGE_PCT),
        )

    def _causes(self, end_ms: int, matrices: Mapping[str, FloatArray]) -> tuple[Cause, ...]:
        """The classifier's causes of the window (classify). A window whose inputs were not all
        reported (the wheel and motor sensors sleep while parked) cannot show every fault, so
        its finding no cause is no verdict: the causes of the latest window that gave one stand,
        for up to CAUSE_MAX_AGE_MS."""
        if self._classifier is None:
            return ()
        causes, complete = classify(self._classifier, matrices)
        if causes or complete:
            self._verdict = (end_ms, causes)
            return causes
        if self._verdict is not None and end_ms - self._verdict[0] <= CAUSE_MAX_AGE_MS:
            return self._verdict[1]
        return ()

    def _condition(self, path: str, end_ms: int, valid: tuple[float, float]) -> float | None:
        """The latest value of a condition signal, if seen within CONDITION_MAX_AGE_MS and
        within the record's range for it."""
        seen = self._conditions.get(path)
        if seen is None or end_ms - seen[0] > CONDITION_MAX_AGE_MS:
            return None
        low, high = valid
        return seen[1] if low <= seen[1] <= high else None

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


def classify(classifier: Detector, matrices: Mapping[str, FloatArray]) -> tuple[tuple[Cause, ...], bool]:
    """The fault classifier on one window's feature rows (VSS path -> features), its inputs
    assembled as in its evaluation (prognos/models/pipeline.py, classifier_confusion): a signal
    without samples is missing, which the classifier reads as its training mean. Returns up to
    MAX_CAUSES fault classes as causes, the most likely first (not the healthy class, none below
    MIN_CAUSE_PROBABILITY), and whether every input was reported."""
    spec = classifier.meta.inputs
    inputs = {path: matrices.get(path, _NOT_REPORTED) for _, paths in spec for path in paths}
    row = assemble(inputs, spec)
    probabilities = classifier.class_probabilities(row)[0]
    ranked = sorted(zip(classifier.meta.classes, probabilities, strict=True), key=lambda cp: -cp[1])
    causes: dict[str, Cause] = {}
    for name, probability in ranked:
        code = CLASSIFIER_FAULT_CODES.get(name, name)
        if (
            name == HEALTHY_CLASS
            or not probability >= MIN_CAUSE_PROBABILITY
            or code in causes
            or len(code) > MAX_FAULT_CODE
            or not FAULT_CODE_PATTERN.fullmatch(code)
        ):
            continue
        causes[code] = Cause(code, min(float(probability), 1.0))
        if len(causes) == MAX_CAUSES:
            break
    return tuple(causes.values()), bool(np.isfinite(row).all())
