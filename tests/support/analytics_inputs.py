"""The check that two reads of the analytics inputs agree: tests/integration/test_analytics_job.py
(daily rollups against raw points) and benchmarks/analytics_fleet.py (the same on a large fleet)."""

from __future__ import annotations

import pandas as pd

from prognos.cloud.analytics.analyse import Inputs


def assert_same_inputs(ours: Inputs, theirs: Inputs) -> dict[str, int]:
    """The frames that come from stored records are equal, whatever order their rows came in;
    the rows of each, by name."""
    rows = {}
    for name in ("states", "last_seen", "faults", "fault_counts", "peaks", "baseline", "wear"):
        mine, other = getattr(ours, name), getattr(theirs, name)
        keys = [k for k in ("fleet", "vin", "subsystem", "code", "time") if k in mine.columns]
        if name in ("baseline", "peaks", "fault_counts"):
            keys = [k for k in keys if k != "time"]
        mine = mine.sort_values(keys).reset_index(drop=True)
        other = other[mine.columns].sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, other, check_dtype=False, rtol=1e-9, atol=1e-12, obj=name)
        rows[name] = len(mine)
    return rows
