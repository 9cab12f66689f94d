"""The ledger's pure parts: canonical bytes, hashes and signatures, the checks before an append,
the fold into entitlement states, and customer proofs verified offline (a tampered one too)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from prognos.desk.entitlements import Body, Entitlement, fold
from prognos.desk.ledger import (
    GENESIS,
    SIGNED_PREFIX,
    EntitlementError,
    Entry,
    Overdrawn,
    ProofError,
    UnknownEntitlement,
    canonical,
    check_body,
    entry_hash,
    entry_problem,
    make_proof,
    proof_digest,
    proof_qr,
    seal,
    verifiers_of,
    verify_digest,
    verify_proof,
)
from prognos.signing import _openssl_verifier, key_id, raw_public_key, signer, verifier

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def grant_body(entitlement_id: str = "E1", customer_id: str = "C1", **overrides: object) -> Body:
    body: Body = {
        "kind": "grant",
        "entitlement_id": entitlement_id,
        "customer_id": customer_id,
        "actor": "desk",
        "vin": "VF1TEST0000000001",
        "product": "maintenance",
        "units": 2,
        "valid_from": at(0).isoformat(),
        "valid_until": at(730).isoformat(),
        "center_id": "SC-01",
        "dealer_id": "D01",
    }
    body.update(overrides)
    return body


def build(bodies: Iterable[Body], key: Ed25519PrivateKey = KEY) -> list[Entry]:
    """Chain bodies as the ledger does: seq, at (a day apart) and `follows` filled in."""
    chained = [{**body, "v": 1, "seq": seq, "at": at(seq).isoformat()} for seq, body in enumerate(bodies, 1)]
    entries: list[Entry] = []
    prev_hash = GENESIS
    last: dict[str, str] = {}
    for body in chained:
        if body["kind"] != "grant":
            body["follows"] = last[str(body["entitlement_id"])]
        entry = next(seal([body], prev_hash=prev_hash, sign=signer(key), key_id=key_id(key.public_key())))
        last[entry.entitlement_id] = prev_hash = entry.hash
        entries.append(entry)
    return entries


def history() -> list[Entry]:
    """E1: granted to C1, one service used, transferred to C2, one more used. E2: C2's warranty.
    E3: C1's, revoked."""
    return build(
        [
            grant_body("E1", "C1"),
            consume_body(customer_id="C1", reference="WO-1"),
            grant_body("E2", "C2", product="warranty", units=None),
            {
                "kind": "transfer",
                "entitlement_id": "E1",
                "customer_id": "C2",
                "center_id": "SC-02",
                "from_customer_id": "C1",
                "from_center_id": "SC-01",
                "reason": "sold",
                "actor": "desk",
            },
            grant_body("E3", "C1"),
            consume_body(customer_id="C2", center_id="SC-02", reference="WO-2"),
            revoke_body("E3", "C1", reason="refund"),
        ]
    )


def consume_body(
    units: object = 1, customer_id: str = "C1", entitlement_id: str = "E1", **more: object
) -> Body:
    body: Body = {
        "kind": "consume",
        "entitlement_id": entitlement_id,
        "customer_id": customer_id,
        "actor": "desk",
        "units": units,
        "center_id": "SC-01",
        "reference": "WO-9",
    }
    return {**body, **more}


def revoke_body(entitlement_id: str, customer_id: str, reason: str = "refund") -> Body:
    return {
        "kind": "revoke",
        "entitlement_id": entitlement_id,
        "customer_id": customer_id,
        "reason": reason,
        "actor": "desk",
    }


# --- bytes, hashes, signatures --------------------------------------------------------------


def test_canonical_bytes_do_not_depend_on_key_order_and_keep_text_as_utf8() -> None:
    one = canonical({"b": 1, "a": "Zoë", "c": None})
    two = canonical({"c": None, "a": "Zoë", "b": 1})
    assert one == two == '{"a":"Zoë","b":1,"c":null}'.encode()


def test_entry_hash_covers_the_previous_hash_and_the_body() -> None:
    body = canonical({"a": 1})
    assert entry_hash(GENESIS, body) == hashlib.sha256(GENESIS.encode() + body).hexdigest()
    assert entry_hash("1" * 64, body) != entry_hash(GENESIS, body)


def test_entries_chain_and_carry_the_brands_signature_over_prefix_and_hash() -> None:
    entries = history()
    assert entries[0].prev_hash == GENESIS
    for before, entry in pairwise(entries):
        assert entry.prev_hash == before.hash
        assert entry.hash == entry_hash(entry.prev_hash, entry.body.encode())
    first = entries[0]
    # Deterministic ed25519, and OpenSSL agrees with libsodium about it.
    KEY.public_key().verify(bytes.fromhex(first.signature), SIGNED_PREFIX + bytes.fromhex(first.hash))
    assert bytes.fromhex(first.signature) == KEY.sign(SIGNED_PREFIX + bytes.fromhex(first.hash))
    assert first.key_id == hashlib.sha256(raw_public_key(KEY.public_key())).hexdigest()[:16]
    assert json.loads(first.body)["seq"] == 1


def test_verifiers_accept_only_the_keys_own_signatures() -> None:
    message = b"message"
    signature = signer(KEY)(message)
    for verify in (verifier(KEY.public_key()), _openssl_verifier(KEY.public_key())):
        assert verify(signature, message)
        assert not verify(signature, b"other")
        assert not verify(signature[:-1], message)
        assert not verify(OTHER_KEY.sign(message), message)
    assert key_id(KEY.public_key()) == key_id(raw_public_key(KEY.public_key()))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"body": lambda e: e.body.replace('"units":1', '"units":0')}, "hash mismatch"),
        ({"prev_hash": lambda e: "f" * 64}, "broken chain"),
        ({"hash": lambda e: "0" * 64}, "hash mismatch"),
        ({"signature": lambda e: ("0" if e.signature[0] != "0" else "1") + e.signature[1:]}, "bad signature"),
        ({"signature": lambda e: "zz"}, "bad signature"),
        ({"key_id": lambda e: "0123456789abcdef"}, "unknown key"),
        ({"customer_id": lambda e: "C9"}, "customer_id column"),
        ({"seq": lambda e: 7}, "seq column"),
        ({"at": lambda e: e.at + timedelta(seconds=1)}, "at column"),
        ({"body": lambda e: "not json"}, "not JSON"),
    ],
)
def test_entry_problem_names_what_was_changed(change: dict[str, Any], expected: str) -> None:
    entries = history()
    entry = entries[1]
    verifiers = verifiers_of(KEY.public_key())
    assert entry_problem(entry, prev_hash=entries[0].hash, verifiers=verifiers) is None
    ((name, how),) = change.items()
    bad = replace(entry, **{name: how(entry)})
    problem = entry_problem(bad, prev_hash=entries[0].hash, verifiers=verifiers)
    assert problem is not None and expected in problem


def test_a_rehashed_body_still_fails_its_signature() -> None:
    entries = history()
    body = entries[1].body.replace('"units":1', '"units":0')
    forged = replace(entries[1], body=body, hash=entry_hash(entries[1].prev_hash, body.encode()))
    verifiers = verifiers_of(KEY.public_key())
    assert entry_problem(forged, prev_hash=entries[0].hash, verifiers=verifiers) == "bad signature"


# --- checks before an append ----------------------------------------------------------------


def state_of(entries: list[Entry], entitlement_id: str, now: datetime) -> Entitlement | None:
    return fold([json.loads(e.body) for e in entries], now).get(entitlement_id)


def test_fold_follows_consumptions_transfers_and_revocations() -> None:
    states = fold([json.loads(e.body) for e in history()], at(10))
    assert (states["E1"].customer_id, states["E1"].center_id, states["E1"].used) == ("C2", "SC-02", 2)
    assert states["E1"].status == "used_up" and states["E1"].remaining == 0
    assert states["E2"].remaining is None and states["E2"].status == "active"
    assert states["E3"].status == "revoked"
    assert fold([json.loads(e.body) for e in history()], at(800))["E2"].status == "expired"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"units": None}, "needs its number of services"),
        ({"units": 0}, "1 or more"),
        ({"units": True}, "1 or more"),
        ({"product": "tyres"}, "unknown product"),
        ({"valid_until": at(-1).isoformat()}, "not after valid_from"),
        ({"valid_until": "2027-01-01T00:00:00"}, "no time zone"),
        ({"valid_from": "soon"}, "not an ISO 8601 time"),
        ({"vin": ""}, "vin is missing"),
        ({"customer_id": "C" * 41}, "longer than 40"),
        ({"kind": "gift"}, "unknown entry kind"),
    ],
)
def test_a_bad_grant_is_refused(override: dict[str, object], message: str) -> None:
    with pytest.raises(EntitlementError, match=message):
        check_body(grant_body(**override), None, at(1))


def test_a_warranty_may_be_unlimited_and_an_id_is_granted_once() -> None:
    check_body(grant_body(product="warranty", units=None), None, at(1))
    entries = build([grant_body()])
    with pytest.raises(EntitlementError, match="exists already"):
        check_body(grant_body(), state_of(entries, "E1", at(1)), at(1))


def test_consumption_needs_an_active_entitlement_of_the_holder_with_services_left() -> None:
    entries = build([grant_body(units=2), consume_body()])
    state = state_of(entries, "E1", at(5))
    check_body(consume_body(), state, at(5))
    with pytest.raises(Overdrawn, match="2 services asked, 1 of 2 left"):
        check_body(consume_body(units=2), state, at(5))
    with pytest.raises(EntitlementError, match="held by C1, not C2"):
        check_body(consume_body(customer_id="C2"), state, at(5))
    with pytest.raises(EntitlementError, match="expired"):
        check_body(consume_body(), state_of(entries, "E1", at(731)), at(731))
    with pytest.raises(EntitlementError, match="1 or more whole"):
        check_body(consume_body(units=0), state, at(5))
    with pytest.raises(UnknownEntitlement, match="E9"):
        check_body(consume_body(entitlement_id="E9"), None, at(5))
    late = build([grant_body(valid_from=at(30).isoformat())])
    with pytest.raises(EntitlementError, match="valid from"):
        check_body(consume_body(), state_of(late, "E1", at(5)), at(5))


def test_the_last_service_is_consumed_once() -> None:
    entries = build([grant_body(units=1), consume_body()])
    with pytest.raises(Overdrawn, match="0 of 1 left"):
        check_body(consume_body(), state_of(entries, "E1", at(5)), at(5))


def test_transfer_and_revoke_only_an_active_entitlement() -> None:
    entries = history()
    transfer: Body = {
        "kind": "transfer",
        "entitlement_id": "E2",
        "customer_id": "C3",
        "center_id": "SC-01",
        "from_customer_id": "C2",
        "from_center_id": "SC-01",
        "reason": "sold",
        "actor": "desk",
    }
    check_body(transfer, state_of(entries, "E2", at(10)), at(10))
    with pytest.raises(EntitlementError, match="held by C2 at SC-01, not by C1"):
        check_body({**transfer, "from_customer_id": "C1"}, state_of(entries, "E2", at(10)), at(10))
    with pytest.raises(EntitlementError, match="changes nothing"):
        check_body({**transfer, "customer_id": "C2"}, state_of(entries, "E2", at(10)), at(10))
    revoke = revoke_body("E3", "C1")
    with pytest.raises(EntitlementError, match="E3 is revoked: only an active one can be revoked"):
        check_body(revoke, state_of(entries, "E3", at(10)), at(10))
    with pytest.raises(EntitlementError, match="used up"):
        used_up = {**transfer, "entitlement_id": "E1", "from_center_id": "SC-02"}
        check_body(used_up, state_of(entries, "E1", at(10)), at(10))
    with pytest.raises(EntitlementError, match="reason is missing"):
        check_body(revoke_body("E2", "C2", reason=""), state_of(entries, "E2", at(10)), at(10))


# --- proofs ---------------------------------------------------------------------------------


def proof_of(customer_id: str, days: float = 10) -> dict[str, Any]:
    now = at(days)
    entries = history()
    states = fold([json.loads(e.body) for e in entries], now)
    held = {key for key, state in states.items() if state.customer_id == customer_id}
    return make_proof(customer_id, [e for e in entries if e.entitlement_id in held], now=now)


def test_a_proof_verifies_offline_with_the_public_key() -> None:
    proof = json.loads(json.dumps(proof_of("C2")))  # as read back from its file
    held = verify_proof(proof, KEY.public_key(), now=at(10))
    shown = [(s.entitlement_id, s.remaining, s.status) for s in held]
    assert shown == [("E1", 0, "used_up"), ("E2", None, "active")]
    assert proof["key_ids"] == [key_id(KEY.public_key())]
    assert [e["seq"] for e in proof["entries"]] == [1, 2, 3, 4, 6]
    c1 = verify_proof(proof_of("C1"), KEY.public_key(), now=at(10))
    assert [(s.entitlement_id, s.status) for s in c1] == [("E3", "revoked")]
    # by default as the proof was made; at a later time what ran out shows expired
    assert [s.status for s in verify_proof(proof, KEY.public_key())] == ["used_up", "active"]
    assert [s.status for s in verify_proof(proof, KEY.public_key(), now=at(800))] == ["used_up", "expired"]


def tampered(change: Any) -> dict[str, Any]:
    proof = copy.deepcopy(proof_of("C2"))
    change(proof)
    return proof


def drop_entry(seq: int) -> Any:
    return lambda proof: proof["entries"].remove(next(e for e in proof["entries"] if e["seq"] == seq))


def rewrite_body(seq: int, old: str, new: str) -> Any:
    def change(proof: dict[str, Any]) -> None:
        entry = next(e for e in proof["entries"] if e["seq"] == seq)
        entry["body"] = entry["body"].replace(old, new)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (rewrite_body(6, '"units":1', '"units":0'), "entry 6: hash mismatch"),
        (drop_entry(6), "summary of the entitlements disagrees"),
        (drop_entry(2), "an entry of E1 is missing before it"),
        (drop_entry(1), "E1 has no grant in the proof"),
        (lambda p: p["entitlements"][0].update(remaining=5), "summary of the entitlements disagrees"),
        (lambda p: p["entries"][0].update(signature="00" * 64), "entry 1: bad signature"),
        (lambda p: p["entries"].reverse(), "must be in seq order"),
        (lambda p: p.update(customer_id="C1"), "held by C2, not C1"),
        (lambda p: p.update(proof="something else"), "not an entitlement proof"),
        (lambda p: p["entries"][0].pop("hash"), "lacks one of"),
        (lambda p: p.update(made_at="yesterday"), "made_at"),
    ],
)
def test_a_tampered_proof_is_refused(change: Any, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        verify_proof(tampered(change), KEY.public_key(), now=at(10))


def test_a_proof_from_another_key_is_refused() -> None:
    with pytest.raises(ProofError, match="not one of the trusted keys"):
        verify_proof(proof_of("C2"), OTHER_KEY.public_key(), now=at(10))
    assert verify_proof(proof_of("C2"), [OTHER_KEY.public_key(), KEY.public_key()], now=at(10))


def test_a_dropped_latest_consumption_without_its_summary_is_what_a_proof_cannot_show() -> None:
    """The limit of an offline proof (docs/desk.md): the newest entries can be left out together
    with the summary; the proof then shows the entitlement as it was before them."""
    proof = tampered(drop_entry(6))
    del proof["entitlements"]
    (e1, _e2) = verify_proof(proof, KEY.public_key(), now=at(10))
    assert e1.used == 1 and e1.last_seq == 4


def test_the_qr_code_holds_the_proof_or_else_its_digest() -> None:
    small = make_proof("C1", build([grant_body()]), now=at(2))
    image, carries = proof_qr(small)
    assert carries == "proof" and image.lstrip().startswith(b"<?xml")
    png, carries = proof_qr(proof_of("C2"), kind="png")
    assert carries == "digest" and png.startswith(b"\x89PNG")
    digest = proof_digest(proof_of("C2"))
    assert digest["entitlements"] == [["E1", 0, "used_up"], ["E2", None, "active"]]
    assert digest["newest"]["seq"] == 6
    assert verify_digest(json.loads(json.dumps(digest)), KEY.public_key()) == digest
    digest["newest"]["hash"] = "0" * 64
    with pytest.raises(ProofError, match="bad signature"):
        verify_digest(digest, KEY.public_key())
