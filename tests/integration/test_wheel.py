"""The wheel: it installs one top-level package, `prognos`, with what a gateway needs besides
code (the model bundle, DBCs, catalogs, scenarios), and an agent installed from it runs.

The wheel is built from a copy of the project and installed with `--no-deps` into a fresh
virtualenv; the dependencies come from the test's own environment through a .pth line (pulling
numpy, LiteRT and friends from PyPI in a test would be slow and need the network). The project
folder itself is never on the fresh interpreter's path, so every `prognos` module and data file
it uses comes from the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

PROJECT = Path(__file__).resolve().parents[2]
VIN = "WHEEL000000000001"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".prognos", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(PROJECT, source, symlinks=True, ignore=COPY_IGNORE)
    out = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("prognos-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel installed; its bin directory."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield root / "bin"


def test_the_wheel_holds_one_package_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"prognos"}
    for expected in (
        "prognos/models/artifacts/bundle.json",
        "prognos/models/artifacts/battery-ae/model.tflite",
        "prognos/models/artifacts/fault-classifier/meta.json",
        "prognos/hil/dbc/prognos_sim.dbc",
        "prognos/hil/catalogs/bench.toml",
        "prognos/hil/scenarios/fleet_demo.toml",
        "prognos/hil/scenarios/ci/healthy.toml",
        "prognos/catalogs/default.toml",
        "prognos/link.py",
        "prognos/edge/cli.py",
    ):
        assert expected in names, f"{expected} is not in {wheel.name}"
    assert not any(name.startswith("tests/") or "/tests/" in name for name in names)


def run_installed(
    bin_dir: Path, *args: str, cwd: Path, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "prognos"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s
    )


def test_the_installed_command_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import prognos.edge, sys; print(prognos.edge.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.parent), where
    result = run_installed(installed, "edge", "run", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: prognos edge run")


def test_an_installed_gateway_seeds_its_models_from_the_package(installed: Path, tmp_path: Path) -> None:
    package = Path(
        subprocess.run(
            [str(installed / "python"), "-c", "import prognos; print(prognos.__file__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    ).parent
    shipped = json.loads((package / "models" / "artifacts" / "bundle.json").read_text())
    log = tmp_path / "trace.log"
    with can.Logger(str(log)) as writer:  # frames the bench DBC does not know: counted, nothing else
        for i in range(60):
            writer.on_message_received(
                can.Message(timestamp=1_790_000_000 + 10.0 * i, arbitration_id=0x7FF, is_extended_id=False)
            )
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[gateway]
fleet = "wheel"
vin = "{VIN}"
window_s = 60
catalog = "{package / "hil" / "catalogs" / "bench.toml"}"

[broker]
host = "127.0.0.1"
port = 9

[spool]
path = "{tmp_path / "spool.db"}"

[models]
dir = "{tmp_path / "models"}"

[[source]]
kind = "replay"
path = "{log}"
dbc = "{package / "hil" / "dbc" / "prognos_sim.dbc"}"
"""
    )
    result = run_installed(installed, "edge", "run", "--config", str(config), cwd=tmp_path, timeout_s=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"gateway {VIN}:" in result.stdout
    seeded = tmp_path / "models" / "versions" / f"{shipped['bundle_id']}-{shipped['version']}-seed"
    assert json.loads((seeded / "bundle.json").read_text()) == shipped
    assert (seeded / "battery-ae" / "model.tflite").read_bytes() == (
        package / "models" / "artifacts" / "battery-ae" / "model.tflite"
    ).read_bytes()
