"""Golden vectors of the sensor-node link (tests/vectors/link/frames.json) and what the link
tests share.

The vectors are built here from the protocol as firmware/README.md describes it, with struct,
zlib's CRC-32 and a COBS written differently from the codec's (split at zeros, cut into
254-byte blocks), so that they check the codec rather than echo it. Regenerate with

    python -m tests.support.link_vectors

and a test fails while the file and this generator disagree.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "link" / "frames.json"
FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"

FEATURES = 1
STATUS = 2
STATUS_FIELDS = ("boot_count", "reset_cause", "mem_free", "uptime_s", "frames_sent", "frames_dropped")


# --- float32 values as hex (NaN and infinities survive JSON and MicroPython's json) -----------


def f32(value: float) -> float:
    """`value` rounded to float32, as the link carries it."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def f32_hex(value: float) -> str:
    return struct.pack("<f", value).hex()


def from_f32_hex(text: str) -> float:
    return float(struct.unpack("<f", bytes.fromhex(text))[0])


def values_to_hex(frame: dict[str, Any]) -> dict[str, Any]:
    """A frame dict (as `Frame.as_dict()` gives) with each value as float32 hex."""
    if frame["kind"] != "features":
        return dict(frame)
    return {**frame, "values": [[channel, f32_hex(value)] for channel, value in frame["values"]]}


def values_from_hex(frame: dict[str, Any]) -> dict[str, Any]:
    if frame["kind"] != "features":
        return dict(frame)
    return {**frame, "values": [[channel, from_f32_hex(text)] for channel, text in frame["values"]]}


# --- the protocol, written out independently of the codec --------------------------------------


def reference_cobs(raw: bytes) -> bytes:
    out = bytearray()
    pieces = raw.split(b"\x00")
    for k, piece in enumerate(pieces):
        blocks = [piece[i : i + 254] for i in range(0, len(piece), 254)] or [b""]
        if len(blocks[-1]) == 254 and k < len(pieces) - 1:
            blocks.append(b"")  # a full block stands for no zero, so the zero needs one of its own
        for block in blocks:
            out.append(len(block) + 1)
            out += block
    return bytes(out)


def reference_raw(
    kind: int,
    node_id: int,
    seq: int,
    payload: bytes,
    *,
    version: int = 1,
    payload_len: int | None = None,
    crc_xor: int = 0,
) -> bytes:
    """Header, payload, CRC: the frame before COBS. The keywords make it wrong on purpose."""
    length = len(payload) if payload_len is None else payload_len
    body = struct.pack("<BBBHB", version, kind, node_id, seq, length) + payload
    return body + struct.pack("<I", zlib.crc32(body) ^ crc_xor)


def on_wire(raw: bytes) -> bytes:
    return b"\x00" + reference_cobs(raw) + b"\x00"


def flip_data_bit(wire: bytes) -> bytes:
    """`wire` with one bit flipped in its last data byte (not a COBS code byte, never to zero):
    what line noise does to a frame without touching its delimiters."""
    codes = set()
    i = 1
    while i < len(wire) - 1:
        codes.add(i)
        i += wire[i]
    at = max(i for i in range(1, len(wire) - 1) if i not in codes)
    out = bytearray(wire)
    out[at] ^= 0x01 if out[at] != 0x01 else 0x02
    return bytes(out)


def features_payload(
    window_start_ms: int, values: list[tuple[int, float]], count: int | None = None
) -> bytes:
    head = struct.pack("<IB", window_start_ms, len(values) if count is None else count)
    return head + b"".join(struct.pack("<Bf", channel, value) for channel, value in values)


def status_payload(status: dict[str, int]) -> bytes:
    return struct.pack("<IBIIII", *(status[name] for name in STATUS_FIELDS))


def features_dict(
    node_id: int, seq: int, window_start_ms: int, values: list[tuple[int, float]]
) -> dict[str, Any]:
    return {
        "kind": "features",
        "node_id": node_id,
        "seq": seq,
        "window_start_ms": window_start_ms,
        "values": [[channel, f32(value)] for channel, value in values],
    }


def status_dict(node_id: int, seq: int, status: dict[str, int]) -> dict[str, Any]:
    return {"kind": "status", "node_id": node_id, "seq": seq, **status}


def wire_of(frame: dict[str, Any]) -> bytes:
    """The bytes on the wire for a frame dict."""
    if frame["kind"] == "features":
        values = [(int(c), float(v)) for c, v in frame["values"]]
        payload = features_payload(frame["window_start_ms"], values)
        return on_wire(reference_raw(FEATURES, frame["node_id"], frame["seq"], payload))
    status = {name: frame[name] for name in STATUS_FIELDS}
    return on_wire(reference_raw(STATUS, frame["node_id"], frame["seq"], status_payload(status)))


# --- the vectors -------------------------------------------------------------------------------

BEARING = [(1, 0.5), (4, 3.0), (5, -20.0)]  # vib_rms 0.5 g, vib_kurtosis 3, vib_defect_db -20 dB
ALL_CHANNELS = [
    (1, 1.25),
    (2, 4.5),
    (3, 3.6),
    (4, 3.25),
    (5, -12.0),
    (6, 21.5),
    (7, 22.125),
    (8, 24.0),
    (9, 101.3),
]
STATUS_EXAMPLE = {
    "boot_count": 17,
    "reset_cause": 3,
    "mem_free": 81_920,
    "uptime_s": 86_400,
    "frames_sent": 8_640,
    "frames_dropped": 2,
}


def largest_frame() -> dict[str, Any]:
    """50 values and no zero byte anywhere before COBS: 265 bytes that encode to the longest
    frame there is (MAX_ENCODED = 267 bytes), with a full 254-byte block."""
    candidates = (1.1 + k * 0.013 for k in range(1000))
    no_zero_byte = [v for v in candidates if 0 not in struct.pack("<f", v)][:50]
    values = [(1 + i % 9, v) for i, v in enumerate(no_zero_byte)]
    for seq in range(0x0101, 0xFFFF):
        frame = features_dict(0xA5, seq, 0x01020304, values)
        raw = reference_raw(FEATURES, 0xA5, seq, features_payload(0x01020304, values))
        if len(raw) == 265 and 0 not in raw:
            assert len(reference_cobs(raw)) == 267
            return frame
    raise AssertionError("no sequence number gives a frame without zero bytes")


def valid_vectors() -> list[dict[str, Any]]:
    cases = [
        (
            "features_bearing",
            "node 1: vib_rms 0.5, vib_kurtosis 3, vib_defect_db -20",
            features_dict(1, 0, 0, BEARING),
        ),
        (
            "features_all_channels",
            "every channel in the table once; seq at its top, 65535",
            features_dict(4, 0xFFFF, 123_456_789, ALL_CHANNELS),
        ),
        ("features_empty", "a window with no values", features_dict(2, 7, 10_000, [])),
        (
            "features_zeros",
            "zero values and ids: many zero bytes for COBS to stand in for",
            features_dict(0, 0, 0, [(0, 0.0), (1, 0.0), (2, -0.0)]),
        ),
        (
            "features_extremes",
            "window start at 2**32 - 1, float32 extremes and a subnormal",
            features_dict(
                255,
                0x1234,
                0xFFFFFFFF,
                [
                    (1, 3.4028234663852886e38),
                    (2, -3.4028234663852886e38),
                    (3, 1.401298464324817e-45),
                    (4, 1e-3),
                ],
            ),
        ),
        ("features_largest", "MAX_CHANNELS values, no zero before COBS: the longest frame", largest_frame()),
        ("status", "node 3 after a watchdog reset", status_dict(3, 42, STATUS_EXAMPLE)),
        (
            "status_wrapped",
            "every counter at 2**32 - 1",
            status_dict(9, 1, {name: 0xFFFFFFFF if name != "reset_cause" else 255 for name in STATUS_FIELDS}),
        ),
    ]
    return [
        {"name": name, "note": note, "hex": wire_of(frame).hex(), "frame": frame}
        for name, note, frame in cases
    ]


def invalid_vectors() -> list[dict[str, Any]]:
    good_payload = features_payload(1000, BEARING)
    good_raw = reference_raw(FEATURES, 1, 5, good_payload)
    good_wire = on_wire(good_raw)
    flipped = bytearray(good_raw)
    flipped[8] ^= 0x40  # a payload byte changed, CRC left as it was
    assert good_wire[1] > 3  # the first block runs past the three bytes that "truncated" keeps
    status_payload_short = status_payload(STATUS_EXAMPLE)[:-1]
    cases: list[tuple[str, str, bytes, str]] = [
        ("bad_crc", "a payload byte changed after the CRC was computed", on_wire(bytes(flipped)), "crc"),
        ("bit_flip_on_line", "one bit flipped in the encoded bytes", flip_data_bit(good_wire), "crc"),
        (
            "truncated",
            "the first three encoded bytes, then the next frame's 0x00 (node reset)",
            good_wire[:4] + b"\x00",
            "cobs",
        ),
        (
            "bad_cobs",
            "a code byte that points past the end of the frame",
            bytes.fromhex("00050102ff00"),
            "cobs",
        ),
        ("too_short", "nine bytes: less than header and CRC", on_wire(good_raw[:9]), "length"),
        (
            "wrong_version",
            "version 2 with a valid CRC: a newer node, not noise",
            on_wire(reference_raw(FEATURES, 1, 5, good_payload, version=2)),
            "version",
        ),
        (
            "length_mismatch",
            "payload_len says 10, the frame holds 20",
            on_wire(reference_raw(FEATURES, 1, 5, good_payload, payload_len=10)),
            "length",
        ),
        ("unknown_kind", "kind 7 with a valid CRC", on_wire(reference_raw(7, 1, 5, good_payload)), "kind"),
        (
            "features_count_mismatch",
            "count says 4, three pairs follow",
            on_wire(reference_raw(FEATURES, 1, 5, features_payload(1000, BEARING, count=4))),
            "payload",
        ),
        (
            "features_too_short",
            "a features payload of three bytes",
            on_wire(reference_raw(FEATURES, 1, 5, b"\x01\x02\x03")),
            "payload",
        ),
        (
            "status_too_short",
            "a status payload one byte short",
            on_wire(reference_raw(STATUS, 3, 1, status_payload_short)),
            "payload",
        ),
        (
            "longest_chunk",
            "267 bytes (MAX_ENCODED) of 0x01, the COBS of 266 zeros: decoded, refused by the CRC",
            b"\x00" + b"\x01" * 267 + b"\x00",
            "crc",
        ),
        (
            "oversize",
            "268 bytes without a delimiter: one more than a frame can be",
            b"\x00" + b"\x55" * 268 + b"\x00",
            "oversize",
        ),
        (
            "oversize_long",
            "1000 bytes of noise: dropped without being buffered",
            b"\x00" + bytes(range(1, 256)) * 3 + b"\x01" * 235 + b"\x00",
            "oversize",
        ),
    ]
    return [
        {"name": name, "note": note, "hex": data.hex(), "reason": reason}
        for name, note, data, reason in cases
    ]


def stream_vectors() -> list[dict[str, Any]]:
    a = features_dict(1, 100, 50_000, BEARING)
    b = features_dict(2, 200, 60_000, [(1, 0.75)])
    c = status_dict(1, 101, STATUS_EXAMPLE)
    corrupted = flip_data_bit(wire_of(b))
    noise = bytes.fromhex("13 37 be ef")
    return [
        {
            "name": "noise_between_frames",
            "note": "noise before, between and after frames; one frame corrupted in between",
            "hex": (noise + wire_of(a) + noise + corrupted + b"\x00\x00" + wire_of(c) + noise).hex(),
            "frames": [a, c],
            "frames_ok": 2,
            "frames_bad": 3,  # noise + a's leading 0x00, the corrupted frame, the noise between
            "bytes_skipped": 4 + 4 + (len(corrupted) - 2),
            "pending": 4,  # the trailing noise waits for a delimiter
            "errors": {"cobs": 2, "crc": 1},  # noise "13 37 ..." claims a 19-byte block
        },
        {
            "name": "idle_line",
            "note": "only delimiters: nothing decoded, nothing counted",
            "hex": "00" * 8,
            "frames": [],
            "frames_ok": 0,
            "frames_bad": 0,
            "bytes_skipped": 0,
            "pending": 0,
            "errors": {},
        },
    ]


def build_vectors() -> dict[str, Any]:
    return {
        "about": "Sensor-node link frames (prognos/link.py, firmware/README.md): hex as on the wire. "
        "Generated by tests/support/link_vectors.py; regenerate with `python -m tests.support.link_vectors`.",
        "valid": valid_vectors(),
        "invalid": invalid_vectors(),
        "streams": stream_vectors(),
    }


def render(vectors: dict[str, Any]) -> str:
    """JSON with one vector a line."""
    parts = []
    for key, value in vectors.items():
        if isinstance(value, list):
            rows = ",\n".join("  " + json.dumps(row) for row in value)
            parts.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def load_vectors() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return result


def main() -> None:
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(render(build_vectors()), encoding="utf-8")


if __name__ == "__main__":
    main()
