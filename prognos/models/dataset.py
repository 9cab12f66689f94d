"""Simulated fleets as training and evaluation data: one row per vehicle window with the
edge's own window features and the ground truth of the fault behind it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prognos.catalog import Catalog
from prognos.edge.features import FloatArray, feature_matrix
from prognos.sim.vehicle import VehicleSimulator, VehicleSpec

MS_PER_DAY = 86_400_000
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: day 0 of every simulated fleet


@dataclass
class FleetWindows:
    """Parallel arrays, one entry per window, ordered by vehicle then time."""

    vehicle: np.ndarray  # index into specs
    day: FloatArray  # window end, days since EPOCH_MS
    features: dict[str, FloatArray]  # VSS path -> (n, len(FEATURE_NAMES))
    fault_kind: np.ndarray  # "" where the vehicle has no fault that has started
    severity: FloatArray  # 0 before onset, 1 at functional failure
    specs: list[VehicleSpec]

    def __len__(self) -> int:
        return int(self.day.size)


def window_starts(days: float, windows_per_day: int, window_s: float) -> np.ndarray:
    """Evenly spread window starts over `days`, the first one just after midnight of day 0."""
    step_ms = MS_PER_DAY / windows_per_day
    count = int(days * windows_per_day)
    return (EPOCH_MS + np.arange(count) * step_ms).astype(np.int64)


def simulate_fleet(
    specs: list[VehicleSpec],
    catalog: Catalog,
    *,
    seed: int,
    days: float,
    windows_per_day: int = 48,
    window_s: float = 600.0,
    progress: bool = False,
) -> FleetWindows:
    starts = window_starts(days, windows_per_day, window_s)
    end_day = (starts - EPOCH_MS) / MS_PER_DAY + window_s / 86_400.0
    parts: dict[str, list[FloatArray]] = {path: [] for path in catalog}
    vehicles, kinds, severities = [], [], []
    iterator = enumerate(specs)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(specs), desc="simulating", unit="vehicle")
    for index, spec in iterator:
        sim = VehicleSimulator(spec, catalog, seed=seed * 100_003 + index, epoch_ms=EPOCH_MS)
        samples = sim.windows(starts, window_s)
        for path, (times, values) in samples.items():
            parts[path].append(feature_matrix(times, values))
        vehicles.append(np.full(starts.size, index))
        kind = np.full(starts.size, "", dtype=object)
        severity = np.zeros(starts.size)
        for fault in spec.faults:
            started = end_day >= fault.onset_day
            kind[started] = fault.kind
            severity = np.maximum(severity, fault.severity(end_day))
        kinds.append(kind)
        severities.append(severity)
    return FleetWindows(
        vehicle=np.concatenate(vehicles),
        day=np.tile(end_day, len(specs)),
        features={path: np.concatenate(rows) for path, rows in parts.items()},
        fault_kind=np.concatenate(kinds),
        severity=np.concatenate(severities),
        specs=specs,
    )
