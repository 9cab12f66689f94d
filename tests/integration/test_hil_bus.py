"""The simulated vehicle's side of the wires: its own DBC and catalog, frames packed with numpy
that cantools and the agent's decoder read back to the simulator's values, the bench's sample
count that equals the agent decoder's, the bus sleeping while parked, node frames the link
decoder reads, and slcan frames the agent dates by its own clock.

In tests/integration though it starts no server: the bench runs over a pseudo-terminal and the
sample-count property take about five seconds, too long for tests/unit (under a minute)."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import can
import cantools
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.catalog import Catalog, DbcSource, default_catalog, load_catalog
from prognos.config import CanSourceConfig
from prognos.edge.buffers import Sample
from prognos.edge.sources import open_source
from prognos.edge.sources.can_bus import CanBusSource, CanDecoder, load_decoder
from prognos.hil.links import SlcanPty, VirtualCan
from prognos.hil.scenario import BENCH_CATALOG, BENCH_DBC
from prognos.hil.vehicle_bus import (
    AFTER_RUN_S,
    WAKE_BEFORE_S,
    Frames,
    SampleCounter,
    VehicleBus,
    WakeSchedule,
)
from prognos.link import CHANNEL_NAMES, FeaturesFrame, FrameDecoder
from prognos.sim.vehicle import Fault, Samples, VehicleSimulator, VehicleSpec

START_MS = 1_788_220_800_000  # 2026-09-01T00:00:00Z
Day = tuple[VehicleSimulator, Samples]
Database = cantools.database.Database


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(BENCH_CATALOG)


@pytest.fixture(scope="module")
def database() -> Database:
    db = cantools.database.load_file(BENCH_DBC, database_format="dbc")
    assert isinstance(db, cantools.database.Database)
    return db


@pytest.fixture(scope="module")
def day(catalog: Catalog) -> Day:
    spec = VehicleSpec(vin="PRGTEST0000000001", faults=(Fault("bearing_wear", 0.0, 2.0, target=1),))
    sim = VehicleSimulator(spec, catalog, seed=5, epoch_ms=START_MS)
    return sim, sim.windows(START_MS + np.arange(144) * 600_000, 600.0)


def test_the_bench_catalog_is_the_default_catalog_with_sources(catalog: Catalog, database: Database) -> None:
    default = default_catalog()
    assert list(catalog) == list(default)
    for path, signal in catalog.items():
        assert dataclasses.replace(signal, dbc=None, node=None) == dataclasses.replace(
            default[path], dbc=None, node=None
        )
        assert (signal.dbc is None) != (signal.node is None), path  # every signal has exactly one source
    assert {s.subsystem for s in catalog.values() if s.node} == {"bearings"}
    decoder = load_decoder(BENCH_DBC, catalog)  # every mapped DBC signal exists
    assert len(decoder.frame_ids) == len(database.messages)
    for message in database.messages:
        assert message.cycle_time in (1000, 10_000, 60_000)
        assert all(s.byte_order == "little_endian" for s in message.signals)


def test_frames_decode_to_the_simulated_values_within_a_dbc_step(
    catalog: Catalog, database: Database, day: Day
) -> None:
    _, samples = day
    bus = VehicleBus(database=database, catalog=catalog, boot_s=START_MS / 1000)
    frames = bus.can_frames(samples, None)
    assert np.all(np.diff(frames.times_s) >= 0)
    decoder = load_decoder(BENCH_DBC, catalog)
    checked = 0
    for i in range(0, len(frames), 97):
        message = frames.message(i)
        decoded = database.decode_message(message.arbitration_id, message.data)  # cantools agrees
        for sample in decoder.decode(message):
            times, values = samples[sample.path]
            (where,) = np.nonzero(times.reshape(-1) == sample.timestamp_s)
            truth = values.reshape(-1)[where[0]]
            signal = catalog[sample.path]
            assert signal.dbc is not None
            step = (
                database.get_message_by_name(signal.dbc.message).get_signal_by_name(signal.dbc.signal).scale
            )
            assert abs(sample.value - truth) <= step / 2 + 1e-9, sample.path
            assert decoded[signal.dbc.signal] == pytest.approx(sample.value)
            checked += 1
    assert checked > 500
    assert decoder.counters()["frames_bad"] == decoder.counters()["values_out_of_range"] == 0


def test_alive_counters_count_each_messages_frames(catalog: Catalog, database: Database, day: Day) -> None:
    _, samples = day
    bus = VehicleBus(database=database, catalog=catalog, boot_s=START_MS / 1000)
    frames = bus.can_frames(samples, None)
    speed = database.get_message_by_name("VCU_VehicleSpeed")
    rows = np.flatnonzero(frames.ids == speed.frame_id)[:40]
    counters = [speed.decode(bytes(frames.data[i, :4]))["VCU_Speed_AliveCounter"] for i in rows]
    assert counters == [i % 16 for i in range(40)]


def test_motor_noise_and_bearing_nodes_report_only_while_moving(
    catalog: Catalog, database: Database, day: Day
) -> None:
    sim, samples = day
    bus = VehicleBus(database=database, catalog=catalog, boot_s=START_MS / 1000)
    frames = bus.can_frames(samples, None)
    noise = database.get_message_by_name("MCU_Acoustic").frame_id
    status = database.get_message_by_name("MCU_Status").frame_id
    assert 0 < np.sum(frames.ids == noise) < np.sum(frames.ids == status) == 144 * 60
    nodes = bus.node_frames(samples, None)
    assert {n.node_id for n in nodes} == {1, 2, 3, 4}
    assert all(sim.speed_kmh(np.array([n.time_s]))[0] > 0 for n in nodes[:50])
    link = FrameDecoder()
    decoded = link.feed(b"".join(n.payload for n in nodes))
    assert len(decoded) == len(nodes) and link.frames_bad == 0
    first = decoded[0]
    assert isinstance(first, FeaturesFrame) and first.seq == 0
    names = {CHANNEL_NAMES[c] for c, _ in first.values}
    assert names == {"vib_rms", "vib_kurtosis", "vib_defect_db"}
    path = catalog.by_node[(first.node_id, "vib_rms")].path
    times, values = samples[path]
    (where,) = np.nonzero(times.reshape(-1) == nodes[0].time_s)
    rms = dict(first.values)[1]
    assert rms == pytest.approx(values.reshape(-1)[where[0]], rel=1e-6)  # float32 on the wire
    assert first.window_start_ms == math.floor((nodes[0].time_s - START_MS / 1000) * 1000)


def test_the_bus_sleeps_while_parked_and_wakes_around_trips(catalog: Catalog, day: Day) -> None:
    sim, _ = day
    start_s = START_MS / 1000
    wake = WakeSchedule.build(sim, start_s, start_s + 86_400)
    grid = np.arange(start_s, start_s + 86_400)
    moving = sim.speed_kmh(grid) > 0
    awake = wake(grid)
    assert awake[moving].all()
    first = int(np.argmax(moving))
    assert awake[first - int(WAKE_BEFORE_S)] and not awake[first - int(WAKE_BEFORE_S) - 2]
    last = len(moving) - 1 - int(np.argmax(moving[::-1]))
    assert awake[last + int(AFTER_RUN_S)] and not awake[last + int(AFTER_RUN_S) + 2]
    assert 0.02 < awake.mean() < 0.3  # a vehicle is parked most of the day


def counted_one_by_one(decoder: CanDecoder, frames: Frames) -> int:
    return sum(len(decoder.decode(frames.message(i))) for i in range(len(frames)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0xC1, 0x3A0, 0x3B0, 0x385, 0x4E0, 0x3C2, 0x3C3, 0x520, 0x521, 0x7FF]),
            st.integers(0, 8),
            st.binary(min_size=8, max_size=8),
        ),
        max_size=40,
    ),
    st.floats(0.5, 10.0),
)
def test_the_bench_counts_exactly_the_samples_the_agent_decodes(
    frames_spec: list[tuple[int, int, bytes]], scale: float
) -> None:
    # The agent's catalog may differ from the bench's (here: a wrong pressure scale that pushes
    # values out of range); the count follows the agent's.
    bench = load_catalog(BENCH_CATALOG)
    signals = [
        dataclasses.replace(s, dbc=dataclasses.replace(s.dbc, scale=scale))
        if s.dbc and s.subsystem == "tires"
        else s
        for s in bench.values()
    ]
    agent = Catalog(signals)
    db = cantools.database.load_file(BENCH_DBC, database_format="dbc")
    counter = SampleCounter(database=db, catalog=agent, decoder=load_decoder(BENCH_DBC, agent))
    n = len(frames_spec)
    frames = Frames(
        np.arange(n, dtype=np.float64) + 1.0,
        np.array([f[0] for f in frames_spec], dtype=np.int64),
        np.zeros(n, dtype=np.bool_),
        np.frombuffer(b"".join(f[2] for f in frames_spec), dtype=np.uint8).reshape(n, 8).copy(),
        np.array([f[1] for f in frames_spec], dtype=np.int64),
    )
    assert counter.count(frames) == counted_one_by_one(load_decoder(BENCH_DBC, agent), frames)


def test_a_message_the_counter_cannot_mirror_is_decoded_frame_by_frame(tmp_path: Path) -> None:
    dbc = tmp_path / "motorola.dbc"
    dbc.write_text('VERSION ""\nBS_:\nBU_: A\nBO_ 256 M: 2 A\n SG_ S : 7|16@0+ (0.5,0) [0|100] "" A\n')
    signals = [dataclasses.replace(s, dbc=None) for s in load_catalog(BENCH_CATALOG).values()]
    signals[0] = dataclasses.replace(signals[0], dbc=DbcSource("M", "S"))  # Vehicle.Speed, 0-250
    agent = Catalog(signals)
    db = cantools.database.load_file(dbc, database_format="dbc")
    counter = SampleCounter(database=db, catalog=agent, decoder=load_decoder(dbc, agent))
    data = np.zeros((3, 8), dtype=np.uint8)
    data[:, :2] = [
        [0, 10],
        [0x01, 0x90],
        [0xFF, 0xFF],
    ]  # big-endian: 5, 200 km/h, then 32767.5 (out of range)
    frames = Frames(np.array([1.0, 2, 3]), np.full(3, 256), np.zeros(3, dtype=bool), data, np.full(3, 2))
    assert counter.count(frames) == 2 == counted_one_by_one(load_decoder(dbc, agent), frames)


def test_frames_on_the_virtual_bus_keep_their_simulated_time(
    catalog: Catalog, database: Database, day: Day
) -> None:
    _, samples = day
    frames = VehicleBus(database=database, catalog=catalog, boot_s=START_MS / 1000).can_frames(samples, None)
    link = VirtualCan()
    receiver = can.Bus(interface="virtual", channel=link.channel)
    try:
        for i in range(5):
            link.send(frames.message(i))
        got = [receiver.recv(1.0) for _ in range(5)]
    finally:
        receiver.shutdown()
        link.close()
    assert [g.timestamp for g in got if g] == frames.times_s[:5].tolist()
    assert all(type(g) is can.Message for g in got)
    assert [bytes(g.data) for g in got if g] == [
        frames.data[i, : frames.lengths[i]].tobytes() for i in range(5)
    ]


def test_an_slcan_source_is_dated_by_the_gateways_clock(
    catalog: Catalog, database: Database, day: Day
) -> None:
    if not hasattr(os, "openpty"):
        pytest.skip("pseudo-terminals need a POSIX system")
    _, samples = day
    frames = VehicleBus(database=database, catalog=catalog, boot_s=START_MS / 1000).can_frames(samples, None)
    adapter = SlcanPty()
    clock_s = [START_MS / 1000 + 3600.0]
    config = CanSourceConfig(BENCH_DBC, interface="slcan", channel=adapter.port, bitrate=500_000)

    def clock() -> float:
        return clock_s[0]

    source = open_source(config, catalog=catalog, clock=clock)
    try:
        assert isinstance(source, CanBusSource) and source.dated_by is clock
        # A loaded machine may hand over the adapter's commands in more than one read.
        commands = adapter.drain()
        deadline = time.monotonic() + 10.0
        while b"O\r" not in commands and time.monotonic() < deadline:
            time.sleep(0.05)
            commands += adapter.drain()
        assert b"O\r" in commands  # python-can opened the "adapter"
        adapter.send(frames.message(0))
        got: list[Sample] = []
        deadline = time.monotonic() + 10.0
        while not got and time.monotonic() < deadline:
            got = source.read(0.1)
        assert got and {s.timestamp_s for s in got} == {clock_s[0]}
        assert source.counters()["frames_seen"] == 1 and not source.finished
    finally:
        source.close()
        adapter.close()
    assert source.finished
    virtual = open_source(
        CanSourceConfig(BENCH_DBC, interface="virtual", channel="x"), catalog=catalog, clock=time.time
    )
    # A virtual bus's sender sets the time.
    assert isinstance(virtual, CanBusSource) and virtual.dated_by is None
    virtual.close()
