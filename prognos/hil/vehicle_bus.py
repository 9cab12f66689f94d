"""The simulated vehicle's side of the wires: its signals as CAN frames packed with the vehicle's
own DBC (prognos/hil/dbc/prognos_sim.dbc), its wheel bearings' features as sensor-node link frames
(prognos/link.py), and when its buses are awake.

`VehicleBus` is built once per vehicle from the bench's catalog (which VSS path travels in which
DBC signal or node channel) and the DBC, and then turns the simulator's samples of a stretch of
time into frames: the CAN payloads of every message at once with numpy (Intel byte order, as
every signal of the bench DBC is; the tests check the packing against cantools), and one link
frame per node and report. It keeps what a real vehicle keeps from frame to frame: each
message's 4-bit alive counter and each node's sequence number.

A message goes out at the sample times of its signals (they share a rate) whenever all of its
values are known: the motor's acoustic level and the bearing nodes report only while the
vehicle moves (the simulator gives NaN otherwise), so their frames are only sent then. With
`bus_sleep`, nothing is sent while the vehicle is parked with the ignition off: the buses wake
WAKE_BEFORE_S before a trip and sleep AFTER_RUN_S after the vehicle stopped, as a real
vehicle's do; it cuts the traffic of a typical vehicle to about a tenth.

`SampleCounter` counts, for a batch of frames at once, the samples an agent's CAN decoder will
make of them, so the bench knows when the agent has taken everything it was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import can
import numpy as np
import numpy.typing as npt
from cantools.database import Database as DbcDatabase

from prognos.catalog import Catalog
from prognos.edge.features import FloatArray
from prognos.edge.sources.can_bus import CanDecoder
from prognos.errors import ConfigError
from prognos.hil.links import BenchFrame
from prognos.link import CHANNEL_IDS, encode_features
from prognos.sim.vehicle import Samples, VehicleSimulator

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U8Array = npt.NDArray[np.uint8]

WAKE_BEFORE_S = 60.0  # the buses wake this long before the vehicle moves (unlocked, ignition on)
AFTER_RUN_S = 300.0  # and stay awake this long after it stopped (the ECUs' after-run)
ALIVE_SUFFIX = "AliveCounter"  # a DBC signal so named counts its message's frames


@dataclass(frozen=True)
class _Field:
    """One DBC signal as the bench packs it: raw = round((value in catalog units - catalog
    offset) / catalog scale, then DBC physical -> raw), saturated to the DBC range and the bits."""

    name: str
    start: int
    length: int
    signed: bool
    scale: float
    offset: float
    minimum: float
    maximum: float
    path: str | None  # the catalog signal it carries, None for an alive counter or an unused one
    catalog_scale: float = 1.0
    catalog_offset: float = 0.0

    @property
    def alive(self) -> bool:
        return self.path is None and self.name.endswith(ALIVE_SUFFIX)

    def raw(self, values: FloatArray) -> npt.NDArray[np.uint64]:
        physical = np.clip((values - self.catalog_offset) / self.catalog_scale, self.minimum, self.maximum)
        raw = np.rint((physical - self.offset) / self.scale)
        low, high = (
            (-(2 ** (self.length - 1)), 2 ** (self.length - 1) - 1)
            if self.signed
            else (0, 2**self.length - 1)
        )
        counts = np.clip(raw, low, high).astype(np.int64)
        mask = np.uint64(2**self.length - 1)
        return (counts.astype(np.uint64) & mask) << np.uint64(self.start)


@dataclass(frozen=True)
class _Message:
    name: str
    frame_id: int
    extended: bool
    length: int
    fields: tuple[_Field, ...]
    paths: tuple[str, ...]  # catalog signals, in field order


@dataclass
class Frames:
    """CAN frames in time order: times, ids, payloads (rows of 8 bytes, `lengths` of them used)."""

    times_s: FloatArray
    ids: IntArray
    extended: BoolArray
    data: U8Array
    lengths: IntArray

    def __len__(self) -> int:
        return int(self.times_s.size)

    def message(self, i: int) -> can.Message:
        """Frame i as python-can sends it."""
        length = int(self.lengths[i])
        return BenchFrame(
            timestamp=float(self.times_s[i]),
            arbitration_id=int(self.ids[i]),
            is_extended_id=bool(self.extended[i]),
            dlc=length,
            data=self.data[i, :length].tobytes(),
        )

    def between(self, start_s: float, end_s: float) -> Frames:
        """The frames with start_s <= time < end_s."""
        lo, hi = np.searchsorted(self.times_s, (start_s, end_s), side="left")
        return Frames(
            self.times_s[lo:hi], self.ids[lo:hi], self.extended[lo:hi], self.data[lo:hi], self.lengths[lo:hi]
        )


@dataclass(frozen=True)
class NodeFrame:
    """One sensor-node link frame as sent, delimiters included."""

    time_s: float
    node_id: int
    payload: bytes


@dataclass
class _Node:
    node_id: int
    channels: tuple[tuple[int, str], ...]  # (channel id on the wire, catalog path)
    seq: int = 0


def empty_frames() -> Frames:
    return Frames(
        np.empty(0),
        np.empty(0, dtype=np.int64),
        np.empty(0, dtype=np.bool_),
        np.empty((0, 8), dtype=np.uint8),
        np.empty(0, dtype=np.int64),
    )


class VehicleBus:
    """One vehicle's frames. `boot_s` is when its sensor nodes started (their tick counters
    count from it)."""

    def __init__(self, *, database: DbcDatabase, catalog: Catalog, boot_s: float) -> None:
        self.messages = _plan_messages(database, catalog)
        self._alive = {m.frame_id: 0 for m in self.messages}
        self._nodes = _plan_nodes(catalog)
        self._boot_s = boot_s

    @property
    def paths(self) -> frozenset[str]:
        """The catalog signals the vehicle sends, on CAN or from its nodes."""
        can = {p for m in self.messages for p in m.paths}
        nodes = {path for node in self._nodes for _, path in node.channels}
        return frozenset(can | nodes)

    def can_frames(self, samples: Samples, awake: WakeSchedule | None) -> Frames:
        """The CAN frames carrying `samples` (path -> times, values of any shape), in time order."""
        parts: list[Frames] = []
        for message in self.messages:
            times = samples[message.paths[0]][0].reshape(-1)
            values = np.stack([samples[path][1].reshape(-1) for path in message.paths], axis=-1)
            keep = np.isfinite(values).all(axis=-1)
            if awake is not None:
                keep &= awake(times)
            count = int(keep.sum())
            if count == 0:
                continue
            times, values = times[keep], values[keep]
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[order]
            packed = np.zeros(count, dtype=np.uint64)
            column = 0
            for item in message.fields:
                if item.path is not None:
                    packed |= item.raw(values[:, column])
                    column += 1
                elif item.alive:
                    counter = (self._alive[message.frame_id] + np.arange(count)) % (2**item.length)
                    packed |= item.raw(counter.astype(np.float64))
            self._alive[message.frame_id] = (self._alive[message.frame_id] + count) % 2**16
            data = packed.astype("<u8").view(np.uint8).reshape(count, 8)
            parts.append(
                Frames(
                    times,
                    np.full(count, message.frame_id, dtype=np.int64),
                    np.full(count, message.extended, dtype=np.bool_),
                    data,
                    np.full(count, message.length, dtype=np.int64),
                )
            )
        if not parts:
            return empty_frames()
        times = np.concatenate([p.times_s for p in parts])
        order = np.argsort(times, kind="stable")
        return Frames(
            times[order],
            np.concatenate([p.ids for p in parts])[order],
            np.concatenate([p.extended for p in parts])[order],
            np.concatenate([p.data for p in parts])[order],
            np.concatenate([p.lengths for p in parts])[order],
        )

    def node_frames(self, samples: Samples, awake: WakeSchedule | None) -> list[NodeFrame]:
        """One features frame per node and report time at which all its channels have a value, in
        time order (a node whose wheel does not turn does not report)."""
        frames: list[NodeFrame] = []
        for node in self._nodes:
            times = samples[node.channels[0][1]][0].reshape(-1)
            values = np.stack([samples[path][1].reshape(-1) for _, path in node.channels], axis=-1)
            keep = np.isfinite(values).all(axis=-1)
            if awake is not None:
                keep &= awake(times)
            ids = [channel_id for channel_id, _ in node.channels]
            for i in np.flatnonzero(keep):
                t = float(times[i])
                ticks_ms = math.floor((t - self._boot_s) * 1000.0)
                payload = encode_features(
                    node.node_id, node.seq, ticks_ms, list(zip(ids, values[i].tolist(), strict=True))
                )
                node.seq = (node.seq + 1) % 2**16
                frames.append(NodeFrame(t, node.node_id, payload))
        frames.sort(key=lambda f: f.time_s)
        return frames


@dataclass
class WakeSchedule:
    """Whether the vehicle's buses are awake: from WAKE_BEFORE_S before the vehicle moves until
    AFTER_RUN_S after it stopped, judged on a 1-s grid of its true speed."""

    grid_start_s: float
    moving_before: IntArray = field(repr=False)  # moving seconds before each grid second

    @classmethod
    def build(cls, sim: VehicleSimulator, start_s: float, end_s: float) -> WakeSchedule:
        first = math.floor(start_s - AFTER_RUN_S) - 1
        last = math.ceil(end_s + WAKE_BEFORE_S) + 1
        grid = np.arange(first, last + 1, dtype=np.float64)
        moving = sim.speed_kmh(grid) > 0.0
        return cls(float(first), np.concatenate(([0], np.cumsum(moving, dtype=np.int64))))

    def __call__(self, times_s: FloatArray) -> BoolArray:
        n = self.moving_before.size - 1
        i = np.floor(np.asarray(times_s) - self.grid_start_s).astype(np.int64)
        lo = np.clip(i - int(AFTER_RUN_S), 0, n)
        hi = np.clip(i + int(WAKE_BEFORE_S) + 1, 0, n)
        awake: BoolArray = self.moving_before[hi] - self.moving_before[lo] > 0
        return awake


def _plan_messages(database: DbcDatabase, catalog: Catalog) -> tuple[_Message, ...]:
    by_message: dict[str, dict[str, tuple[str, float, float]]] = {}
    for (message_name, signal_name), signal in catalog.by_dbc.items():
        assert signal.dbc is not None
        by_message.setdefault(message_name, {})[signal_name] = (
            signal.path,
            signal.dbc.scale,
            signal.dbc.offset,
        )
    messages = {m.name: m for m in database.messages}
    plans: list[_Message] = []
    for name, mapped in sorted(by_message.items()):
        message = messages.get(name)
        if message is None:
            raise ConfigError(f"the bench DBC has no message {name}, which the bench catalog maps")
        if message.is_multiplexed() or message.length > 8:
            raise ConfigError(f"the bench packs classic CAN frames without multiplexing; {name} is not one")
        fields: list[_Field] = []
        for sig in message.signals:
            if sig.byte_order != "little_endian":
                raise ConfigError(f"the bench packs Intel (little-endian) signals; {name}.{sig.name} is not")
            path, catalog_scale, catalog_offset = mapped.get(sig.name, (None, 1.0, 0.0))
            fields.append(
                _Field(
                    sig.name,
                    sig.start,
                    sig.length,
                    bool(sig.is_signed),
                    float(sig.scale),
                    float(sig.offset),
                    -math.inf if sig.minimum is None else float(sig.minimum),
                    math.inf if sig.maximum is None else float(sig.maximum),
                    path,
                    catalog_scale,
                    catalog_offset,
                )
            )
        unknown = set(mapped) - {f.name for f in fields}
        if unknown:
            raise ConfigError(f"the bench DBC's {name} has no signal {sorted(unknown)[0]}")
        paths = tuple(f.path for f in fields if f.path is not None)
        if len({catalog[p].rate_hz for p in paths}) != 1:
            raise ConfigError(f"the signals the bench sends in {name} must share one rate")
        plans.append(
            _Message(
                name, message.frame_id, bool(message.is_extended_frame), message.length, tuple(fields), paths
            )
        )
    return tuple(plans)


def _plan_nodes(catalog: Catalog) -> tuple[_Node, ...]:
    channels: dict[int, list[tuple[int, str]]] = {}
    for (node_id, channel), signal in sorted(catalog.by_node.items()):
        if channel not in CHANNEL_IDS:
            raise ConfigError(
                f"the bench catalog maps node channel {channel!r}, which the link does not know"
            )
        channels.setdefault(node_id, []).append((CHANNEL_IDS[channel], signal.path))
    for node_id, chans in channels.items():
        if len({catalog[path].rate_hz for _, path in chans}) != 1:
            raise ConfigError(f"the channels of sensor node {node_id} must share one rate")
    return tuple(_Node(node_id, tuple(chans)) for node_id, chans in sorted(channels.items()))


@dataclass(frozen=True)
class _Reading:
    """One catalog signal as an agent decodes it: DBC field, then catalog scale, offset, range."""

    start: int
    length: int
    signed: bool
    scale: float
    offset: float
    catalog_scale: float
    catalog_offset: float
    low: float
    high: float

    def in_range(self, packed: npt.NDArray[np.uint64]) -> BoolArray:
        raw = ((packed >> np.uint64(self.start)) & np.uint64(2**self.length - 1)).astype(np.int64)
        if self.signed:
            raw = np.where(raw >= 2 ** (self.length - 1), raw - 2**self.length, raw)
        value = (raw * self.scale + self.offset) * self.catalog_scale + self.catalog_offset
        ok: BoolArray = np.isfinite(value) & (value >= self.low) & (value <= self.high)
        return ok


class SampleCounter:
    """How many samples an agent's CAN decoder makes of a batch of frames, counted at once.

    The bench must know how many samples each agent takes from what it sends (bench.py waits
    for them). Decoding every frame a second time with the agent's CanDecoder would cost as
    much as the agent's own work, so the count is computed with numpy from the agent's DBC and
    catalog: a frame of a mapped message with the DBC's length gives one sample per mapped
    signal whose value lies in the catalog's range, as CanDecoder.decode does. Messages this
    cannot mirror exactly (big-endian, multiplexed or floating-point signals, CAN FD lengths)
    are counted by decoding each frame with `decoder`. The tests hold both ways to CanDecoder.
    """

    def __init__(self, *, database: DbcDatabase, catalog: Catalog, decoder: CanDecoder) -> None:
        self._decoder = decoder
        self._vector: dict[tuple[int, bool], tuple[int, tuple[_Reading, ...]]] = {}
        self._exact: set[tuple[int, bool]] = set()
        messages = {m.name: m for m in database.messages}
        mapped: dict[str, list[tuple[str, float, float, float, float]]] = {}
        for (message_name, signal_name), signal in catalog.by_dbc.items():
            assert signal.dbc is not None
            mapped.setdefault(message_name, []).append(
                (signal_name, signal.dbc.scale, signal.dbc.offset, signal.min, signal.max)
            )
        for name, entries in mapped.items():
            message = messages[name]  # the agent's decoder has checked that it exists
            key = (message.frame_id, bool(message.is_extended_frame))
            signals = {s.name: s for s in message.signals}
            simple = message.length <= 8 and not message.is_multiplexed()
            readings = []
            for signal_name, scale, offset, low, high in entries:
                sig = signals[signal_name]
                simple = simple and sig.byte_order == "little_endian" and not sig.is_float
                readings.append(
                    _Reading(
                        sig.start,
                        sig.length,
                        bool(sig.is_signed),
                        float(sig.scale),
                        float(sig.offset),
                        scale,
                        offset,
                        low,
                        high,
                    )
                )
            if simple:
                self._vector[key] = (message.length, tuple(readings))
            else:
                self._exact.add(key)

    def count(self, frames: Frames) -> int:
        if not len(frames):
            return 0
        total = 0
        packed = frames.data.view("<u8").reshape(-1)
        for (frame_id, extended), (length, readings) in self._vector.items():
            rows = (frames.ids == frame_id) & (frames.extended == extended) & (frames.lengths == length)
            if rows.any():
                selected = packed[rows]
                total += sum(int(reading.in_range(selected).sum()) for reading in readings)
        for frame_id, extended in self._exact:
            for i in np.flatnonzero((frames.ids == frame_id) & (frames.extended == extended)):
                total += len(self._decoder.decode(frames.message(int(i))))
        return total
