"""firmware/config.py under CPython: node.json validated with defaults, and the boot counter.
(tests/integration/test_firmware_node.py runs the same module on MicroPython, on the node's flash.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from firmware import config
from prognos.link import CHANNELS

NAMES = [name for _, name, _ in CHANNELS]


def parse(data: Any) -> config.Config:
    return config.parse(json.dumps(data), NAMES)


def test_the_defaults_are_the_documented_ones() -> None:
    cfg = parse({})
    assert cfg.problems == []
    assert cfg.channels == NAMES
    defaults = {attr: default for _, _, attr, default, _, _, _ in config._SPECS}
    assert {attr: getattr(cfg, attr) for attr in defaults} == defaults
    assert (cfg.node_id, cfg.uart_id, cfg.uart_baud, cfg.sample_rate_hz, cfg.window_ms) == (
        1,
        2,
        115200,
        800,
        10000,
    )
    assert (cfg.status_every_s, cfg.wdt_ms) == (60, 10000)


def test_a_full_file_is_taken_as_written() -> None:
    data = {
        "node_id": 4,
        "uart": {"id": 1, "baud": 230400, "tx": 4, "rx": 5, "txbuf": 2048},
        "i2c": {"id": 1, "scl": 18, "sda": 19, "freq": 100000},
        "accel": {"addr": 0x1D, "axis": 0, "range_g": 8},
        "sample_rate_hz": 1600,
        "window_ms": 5000,
        "defect_hz": 61.25,
        "harmonics": 5,
        "channels": ["temp_max_c", "vib_rms"],
        "temp_probe": {"pin": 32, "offset_uv": 400000, "uv_per_unit": 19500},
        "pressure_probe": {"pin": 33, "offset_uv": 0, "uv_per_unit": 3300.5},
        "status_every_s": 30,
        "wdt_ms": 8000,
    }
    cfg = parse(data)
    assert cfg.problems == []
    assert cfg.channels == ["vib_rms", "temp_max_c"]  # in the order of the channel table
    assert (cfg.uart_id, cfg.uart_baud, cfg.uart_tx, cfg.uart_rx, cfg.uart_txbuf) == (1, 230400, 4, 5, 2048)
    assert (cfg.i2c_id, cfg.i2c_scl, cfg.i2c_sda, cfg.i2c_freq) == (1, 18, 19, 100000)
    assert (cfg.accel_addr, cfg.accel_axis, cfg.accel_range_g) == (0x1D, 0, 8)
    assert (cfg.sample_rate_hz, cfg.window_ms, cfg.defect_hz, cfg.harmonics) == (1600, 5000, 61.25, 5)
    assert (cfg.temp_pin, cfg.temp_offset_uv, cfg.temp_uv_per_unit) == (32, 400000, 19500)
    assert (cfg.pressure_pin, cfg.pressure_uv_per_unit) == (33, 3300.5)
    assert (cfg.status_every_s, cfg.wdt_ms, cfg.node_id) == (30, 8000, 4)
    assert parse(cfg.as_dict()).as_dict() == cfg.as_dict()  # as_dict() is a valid file


def test_a_uart_may_be_named() -> None:
    cfg = parse({"uart": {"id": "/dev/pts/7"}})
    assert (cfg.uart_id, cfg.problems) == ("/dev/pts/7", [])


@pytest.mark.parametrize(
    ("data", "attr", "default", "problem"),
    [
        ({"node_id": 256}, "node_id", 1, "node_id: must be an integer 0-255, not 256; using 1"),
        ({"node_id": True}, "node_id", 1, "node_id: must be an integer 0-255, not true; using 1"),
        (
            {"window_ms": "10s"},
            "window_ms",
            10000,
            'window_ms: must be an integer 100-60000, not "10s"; using 10000',
        ),
        (
            {"window_ms": 2.5},
            "window_ms",
            10000,
            "window_ms: must be an integer 100-60000, not 2.5; using 10000",
        ),
        ({"uart": {"id": 0}}, "uart_id", 2, "uart.id: must be an integer or a name 1-2, not 0; using 2"),
        ({"uart": {"id": ""}}, "uart_id", 2, 'uart.id: must be an integer or a name 1-2, not ""; using 2'),
        (
            {"uart": {"txbuf": 64}},
            "uart_txbuf",
            1024,
            "uart.txbuf: must be an integer 256-16384, not 64; using 1024",
        ),
        ({"defect_hz": -3}, "defect_hz", 87.5, "defect_hz: must be a number 0.1-10000.0, not -3; using 87.5"),
        ({"accel": {"axis": 3}}, "accel_axis", 2, "accel.axis: must be an integer 0-2, not 3; using 2"),
        (
            {"accel": {"range_g": 3}},
            "accel_range_g",
            16,
            "accel.range_g: must be 2, 4, 8 or 16, not 3; using 16",
        ),
        (
            {"sample_rate_hz": 1000},
            "sample_rate_hz",
            800,
            "sample_rate_hz: must be one of 25, 50, 100, 200, 400, 800, 1600, not 1000; using 800",
        ),
        (
            {"temp_probe": {"uv_per_unit": 0}},
            "temp_uv_per_unit",
            10000.0,
            "temp_probe.uv_per_unit: must not be 0; using 10000.0",
        ),
    ],
)
def test_a_wrong_value_takes_its_default_and_says_why(
    data: dict[str, Any], attr: str, default: object, problem: str
) -> None:
    cfg = parse(data)
    assert getattr(cfg, attr) == default
    assert cfg.problems == [problem]


def test_a_window_longer_than_the_buffer_is_shortened() -> None:
    cfg = parse({"sample_rate_hz": 1600, "window_ms": 60000})
    assert cfg.window_ms == 10240  # 16384 samples at 1600 Hz
    assert cfg.problems == ["window_ms: 60000 ms at 1600 Hz is more than 16384 samples; using 10240"]


def test_unknown_keys_and_channels_are_reported_and_ignored() -> None:
    cfg = parse({"colour": "red", "uart": {"baudrate": 9600}, "channels": ["vib_rms", "oil", 7]})
    assert cfg.channels == ["vib_rms"]
    assert cfg.uart_baud == 115200
    assert cfg.problems == [
        "unknown key colour, ignored",
        "unknown key uart.baudrate, ignored",
        'channels: unknown channel "oil", ignored',
        "channels: unknown channel 7, ignored",
    ]
    assert parse({"channels": []}).channels == NAMES
    assert parse({"channels": ["nothing"]}).channels == NAMES


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON, using the defaults"),
        ("[1, 2]", "not a JSON object, using the defaults"),
        ('{"uart": 5}', "uart: must be an object, using its defaults"),
    ],
)
def test_a_broken_file_means_defaults(text: str, problem: str) -> None:
    cfg = config.parse(text, NAMES)
    assert cfg.problems == [problem]
    assert cfg.as_dict() == parse({}).as_dict()


def test_load_reads_the_file_or_says_it_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    missing = config.load(str(path), NAMES)
    assert missing.problems == [f"{path}: cannot be read, using the defaults"]
    path.write_text(json.dumps({"node_id": 9}), encoding="utf-8")
    assert config.load(str(path), NAMES).node_id == 9


def test_the_boot_counter_counts_and_survives_a_bad_file(tmp_path: Path) -> None:
    path = str(tmp_path / "boot_count")
    assert config.read_boot_count(path) == 0
    assert [config.bump_boot_count(path) for _ in range(3)] == [1, 2, 3]
    assert (tmp_path / "boot_count").read_text() == "3"
    assert not (tmp_path / "boot_count.tmp").exists()
    (tmp_path / "boot_count").write_text("garbage")
    assert config.bump_boot_count(path) == 1
    (tmp_path / "boot_count").write_text("-4")
    assert config.bump_boot_count(path) == 1


def test_a_boot_counter_that_cannot_be_stored_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        config.bump_boot_count(str(tmp_path / "no-such-dir" / "boot_count"))
