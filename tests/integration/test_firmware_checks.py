"""Checks of the firmware as files: every module cross-compiles with mpy-cross (and the node
runs from the compiled modules), the firmware type-checks against the MicroPython ESP32 stubs
(scripts/check-firmware), and only the files that say so use the hardware.

Without mpy-cross, micropython or the stubs (all in the dev extra) the tests skip, saying so,
except under CI, where they fail.

In tests/integration though it starts no server: the mypy, mpy-cross and MicroPython runs take
a few seconds, and tests/unit stays under a minute.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prognos.catalog import default_catalog
from tests.support.firmware_bench import FIRMWARE_DIR, ROOT, Bench, tool
from tests.support.firmware_reference import bearing_counts

FIRMWARE_FILES = sorted(FIRMWARE_DIR.glob("*.py"))
DEVICE_ONLY = {"hal.py", "main.py"}
DEVICE_ONLY_LINE = "Runs only on the sensor node (MicroPython)"


def compile_all(mpy_cross: str, out_dir: Path) -> list[Path]:
    compiled = []
    for source in FIRMWARE_FILES:
        out = out_dir / (source.stem + ".mpy")
        result = subprocess.run(
            [mpy_cross, str(source), "-o", str(out)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"mpy-cross {source.name}:\n{result.stderr}"
        compiled.append(out)
    return compiled


def test_mpy_cross_compiles_every_firmware_file(tmp_path: Path) -> None:
    mpy_cross = tool("mpy-cross", "mpy-cross")
    assert {p.name for p in FIRMWARE_FILES} >= {"config.py", "features.py", "hal.py", "link.py", "main.py"}
    for out in compile_all(mpy_cross, tmp_path):
        assert out.read_bytes()[:2] == b"M\x06", f"{out.name}: not a version 6 .mpy file"


def test_the_node_runs_from_compiled_modules(tmp_path: Path) -> None:
    """A board's layout: main.py as source (the board runs main.py), the rest as .mpy."""
    mpy_cross = tool("mpy-cross", "mpy-cross")
    modules = tmp_path / "board"
    modules.mkdir()
    for out in compile_all(mpy_cross, modules):
        if out.stem == "main":
            out.unlink()
    shutil.copy(FIRMWARE_DIR / "main.py", modules / "main.py")
    assert sorted(p.name for p in modules.iterdir()) == [
        "config.mpy",
        "features.mpy",
        "hal.mpy",
        "link.mpy",
        "main.py",
    ]
    counts = bearing_counts(256, sample_rate_hz=800, defect_hz=87.5, tone_g=0.1)
    bench = Bench(tmp_path / "bench", default_catalog())
    try:
        run = bench.run(
            config={"node_id": 3, "window_ms": 320},
            scenario={
                "ticks": 32,
                "reset_cause": 1,
                "accel": {"z_hex": counts.astype("<i2").tobytes().hex()},
                "adc": {"34": [750_000], "35": [600_000]},
            },
            modules=modules,
        )
    finally:
        bench.close()
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{run.log}"
    assert len(run.features) == 2
    rms = run.features[0].values[0][1]
    assert rms == pytest.approx(0.1 / np.sqrt(2), rel=5e-3)


def test_firmware_type_checks_against_the_micropython_stubs() -> None:
    try:
        importlib.metadata.distribution("micropython-esp32-stubs")
    except importlib.metadata.PackageNotFoundError:
        reason = f"micropython-esp32-stubs is not installed for {sys.executable} (part of the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check-firmware"), "mypy"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"mypy against the stubs:\n{result.stdout}\n{result.stderr}"
    assert f"Success: no issues found in {len(FIRMWARE_FILES)} source files" in result.stdout
    assert "Success: no issues found in 1 source file" in result.stdout  # the machine shim


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", FIRMWARE_FILES, ids=lambda p: p.name)
def test_device_only_files_say_so_and_only_they_touch_the_hardware(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    imports = imported_modules(path)
    if path.name in DEVICE_ONLY:
        assert DEVICE_ONLY_LINE in first_line
    else:
        assert "Runs only" not in first_line
        assert "CPython" in first_line  # shared code says that it runs on both
        assert "hal" not in imports and "main" not in imports
    if path.name != "hal.py":
        assert "machine" not in imports, f"{path.name} must reach the hardware through hal.py"
