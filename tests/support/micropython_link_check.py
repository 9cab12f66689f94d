"""Runs under MicroPython (the unix port): the link codec's side of tests/unit/test_link_micropython.py.

    MICROPYPATH=firmware micropython tests/support/micropython_link_check.py REQUEST.json

imports link.py as a node does (from the path, not as a package), does what the request asks
and prints one JSON answer. Values travel as float32 hex ("0000003f" is 0.5), which keeps NaN
and the infinities intact through both interpreters' json. Request:

    {"decode": [{"hex": ..., "chunk": n}],  # a FrameDecoder fed the bytes n at a time (0: at once)
     "encode": [frame, ...]}                # frames as Frame.as_dict() gives them

Answer: {"implementation", "decoded": [{"frames", "reencoded", "single", counters...}],
"encoded": [hex], "encoder": [hex], "alloc": {...}}. It also runs under CPython (with PYTHONPATH
in place of MICROPYPATH), which helps when a difference needs explaining.
"""

import binascii
import gc
import json
import struct
import sys

import link  # type: ignore[import-not-found]  # prognos/link.py, found through MICROPYPATH

TYPE_CHECKING = False  # MicroPython has no typing module; mypy reads the block below
if TYPE_CHECKING:
    from typing import Any

STATUS_FIELDS = ("boot_count", "reset_cause", "mem_free", "uptime_s", "frames_sent", "frames_dropped")


def to_hex(data: bytes) -> str:
    return binascii.hexlify(bytes(data)).decode()


def from_hex(text: str) -> bytes:
    return binascii.unhexlify(text)


def frame_out(frame: "Any") -> "dict[str, Any]":
    out: dict[str, Any] = frame.as_dict()
    if out["kind"] == "features":
        out["values"] = [[c, to_hex(struct.pack("<f", v))] for c, v in frame.values]
    return out


def values_in(frame: "dict[str, Any]") -> list[tuple[int, float]]:
    return [(int(c), struct.unpack("<f", from_hex(v))[0]) for c, v in frame["values"]]


def encode(frame: "dict[str, Any]") -> bytes:
    if frame["kind"] == "features":
        return bytes(
            link.encode_features(frame["node_id"], frame["seq"], frame["window_start_ms"], values_in(frame))
        )
    status = {name: frame[name] for name in STATUS_FIELDS}
    return bytes(link.encode_status(frame["node_id"], frame["seq"], **status))


def encode_with_encoder(frame: "dict[str, Any]") -> bytes:
    encoder = link.FrameEncoder(frame["node_id"])
    encoder.seq = frame["seq"]
    if frame["kind"] == "features":
        view = encoder.features(frame["window_start_ms"], values_in(frame))
    else:
        view = encoder.status(**{name: frame[name] for name in STATUS_FIELDS})
    return bytes(view)


def decode(item: "dict[str, Any]") -> "dict[str, Any]":
    data = from_hex(item["hex"])
    chunk = item.get("chunk", 0) or len(data) or 1
    decoder = link.FrameDecoder()
    frames = []
    for start in range(0, len(data), chunk):
        frames.extend(decoder.feed(data[start : start + chunk]))
    try:
        single: dict[str, Any] = {"frame": frame_out(link.decode_frame(data))}
    except link.FrameError as exc:
        single = {"error": exc.reason}
    return {
        "frames": [frame_out(f) for f in frames],
        "reencoded": [to_hex(encode(frame_out(f))) for f in frames],
        "single": single,
        "frames_ok": decoder.frames_ok,
        "frames_bad": decoder.frames_bad,
        "bytes_skipped": decoder.bytes_skipped,
        "pending": decoder.pending,
        "errors": {reason: n for reason, n in decoder.errors.items() if n},
    }


def allocations() -> dict[str, int]:
    """Heap bytes one features frame costs: built by a FrameEncoder, and by encode_features."""
    if not hasattr(gc, "mem_alloc"):
        return {}
    values = [(1, 0.5), (4, 3.25), (5, -20.0)]
    encoder = link.FrameEncoder(1)
    encoder.features(1000, values)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    encoder.features(2000, values)
    after_encoder = gc.mem_alloc()
    link.encode_features(1, 1, 2000, values)
    after_function = gc.mem_alloc()
    gc.enable()
    return {"encoder": after_encoder - before, "encode_features": after_function - after_encoder}


def main() -> None:
    with open(sys.argv[1]) as file:
        request = json.loads(file.read())
    answer = {
        "implementation": sys.implementation.name,
        "decoded": [decode(item) for item in request.get("decode", [])],
        "encoded": [to_hex(encode(frame)) for frame in request.get("encode", [])],
        "encoder": [to_hex(encode_with_encoder(frame)) for frame in request.get("encode", [])],
        "alloc": allocations(),
    }
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
