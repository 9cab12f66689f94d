"""CAN acquisition with the real Hyundai C-CAN DBC: decoding, counters, the live bus (virtual and
slcan over a pseudo-terminal), log replay in every format, and the errors for bad files; and the
SOURCES registry that opens every kind of source (can, replay, uart) from its config entry.

In tests/integration though it starts no server: the property runs over damaged logs and frames
and the real-time replay take about ten seconds, too long for tests/unit (under a minute)."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import can
import pytest
from cantools.database import Database as DbcDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prognos.catalog import Catalog, default_catalog, load_catalog_text
from prognos.config import SOURCE_KINDS, CanSourceConfig, ReplaySourceConfig
from prognos.edge.agent import VehicleAssessor
from prognos.edge.buffers import Sample, SampleBuffers
from prognos.edge.sources import SOURCES, describe_error, open_source, source_class
from prognos.edge.sources.can_bus import CanBusSource, CanDecoder, load_dbc, load_decoder
from prognos.edge.sources.replay import REPLAY_FORMATS, ReplaySource
from prognos.edge.sources.uart import UartSource
from prognos.errors import ConfigError, MissingDependencyError, TransientError

KPA_PER_PSI = 6.894757293168361
TPMS_ID = 0x593  # TPMS11 in the Hyundai C-CAN DBC
WHEEL_SPEED_ID = 0x386  # WHL_SPD11: in the DBC, not in the default catalog
TIRES = {
    "PRESSURE_FL": "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure",
    "PRESSURE_FR": "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure",
    "PRESSURE_RL": "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure",
    "PRESSURE_RR": "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure",
}
T0 = 1_700_000_000.0
CATALOG = default_catalog()


@pytest.fixture
def hyundai_dbc(shared_data: Path) -> Path:
    path = shared_data / "dbc" / "hyundai_2015_ccan.dbc"
    if not path.is_file():
        pytest.skip(f"the Hyundai DBC is not in the shared data ({path})")
    return path


@functools.cache
def cached_dbc(path: Path) -> DbcDatabase:
    return load_dbc(path)


@pytest.fixture
def database(hyundai_dbc: Path) -> DbcDatabase:
    return cached_dbc(hyundai_dbc)


@pytest.fixture
def decoder(database: DbcDatabase) -> CanDecoder:
    """A fresh decoder (its counters at 0) for the default catalog."""
    return CanDecoder(database=database, catalog=CATALOG)


@pytest.fixture
def channel() -> str:
    return f"prognos-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sender(channel: str) -> Iterator[can.BusABC]:
    bus = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    yield bus
    bus.shutdown()


def encode(database: DbcDatabase, name: str, **values: float) -> bytes:
    """The payload of message `name`, every signal not given at 0."""
    message = database.get_message_by_name(name)
    data: bytes = message.encode({s.name: values.get(s.name, 0) for s in message.signals})
    return data


def tpms_frame(database: DbcDatabase, timestamp_s: float, fl: int, fr: int, rl: int, rr: int) -> can.Message:
    """A TPMS11 frame with the four pressures in psi, every other signal at 0."""
    data = encode(database, "TPMS11", PRESSURE_FL=fl, PRESSURE_FR=fr, PRESSURE_RL=rl, PRESSURE_RR=rr)
    return can.Message(timestamp=timestamp_s, arbitration_id=TPMS_ID, is_extended_id=False, data=data)


def tire_samples(timestamp_s: float, fl: int, fr: int, rl: int, rr: int) -> list[Sample]:
    psi = {"PRESSURE_FL": fl, "PRESSURE_FR": fr, "PRESSURE_RL": rl, "PRESSURE_RR": rr}
    return [Sample(path, timestamp_s, psi[name] * KPA_PER_PSI) for name, path in TIRES.items()]


def read_samples(source: CanBusSource, count: int, timeout_s: float = 5.0) -> list[Sample]:
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout_s
    while len(samples) < count and time.monotonic() < deadline:
        samples += source.read(0.1)
    return samples


def mixed_frames(database: DbcDatabase) -> list[can.Message]:
    """Good, unknown (0x7FF, WHL_SPD11), bad (3 and 8 bytes, an error frame) and out-of-range
    frames, in time order."""
    good = tpms_frame(database, T0, 35, 36, 34, 33)
    return [
        good,
        can.Message(timestamp=T0 + 0.1, arbitration_id=0x7FF, is_extended_id=False, data=b"\x01\x02"),
        can.Message(  # in the DBC, no catalog signal
            timestamp=T0 + 0.2,
            arbitration_id=WHEEL_SPEED_ID,
            is_extended_id=False,
            data=encode(database, "WHL_SPD11", WHL_SPD_FL=50.0, WHL_SPD_FR=50.0),
        ),
        can.Message(
            timestamp=T0 + 0.3, arbitration_id=TPMS_ID, is_extended_id=False, data=bytes(good.data)[:3]
        ),
        can.Message(
            timestamp=T0 + 0.4, arbitration_id=TPMS_ID, is_extended_id=False, data=bytes(good.data) + b"\0\0"
        ),
        can.Message(timestamp=T0 + 0.5, is_error_frame=True),
        tpms_frame(database, T0 + 0.6, 255, 30, 31, 32),  # FL is 1758 kPa: out of range
        tpms_frame(database, T0 + 0.7, 34, 35, 33, 32),
    ]


MIXED_COUNTERS = {"frames_seen": 8, "frames_unknown": 2, "frames_bad": 3, "values_out_of_range": 1}


def mixed_samples() -> list[Sample]:
    return (
        tire_samples(T0, 35, 36, 34, 33)
        + tire_samples(T0 + 0.6, 255, 30, 31, 32)[1:]
        + tire_samples(T0 + 0.7, 34, 35, 33, 32)
    )


# --- decoding ---------------------------------------------------------------------------------


def test_the_dbc_gives_tpms_pressures_without_a_unit_so_the_catalog_converts_psi(
    database: DbcDatabase,
) -> None:
    catalog = default_catalog()
    for name in TIRES:
        signal = database.get_message_by_name("TPMS11").get_signal_by_name(name)
        assert (signal.unit or "", signal.scale, signal.offset, signal.length) == ("", 1, 0, 8)
        entry = catalog.by_dbc[("TPMS11", name)]
        assert entry.unit == "kPa"
        assert entry.dbc is not None and entry.dbc.scale == pytest.approx(KPA_PER_PSI)
    # A placard pressure of 35 psi is 241 kPa, near the rules' nominal 240 kPa.
    assert pytest.approx(241.3, abs=0.1) == 35 * KPA_PER_PSI


def test_a_tpms_frame_decodes_to_four_tire_pressures_in_kpa(
    database: DbcDatabase, decoder: CanDecoder
) -> None:
    samples = decoder.decode(tpms_frame(database, T0 + 1.5, 35, 36, 29, 33))
    assert samples == tire_samples(T0 + 1.5, 35, 36, 29, 33)
    assert samples[2].value == pytest.approx(199.948, abs=1e-3)
    assert decoder.counters() == {
        "frames_seen": 1,
        "frames_unknown": 0,
        "frames_bad": 0,
        "values_out_of_range": 0,
    }
    assert decoder.frame_ids == frozenset({(TPMS_ID, False)})


def test_catalog_value_is_the_dbc_physical_value_times_scale_plus_offset(
    database: DbcDatabase,
) -> None:
    catalog = load_catalog_text(
        """
[[signal]]
path = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed"
unit = "km/h"
rate_hz = 50.0
min = 0.0
max = 300.0
subsystem = "drive"
dbc = { message = "WHL_SPD11", signal = "WHL_SPD_FL" }

[[signal]]
path = "Vehicle.Exterior.AirTemperature"
unit = "celsius"
rate_hz = 1.0
min = -50.0
max = 60.0
subsystem = "environment"
dbc = { message = "EMS19", signal = "CF_Ems_ModeledAmbTemp", scale = 2.0, offset = -30.0 }
"""
    )
    decoder = CanDecoder(database=database, catalog=catalog)
    # WHL_SPD_FL: 14 bits at 0.03125 km/h per bit, so 87.5 km/h is raw 2800.
    wheel = can.Message(
        timestamp=T0,
        arbitration_id=WHEEL_SPEED_ID,
        is_extended_id=False,
        data=encode(database, "WHL_SPD11", WHL_SPD_FL=87.5),
    )
    assert wheel.data[0] | (wheel.data[1] & 0x3F) << 8 == 2800
    assert decoder.decode(wheel) == [Sample("Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed", T0, 87.5)]
    # CF_Ems_ModeledAmbTemp is raw * 0.5 - 41 in the DBC; the catalog then applies * 2 - 30.
    ems = database.get_message_by_name("EMS19")
    ambient = can.Message(
        timestamp=T0,
        arbitration_id=ems.frame_id,
        is_extended_id=False,
        data=encode(database, "EMS19", CF_Ems_ModeledAmbTemp=20.0),
    )
    assert decoder.decode(ambient) == [Sample("Vehicle.Exterior.AirTemperature", T0, 20.0 * 2.0 - 30.0)]
    assert decoder.frame_ids == frozenset({(WHEEL_SPEED_ID, False), (ems.frame_id, False)})


def test_unknown_bad_and_out_of_range_frames_are_counted_and_decoding_goes_on(
    database: DbcDatabase, decoder: CanDecoder
) -> None:
    extended = can.Message(
        timestamp=T0, arbitration_id=TPMS_ID, is_extended_id=True, data=bytes(6)
    )  # same number, other id space
    remote = can.Message(
        timestamp=T0, arbitration_id=TPMS_ID, is_extended_id=False, is_remote_frame=True, dlc=6
    )
    samples: list[Sample] = []
    for frame in [*mixed_frames(database), extended, remote]:
        samples += decoder.decode(frame)
    assert samples == mixed_samples()
    assert decoder.counters() == {**MIXED_COUNTERS, "frames_seen": 10, "frames_unknown": 4}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.lists(
        st.tuples(
            st.one_of(st.just(TPMS_ID), st.just(WHEEL_SPEED_ID), st.integers(0, 0x7FF)),
            st.booleans(),
            st.binary(max_size=8),
            st.sampled_from(["data", "remote", "error"]),
        ),
        max_size=20,
    )
)
def test_any_frame_is_decoded_or_counted_never_raised(
    decoder: CanDecoder, frames: list[tuple[int, bool, bytes, str]]
) -> None:
    before = decoder.counters()
    for arbitration_id, extended, data, kind in frames:
        frame = can.Message(
            timestamp=T0,
            arbitration_id=arbitration_id,
            is_extended_id=extended,
            data=None if kind == "remote" else data,
            is_remote_frame=kind == "remote",
            is_error_frame=kind == "error",
        )
        for sample in decoder.decode(frame):
            assert CATALOG[sample.path].in_range(sample.value)
    after = decoder.counters()
    assert after["frames_seen"] - before["frames_seen"] == len(frames)
    assert after["frames_bad"] - before["frames_bad"] >= sum(kind == "error" for *_, kind in frames)


# --- live buses -------------------------------------------------------------------------------


def test_frames_sent_on_a_virtual_bus_arrive_as_samples(
    database: DbcDatabase, decoder: CanDecoder, channel: str, sender: can.BusABC
) -> None:
    with CanBusSource(decoder=decoder, interface="virtual", channel=channel) as source:
        assert source.read(0.05) == []  # nothing sent yet: a timeout, not the end
        assert not source.finished
        for frame in mixed_frames(database):
            sender.send(frame)
        samples = read_samples(source, len(mixed_samples()))
        assert samples == mixed_samples()
        assert source.counters() == MIXED_COUNTERS
    assert source.finished
    assert source.read(0.0) == []


def _read_until(fd: int, wanted: bytes, timeout_s: float = 5.0) -> bytes:
    """What the adapter wrote to the terminal, read until `wanted` arrives: the commands may come
    in more than one read."""
    import select

    got = b""
    deadline = time.monotonic() + timeout_s
    while wanted not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            got += os.read(fd, 100)
    return got


def test_a_serial_slcan_adapter_over_a_pseudo_terminal(database: DbcDatabase, decoder: CanDecoder) -> None:
    if not hasattr(os, "openpty"):
        pytest.skip("pseudo-terminals need a POSIX system")
    import tty

    controller, device = os.openpty()
    try:
        tty.setraw(device)
        with CanBusSource(
            decoder=decoder,
            interface="slcan",
            channel=os.ttyname(device),
            bitrate=500_000,
            options={"sleep_after_open": 0},
        ) as source:
            commands = _read_until(controller, b"O\r")
            assert b"S6\r" in commands and b"O\r" in commands  # 500 kbit/s, channel opened
            payload = bytes(tpms_frame(database, 0.0, 32, 33, 34, 35).data)
            # slcan: t, 3 hex digits of id, length, payload in hex, CR; then one garbled line
            good = f"t{TPMS_ID:03X}{len(payload)}{payload.hex().upper()}\r".encode()
            # Garbled lines: cut short, a bad id, a bad payload digit, not text at all.
            os.write(controller, b"t59\r" + b"tXYZ6000000000000\r" + b"t7FF1G0\r" + b"t\xff\xfe\r")
            deadline = time.monotonic() + 5.0
            while source.counters()["frames_bad"] < 4 and time.monotonic() < deadline:
                assert source.read(0.1) == []
            # The bus still reads: an unknown id, then the TPMS frame.
            os.write(controller, b"t7FF100\r" + good)
            samples = read_samples(source, 4)
            assert [(s.path, s.value) for s in samples] == [
                (s.path, s.value) for s in tire_samples(0.0, 32, 33, 34, 35)
            ]
            assert abs(samples[0].timestamp_s - time.time()) < 60.0  # stamped on arrival
            assert source.counters() == {
                "frames_seen": 6,
                "frames_unknown": 1,
                "frames_bad": 4,
                "values_out_of_range": 0,
            }
    finally:
        os.close(controller)
        os.close(device)


def test_a_serial_adapter_that_goes_away_is_a_transient_error(decoder: CanDecoder) -> None:
    if not hasattr(os, "openpty"):
        pytest.skip("pseudo-terminals need a POSIX system")
    import tty

    controller, device = os.openpty()
    tty.setraw(device)
    name = os.ttyname(device)
    source = CanBusSource(decoder=decoder, interface="slcan", channel=name, options={"sleep_after_open": 0})
    try:
        os.close(controller)  # the adapter is unplugged: reads on the device now fail
        with pytest.raises(
            TransientError, match=rf"^reading CAN interface slcan channel {re.escape(name)} failed"
        ):
            for _ in range(50):
                source.read(0.05)
        assert source.counters()["frames_bad"] == 0
    finally:
        source.close()  # closing a dead adapter does not raise
        os.close(device)
    assert source.finished


@pytest.mark.parametrize(
    ("interface", "channel", "expected"),
    [
        ("nope", "x", "cannot open CAN interface nope channel x: python-can has no interface 'nope'"),
        (
            "slcan",
            "/nonexistent/ttyPROGNOS",
            "cannot open CAN interface slcan channel /nonexistent/ttyPROGNOS",
        ),
        ("socketcan", "prognoscan9", "cannot open CAN interface socketcan channel prognoscan9"),
    ],
)
def test_an_interface_that_cannot_be_opened_is_a_config_error(
    decoder: CanDecoder, interface: str, channel: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match="^" + expected) as info:
        CanBusSource(decoder=decoder, interface=interface, channel=channel)
    assert "\n" not in str(info.value)


# --- DBC and catalog errors -------------------------------------------------------------------


def test_a_missing_or_unreadable_dbc_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read DBC file .*absent\.dbc: No such file or directory$"):
        load_dbc(tmp_path / "absent.dbc")
    with pytest.raises(ConfigError, match=r"^cannot read DBC file .*: Is a directory$"):
        load_dbc(tmp_path)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"hello world\n", "line 1, column 1"),
        (b"", "line 1, column 1"),
        (bytes(range(256)) * 8, "line 1"),
        (b'VERSION ""\n\nBO_ 1427 TPMS11: x BCM\n', "line 3, column 18"),
    ],
    ids=["text", "empty", "binary", "bad-line"],
)
def test_a_malformed_dbc_is_a_config_error_naming_the_file(
    tmp_path: Path, content: bytes, where: str
) -> None:
    path = tmp_path / "vehicle.dbc"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_dbc(path)
    message = str(info.value)
    assert message.startswith(f"DBC file {path} is not a valid DBC database: ")
    assert where in message
    assert "\n" not in message and len(message) < 400


def test_a_dbc_without_the_catalogs_signals_is_a_config_error_naming_them(
    shared_data: Path, hyundai_dbc: Path, tmp_path: Path
) -> None:
    vw = shared_data / "dbc" / "vw_mqb.dbc"
    with pytest.raises(ConfigError) as info:
        load_decoder(vw, default_catalog())
    assert str(info.value) == (
        f"DBC file {vw} lacks signals the catalog maps: "
        + ", ".join(f"TPMS11.{name} (no message TPMS11)" for name in sorted(TIRES))
    )
    # A DBC cut short before TPMS11 loads, and lacks it.
    text = hyundai_dbc.read_text(encoding="cp1252")
    truncated = tmp_path / "truncated.dbc"
    truncated.write_text(text[: text.index("BO_ 1427 TPMS11")], encoding="cp1252")
    with pytest.raises(ConfigError, match=r"lacks signals the catalog maps: TPMS11\.PRESSURE_FL"):
        load_decoder(truncated, default_catalog())


def test_a_catalog_signal_missing_from_its_message_is_a_config_error(database: DbcDatabase) -> None:
    catalog = catalog_with_dbc("TPMS11", "PRESSURE_XX")
    with pytest.raises(
        ConfigError, match=r"^the DBC lacks signals the catalog maps: TPMS11.PRESSURE_XX \(no such"
    ):
        CanDecoder(database=database, catalog=catalog)


def test_a_catalog_without_dbc_signals_is_a_config_error(database: DbcDatabase) -> None:
    catalog = load_catalog_text(
        '[[signal]]\npath = "Vehicle.Speed"\nunit = "km/h"\nrate_hz = 1.0\nmin = 0.0\nmax = 250.0\n'
        'subsystem = "drive"\n'
    )
    with pytest.raises(ConfigError, match="maps no DBC signal"):
        CanDecoder(database=database, catalog=catalog)


def catalog_with_dbc(message: str, signal: str) -> Catalog:
    return load_catalog_text(
        f"""
[[signal]]
path = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"
unit = "kPa"
rate_hz = 0.1
min = 0.0
max = 600.0
subsystem = "tires"
dbc = {{ message = "{message}", signal = "{signal}" }}
"""
    )


# --- replay -----------------------------------------------------------------------------------


def write_log(path: Path, frames: list[can.Message]) -> Path:
    logger = can.Logger(path)
    for frame in frames:
        logger(frame)
    logger.stop()
    return path


# ASC stores the start time to the millisecond, the other formats to the microsecond or better.
TIME_TOLERANCE_S = {".asc": 1e-3, ".blf": 2e-6, ".csv": 2e-6, ".log": 2e-6}


@pytest.mark.parametrize("suffix", sorted(REPLAY_FORMATS))
def test_a_log_written_by_can_logger_replays_to_the_same_samples(
    database: DbcDatabase, hyundai_dbc: Path, tmp_path: Path, suffix: str
) -> None:
    frames = mixed_frames(database)
    path = write_log(tmp_path / f"drive{suffix}", frames)
    decoder = load_decoder(hyundai_dbc, default_catalog())
    with ReplaySource(path, decoder=decoder) as source:
        samples = list(source)
        assert source.finished
        assert source.frames_read == len(frames)
    expected = mixed_samples()
    assert [(s.path, s.value) for s in samples] == [(s.path, s.value) for s in expected]
    for got, want in zip(samples, expected, strict=True):
        assert got.timestamp_s == pytest.approx(want.timestamp_s, abs=TIME_TOLERANCE_S[suffix])
    assert decoder.counters() == MIXED_COUNTERS


def test_replay_in_real_time_keeps_the_recorded_pace(
    database: DbcDatabase, decoder: CanDecoder, tmp_path: Path
) -> None:
    frames = [tpms_frame(database, T0 + i * 0.2, 35, 35, 35, 35) for i in range(3)]
    frames.append(tpms_frame(database, T0 + 100.0, 30, 30, 30, 30))  # after a long pause
    path = write_log(tmp_path / "paced.log", frames)

    def replay_s(realtime: bool) -> tuple[float, list[Sample]]:
        started = time.monotonic()
        with ReplaySource(path, decoder=decoder, realtime=realtime, max_gap_s=0.3) as source:
            samples = list(source)
        return time.monotonic() - started, samples

    fast_s, fast = replay_s(realtime=False)
    paced_s, paced = replay_s(realtime=True)
    assert paced == fast and len(fast) == 16
    assert fast_s < 0.2
    assert 0.4 + 0.3 - 0.05 < paced_s < 5.0  # two 0.2 s steps, then the 99.6 s pause cut to 0.3 s


def test_replay_feeds_buffers_and_the_assessor_sees_a_leaking_tire(
    database: DbcDatabase, decoder: CanDecoder, tmp_path: Path
) -> None:
    # Ten minutes of TPMS at 0.1 Hz: three tires at 35 psi, the rear right one at 25 psi (172 kPa).
    frames = [tpms_frame(database, T0 + 10.0 * i, 35, 35, 35, 25) for i in range(60)]
    path = write_log(tmp_path / "leak.blf", frames)
    catalog = default_catalog()
    buffers = SampleBuffers(catalog, capacity_per_signal=256)
    with ReplaySource(path, decoder=decoder) as source:
        buffers.add(source)
    start_ms, end_ms = int(T0 * 1000), int((T0 + 600.0) * 1000)
    window = buffers.take_window(start_ms / 1000, end_ms / 1000)
    assert window[TIRES["PRESSURE_RR"]][1] == pytest.approx([25 * KPA_PER_PSI] * 60)
    assert set(window) == set(TIRES.values())  # signals without samples are left out
    record = VehicleAssessor(vin="KMHTEST0000000001").window(
        start_ms, end_ms, window, {**source.counters(), **buffers.counters()}
    )
    assert record is not None
    assert [fault.code for fault in record.faults] == ["tires.pressure_loss"]
    assert record.subsystems["tires"].health == 0.0  # 172 kPa is past the 180 kPa failure level
    assert record.counters["frames_seen"] == 60 and record.counters["samples_dropped"] == 0


def log_text(database: DbcDatabase) -> str:
    return "".join(
        f"({T0 + i:.6f}) vcan0 {TPMS_ID:03X}#{bytes(tpms_frame(database, 0.0, 35, 35, 35, 35).data).hex()}\n"
        for i in range(3)
    )


def test_a_log_truncated_in_a_payload_counts_a_bad_frame(
    database: DbcDatabase, decoder: CanDecoder, tmp_path: Path
) -> None:
    path = tmp_path / "cut.log"
    path.write_text(log_text(database)[:-6])  # the last payload loses 5 hex digits
    with ReplaySource(path, decoder=decoder) as source:
        samples = list(source)
    assert len(samples) == 8
    assert decoder.counters()["frames_bad"] == 1 and decoder.counters()["frames_seen"] == 3


def test_a_log_truncated_before_a_payload_is_a_config_error_after_the_good_frames(
    database: DbcDatabase, decoder: CanDecoder, tmp_path: Path
) -> None:
    text = log_text(database)
    path = tmp_path / "cut.log"
    path.write_text(text[: text.rindex("#")])  # the last line has no '#' and no payload
    samples: list[Sample] = []
    with (
        ReplaySource(path, decoder=decoder) as source,
        pytest.raises(
            ConfigError,
            match=rf"^replay log {re.escape(str(path))} is not a valid \.log file \(after frame 2\): ",
        ),
    ):
        for sample in source:
            samples.append(sample)
    assert len(samples) == 8  # the two whole frames were delivered
    assert source.finished


def test_a_truncated_asc_counts_its_cut_frame_as_bad(
    database: DbcDatabase, decoder: CanDecoder, tmp_path: Path
) -> None:
    frames = [tpms_frame(database, T0 + i, 35, 35, 35, 35) for i in range(3)]
    text = write_log(tmp_path / "full.asc", frames).read_text()
    last = text.rindex(" 6 ")  # the last frame line: "... d 6 00 00 23 23 23 23"
    path = tmp_path / "cut.asc"
    path.write_text(text[: last + len(" 6 00 00 23")])
    with ReplaySource(path, decoder=decoder) as source:
        samples = list(source)
    assert len(samples) == 8
    assert decoder.counters()["frames_bad"] == 1


@pytest.mark.parametrize("suffix", sorted(REPLAY_FORMATS))
@pytest.mark.parametrize(
    "content",
    [b"hello world\nthis is not a log\n", bytes(range(256)) * 8, b""],
    ids=["text", "binary", "empty"],
)
def test_a_garbage_log_is_a_config_error(
    decoder: CanDecoder, tmp_path: Path, suffix: str, content: bytes
) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info, ReplaySource(path, decoder=decoder) as source:
        list(source)
    message = str(info.value)
    kind = re.escape(suffix)
    why = rf"(is not a valid {kind} file|holds no CAN frame that the {kind} reader)"
    assert re.match(rf"replay log {re.escape(str(path))} {why}", message), message
    assert "\n" not in message


def test_replay_of_a_missing_file_or_unknown_format_is_a_config_error(
    decoder: CanDecoder, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read replay log .*absent\.log: no such file$"):
        ReplaySource(tmp_path / "absent.log", decoder=decoder)
    (tmp_path / "dir.log").mkdir()
    with pytest.raises(ConfigError, match="no such file"):
        ReplaySource(tmp_path / "dir.log", decoder=decoder)
    (tmp_path / "drive.trc").write_text("")
    with pytest.raises(
        ConfigError, match=r"unknown log format '\.trc'; replay reads \.asc, \.blf, \.csv, \.log$"
    ):
        ReplaySource(tmp_path / "drive.trc", decoder=decoder)
    with pytest.raises(ConfigError, match=r"unknown log format '\(no extension\)'"):
        ReplaySource(tmp_path / "drive", decoder=decoder)


@pytest.mark.parametrize("suffix", sorted(REPLAY_FORMATS))
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_damaged_log_replays_or_is_a_config_error_never_another_exception(
    database: DbcDatabase, decoder: CanDecoder, tmp_path: Path, suffix: str, data: st.DataObject
) -> None:
    original = tmp_path / f"original{suffix}"
    if not original.exists():
        write_log(original, mixed_frames(database))
    content = bytearray(original.read_bytes())
    cut = data.draw(st.integers(0, len(content)), label="cut")
    del content[cut:]
    for position in data.draw(st.lists(st.integers(0, max(0, len(content) - 1)), max_size=4), label="flips"):
        if content:
            content[position] = data.draw(st.integers(0, 255), label="byte")
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(bytes(content))
    try:
        with ReplaySource(damaged, decoder=decoder) as source:
            samples = list(source)
    except ConfigError as exc:
        assert str(exc).startswith(f"replay log {damaged} ")
    else:
        assert all(CATALOG[s.path].in_range(s.value) for s in samples)


# --- package ----------------------------------------------------------------------------------


def test_sources_are_found_by_name_and_imported_lazily() -> None:
    assert source_class("replay") is ReplaySource
    assert source_class("can") is CanBusSource
    assert source_class("uart") is UartSource
    assert set(SOURCES) == set(SOURCE_KINDS), "every kind a gateway.toml may name has its class"
    with pytest.raises(ConfigError, match=r"^unknown source 'nope'; choose one of can, replay, uart$"):
        source_class("nope")
    probe = (
        "import sys, prognos.edge.sources, prognos.edge.buffers; "
        "print(sorted(m for m in ('can', 'cantools', 'serial') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("kind", "modules", "missing"),
    [
        ("can", ("prognos.edge.sources.can_bus",), "python-can"),
        ("replay", ("prognos.edge.sources.replay", "prognos.edge.sources.can_bus"), "python-can"),
        ("uart", ("prognos.edge.sources.uart",), "pyserial"),
    ],
)
def test_a_source_whose_packages_are_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, kind: str, modules: tuple[str, ...], missing: str
) -> None:
    for package in ("can", "serial"):  # as if not installed: importing them fails
        monkeypatch.setitem(sys.modules, package, None)
    for module in modules:  # imported again, as on a gateway without the extra
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingDependencyError) as info:
        source_class(kind)
    assert str(info.value) == (
        f"the {kind} source needs {missing}, which is not installed: pip install 'prognos[edge]'"
    )


def test_a_config_entry_opens_its_kind_of_source(hyundai_dbc: Path, tmp_path: Path, channel: str) -> None:
    log = write_log(tmp_path / "drive.log", [])
    replay = open_source(ReplaySourceConfig(log, hyundai_dbc), catalog=CATALOG, clock=time.time)
    with replay:
        assert isinstance(replay, ReplaySource) and replay.path == log and not replay.live
    bus = open_source(CanSourceConfig(hyundai_dbc, "virtual", channel), catalog=CATALOG, clock=time.time)
    with bus:
        assert isinstance(bus, CanBusSource) and bus.live
        assert (bus.interface, bus.channel, bus.dated_by) == ("virtual", channel, None)
    with pytest.raises(ConfigError, match=f"^cannot read DBC file {re.escape(str(tmp_path / 'no.dbc'))}"):
        open_source(
            CanSourceConfig(tmp_path / "no.dbc", "virtual", channel), catalog=CATALOG, clock=time.time
        )


def test_foreign_errors_become_one_printable_line() -> None:
    assert describe_error(ValueError("bad\n  value\x07 here")) == "bad value\\x07 here"
    assert describe_error(KeyError()) == "KeyError"
    assert len(describe_error(ValueError("x" * 1000))) == 200
