"""Diagnostic record v1: golden vectors, round trips, and a decoder that raises only DecodeError."""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import string
import struct
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.errors import DecodeError
from prognos.record import (
    FAULT_CODE_PATTERN,
    FLOAT32_MAX,
    INT64_MAX,
    K_AMBIENT_C,
    K_CAUSES,
    K_HUMIDITY_PCT,
    MAX_CAUSES,
    MAX_FAULT_CODE,
    MAX_RECORD_BYTES,
    NAME_PATTERN,
    VIN_PATTERN,
    Cause,
    DiagnosticRecord,
    FaultHypothesis,
    SubsystemState,
    Trigger,
    decode_record,
    encode_record,
    record_seq,
    to_float32,
)

VECTORS = Path(__file__).parent.parent / "vectors"
VALID = json.loads((VECTORS / "records.json").read_text(encoding="utf-8"))
INVALID = json.loads((VECTORS / "records_invalid.json").read_text(encoding="utf-8"))
GOOD = DiagnosticRecord(
    vin="YV1SIM00000000042",
    seq=1,
    window_start_ms=1000,
    window_end_ms=2000,
    model_id="prognos-health",
    model_version="1.0.0",
)


def record_from_json(d: dict[str, Any]) -> DiagnosticRecord:
    """The readable JSON form used in tests/vectors/records.json."""
    return DiagnosticRecord(
        vin=d["vin"],
        seq=d["seq"],
        window_start_ms=d["window_start_ms"],
        window_end_ms=d["window_end_ms"],
        model_id=d["model_id"],
        model_version=d["model_version"],
        trigger=Trigger[d["trigger"].upper()],
        subsystems={name: SubsystemState(**s) for name, s in d["subsystems"].items()},
        faults=tuple(FaultHypothesis(**f) for f in d["faults"]),
        counters=d["counters"],
        causes=tuple(Cause(**c) for c in d.get("causes", [])),
        ambient_c=d.get("ambient_c"),
        humidity_pct=d.get("humidity_pct"),
        version=d["version"],
    )


def by_name(vectors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"argvalues": vectors, "ids": [v["name"] for v in vectors]}


# --- golden vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", **by_name(VALID))
def test_vector_encodes_to_its_bytes(vector: dict[str, Any]) -> None:
    assert encode_record(record_from_json(vector["record"])).hex() == vector["cbor_hex"]


@pytest.mark.parametrize("vector", **by_name(VALID))
def test_vector_bytes_decode_to_its_record(vector: dict[str, Any]) -> None:
    assert decode_record(bytes.fromhex(vector["cbor_hex"])) == record_from_json(vector["record"])


@pytest.mark.parametrize("vector", **by_name(INVALID))
def test_invalid_vector_raises_decode_error(vector: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode_record(bytes.fromhex(vector["cbor_hex"]))


def test_vectors_cover_the_required_cases() -> None:
    names = {v["name"] for v in VALID} | {v["name"] for v in INVALID}
    assert {"heartbeat_minimal", "typical", "fault_without_days", "fault_days_no_interval"} <= names
    assert {"version_2", "missing_vin", "health_1_5", "trailing_bytes", "not_a_map"} <= names
    assert {"anomaly_with_causes", "heartbeat_with_conditions"} <= names
    assert {"causes_not_ranked", "cause_probability_above_1", "too_many_causes"} <= names


def test_unknown_keys_are_ignored() -> None:
    heartbeat = next(v for v in VALID if v["name"] == "heartbeat_minimal")
    body = cbor2.loads(bytes.fromhex(heartbeat["cbor_hex"]))
    body.update({13: "future field", 31: [1, 2], 1000: {"x": 1}, "note": b"\x00"})
    body[30] = cbor2.CBORTag(40_000, "a tag the decoder does not know")
    assert decode_record(cbor2.dumps(body)) == record_from_json(heartbeat["record"])


def test_a_record_from_before_causes_and_conditions_decodes_without_them() -> None:
    """Keys 10-12 came later in version 1: a record without them is the same record as before."""
    typical = next(v for v in VALID if v["name"] == "typical")
    body = cbor2.loads(bytes.fromhex(typical["cbor_hex"]))
    assert not {K_CAUSES, K_AMBIENT_C, K_HUMIDITY_PCT} & set(body)
    record = decode_record(bytes.fromhex(typical["cbor_hex"]))
    assert (record.causes, record.ambient_c, record.humidity_pct) == ((), None, None)
    assert encode_record(record).hex() == typical["cbor_hex"]


def test_causes_and_conditions_round_trip_and_round_to_float32() -> None:
    record = dataclasses.replace(
        GOOD,
        trigger=Trigger.ANOMALY,
        faults=(FaultHypothesis("brakes.pad_wear", 0.75),),
        causes=(Cause("brakes.pad_wear", 0.82), Cause("bearings.wheel_bearing_wear", 0.1)),
        ambient_c=-3.7,
        humidity_pct=91,
    )
    assert record.causes[0].probability == to_float32(0.82)
    assert record.ambient_c == to_float32(-3.7) and record.humidity_pct == 91.0
    data = encode_record(record)
    assert decode_record(data) == record
    assert b"\xfb" not in data
    body = cbor2.loads(data)
    assert body[K_CAUSES][0][0] == "brakes.pad_wear" and body[K_HUMIDITY_PCT] == 91.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({K_CAUSES: [["brakes.pad_wear", 1.5]]}, "probability"),
        ({K_CAUSES: [["brakes.pad_wear", 0.2], ["motor.noise", 0.7]]}, "ranked"),
        ({K_CAUSES: [["motor.noise", 0.5], ["motor.noise", 0.25]]}, "twice"),
        ({K_CAUSES: [["motor.noise", 0.5, 1.0]]}, "code, probability"),
        ({K_CAUSES: [["Motor", 0.5]]}, "cause code"),
        ({K_CAUSES: [["motor.noise", "high"]]}, "must be a number"),
        ({K_CAUSES: {"motor.noise": 0.5}}, "array"),
        ({K_CAUSES: [[f"c{i}", 0.1] for i in range(MAX_CAUSES + 1)]}, "at most"),
        ({K_AMBIENT_C: math.nan}, "ambient_c"),
        ({K_AMBIENT_C: 150.0}, "ambient_c"),
        ({K_AMBIENT_C: "cold"}, "ambient_c"),
        ({K_HUMIDITY_PCT: -1.0}, "humidity_pct"),
        ({K_HUMIDITY_PCT: True}, "humidity_pct"),
    ],
)
def test_bad_causes_and_conditions_are_refused_with_decode_error(value: dict[int, Any], message: str) -> None:
    body = cbor2.loads(encode_record(GOOD))
    body.update(value)
    with pytest.raises(DecodeError, match=message):
        decode_record(cbor2.dumps(body))


def test_an_unknown_key_holding_a_broken_standard_tag_is_refused() -> None:
    """docs/wire-format.md: the decoder checks standard tags as it reads the map."""
    heartbeat = next(v for v in VALID if v["name"] == "heartbeat_minimal")
    body = cbor2.loads(bytes.fromhex(heartbeat["cbor_hex"]))
    body[30] = cbor2.CBORTag(1, "an epoch time must be a number")
    with pytest.raises(DecodeError, match="not CBOR"):
        decode_record(cbor2.dumps(body))


def test_oversized_input_is_refused() -> None:
    with pytest.raises(DecodeError, match="more than"):
        decode_record(bytes(MAX_RECORD_BYTES + 1))


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode_record("a0")  # type: ignore[arg-type]


def test_floats_are_rounded_to_float32() -> None:
    state = SubsystemState(health=0.1, anomaly_score=1 / 3)
    assert state.health == to_float32(0.1) != 0.1
    assert to_float32(1e39) == math.inf
    data = encode_record(dataclasses.replace(GOOD, subsystems={"battery": state}))
    assert b"\xfa" + struct.pack(">f", 0.1) in data  # single precision on the wire
    assert b"\xfb" not in data  # never double


# --- Hypothesis round trips -------------------------------------------------------------------

UNIT = st.floats(0.0, 1.0, width=32)
NONNEG = st.floats(0.0, FLOAT32_MAX, width=32)
UINT = st.integers(0, INT64_MAX)
VINS = st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=32)
NAMES = st.builds(
    operator.add,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "_", max_size=31),
)
SUBSYSTEMS = st.builds(SubsystemState, UNIT, NONNEG)
FAULT_CODES = st.lists(NAMES.map(lambda name: name[:15]), min_size=1, max_size=4).map(".".join)


@given(VINS, NAMES, FAULT_CODES)
def test_strategies_follow_the_record_patterns(vin: str, name: str, code: str) -> None:
    assert VIN_PATTERN.fullmatch(vin)
    assert NAME_PATTERN.fullmatch(name)
    assert FAULT_CODE_PATTERN.fullmatch(code)
    assert len(code) <= MAX_FAULT_CODE


@st.composite
def faults(draw: st.DrawFn) -> FaultHypothesis:
    code, confidence = draw(FAULT_CODES), draw(UNIT)
    shape = draw(st.sampled_from(["bare", "days", "interval"]))
    if shape == "bare":
        return FaultHypothesis(code, confidence)
    low, days, high = sorted(draw(st.lists(NONNEG, min_size=3, max_size=3)))
    if shape == "days":
        return FaultHypothesis(code, confidence, days)
    return FaultHypothesis(code, confidence, days, low, high)


@st.composite
def causes(draw: st.DrawFn) -> tuple[Cause, ...]:
    codes = draw(st.lists(FAULT_CODES, max_size=MAX_CAUSES, unique=True))
    probabilities = sorted(draw(st.lists(UNIT, min_size=len(codes), max_size=len(codes))), reverse=True)
    return tuple(Cause(code, p) for code, p in zip(codes, probabilities, strict=True))


@st.composite
def records(draw: st.DrawFn) -> DiagnosticRecord:
    start = draw(UINT)
    return DiagnosticRecord(
        vin=draw(VINS),
        seq=draw(UINT),
        window_start_ms=start,
        window_end_ms=start + draw(st.integers(0, INT64_MAX - start)),
        model_id=draw(st.text(min_size=1, max_size=64)),
        model_version=draw(st.text(min_size=1, max_size=64)),
        trigger=draw(st.sampled_from(Trigger)),
        subsystems=draw(st.dictionaries(NAMES, SUBSYSTEMS, max_size=8)),
        faults=tuple(draw(st.lists(faults(), max_size=4))),
        counters=draw(st.dictionaries(NAMES, UINT, max_size=8)),
        causes=draw(causes()),
        ambient_c=draw(st.none() | st.floats(-100.0, 100.0, width=32)),
        humidity_pct=draw(st.none() | st.floats(0.0, 100.0, width=32)),
    )


@settings(max_examples=300)
@given(records())
def test_round_trip(record: DiagnosticRecord) -> None:
    data = encode_record(record)
    assert decode_record(data) == record
    assert encode_record(decode_record(data)) == data  # one record, one encoding


def decodes_or_refuses(data: bytes) -> None:
    """The decoder's contract: a valid record or DecodeError, never another exception."""
    try:
        record = decode_record(data)
    except DecodeError:
        return
    assert decode_record(encode_record(record)) == record


@settings(max_examples=500)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    decodes_or_refuses(data)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    data = bytearray(encode_record(draw(records())))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data.insert(i, draw(st.integers(0, 255)))
        elif len(data) > 1:
            del data[i]
    return bytes(data)


@settings(max_examples=300)
@given(mutated_encodings())
def test_mutated_encodings_only_raise_decode_error(data: bytes) -> None:
    decodes_or_refuses(data)


# --- encode refuses records that break the rules -------------------------------------------------

BATTERY = SubsystemState(0.5, 0.5)


@pytest.mark.parametrize(
    "changes",
    [
        {"vin": ""},
        {"vin": "yv1sim00000000042"},
        {"vin": "A" * 33},
        {"seq": -1},
        {"seq": INT64_MAX + 1},
        {"seq": True},
        {"window_end_ms": 999},
        {"model_id": ""},
        {"model_version": "v" * 65},
        {"subsystems": {"battery": SubsystemState(1.5, 0.0)}},
        {"subsystems": {"battery": SubsystemState(-0.25, 0.0)}},
        {"subsystems": {"battery": SubsystemState(0.5, math.nan)}},
        {"subsystems": {"battery": SubsystemState(0.5, math.inf)}},
        {"subsystems": {"Battery": BATTERY}},
        {"subsystems": {f"s{i}": BATTERY for i in range(65)}},
        {"faults": (FaultHypothesis("tires.slow_leak", 1.25),)},
        {"faults": (FaultHypothesis("Tires", 0.5),)},
        {"faults": (FaultHypothesis("t" * 65, 0.5),)},
        {"faults": (FaultHypothesis("tires.slow_leak", 0.5, -1.0),)},
        {"faults": (FaultHypothesis("tires.slow_leak", 0.5, 9.5, days_low=7.0),)},
        {"faults": (FaultHypothesis("tires.slow_leak", 0.5, None, 7.0, 12.0),)},
        {"counters": {"frames_bad": -1}},
        {"counters": {"Frames": 1}},
        {"counters": {f"c{i}": i for i in range(65)}},
        {"causes": (Cause("brakes.pad_wear", 1.25),)},
        {"causes": (Cause("brakes.pad_wear", 0.25), Cause("motor.noise", 0.5))},
        {"causes": (Cause("motor.noise", 0.5), Cause("motor.noise", 0.5))},
        {"causes": tuple(Cause(f"c{i}", 0.1) for i in range(4))},
        {"causes": (Cause("Brakes", 0.5),)},
        {"ambient_c": math.inf},
        {"ambient_c": -101.0},
        {"humidity_pct": 100.5},
        {"humidity_pct": math.nan},
        {"trigger": 7},
        {"version": 2},
    ],
)
def test_encode_refuses_invalid_records(changes: dict[str, Any]) -> None:
    encode_record(GOOD)
    with pytest.raises(ValueError):
        encode_record(dataclasses.replace(GOOD, **changes))


def test_record_seq_reads_the_seq_alone() -> None:
    data = encode_record(
        DiagnosticRecord(
            vin="VIN123", seq=42, window_start_ms=0, window_end_ms=1, model_id="m", model_version="1"
        )
    )
    assert record_seq(data) == 42
    assert record_seq(b"not cbor \xff") is None
    assert record_seq(cbor2.dumps({2: -1})) is None
    assert record_seq(cbor2.dumps([1, 2])) is None
