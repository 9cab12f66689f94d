"""`prognos models train` and `prognos models eval`: simulate, train, export, calibrate, write
artifacts with their model cards; and evaluate the artifacts on fleets from unseen seeds."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prognos.catalog import Catalog, default_catalog
from prognos.edge.detector import BUNDLE_FILE, DAYS_CALIBRATION_KEY, Detector, load_bundle
from prognos.edge.inputs import MODELLED_SUBSYSTEMS, assemble, describe
from prognos.models.dataset import FleetWindows, simulate_fleet
from prognos.models.evaluate import (
    DaysToFailureAccuracy,
    Evaluation,
    days_reports,
    days_to_failure_accuracy,
    episodes,
    evaluate,
    fit_days_calibration,
    subsystem_scores,
)
from prognos.models.train import (
    CLASSES,
    FAULT_OF_SUBSYSTEM,
    THRESHOLD_MARGIN,
    TrainedModel,
    classifier_labels,
    parity,
    train_autoencoder,
    train_classifier,
    write_artifact,
)
from prognos.sim.fleet import make_fleet

TRAIN_SEED = 100  # training fleets use seeds TRAIN_SEED, +1, +2; evaluation seeds start at EVAL_SEED
EVAL_SEED = 900
CALIBRATION_VEHICLES = 60  # days-to-threshold calibration: enough reports, a few minutes


@dataclass(frozen=True)
class TrainPlan:
    vehicles: int = 120
    days: float = 90.0
    windows_per_day: int = 72
    epochs: int = 40
    seed: int = TRAIN_SEED


def train_all(out: Path, plan: TrainPlan, *, progress: bool = True) -> dict[str, dict[str, float]]:
    """Train every model of the bundle into `out`; returns each model's metrics."""
    catalog = default_catalog()
    version = datetime.date.today().strftime("%Y.%m.%d")

    def fleet(seed: int, fault_share: float) -> FleetWindows:
        specs = make_fleet(plan.vehicles, seed=seed, fault_share=fault_share)
        return simulate_fleet(
            specs, catalog, seed=seed, days=plan.days, windows_per_day=plan.windows_per_day, progress=progress
        )

    healthy = fleet(plan.seed, 0.0)
    calibration = fleet(plan.seed + 1, 0.0)
    labelled = fleet(plan.seed + 2, 1.0)
    data_note = (
        f"simulated fleets, seeds {plan.seed} (healthy, {plan.vehicles} vehicles), {plan.seed + 1} "
        f"(healthy, calibration), {plan.seed + 2} (every vehicle with a fault, {plan.vehicles} vehicles); "
        f"{plan.days:g} days, {plan.windows_per_day} windows of 10 min per day"
    )
    metrics: dict[str, dict[str, float]] = {}
    names = []
    for subsystem in MODELLED_SUBSYSTEMS:
        trained = train_autoencoder(
            subsystem,
            catalog,
            healthy,
            calibration,
            seed=plan.seed,
            version=version,
            epochs=plan.epochs,
        )
        trained.metrics.update(parity(trained, assemble(calibration.features, trained.meta.inputs)))
        name = trained.meta.model_id
        write_artifact(out / name, trained, autoencoder_card(trained, data_note))
        metrics[name] = trained.metrics
        names.append(name)
    classifier = train_classifier(catalog, labelled, seed=plan.seed, version=version, epochs=plan.epochs)
    classifier.metrics.update(parity(classifier, assemble(calibration.features, classifier.meta.inputs)))
    write_artifact(out / classifier.meta.model_id, classifier, classifier_card(classifier, data_note))
    metrics[classifier.meta.model_id] = classifier.metrics
    names.append(classifier.meta.model_id)
    bundle = {
        "bundle_id": "prognos-default",
        "version": version,
        "models": names,
        DAYS_CALIBRATION_KEY: days_calibration(labelled, plan.days),
    }
    (out / BUNDLE_FILE).write_text(json.dumps(bundle, indent=1) + "\n")
    return metrics


def days_calibration(labelled: FleetWindows, days: float) -> dict[str, list[float]]:
    """The bundle's days-to-threshold calibration, measured on the labelled training fleet (its
    first CALIBRATION_VEHICLES vehicles whose fault fails within the simulated days)."""
    failing = [i for i, s in enumerate(labelled.specs) if s.faults and s.faults[0].failure_day <= days]
    failing = failing[:CALIBRATION_VEHICLES]
    fitted = fit_days_calibration(days_reports(labelled, failing))
    return {code: [c.log_q10, c.log_q50, c.log_q90] for code, c in fitted.items()}


def calibrate_days(directory: Path, plan: TrainPlan, *, progress: bool = True) -> dict[str, list[float]]:
    """Measure the days-to-threshold calibration on the training plan's labelled fleet and write
    it into an existing bundle's bundle.json (what `train_all` does at its end)."""
    specs = make_fleet(plan.vehicles, seed=plan.seed + 2, fault_share=1.0)
    labelled = simulate_fleet(
        specs,
        default_catalog(),
        seed=plan.seed + 2,
        days=plan.days,
        windows_per_day=plan.windows_per_day,
        progress=progress,
    )
    calibration = days_calibration(labelled, plan.days)
    manifest = json.loads((directory / BUNDLE_FILE).read_text())
    manifest[DAYS_CALIBRATION_KEY] = calibration
    (directory / BUNDLE_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return calibration


@dataclass
class EvalReport:
    evaluation: Evaluation
    classifier_confusion: np.ndarray | None
    vehicles: int
    days: float
    seed: int
    days_to_failure: dict[str, DaysToFailureAccuracy]


def evaluate_bundle(
    directory: Path,
    *,
    vehicles: int,
    days: float,
    seed: int = EVAL_SEED,
    windows_per_day: int = 48,
    progress: bool = True,
) -> EvalReport:
    catalog = default_catalog()
    loaded = load_bundle(directory)
    detectors, classifier = loaded.detectors, loaded.classifier
    data = simulate_fleet(
        make_fleet(vehicles, seed=seed),
        catalog,
        seed=seed,
        days=days,
        windows_per_day=windows_per_day,
        progress=progress,
    )
    scores = subsystem_scores(data, detectors)
    found = episodes(data, scores, {name: d.meta.tau_days for name, d in detectors.items()})
    confusion = None
    if classifier is not None:
        confusion = classifier_confusion(data, classifier, catalog)
    accuracy = {}
    for kind in FAULT_OF_SUBSYSTEM.values():
        failing = [
            i
            for i, s in enumerate(data.specs)
            if s.faults and s.faults[0].kind == kind and s.faults[0].failure_day <= days
        ]
        reports = days_reports(data, failing, loaded.days_calibration)
        accuracy[kind] = days_to_failure_accuracy(reports, len(failing))
    return EvalReport(evaluate(data, found, days), confusion, vehicles, days, seed, accuracy)


def classifier_confusion(data: FleetWindows, classifier: Detector, catalog: Catalog) -> np.ndarray:
    """Rows: true class, columns: predicted, over labelled windows."""
    labels = classifier_labels(data, catalog)
    keep = labels >= 0
    predicted = classifier.class_probabilities(assemble(data.features, classifier.meta.inputs)[keep]).argmax(
        axis=1
    )
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(confusion, (labels[keep], predicted), 1)
    return confusion


def autoencoder_card(trained: TrainedModel, data_note: str) -> str:
    meta, m = trained.meta, trained.metrics
    inputs = "\n".join(f"| {i + 1} | {describe(item)} |" for i, item in enumerate(meta.inputs))
    return f"""# Model card: {meta.model_id} {meta.version}

Anomaly detector for the **{meta.subsystem}** subsystem: a dense autoencoder
({len(meta.inputs)} inputs, bottleneck {max(2, len(meta.inputs) // 3)}), trained on normal operation only,
exported to TFLite with full int8 post-training quantisation (float32 input and output).

- Score: mean squared reconstruction error of the subsystem's own standardised inputs
  (speed and ambient temperature are context, not scored), divided by the threshold
  (1.0 = alert threshold), smoothed on the gateway with a time constant of {meta.tau_days} days.
- Threshold: {meta.threshold:.5g} = {THRESHOLD_MARGIN} x the highest smoothed daily error of the
  calibration fleet (healthy vehicles never seen in training), computed with the int8 model.
- Data: {data_note}. Training windows: {m["training_windows"]:.0f}.
- Calibration: {m["calibration_vehicle_days"]:.0f} vehicle-days; smoothed daily maximum p50
  {m["calibration_daily_max_p50"]:.4g}, p99 {m["calibration_daily_max_p99"]:.4g}.
- Parity, int8 TFLite against the Keras model on {m["parity_rows"]:.0f} calibration windows: score
  difference p50 {m["parity_score_abs_diff_p50"]:.4f}, p99 {m["parity_score_abs_diff_p99"]:.4f}
  (threshold units); alert decisions agree on {100 * m["parity_alert_agreement"]:.2f}% of windows.
- Held-out metrics: see docs/models.md (`prognos models eval`).
- Fault it watches for: `{FAULT_OF_SUBSYSTEM[meta.subsystem]}`.

| input | what |
| --- | --- |
{inputs}
"""


def classifier_card(trained: TrainedModel, data_note: str) -> str:
    meta, m = trained.meta, trained.metrics
    return f"""# Model card: {meta.model_id} {meta.version}

Fault classifier: a dense network ({len(meta.inputs)} inputs, 48 and 24 hidden units, softmax over
{len(meta.classes)} classes: {", ".join(meta.classes)}), exported to TFLite with int8 quantisation.

- Inputs: the union of the subsystem detectors' inputs, standardised; a missing input (a sensor
  that sleeps while parked) counts as its training mean.
- Labels: the fault kind for windows whose fault severity is at least 0.15, `none` for healthy
  vehicles and for faults not started; younger faults are left out of training. Classes are
  weighted by inverse frequency.
- Data: {data_note}. Training windows: {m["training_windows"]:.0f}.
- Parity, int8 TFLite against Keras on {m["parity_rows"]:.0f} windows: probability difference
  p99 {m["parity_probability_abs_diff_p99"]:.4f}; the top class agrees on
  {100 * m["parity_class_agreement"]:.2f}%.
- Held-out confusion matrix: docs/models.md (`prognos models eval`).
"""
