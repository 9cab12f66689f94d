"""Model inputs: what each subsystem's detector sees, built from window features.

Sibling signals (the four battery modules, the four tires, the two front pads, the four wheel
bearings' RMS, kurtosis and defect energy) share their environment: ambient temperature, load
and road act on all of them at once. A fault acts on one. So each sibling's input is its
window mean minus the median of its siblings' means, and the group contributes its median
once; a drifting module or a leaking tire then stands out whatever the weather. A signal
without siblings (motor noise) enters as its mean. Speed and ambient temperature are context
for every subsystem. The same code builds the inputs in the agent and in training.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.features import FEATURE_NAMES, FloatArray
from prognos.catalog import Catalog

MEAN = FEATURE_NAMES.index("mean")
CONTEXT = ("Vehicle.Speed", "Vehicle.Exterior.AirTemperature")
MODELLED_SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")

# An input is (kind, signal paths): ("mean", (p,)), ("deviation", (p, *siblings)) or
# ("median", siblings).
Input = tuple[str, tuple[str, ...]]
InputSpec = tuple[Input, ...]


def sibling_groups(catalog: Catalog, subsystem: str) -> list[tuple[str, ...]]:
    """The subsystem's signals grouped by their last path element (Temperature, Pressure, ...)."""
    groups: dict[str, list[str]] = {}
    for signal in catalog.subsystem(subsystem):
        groups.setdefault(signal.path.rsplit(".", 1)[1], []).append(signal.path)
    return [tuple(paths) for paths in groups.values()]


def input_spec(catalog: Catalog, subsystem: str) -> InputSpec:
    """The inputs of one subsystem's detector, in a fixed order."""
    groups = sibling_groups(catalog, subsystem)
    if not groups:
        raise ValueError(f"the catalog has no signals of subsystem {subsystem!r}")
    spec: list[Input] = []
    for group in groups:
        if len(group) == 1:
            spec.append(("mean", group))
            continue
        spec += [("deviation", (path, *group)) for path in group]
        spec.append(("median", group))
    spec += [("mean", (path,)) for path in CONTEXT if path in catalog]
    return tuple(spec)


def is_context(item: Input) -> bool:
    """Context inputs condition a detector; they are not scored (a highway trip is no fault)."""
    return item[0] == "mean" and item[1][0] in CONTEXT


def assemble(features: Mapping[str, FloatArray], spec: InputSpec) -> FloatArray:
    """Input vectors from per-signal feature matrices (path -> (..., len(FEATURE_NAMES))):
    shape (..., len(spec)); NaN where a signal had no samples in the window."""
    columns = []
    for kind, paths in spec:
        if kind == "mean":
            columns.append(features[paths[0]][..., MEAN])
            continue
        group = paths[1:] if kind == "deviation" else paths
        median = np.median(np.stack([features[p][..., MEAN] for p in group], axis=-1), axis=-1)
        columns.append(features[paths[0]][..., MEAN] - median if kind == "deviation" else median)
    return np.stack(columns, axis=-1)


SCALE_FLOOR_SHARE = 0.005


def scale_floors(catalog: Catalog, spec: InputSpec) -> FloatArray:
    """The least scale each input may be standardised by: 0.5% of its signal's catalog range.

    Siblings of a healthy vehicle can agree more closely than a real sensor resolves; without
    a floor, a tenth of a kPa between two tires would look like a fault."""
    return np.array(
        [SCALE_FLOOR_SHARE * (catalog[paths[0]].max - catalog[paths[0]].min) for _, paths in spec]
    )


def describe(item: Input) -> str:
    kind, paths = item
    if kind == "deviation":
        return f"mean of `{paths[0]}` minus the median of its {len(paths) - 1} siblings"
    if kind == "median":
        return f"median of the means of {len(paths)} `*.{paths[0].rsplit('.', 1)[1]}` signals"
    return f"mean of `{paths[0]}`"
