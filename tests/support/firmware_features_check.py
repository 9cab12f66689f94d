"""Runs under MicroPython (the unix port): firmware/features.py's side of
tests/unit/test_firmware_features.py.

    MICROPYPATH=firmware micropython tests/support/firmware_features_check.py REQUEST.json

imports features.py as a node does and prints one JSON answer. Floats travel as the hex of
their float64 bytes, which keeps NaN intact and every bit of the value. Request:

    {"vibration": [{"counts_hex", "capacity", "sample_rate_hz", "g_per_count", "defect_hz",
                    "harmonics"}],
     "probes": [{"uv": [...], "capacity", "offset_uv", "uv_per_unit"}]}

Answer: {"implementation", "vibration": [{"rms", "peak", "crest", "kurtosis", "defect_db"}],
"probes": [{"low", "mean", "high", "fill"}], "alloc": {"probe_add": bytes}}.
"""

import binascii
import gc
import json
import struct
import sys

import features  # type: ignore[import-not-found]  # firmware/features.py, through MICROPYPATH

TYPE_CHECKING = False  # MicroPython has no typing module; mypy reads the block below
if TYPE_CHECKING:
    from typing import Any


def f64(value: float) -> str:
    return binascii.hexlify(struct.pack("<d", value)).decode()


def vibration(item: "dict[str, Any]") -> "dict[str, str]":
    raw = binascii.unhexlify(item["counts_hex"])
    window = features.Vibration(
        capacity=item["capacity"],
        sample_rate_hz=item["sample_rate_hz"],
        g_per_count=item["g_per_count"],
        defect_hz=item["defect_hz"],
        harmonics=item["harmonics"],
    )
    n = len(raw) // 2
    for i in range(n):
        window.counts[i] = struct.unpack_from("<h", raw, 2 * i)[0]
    window.fill = n
    window.compute()
    return {
        "rms": f64(window.rms),
        "peak": f64(window.peak),
        "crest": f64(window.crest),
        "kurtosis": f64(window.kurtosis),
        "defect_db": f64(window.defect_db),
    }


def probe(item: "dict[str, Any]") -> "dict[str, Any]":
    p = features.Probe(
        capacity=item["capacity"], offset_uv=item["offset_uv"], uv_per_unit=item["uv_per_unit"]
    )
    for uv in item["uv"]:
        p.add(uv)
    p.compute()
    return {"low": f64(p.low), "mean": f64(p.mean), "high": f64(p.high), "fill": p.fill}


def allocations() -> "dict[str, int]":
    """Heap bytes that 1000 readings into a Probe cost: the sample loop's share of features.py."""
    if not hasattr(gc, "mem_alloc"):
        return {}
    p = features.Probe(capacity=500, offset_uv=0.0, uv_per_unit=1.0)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for i in range(1000):
        p.add(i)
    after = gc.mem_alloc()
    gc.enable()
    return {"probe_add": after - before}


def main() -> None:
    with open(sys.argv[1]) as file:
        request = json.loads(file.read())
    answer = {
        "implementation": sys.implementation.name,
        "vibration": [vibration(item) for item in request.get("vibration", [])],
        "probes": [probe(item) for item in request.get("probes", [])],
        "alloc": allocations(),
    }
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
