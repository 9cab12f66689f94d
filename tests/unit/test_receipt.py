"""Storage receipts: round trips, and a decoder that raises only DecodeError."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prognos.errors import DecodeError
from prognos.receipt import MAX_SEQS, decode_receipt, encode_receipt

SEQS = st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=50)


@given(SEQS)
def test_round_trip(seqs: list[int]) -> None:
    assert decode_receipt(encode_receipt(seqs)) == seqs


def test_the_wire_form_is_a_versioned_map_and_unknown_keys_are_ignored() -> None:
    assert cbor2.loads(encode_receipt([7, 9])) == {0: 1, 1: [7, 9]}
    assert decode_receipt(cbor2.dumps({0: 1, 1: [3], 2: "later", "x": [1]})) == [3]


@pytest.mark.parametrize("seqs", [[], [-1], [2**63], [True], [1.0], list(range(MAX_SEQS + 1))])
def test_encode_refuses_what_no_receipt_holds(seqs: list[int]) -> None:
    with pytest.raises(ValueError):
        encode_receipt(seqs)


@pytest.mark.parametrize(
    "body",
    [
        [1, [3]],
        {1: [3]},
        {0: 2, 1: [3]},
        {0: 1},
        {0: 1, 1: []},
        {0: 1, 1: [-3]},
        {0: 1, 1: ["3"]},
        {0: 1, 1: [2**64]},
        {0: True, 1: [3]},
    ],
)
def test_decode_refuses_what_is_not_a_receipt(body: object) -> None:
    with pytest.raises(DecodeError):
        decode_receipt(cbor2.dumps(body))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        seqs = decode_receipt(data)
    except DecodeError:
        return
    assert seqs and all(0 <= seq < 2**63 for seq in seqs)


def test_trailing_bytes_and_huge_inputs_are_refused() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        decode_receipt(encode_receipt([1]) + b"\x00")
    with pytest.raises(DecodeError, match="bytes, more than"):
        decode_receipt(b"\x00" * 200_000)
