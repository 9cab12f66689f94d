"""Storage receipts: which records of one vehicle the cloud has stored (docs/wire-format.md).

Ingest publishes one on the vehicle's `stored` topic after each write that held records of that
vehicle; it names them by their sequence numbers. The broker's PUBACK only says the broker has
a record; a receipt says it reached the database (or the dead letters), so a gateway that keeps
its records until the receipt loses none when the broker dies before saving them.

Wire form, CBOR: {0: 1, 1: [seq, ...]}, key 0 the version, key 1 the sequence numbers (each
an unsigned 64-bit integer below 2**63, at most MAX_SEQS). A decoder ignores keys it does not
know, as the record decoder does.
"""

from __future__ import annotations

from collections.abc import Sequence

import cbor2

from prognos.errors import DecodeError
from prognos.record import INT64_MAX, decode_cbor

RECEIPT_VERSION = 1
MAX_SEQS = 10_000
MAX_RECEIPT_BYTES = 16 + 9 * MAX_SEQS
K_VERSION = 0
K_SEQS = 1


def encode_receipt(seqs: Sequence[int]) -> bytes:
    """The receipt for `seqs`; ValueError for an empty list, too many, or a bad number."""
    if not 0 < len(seqs) <= MAX_SEQS:
        raise ValueError(f"a receipt names 1 to {MAX_SEQS} records, not {len(seqs)}")
    for seq in seqs:
        if type(seq) is not int or not 0 <= seq <= INT64_MAX:
            raise ValueError(f"sequence number {seq!r} is not an integer in [0, 2**63)")
    data: bytes = cbor2.dumps({K_VERSION: RECEIPT_VERSION, K_SEQS: list(seqs)})
    return data


def decode_receipt(data: bytes | bytearray) -> list[int]:
    """The sequence numbers of a receipt. Anything that is not a valid receipt raises
    DecodeError, nothing else."""
    if len(data) > MAX_RECEIPT_BYTES:
        raise DecodeError(f"receipt is {len(data)} bytes, more than {MAX_RECEIPT_BYTES}")
    body = decode_cbor(data, "receipt")
    if not isinstance(body, dict):
        raise DecodeError("a receipt is a CBOR map")
    version = body.get(K_VERSION)
    if type(version) is not int or version != RECEIPT_VERSION:
        raise DecodeError(f"unsupported receipt version (this decoder reads {RECEIPT_VERSION})")
    seqs = body.get(K_SEQS)
    if not isinstance(seqs, list) or not 0 < len(seqs) <= MAX_SEQS:
        raise DecodeError(f"a receipt names 1 to {MAX_SEQS} records in an array")
    if not all(type(seq) is int and 0 <= seq <= INT64_MAX for seq in seqs):
        raise DecodeError("a receipt's sequence numbers are integers in [0, 2**63)")
    return seqs
