"""The entitlement ledger on SQLite and on a real PostgreSQL: appends chained and signed, double
consumption refused (also by two threads racing for the last service), rows altered directly in
the database found by verify, and the `prognos desk entitlements` commands' exit codes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, insert, select

from prognos.cli import main
from prognos.desk import ledger, schema
from prognos.desk.ledger import Entry, LedgerConflict, Overdrawn, UnknownCustomer, UnknownEntitlement
from prognos.desk.store import connect, transaction
from prognos.signing import load_private_key, load_public_key

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def engine(desk_url: str) -> Iterator[Engine]:
    engine = connect(desk_url)
    with engine.begin() as connection:
        for customer_id in ("C1", "C2"):
            connection.execute(
                insert(schema.customer).values(
                    customer_id=customer_id, name=customer_id, name_key=customer_id.lower(), created_at=T0
                )
            )
    yield engine
    engine.dispose()


def grant(
    engine: Engine, entitlement_id: str = "E1", units: int | None = 2, customer_id: str = "C1"
) -> Entry:
    return ledger.grant(
        engine,
        key=KEY,
        now=T0,
        entitlement_id=entitlement_id,
        customer_id=customer_id,
        vin="VF1TEST0000000001",
        product="maintenance" if units is not None else "warranty",
        units=units,
        valid_from=T0,
        valid_until=T0 + timedelta(days=730),
        center_id="SC-01",
        dealer_id="D01",
        actor="desk",
    )


def consume(engine: Engine, entitlement_id: str = "E1", days: float = 1) -> Entry:
    return ledger.consume(
        engine,
        key=KEY,
        now=T0 + timedelta(days=days),
        entitlement_id=entitlement_id,
        reference="WO-1",
        actor="desk",
    )


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(schema.ledger)).scalar_one())


def test_appends_chain_and_verify_and_read_back(engine: Engine) -> None:
    first = grant(engine)
    consume(engine)
    grant(engine, "E2", units=None, customer_id="C2")
    moved = ledger.transfer(
        engine,
        key=KEY,
        now=T0 + timedelta(days=2),
        entitlement_id="E1",
        to_customer_id="C2",
        reason="sold",
        actor="desk",
    )
    assert (first.seq, first.prev_hash, moved.seq) == (1, ledger.GENESIS, 4)
    assert json.loads(moved.body)["from_customer_id"] == "C1"
    report = ledger.verify_ledger(engine, KEY.public_key())
    assert report.holds and (report.entries, report.newest_seq, report.newest_hash) == (4, 4, moved.hash)
    assert ledger.verify_ledger(engine, KEY.public_key(), jobs=2).holds
    with engine.connect() as connection:
        held = ledger.current_entitlements(connection, now=T0 + timedelta(days=3), customer_ids=["C2"])
        assert {key: state.remaining for key, state in held.items()} == {"E1": 1, "E2": None}
        proof = ledger.customer_proof(connection, "C2", now=T0 + timedelta(days=3))
        assert ledger.customer_proof(connection, "C1", now=T0 + timedelta(days=3))["entries"] == []
        with pytest.raises(UnknownCustomer):
            ledger.customer_proof(connection, "C9", now=T0)
    states = ledger.verify_proof(proof, KEY.public_key(), now=T0 + timedelta(days=3))
    assert [(state.entitlement_id, state.customer_id) for state in states] == [("E1", "C2"), ("E2", "C2")]


def test_an_unknown_customer_entitlement_or_key_writes_nothing(engine: Engine) -> None:
    with pytest.raises(UnknownCustomer, match="C9"):
        grant(engine, customer_id="C9")
    with pytest.raises(UnknownEntitlement, match="E9"):
        consume(engine, "E9")
    grant(engine)
    with pytest.raises(UnknownCustomer, match="C9"):
        ledger.transfer(
            engine, key=KEY, now=T0, entitlement_id="E1", to_customer_id="C9", reason="x", actor="d"
        )
    assert count(engine) == 1
    other = Ed25519PrivateKey.generate()
    ledger.revoke(engine, key=other, now=T0, entitlement_id="E1", reason="refund", actor="desk")
    report = ledger.verify_ledger(engine, KEY.public_key())
    assert report.problem is not None and report.problem.seq == 2 and "unknown key" in report.problem.what
    assert ledger.verify_ledger(engine, [KEY.public_key(), other.public_key()]).holds


def test_double_consumption_is_refused_and_writes_nothing(engine: Engine) -> None:
    grant(engine, units=1)
    consume(engine)
    with pytest.raises(Overdrawn, match="0 of 1 left"):
        consume(engine, days=2)
    assert count(engine) == 2


def test_two_threads_racing_for_the_last_service_one_wins(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the ledger before either writes (a barrier holds them there), so both choose the
    same seq: the primary key lets one insert; the other retries, reads afresh and is refused."""
    grant(engine, units=1)
    barrier = threading.Barrier(2, timeout=10)
    first_try = threading.local()
    checked = ledger.check_body

    def meet_then_check(*args: object, **kwargs: object) -> None:
        if not getattr(first_try, "done", False):
            first_try.done = True
            barrier.wait()
        checked(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "check_body", meet_then_check)
    outcomes: list[str] = []

    def run() -> None:
        try:
            consume(engine)
            outcomes.append("consumed")
        except Overdrawn:
            outcomes.append("overdrawn")

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["consumed", "overdrawn"]
    assert count(engine) == 2
    assert ledger.verify_ledger(engine, KEY.public_key()).holds


def test_a_seq_taken_meanwhile_is_a_conflict(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer commits between this append's read of the ledger and its insert: the
    insert fails on the seq's primary key and nothing of this append is written."""
    grant(engine)
    checked = ledger.check_body

    def another_writer_first(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(ledger, "check_body", checked)
        consume(engine)  # on a connection of its own: commits seq 2
        checked(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "check_body", another_writer_first)
    body = {"kind": "consume", "entitlement_id": "E1", "units": 1, "reference": "WO-2", "actor": "desk"}
    with pytest.raises(LedgerConflict, match="seq 2"), transaction(engine) as connection:
        ledger.append(connection, dict(body), KEY, T0 + timedelta(days=1))
    assert count(engine) == 2
    assert ledger.append_retrying(engine, dict(body), KEY, T0 + timedelta(days=1)).seq == 3


def tamper(engine: Engine, statement: str) -> None:
    """Change a stored row behind the ledger's back: the append-only triggers go first."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER ledger_no_update")
            connection.exec_driver_sql("DROP TRIGGER ledger_no_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE ledger DISABLE TRIGGER USER")
        connection.exec_driver_sql(statement)


FLIP = "CASE WHEN substr(signature, 1, 1) = '0' THEN '1' ELSE '0' END || substr(signature, 2)"


@pytest.mark.parametrize(
    ("statement", "seq", "what"),
    [
        (
            "UPDATE ledger SET body = replace(body, '\"units\":1', '\"units\":0') WHERE seq = 3",
            3,
            "hash mismatch",
        ),
        (f"UPDATE ledger SET signature = {FLIP} WHERE seq = 2", 2, "bad signature"),
        ("DELETE FROM ledger WHERE seq = 3", 3, "missing: the ledger goes from entry 2 to entry 4"),
        ("UPDATE ledger SET customer_id = 'C2' WHERE seq = 4", 4, "customer_id column"),
        ("UPDATE ledger SET prev_hash = hash WHERE seq = 2", 2, "broken chain"),
    ],
)
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_row_altered_in_the_database_is_named(
    engine: Engine, statement: str, seq: int, what: str, jobs: int
) -> None:
    grant(engine)
    for days in (1, 2):
        consume(engine, days=days)
    grant(engine, "E2", units=None, customer_id="C1")
    tamper(engine, statement)
    report = ledger.verify_ledger(engine, KEY.public_key(), jobs=jobs)
    assert report.problem is not None
    assert report.problem.seq == seq and what in report.problem.what


# --- the commands ---------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str]:
    code = main(list(words))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def brand(tmp_path: Path) -> Path:
    assert main(["models", "keygen", "--out", str(tmp_path / "home" / "brand")]) == 0
    return tmp_path / "home"


def test_the_commands_exit_0_1_and_2(
    engine: Engine, desk_url: str, brand: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", desk_url, "--home", str(brand)]
    cmd: Callable[..., tuple[int, str]] = lambda *words: run(capsys, "desk", "entitlements", *words)  # noqa: E731
    until = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
    whose = ["--customer", "C1", "--vin", "VF1TEST0000000001", "--center", "SC-01", "--dealer", "D01"]
    package = [*whose, "--product", "maintenance", "--units", "1", "--valid-until", until]
    warranty = [*whose, "--product", "warranty", "--valid-until", until]
    assert cmd("grant", *package, "--id", "E1", *db)[0] == 0
    assert cmd("grant", *warranty, "--id", "W1", *db)[0] == 0
    assert cmd("consume", "--entitlement", "E1", "--reference", "WO-1", *db)[0] == 0

    code, said = cmd("consume", "--entitlement", "E1", *db)
    assert code == 2 and "overdrawn" in said
    code, said = cmd("consume", "--entitlement", "E9", *db)
    assert code == 2 and "unknown entitlement 'E9'" in said
    code, said = cmd("grant", *warranty, "--id", "E1", *db)
    assert code == 2 and "exists already" in said
    code, said = cmd("grant", *[word if word != "C1" else "C9" for word in warranty], *db)
    assert code == 2 and "unknown customer 'C9'" in said
    code, said = cmd("consume", "--entitlement", "W1", "--customer", "C2", *db)
    assert code == 2 and "held by C1, not C2" in said
    keyless = ["--db", desk_url, "--home", str(tmp_path / "none")]
    code, said = cmd("revoke", "--entitlement", "W1", "--reason", "x", *keyless)
    assert code == 2 and "prognos models keygen" in said
    assert count(engine) == 3

    assert cmd("transfer", "--entitlement", "W1", "--to-customer", "C2", "--reason", "sold", *db)[0] == 0
    code, said = cmd("list", "--customer", "C2", *db)
    assert code == 0 and "W1" in said and "unlimited" in said and "E1" not in said

    code, said = cmd("verify", *db)
    assert code == 0 and "the ledger holds: 4 entries" in said
    proof, qr = tmp_path / "c2.json", tmp_path / "c2.svg"
    code, said = cmd("proof", "--customer", "C2", "--out", str(proof), "--qr", str(qr), *db)
    assert code == 0 and proof.exists() and qr.read_bytes().lstrip().startswith(b"<?xml")
    assert cmd("proof", "--customer", "C9", "--out", str(tmp_path / "x.json"), *db)[0] == 2
    public = str(brand / "brand.pub")
    code, said = cmd("verify-proof", str(proof), "--trust", public)
    assert code == 0 and "the proof holds: C2 holds 1 entitlements" in said and "W1" in said

    forged = json.loads(proof.read_text())
    forged["entries"][0]["body"] = forged["entries"][0]["body"].replace('"W1"', '"W2"')
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, said = cmd("verify-proof", str(tmp_path / "forged.json"), "--trust", public)
    assert code == 1 and "hash mismatch" in said
    (tmp_path / "junk.json").write_text("{")
    assert cmd("verify-proof", str(tmp_path / "junk.json"), "--trust", public)[0] == 2

    digest = tmp_path / "digest.json"
    digest.write_text(json.dumps(ledger.proof_digest(json.loads(proof.read_text()))))
    code, said = cmd("verify-proof", str(digest), "--trust", public)
    assert code == 0 and "the brand signed its newest entry" in said

    tamper(engine, "UPDATE ledger SET body = replace(body, '\"WO-1\"', '\"WO-2\"') WHERE seq = 3")
    code, said = cmd("verify", "--jobs", "2", *db)
    assert code == 1 and "entry 3: hash mismatch" in said
    assert load_private_key(brand / "brand.pem").public_key() == load_public_key(brand / "brand.pub")
