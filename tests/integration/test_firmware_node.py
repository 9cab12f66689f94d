"""The sensor-node firmware (firmware/main.py) under the real MicroPython unix port, with the
hardware scripted by tests/support/micropython_shim/machine.py, its UART on a pseudo-terminal, and the
gateway's own UartSource reading the other end (tests/support/firmware_bench.py).

The shim's accelerometer plays a known bearing signal and its ADC known probe voltages, so each
window's features are known in advance from the numpy reference (tests/support/firmware_reference.py).

In tests/integration though it starts no server: booting the firmware on MicroPython again and
again takes a few seconds, and tests/unit stays under a minute.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prognos.catalog import Catalog, default_catalog
from prognos.link import CHANNEL_IDS, CHANNEL_NAMES, RESET_CAUSES, FeaturesFrame
from tests.support.firmware_bench import Bench, NodeRun
from tests.support.firmware_reference import (
    Counts,
    bearing_counts,
    probe_reference,
    vibration_reference,
)

NODE_ID = 2  # the right front wheel in the default catalog
BEARING = "Vehicle.Chassis.Axle.Row1.Wheel.Right.Bearing"
SAMPLE_RATE_HZ = 800
TICK_HZ = 50  # max(10, 800 // 16)
WINDOW_MS = 320
TICKS_PER_WINDOW = WINDOW_MS * TICK_HZ // 1000  # 16
SAMPLES_PER_WINDOW = SAMPLE_RATE_HZ * TICKS_PER_WINDOW // TICK_HZ  # 256
DEFECT_HZ = 87.5
HARMONICS = 3
TEMP_PIN, PRESSURE_PIN = 34, 35
TEMP_OFFSET_UV, TEMP_UV_PER_C = 500_000.0, 10_000.0
PRESSURE_OFFSET_UV, PRESSURE_UV_PER_KPA = 330_000.0, 2_640.0
F32_RTOL = 4 * float(np.finfo(np.float32).eps)
CAUSE = {name: number for number, name in RESET_CAUSES}
REGISTER = {"BW_RATE": "44", "POWER_CTL": "45", "DATA_FORMAT": "49", "FIFO_CTL": "56"}

# Three windows that differ: a healthy bearing, a defect tone with its harmonic, and impacts.
Z_COUNTS: Counts = np.concatenate(
    [
        bearing_counts(
            SAMPLES_PER_WINDOW, sample_rate_hz=SAMPLE_RATE_HZ, defect_hz=DEFECT_HZ, noise_g=0.02, seed=1
        ),
        bearing_counts(
            SAMPLES_PER_WINDOW,
            sample_rate_hz=SAMPLE_RATE_HZ,
            defect_hz=DEFECT_HZ,
            tone_g=0.15,
            harmonic_g=0.05,
            noise_g=0.02,
            seed=2,
        ),
        bearing_counts(
            SAMPLES_PER_WINDOW,
            sample_rate_hz=SAMPLE_RATE_HZ,
            defect_hz=DEFECT_HZ,
            impulse_g=2.0,
            noise_g=0.02,
            seed=3,
        ),
    ]
)
# One reading per tick: a warming brake (about 25-41 C) and a pressure that wobbles (~100 kPa).
TEMP_UV = [750_000 + 1_000 * i + 3_000 * (i % 5) for i in range(3 * TICKS_PER_WINDOW)]
PRESSURE_UV = [594_000 + 700 * ((7 * i) % 11) for i in range(2 * TICKS_PER_WINDOW)]


def node_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "node_id": NODE_ID,
        "uart": {"baud": 115200, "txbuf": 1024},
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "window_ms": WINDOW_MS,
        "defect_hz": DEFECT_HZ,
        "harmonics": HARMONICS,
        "temp_probe": {"pin": TEMP_PIN, "offset_uv": TEMP_OFFSET_UV, "uv_per_unit": TEMP_UV_PER_C},
        "pressure_probe": {
            "pin": PRESSURE_PIN,
            "offset_uv": PRESSURE_OFFSET_UV,
            "uv_per_unit": PRESSURE_UV_PER_KPA,
        },
        "status_every_s": 1,
        "wdt_ms": 5000,
    }
    config.update(changes)
    return config


def scenario(*, windows: int, reset_cause: int, **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ticks": windows * TICKS_PER_WINDOW,
        "reset_cause": reset_cause,
        "accel": {"addr": 0x53, "z_hex": Z_COUNTS.astype("<i2").tobytes().hex()},
        "adc": {str(TEMP_PIN): TEMP_UV, str(PRESSURE_PIN): PRESSURE_UV},
    }
    out.update(changes)
    return out


def cyclic(values: list[int] | Counts, start: int, n: int) -> np.ndarray:
    return np.asarray(values)[np.arange(start, start + n) % len(values)]


def expected_window(w: int) -> dict[str, float]:
    """Every channel's value for window w (0-based) of a run."""
    counts = cyclic(Z_COUNTS, w * SAMPLES_PER_WINDOW, SAMPLES_PER_WINDOW)
    values = vibration_reference(
        counts, sample_rate_hz=SAMPLE_RATE_HZ, defect_hz=DEFECT_HZ, harmonics=HARMONICS
    )
    low, mean, high = probe_reference(
        cyclic(TEMP_UV, w * TICKS_PER_WINDOW, TICKS_PER_WINDOW),
        offset_uv=TEMP_OFFSET_UV,
        uv_per_unit=TEMP_UV_PER_C,
    )
    _, pressure, _ = probe_reference(
        cyclic(PRESSURE_UV, w * TICKS_PER_WINDOW, TICKS_PER_WINDOW),
        offset_uv=PRESSURE_OFFSET_UV,
        uv_per_unit=PRESSURE_UV_PER_KPA,
    )
    values.update(temp_min_c=low, temp_mean_c=mean, temp_max_c=high, pressure_kpa=pressure)
    return values


def assert_value(got: float, want: float, where: str) -> None:
    if math.isnan(want):
        assert math.isnan(got), where
    elif where.endswith("vib_defect_db"):
        assert got == pytest.approx(want, abs=1e-4), where
    else:
        assert got == pytest.approx(want, rel=F32_RTOL, abs=1e-7), where


def assert_clean_run(run: NodeRun, ticks: int) -> None:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}\n{run.log}"
    assert run.stderr == ""
    assert run.record["ticks"] == ticks
    assert run.record["reset"] is False


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture
def bench(tmp_path: Path, catalog: Catalog) -> Iterator[Bench]:
    bench = Bench(tmp_path, catalog)
    yield bench
    bench.close()


def test_windows_reach_the_gateway_and_boots_are_counted(bench: Bench) -> None:
    windows = 6
    first = bench.run(config=node_config(), scenario=scenario(windows=windows, reset_cause=CAUSE["power_on"]))
    assert_clean_run(first, windows * TICKS_PER_WINDOW)
    assert first.counters["frames_bad"] == 0

    # Every window's nine values, computed on the node, equal the numpy reference.
    assert len(first.features) == windows
    for w, frame in enumerate(first.features):
        assert [channel for channel, _ in frame.values] == list(range(1, 10))
        expected = expected_window(w)
        for channel, value in frame.values:
            name = CHANNEL_NAMES[channel]
            assert_value(value, expected[name], f"window {w} {name}")

    # The gateway turned the channels its catalog maps for node 2 into samples of their VSS
    # paths; the other six channels of each window are counted, not emitted.
    mapped = {
        "vib_rms": "VibrationRMS",
        "vib_kurtosis": "VibrationKurtosis",
        "vib_defect_db": "DefectBandEnergy",
    }
    assert [s.path for s in first.samples] == [
        f"{BEARING}.{leaf}" for _ in range(windows) for leaf in mapped.values()
    ]
    for i, sample in enumerate(first.samples):
        name = list(mapped)[i % 3]
        assert_value(sample.value, expected_window(i // 3)[name], f"sample {i} {name}")
    assert first.counters["values_unknown"] == 6 * windows
    assert (first.counters["frames_missed"], first.counters["values_out_of_range"]) == (0, 0)

    # A status frame at boot and one per second of uptime, at the end of a window.
    boot_status = first.status[0]
    assert first.frames[0] == boot_status
    assert (boot_status.boot_count, boot_status.reset_cause) == (1, CAUSE["power_on"])
    assert (boot_status.uptime_s, boot_status.frames_sent, boot_status.frames_dropped) == (0, 0, 0)
    later = first.status[1:]
    assert [s.uptime_s for s in later] == [1]  # 6 windows of 0.32 s: the 4th ends past 1 s
    assert later[0].frames_sent == 1 + 4  # boot status and four windows before it
    assert bench.source.nodes.status[NODE_ID] == first.status[-1]
    assert [f.seq for f in first.frames] == list(range(len(first.frames)))

    # The hardware was driven as configured.
    record = first.record
    assert record["timer"] == {"id": 0, "freq": TICK_HZ, "period_us": 20_000}
    assert record["wdt"]["timeout_ms"] == 5000
    assert record["wdt"]["feeds"] == windows * TICKS_PER_WINDOW + windows  # each tick, and after computing
    assert record["wdt"]["longest_gap_us"] <= 20_000
    registers = record["accel"]["registers"]
    assert registers[REGISTER["BW_RATE"]] == 0x0D  # 800 Hz
    assert registers[REGISTER["DATA_FORMAT"]] == 0x0B  # full resolution, +-16 g
    assert registers[REGISTER["POWER_CTL"]] == 0x08  # measuring
    assert registers[REGISTER["FIFO_CTL"]] == 0x80  # stream mode
    assert (record["accel"]["popped"], record["accel"]["lost"]) == (windows * SAMPLES_PER_WINDOW, 0)
    (uart,) = record["uarts"]
    assert uart["path"] == bench.node_port
    assert uart["settings"]["baudrate"] == 115200
    assert uart["bytes_carried"] == len(first.wire)
    assert uart["writes_over_buffer"] == 0
    assert "boot 1 (power_on), node 2, 800 Hz, 320 ms windows" in first.log

    # The node restarts (after its watchdog fired): the counter on its flash goes on.
    second = bench.run(config=node_config(), scenario=scenario(windows=2, reset_cause=CAUSE["watchdog"]))
    assert_clean_run(second, 2 * TICKS_PER_WINDOW)
    assert (bench.flash / "boot_count").read_text() == "2"
    assert (second.status[0].boot_count, second.status[0].reset_cause) == (2, CAUSE["watchdog"])
    assert second.frames[0].seq == 0
    assert second.counters["node_restarts"] == 1  # the gateway saw the sequence start again
    assert_value(second.features[0].values[0][1], expected_window(0)["vib_rms"], "second boot vib_rms")
    assert "boot 2 (watchdog)" in second.log
    assert "boot 1 (power_on)" in second.log  # the log is kept across boots


def test_memory_stays_flat_and_the_sample_loop_does_not_allocate(bench: Bench) -> None:
    windows = 200
    run = bench.run(
        config=node_config(status_every_s=1),
        scenario=scenario(windows=windows, reset_cause=CAUSE["power_on"]),
    )
    assert_clean_run(run, windows * TICKS_PER_WINDOW)
    assert len(run.features) == windows

    # gc.mem_free() after each window's collection: after the first window, never lower.
    mem_free = [s.mem_free for s in run.status[1:]]
    assert len(mem_free) >= 60
    assert min(mem_free[1:]) >= mem_free[0] - 64, mem_free
    slope = float(np.polyfit(np.arange(len(mem_free)), mem_free, 1)[0])
    assert slope > -1.0, f"mem_free falls by {-slope:.1f} bytes per status frame: {mem_free}"

    # The heap grew between two ticks only in ticks that ended a window.
    alloc_ticks = run.record["alloc_ticks"]
    assert run.record["alloc_ticks_total"] == len(alloc_ticks)
    assert alloc_ticks, "the shim saw no allocation at all: the measurement is not working"
    assert all(tick % TICKS_PER_WINDOW == 0 for tick in alloc_ticks), alloc_ticks


def test_a_stalled_line_costs_frames_not_the_loop(bench: Bench) -> None:
    """The line takes no bytes for 20 windows (a gateway holding off a flow-controlled UART):
    the node drops the frames its transmit buffer cannot hold, keeps sampling, and says so."""
    windows = 30
    stall = [2 * TICKS_PER_WINDOW + 3, 22 * TICKS_PER_WINDOW + 3]
    run = bench.run(
        config=node_config(uart={"txbuf": 256}),
        scenario=scenario(windows=windows, reset_cause=CAUSE["power_on"], line_stall_ticks=stall),
    )
    assert_clean_run(run, windows * TICKS_PER_WINDOW)  # every tick ran: nothing blocked
    (uart,) = run.record["uarts"]
    assert uart["writes_over_buffer"] == 0  # never wrote more than the ESP32's buffer holds

    # Each status frame accounts for every frame built before it (its sequence number).
    for status in run.status:
        assert status.frames_sent + status.frames_dropped == status.seq
    last = run.status[-1]
    assert last.frames_dropped > 5
    # Dropped frames used up sequence numbers: the gateway counts exactly them as missed.
    assert run.counters["frames_missed"] == last.frames_dropped
    assert run.counters["frames_bad"] == 0
    # Every window was computed; those after the stall arrive, whole.
    assert len(run.features) + last.frames_dropped >= windows
    final = run.features[-1]
    assert isinstance(final, FeaturesFrame)
    for channel, value in final.values:
        name = CHANNEL_NAMES[channel]
        assert_value(value, expected_window(windows - 1)[name], f"after the stall, {name}")


def test_without_an_accelerometer_and_with_config_mistakes_the_node_still_reports(bench: Bench) -> None:
    windows = 3
    config = node_config(window_ms="long", channels=["vib_rms", "temp_mean_c", "pressure_kpa", "oil_level"])
    config["colour"] = "blue"
    run = bench.run(
        config=config,
        scenario=scenario(windows=windows, reset_cause=CAUSE["power_on"], accel=None, ticks=windows * 500),
    )
    assert_clean_run(run, windows * 500)  # window_ms fell back to its default, 10 s: 500 ticks
    assert "accelerometer: [Errno 19] ENODEV; running without vibration" in run.log
    assert 'node.json: window_ms: must be an integer 100-60000, not "long"; using 10000' in run.log
    assert 'node.json: channels: unknown channel "oil_level", ignored' in run.log
    assert "node.json: unknown key colour, ignored" in run.log
    assert len(run.features) == windows
    for frame in run.features:
        channels = {CHANNEL_NAMES[c]: v for c, v in frame.values}
        assert list(channels) == ["vib_rms", "temp_mean_c", "pressure_kpa"]
        assert math.isnan(channels["vib_rms"])
        assert 25.0 < channels["temp_mean_c"] < 45.0
        assert channels["pressure_kpa"] == pytest.approx(
            (np.mean(PRESSURE_UV) - PRESSURE_OFFSET_UV) / PRESSURE_UV_PER_KPA, rel=1e-3
        )
    assert run.counters["values_out_of_range"] == windows  # the gateway drops the NaN RMS
    assert CHANNEL_IDS["vib_rms"] == run.features[0].values[0][0]


def test_the_default_config_fits_and_runs(bench: Bench) -> None:
    """node.json with the UART only: 10 s windows of 8000 samples at 800 Hz."""
    ticks = 2 * 500
    run = bench.run(config={}, scenario=scenario(windows=0, reset_cause=CAUSE["soft"], ticks=ticks))
    assert_clean_run(run, ticks)
    assert len(run.features) == 2
    assert run.record["accel"]["popped"] == 2 * 8000
    assert run.status[0].node_id == 1
    assert (run.status[0].boot_count, run.status[0].reset_cause) == (1, CAUSE["soft"])
    assert run.log.count("node.json:") == 0
    assert run.samples[0].path == "Vehicle.Chassis.Axle.Row1.Wheel.Left.Bearing.VibrationRMS"


def test_a_hold_file_keeps_the_node_from_starting_and_the_log_rotates(bench: Bench) -> None:
    old_log = "[1] an old line\n" * 400  # 6400 bytes: more than the 4 KiB node.log may grow to
    (bench.flash / "node.log").write_text(old_log)
    (bench.flash / "hold").write_text("")
    run = bench.run(config=node_config(), scenario=scenario(windows=1, reset_cause=CAUSE["power_on"]))
    assert run.returncode == 0, run.stderr
    assert (run.wire, run.record) == (b"", {})  # no frame, and the shim never saw the hardware used
    assert not (bench.flash / "boot_count").exists()
    assert run.log.count("\n") == 1
    assert "held: the file hold is on the flash" in run.log
    assert (bench.flash / "node.log.1").read_text() == old_log


def test_an_exception_is_logged_and_the_node_resets(bench: Bench) -> None:
    """The scripted ADC has no pressure probe: the node cannot start, says why, and restarts."""
    broken = scenario(windows=1, reset_cause=CAUSE["power_on"], adc={str(TEMP_PIN): TEMP_UV})
    run = bench.run(config=node_config(), scenario=broken)
    assert run.returncode == 3, run.stderr  # the shim's machine.reset()
    assert run.record["reset"] is True
    assert "stopped by an exception:" in run.log
    assert "ValueError: the scenario has no ADC values for pin 35" in run.log
    assert "ValueError" in run.stdout  # and on the console (sys.print_exception writes to stdout)
    assert (bench.flash / "boot_count").read_text() == "1"
