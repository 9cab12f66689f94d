"""Fuzzing of the four input parsers: the Hypothesis strategies that make their inputs, and the
checks that say what each parser may do with them. tests/integration/test_fuzz.py runs a short pass of every
target in the test suite; benchmarks/fuzz.py runs 100,000 cases per target. docs/fuzzing.md
describes both.

The targets, their parsers and the documented error:

- `record`: `prognos.record.decode_record`; `DecodeError`.
- `link`: `prognos.link.FrameDecoder` and `decode_frame`, and the gateway's
  `prognos.edge.sources.uart.NodeDecoder`; the stream decoders never raise but count each bad frame
  under a reason, `decode_frame` raises `FrameError`.
- `dms`: `prognos.cloud.dealers.dms.decode_table`, `detect_kind` or `kind_named`, then
  `validate`; `ConfigError` for a file that cannot be read, bad rows listed in
  `Checked.problems` with their line or index.
- `scenario`: `prognos.hil.scenario.parse_scenario`; `ConfigError`.
- `condition`: `prognos.campaigns.expression.parse_expression`, then `evaluate` on a stream;
  `ExpressionError` with a position inside the text.

A check takes one case, feeds it to its parser and returns an `Outcome`: how many inputs were
accepted and how many refused with the documented error. Anything else raises: an exception
straight out of the parser, or `FuzzFailure` for a broken promise (a message that shows Python
internals, a valid input refused or changed, a case slower than the target's time bound).
"""

from __future__ import annotations

import csv
import functools
import gc
import io
import json
import math
import random
import re
import string
import struct
import time
import tomllib
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as clock_time
from pathlib import Path
from typing import Any, TypeVar

import cbor2
from hypothesis import strategies as st

from prognos.campaigns.expression import Expression, ExpressionError, History, evaluate, parse_expression
from prognos.catalog import default_catalog
from prognos.cloud.dealers.dms import decode_table, validate
from prognos.cloud.dealers.dms import point_line as dms_point_line
from prognos.cloud.dealers.dms_import import RejectedFilesError
from prognos.cloud.dealers.kinds import (
    KINDS,
    TAG,
    TAG_COLUMNS,
    Column,
    Kind,
    Record,
    Value,
    detect_kind,
    kind_named,
)
from prognos.edge.sources.uart import NodeDecoder
from prognos.errors import ConfigError, DecodeError
from prognos.hil.scenario import Scenario, parse_scenario
from prognos.link import (
    MAX_CHANNELS,
    MAX_ENCODED,
    REASONS,
    FeaturesFrame,
    Frame,
    FrameDecoder,
    FrameError,
    StatusFrame,
    decode_frame,
    encode_features,
    encode_status,
)
from prognos.record import (
    FLOAT32_MAX,
    K_AMBIENT_C,
    K_CAUSES,
    K_HUMIDITY_PCT,
    MAX_RECORD_BYTES,
    DiagnosticRecord,
    decode_record,
    encode_record,
)
from tests.support.link_vectors import (
    FEATURES,
    STATUS,
    STATUS_FIELDS,
    features_payload,
    on_wire,
    reference_raw,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
SCENARIOS = ROOT / "prognos" / "hil" / "scenarios"

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


# --- what a check returns, and how it fails -------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Inputs a check accepted and inputs refused with the documented error."""

    accepted: int = 0
    refused: int = 0


ACCEPTED = Outcome(accepted=1)
REFUSED = Outcome(refused=1)


class FuzzFailure(AssertionError):
    """A parser broke a promise without raising an undocumented exception itself."""


# Text in an error message that belongs to Python, not to the reader of the message.
INTERNALS = (
    "Traceback",
    "set_int_max_str_digits",
    "Exceeds the limit",
    "int too large to convert",
    "maximum recursion depth",
    "object at 0x",
    "[Errno",
)


def assert_clear(message: str, source: str = "", *, max_len: int | None = None) -> None:
    """An error message for people: not empty, no Python internals (unless the input itself
    holds that text, which a message may quote), and at most `max_len` characters."""
    if not message.strip():
        raise FuzzFailure("empty error message")
    for phrase in INTERNALS:
        if phrase in message and phrase not in source:
            raise FuzzFailure(f"error message shows Python internals ({phrase!r}): {message[:300]!r}")
    if max_len is not None and len(message) > max_len:
        raise FuzzFailure(
            f"error message of {len(message)} characters (at most {max_len}): {message[:200]!r}"
        )


@contextmanager
def garbage_collection_paused() -> Iterator[None]:
    """No garbage collection while a parser is timed: a full collection of what the strategies
    left behind can take a second on its own, and is not the parser's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def timed_call(parse: Callable[[], T], expected: type[E], bound_s: float, what: str) -> T | E:
    """`parse()`, or the documented exception it raised; FuzzFailure if it took over `bound_s`
    of CPU time (CPU time, so that a busy machine does not look like a hang). Any other
    exception goes straight through."""
    with garbage_collection_paused():
        start = time.process_time()
        try:
            result: T | E = parse()
        except expected as exc:
            result = exc
        elapsed = time.process_time() - start
    if elapsed > bound_s:
        raise FuzzFailure(f"{what} took {elapsed:.2f} s of CPU time (bound {bound_s:g} s)")
    return result


_INDEXES = {n: st.integers(0, n - 1) for n in range(1, 13)}


def pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    """One of a few `options` that change from draw to draw; cheaper than a new sampled_from()
    each time, which Hypothesis validates anew."""
    return options[draw(_INDEXES[len(options)])]


# --- byte mutations, shared by every target ---------------------------------------------------------

MUTATIONS = ("flip", "byte", "insert", "delete", "truncate", "duplicate", "splice", "token")


def mutate(
    draw: st.DrawFn,
    data: bytes,
    *,
    others: Sequence[bytes] = (),
    tokens: Sequence[bytes] = (b"\x00",),
    ops: int = 4,
) -> bytes:
    """`data` after 1 to `ops` random edits: bit flips, bytes set, inserted, deleted or
    duplicated, a cut, the tail of another input spliced on, a token put in."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, ops))):
        op = draw(st.sampled_from(MUTATIONS)) if out else "insert"
        at = draw(st.integers(0, len(out)))
        end = draw(st.integers(at, min(len(out), at + 64)))
        if op == "flip" and at < len(out):
            out[at] ^= 1 << draw(_INDEXES[8])
        elif op == "byte" and at < len(out):
            out[at] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(tokens))
        elif op == "delete":
            del out[at:end]
        elif op == "truncate":
            del out[at:]
        elif op == "duplicate":
            out[at:at] = out[at:end]
        elif op == "splice" and others:
            other = draw(st.sampled_from(others))
            out[at:] = other[draw(st.integers(0, len(other))) :]
        else:
            out[at:end] = draw(st.sampled_from(tokens))
    return bytes(out)


def random_bytes(seed_size: tuple[int, int]) -> bytes:
    """Many random bytes from a seed: cheaper to make than Hypothesis's own, and still
    reproducible."""
    seed, size = seed_size
    return random.Random(seed).randbytes(size)


# --- 1. the record decoder --------------------------------------------------------------------------

RECORD_TIME_BOUND_S = 1.0
FIRST_FREE_KEY = K_HUMIDITY_PCT + 1  # wire keys from here on are unknown to the decoder
RECORD_MESSAGE_MAX = 400


def _vectors(name: str) -> list[bytes]:
    items = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return [bytes.fromhex(item["cbor_hex"]) for item in items]


VALID_RECORDS = _vectors("records.json")
INVALID_RECORDS = [data for data in _vectors("records_invalid.json") if data]
RECORD_SEEDS = VALID_RECORDS + INVALID_RECORDS


class Raw:
    """Bytes put into a CBOR encoding as they are: items cbor2 would never write."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Raw({self.data[:40].hex()}{'...' if len(self.data) > 40 else ''})"


def _write_raw(encoder: Any, value: object) -> None:
    if not isinstance(value, Raw):
        raise TypeError(f"cannot encode {type(value).__name__}")
    encoder.write(value.data)


def cbor(body: object, *, canonical: bool = False) -> bytes:
    data: bytes = cbor2.dumps(body, canonical=canonical, default=_write_raw)
    return data


HUGE_LENGTH = b"\xff\xff\xff\xff\xff\xff\xff\xff"
CBOR_TOKENS = [
    b"\x1b" + HUGE_LENGTH,  # the largest unsigned int
    b"\x3b" + HUGE_LENGTH,  # the smallest negative int
    b"\x5b" + HUGE_LENGTH,  # byte string of 2**64 - 1 bytes
    b"\x7b" + HUGE_LENGTH,  # text string of 2**64 - 1 bytes
    b"\x9b" + HUGE_LENGTH,  # array of 2**64 - 1 items
    b"\xbb" + HUGE_LENGTH,  # map of 2**64 - 1 pairs
    b"\x5b\x00\x00\x00\x00\x7f\xff\xff\xff",
    b"\x1c",  # reserved additional information
    b"\x5f\x41a\x01\xff",  # indefinite byte string with an int chunk
    b"\x7f\x61a\x41b\xff",  # indefinite text string with a byte chunk
    b"\x9f\x9f\x9f",  # indefinite arrays never closed
    b"\xff",  # a stray break
    b"\xf8\x10",  # a simple value in the two-byte form below 32
    b"\xf7",  # undefined
    b"\xf9\x7e\x00",  # half-precision NaN
    b"\xf9\x7c\x00",  # half-precision infinity
    b"\xf9\x00\x01",  # smallest half-precision subnormal
    b"\xfa\x7f\x80\x00\x01",  # single-precision signalling NaN
    b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x01",  # double NaN with a payload
    b"\xfb\x47\xef\xff\xff\xe0\x00\x00\x00",  # just above float32's range
    b"\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00",  # bignum 2**64
    b"\xc3\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00",  # negative bignum
    b"\xc5\x82\x1b\x7f\xff\xff\xff\xff\xff\xff\xff\x01",  # bigfloat, enormous exponent
    b"\xc4\x82\x3b\x7f\xff\xff\xff\xff\xff\xff\xff\x01",  # decimal fraction, enormous exponent
    b"\xd8\x1e\x82\x01\x00",  # rational 1/0
    b"\xd8\x1c\x81\xd8\x1d\x00",  # an array that holds itself (shared reference)
    b"\xd8\x1d\x05",  # a shared reference to nothing
    b"\xd8\x19\x00",  # a string reference outside a namespace
    b"\xd8\x23\x61(",  # a regular expression that does not compile
    b"\xd8\x25\x43abc",  # a UUID of three bytes
    b"\xd9\x01\x04\x42\x01\x02",  # an IP address of two bytes
    b"\xc0\x63abc",  # a date-time that is not one
    b"\xc1\x1b\x7f\xff\xff\xff\xff\xff\xff\xff",  # an epoch beyond any date
    b"\xc1\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # the epoch NaN
    b"\xd9\xd9\xf7",  # the self-described CBOR tag
    b"\xdb" + HUGE_LENGTH,  # the largest tag number
]
raw_fragments = st.one_of(
    st.sampled_from(CBOR_TOKENS),
    st.integers(1, 1200).map(lambda n: b"\x81" * n + b"\x00"),  # arrays nested n deep
    st.integers(1, 1200).map(lambda n: b"\xa1\x00" * n + b"\x00"),  # maps nested n deep
    st.integers(1, 1200).map(lambda n: b"\x9f" * n + b"\xff" * n),  # indefinite arrays nested
    st.integers(1, 1200).map(lambda n: b"\xc6" * n + b"\x00"),  # tags on tags
    st.binary(min_size=1, max_size=16),
).map(Raw)

FLOAT_EDGES = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e-45, FLOAT32_MAX, 3.5e38, 1.0000001, 1e308]
INT_EDGES = [
    0, 1, 23, 24, 255, 256, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -1, -(2**63), -(2**64) - 1,
]  # fmt: skip
huge_ints = st.sampled_from([4000, 14300, 20000, 60000]).flatmap(
    lambda bits: (
        st.integers(bits - 8, bits).map(lambda b: 2**b - 1)
        | st.integers(bits - 8, bits).map(lambda b: -(2**b))
    )
)
wild_leaves = st.one_of(
    st.integers(),
    st.sampled_from(INT_EDGES),
    huge_ints,
    st.floats(),
    st.floats(width=32),
    st.floats(width=16),
    st.sampled_from(FLOAT_EDGES),
    st.text(max_size=40),
    st.text(string.ascii_uppercase + string.digits, min_size=0, max_size=40),
    st.tuples(st.text(min_size=1, max_size=6), st.integers(10, 10_000)).map(lambda tn: tn[0] * tn[1]),
    st.binary(max_size=40),
    st.booleans(),
    st.none(),
    st.just(cbor2.undefined),
    st.builds(cbor2.CBORSimpleValue, st.integers(0, 19) | st.integers(32, 255)),
    st.datetimes(timezones=st.just(UTC)),
    st.decimals(allow_nan=False),
    st.fractions(),
    st.uuids(),
    raw_fragments,
)
hashable_keys = st.one_of(
    st.integers(), st.text(max_size=40), st.binary(max_size=8), st.booleans(), st.floats()
)
wild_values = st.recursive(
    wild_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(hashable_keys, inner, max_size=5),
        st.builds(cbor2.CBORTag, st.integers(0, 2**64 - 1) | st.sampled_from(range(0, 40)), inner),
    ),
    max_leaves=12,
)


plain_values = st.recursive(
    st.one_of(
        st.integers(), huge_ints, st.floats(), st.text(max_size=40), st.binary(max_size=40), st.booleans()
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers() | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)  # well-formed CBOR without tags: what a later version might put under a key of its own


def _pick_container(draw: st.DrawFn, body: dict[Any, Any]) -> tuple[Any, Any]:
    """A container in the record body and a key or index in it: the top map or one of the
    subsystem map, the fault array, one fault, the counter map, the model pair."""
    places: list[tuple[Any, Any]] = [(body, key) for key in list(body)] or [(body, 0)]
    for value in body.values():
        if isinstance(value, dict):
            places += [(value, key) for key in value]
            places += [
                (item, i) for item in value.values() if isinstance(item, list) for i in range(len(item))
            ]
        elif isinstance(value, list):
            places += [(value, i) for i in range(len(value))]
            places += [(item, i) for item in value if isinstance(item, list) for i in range(len(item))]
    place: tuple[Any, Any] = draw(st.sampled_from(places))
    return place


@st.composite
def record_structures(draw: st.DrawFn) -> bytes:
    """A golden record decoded, changed in one to four places (a field of a wrong type, a
    huge integer, NaN, a deep nesting, a CBOR item cbor2 would never write, a field taken away
    or added) and encoded again."""
    body: Any = cbor2.loads(draw(st.sampled_from(VALID_RECORDS)))
    for _ in range(1 + draw(_INDEXES[4])):
        container, key = _pick_container(draw, body)
        action = pick(draw, ["replace", "replace", "delete", "add", "rekey", "wrap"])
        if action == "replace":
            container[key] = draw(wild_values)
        elif action == "delete":
            if isinstance(container, dict):
                container.pop(key, None)
            elif key < len(container):
                del container[key]
        elif action == "add":
            if isinstance(container, dict):
                container[draw(hashable_keys | st.integers(0, 40))] = draw(wild_values)
            else:
                container.append(draw(wild_values))
        elif action == "rekey" and isinstance(container, dict) and key in container:
            container[draw(hashable_keys)] = container.pop(key)
        elif action == "wrap":
            tag = cbor2.CBORTag(draw(st.integers(0, 300)), body)
            body = pick(draw, [[body], {0: body}, tag])
            break
    try:
        return cbor(body, canonical=draw(st.booleans()))
    except (TypeError, ValueError, OverflowError, cbor2.CBOREncodeError):
        return cbor(body)  # canonical encoding refuses some mixes of key types


@st.composite
def record_mutations(draw: st.DrawFn) -> bytes:
    """A golden vector with bits flipped, cut, spliced with another, CBOR headers put in."""
    seed = draw(st.sampled_from(RECORD_SEEDS))
    return mutate(draw, seed, others=RECORD_SEEDS, tokens=CBOR_TOKENS, ops=6)


record_inputs = st.one_of(
    st.binary(max_size=300),
    record_mutations(),
    record_structures(),
    st.tuples(st.integers(0, 2**32), st.integers(65_000, 65_600)).map(random_bytes),  # about the size limit
)


def check_record(data: bytes) -> Outcome:
    """decode_record(data): a record that survives its own round trip, or DecodeError with a
    short clear message."""
    result = timed_call(lambda: decode_record(data), DecodeError, RECORD_TIME_BOUND_S, "decode_record")
    if isinstance(result, DecodeError):
        assert_clear(str(result), max_len=RECORD_MESSAGE_MAX)
        return REFUSED
    if not isinstance(result, DiagnosticRecord):
        raise FuzzFailure(f"decode_record returned {type(result).__name__}")
    encoded = encode_record(result)
    if decode_record(encoded) != result:
        raise FuzzFailure("a decoded record changes on its round trip")
    return ACCEPTED


@st.composite
def record_variants(draw: st.DrawFn) -> tuple[bytes, DiagnosticRecord]:
    """A golden record in other bytes that mean the same: unknown keys added, keys in another
    order, floats as doubles or whole numbers as integers, integers not in their shortest form.
    The decoder must read each to the golden record."""
    vector = draw(st.sampled_from(VALID_RECORDS))
    record = decode_record(vector)
    body: dict[Any, Any] = cbor2.loads(vector)
    for _ in range(draw(_INDEXES[5])):
        key = draw(
            st.integers(FIRST_FREE_KEY, 2**64 - 1)
            | st.text(max_size=12)
            | st.binary(max_size=4)
            | st.integers(-100, -1)
        )
        body[key] = draw(plain_values)
    for pair in body.get(7, {}).values():
        for i, value in enumerate(pair):
            pair[i] = pick(draw, _same_numbers(value))
    for fault in body.get(8, []):
        for i in range(1, len(fault)):
            fault[i] = pick(draw, _same_numbers(fault[i]))
    for cause in body.get(K_CAUSES, []):
        cause[1] = pick(draw, _same_numbers(cause[1]))
    for key in (K_AMBIENT_C, K_HUMIDITY_PCT):
        if key in body:
            body[key] = pick(draw, _same_numbers(body[key]))
    for key in (2, 3, 4):
        if draw(st.booleans()):
            body[key] = Raw(b"\x1b" + body[key].to_bytes(8, "big"))  # a 64-bit head for any value
    items = list(body.items())
    order = draw(st.permutations(range(len(items))))
    data = cbor(dict(items[i] for i in order))
    if len(data) > MAX_RECORD_BYTES:  # the unknown keys made it too big to be valid
        data = cbor({key: value for key, value in body.items() if key in range(FIRST_FREE_KEY)})
    return data, record


def _same_numbers(value: float) -> list[object]:
    """Encodings of one float32 value that the lenient decoder accepts: double, single, and
    the integer when it is whole."""
    same: list[object] = [float(value), Raw(b"\xfa" + struct.pack(">f", value))]
    if math.isfinite(value) and value == int(value):
        same.append(int(value))
    return same


def check_record_variant(case: tuple[bytes, DiagnosticRecord]) -> Outcome:
    data, expected = case
    result = timed_call(lambda: decode_record(data), DecodeError, RECORD_TIME_BOUND_S, "decode_record")
    if isinstance(result, DecodeError):
        raise FuzzFailure(f"a valid record in other bytes was refused: {result}")
    if result != expected:
        raise FuzzFailure(f"a valid record in other bytes decoded to {result!r}")
    return ACCEPTED


# --- 2. the sensor-node link ----------------------------------------------------------------------

LINK_TIME_BOUND_S = 1.0
CATALOG = default_catalog()
NODE_IDS = sorted({node_id for node_id, _ in CATALOG.by_node})

node_ids = st.sampled_from(NODE_IDS) | st.integers(0, 255)
seqs = st.integers(0, 0xFFFF)
channel_values = st.lists(
    st.tuples(
        st.integers(1, 9) | st.integers(0, 255),
        st.floats(width=32) | st.sampled_from([0.0, -0.0, 1.0, 49.9, 50.0, 1e30, -1e30]),
    ),
    max_size=MAX_CHANNELS,
)
features_wire = st.builds(encode_features, node_ids, seqs, st.integers(0, 0xFFFFFFFF), channel_values)
COUNTER_FIELDS = [name for name in STATUS_FIELDS if name != "reset_cause"]
status_wire = st.builds(
    lambda node, seq, counters, cause: encode_status(
        node, seq, **dict(zip(COUNTER_FIELDS, counters, strict=True)), reset_cause=cause
    ),
    node_ids,
    seqs,
    st.lists(st.integers(0, 0xFFFFFFFF), min_size=len(COUNTER_FIELDS), max_size=len(COUNTER_FIELDS)),
    st.integers(0, 255),
)
valid_wire = features_wire | status_wire


FLAWS = st.sampled_from(["version", "kind", "length", "count", "status", "payload", "oversize", "short"])


@st.composite
def crafted_wire(draw: st.DrawFn) -> bytes:
    """A frame with a correct CRC around a header or payload that is wrong: the checks after
    the CRC (version, length, kind, payload) see it, as line noise never shows them."""
    node, seq = draw(node_ids), draw(seqs)
    values = [(c, v) for c, v in draw(channel_values)]
    good = features_payload(draw(st.integers(0, 0xFFFFFFFF)), values)
    flaw = draw(FLAWS)
    if flaw == "version":
        raw = reference_raw(
            FEATURES, node, seq, good, version=draw(st.integers(0, 255).filter(lambda v: v != 1))
        )
    elif flaw == "kind":
        raw = reference_raw(draw(st.integers(0, 255).filter(lambda k: k not in (1, 2))), node, seq, good)
    elif flaw == "length":
        length = draw(st.integers(0, 255).filter(lambda n: n != len(good)))
        raw = reference_raw(FEATURES, node, seq, good, payload_len=length)
    elif flaw == "count":
        count = draw(st.integers(0, 255).filter(lambda n: n != len(values)))
        raw = reference_raw(FEATURES, node, seq, features_payload(0, values, count=count))
    elif flaw == "status":
        raw = reference_raw(STATUS, node, seq, draw(st.binary(max_size=255).filter(lambda b: len(b) != 21)))
    elif flaw == "payload":
        payload = draw(st.binary(max_size=255))
        raw = reference_raw(pick(draw, [FEATURES, STATUS]), node, seq, payload)
    elif flaw == "oversize":
        payload = draw(st.binary(min_size=256, max_size=400))
        raw = reference_raw(FEATURES, node, seq, payload, payload_len=draw(st.integers(0, 255)))
    else:
        body = draw(st.binary(max_size=5))
        raw = body + struct.pack("<I", _crc32(body))
    return on_wire(raw)


def _crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


LINK_TOKENS = [b"\x00", b"\x00\x00", b"\xff", b"\x01", b"\xfe", b"\xff" * 4]


@st.composite
def corrupted_wire(draw: st.DrawFn) -> bytes:
    """A valid frame hit by line noise: flipped bits, bytes lost or added, cut short."""
    return mutate(draw, draw(valid_wire), tokens=LINK_TOKENS, ops=3)


noise = st.binary(max_size=40)
long_noise = st.binary(min_size=250, max_size=900).map(lambda b: b.replace(b"\x00", b"\x5a"))
segments = st.one_of(valid_wire, valid_wire, crafted_wire(), corrupted_wire(), noise, long_noise)
link_streams = st.tuples(
    st.lists(segments, min_size=1, max_size=8).map(b"".join),
    st.lists(st.integers(1, 300), min_size=1, max_size=8),
)


def chunks(data: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    """`data` cut into pieces of the given sizes, used over and over."""
    at = i = 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        yield data[at : at + size]
        at += size
        i += 1


def frame_key(frame: Frame) -> tuple[object, ...]:
    """What a frame holds, comparable with NaN values (as their bits)."""
    fields = frame.as_dict()
    values = fields.pop("values", [])
    assert isinstance(values, list)
    return (type(frame).__name__, sorted(fields.items()), [(c, struct.pack("<f", v)) for c, v in values])


def check_link(case: tuple[bytes, Sequence[int]]) -> Outcome:
    """A stream fed in chunks to FrameDecoder and NodeDecoder: neither raises, and they agree
    frame by frame with decode_frame on each run of bytes between zeros (which raises only
    FrameError with one of REASONS)."""
    stream, sizes = case
    decoder = FrameDecoder()
    nodes = NodeDecoder(catalog=CATALOG)
    frames: list[Frame] = []
    samples = []
    with garbage_collection_paused():
        start = time.process_time()
        for piece in chunks(stream, sizes):
            frames += decoder.feed(piece)
            samples += nodes.feed(piece, 1.0)
            if not 0 <= decoder.pending <= MAX_ENCODED:
                raise FuzzFailure(f"pending {decoder.pending} is outside 0-{MAX_ENCODED}")
        elapsed = time.process_time() - start
    if elapsed > LINK_TIME_BOUND_S:
        raise FuzzFailure(f"feeding {len(stream)} bytes took {elapsed:.2f} s (bound {LINK_TIME_BOUND_S:g} s)")

    runs = stream.split(b"\x00")
    expected: list[Frame] = []
    errors = Counter({reason: 0 for reason in REASONS})
    skipped = 0
    for run in (run for run in runs[:-1] if run):
        try:
            expected.append(decode_frame(run))
        except FrameError as exc:
            if exc.reason not in REASONS or str(exc) != exc.reason:
                raise FuzzFailure(f"FrameError with reason {exc.reason!r}") from exc
            errors[exc.reason] += 1
            skipped += len(run)
    tail = runs[-1]
    if len(tail) > MAX_ENCODED:
        errors["oversize"] += 1
        skipped += len(tail)
    if not all(isinstance(frame, FeaturesFrame | StatusFrame) for frame in frames):
        raise FuzzFailure("the decoder returned a frame of no known kind")
    if [frame_key(f) for f in frames] != [frame_key(f) for f in expected]:
        raise FuzzFailure("the stream decoder and decode_frame disagree on the frames")
    if decoder.errors != dict(errors) or decoder.frames_bad != sum(errors.values()):
        raise FuzzFailure(f"errors {decoder.errors}, expected {dict(errors)}")
    if decoder.bytes_skipped != skipped:
        raise FuzzFailure(f"bytes_skipped {decoder.bytes_skipped}, expected {skipped}")
    if decoder.pending != (len(tail) if len(tail) <= MAX_ENCODED else 0):
        raise FuzzFailure(f"pending {decoder.pending} with {len(tail)} bytes after the last zero")

    counters = nodes.counters()
    if counters["frames_ok"] != decoder.frames_ok or counters["frames_bad"] != decoder.frames_bad:
        raise FuzzFailure(f"NodeDecoder counted {counters}, the link decoder {decoder.frames_ok} ok")
    values = sum(len(f.values) for f in frames if isinstance(f, FeaturesFrame))
    if len(samples) + counters["values_unknown"] + counters["values_out_of_range"] != values:
        raise FuzzFailure("samples and dropped values do not add up to the values received")
    for sample in samples:
        if not CATALOG[sample.path].in_range(sample.value):
            raise FuzzFailure(f"sample {sample} is outside its signal's range")
    whole = timed_call(lambda: decode_frame(stream[:2000]), FrameError, LINK_TIME_BOUND_S, "decode_frame")
    if isinstance(whole, FrameError) and whole.reason not in REASONS:
        raise FuzzFailure(f"FrameError with reason {whole.reason!r}")
    return Outcome(accepted=decoder.frames_ok, refused=decoder.frames_bad)


# --- 3. the DMS importer --------------------------------------------------------------------------

DMS_TIME_BOUND_S = 1.0
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DmsCase:
    """One file for the importer: its bytes, its name (the suffix picks the format), the kind
    given with --kind (None: told from the columns) and, for a valid file, the records it
    must give."""

    data: bytes
    name: str
    kind: str | None = None
    expected: tuple[Record, ...] | None = None


class Wild:
    """A value put into a file as it is, whatever its column's type."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Wild({self.value!r:.80})"


class RawJson(Wild):
    """JSON text put into a file as it is (numbers JSON allows but Python cannot hold, deep
    nesting, NaN)."""


UNICODE_TEXT = [
    "A\u2028B", "x\x85y", "a\u2029b", "Ω-7", "\U0001f600", "a\u3000b", "mid\ufeffdle", '"q"', "s;c",
    "c,d", "é",
]  # fmt: skip
text_values = (
    st.one_of(
        st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30),
        st.sampled_from(UNICODE_TEXT),
        st.tuples(st.sampled_from(",;"), st.integers(5, 80)).map(lambda dn: ("a" + dn[0]) * dn[1] + "a"),
    )
    .map(str.strip)
    .filter(bool)
)
tag_text_values = text_values.filter(lambda t: "\\" not in t)
part_numbers = (
    st.text(string.ascii_uppercase + string.digits + "-_./ Ωé", min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
moments = st.datetimes(datetime(1970, 1, 2), datetime(2199, 12, 30)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC)
) | st.dates(date(1970, 1, 2), date(2199, 12, 30)).map(lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC))


def _period_label(draw: st.DrawFn) -> tuple[str, str]:
    """(text in the file, the label the parser makes of it)."""
    day = draw(st.dates(date(1970, 1, 5), date(2199, 12, 20)))
    if draw(st.booleans()):
        label = f"{day.year:04d}-{day.month:02d}"
        return label, label
    year, week, _ = day.isocalendar()
    label = f"{year:04d}-W{week:02d}"
    return pick(draw, [label, label.replace("W", "w"), f"{year:04d}W{week:02d}"]), label


@dataclass
class Cell:
    """A valid value: what the parser must make of it, and how the file spells it."""

    value: Value
    csv: str
    json: object = None


@functools.cache
def _numbers(column: Column) -> st.SearchStrategy[float]:
    """The valid numbers of a column, whole ones for an int column."""
    low = column.minimum if column.minimum is not None else -1e6
    high = column.maximum if column.maximum is not None else 1e6
    if column.type == "int":
        return st.integers(int(low), int(high))
    return st.floats(low, high)


TIME_ZONES = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


def _valid_cell(draw: st.DrawFn, column: Column) -> Cell:
    if column.type == "text":
        text = draw(tag_text_values if column.tag else text_values)
        return Cell(text, pick(draw, [text, f" {text} "]), text)
    if column.type == "int":
        number = int(draw(_numbers(column)))
        spelled = pick(draw, [str(number), f"+{number}", f"{number}.0", f" {number} "])
        return Cell(number, spelled, pick(draw, [number, float(number), str(number)]))
    if column.type == "float":
        real = draw(_numbers(column))
        return Cell(real, repr(real), pick(draw, [real, repr(real)]))
    if column.type == "bool":
        flag = draw(st.booleans())
        words = ["true", "yes", "y", "t", "1"] if flag else ["false", "no", "n", "f", "0"]
        word = draw(st.sampled_from(words))
        word = pick(draw, [word, word.upper(), word.title()])
        return Cell(flag, word, pick(draw, [flag, int(flag), word]))
    if column.type == "time":
        moment = draw(moments)
        zone = draw(TIME_ZONES)
        forms = [
            moment.isoformat().replace("+00:00", "Z"),
            moment.astimezone(zone).isoformat(),
            moment.replace(tzinfo=None).isoformat(sep=" "),
        ]
        if moment.time() == clock_time(0):
            forms.append(moment.date().isoformat())
        spelled = draw(st.sampled_from(forms))
        return Cell(moment, spelled, spelled)
    if column.type == "parts":
        parts = tuple(draw(st.lists(part_numbers, min_size=1, max_size=4)))
        joined = pick(draw, [";", " ; "]).join(parts)
        return Cell(parts, joined, pick(draw, [list(parts), joined]))
    spelled, label = _period_label(draw)
    return Cell(label, spelled, spelled)


KIND_NAMES = st.sampled_from(sorted(KINDS))
ID_COLUMNS = {
    "work_order": ("order_id", "O"),
    "complaint": ("complaint_id", "C"),
    "survey": ("survey_id", "S"),
    "parts_stock": ("part", "P"),
    "dealer_finance": ("dealer_id", "D"),
    "vehicle": ("vin", "V"),
    "service_center": ("service_center", "SC"),
    "part": ("part", "PM"),
}
SKILLS = ["battery", "tires", "brakes", "bearings", "motor"]
TAGS = st.from_regex(TAG, fullmatch=True)  # a work order's symptoms, root cause and repair steps


def _valid_row(draw: st.DrawFn, kind: Kind, index: int) -> dict[str, Cell | None]:
    """One row that obeys every rule of its kind; None is an empty optional column."""
    row: dict[str, Cell | None] = {}
    for column in kind.columns:
        row[column.name] = (
            None if not column.required and draw(_INDEXES[4]) == 0 else _valid_cell(draw, column)
        )
    id_column, prefix = ID_COLUMNS[kind.name]
    ident = f"{prefix}{index}"
    row[id_column] = Cell(ident, ident, ident)
    if "dealer_id" in row and id_column != "dealer_id":
        row["dealer_id"] = Cell(f"D{index}", f"D{index}", f"D{index}")
    opened = row.get("opened_at")
    if "closed_at" in row and row["closed_at"] is not None and opened is not None:
        assert isinstance(opened.value, datetime)
        closed = opened.value + timedelta(milliseconds=draw(st.integers(0, 10**10)))
        row["closed_at"] = None if closed >= LATEST else Cell(closed, _iso(closed), _iso(closed))
    if "repeat_of_order_id" in row and row["repeat_of_order_id"] is not None:
        other = f"{prefix}{index + 1 + draw(_INDEXES[9])}"
        row["repeat_of_order_id"] = Cell(other, other, other)
    if kind.name == "survey" and row["csat"] is None:
        row["csat"] = Cell(3, "3", 3)
    for name in TAG_COLUMNS:
        if name in row and row[name] is not None:
            tags = draw(st.lists(TAGS, min_size=1, max_size=1 if name == "root_cause" else 4))
            row[name] = Cell(";".join(tags), ";".join(tags), ";".join(tags))
    if kind.name == "service_center" and row["skills"] is not None:
        skills = draw(st.lists(st.sampled_from(SKILLS), min_size=1, max_size=5, unique=True))
        row["skills"] = Cell(";".join(skills), ";".join(skills), ";".join(skills))
    return row


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _expected(kind: Kind, row: Mapping[str, Cell | None]) -> Record:
    record: Record = {}
    for column in kind.columns:
        cell = row.get(column.name)
        record[column.name] = cell.value if cell is not None else (() if column.type == "parts" else None)
    return record


@dataclass
class DmsFile:
    """A file being made: its kind, its columns in order and its rows, cell by cell."""

    kind: Kind
    columns: list[str]
    rows: list[dict[str, Cell | Wild | None]] = field(default_factory=list)


PLACEHOLDER = "\ue000{}\ue000"  # where RawJson text goes in the JSON
RAGGED = "\ue001"  # a row key that is no column: the row has a cell too many or too few


def _render(draw: st.DrawFn, file: DmsFile, fmt: str) -> tuple[bytes, str]:
    """The file's bytes in a format (csv, json or jsonl), and a name that selects it."""
    raws: list[str] = []

    def json_value(cell: Cell | Wild | None) -> object:
        if isinstance(cell, RawJson):
            raws.append(str(cell.value))
            return PLACEHOLDER.format(len(raws) - 1)
        if isinstance(cell, Wild):
            return cell.value
        return None if cell is None else cell.json

    bom = "\ufeff" if draw(_INDEXES[5]) == 0 else ""
    if fmt == "csv":
        delimiter = pick(draw, [",", ";", "\t"])
        newline = pick(draw, ["\n", "\r\n", "\r"])
        out = io.StringIO()
        quote_all = draw(st.booleans())
        writer = csv.writer(
            out,
            delimiter=delimiter,
            lineterminator=newline,
            quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
        )
        writer.writerow([_spell_name(draw, name) for name in file.columns])
        for row in file.rows:
            cells = [_csv_text(row.get(name)) for name in file.columns]
            ragged = row.get(RAGGED)
            if isinstance(ragged, Wild):
                cells = [*cells, "x"] if ragged.value else cells[:-1]
            writer.writerow(cells)
            if draw(_INDEXES[7]) == 0:
                out.write(pick(draw, [newline, delimiter * (len(file.columns) - 1) + newline]))
        text = out.getvalue()
        name = pick(draw, ["export.csv", "export.tsv", "EXPORT.CSV", "export"])
    else:
        ensure_ascii = draw(st.booleans())
        objects = [
            {_spell_name(draw, name): json_value(row[name]) for name in file.columns if name in row}
            for row in file.rows
        ]
        if fmt == "json":
            text = json.dumps(objects, ensure_ascii=ensure_ascii, indent=pick(draw, [None, 2]))
            name = pick(draw, ["export.json", "export"])
        else:
            newline = pick(draw, ["\n", "\r\n"])
            lines = [json.dumps(item, ensure_ascii=ensure_ascii) for item in objects]
            text = newline.join(lines) + pick(draw, ["", newline, newline * 2])
            name = pick(draw, ["export.jsonl", "export.ndjson", "export.json", "export"])
        for i, raw in enumerate(raws):
            text = text.replace(json.dumps(PLACEHOLDER.format(i), ensure_ascii=ensure_ascii), raw)
    return (bom + text).encode("utf-8", "surrogatepass"), name


def _spell_name(draw: st.DrawFn, name: str) -> str:
    return pick(draw, [name, name, name.upper(), f" {name} ", name.title()])


def _csv_text(cell: Cell | Wild | None) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Wild):
        value = cell.value
        return value if isinstance(value, str) else json.dumps(value)
    return cell.csv


@st.composite
def dms_valid_files(draw: st.DrawFn) -> DmsCase:
    """A file of one kind that obeys every rule, in CSV, a JSON array or JSON Lines, with
    optional columns left out, names in any case, BOM, CRLF, quoting, blank lines."""
    kind = KINDS[draw(KIND_NAMES)]
    rows = [_valid_row(draw, kind, i) for i in range(1 + draw(_INDEXES[5]))]
    fmt = pick(draw, ["csv", "json", "jsonl"])
    keep = {"csat"} if kind.name == "survey" else set()  # a survey needs csat or nps
    names = [c.name for c in kind.columns if c.required or c.name in keep or draw(_INDEXES[5]) > 0]
    names = list(draw(st.permutations(names)))
    for row in rows:
        for column in kind.columns:
            if column.name not in names:
                row[column.name] = None
    file = DmsFile(kind, names, [{k: v for k, v in row.items() if k in names} for row in rows])
    if fmt != "csv":
        for file_row in file.rows:  # JSON: an empty column is null or left out
            for name in [n for n, cell in file_row.items() if cell is None]:
                if draw(st.booleans()):
                    del file_row[name]
    data, name = _render(draw, file, fmt)
    expected = tuple(_expected(kind, row) for row in rows)
    return DmsCase(data, name, pick(draw, [None, kind.name]), expected)


WILD_CELLS = [
    "", " ", "nan", "NaN", "inf", "-inf", "1e999", "-1e999", "1" * 5000, "9" * 41, "0x10", "1,5", "1_000",
    "\u0663", "+-1", ".", "e5", "2024-02-30", "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2024-03-01T25:00", "2020-W53", "2021-W53",
    "0000-01", "2024-13", "9999-12", "2024-W00", "true", "maybe", "a\\b", "x;y", ";;", ";", "\x00", "\t",
    "\x7f", '"', "a" * 201, "\ufeff", "=1+2", "\u2028", "\x85",
]  # fmt: skip
RAW_JSON = st.one_of(
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1.5e-400", "1" * 5000, "-" + "9" * 4400]
    ),
    st.sampled_from(['"\\ud800"', '"\\udfff x"', '["\\ud83d"]', '"a\\u0000b"', '"\\u2028"']),
    st.integers(900, 1100).map(lambda n: "[" * n + "]" * n),
    st.integers(900, 1100).map(lambda n: '{"a":' * n + "1" + "}" * n),
).map(RawJson)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(WILD_CELLS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
COLUMN_NAMES = sorted({c.name for k in KINDS.values() for c in k.columns})
ODD_NAMES = ["\ud800", "x\udfff", "", " ", "\u2028", "a\tb", "vin\x00"]
csv_cells = st.one_of(st.sampled_from(WILD_CELLS), st.text(max_size=30)).map(Wild)
json_cells = st.one_of(json_values.map(Wild), RAW_JSON)


@st.composite
def dms_mutated_files(draw: st.DrawFn) -> DmsCase:
    """A valid file with some of it broken: a cell of the wrong type or out of range, a column
    missing or added or named twice, a row repeated or ragged, the kind mistaken, JSON of the
    wrong shape; then, sometimes, its bytes mutated."""
    kind = KINDS[draw(KIND_NAMES)]
    rows = [_valid_row(draw, kind, i) for i in range(1 + draw(_INDEXES[4]))]
    fmt = pick(draw, ["csv", "json", "jsonl"])
    file = DmsFile(kind, [c.name for c in kind.columns], [dict(row) for row in rows])
    cells = csv_cells if fmt == "csv" else json_cells
    for _ in range(1 + draw(_INDEXES[3])):
        row = draw(st.sampled_from(file.rows))
        action = pick(draw, ["cell", "cell", "cell", "drop", "extra", "twice", "repeat", "ragged"])
        if action == "cell":
            row[draw(st.sampled_from(file.columns))] = draw(cells)
        elif action == "drop" and len(file.columns) > 1:
            file.columns.remove(draw(st.sampled_from(file.columns)))
        elif action == "extra":
            extra = draw(st.text(max_size=12) | st.sampled_from(COLUMN_NAMES) | st.sampled_from(ODD_NAMES))
            if extra not in file.columns:
                file.columns.append(extra)
                for other in file.rows:
                    other[extra] = draw(cells)
        elif action == "twice":
            file.columns.append(draw(st.sampled_from(file.columns)).upper())
        elif action == "repeat":
            file.rows.append(dict(row))
        elif action == "ragged" and fmt == "csv":
            row[RAGGED] = Wild(draw(st.booleans()))  # True: a cell more than the header; False: one less
    data, name = _render(draw, file, fmt)
    if fmt != "csv" and draw(_INDEXES[6]) == 0:
        shapes = ['{"a": 1}', "[[1, 2]]", "[1, null]", '"text"', "[]", "{}\n[]", "[" * 3000]
        data = draw(st.sampled_from(shapes)).encode()
    if draw(_INDEXES[4]) == 0:
        data = mutate(
            draw, data, tokens=[b'"', b",", b";", b"\n", b"\r", b"\xff", b"\xef\xbb\xbf", b"[", b"{"]
        )
    kind_name = pick(draw, [None, None, kind.name, draw(KIND_NAMES)])
    return DmsCase(data, name, kind_name)


dms_names = st.sampled_from(["x.csv", "x.tsv", "x.json", "x.jsonl", "x.ndjson", "x", "x.txt", ".csv", "x."])
dms_arbitrary = st.builds(
    DmsCase,
    st.one_of(
        st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass"))
    ),
    dms_names,
    st.none() | st.sampled_from(sorted(KINDS)),
)
dms_inputs = st.one_of(dms_arbitrary, dms_valid_files(), dms_mutated_files(), dms_mutated_files())


def utf8(text: str, what: str) -> str:
    """`text`, if it can be written as UTF-8 (a lone surrogate from a JSON escape cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FuzzFailure(f"{what} cannot be written as UTF-8: {text[:200]!r}") from exc
    return text


def dms_check_file(data: bytes, name: str, kind: str | None) -> Any:
    """What `prognos cloud import-dms --check` does with one file, without reading it from disk."""
    table = decode_table(data, name)
    chosen = kind_named(kind) if kind else detect_kind(table.columns, name)
    return validate(table, chosen)


def check_dms(case: DmsCase) -> Outcome:
    """A file is refused with ConfigError (a clear message that names it), or checked: every
    problem names a line or index of the file and its reasons, every good record makes a line
    of line protocol, and a valid file gives exactly its records."""
    source = case.data.decode("utf-8", "replace")
    result = timed_call(
        lambda: dms_check_file(case.data, case.name, case.kind),
        ConfigError,
        DMS_TIME_BOUND_S,
        "checking a file",
    )
    if isinstance(result, ConfigError):
        message = utf8(str(result), "the error message")
        assert_clear(message, source)
        if not message.startswith(case.name):
            raise FuzzFailure(f"the message does not name the file: {message[:200]!r}")
        if case.expected is not None:
            raise FuzzFailure(f"a valid file was refused: {message[:300]}")
        return REFUSED
    lines = source.count("\n") + source.count("\r") + 1
    for problem in result.problems:
        where = re.fullmatch(r"(line|index) ([0-9]+)", problem.location)
        if where is None or not problem.reasons or not all(isinstance(r, str) and r for r in problem.reasons):
            raise FuzzFailure(f"a problem without its place or reasons: {problem!r}")
        if int(where[2]) != problem.position or problem.position > max(lines, result.rows):
            raise FuzzFailure(f"{problem.location} is not in the file")
        assert_clear(str(problem), source)
    # What the importer reports is printed, and its points are sent, as UTF-8.
    utf8(", ".join(result.ignored_columns), "the ignored columns")
    for record in result.records:
        utf8(dms_point_line(result.kind, record), "a line of line protocol")
    if result.problems:
        if case.expected is not None:
            raise FuzzFailure(f"a valid file has problems: {[str(p) for p in result.problems][:3]}")
        assert_clear(utf8(str(RejectedFilesError([result])), "the list of bad rows"), source)
        return REFUSED
    if case.expected is not None and result.records != case.expected:
        got, want = result.records, case.expected
        diff = [
            (i, k, g.get(k), w.get(k))
            for i, (g, w) in enumerate(zip(got, want, strict=False))
            for k in w
            if g.get(k) != w.get(k)
        ]
        raise FuzzFailure(f"a valid file gave other records ({len(got)} of {len(want)}): {diff[:3]}")
    return ACCEPTED


# --- 4. the scenario loader -----------------------------------------------------------------------

SCENARIO_TIME_BOUND_S = 3.0  # [vehicles] count = 2000 builds its fleet in about 0.7 s
ORIGIN = "fuzz.toml"
SCENARIO_FILES = sorted(SCENARIOS.rglob("*.toml"))
SCENARIO_TEXTS = [path.read_text(encoding="utf-8") for path in SCENARIO_FILES]


@dataclass(frozen=True)
class ScenarioCase:
    """Scenario text, the directory its relative paths start from and, for a valid scenario,
    the shipped file it must load the same as."""

    text: str
    base: Path = SCENARIOS
    same_as: int | None = None  # index into SCENARIO_FILES


class TomlLiteral(str):
    """TOML text written into a document as it is (an integer Python cannot print, ...)."""


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:
            out.append("?")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: object) -> str:
    if isinstance(value, TomlLiteral):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_text(doc: Mapping[str, object]) -> str:
    """A document as TOML: plain keys, then each table under its [header], then each array of
    tables as [[entries]]."""
    lines = [
        f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not _is_table(v) and not _is_tables(v)
    ]
    for key, value in doc.items():
        if _is_table(value):
            assert isinstance(value, dict)
            lines += ["", f"[{toml_key(key)}]"] + [
                f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()
            ]
    for key, value in doc.items():
        if _is_tables(value):
            assert isinstance(value, list)
            for item in value:
                lines += ["", f"[[{toml_key(key)}]]"] + [
                    f"{toml_key(k)} = {toml_value(v)}" for k, v in item.items()
                ]
    return "\n".join(lines) + "\n"


def _is_table(value: object) -> bool:
    return isinstance(value, dict)


def _is_tables(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


KNOWN_WORDS = [
    "now", "max", "all", "none", "default", "bench", "virtual", "replay", "socketcan", "slcan", "pty",
    "detect", "no_alert", "false_alarms", "uplink", "battery_drift", "tire_leak", "pad_wear",
    "bearing_wear", "motor_noise", "battery", "tires", "EV-1", "EV-2", "north", "south", "coast",
    "PRGHILBAT00000001", "L002", "can0", "",
]  # fmt: skip
PATHS = [
    "~",
    "~/x",
    "~nosuchuser/x",
    "~nosuchuser",
    "/",
    ".",
    "..",
    "/dev/null",
    "a" * 300,
    "a/" * 3000,
    "\x00",
    "a\x00b",
]
PATH_KEYS = [("agent", "models"), ("agent", "catalog"), ("agent", "dbc"), ("interfaces", "log")]
toml_leaves = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, -1, 2, 10, 600, 2000, 2001, 2**31 - 1, 2**31, 2**63 - 1, -(2**63)]),
    st.sampled_from(["9" * 400, "-" + "9" * 400, "1" * 5000, "0x7f", "1_000", "+0"]).map(TomlLiteral),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.5]),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(KNOWN_WORDS + PATHS),
    st.datetimes(timezones=st.none() | st.timezones() | st.just(UTC)),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    toml_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
KNOWN_KEYS = sorted(
    {
        "name", "description", "seed", "fleet", "time", "vehicles", "vehicle", "fault", "interfaces", "agent",
        "expect", "start", "start_days_ago", "duration_days", "window_s", "speedup", "count", "fault_share",
        "batch_defects", "vin", "model", "lot", "climate", "aggressiveness", "km_per_day", "trips_per_day",
        "urban_share", "pad_wear_percent", "odometer_km", "kind", "onset_day", "failure_day", "growth",
        "target",
        "can", "can_channel", "log", "uart", "bus_sleep", "models", "catalog", "dbc", "heartbeat_s",
        "within_days_of_onset", "min_lead_days", "min_share", "max_per_1000_vehicle_days",
        "max_bytes_per_vehicle_day", "subsystems",
    }
)  # fmt: skip


def _tables_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The document and every table in it, those of arrays of tables too."""
    found = [doc]
    for value in doc.values():
        if isinstance(value, dict):
            found.append(value)
        elif _is_tables(value):
            found += value
    return found


@st.composite
def scenario_structures(draw: st.DrawFn) -> ScenarioCase:
    """A shipped scenario with one to four keys changed: a value of a wrong type or range,
    a key taken away or unknown, a table missing, turned into something else or repeated."""
    index = draw(st.sampled_from(range(len(SCENARIO_FILES))))
    doc: dict[str, Any] = tomllib.loads(SCENARIO_TEXTS[index])
    for _ in range(1 + draw(_INDEXES[4])):
        table = draw(st.sampled_from(_tables_of(doc)))
        keys = list(table)
        action = draw(
            st.sampled_from(["value", "value", "value", "delete", "unknown", "repeat", "empty", "path"])
        )
        if action == "path":  # a file the scenario names: a bundle, catalog, DBC or recorded log
            section, key = draw(st.sampled_from(PATH_KEYS))
            doc.setdefault(section, {})
            if isinstance(doc[section], dict):
                doc[section][key] = draw(st.sampled_from(PATHS) | st.text(max_size=20))
                if key == "log" and draw(st.booleans()):
                    doc[section].update(can="replay", uart="none")
        elif action == "value" and keys:
            table[draw(st.sampled_from(keys))] = draw(toml_values)
        elif action == "value":
            table[draw(st.sampled_from(KNOWN_KEYS))] = draw(toml_values)
        elif action == "delete" and keys:
            del table[draw(st.sampled_from(keys))]
        elif action == "unknown":
            table[draw(st.sampled_from(KNOWN_KEYS) | st.text(min_size=1, max_size=12))] = draw(toml_values)
        elif action == "repeat":
            arrays = [k for k, v in doc.items() if _is_tables(v)]
            if arrays:
                entries = doc[draw(st.sampled_from(arrays))]
                entries.append(dict(draw(st.sampled_from(entries))))
        elif action == "empty" and keys:
            table[draw(st.sampled_from(keys))] = pick(draw, [[], {}, "", [{}], [[]]])
    try:
        text = toml_text(doc)
    except ValueError:  # an integer too long to print: leave it out
        text = SCENARIO_TEXTS[index]
    return ScenarioCase(text, SCENARIO_FILES[index].parent)


TOML_TOKENS = [
    b"[",
    b"]",
    b"[[",
    b"=",
    b'"',
    b"'''",
    b"\n",
    b"#",
    b".",
    b"{",
    b"}",
    b",",
    b"\\",
    b"\\u0000",
    b"nan",
]


@st.composite
def scenario_mutations(draw: st.DrawFn) -> ScenarioCase:
    """A shipped scenario's text with lines dropped, repeated or swapped, a value replaced
    by other TOML, or its characters mutated."""
    index = draw(st.sampled_from(range(len(SCENARIO_FILES))))
    lines = SCENARIO_TEXTS[index].splitlines()
    for _ in range(1 + draw(_INDEXES[4])):
        at = draw(st.integers(0, len(lines) - 1)) if lines else 0
        action = pick(draw, ["drop", "repeat", "swap", "value", "value", "insert", "bytes"])
        if action == "drop" and lines:
            del lines[at]
        elif action == "repeat" and lines:
            lines.insert(draw(st.integers(0, len(lines))), lines[at])
        elif action == "swap" and lines:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif action == "value" and lines and "=" in lines[at]:
            key = lines[at].split("=", 1)[0]
            lines[at] = f"{key}= {_toml_value_text(draw(toml_values))}"
        elif action == "insert":
            key = draw(st.sampled_from(KNOWN_KEYS))
            line = draw(
                st.sampled_from([f"{key} = {_toml_value_text(draw(toml_values))}", f"[{key}]", f"[[{key}]]"])
            )
            lines.insert(draw(st.integers(0, len(lines))), line)
        else:
            text = "\n".join(lines).encode()
            mutated = mutate(draw, text, tokens=TOML_TOKENS, ops=3).decode("utf-8", "replace")
            lines = mutated.split("\n")
    return ScenarioCase("\n".join(lines) + "\n", SCENARIO_FILES[index].parent)


def _toml_value_text(value: object) -> str:
    try:
        return toml_value(value)
    except ValueError:
        return "0"


scenario_inputs = st.one_of(
    st.text(max_size=300).map(ScenarioCase),
    scenario_structures(),
    scenario_structures(),
    scenario_mutations(),
    scenario_mutations(),
)


@st.composite
def scenario_rewrites(draw: st.DrawFn) -> ScenarioCase:
    """A shipped scenario written out again in another layout (inline tables and values,
    keys in another order): it must load to the same scenario."""
    index = draw(st.sampled_from(range(len(SCENARIO_FILES))))
    doc: dict[str, Any] = tomllib.loads(SCENARIO_TEXTS[index])
    for table in _tables_of(doc):
        items = list(table.items())
        table.clear()
        table.update(items[i] for i in draw(st.permutations(range(len(items)))))
    return ScenarioCase(toml_text(doc), SCENARIO_FILES[index].parent, index)


def check_scenario(case: ScenarioCase) -> Outcome:
    """parse_scenario gives a Scenario that describes itself, or a ConfigError whose message
    starts with the file's name and shows no Python internals."""
    result = timed_call(
        lambda: parse_scenario(case.text, origin=ORIGIN, base=case.base),
        ConfigError,
        SCENARIO_TIME_BOUND_S,
        "parse_scenario",
    )
    if isinstance(result, ConfigError):
        message = str(result)
        if not message.startswith(f"{ORIGIN}: "):
            raise FuzzFailure(f"the message does not start with the file's name: {message[:200]!r}")
        assert_clear(message, case.text)
        if case.same_as is not None:
            raise FuzzFailure(f"a shipped scenario written out again was refused: {message}")
        return REFUSED
    if not isinstance(result, Scenario) or not result.vehicles or not result.expectations:
        raise FuzzFailure("parse_scenario returned a scenario without vehicles or expectations")
    if result.time.windows < 1 or not all(e.describe() for e in result.expectations):
        raise FuzzFailure("a scenario with no window or an expectation it cannot describe")
    if case.same_as is not None:
        path = SCENARIO_FILES[case.same_as]
        original = parse_scenario(SCENARIO_TEXTS[case.same_as], origin=ORIGIN, base=path.parent)
        if result != original:
            raise FuzzFailure(f"{path.name} written out again loads to another scenario")
    return ACCEPTED


# --- 5. the campaign condition parser ---------------------------------------------------------------

CONDITION_TIME_BOUND_S = 1.0
CONDITION_SIGNALS = sorted(CATALOG)[:6]
CONDITION_SEEDS = [
    f"{CONDITION_SIGNALS[0]} > 100 and not changed({CONDITION_SIGNALS[1]})",
    f"max({CONDITION_SIGNALS[2]}, 30) - min({CONDITION_SIGNALS[2]}, 30) >= 2.5e1 or false",
    f"(avg({CONDITION_SIGNALS[3]}, 10) * -2 + last({CONDITION_SIGNALS[4]}) / 3) != 0",
]
CONDITION_TOKENS = [
    *(token.encode() for token in ("(", ")", ",", "<=", "==", "!=", "-", "/", " and ", " or ")),
    *(token.encode() for token in ("not ", "true", "1e308", "1e999", ".5", "0", "avg(", "changed(")),
    *(name.encode() for name in CONDITION_SIGNALS),
    "\u00e9".encode(),
    b"\x00",
]


@st.composite
def condition_terms(draw: st.DrawFn, depth: int = 0) -> tuple[str, str]:
    """(text, kind) of a well-typed piece of a condition: kind "number" or "truth"."""
    leaf = depth >= 4 or draw(st.integers(0, 2)) == 0
    if leaf:
        choice = draw(st.integers(0, 5))
        signal = pick(draw, CONDITION_SIGNALS)
        if choice == 0:
            number = draw(st.floats(0, 1e6, allow_nan=False) | st.integers(0, 10**6))
            return repr(number), "number"
        if choice == 1:
            return signal, "number"
        if choice == 2:
            return f"last({signal})", "number"
        if choice == 3:
            window = draw(st.floats(0.001, 3600, allow_nan=False))
            return f"{pick(draw, ['min', 'max', 'avg'])}({signal}, {window!r})", "number"
        if choice == 4:
            return f"changed({signal})", "truth"
        return pick(draw, ["true", "false"]), "truth"
    shape = draw(st.integers(0, 4))
    if shape == 0:
        left = draw(condition_numbers(depth + 1))
        right = draw(condition_numbers(depth + 1))
        return f"{left} {pick(draw, ['+', '-', '*', '/'])} {right}", "number"
    if shape == 1:
        left = draw(condition_numbers(depth + 1))
        right = draw(condition_numbers(depth + 1))
        return f"{left} {pick(draw, ['<', '<=', '>', '>=', '==', '!='])} {right}", "truth"
    if shape == 2:
        left = draw(condition_truths(depth + 1))
        right = draw(condition_truths(depth + 1))
        return f"{left} {pick(draw, ['and', 'or'])} {right}", "truth"
    if shape == 3:
        return f"not {draw(condition_truths(depth + 1))}", "truth"
    return f"-{draw(condition_numbers(depth + 1))}", "number"


@st.composite
def condition_numbers(draw: st.DrawFn, depth: int) -> str:
    text, kind = draw(condition_terms(depth))
    return (
        f"({text})" if kind == "number" else f"({draw(condition_numbers(depth + 1))})" if depth < 4 else "1"
    )


@st.composite
def condition_truths(draw: st.DrawFn, depth: int) -> str:
    text, kind = draw(condition_terms(depth))
    return f"({text})" if kind == "truth" else f"({text} > 0)"


@dataclass(frozen=True)
class ConditionCase:
    """A condition's text and, when it is well typed by construction, that it must parse."""

    text: str
    valid: bool = False
    samples: tuple[tuple[int, float, float], ...] = ()  # (signal index, time_s, value) to evaluate on


SAMPLE_VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1.0, 1e308])


@st.composite
def condition_samples(draw: st.DrawFn) -> tuple[tuple[int, float, float], ...]:
    count = draw(st.integers(0, 12))
    return tuple(
        (draw(_INDEXES[len(CONDITION_SIGNALS)]), float(time_s), draw(SAMPLE_VALUES))
        for time_s in sorted(draw(st.lists(st.integers(0, 7200), min_size=count, max_size=count)))
    )


@st.composite
def valid_conditions(draw: st.DrawFn) -> ConditionCase:
    return ConditionCase(draw(condition_truths(0)), True, draw(condition_samples()))


@st.composite
def condition_mutations(draw: st.DrawFn) -> ConditionCase:
    seeds = [text.encode() for text in CONDITION_SEEDS]
    data = mutate(draw, pick(draw, seeds), others=seeds, tokens=CONDITION_TOKENS)
    return ConditionCase(data.decode("utf-8", "replace"), False, draw(condition_samples()))


def check_condition(case: ConditionCase) -> Outcome:
    """parse_expression gives an Expression or an ExpressionError that points inside the text;
    a parsed condition evaluates to true or false on any stream, within the time bound."""

    def parse_and_evaluate() -> tuple[Expression, list[bool]]:
        expression = parse_expression(case.text, signals=CATALOG)
        history = History(signals=expression.signals, window_s=expression.window_s)
        results = []
        for index, time_s, value in case.samples:
            history.add(CONDITION_SIGNALS[index], time_s, value)
            results.append(evaluate(expression, history, time_s))
        return expression, results

    result = timed_call(parse_and_evaluate, ExpressionError, CONDITION_TIME_BOUND_S, "parse_expression")
    if isinstance(result, ExpressionError):
        if not 0 <= result.position <= len(case.text):
            raise FuzzFailure(f"error position {result.position} outside a text of {len(case.text)}")
        assert_clear(str(result), case.text, max_len=300)
        limit = any(words in str(result) for words in ("longer than", "more than", "deeper than"))
        if case.valid and not limit:
            raise FuzzFailure(f"a well-typed condition was refused: {result}")
        return REFUSED
    expression, results = result
    if expression.text != case.text or not all(isinstance(r, bool) for r in results):
        raise FuzzFailure("a parsed condition lost its text or evaluated to something else than a bool")
    return ACCEPTED


condition_inputs = st.one_of(
    st.text(max_size=200).map(ConditionCase),
    condition_mutations(),
    condition_mutations(),
    valid_conditions(),
)


# --- the targets, for the benchmark ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    unit: str  # what the accepted and refused counts count
    documented: str  # how an input is refused
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], Outcome]
    dump: Callable[[Any], tuple[str, bytes]]  # (file suffix, bytes) of a case, to save it


def _dump_link(case: tuple[bytes, Sequence[int]]) -> tuple[str, bytes]:
    return ".bin", case[0]


def _dump_dms(case: DmsCase) -> tuple[str, bytes]:
    return "-" + re.sub(r"[^A-Za-z0-9.]", "_", case.name or "noname"), case.data


def _dump_scenario(case: ScenarioCase) -> tuple[str, bytes]:
    return ".toml", case.text.encode("utf-8", "surrogatepass")


def _dump_condition(case: ConditionCase) -> tuple[str, bytes]:
    return ".txt", case.text.encode("utf-8", "surrogatepass")


def _all_record_inputs() -> st.SearchStrategy[Any]:
    return st.one_of(record_inputs, record_inputs, record_inputs, record_variants())


def _check_any_record(case: bytes | tuple[bytes, DiagnosticRecord]) -> Outcome:
    return check_record_variant(case) if isinstance(case, tuple) else check_record(case)


def _dump_record(case: bytes | tuple[bytes, DiagnosticRecord]) -> tuple[str, bytes]:
    return ".cbor", case[0] if isinstance(case, tuple) else case


TARGETS: dict[str, Target] = {
    "record": Target(
        "record", "records", "DecodeError", _all_record_inputs(), _check_any_record, _dump_record
    ),
    "link": Target("link", "frames", "a counted reason (FrameError)", link_streams, check_link, _dump_link),
    "dms": Target(
        "dms",
        "files",
        "ConfigError or listed bad rows",
        st.one_of(dms_inputs, dms_inputs, dms_valid_files()),
        check_dms,
        _dump_dms,
    ),
    "scenario": Target(
        "scenario",
        "scenarios",
        "ConfigError",
        st.one_of(scenario_inputs, scenario_inputs, scenario_rewrites()),
        check_scenario,
        _dump_scenario,
    ),
    "condition": Target(
        "condition", "conditions", "ExpressionError", condition_inputs, check_condition, _dump_condition
    ),
}
