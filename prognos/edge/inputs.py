"""Model inputs: what each subsystem's detector sees, built from window features.

Sibling signals (the four battery modules, the four tires, the two front pads, the four wheel
bearings' RMS, kurtosis and defect energy) share their environment: ambient temperature, load
and road act on all of them at once. A fault acts on one. So each sibling's input is its
window mean minus the median of its siblings' means, and the group contributes its median
once; a drifting module or a leaking tire then stands out whatever the weather. A signal
without siblings (motor noise) enters as its mean.

Context conditions a detector but is not scored: speed, ambient temperature, usage (hard
braking: an aggressive driver is no fault), and each sibling
group's median, the level the weather, load and road set for all siblings at once (a cold
morning lowers every tire's pressure; that is no fault). The same code builds the inputs in
the agent and in training.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from prognos.catalog import Catalog
from prognos.edge.features import FEATURE_NAMES, FloatArray

MEAN = FEATURE_NAMES.index("mean")
CONTEXT = ("Vehicle.Speed", "Vehicle.Exterior.AirTemperature")
# Signals of a subsystem that describe how the vehicle is used, not its state: context too.
USAGE = ("Vehicle.Chassis.Brake.HardBrakingCount",)
MODELLED_SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")

# An input is (kind, signal paths): ("mean", (p,)), ("deviation", (p, *siblings)) or
# ("median", siblings).
Input = tuple[str, tuple[str, ...]]
INPUT_KINDS = ("mean", "deviation", "median")
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


def check_input(item: Input) -> None:
    """Raise ValueError for an input this code cannot build (a bundle from a newer release)."""
    kind, paths = item
    if kind not in INPUT_KINDS or not paths:
        raise ValueError(f"unknown model input {kind!r}")


def is_context(item: Input) -> bool:
    """Context inputs condition a detector; they are not scored (a highway trip is no fault)."""
    return item[0] == "median" or (item[0] == "mean" and item[1][0] in CONTEXT + USAGE)


def assemble(features: Mapping[str, FloatArray], spec: InputSpec) -> FloatArray:
    """Input vectors from per-signal feature matrices (path -> (..., len(FEATURE_NAMES))):
    shape (..., len(spec)); NaN where a signal had no samples in the window."""
    columns = []
    medians: dict[tuple[str, ...], FloatArray] = {}  # a group's siblings share one median
    for kind, paths in spec:
        if kind == "mean":
            columns.append(features[paths[0]][..., MEAN])
            continue
        group = paths if kind == "median" else paths[1:]
        median = medians.get(group)
        if median is None:
            median = medians[group] = np.median(
                np.stack([features[p][..., MEAN] for p in group], axis=-1), axis=-1
            )
        columns.append(median if kind == "median" else features[paths[0]][..., MEAN] - median)
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
