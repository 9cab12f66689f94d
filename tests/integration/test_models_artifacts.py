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
from prognos.sim.fleet import make_fleet
from prognos.sim.vehicle import Fault, VehicleSpec

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
