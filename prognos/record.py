"""Diagnostic record v1: the one message a gateway sends to the cloud.

The wire form is a CBOR map (RFC 8949) with small integer keys, documented field by field in
docs/wire-format.md. Floats travel as IEEE 754 single precision (half precision where that is
exact), so every float in a record is rounded to float32 when the record is built.
"""

from __future__ import annotations

import enum
import io
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from prognos.errors import DecodeError

RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024

VIN_PATTERN = re.compile(r"[A-Z0-9]{1,32}")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
FAULT_CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
MAX_FAULT_CODE = 64
MAX_MODEL_FIELD = 64
MAX_ITEMS = 64
MAX_CAUSES = 3
AMBIENT_RANGE_C = (-100.0, 100.0)
HUMIDITY_RANGE_PCT = (0.0, 100.0)
INT64_MAX = 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38

# Wire keys. Keys 0-31 are reserved for this format; a decoder ignores keys it does not know.
K_VERSION = 0
K_VIN = 1
K_SEQ = 2
K_WINDOW_START_MS = 3
K_WINDOW_MS = 4
K_MODEL = 5
K_TRIGGER = 6
K_SUBSYSTEMS = 7
K_FAULTS = 8
K_COUNTERS = 9
K_CAUSES = 10
K_AMBIENT_C = 11
K_HUMIDITY_PCT = 12


class Trigger(enum.IntEnum):
    """Why the gateway sent this record; also its priority when the spool must drop."""

    HEARTBEAT = 0
    CHANGE = 1
    ANOMALY = 2


_FLOAT32 = struct.Struct("<f")


def to_float32(value: float) -> float:
    """The nearest single-precision value: what a float becomes on the wire."""
    if math.isfinite(value) and abs(value) > FLOAT32_MAX:
        return math.copysign(math.inf, value)
    return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])


@dataclass(frozen=True)
class SubsystemState:
    """Health of one subsystem over the record's window.

    health: 1.0 is as new, 0.0 is functional failure.
    anomaly_score: detector output scaled so that 1.0 is the alert threshold.
    """

    health: float
    anomaly_score: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "health", to_float32(self.health))
        object.__setattr__(self, "anomaly_score", to_float32(self.anomaly_score))


@dataclass(frozen=True)
class FaultHypothesis:
    """A suspected fault, its confidence and, if trending, days until the failure threshold.

    days_low and days_high bound an 80% interval around days_to_threshold.
    """

    code: str
    confidence: float
    days_to_threshold: float | None = None
    days_low: float | None = None
    days_high: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "confidence", to_float32(self.confidence))
        for name in ("days_to_threshold", "days_low", "days_high"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_float32(value))


@dataclass(frozen=True)
class Cause:
    """A cause the gateway's fault classifier gives for the record's window: a fault code and the
    classifier's probability of it."""

    code: str
    probability: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "probability", to_float32(self.probability))


@dataclass(frozen=True)
class DiagnosticRecord:
    """One window of one vehicle. causes: the classifier's, most likely first (at most
    MAX_CAUSES). ambient_c and humidity_pct: the conditions at the window's end, None where
    the vehicle did not report them."""

    vin: str
    seq: int
    window_start_ms: int
    window_end_ms: int
    model_id: str
    model_version: str
    trigger: Trigger = Trigger.HEARTBEAT
    subsystems: Mapping[str, SubsystemState] = field(default_factory=dict)
    faults: tuple[FaultHypothesis, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    causes: tuple[Cause, ...] = ()
    ambient_c: float | None = None
    humidity_pct: float | None = None
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        for name in ("ambient_c", "humidity_pct"):
            value = getattr(self, name)
            if isinstance(value, float | int) and not isinstance(value, bool):
                object.__setattr__(self, name, to_float32(value))


def encode_record(record: DiagnosticRecord) -> bytes:
    """Encode a record to its v1 wire form; raises ValueError for a record that breaks the rules."""
    _check(record)
    body: dict[int, Any] = {
        K_VERSION: RECORD_VERSION,
        K_VIN: record.vin,
        K_SEQ: record.seq,
        K_WINDOW_START_MS: record.window_start_ms,
        K_WINDOW_MS: record.window_end_ms - record.window_start_ms,
        K_MODEL: [record.model_id, record.model_version],
        K_TRIGGER: int(record.trigger),
    }
    if record.subsystems:
        body[K_SUBSYSTEMS] = {
            name: [state.health, state.anomaly_score] for name, state in sorted(record.subsystems.items())
        }
    if record.faults:
        body[K_FAULTS] = [_fault_to_wire(f) for f in record.faults]
    if record.counters:
        body[K_COUNTERS] = dict(sorted(record.counters.items()))
    if record.causes:
        body[K_CAUSES] = [[cause.code, cause.probability] for cause in record.causes]
    if record.ambient_c is not None:
        body[K_AMBIENT_C] = record.ambient_c
    if record.humidity_pct is not None:
        body[K_HUMIDITY_PCT] = record.humidity_pct
    data: bytes = cbor2.dumps(body, canonical=True)
    return data


def decode_record(data: bytes) -> DiagnosticRecord:
    """Decode a v1 record. Any input that is not a valid record raises DecodeError, nothing else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"record must be bytes, not {type(data).__name__}")
    if len(data) > MAX_RECORD_BYTES:
        raise DecodeError(f"record is {len(data)} bytes, more than {MAX_RECORD_BYTES}")
    body = decode_cbor(data, "record")
    try:
        record = _from_wire(body)
        _check(record)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(str(exc)) from exc
    return record


def record_seq(data: bytes) -> int | None:
    """The seq of an encoded record, without checking the rest of it; None if it has none."""
    try:
        body = decode_cbor(data, "record")
    except DecodeError:
        return None
    seq = body.get(K_SEQ) if isinstance(body, dict) else None
    return seq if _is_uint(seq) else None


def decode_cbor(data: bytes | bytearray | memoryview, what: str) -> object:
    """The one CBOR item that fills `data`; DecodeError for anything else (what names the item
    in the message about trailing bytes)."""
    stream = io.BytesIO(bytes(data))
    try:
        body = cbor2.CBORDecoder(stream).decode()
    except (
        cbor2.CBORDecodeError,
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
        EOFError,
        LookupError,
        MemoryError,
    ) as exc:
        raise DecodeError(f"not CBOR: {exc}") from exc
    if stream.tell() != len(data):
        raise DecodeError(f"{len(data) - stream.tell()} trailing bytes after the {what}")
    return body


def _fault_to_wire(fault: FaultHypothesis) -> list[Any]:
    wire: list[Any] = [fault.code, fault.confidence]
    if fault.days_to_threshold is not None:
        wire.append(fault.days_to_threshold)
        if fault.days_low is not None and fault.days_high is not None:
            wire += [fault.days_low, fault.days_high]
    return wire


def _from_wire(body: object) -> DiagnosticRecord:
    if not isinstance(body, dict):
        raise ValueError(f"record must be a CBOR map, not {type(body).__name__}")
    version = body.get(K_VERSION)
    if type(version) is not int or version != RECORD_VERSION:
        raise ValueError(
            f"unsupported record version {_shown(version)} (this decoder reads {RECORD_VERSION})"
        )
    for key in (K_VIN, K_SEQ, K_WINDOW_START_MS, K_WINDOW_MS, K_MODEL, K_TRIGGER):
        if key not in body:
            raise ValueError(f"missing field {key}")
    model = body[K_MODEL]
    if not (isinstance(model, list) and len(model) == 2):
        raise ValueError("model must be [model_id, model_version]")
    start = _uint(body[K_WINDOW_START_MS], "window_start_ms")
    trigger = _uint(body[K_TRIGGER], "trigger")
    if trigger not in Trigger._value2member_map_:
        raise ValueError(f"unknown trigger {trigger}")
    subsystems_wire = body.get(K_SUBSYSTEMS, {})
    if not isinstance(subsystems_wire, dict):
        raise ValueError("subsystems must be a map")
    subsystems = {}
    for name, pair in subsystems_wire.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"subsystem {_shown(name)} must be [health, anomaly_score]")
        subsystems[name] = SubsystemState(_float(pair[0], "health"), _float(pair[1], "anomaly_score"))
    faults_wire = body.get(K_FAULTS, [])
    if not isinstance(faults_wire, list):
        raise ValueError("faults must be an array")
    faults = tuple(_fault_from_wire(item) for item in faults_wire)
    counters_wire = body.get(K_COUNTERS, {})
    if not isinstance(counters_wire, dict):
        raise ValueError("counters must be a map")
    counters = {
        name: value if _is_uint(value) else _uint(value, f"counter {_shown(name)}")
        for name, value in counters_wire.items()
    }
    causes_wire = body.get(K_CAUSES, [])
    if not isinstance(causes_wire, list) or len(causes_wire) > MAX_CAUSES:
        raise ValueError(f"causes must be an array of at most {MAX_CAUSES}")
    causes = tuple(_cause_from_wire(item) for item in causes_wire)
    ambient = body.get(K_AMBIENT_C)
    humidity = body.get(K_HUMIDITY_PCT)
    return DiagnosticRecord(
        vin=body[K_VIN],
        seq=_uint(body[K_SEQ], "seq"),
        window_start_ms=start,
        window_end_ms=start + _uint(body[K_WINDOW_MS], "window_ms"),
        model_id=model[0],
        model_version=model[1],
        trigger=Trigger(trigger),
        subsystems=subsystems,
        faults=faults,
        counters=counters,
        causes=causes,
        ambient_c=None if ambient is None else _float(ambient, "ambient_c"),
        humidity_pct=None if humidity is None else _float(humidity, "humidity_pct"),
    )


def _fault_from_wire(item: object) -> FaultHypothesis:
    if not (isinstance(item, list) and len(item) in (2, 3, 5)):
        raise ValueError("a fault must be [code, confidence] or [..., days] or [..., days, low, high]")
    floats = [_float(v, "fault value") for v in item[1:]]
    days = floats[1] if len(floats) > 1 else None
    low, high = (floats[2], floats[3]) if len(floats) == 4 else (None, None)
    return FaultHypothesis(item[0], floats[0], days, low, high)


def _cause_from_wire(item: object) -> Cause:
    if not (isinstance(item, list) and len(item) == 2):
        raise ValueError("a cause must be [code, probability]")
    return Cause(item[0], _float(item[1], "cause probability"))


def _is_uint(value: object) -> bool:
    """_uint's test alone, for the loops: their messages are built only for a value that fails."""
    return type(value) is int and 0 <= value <= INT64_MAX


def _uint(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise ValueError(f"{what} must be an integer in [0, 2**63), got {_shown(value)}")
    return value


def _float(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {type(value).__name__}")
    if isinstance(value, int) and abs(value) > FLOAT32_MAX:
        return math.inf if value > 0 else -math.inf  # float() refuses integers beyond a double's range
    return float(value)


def _shown(value: object) -> str:
    """A value as an error message shows it: short, whatever the input held. repr() alone would
    copy 64 KiB of text into a dead letter, or fail on an integer of more than 4300 digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if not isinstance(value, str | bytes | int | float) and value is not None:
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: object, what: str, pattern: re.Pattern[str], max_len: int) -> None:
    if not isinstance(value, str) or len(value) > max_len or not pattern.fullmatch(value):
        raise ValueError(f"{what} {_shown(value)} does not match {pattern.pattern} (max {max_len} chars)")


def _finite(value: float, what: str, low: float = 0.0, high: float = math.inf) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{what} {value!r} is outside [{low}, {high}]")


def _check(record: DiagnosticRecord) -> None:
    """The rules every v1 record obeys, on encode and on decode."""
    if record.version != RECORD_VERSION:
        raise ValueError(f"this codec writes version {RECORD_VERSION}, not {record.version!r}")
    if record.trigger not in Trigger._value2member_map_:
        raise ValueError(f"unknown trigger {record.trigger!r}")
    _text(record.vin, "vin", VIN_PATTERN, 32)
    _uint(record.seq, "seq")
    _uint(record.window_start_ms, "window_start_ms")
    _uint(record.window_end_ms, "window_end_ms")
    if record.window_end_ms < record.window_start_ms:
        raise ValueError("window_end_ms is before window_start_ms")
    for what, text in (("model_id", record.model_id), ("model_version", record.model_version)):
        if not isinstance(text, str) or not 0 < len(text) <= MAX_MODEL_FIELD:
            raise ValueError(f"{what} must be text of 1 to {MAX_MODEL_FIELD} characters")
    if len(record.subsystems) > MAX_ITEMS or len(record.faults) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} subsystems and {MAX_ITEMS} faults")
    if len(record.counters) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} counters")
    for name, state in record.subsystems.items():
        _text(name, "subsystem", NAME_PATTERN, 32)
        if not 0.0 <= state.health <= 1.0:  # NaN fails too
            _finite(state.health, f"{name} health", 0.0, 1.0)
        if not 0.0 <= state.anomaly_score < math.inf:
            _finite(state.anomaly_score, f"{name} anomaly_score")
    for fault in record.faults:
        _text(fault.code, "fault code", FAULT_CODE_PATTERN, MAX_FAULT_CODE)
        _finite(fault.confidence, f"{fault.code} confidence", 0.0, 1.0)
        for what in ("days_to_threshold", "days_low", "days_high"):
            days = getattr(fault, what)
            if days is not None:
                _finite(days, f"{fault.code} {what}")
        if (fault.days_low is None) != (fault.days_high is None):
            raise ValueError(f"{fault.code}: days_low and days_high come together")
        if fault.days_low is not None and fault.days_high is not None:
            if fault.days_to_threshold is None:
                raise ValueError(f"{fault.code}: an interval needs days_to_threshold")
            if not fault.days_low <= fault.days_to_threshold <= fault.days_high:
                raise ValueError(f"{fault.code}: days_low <= days_to_threshold <= days_high is broken")
    for name, value in record.counters.items():
        _text(name, "counter", NAME_PATTERN, 32)
        if not _is_uint(value):
            _uint(value, f"counter {name!r}")
    _check_causes(record.causes)
    for what, condition, (low, high) in (
        ("ambient_c", record.ambient_c, AMBIENT_RANGE_C),
        ("humidity_pct", record.humidity_pct, HUMIDITY_RANGE_PCT),
    ):
        if condition is not None:
            if isinstance(condition, bool) or not isinstance(condition, int | float):
                raise ValueError(f"{what} must be a number, got {type(condition).__name__}")
            _finite(condition, what, low, high)


def _check_causes(causes: tuple[Cause, ...]) -> None:
    """At most MAX_CAUSES, distinct codes, probabilities in [0, 1], the most likely first."""
    if len(causes) > MAX_CAUSES:
        raise ValueError(f"at most {MAX_CAUSES} causes")
    seen: set[str] = set()
    previous = 1.0
    for cause in causes:
        _text(cause.code, "cause code", FAULT_CODE_PATTERN, MAX_FAULT_CODE)
        if cause.code in seen:
            raise ValueError(f"cause {cause.code} is listed twice")
        seen.add(cause.code)
        _finite(cause.probability, f"{cause.code} probability", 0.0, 1.0)
        if cause.probability > previous:
            raise ValueError("causes must be ranked, the most likely first")
        previous = cause.probability
