"""Bounded per-signal sample buffers and window cuts. Pure: numpy only, no I/O.

Each VSS path the buffers are built for gets a ring of fixed capacity that keeps its newest
samples sorted by time. Overflow drops the oldest samples and counts them
(`samples_dropped`); a sample for a path the buffers were not built for is counted
(`samples_unknown_path`) and dropped, and so is a sample whose time is not finite
(`samples_bad_time`). A sample older than the newest one held (a late sample) is merged
into its place, so a window never sees its samples out of order.

Single samples are staged in small lists and merged into the ring in batches of at most
STAGE_LIMIT, so appending one sample costs a few list operations; `extend` takes a batch of
one signal as arrays. A ring of capacity N stores its samples in 2N slots and slides them back
to the start when the end is reached, so a window cut is one contiguous slice found by binary
search.

`take_window(start_s, end_s)` returns path -> (times_s, values) over [start_s, end_s), the shape
`prognos.edge.agent.VehicleAssessor.window` takes. A path without a sample in the window is left out
(the feature code takes no empty arrays; the rules and detectors treat a missing signal as
not reported).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from prognos.edge.features import FloatArray

DEFAULT_CAPACITY = 4096
STAGE_LIMIT = 256

Window = dict[str, tuple[FloatArray, FloatArray]]


class Sample(NamedTuple):
    """One value of one signal: VSS path, time in seconds since the epoch, value in catalog units."""

    path: str
    timestamp_s: float
    value: float


class SignalRing:
    """The newest `capacity` samples of one signal, sorted by time (ties in arrival order)."""

    __slots__ = ("_hi", "_lo", "_stage_t", "_stage_v", "_times", "_values", "bad_time", "capacity", "dropped")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.dropped = 0
        self.bad_time = 0
        self._times: FloatArray = np.empty(2 * capacity, dtype=np.float64)
        self._values: FloatArray = np.empty(2 * capacity, dtype=np.float64)
        self._lo = 0
        self._hi = 0
        self._stage_t: list[float] = []
        self._stage_v: list[float] = []

    def __len__(self) -> int:
        self.flush()
        return self._hi - self._lo

    def append(self, timestamp_s: float, value: float) -> None:
        self._stage_t.append(timestamp_s)
        self._stage_v.append(value)
        if len(self._stage_t) >= STAGE_LIMIT:
            self.flush()

    def extend(self, times_s: npt.ArrayLike, values: npt.ArrayLike) -> None:
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if times.shape != vals.shape:
            raise ValueError(f"{times.size} times but {vals.size} values")
        self.flush()
        self._insert(times, vals)

    def flush(self) -> None:
        """Merge the staged single samples into the ring."""
        if self._stage_t:
            times = np.array(self._stage_t, dtype=np.float64)
            values = np.array(self._stage_v, dtype=np.float64)
            self._stage_t.clear()
            self._stage_v.clear()
            self._insert(times, values)

    def window(self, start_s: float, end_s: float) -> tuple[FloatArray, FloatArray]:
        """Copies of the samples with start_s <= time < end_s."""
        self.flush()
        lo, hi = self._lo, self._hi
        first, stop = np.searchsorted(self._times[lo:hi], (start_s, end_s), side="left")
        return self._times[lo + first : lo + stop].copy(), self._values[lo + first : lo + stop].copy()

    def discard_before(self, time_s: float) -> int:
        """Drop the samples older than time_s; how many were dropped (not counted as overflow)."""
        self.flush()
        count = int(np.searchsorted(self._times[self._lo : self._hi], time_s, side="left"))
        self._lo += count
        return count

    def _insert(self, times: FloatArray, values: FloatArray) -> None:
        finite = np.isfinite(times)
        if not finite.all():
            self.bad_time += int(times.size - finite.sum())
            times, values = times[finite], values[finite]
        if times.size == 0:
            return
        if times.size > 1 and bool((times[1:] < times[:-1]).any()):
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[order]
        lo, hi = self._lo, self._hi
        if hi > lo and times[0] < self._times[hi - 1]:
            # Late samples: merge them with the held samples that are newer than the earliest.
            k = lo + int(np.searchsorted(self._times[lo:hi], times[0], side="right"))
            times = np.concatenate((self._times[k:hi], times))
            values = np.concatenate((self._values[k:hi], values))
            order = np.argsort(times, kind="stable")  # held samples stay ahead of equal new ones
            times, values = times[order], values[order]
            hi = k
        n = times.size
        cap = self.capacity
        excess = (hi - lo) + n - cap
        if excess > 0:
            self.dropped += excess
            if n >= cap:
                times, values = times[n - cap :], values[n - cap :]
                lo = hi = 0
                n = cap
            else:
                lo += excess
        if hi + n > 2 * cap:
            size = hi - lo
            self._times[:size] = self._times[lo:hi]
            self._values[:size] = self._values[lo:hi]
            lo, hi = 0, size
        self._times[hi : hi + n] = times
        self._values[hi : hi + n] = values
        self._lo, self._hi = lo, hi + n


class SampleBuffers:
    """One SignalRing per VSS path, fixed at construction (normally the catalog's paths)."""

    def __init__(self, paths: Iterable[str], *, capacity_per_signal: int = DEFAULT_CAPACITY) -> None:
        self._rings = {path: SignalRing(capacity_per_signal) for path in paths}
        if not self._rings:
            raise ValueError("sample buffers need at least one signal path")
        self.capacity_per_signal = capacity_per_signal
        self.samples_unknown_path = 0

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self._rings)

    def __len__(self) -> int:
        """Samples held, all signals together."""
        return sum(len(ring) for ring in self._rings.values())

    def append(self, path: str, timestamp_s: float, value: float) -> None:
        ring = self._rings.get(path)
        if ring is None:
            self.samples_unknown_path += 1
            return
        ring.append(timestamp_s, value)

    def add(self, samples: Iterable[tuple[str, float, float]]) -> None:
        """Append samples of any signals, e.g. the list a source's read() returns."""
        rings = self._rings
        for path, timestamp_s, value in samples:
            ring = rings.get(path)
            if ring is None:
                self.samples_unknown_path += 1
            else:
                ring.append(timestamp_s, value)

    def extend(self, path: str, times_s: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Append a batch of one signal's samples (any order)."""
        ring = self._rings.get(path)
        if ring is None:
            self.samples_unknown_path += int(np.size(times_s))
            return
        ring.extend(times_s, values)

    def window(self, start_s: float, end_s: float) -> Window:
        """Copies of the samples with start_s <= time < end_s, for each signal that has any;
        the buffers keep them."""
        if not start_s <= end_s:
            raise ValueError(f"window start {start_s} is after its end {end_s}")
        window: Window = {}
        for path, ring in self._rings.items():
            times, values = ring.window(start_s, end_s)
            if times.size:
                window[path] = (times, values)
        return window

    def take_window(self, start_s: float, end_s: float) -> Window:
        """The window [start_s, end_s), then drop every sample older than start_s.

        Windows move forward, so a sample before this window's start belongs to no later one.
        The window's own samples stay until a later take, so windows may overlap.
        """
        window = self.window(start_s, end_s)
        self.discard_before(start_s)
        return window

    def discard_before(self, time_s: float) -> None:
        for ring in self._rings.values():
            ring.discard_before(time_s)

    def counters(self) -> dict[str, int]:
        """samples_dropped: lost to overflow before any window took them (a window interval
        too long for the capacity, or a burst); samples_bad_time: non-finite timestamps;
        samples_unknown_path: samples of signals the buffers were not built for."""
        rings = self._rings.values()
        for ring in rings:
            ring.flush()
        return {
            "samples_dropped": sum(ring.dropped for ring in rings),
            "samples_bad_time": sum(ring.bad_time for ring in rings),
            "samples_unknown_path": self.samples_unknown_path,
        }
