"""The entitlement ledger: append-only entries, each chained to the one before by its hash and
signed with the brand's ed25519 key (docs/desk.md).

An entry is one row of the `ledger` table:

    body       the canonical JSON of the entry (prognos.desk.entitlements describes its fields)
    prev_hash  the hash of the entry before (64 zeros before the first)
    hash       sha256(prev_hash as ASCII hex + body bytes), hex
    signature  ed25519 over SIGNED_PREFIX + the 32 bytes of the hash, hex
    key_id     the signing key's id (prognos.signing.key_id)

Every entry but a grant also names, in its body's `follows`, the hash of the entry before it of
the same entitlement, so that a customer's proof (a few entries out of the whole ledger) cannot
leave out a consumption in the middle of an entitlement's history.

Pure functions (canonical bytes, hashes, signing, checks, fold, proof verification) come first;
the store operations (append, grant/consume/transfer/revoke, verify_ledger, customer_proof)
after them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from multiprocessing import get_context
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from prognos.desk import schema
from prognos.desk.entitlements import KINDS, PRODUCTS, Body, Entitlement, fold
from prognos.errors import ConfigError, RejectedError, TransientError
from prognos.signing import SIGNATURE_BYTES, Signer, Verifier, key_id, raw_public_key, signer, verifier

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
GENESIS = "0" * 64  # the prev_hash of the first entry
# What a signature covers besides the hash: a ledger signature can never pass for a signature
# of anything else the brand's key signs (model bundles).
SIGNED_PREFIX = b"prognos-ledger-v1\x00"
ID_CHARS = schema.ID
VIN_CHARS = 17
APPEND_ATTEMPTS = 5
PROOF_FORMAT = "prognos entitlement proof"
DIGEST_FORMAT = "prognos entitlement digest"
# The largest QR code the full proof is put in; past it the QR carries the digest. A version 25
# code (117 x 117 modules) still scans from a phone screen or a printed page.
QR_MAX_VERSION = 25
QR_ERROR = "m"  # 15 % of the code can be damaged


class EntitlementError(ConfigError):
    """An entry the ledger refuses (bad input): nothing is written."""


class UnknownEntitlement(EntitlementError):
    pass


class UnknownCustomer(EntitlementError):
    pass


class Overdrawn(EntitlementError):
    """More services asked of an entitlement than it has left (a second consumption of the last
    one included)."""


class LedgerConflict(TransientError):
    """Other appends kept taking the next seq first; nothing was written."""


class ProofError(RejectedError):
    """A proof (or its QR digest) that does not hold: what is wrong is in the message."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One ledger row."""

    seq: int
    at: datetime
    kind: str
    entitlement_id: str
    customer_id: str
    body: str  # canonical JSON
    prev_hash: str
    hash: str
    signature: str
    key_id: str

    def row(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "entitlement_id": self.entitlement_id,
            "customer_id": self.customer_id,
            "body": self.body,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "signature": self.signature,
            "key_id": self.key_id,
        }


@dataclass(frozen=True)
class Problem:
    """The first bad entry: its seq and what is wrong with it."""

    seq: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.what}"


@dataclass(frozen=True)
class LedgerReport:
    entries: int  # entries that hold: all of them, or those before the problem
    newest_seq: int  # the newest entry that holds (0: none)
    newest_hash: str  # its hash, when known ("" after a bad signature found by --jobs workers)
    problem: Problem | None

    @property
    def holds(self) -> bool:
        return self.problem is None


# --- pure: bytes, hashes, signatures ------------------------------------------------------


def canonical(body: Body) -> bytes:
    """The bytes a body is stored, hashed and signed as: JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def signed_message(hash_hex: str) -> bytes:
    return SIGNED_PREFIX + bytes.fromhex(hash_hex)


def utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ConfigError(f"{moment} has no time zone: the ledger dates in UTC")
    return moment.astimezone(UTC).isoformat()


def seal(bodies: Iterable[Body], *, prev_hash: str, sign: Signer, key_id: str) -> Iterator[Entry]:
    """Chain and sign bodies (each with its seq and at) after the entry whose hash is
    `prev_hash`. Checks nothing: append checks each body first; the benchmark builds in bulk."""
    for body in bodies:
        text = canonical(body)
        digest = entry_hash(prev_hash, text)
        yield Entry(
            seq=int(str(body["seq"])),
            at=datetime.fromisoformat(str(body["at"])),
            kind=str(body["kind"]),
            entitlement_id=str(body["entitlement_id"]),
            customer_id=str(body["customer_id"]),
            body=text.decode("utf-8"),
            prev_hash=prev_hash,
            hash=digest,
            signature=sign(signed_message(digest)).hex(),
            key_id=key_id,
        )
        prev_hash = digest


def entry_problem(entry: Entry, *, prev_hash: str | None, verifiers: Mapping[str, Verifier]) -> str | None:
    """What is wrong with one entry, or None: its body against its columns, its link to the
    entry before (when `prev_hash` is given), its hash, its key and its signature."""
    return structure_problem(entry, prev_hash=prev_hash, key_ids=verifiers) or signature_problem(
        entry, verifiers
    )


def structure_problem(entry: Entry, *, prev_hash: str | None, key_ids: Collection[str]) -> str | None:
    """entry_problem without the signature check (the slow part, which verify_ledger may hand
    to other processes)."""
    body = _parse_body(entry.body)
    if isinstance(body, str):
        return body
    disagreement = _columns_disagree(entry, body)
    if disagreement:
        return disagreement
    if prev_hash is not None and entry.prev_hash != prev_hash:
        return f"broken chain: its prev_hash {entry.prev_hash[:12]}... is not the hash of the entry before"
    if entry_hash(entry.prev_hash, entry.body.encode("utf-8")) != entry.hash:
        return "hash mismatch: its body or prev_hash changed after it was signed"
    if entry.key_id not in key_ids:
        return f"unknown key {entry.key_id!r}: not one of the trusted keys ({', '.join(sorted(key_ids))})"
    if len(_signature_bytes(entry.signature)) != SIGNATURE_BYTES:
        return f"bad signature: not {SIGNATURE_BYTES * 2} hex digits"
    return None


def signature_problem(entry: Entry, verifiers: Mapping[str, Verifier]) -> str | None:
    verify = verifiers[entry.key_id]
    if not verify(_signature_bytes(entry.signature), signed_message(entry.hash)):
        return "bad signature"
    return None


def verifiers_of(keys: Ed25519PublicKey | Sequence[Ed25519PublicKey]) -> dict[str, Verifier]:
    chosen = [keys] if isinstance(keys, Ed25519PublicKey) else list(keys)
    if not chosen:
        raise ConfigError("no trusted public key given")
    return {key_id(key): verifier(key) for key in chosen}


def _parse_body(text: str) -> Body | str:
    try:
        body = json.loads(text)
    except ValueError:
        return "its body is not JSON"
    if not isinstance(body, dict):
        return "its body is not a JSON object"
    return body


def _columns_disagree(entry: Entry, body: Body) -> str | None:
    for name, column in (
        ("seq", entry.seq),
        ("kind", entry.kind),
        ("entitlement_id", entry.entitlement_id),
        ("customer_id", entry.customer_id),
    ):
        if body.get(name) != column:
            return f"its {name} column is {column!r} but its body says {body.get(name)!r}"
    try:
        at = datetime.fromisoformat(str(body.get("at")))
    except ValueError:
        return f"its body's at {body.get('at')!r} is not a time"
    if at.tzinfo is None or at != _aware(entry.at):
        return f"its at column is {_aware(entry.at).isoformat()} but its body says {body.get('at')!r}"
    return None


def _aware(moment: datetime) -> datetime:
    """SQLite gives back the UTC time it stored without its zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _signature_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


# --- pure: what may be appended -----------------------------------------------------------


def check_body(body: Body, state: Entitlement | None, now: datetime) -> None:
    """Raise EntitlementError unless `body` may follow the entitlement's `state` (its state at
    `now`, None when it was never granted)."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise EntitlementError(f"unknown entry kind {kind!r} (one of {', '.join(KINDS)})")
    entitlement_id = _text(body, "entitlement_id", ID_CHARS)
    _text(body, "actor", schema.NAME)
    if kind != "grant" and state is None:
        raise UnknownEntitlement(f"unknown entitlement {entitlement_id!r}: nothing was granted under that id")
    customer_id = _text(body, "customer_id", ID_CHARS)
    if state is None or kind == "grant":
        _check_grant(body, state, entitlement_id)
        return
    if kind == "consume":
        _check_consume(body, state, customer_id, now)
        return
    if state.status != "active":
        raise EntitlementError(
            f"entitlement {entitlement_id} is {state.status.replace('_', ' ')}: only an active one can be "
            f"{'transferred' if kind == 'transfer' else 'revoked'}"
        )
    _text(body, "reason", schema.NAME)
    if kind == "transfer":
        from_customer = _text(body, "from_customer_id", ID_CHARS)
        from_center = _text(body, "from_center_id", ID_CHARS)
        center_id = _text(body, "center_id", ID_CHARS)
        if (from_customer, from_center) != (state.customer_id, state.center_id):
            raise EntitlementError(
                f"entitlement {entitlement_id} is held by {state.customer_id} at {state.center_id}, "
                f"not by {from_customer} at {from_center}"
            )
        if (customer_id, center_id) == (from_customer, from_center):
            raise EntitlementError(
                f"a transfer of {entitlement_id} to its own holder and center changes nothing"
            )


def _check_grant(body: Body, state: Entitlement | None, entitlement_id: str) -> None:
    if state is not None:
        raise EntitlementError(f"entitlement {entitlement_id} exists already")
    _text(body, "vin", VIN_CHARS)
    _text(body, "center_id", ID_CHARS)
    _text(body, "dealer_id", ID_CHARS)
    product = body.get("product")
    if product not in PRODUCTS:
        raise EntitlementError(f"unknown product {product!r} (one of {', '.join(PRODUCTS)})")
    units = body.get("units")
    if units is None:
        if product == "maintenance":
            raise EntitlementError("a prepaid maintenance package needs its number of services (units)")
    elif not _whole(units) or int(str(units)) < 1:
        raise EntitlementError(f"units must be a whole number of services, 1 or more, not {units!r}")
    valid_from, valid_until = _time(body, "valid_from"), _time(body, "valid_until")
    if valid_until <= valid_from:
        raise EntitlementError(f"valid_until {valid_until.isoformat()} is not after valid_from")


def _check_consume(body: Body, state: Entitlement, customer_id: str, now: datetime) -> None:
    entitlement_id = state.entitlement_id
    units = body.get("units")
    if not _whole(units) or int(str(units)) < 1:
        raise EntitlementError(f"a consumption uses 1 or more whole services, not {units!r}")
    asked = int(str(units))
    _text(body, "center_id", ID_CHARS)
    if not isinstance(body.get("reference", ""), str):
        raise EntitlementError("reference (the work order) must be text")
    if customer_id != state.customer_id:
        raise EntitlementError(
            f"entitlement {entitlement_id} is held by {state.customer_id}, not {customer_id}"
        )
    if state.status == "revoked":
        raise EntitlementError(f"entitlement {entitlement_id} is revoked")
    if now < state.valid_from:
        raise EntitlementError(
            f"entitlement {entitlement_id} is valid from {state.valid_from.isoformat()} only"
        )
    if now >= state.valid_until:
        raise EntitlementError(f"entitlement {entitlement_id} expired at {state.valid_until.isoformat()}")
    remaining = state.remaining
    if remaining is not None and asked > remaining:
        raise Overdrawn(
            f"entitlement {entitlement_id} is overdrawn: {asked} service{'s' if asked != 1 else ''} asked, "
            f"{remaining} of {state.units} left; nothing written"
        )


def _text(body: Body, name: str, most: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise EntitlementError(f"{name} is missing")
    if len(value) > most:
        raise EntitlementError(f"{name} {value!r} is longer than {most} characters")
    return value


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time(body: Body, name: str) -> datetime:
    value = body.get(name)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise EntitlementError(f"{name} {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise EntitlementError(f"{name} {value!r} has no time zone")
    return moment


# --- pure: proofs -------------------------------------------------------------------------


def make_proof(customer_id: str, entries: Sequence[Entry], *, now: datetime) -> dict[str, Any]:
    """The proof of the entitlements `customer_id` holds: every entry of each of them (in seq
    order) and a summary of their states at `now`, which verify_proof checks against them."""
    states = fold([json.loads(entry.body) for entry in entries], now)
    held = [state for state in states.values() if state.customer_id == customer_id]
    return {
        "proof": PROOF_FORMAT,
        "v": FORMAT_VERSION,
        "customer_id": customer_id,
        "made_at": utc_text(now),
        "key_ids": sorted({entry.key_id for entry in entries}),
        "entitlements": [summary(state) for state in sorted(held, key=lambda s: s.entitlement_id)],
        "entries": [
            {
                "seq": entry.seq,
                "body": entry.body,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
                "signature": entry.signature,
                "key_id": entry.key_id,
            }
            for entry in sorted(entries, key=lambda e: e.seq)
        ],
    }


def summary(state: Entitlement) -> dict[str, object]:
    return {
        "entitlement_id": state.entitlement_id,
        "product": state.product,
        "vin": state.vin,
        "units": state.units,
        "used": state.used,
        "remaining": state.remaining,
        "valid_from": state.valid_from.isoformat(),
        "valid_until": state.valid_until.isoformat(),
        "center_id": state.center_id,
        "status": state.status,
        "last_seq": state.last_seq,
    }


def verify_proof(
    proof: object, keys: Ed25519PublicKey | Sequence[Ed25519PublicKey], *, now: datetime | None = None
) -> list[Entitlement]:
    """The entitlements a proof shows its customer holds, in their state at `now` (default: when
    the proof was made; a center passes its own clock to see what has expired since); ProofError
    when an entry's hash or signature does not hold, a key is not trusted, an entitlement's
    history has a gap, or the proof's summary disagrees with its entries. Offline: no database."""
    verifiers = verifiers_of(keys)
    if not isinstance(proof, dict) or proof.get("proof") != PROOF_FORMAT or proof.get("v") != FORMAT_VERSION:
        raise ProofError(f"not an entitlement proof (format {PROOF_FORMAT!r}, v {FORMAT_VERSION})")
    customer_id = proof.get("customer_id")
    raw_entries = proof.get("entries")
    if not isinstance(customer_id, str) or not isinstance(raw_entries, list):
        raise ProofError("the proof lacks its customer_id or its entries")
    made_at = _proof_time(proof.get("made_at"))
    entries = [_proof_entry(item, index) for index, item in enumerate(raw_entries)]
    for earlier, later in pairwise(entries):
        if later.seq <= earlier.seq:
            raise ProofError(
                f"entry {later.seq} comes after entry {earlier.seq}: entries must be in seq order"
            )
    bodies: list[Body] = []
    before: Entry | None = None
    latest: dict[str, str] = {}  # entitlement -> hash of its newest entry so far
    for entry in entries:
        linked = before.hash if before is not None and entry.seq == before.seq + 1 else None
        problem = entry_problem(entry, prev_hash=linked, verifiers=verifiers)
        if problem:
            raise ProofError(str(Problem(entry.seq, problem)))
        body: Body = json.loads(entry.body)
        previous = latest.get(entry.entitlement_id)
        if entry.kind == "grant":
            if previous is not None:
                raise ProofError(f"entry {entry.seq}: a second grant of {entry.entitlement_id}")
        elif previous is None:
            raise ProofError(f"entry {entry.seq}: {entry.entitlement_id} has no grant in the proof")
        elif body.get("follows") != previous:
            raise ProofError(
                f"entry {entry.seq}: an entry of {entry.entitlement_id} is missing before it "
                "(it does not follow the proof's previous entry of that entitlement)"
            )
        latest[entry.entitlement_id] = entry.hash
        bodies.append(body)
        before = entry
    states = fold(bodies, made_at if now is None else now)
    for state in states.values():
        if state.customer_id != customer_id:
            raise ProofError(
                f"entitlement {state.entitlement_id} is held by {state.customer_id}, not {customer_id}"
            )
    claimed = proof.get("entitlements")
    if claimed is not None:
        actual = [summary(state) for state in _held(fold(bodies, made_at), customer_id)]
        if claimed != actual:
            raise ProofError("the proof's summary of the entitlements disagrees with its signed entries")
    return _held(states, customer_id)


def _held(states: Mapping[str, Entitlement], customer_id: str) -> list[Entitlement]:
    held = [state for state in states.values() if state.customer_id == customer_id]
    return sorted(held, key=lambda state: state.entitlement_id)


def _proof_entry(item: object, index: int) -> Entry:
    names = ("seq", "body", "prev_hash", "hash", "signature", "key_id")
    if not isinstance(item, dict) or any(name not in item for name in names):
        raise ProofError(f"entry {index + 1} of the proof lacks one of {', '.join(names)}")
    body = _parse_body(str(item["body"]))
    if isinstance(body, str):
        raise ProofError(f"entry {item['seq']}: {body}")
    seq = item["seq"]
    if not _whole(seq):
        raise ProofError(f"entry {index + 1} of the proof has seq {seq!r}")
    try:
        at = datetime.fromisoformat(str(body.get("at")))
    except ValueError:
        at = datetime.min.replace(tzinfo=UTC)  # entry_problem names the bad time
    return Entry(
        seq=int(seq),
        at=at,
        kind=str(body.get("kind")),
        entitlement_id=str(body.get("entitlement_id")),
        customer_id=str(body.get("customer_id")),
        body=str(item["body"]),
        prev_hash=str(item["prev_hash"]),
        hash=str(item["hash"]),
        signature=str(item["signature"]),
        key_id=str(item["key_id"]),
    )


def _proof_time(value: object) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ProofError(f"the proof's made_at {value!r} is not a time") from None
    if moment.tzinfo is None:
        raise ProofError(f"the proof's made_at {value!r} has no time zone")
    return moment


def proof_digest(proof: Mapping[str, Any]) -> dict[str, Any]:
    """What the QR code carries when the whole proof does not fit: the customer, each
    entitlement with its remaining services (null: unlimited) and status, and the seq, hash,
    signature and key id of the proof's newest entry. The brand's signature covers that entry
    only; the remaining figures are the desk's reading, checked against the JSON proof whose
    newest entry has that hash (or against the ledger, online)."""
    entries = proof["entries"]
    newest = entries[-1] if entries else None
    return {
        "proof": DIGEST_FORMAT,
        "v": FORMAT_VERSION,
        "customer_id": proof["customer_id"],
        "made_at": proof["made_at"],
        "entitlements": [[e["entitlement_id"], e["remaining"], e["status"]] for e in proof["entitlements"]],
        "newest": None
        if newest is None
        else {name: newest[name] for name in ("seq", "hash", "signature", "key_id")},
    }


def verify_digest(digest: object, keys: Ed25519PublicKey | Sequence[Ed25519PublicKey]) -> dict[str, Any]:
    """The digest itself when the brand's key signed the hash of its newest entry; ProofError
    otherwise. What this proves is in proof_digest's description."""
    verifiers = verifiers_of(keys)
    if not isinstance(digest, dict) or digest.get("proof") != DIGEST_FORMAT:
        raise ProofError(f"not an entitlement digest (format {DIGEST_FORMAT!r})")
    newest = digest.get("newest")
    if newest is None:
        return digest
    if not isinstance(newest, dict):
        raise ProofError("the digest's newest entry is not an object")
    verify = verifiers.get(str(newest.get("key_id")))
    if verify is None:
        raise ProofError(
            f"the digest's newest entry is signed with key {newest.get('key_id')!r}, not a trusted one"
        )
    try:
        message = signed_message(str(newest.get("hash")))
    except ValueError:
        raise ProofError("the digest's hash is not hex") from None
    if not verify(_signature_bytes(str(newest.get("signature"))), message):
        raise ProofError(f"the digest's newest entry (seq {newest.get('seq')}): bad signature")
    return digest


def proof_qr(proof: Mapping[str, Any], *, kind: str = "svg", scale: int = 4) -> tuple[bytes, str]:
    """The proof as a QR code image (`kind` svg or png) and what it carries: "proof" when its
    signed entries (the proof without its summary, which they restate) fit in a code of version
    QR_MAX_VERSION or less, as they do for one entry; else "digest" (proof_digest)."""
    import io

    import segno

    whole = {name: value for name, value in proof.items() if name != "entitlements"}
    text = json.dumps(whole, separators=(",", ":"), ensure_ascii=False)
    carries = "proof"
    try:
        code = segno.make(text, error=QR_ERROR, micro=False, boost_error=False)
        if not isinstance(code.version, int) or code.version > QR_MAX_VERSION:
            raise segno.DataOverflowError("bigger than the largest code the proof goes in whole")
    except segno.DataOverflowError:
        carries = "digest"
        digest = json.dumps(proof_digest(proof), separators=(",", ":"), ensure_ascii=False)
        try:
            code = segno.make(digest, error="l", micro=False)
        except segno.DataOverflowError as exc:
            raise ConfigError(
                f"even the digest of {proof['customer_id']}'s proof is too large for a QR code"
            ) from exc
    buffer = io.BytesIO()
    code.save(buffer, kind=kind, scale=scale)
    return buffer.getvalue(), carries


# --- store: appending ---------------------------------------------------------------------


def append(connection: Connection, body: Body, key: Ed25519PrivateKey, now: datetime) -> Entry:
    """Check `body` (without seq and at: the ledger sets them) against the entitlement's state
    and append it, chained and signed, in the caller's transaction. EntitlementError: refused;
    LedgerConflict: another append took the seq first (the caller's transaction is spoiled:
    roll back and try again, as the helpers below do)."""
    if now.tzinfo is None:
        raise ConfigError("now has no time zone: the ledger dates in UTC")
    now = now.astimezone(UTC)
    ledger = schema.ledger
    head = connection.execute(
        select(ledger.c.seq, ledger.c.hash).order_by(ledger.c.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (int(head.seq) + 1, str(head.hash)) if head is not None else (1, GENESIS)
    entitlement_id = body.get("entitlement_id")
    history = (
        connection.execute(
            select(ledger.c.body, ledger.c.hash)
            .where(ledger.c.entitlement_id == entitlement_id)
            .order_by(ledger.c.seq)
        ).all()
        if isinstance(entitlement_id, str)
        else []
    )
    state = fold([json.loads(row.body) for row in history], now).get(str(entitlement_id)) if history else None
    full: Body = {**_completed(body, state), "v": FORMAT_VERSION, "seq": seq, "at": utc_text(now)}
    if history and full.get("kind") != "grant":
        full["follows"] = str(history[-1].hash)
    else:
        full.pop("follows", None)
    check_body(full, state, now)
    if full["kind"] in ("grant", "transfer"):
        _known_customer(connection, str(full["customer_id"]))
    public = key.public_key()
    entry = next(seal([full], prev_hash=prev_hash, sign=signer(key), key_id=key_id(public)))
    try:
        connection.execute(insert(ledger).values(**entry.row()))
    except IntegrityError as exc:
        raise LedgerConflict(f"another entry took ledger seq {seq} first; nothing written") from exc
    return entry


def _completed(body: Body, state: Entitlement | None) -> Body:
    """The body with what the entitlement's state says filled in where the caller left it out:
    the holder of a consumption or revocation, where a transfer comes from, the center."""
    full = {name: value for name, value in body.items() if value is not None or name == "units"}
    if state is None:
        return full
    kind = full.get("kind")
    if kind in ("consume", "revoke"):
        full.setdefault("customer_id", state.customer_id)
    if kind == "consume":
        full.setdefault("center_id", state.center_id)
    if kind == "transfer":
        full.setdefault("from_customer_id", state.customer_id)
        full.setdefault("from_center_id", state.center_id)
        full.setdefault("customer_id", state.customer_id)
        full.setdefault("center_id", state.center_id)
    return full


def _known_customer(connection: Connection, customer_id: str) -> None:
    found = connection.execute(
        select(schema.customer.c.customer_id).where(schema.customer.c.customer_id == customer_id)
    ).first()
    if found is None:
        raise UnknownCustomer(f"unknown customer {customer_id!r}")


T = TypeVar("T")


def retrying(engine: Engine, work: Callable[[Connection], T], *, attempts: int = APPEND_ATTEMPTS) -> T:
    """Run `work` in a transaction of its own, again (after a short random pause) when a
    concurrent append took its seq: each try reads the ledger afresh, so a second consumption of
    the last service is then refused as overdrawn."""
    from prognos.desk.store import transaction

    for attempt in range(attempts):
        try:
            with transaction(engine) as connection:
                return work(connection)
        except LedgerConflict:
            if attempt == attempts - 1:
                raise
            log.debug(
                "another append took the ledger seq; reading the ledger again (attempt %d)", attempt + 2
            )
            time.sleep(random.uniform(0.0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")


def append_retrying(engine: Engine, body: Body, key: Ed25519PrivateKey, now: datetime) -> Entry:
    return retrying(engine, lambda connection: append(connection, body, key, now))


def grant(
    engine: Engine,
    *,
    key: Ed25519PrivateKey,
    now: datetime,
    entitlement_id: str,
    customer_id: str,
    vin: str,
    product: str,
    units: int | None,
    valid_from: datetime,
    valid_until: datetime,
    center_id: str,
    dealer_id: str,
    actor: str,
) -> Entry:
    body: Body = {
        "kind": "grant",
        "entitlement_id": entitlement_id,
        "customer_id": customer_id,
        "actor": actor,
        "vin": vin,
        "product": product,
        "units": units,
        "valid_from": utc_text(valid_from),
        "valid_until": utc_text(valid_until),
        "center_id": center_id,
        "dealer_id": dealer_id,
    }
    return append_retrying(engine, body, key, now)


def consume(
    engine: Engine,
    *,
    key: Ed25519PrivateKey,
    now: datetime,
    entitlement_id: str,
    units: int = 1,
    reference: str = "",
    actor: str,
    center_id: str | None = None,
    customer_id: str | None = None,
) -> Entry:
    """Use `units` services of an entitlement (at `center_id`, default the entitlement's; by
    `customer_id`, default its holder)."""
    body: Body = {
        "kind": "consume",
        "entitlement_id": entitlement_id,
        "actor": actor,
        "units": units,
        "reference": reference,
        "center_id": center_id,
        "customer_id": customer_id,
    }
    return append_retrying(engine, body, key, now)


def transfer(
    engine: Engine,
    *,
    key: Ed25519PrivateKey,
    now: datetime,
    entitlement_id: str,
    reason: str,
    actor: str,
    to_customer_id: str | None = None,
    to_center_id: str | None = None,
) -> Entry:
    """Move an entitlement to another holder and/or center (either default: unchanged)."""
    body: Body = {
        "kind": "transfer",
        "entitlement_id": entitlement_id,
        "actor": actor,
        "reason": reason,
        "customer_id": to_customer_id,
        "center_id": to_center_id,
    }
    return append_retrying(engine, body, key, now)


def revoke(
    engine: Engine, *, key: Ed25519PrivateKey, now: datetime, entitlement_id: str, reason: str, actor: str
) -> Entry:
    body: Body = {"kind": "revoke", "entitlement_id": entitlement_id, "actor": actor, "reason": reason}
    return append_retrying(engine, body, key, now)


# --- store: reading -----------------------------------------------------------------------


def current_entitlements(
    connection: Connection, *, now: datetime, customer_ids: Collection[str] | None = None
) -> dict[str, Entitlement]:
    """Every entitlement's state at `now` (or only those held by `customer_ids` now)."""
    ledger = schema.ledger
    query = select(ledger.c.body).order_by(ledger.c.seq)
    if customer_ids is not None:
        held = select(ledger.c.entitlement_id).where(ledger.c.customer_id.in_(list(customer_ids)))
        query = query.where(ledger.c.entitlement_id.in_(held))
    bodies: list[Body] = [json.loads(body) for body in connection.execute(query).scalars()]
    states = fold(bodies, now)
    if customer_ids is None:
        return states
    wanted = set(customer_ids)
    return {key: state for key, state in states.items() if state.customer_id in wanted}


def entries_of(connection: Connection, entitlement_ids: Collection[str]) -> list[Entry]:
    ledger = schema.ledger
    rows = connection.execute(
        select(*_entry_columns())
        .where(ledger.c.entitlement_id.in_(list(entitlement_ids)))
        .order_by(ledger.c.seq)
    )
    return [Entry(**row._mapping) for row in rows]


def customer_proof(connection: Connection, customer_id: str, *, now: datetime) -> dict[str, Any]:
    """The proof of what `customer_id` holds at `now` (make_proof); UnknownCustomer when the
    desk has never heard of them."""
    states = current_entitlements(connection, now=now, customer_ids=[customer_id])
    if not states:
        known = connection.execute(
            select(func.count())
            .select_from(schema.customer)
            .where(schema.customer.c.customer_id == customer_id)
        ).scalar_one()
        if not known:
            raise UnknownCustomer(f"unknown customer {customer_id!r}")
    return make_proof(customer_id, entries_of(connection, list(states)), now=now)


def _entry_columns() -> list[Any]:
    ledger = schema.ledger
    return [
        ledger.c.seq,
        ledger.c.at,
        ledger.c.kind,
        ledger.c.entitlement_id,
        ledger.c.customer_id,
        ledger.c.body,
        ledger.c.prev_hash,
        ledger.c.hash,
        ledger.c.signature,
        ledger.c.key_id,
    ]


def _entries(connection: Connection, rows_per_fetch: int) -> Iterator[Entry]:
    """Every entry in seq order, fetched `rows_per_fetch` at a time (a server-side cursor on
    PostgreSQL), so the ledger never sits in memory whole."""
    result = connection.execution_options(yield_per=rows_per_fetch).execute(
        select(*_entry_columns()).order_by(schema.ledger.c.seq)
    )
    for seq, at, kind, entitlement_id, customer_id, body, prev_hash, digest, signature, signed_by in result:
        yield Entry(
            seq=seq,
            at=at,
            kind=kind,
            entitlement_id=entitlement_id,
            customer_id=customer_id,
            body=body,
            prev_hash=prev_hash,
            hash=digest,
            signature=signature,
            key_id=signed_by,
        )


# --- store: verifying ---------------------------------------------------------------------


def verify_ledger(
    engine: Engine,
    keys: Ed25519PublicKey | Sequence[Ed25519PublicKey],
    *,
    jobs: int = 1,
    rows_per_fetch: int = 5000,
) -> LedgerReport:
    """Check every entry in seq order: no seq missing, body and columns agree, each links to the
    one before, its hash recomputes, its key is trusted and its signature holds. Stops at the
    first bad entry. `jobs` > 1 checks the signatures in that many other processes while this
    one reads the rows and checks the chain."""
    verifiers = verifiers_of(keys)
    with engine.connect() as connection:
        entries = _entries(connection, rows_per_fetch)
        if jobs > 1:
            chosen = [keys] if isinstance(keys, Ed25519PublicKey) else list(keys)
            raws = {key_id(key): raw_public_key(key) for key in chosen}
            return _verify_in_processes(entries, raws, jobs)
        checked, prev_hash = 0, GENESIS
        for entry in entries:
            problem = _gap(entry, checked) or entry_problem(entry, prev_hash=prev_hash, verifiers=verifiers)
            if problem:
                return LedgerReport(
                    checked, checked, prev_hash, Problem(min(entry.seq, checked + 1), problem)
                )
            checked, prev_hash = entry.seq, entry.hash
        return LedgerReport(checked, checked, prev_hash, None)


def _gap(entry: Entry, newest_seq: int) -> str | None:
    if entry.seq == newest_seq + 1:
        return None
    after = f"entry {newest_seq}" if newest_seq else "the start"
    return f"missing: the ledger goes from {after} to entry {entry.seq}"


SIGNATURE_CHUNK = 2048  # entries per batch of signatures sent to a process
RECORD_BYTES = 1 + 32 + SIGNATURE_BYTES  # key index, hash, signature


def _verify_in_processes(entries: Iterator[Entry], raws: Mapping[str, bytes], jobs: int) -> LedgerReport:
    index = {name: position for position, name in enumerate(raws)}
    keys = tuple(raws.values())
    pending: list[Future[int | None]] = []
    bad_signature: int | None = None

    def settle(keep: int) -> int | None:
        while len(pending) > keep:
            bad = pending.pop(0).result()
            if bad is not None:
                return bad
        return None

    checked, prev_hash, problem = 0, GENESIS, None
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        seqs, blob = array("q"), bytearray()
        for entry in entries:
            what = _gap(entry, checked) or structure_problem(entry, prev_hash=prev_hash, key_ids=index)
            if what:
                problem = Problem(checked + 1, what)
                break
            seqs.append(entry.seq)
            blob += bytes((index[entry.key_id],)) + bytes.fromhex(entry.hash) + bytes.fromhex(entry.signature)
            checked, prev_hash = entry.seq, entry.hash
            if len(seqs) == SIGNATURE_CHUNK:
                pending.append(pool.submit(_first_bad_signature, keys, seqs, bytes(blob)))
                seqs, blob = array("q"), bytearray()
                bad_signature = settle(2 * jobs)
                if bad_signature is not None:
                    pool.shutdown(cancel_futures=True)
                    break
        if bad_signature is None:
            if seqs:
                pending.append(pool.submit(_first_bad_signature, keys, seqs, bytes(blob)))
            bad_signature = settle(0)
    if bad_signature is not None:
        return LedgerReport(bad_signature - 1, bad_signature - 1, "", Problem(bad_signature, "bad signature"))
    if problem is not None:
        return LedgerReport(checked, checked, prev_hash, problem)
    return LedgerReport(checked, checked, prev_hash, None)


_WORKER_VERIFIERS: dict[bytes, Verifier] = {}


def _first_bad_signature(keys: tuple[bytes, ...], seqs: array[int], blob: bytes) -> int | None:
    """(In a worker process.) The seq of the first entry whose signature does not hold."""
    verifiers = []
    for raw in keys:
        if raw not in _WORKER_VERIFIERS:
            _WORKER_VERIFIERS[raw] = verifier(raw)
        verifiers.append(_WORKER_VERIFIERS[raw])
    view = memoryview(blob)
    for position, seq in enumerate(seqs):
        start = position * RECORD_BYTES
        verify = verifiers[view[start]]
        digest = bytes(view[start + 1 : start + 33])
        if not verify(bytes(view[start + 33 : start + RECORD_BYTES]), SIGNED_PREFIX + digest):
            return seq
    return None
