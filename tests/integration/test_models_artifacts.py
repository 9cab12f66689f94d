"""The committed model bundle: it loads on LiteRT, matches the current catalog, carries its
cards, and separates a developing fault from healthy vehicles.

In tests/integration though it starts no server: scoring simulated fleets and running the agent
on LiteRT take about five seconds, too long for tests/unit (under a minute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prognos.catalog import default_catalog
from prognos.edge.detector import load_bundle
from prognos.edge.inputs import MODELLED_SUBSYSTEMS, assemble, input_spec
from prognos.models.dataset import simulate_fleet
from prognos.models.train import FAULT_OF_SUBSYSTEM
from prognos.record import DiagnosticRecord
from prognos.sim.fleet import make_fleet
from prognos.sim.vehicle import Fault, Samples, VehicleSpec

BUNDLE = Path(__file__).resolve().parents[2] / "prognos" / "models" / "artifacts"
TARGETS = {"battery": 1, "tires": 2, "brakes": 0, "bearings": 3, "motor": 0}


def test_bundle_has_every_model_with_its_card_and_small_files() -> None:
    bundle = load_bundle(BUNDLE)
    assert set(bundle.detectors) == set(MODELLED_SUBSYSTEMS)
    assert bundle.classifier is not None
    names = [d.meta.model_id for d in bundle.detectors.values()] + [bundle.classifier.meta.model_id]
    for name in names:
        card = (BUNDLE / name / "card.md").read_text()
        assert card.startswith(f"# Model card: {name}")
        assert ("Parity" in card and "Threshold" in card) or "classifier" in name
        assert (BUNDLE / name / "model.tflite").stat().st_size < 100_000


def test_models_take_the_inputs_the_current_catalog_builds() -> None:
    detectors = load_bundle(BUNDLE).detectors
    catalog = default_catalog()
    for subsystem, detector in detectors.items():
        assert detector.meta.inputs == input_spec(catalog, subsystem), (
            f"{subsystem}: the catalog changed since training; retrain with `prognos models train`"
        )


@pytest.mark.parametrize("subsystem", MODELLED_SUBSYSTEMS)
def test_a_late_fault_scores_above_threshold_and_healthy_vehicles_below(subsystem: str) -> None:
    detectors = load_bundle(BUNDLE).detectors
    detector = detectors[subsystem]
    catalog = default_catalog()
    kind = FAULT_OF_SUBSYSTEM[subsystem]
    faulty = VehicleSpec(
        vin="LATEFAULT00000001", faults=(Fault(kind, -25.0, 3.0, target=TARGETS[subsystem]),)
    )
    healthy = [s for s in make_fleet(12, seed=777, fault_share=0.0) if not s.faults][:4]
    data = simulate_fleet([faulty, *healthy], catalog, seed=777, days=3, windows_per_day=96)
    scores = detector.anomaly_scores(assemble(data.features, detector.meta.inputs))
    fault_scores = scores[data.vehicle == 0]
    healthy_scores = scores[data.vehicle > 0]
    assert np.nanmedian(fault_scores[-96:]) > 1.0
    assert np.nanquantile(healthy_scores, 0.95) < 1.0


def test_agent_with_the_bundle_raises_the_fault_and_names_the_model() -> None:
    from prognos.edge.agent import VehicleAssessor
    from prognos.models.dataset import EPOCH_MS
    from prognos.sim.vehicle import VehicleSimulator

    bundle = load_bundle(BUNDLE)
    catalog = default_catalog()
    spec = VehicleSpec(vin="AGENTDRIFT0000001", faults=(Fault("battery_drift", -20.0, 2.0, target=1),))
    simulator = VehicleSimulator(spec, catalog, seed=5, epoch_ms=EPOCH_MS)
    agent = VehicleAssessor(
        vin=spec.vin, detectors=bundle.detectors, model_id=bundle.bundle_id, model_version=bundle.version
    )
    records = []
    for k in range(144):
        start = EPOCH_MS + k * 600_000
        record = agent.window(start, start + 600_000, simulator.window(start, 600.0), {})
        if record is not None:
            records.append(record)
    last = records[-1]
    assert (last.model_id, last.model_version) == (bundle.bundle_id, bundle.version)
    assert last.subsystems["battery"].anomaly_score > 1.0
    assert "battery.module_temperature_drift" in {f.code for f in last.faults}


def test_the_classifier_classes_are_the_fault_codes_records_name() -> None:
    from prognos.edge.agent import CLASSIFIER_FAULT_CODES, DETECTOR_FAULT_CODES, HEALTHY_CLASS
    from prognos.models.train import CLASS_NONE, CLASSES

    classifier = load_bundle(BUNDLE).classifier
    assert classifier is not None and classifier.meta.classes == CLASSES
    assert HEALTHY_CLASS == CLASS_NONE
    for subsystem, kind in FAULT_OF_SUBSYSTEM.items():
        assert CLASSIFIER_FAULT_CODES[kind] == DETECTOR_FAULT_CODES[subsystem]


def run_agent(spec: VehicleSpec, windows: int) -> list[tuple[DiagnosticRecord, Samples]]:
    """The records of the agent that `prognos edge run` builds (make_assessor with the committed
    bundle) over `windows` 10-minute windows of the simulated vehicle."""
    from prognos.edge.assembly import make_assessor
    from prognos.models.dataset import EPOCH_MS
    from prognos.sim.vehicle import VehicleSimulator

    simulator = VehicleSimulator(spec, default_catalog(), seed=5, epoch_ms=EPOCH_MS)
    agent = make_assessor(vin=spec.vin, heartbeat_s=3600.0, bundle=load_bundle(BUNDLE))
    records = []
    for k in range(windows):
        start = EPOCH_MS + k * 600_000
        samples = simulator.window(start, 600.0)
        record = agent.window(start, start + 600_000, samples, {})
        if record is not None:
            records.append((record, samples))
    return records


def test_the_agent_puts_the_classifier_causes_into_anomaly_records_only() -> None:
    from prognos.record import Trigger, decode_record, encode_record

    spec = VehicleSpec(vin="AGENTPADS00000001", faults=(Fault("pad_wear", -20.0, 3.0, target=0),))
    records = run_agent(spec, 144)
    anomalies = [r for r, _ in records if r.trigger == Trigger.ANOMALY]
    assert anomalies and all(r.faults for r in anomalies)
    assert all(r.causes == () for r, _ in records if r.trigger != Trigger.ANOMALY)
    last = anomalies[-1]
    assert "brakes.pad_wear" in {f.code for f in last.faults}
    assert last.causes[0].code == "brakes.pad_wear" and last.causes[0].probability > 0.5
    assert len(last.causes) <= 3 and "none" not in {c.code for c in last.causes}
    assert list(last.causes) == sorted(last.causes, key=lambda c: -c.probability)
    assert decode_record(encode_record(last)) == last
    for record, samples in records:  # the conditions: the window's latest values, on every record
        for path, value in (
            ("Vehicle.Exterior.AirTemperature", record.ambient_c),
            ("Vehicle.Exterior.Humidity", record.humidity_pct),
        ):
            assert value == pytest.approx(samples[path][1][-1], abs=1e-4)


def test_a_parked_window_keeps_the_cause_found_while_driving() -> None:
    """The wheel sensors sleep while parked: the classifier cannot see a bearing then, and the
    cause found on the last drive stands in the parked windows' records."""
    from prognos.record import Trigger

    spec = VehicleSpec(vin="AGENTBEARING00001", faults=(Fault("bearing_wear", -25.0, 3.0, target=3),))
    records = run_agent(spec, 144)
    wheel = "Vehicle.Chassis.Axle.Row2.Wheel.Right.Bearing.VibrationRMS"
    first_drive = next(i for i, (_, samples) in enumerate(records) if np.isfinite(samples[wheel][1]).any())
    parked = [
        r
        for r, samples in records[first_drive:]
        if r.trigger == Trigger.ANOMALY and not np.isfinite(samples[wheel][1]).any()
    ]
    assert len(parked) > 10, "the vehicle parks with the fault open"
    assert all(r.causes and r.causes[0].code == "bearings.wheel_bearing_wear" for r in parked)
