"""A small train, int8 export and parity check (needs the `train` extra: TensorFlow). In
tests/integration though it starts no server: it trains real TensorFlow models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from prognos.catalog import default_catalog
from prognos.edge.detector import load_detector
from prognos.edge.inputs import assemble
from prognos.models.dataset import FleetWindows, simulate_fleet
from prognos.sim.fleet import make_fleet
from prognos.sim.vehicle import Fault, VehicleSpec

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="TensorFlow is not installed (pip install 'prognos[train]')",
)

# The stated parity tolerance of an int8 export against its float Keras model, in threshold
# units of the anomaly score: the median window within 0.05, alert decisions agreeing on 98%.
PARITY_MEDIAN = 0.05
PARITY_AGREEMENT = 0.98


@pytest.fixture(scope="module")
def fleets() -> tuple[FleetWindows, FleetWindows]:
    catalog = default_catalog()
    healthy = [s for s in make_fleet(16, seed=31, fault_share=0.0) if not s.faults][:8]
    calibration = [s for s in make_fleet(12, seed=32, fault_share=0.0) if not s.faults][:5]
    return (
        simulate_fleet(healthy, catalog, seed=31, days=8, windows_per_day=24),
        simulate_fleet(calibration, catalog, seed=32, days=8, windows_per_day=24),
    )


def test_autoencoder_trains_exports_int8_and_keeps_parity(
    fleets: tuple[FleetWindows, FleetWindows], tmp_path: Path
) -> None:
    from prognos.models.train import parity, train_autoencoder, write_artifact

    healthy, calibration = fleets
    catalog = default_catalog()
    trained = train_autoencoder("battery", catalog, healthy, calibration, seed=1, version="test", epochs=8)
    assert len(trained.tflite) < 50_000
    assert trained.meta.threshold > 0
    check = parity(trained, assemble(calibration.features, trained.meta.inputs))
    assert check["parity_score_abs_diff_p50"] <= PARITY_MEDIAN
    assert check["parity_alert_agreement"] >= PARITY_AGREEMENT

    write_artifact(tmp_path / "battery-ae", trained, "card")
    loaded = load_detector(tmp_path / "battery-ae")
    x = assemble(calibration.features, trained.meta.inputs)[:200]
    np.testing.assert_allclose(loaded.anomaly_scores(x), trained_scores(trained, x))

    # Calibrated on healthy vehicles, the detector stays quiet on them and fires on a drifting module.
    drifting = simulate_fleet(
        [VehicleSpec(vin="DRIFT000000000001", faults=(Fault("battery_drift", -20.0, 4.0, target=2),))],
        catalog,
        seed=33,
        days=4,
        windows_per_day=24,
    )
    drift_scores = loaded.anomaly_scores(assemble(drifting.features, loaded.meta.inputs))
    healthy_scores = loaded.anomaly_scores(x)
    assert np.nanmedian(drift_scores[-24:]) > 1.0 > np.nanmedian(healthy_scores)


def trained_scores(trained: object, x: np.ndarray) -> np.ndarray:
    from prognos.edge.detector import Detector
    from prognos.edge.litert import TfliteModel

    meta = trained.meta  # type: ignore[attr-defined]
    return Detector(meta, TfliteModel(trained.tflite)).anomaly_scores(x)  # type: ignore[attr-defined]


def test_classifier_trains_and_keeps_parity(fleets: tuple[FleetWindows, FleetWindows]) -> None:
    from prognos.models.train import CLASSES, parity, train_classifier

    catalog = default_catalog()
    faulty = simulate_fleet(
        make_fleet(10, seed=34, fault_share=1.0), catalog, seed=34, days=8, windows_per_day=24
    )
    trained = train_classifier(catalog, faulty, seed=1, version="test", epochs=5)
    assert trained.meta.classes == CLASSES
    check = parity(trained, assemble(fleets[1].features, trained.meta.inputs))
    # A barely trained model has near-ties between classes, where int8 rounding can flip the top one.
    assert check["parity_class_agreement"] >= 0.9
    assert check["parity_probability_abs_diff_p99"] <= 0.2
