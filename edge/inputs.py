"""Model inputs: which window features of which signals feed each subsystem's detector.

A subsystem's input vector is, in catalog order, the mean and standard deviation of each of
its own signals, then the context every subsystem needs to tell load from fault (speed and
ambient temperature). The same function builds it in the agent and in training.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.features import FEATURE_NAMES, FloatArray
from prognos.catalog import Catalog

SIGNAL_FEATURES = ("mean", "std")
CONTEXT = (
    ("Vehicle.Speed", "mean"),
    ("Vehicle.Speed", "std"),
    ("Vehicle.Exterior.AirTemperature", "mean"),
)
MODELLED_SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")

InputSpec = tuple[tuple[str, str], ...]


def input_spec(catalog: Catalog, subsystem: str) -> InputSpec:
    """The (signal path, feature name) pairs of one subsystem's input vector."""
    own = [(sig.path, name) for sig in catalog.subsystem(subsystem) for name in SIGNAL_FEATURES]
    if not own:
        raise ValueError(f"the catalog has no signals of subsystem {subsystem!r}")
    return (*own, *(pair for pair in CONTEXT if pair[0] in catalog))


def assemble(features: Mapping[str, FloatArray], spec: InputSpec) -> FloatArray:
    """Input vectors from per-signal feature matrices (path -> (..., len(FEATURE_NAMES))).
    Shape (..., len(spec)); NaN where a signal had no samples in the window."""
    columns = [features[path][..., FEATURE_NAMES.index(name)] for path, name in spec]
    return np.stack(columns, axis=-1)
