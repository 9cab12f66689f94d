"""Held-out evaluation on simulated fleets: per fault type precision, recall, F1, lead time,
and false alarms per 1,000 vehicle-days, computed from alert episodes as the gateway raises them.

An episode starts when a subsystem's smoothed score reaches 1.0 (prognos.edge.smoothing). An episode
on a vehicle whose fault of that subsystem has started and not yet failed is a detection (the
first one counts, with lead time = failure day - episode day); any other episode is a false
alarm. A fault whose failure day lies inside the evaluated period and that got no detection
before failure is a miss. Faults still developing at the end of the period count neither way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from prognos.edge.detector import Detector
from prognos.edge.features import FloatArray
from prognos.edge.inputs import assemble
from prognos.edge.smoothing import ScoreSmoother
from prognos.edge.trend import DaysCalibration
from prognos.models.dataset import EPOCH_MS, FleetWindows
from prognos.models.train import FAULT_OF_SUBSYSTEM

FAULT_SUBSYSTEM = {kind: subsystem for subsystem, kind in FAULT_OF_SUBSYSTEM.items()}


@dataclass(frozen=True)
class Episode:
    vehicle: int
    subsystem: str
    day: float


@dataclass
class FaultTypeResult:
    fault_kind: str
    faults: int = 0
    detected: int = 0
    missed: int = 0
    false_alarms: int = 0
    lead_days: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return (
            self.detected / (self.detected + self.false_alarms)
            if self.detected + self.false_alarms
            else float("nan")
        )

    @property
    def recall(self) -> float:
        return self.detected / self.faults if self.faults else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def median_lead_days(self) -> float:
        return float(np.median(self.lead_days)) if self.lead_days else float("nan")


@dataclass
class Evaluation:
    vehicle_days: float
    by_fault: dict[str, FaultTypeResult]

    @property
    def false_alarms(self) -> int:
        return sum(r.false_alarms for r in self.by_fault.values())

    @property
    def false_alarms_per_1000_vehicle_days(self) -> float:
        return 1000.0 * self.false_alarms / self.vehicle_days


def subsystem_scores(data: FleetWindows, detectors: dict[str, Detector]) -> dict[str, FloatArray]:
    """Raw per-window anomaly scores of each subsystem's detector (NaN where inputs are missing)."""
    return {
        name: det.anomaly_scores(assemble(data.features, det.meta.inputs)) for name, det in detectors.items()
    }


def episodes(data: FleetWindows, scores: dict[str, FloatArray], tau_days: dict[str, float]) -> list[Episode]:
    found = []
    for subsystem, raw in scores.items():
        for v in np.unique(data.vehicle):
            rows = np.flatnonzero(data.vehicle == v)
            rows = rows[np.argsort(data.day[rows])]
            smoother = ScoreSmoother(tau_days=tau_days[subsystem])
            for i in rows:
                was = smoother.alerting
                smoother.update(float(data.day[i]), float(raw[i]))
                if smoother.alerting and not was:
                    found.append(Episode(int(v), subsystem, float(data.day[i])))
    return found


def evaluate(data: FleetWindows, found: list[Episode], days: float) -> Evaluation:
    by_fault = {kind: FaultTypeResult(kind) for kind in FAULT_OF_SUBSYSTEM.values()}
    first_detection: dict[tuple[int, str], float] = {}
    for ep in sorted(found, key=lambda e: e.day):
        kind = FAULT_OF_SUBSYSTEM[ep.subsystem]
        fault = next((f for f in data.specs[ep.vehicle].faults if f.kind == kind), None)
        if fault is not None and fault.onset_day <= ep.day <= fault.failure_day:
            first_detection.setdefault((ep.vehicle, kind), ep.day)
        elif fault is not None and ep.day > fault.failure_day:
            continue  # the part has failed: alerts after that are true, not false alarms
        else:
            by_fault[kind].false_alarms += 1
    for vehicle, spec in enumerate(data.specs):
        for fault in spec.faults:
            result = by_fault[fault.kind]
            detected_day = first_detection.get((vehicle, fault.kind))
            if fault.failure_day <= days:
                result.faults += 1
                if detected_day is None:
                    result.missed += 1
                else:
                    result.detected += 1
                    result.lead_days.append(fault.failure_day - detected_day)
    vehicle_days = len(data.specs) * days
    return Evaluation(vehicle_days, by_fault)


@dataclass
class DaysToFailureAccuracy:
    """How well the days-to-threshold the agent reports match the true days to failure."""

    reports: int
    vehicles: int
    median_abs_error_days: float
    median_relative_error: float
    interval_coverage: float  # share of reports whose 80% interval holds the truth


@dataclass(frozen=True)
class DaysReport:
    """One days-to-threshold the agent reported for a vehicle's fault, and the truth."""

    code: str
    days: float
    low: float | None
    high: float | None
    truth: float  # days from the report to the functional failure


def days_reports(
    data: FleetWindows, vehicles: list[int], calibration: Mapping[str, DaysCalibration] | None = None
) -> list[DaysReport]:
    """Replay `vehicles` through the agent's own assessor (with `calibration`) and collect every
    days-to-threshold it reports for the vehicle's fault before the failure."""
    from prognos.edge.agent import VehicleAssessor

    reports: list[DaysReport] = []
    for v in vehicles:
        fault = data.specs[v].faults[0]
        code_prefix = FAULT_SUBSYSTEM[fault.kind] + "."
        agent = VehicleAssessor(vin="EVAL0000000000000", heartbeat_s=1e9, days_calibration=calibration)
        rows = np.flatnonzero(data.vehicle == v)
        for i in rows[np.argsort(data.day[rows])]:
            end_ms = round(float(EPOCH_MS + data.day[i] * 86_400_000))
            record = agent.window_features(
                end_ms - 600_000, end_ms, {p: m[i] for p, m in data.features.items()}, {}
            )
            if record is None or data.day[i] > fault.failure_day:
                continue
            for reported in record.faults:
                if reported.code.startswith(code_prefix) and reported.days_to_threshold is not None:
                    truth = fault.failure_day - float(data.day[i])
                    reports.append(
                        DaysReport(
                            reported.code,
                            reported.days_to_threshold,
                            reported.days_low,
                            reported.days_high,
                            truth,
                        )
                    )
    return reports


def days_to_failure_accuracy(reports: list[DaysReport], vehicles: int) -> DaysToFailureAccuracy:
    if not reports:
        return DaysToFailureAccuracy(0, vehicles, float("nan"), float("nan"), float("nan"))
    errors = np.array([abs(r.days - r.truth) for r in reports])
    relative = errors / np.maximum([r.truth for r in reports], 1.0)
    covered = [r.low is not None and r.high is not None and r.low <= r.truth <= r.high for r in reports]
    return DaysToFailureAccuracy(
        len(reports), vehicles, float(np.median(errors)), float(np.median(relative)), float(np.mean(covered))
    )


MIN_CALIBRATION_REPORTS = 30


def fit_days_calibration(reports: list[DaysReport]) -> dict[str, DaysCalibration]:
    """Per fault code, quantiles of log(true days / reported days) over uncalibrated reports;
    codes with fewer than MIN_CALIBRATION_REPORTS reports get none."""
    by_code: dict[str, list[float]] = {}
    for r in reports:
        if r.days > 0:
            by_code.setdefault(r.code, []).append(math.log(max(r.truth, 0.1) / r.days))
    return {
        code: DaysCalibration(*(float(q) for q in np.quantile(ratios, [0.1, 0.5, 0.9])))
        for code, ratios in sorted(by_code.items())
        if len(ratios) >= MIN_CALIBRATION_REPORTS
    }


def format_report(
    evaluation: Evaluation,
    confusion: np.ndarray | None,
    fleet: str,
    days_to_failure: dict[str, DaysToFailureAccuracy] | None = None,
) -> str:
    """A Markdown report: the per-fault table, the false-alarm rate, the confusion matrix."""
    lines = [
        f"Held-out fleet: {fleet}; {evaluation.vehicle_days:.0f} vehicle-days.",
        "",
        "| fault type | faults | detected | missed | false alarms | precision | recall | F1 "
        "| median lead (days) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in evaluation.by_fault.values():
        lines.append(
            f"| {r.fault_kind} | {r.faults} | {r.detected} | {r.missed} | {r.false_alarms} | "
            f"{r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} | {r.median_lead_days:.1f} |"
        )
    lines += ["", f"False alarms per 1,000 vehicle-days: {evaluation.false_alarms_per_1000_vehicle_days:.2f}"]
    if days_to_failure:
        lines += [
            "",
            "Days to functional failure as the agent reports them (degradation trend, 80% interval):",
            "",
            "| fault type | vehicles | reports | median abs. error (days) | median rel. error "
            "| interval coverage |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for kind, acc in days_to_failure.items():
            lines.append(
                f"| {kind} | {acc.vehicles} | {acc.reports} | {acc.median_abs_error_days:.1f} | "
                f"{acc.median_relative_error:.2f} | {acc.interval_coverage:.2f} |"
            )
    if confusion is not None:
        from prognos.models.train import CLASSES

        lines += [
            "",
            "Classifier confusion (rows: true class, columns: predicted), labelled windows:",
            "",
            "| true \\ predicted | " + " | ".join(CLASSES) + " | recall |",
            "| --- |" + " ---: |" * (len(CLASSES) + 1),
        ]
        for i, name in enumerate(CLASSES):
            total = confusion[i].sum()
            recall = confusion[i, i] / total if total else float("nan")
            lines.append(f"| {name} | " + " | ".join(str(v) for v in confusion[i]) + f" | {recall:.3f} |")
    return "\n".join(lines)
