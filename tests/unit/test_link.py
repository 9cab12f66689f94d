"""The sensor-node link codec (prognos/link.py) under CPython: golden vectors, round trips,
streaming in any chunks, line noise, and bytes that must never make it raise."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.catalog import default_catalog
from prognos.link import (
    CHANNEL_IDS,
    CHANNEL_NAMES,
    CHANNELS,
    CRC_LEN,
    HEADER_LEN,
    MAX_CHANNELS,
    MAX_ENCODED,
    MAX_PAYLOAD,
    MAX_RAW,
    MAX_WIRE,
    REASONS,
    RESET_CAUSES,
    FeaturesFrame,
    Frame,
    FrameDecoder,
    FrameEncoder,
    FrameError,
    StatusFrame,
    decode_frame,
    encode_features,
    encode_status,
)
from tests.support.link_vectors import (
    FIRMWARE_DIR,
    STATUS_FIELDS,
    VECTORS_PATH,
    build_vectors,
    f32,
    f32_hex,
    load_vectors,
    render,
    values_to_hex,
)

VECTORS = load_vectors()
F32_MAX = 3.4028234663852886e38


def encode(frame: dict[str, Any]) -> bytes:
    """A frame dict (as Frame.as_dict() gives) through the encoder functions."""
    if frame["kind"] == "features":
        values = [(int(c), float(v)) for c, v in frame["values"]]
        return encode_features(frame["node_id"], frame["seq"], frame["window_start_ms"], values)
    return encode_status(frame["node_id"], frame["seq"], **{name: frame[name] for name in STATUS_FIELDS})


def encode_with_encoder(frame: dict[str, Any]) -> bytes:
    encoder = FrameEncoder(frame["node_id"])
    encoder.seq = frame["seq"]
    if frame["kind"] == "features":
        view = encoder.features(frame["window_start_ms"], [(int(c), float(v)) for c, v in frame["values"]])
    else:
        view = encoder.status(**{name: frame[name] for name in STATUS_FIELDS})
    return bytes(view)


def same(a: Frame | dict[str, Any], b: Frame | dict[str, Any]) -> bool:
    """Equal frames, values compared as float32 bit patterns (so NaN equals NaN)."""
    da = a.as_dict() if isinstance(a, Frame) else a
    db = b.as_dict() if isinstance(b, Frame) else b
    return values_to_hex(da) == values_to_hex(db)


def nonzero_errors(decoder: FrameDecoder) -> dict[str, int]:
    return {reason: n for reason, n in decoder.errors.items() if n}


# --- golden vectors ---------------------------------------------------------------------------


def test_vectors_file_matches_its_generator() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == render(build_vectors()), (
        "tests/vectors/link/frames.json is stale: run python -m tests.support.link_vectors"
    )


def test_vectors_cover_every_reason_and_both_kinds() -> None:
    assert {v["reason"] for v in VECTORS["invalid"]} == set(REASONS)
    assert {v["frame"]["kind"] for v in VECTORS["valid"]} == {"features", "status"}
    assert max(len(bytes.fromhex(v["hex"])) for v in VECTORS["valid"]) == MAX_WIRE


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_decodes(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    assert decode_frame(data).as_dict() == vector["frame"]
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert [f.as_dict() for f in frames] == [vector["frame"]]
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped, decoder.pending) == (1, 0, 0, 0)


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_encodes(vector: dict[str, Any]) -> None:
    assert encode(vector["frame"]).hex() == vector["hex"]
    assert encode_with_encoder(vector["frame"]).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_counted_not_raised(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    decoder = FrameDecoder()
    assert decoder.feed(data) == []
    assert decoder.frames_ok == 0
    assert decoder.frames_bad == 1
    assert nonzero_errors(decoder) == {vector["reason"]: 1}
    assert decoder.last_error == vector["reason"]
    assert decoder.bytes_skipped == len(data) - 2  # everything but the two delimiters
    assert decoder.pending == 0
    with pytest.raises(FrameError) as info:
        decode_frame(data)
    assert info.value.reason == vector["reason"]


@pytest.mark.parametrize("vector", VECTORS["streams"], ids=lambda v: v["name"])
@pytest.mark.parametrize("chunk", [0, 1, 2, 3, 7, 64])
def test_stream_vector(vector: dict[str, Any], chunk: int) -> None:
    data = bytes.fromhex(vector["hex"])
    step = chunk or len(data)
    decoder = FrameDecoder()
    frames = [f for start in range(0, len(data), step) for f in decoder.feed(data[start : start + step])]
    assert [f.as_dict() for f in frames] == vector["frames"]
    assert decoder.frames_ok == vector["frames_ok"]
    assert decoder.frames_bad == vector["frames_bad"]
    assert decoder.bytes_skipped == vector["bytes_skipped"]
    assert decoder.pending == vector["pending"]
    assert nonzero_errors(decoder) == vector["errors"]


def test_worked_example_in_the_readme() -> None:
    """firmware/README.md takes this frame apart byte by byte."""
    data = encode_features(1, 0, 0, [(1, 0.5), (4, 3.0), (5, -20.0)])
    readme = (FIRMWARE_DIR / "README.md").read_text(encoding="utf-8")
    assert data.hex(" ") in readme


# --- tables -----------------------------------------------------------------------------------


def test_channel_table_is_one_to_one() -> None:
    ids = [row[0] for row in CHANNELS]
    names = [row[1] for row in CHANNELS]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    assert all(1 <= i <= 255 for i in ids)
    assert dict(zip(names, ids, strict=True)) == CHANNEL_IDS
    assert dict(zip(ids, names, strict=True)) == CHANNEL_NAMES
    assert len({cause for cause, _ in RESET_CAUSES}) == len(RESET_CAUSES)


def test_readme_lists_the_channel_table() -> None:
    readme = (FIRMWARE_DIR / "README.md").read_text(encoding="utf-8")
    for channel_id, name, unit in CHANNELS:
        assert f"| {channel_id} | `{name}` | {unit} |" in readme


def test_size_limits_follow_from_the_layout() -> None:
    assert MAX_RAW == HEADER_LEN + MAX_PAYLOAD + CRC_LEN
    assert MAX_ENCODED == MAX_RAW + -(-MAX_RAW // 254)  # one COBS code byte per started 254-byte block
    assert MAX_WIRE == MAX_ENCODED + 2
    assert MAX_CHANNELS == (MAX_PAYLOAD - 5) // 5


def test_every_node_channel_of_the_catalog_is_in_the_table_with_its_unit() -> None:
    units = {name: unit for _, name, unit in CHANNELS}
    catalog = default_catalog()
    assert catalog.by_node, "the default catalog should map sensor-node channels"
    for (node_id, channel), signal in catalog.by_node.items():
        assert channel in units, f"node {node_id} channel {channel} ({signal.path}) has no link channel id"
        assert units[channel] == signal.unit, f"{channel}: link says {units[channel]}, catalog {signal.unit}"


# --- encoder ----------------------------------------------------------------------------------


def test_encoder_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="node id"):
        encode_features(256, 0, 0, [])
    with pytest.raises(ValueError, match="node id"):
        encode_features(-1, 0, 0, [])
    with pytest.raises(ValueError, match="channel id"):
        encode_features(1, 0, 0, [(256, 1.0)])
    with pytest.raises(ValueError, match="at most 50"):
        encode_features(1, 0, 0, [(1, 1.0)] * (MAX_CHANNELS + 1))
    with pytest.raises(ValueError, match="reset cause"):
        encode_status(
            1, 0, boot_count=0, reset_cause=256, mem_free=0, uptime_s=0, frames_sent=0, frames_dropped=0
        )
    with pytest.raises(ValueError, match="node id"):
        FrameEncoder(300)


def test_sequence_numbers_and_window_start_wrap() -> None:
    frame = decode_frame(encode_features(1, 0x1_0005, 0x1_0000_0007, []))
    assert isinstance(frame, FeaturesFrame)
    assert (frame.seq, frame.window_start_ms) == (5, 7)
    encoder = FrameEncoder(3)
    encoder.seq = 0xFFFF
    seqs = [decode_frame(bytes(encoder.features(0, []))).seq for _ in range(3)]
    assert seqs == [0xFFFF, 0, 1]


def test_values_beyond_float32_become_infinities() -> None:
    frame = decode_frame(encode_features(1, 0, 0, [(1, 1e39), (2, -1e300), (3, F32_MAX)]))
    assert isinstance(frame, FeaturesFrame)
    assert frame.values == [(1, math.inf), (2, -math.inf), (3, F32_MAX)]


def test_encoder_view_is_the_frame_until_the_next_call() -> None:
    encoder = FrameEncoder(7)
    first = encoder.features(100, [(1, 0.5)])
    assert bytes(first) == encode_features(7, 0, 100, [(1, 0.5)])
    status = dict.fromkeys(STATUS_FIELDS, 1)
    second = encoder.status(**status)
    assert bytes(second) == encode_status(7, 1, **status)
    assert encoder.seq == 2


# --- properties -------------------------------------------------------------------------------

values_st = st.lists(
    st.tuples(st.integers(0, 255), st.floats(width=32, allow_nan=True, allow_infinity=True)),
    max_size=MAX_CHANNELS,
)
features_st = st.builds(
    lambda node, seq, start, values: {
        "kind": "features",
        "node_id": node,
        "seq": seq,
        "window_start_ms": start,
        "values": [[c, v] for c, v in values],
    },
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    values_st,
)
status_st = st.builds(
    lambda node, seq, counters, cause: {
        "kind": "status",
        "node_id": node,
        "seq": seq,
        **dict(zip(STATUS_FIELDS, counters, strict=True)),
        "reset_cause": cause,
    },
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.lists(st.integers(0, 0xFFFFFFFF), min_size=6, max_size=6),
    st.integers(0, 255),
)
frames_st = st.one_of(features_st, status_st)


@given(frames_st)
def test_round_trip(frame: dict[str, Any]) -> None:
    data = encode(frame)
    assert same(decode_frame(data), frame)
    assert encode_with_encoder(frame) == data
    assert data[0] == 0 and data[-1] == 0 and 0 not in data[1:-1]
    assert len(data) <= MAX_WIRE


@given(
    st.lists(st.tuples(st.integers(0, 255), st.floats(allow_nan=False)), max_size=MAX_CHANNELS),
)
def test_any_double_survives_as_its_float32(values: list[tuple[int, float]]) -> None:
    frame = decode_frame(encode_features(1, 0, 0, values))
    assert isinstance(frame, FeaturesFrame)
    for (channel, value), (got_channel, got) in zip(values, frame.values, strict=True):
        try:
            expected = f32(value)
        except OverflowError:
            expected = math.copysign(math.inf, value)
        assert got_channel == channel
        assert f32_hex(got) == f32_hex(expected)


@given(st.lists(frames_st, max_size=8), st.lists(st.integers(1, 40), min_size=1, max_size=50))
def test_any_chunking_gives_the_same_frames(frames: list[dict[str, Any]], cuts: list[int]) -> None:
    stream = b"".join(encode(f) for f in frames)
    decoder = FrameDecoder()
    decoded: list[Frame] = []
    at = 0
    i = 0
    while at < len(stream):
        size = cuts[i % len(cuts)]
        decoded += decoder.feed(stream[at : at + size])
        at += size
        i += 1
    assert len(decoded) == len(frames)
    assert all(same(d, f) for d, f in zip(decoded, frames, strict=True))
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped, decoder.pending) == (
        len(frames),
        0,
        0,
        0,
    )


@st.composite
def noisy_streams(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any]], int]:
    """Frames with random bytes between them and inside some: (stream, intact frames, number
    of frames corrupted)."""
    frames = draw(st.lists(frames_st, min_size=1, max_size=8))
    stream = bytearray()
    intact: list[dict[str, Any]] = []
    corrupted = 0
    for frame in frames:
        stream += draw(st.binary(max_size=12))  # noise before the frame, zeros and all
        data = encode(frame)
        if draw(st.booleans()):
            at = draw(st.integers(2, len(data) - 2))  # inside the frame, past its leading 0x00
            data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
            corrupted += 1
        else:
            intact.append(frame)
        stream += data
    stream += draw(st.binary(max_size=12))
    return bytes(stream), intact, corrupted


@settings(max_examples=300)
@given(noisy_streams(), st.integers(1, 50))
def test_noise_costs_only_the_frames_it_hits(
    case: tuple[bytes, list[dict[str, Any]], int], chunk: int
) -> None:
    stream, intact, _ = case
    decoder = FrameDecoder()
    decoded = [f for at in range(0, len(stream), chunk) for f in decoder.feed(stream[at : at + chunk])]
    assert len(decoded) == len(intact)
    assert all(same(d, f) for d, f in zip(decoded, intact, strict=True))
    assert decoder.frames_ok == len(intact)
    # Every run of bytes between two zeros is a frame: the intact ones decode, the rest count bad
    # (the trailing run has no delimiter yet and waits in the buffer).
    runs = stream.split(b"\x00")
    closed_runs = [run for run in runs[:-1] if run]
    assert decoder.frames_bad == len(closed_runs) - len(intact)
    assert sum(decoder.errors.values()) == decoder.frames_bad
    intact_bytes = sum(len(encode(f)) - 2 for f in intact)
    assert decoder.bytes_skipped == sum(len(run) for run in closed_runs) - intact_bytes
    assert decoder.pending == len(runs[-1])  # trailing noise is at most 12 bytes


@given(st.lists(st.binary(max_size=300), max_size=10))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            assert isinstance(frame, FeaturesFrame | StatusFrame)
        assert 0 <= decoder.pending <= MAX_ENCODED
    assert sum(decoder.errors.values()) == decoder.frames_bad
    assert decoder.bytes_skipped <= sum(len(c) for c in chunks)


@given(st.binary(max_size=600))
def test_decode_frame_raises_only_frame_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError as exc:
        assert exc.reason in REASONS
        assert isinstance(exc, ValueError)
    else:
        assert isinstance(frame, FeaturesFrame | StatusFrame)


def test_endless_noise_stays_within_the_buffer_and_the_next_frame_decodes() -> None:
    decoder = FrameDecoder()
    noise = bytes(range(1, 256)) * 400  # 102,000 bytes without a delimiter
    assert decoder.feed(noise) == []
    assert decoder.pending == 0  # dropping, not buffering
    assert (decoder.frames_bad, decoder.errors["oversize"], decoder.bytes_skipped) == (1, 1, len(noise))
    frame = {"kind": "features", "node_id": 1, "seq": 9, "window_start_ms": 5, "values": [[1, 0.25]]}
    assert [f.as_dict() for f in decoder.feed(encode(frame))] == [frame]
    assert decoder.frames_ok == 1


def test_crc_is_checked_before_the_version() -> None:
    """A frame whose version byte was hit by noise is a CRC error, not a version error."""
    good = bytearray(encode_features(1, 0, 0, [(1, 0.5)]))
    assert good[2] == 1  # the version, right after the leading 0x00 and the first code byte
    good[2] = 2
    with pytest.raises(FrameError) as info:
        decode_frame(bytes(good))
    assert info.value.reason == "crc"
