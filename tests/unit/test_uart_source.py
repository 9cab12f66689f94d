"""The UART source on a pseudo-terminal: frames and line noise written on the master side,
read through pyserial on the slave side as from a USB-serial adapter."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prognos.catalog import Catalog, default_catalog, load_catalog_text
from prognos.config import UartSourceConfig
from prognos.edge.buffers import Sample
from prognos.edge.sources import SampleSource, open_source
from prognos.edge.sources.uart import NodeDecoder, UartSource
from prognos.errors import ConfigError, TransientError
from prognos.link import CHANNEL_IDS, encode_features, encode_status

NOW_S = 1_790_000_000.0
RMS = CHANNEL_IDS["vib_rms"]
KURTOSIS = CHANNEL_IDS["vib_kurtosis"]
DEFECT = CHANNEL_IDS["vib_defect_db"]
PRESSURE = CHANNEL_IDS["pressure_kpa"]
LEFT_FRONT = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Bearing"
RIGHT_FRONT = "Vehicle.Chassis.Axle.Row1.Wheel.Right.Bearing"
STATUS = {
    "boot_count": 4,
    "reset_cause": 3,
    "mem_free": 90_112,
    "uptime_s": 3_600,
    "frames_sent": 360,
    "frames_dropped": 1,
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave device name) of a fresh pseudo-terminal."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        with contextlib.suppress(OSError):  # a test may have closed it already
            os.close(master)


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    with pty_pair() as pair:
        yield pair


def flip_last_data_bit(frame: bytes) -> bytes:
    """The frame with a bit flipped in the last byte before its closing 0x00 (a CRC byte,
    never a COBS code byte here: the frames below end in blocks longer than one byte)."""
    assert frame[-2] not in (0, 1)
    return frame[:-2] + bytes([frame[-2] ^ 0x01]) + frame[-1:]


def read_until(source: UartSource, done: int, timeout_s: float = 10.0) -> list[Sample]:
    """Read until `done` frames were seen (decoded or dropped)."""
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout_s
    while source.counters()["frames_seen"] < done:
        assert time.monotonic() < deadline, f"only {source.counters()} after {timeout_s} s"
        samples += source.read(0.05)
    return samples


def test_frames_with_noise_become_samples_and_counters(pty: tuple[int, str], catalog: Catalog) -> None:
    master, port = pty
    good = [
        encode_features(1, 10, 1_000, [(RMS, 0.5), (KURTOSIS, 3.0), (DEFECT, -20.0)]),
        # out of range (max 50 g), not finite, a channel the catalog lacks for node 2, an unknown id
        encode_features(
            2, 0, 1_000, [(RMS, 80.0), (KURTOSIS, math.nan), (PRESSURE, 101.3), (200, 1.0), (RMS, 1.5)]
        ),
        encode_features(9, 0, 1_000, [(RMS, 1.0)]),  # node 9 is not in the catalog
        encode_status(1, 11, **STATUS),
        encode_features(1, 14, 11_000, [(RMS, 0.75)]),  # seq 12 and 13 never arrived
        encode_features(1, 0, 5, [(KURTOSIS, 4.5)]),  # node 1 rebooted
    ]
    corrupted = flip_last_data_bit(encode_features(2, 1, 2_000, [(RMS, 9.0)]))
    stream = (
        b"\x13\x37" + good[0] + good[1] + good[2] + b"\xff\xfe\xfd" + corrupted + good[3] + good[4] + good[5]
    )

    with UartSource(port=port, catalog=catalog, clock=lambda: NOW_S) as source:
        samples: list[Sample] = []
        for at in range(0, len(stream), 7):  # the bytes arrive a few at a time
            os.write(master, stream[at : at + 7])
            samples += source.read(0.01)
        samples += read_until(source, done=len(good) + 3)

        assert samples == [
            Sample(f"{LEFT_FRONT}.VibrationRMS", NOW_S, 0.5),
            Sample(f"{LEFT_FRONT}.VibrationKurtosis", NOW_S, 3.0),
            Sample(f"{LEFT_FRONT}.DefectBandEnergy", NOW_S, -20.0),
            Sample(f"{RIGHT_FRONT}.VibrationRMS", NOW_S, 1.5),
            Sample(f"{LEFT_FRONT}.VibrationRMS", NOW_S, 0.75),
            Sample(f"{LEFT_FRONT}.VibrationKurtosis", NOW_S, 4.5),
        ]
        assert source.counters() == {
            "frames_seen": 9,
            "frames_ok": 6,
            "frames_bad": 3,  # noise before the first frame, noise after the third, the corrupted frame
            "bytes_skipped": 2 + 3 + len(corrupted) - 2,
            "frames_missed": 2,
            "node_restarts": 1,
            "values_unknown": 3,
            "values_out_of_range": 2,
        }
        assert source.nodes.link_errors()["crc"] == 1
        status = source.nodes.status[1]
        assert (status.boot_count, status.reset_cause, status.mem_free, status.frames_dropped) == (
            4,
            3,
            90_112,
            1,
        )
    assert source.finished
    assert source.read(0.01) == []


def test_iterating_yields_samples_until_closed(pty: tuple[int, str], catalog: Catalog) -> None:
    master, port = pty
    source = UartSource(port=port, catalog=catalog)
    as_agent_sees_it: SampleSource = source  # mypy checks that it meets the protocol
    assert not as_agent_sees_it.finished
    os.write(master, encode_features(3, 0, 0, [(RMS, 2.0), (KURTOSIS, 5.0)]))
    before = time.time()
    got = []
    for sample in source:
        got.append(sample)
        if len(got) == 2:
            source.close()
    assert [(s.path, s.value) for s in got] == [
        ("Vehicle.Chassis.Axle.Row2.Wheel.Left.Bearing.VibrationRMS", 2.0),
        ("Vehicle.Chassis.Axle.Row2.Wheel.Left.Bearing.VibrationKurtosis", 5.0),
    ]
    assert all(before <= s.timestamp_s <= time.time() for s in got)


def test_a_uart_entry_of_the_config_opens_a_source_dated_by_the_gateways_clock(
    pty: tuple[int, str], catalog: Catalog
) -> None:
    master, port = pty
    config = UartSourceConfig(port, baudrate=57_600)
    with open_source(config, catalog=catalog, clock=lambda: NOW_S) as source:
        assert isinstance(source, UartSource) and source.live
        assert (source.port, source.baudrate) == (port, 57_600)
        os.write(master, encode_features(1, 0, 1_000, [(RMS, 0.5)]))
        assert read_until(source, done=1) == [Sample(f"{LEFT_FRONT}.VibrationRMS", NOW_S, 0.5)]


def test_a_port_that_cannot_be_opened_is_a_config_error(tmp_path: Path, catalog: Catalog) -> None:
    with pytest.raises(
        ConfigError, match=r"cannot open sensor-node UART /nonexistent/ttyUSB9 at 115200 baud"
    ):
        UartSource(port="/nonexistent/ttyUSB9", catalog=catalog)
    not_a_tty = tmp_path / "not-a-tty"
    not_a_tty.write_bytes(b"")
    with pytest.raises(ConfigError, match="cannot open sensor-node UART"):
        UartSource(port=str(not_a_tty), catalog=catalog)


def test_a_bad_baud_rate_is_a_config_error(pty: tuple[int, str], catalog: Catalog) -> None:
    _, port = pty
    with pytest.raises(ConfigError, match="at -9600 baud"):
        UartSource(port=port, catalog=catalog, baudrate=-9600)


def test_a_port_in_use_is_a_config_error(pty: tuple[int, str], catalog: Catalog) -> None:
    _, port = pty
    with UartSource(port=port, catalog=catalog), pytest.raises(ConfigError, match="cannot open"):
        UartSource(port=port, catalog=catalog)


def test_a_port_that_goes_away_is_a_transient_error(pty: tuple[int, str], catalog: Catalog) -> None:
    master, port = pty
    with UartSource(port=port, catalog=catalog) as source:
        os.close(master)  # the adapter is unplugged: the slave side reads EIO
        with pytest.raises(TransientError, match=f"reading sensor-node UART {port} failed"):
            source.read(1.0)


@pytest.fixture
def low_descriptors_taken() -> Iterator[None]:
    """Every file descriptor below 1024 in use, as in a process running dozens of agents, so
    the next ones opened are numbered above 1023 (out of select()'s reach)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"this process may open only {hard} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    taken: list[int] = []
    try:
        while not taken or taken[-1] < 1023:
            taken.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_port_numbered_above_1023_is_read(low_descriptors_taken: None, catalog: Catalog) -> None:
    with pty_pair() as (master, port), UartSource(port=port, catalog=catalog, clock=lambda: NOW_S) as source:
        assert source._serial.fileno() > 1023
        assert source.read(0.01) == []  # nothing there: waits and returns, no ValueError from select()
        os.write(master, encode_features(1, 0, 1_000, [(RMS, 0.5)]))
        assert read_until(source, done=1) == [Sample(f"{LEFT_FRONT}.VibrationRMS", NOW_S, 0.5)]
        os.close(master)  # and a failure there is still the documented one
        with pytest.raises(TransientError, match=f"reading sensor-node UART {port} failed"):
            source.read(1.0)


def test_any_failure_of_a_read_is_a_transient_error(pty: tuple[int, str], catalog: Catalog) -> None:
    _, port = pty
    with UartSource(port=port, catalog=catalog) as source:
        # The port's descriptor now names a directory: reading it fails with IsADirectoryError.
        directory = os.open(os.path.dirname(__file__), os.O_RDONLY)
        try:
            os.dup2(directory, source._serial.fileno())
        finally:
            os.close(directory)
        with pytest.raises(TransientError, match="Is a directory"):
            source.read(1.0)

        class BrokenWait:  # a failure that is no OSError, as select() raised for a descriptor > 1023
            def poll(self, timeout_ms: int | None = None) -> list[tuple[int, int]]:
                raise ValueError("filedescriptor out of range in select()")

        source._poll = BrokenWait()  # type: ignore[assignment]
        with pytest.raises(TransientError, match="out of range"):
            source.read(0.01)
    assert source.read(0.01) == []  # closed: nothing, and no error


# --- the decoding half, without a port --------------------------------------------------------


def test_sequence_numbers_wrap_without_counting_a_restart(catalog: Catalog) -> None:
    nodes = NodeDecoder(catalog=catalog)
    stream = b"".join(encode_features(1, seq, 0, []) for seq in (0xFFFE, 0xFFFF, 0, 1, 3))
    stream += encode_features(1, 0xFFFD, 0, [])  # backwards: another restart, not 65,531 lost frames
    assert nodes.feed(stream, NOW_S) == []
    counters = nodes.counters()
    assert (counters["frames_ok"], counters["frames_missed"], counters["node_restarts"]) == (6, 1, 1)


def test_a_reboot_late_in_the_sequence_is_a_restart_not_a_gap(catalog: Catalog) -> None:
    nodes = NodeDecoder(catalog=catalog)
    nodes.feed(encode_features(2, 40_000, 0, []) + encode_features(2, 0, 0, []), NOW_S)
    assert (nodes.frames_missed, nodes.node_restarts) == (0, 1)  # not 25,535 frames lost


def test_sequence_gap_across_the_wrap(catalog: Catalog) -> None:
    nodes = NodeDecoder(catalog=catalog)
    nodes.feed(encode_features(4, 0xFFFE, 0, []) + encode_features(4, 2, 0, []), NOW_S)
    assert (nodes.frames_missed, nodes.node_restarts) == (3, 0)  # 0xFFFF, 0 and 1 were lost


def test_nodes_are_followed_separately(catalog: Catalog) -> None:
    nodes = NodeDecoder(catalog=catalog)
    nodes.feed(b"".join(encode_features(node, seq, 0, []) for seq in range(3) for node in (1, 2)), NOW_S)
    assert (nodes.frames_missed, nodes.node_restarts) == (0, 0)


def test_a_frame_split_across_reads_is_kept(catalog: Catalog) -> None:
    nodes = NodeDecoder(catalog=catalog)
    frame = encode_features(1, 0, 0, [(RMS, 0.25)])
    assert nodes.feed(frame[:9], NOW_S) == []
    assert nodes.pending == 8
    assert nodes.feed(frame[9:], NOW_S + 1) == [Sample(f"{LEFT_FRONT}.VibrationRMS", NOW_S + 1, 0.25)]


def test_a_catalog_without_node_channels_is_a_config_error() -> None:
    text = """
[[signal]]
path = "Vehicle.Speed"
unit = "km/h"
rate_hz = 1.0
min = 0.0
max = 250.0
subsystem = "drive"
"""
    with pytest.raises(ConfigError, match="no sensor-node channel"):
        NodeDecoder(catalog=load_catalog_text(text))
