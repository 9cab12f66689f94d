"""From the sensor node's accelerometer to a diagnostic record on the broker: the real firmware
(firmware/main.py under the MicroPython unix port, hardware scripted by
tests/support/micropython_shim/machine.py) writes its frames to a pseudo-terminal, the test carries them
to a second one, and a real gateway agent (prognos/edge/gateway.py, rules only, a `uart` source on that
pseudo-terminal) assesses them and publishes to the real broker.

The shim's accelerometer plays one 320 ms window of a bearing tone over and over, so every
window's vib_rms is the same known value, and with it the bearings rule's health and anomaly
score. The shim's time runs faster than real time: the node sends its frames for 3.84 s of
windows in a fraction of a second. The line between the pseudo-terminals runs at 2400 baud,
which spreads those frames over about as much real time, and so over several of the gateway's
1 s windows.
"""

from __future__ import annotations

import os
import random
import select
import subprocess
import threading
import time
import tty
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from prognos.config import GatewayConfig, parse_gateway_config
from prognos.edge.assembly import build_gateway
from prognos.edge.gateway import Gateway
from prognos.edge.rules import BEARING_VIB_G
from prognos.link import FeaturesFrame, FrameDecoder
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, Trigger
from tests.integration.test_firmware_node import (
    CAUSE,
    DEFECT_HZ,
    HARMONICS,
    NODE_ID,
    SAMPLE_RATE_HZ,
    SAMPLES_PER_WINDOW,
    node_config,
    scenario,
)
from tests.integration.test_gateway import Listener
from tests.support.firmware_bench import boot_node, micropython_command
from tests.support.firmware_reference import bearing_counts, vibration_reference
from tests.support.helpers import wait_for

WINDOWS = 12  # of 320 ms: 3.84 s of node time
LINE_BYTES_PER_S = 240  # 2400 baud, 8N1
WINDOW_S = 1
# 28 periods of the 87.5 Hz defect tone per window, with a little noise: each window of 256
# samples is the same, so every features frame carries the same vib_rms, about 0.676 g.
Z_COUNTS = bearing_counts(
    SAMPLES_PER_WINDOW,
    sample_rate_hz=SAMPLE_RATE_HZ,
    defect_hz=DEFECT_HZ,
    tone_g=0.954,
    noise_g=0.02,
    seed=7,
)
RMS_G = vibration_reference(
    Z_COUNTS, sample_rate_hz=SAMPLE_RATE_HZ, defect_hz=DEFECT_HZ, harmonics=HARMONICS
)["vib_rms"]
# The bearings rule (nominal 0.35 g, alert 1.0 g, failure 2.0 g) on 0.676 g: halfway to the
# alert, four fifths of the health left.
ANOMALY_SCORE, HEALTH = 0.50, 0.80


class LineNoise:
    """Bursts of random bytes (1-6, zeros included) put into the stream every 80-240 bytes.
    Where they go depends only on the bytes' positions in the stream, so a seed gives the same
    noisy line however the stream is cut into chunks."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._until_burst = self._rng.randint(80, 240)

    def __call__(self, chunk: bytes) -> bytes:
        out = bytearray()
        for byte in chunk:
            if self._until_burst == 0:
                out += self._rng.randbytes(self._rng.randint(1, 6))
                self._until_burst = self._rng.randint(80, 240)
            out.append(byte)
            self._until_burst -= 1
        return bytes(out)


@dataclass(frozen=True)
class Carried:
    sent: bytes  # what the node wrote to its UART
    received: bytes  # what reached the gateway's port, noise and all
    decoder: FrameDecoder  # `received` decoded: the counters the gateway must show
    last_features_s: float  # the clock before the last features frame that arrived was written


class Line:
    """The wire from the node to the gateway. The node's UART writes to one pseudo-terminal;
    the gateway's UartSource opens the other by its path (it cannot open a pty master);
    `carry()` moves the bytes from one to the other."""

    def __init__(self) -> None:
        self._node_master, self._node_slave = os.openpty()
        tty.setraw(self._node_slave)  # a UART carries bytes as they are
        self.node_port = os.ttyname(self._node_slave)
        self._gateway_master, self._gateway_slave = os.openpty()
        tty.setraw(self._gateway_slave)
        self.gateway_port = os.ttyname(self._gateway_slave)

    def carry(
        self, node: subprocess.Popen[bytes], *, noise: LineNoise | None = None, timeout_s: float = 30.0
    ) -> Carried:
        """Carry the node's bytes to the gateway at LINE_BYTES_PER_S, through `noise` if given,
        until the node has ended and every byte is across. The node is killed if it runs past
        `timeout_s`."""
        sent, received, backlog = bytearray(), bytearray(), bytearray()
        decoder = FrameDecoder()  # what the gateway's port received, decoded as it goes
        last_features_s = 0.0
        started_s = time.monotonic()
        deadline_s = started_s + timeout_s
        try:
            while True:
                readable, _, _ = select.select([self._node_master], [], [], 0.01)
                if readable:
                    chunk = os.read(self._node_master, 65536)
                    if not sent:
                        started_s = time.monotonic()
                    sent += chunk
                    backlog += noise(chunk) if noise else chunk
                if backlog:
                    due = int((time.monotonic() - started_s) * LINE_BYTES_PER_S) - len(received)
                    if due > 0:
                        before_s = time.time()  # the gateway reads these bytes, and dates them, later
                        written = backlog[: os.write(self._gateway_master, backlog[:due])]
                        del backlog[: len(written)]
                        received += written
                        if any(isinstance(f, FeaturesFrame) for f in decoder.feed(written)):
                            last_features_s = before_s
                elif not readable and node.poll() is not None:
                    break
                assert time.monotonic() < deadline_s, f"the node and its line took longer than {timeout_s} s"
        finally:
            if node.poll() is None:
                node.kill()
            node.wait()
        return Carried(bytes(sent), bytes(received), decoder, last_features_s)

    def close(self) -> None:
        for fd in (self._node_master, self._node_slave, self._gateway_master, self._gateway_slave):
            os.close(fd)


@pytest.fixture
def line() -> Iterator[Line]:
    micropython_command()  # skip (fail under CI) without the MicroPython unix port
    wire = Line()
    yield wire
    wire.close()


@pytest.fixture
def vin() -> str:
    return f"FW{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture
def listener(stack: StackInfo, fleet: str, vin: str) -> Iterator[Listener]:
    subscriber = Listener(stack, fleet, vin)
    yield subscriber
    subscriber.close()


def gateway_config(stack: StackInfo, tmp_path: Path, fleet: str, vin: str, port: str) -> GatewayConfig:
    """Short windows, a status every second, no [models]: the rules alone decide."""
    return parse_gateway_config(f"""
[gateway]
fleet = "{fleet}"
vin = "{vin}"
window_s = {WINDOW_S}
heartbeat_s = {WINDOW_S}
status_interval_s = 1

[broker]
host = "{stack.mqtt_host}"
port = {stack.mqtt_port}

[spool]
path = "{tmp_path / "spool.db"}"

[[source]]
kind = "uart"
port = "{port}"
""")


@contextmanager
def running(config: GatewayConfig) -> Iterator[Gateway]:
    """A gateway agent working in a thread of its own until the block ends."""
    gateway = build_gateway(config)
    stop = threading.Event()
    runner = threading.Thread(target=gateway.run, args=(stop,), name="gateway")
    runner.start()
    try:
        yield gateway
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive(), "the gateway did not stop"


def boot(tmp_path: Path, line: Line) -> subprocess.Popen[bytes]:
    return boot_node(
        tmp_path / "node",
        port=line.node_port,
        config=node_config(),
        scenario=scenario(
            windows=WINDOWS,
            reset_cause=CAUSE["power_on"],
            accel={"addr": 0x53, "z_hex": Z_COUNTS.astype("<i2").tobytes().hex()},
        ),
    )


def node_output(tmp_path: Path) -> str:
    root = tmp_path / "node"
    return "\n".join(
        (root / name).read_text(encoding="utf-8", errors="replace")
        for name in ("stdout.txt", "stderr.txt", "flash/node.log")
        if (root / name).exists()
    )


def status_counters(listener: Listener, frames_seen: int) -> dict[str, int]:
    """The counters of the latest status message once the gateway has seen `frames_seen`
    frames; {} before."""
    counters = listener.status.get("counters")
    if isinstance(counters, dict) and counters.get("frames_seen") == frames_seen:
        return counters
    return {}


def records_after(listener: Listener, time_s: float) -> list[DiagnosticRecord]:
    """Every record so far, once the one of the window holding `time_s` has come; [] before.
    The gateway dates a sample by its own clock when it reads the bytes."""
    records = sorted(listener.records, key=lambda r: r.seq)
    if records and records[-1].window_end_ms > time_s * 1000:
        return records
    return []


def assert_bearing_records(records: list[DiagnosticRecord], *, at_least: int) -> None:
    assert len(records) >= at_least, f"{len(records)} records: {records}"
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    for record in records:
        assert (record.model_id, record.trigger, record.faults) == ("rules", Trigger.HEARTBEAT, ())
        assert record.window_end_ms - record.window_start_ms == WINDOW_S * 1000
        # Only node 2's bearing reported, and only its RMS has a rule.
        assert set(record.subsystems) == {"bearings"}
        state = record.subsystems["bearings"]
        assert state.anomaly_score == pytest.approx(ANOMALY_SCORE, abs=0.005)
        assert state.health == pytest.approx(HEALTH, abs=0.005)
        # Exactly the node's vib_rms (float32 on the link and in the record) through the rule.
        assert state.anomaly_score == pytest.approx(BEARING_VIB_G.score(RMS_G), rel=1e-5)
        assert state.health == pytest.approx(BEARING_VIB_G.health(RMS_G), rel=1e-5)


def test_node_vibration_becomes_bearing_health_on_the_broker(
    stack: StackInfo, tmp_path: Path, fleet: str, vin: str, listener: Listener, line: Line
) -> None:
    with running(gateway_config(stack, tmp_path, fleet, vin, line.gateway_port)) as gateway:
        carried = line.carry(boot(tmp_path, line))
        frames = FrameDecoder().feed(carried.sent)
        assert len([f for f in frames if isinstance(f, FeaturesFrame)]) == WINDOWS, node_output(tmp_path)
        assert {f.node_id for f in frames} == {NODE_ID}
        assert carried.received == carried.sent

        counters = wait_for(
            lambda: status_counters(listener, len(frames)), what="every frame in the status counters"
        )
        assert counters["frames_ok"] == len(frames)
        for name in ("frames_bad", "bytes_skipped", "frames_missed", "node_restarts", "values_out_of_range"):
            assert counters[name] == 0, name
        assert counters["values_unknown"] == 6 * WINDOWS  # the channels the catalog does not map

        records = wait_for(
            lambda: records_after(listener, carried.last_features_s), what="the record of the last window"
        )
    assert_bearing_records(records, at_least=3)  # 3.8 s of frames at 2400 baud span 4 or 5 windows
    assert (records[-1].counters["frames_seen"], records[-1].counters["frames_bad"]) == (len(frames), 0)
    wait_for(lambda: len(listener.records) == gateway.stats.records, what="every record on the broker")
    assert gateway.spooled == 0


def test_line_noise_costs_frames_not_values(
    stack: StackInfo, tmp_path: Path, fleet: str, vin: str, listener: Listener, line: Line
) -> None:
    with running(gateway_config(stack, tmp_path, fleet, vin, line.gateway_port)) as gateway:
        carried = line.carry(boot(tmp_path, line), noise=LineNoise(seed=11))
        sent = FrameDecoder().feed(carried.sent)
        assert len([f for f in sent if isinstance(f, FeaturesFrame)]) == WINDOWS, node_output(tmp_path)
        received = carried.decoder
        assert received.frames_bad > 0 and received.frames_ok < len(sent)
        frames_seen = received.frames_ok + received.frames_bad

        counters = wait_for(lambda: status_counters(listener, frames_seen), what="every frame in the status")
        assert (counters["frames_ok"], counters["frames_bad"]) == (received.frames_ok, received.frames_bad)
        assert counters["bytes_skipped"] == received.bytes_skipped > 0
        assert counters["frames_missed"] > 0  # the sequence numbers of the frames the noise destroyed
        assert counters["values_out_of_range"] == 0  # the CRC let no damaged value through

        records = wait_for(
            lambda: records_after(listener, carried.last_features_s), what="the record of the last window"
        )
    assert_bearing_records(records, at_least=2)
    assert records[-1].counters["frames_bad"] == received.frames_bad
    wait_for(lambda: len(listener.records) == gateway.stats.records, what="every record on the broker")
    assert gateway.spooled == 0
