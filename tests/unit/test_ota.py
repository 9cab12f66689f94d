"""Model updates: only bundles signed by a trusted key, loading and passing their self-test,
become current; anything else leaves the running bundle in place."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from prognos.edge.detector import load_bundle
from prognos.edge.ota import ModelStore, sign_bundle, verify
from prognos.errors import ConfigError, RejectedError
from prognos.signing import generate_key, load_private_key, load_public_key

ARTIFACTS = Path(__file__).resolve().parents[2] / "prognos" / "models" / "artifacts"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def bundle_copy(tmp_path: Path, version: str) -> Path:
    directory = tmp_path / f"bundle-{version}"
    shutil.copytree(ARTIFACTS, directory)
    manifest = json.loads((directory / "bundle.json").read_text())
    manifest["version"] = version
    (directory / "bundle.json").write_text(json.dumps(manifest))
    return directory


def test_signature_is_checked_against_the_trusted_keys(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    signed = sign_bundle(ARTIFACTS, key)
    archive = verify(signed, [Ed25519PrivateKey.generate().public_key(), key.public_key()])
    assert archive == cbor2.loads(signed)[2]
    with pytest.raises(RejectedError, match="bad signature"):
        verify(signed, [Ed25519PrivateKey.generate().public_key()])
    with pytest.raises(RejectedError, match="no trusted keys"):
        verify(signed, [])


def test_any_changed_byte_of_the_archive_is_refused(key: Ed25519PrivateKey) -> None:
    envelope = cbor2.loads(sign_bundle(ARTIFACTS, key))
    for position in (0, len(envelope[2]) // 2, len(envelope[2]) - 1):
        tampered = bytearray(envelope[2])
        tampered[position] ^= 0x01
        with pytest.raises(RejectedError, match="bad signature"):
            verify(cbor2.dumps({**envelope, 2: bytes(tampered)}), [key.public_key()])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\x00garbage", "not a signed bundle"),
        (cbor2.dumps([1, 2, 3]), "format 1"),
        (cbor2.dumps({1: 2, 2: b"", 3: b""}), "format 1"),
        (cbor2.dumps({1: 1, 2: "text"}), "lacks its archive"),
    ],
)
def test_malformed_envelopes_are_refused(payload: bytes, reason: str, key: Ed25519PrivateKey) -> None:
    with pytest.raises(RejectedError, match=reason):
        verify(payload, [key.public_key()])


def test_packing_is_deterministic(key: Ed25519PrivateKey) -> None:
    archive = cbor2.loads(sign_bundle(ARTIFACTS, key))[2]
    assert archive == cbor2.loads(sign_bundle(ARTIFACTS, key))[2]
    assert archive[4:8] == bytes(4), "the gzip header carries no time stamp (two packs a second apart differ)"


def test_update_swaps_and_rolls_back(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    store = ModelStore(tmp_path / "models")
    assert store.current() is None
    seeded = store.seed(ARTIFACTS)
    assert store.current() == seeded
    assert store.seed(ARTIFACTS) == seeded  # a second start keeps what runs

    bundle = store.install(sign_bundle(bundle_copy(tmp_path, "2099.01.01"), key), [key.public_key()])
    assert bundle.version == "2099.01.01"
    current = store.current()
    assert current is not None and load_bundle(current).version == "2099.01.01"

    assert store.rollback() == seeded
    assert store.current() == seeded
    assert load_bundle(store.rollback()).version == "2099.01.01"  # and forward again


def rejected_keeps_current(store: ModelStore, payload: bytes, key: Ed25519PrivateKey, reason: str) -> None:
    before = store.current()
    with pytest.raises(RejectedError, match=reason):
        store.install(payload, [key.public_key()])
    assert store.current() == before
    assert not [p for p in store.versions.iterdir() if p.name.startswith(".incoming")]


def test_a_bundle_that_fails_its_self_test_is_not_installed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    store = ModelStore(tmp_path / "models")
    store.seed(ARTIFACTS)
    broken = bundle_copy(tmp_path, "2099.02.02")
    meta_path = broken / "tires-ae" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["threshold"] = 1e9  # the detector could never alert
    meta_path.write_text(json.dumps(meta))
    rejected_keeps_current(store, sign_bundle(broken, key), key, "self-test: detector tires would not alert")


def test_a_bundle_that_does_not_load_is_not_installed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    store = ModelStore(tmp_path / "models")
    store.seed(ARTIFACTS)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b'{"bundle_id": "x", "version": "1", "models": ["missing"]}'
        info = tarfile.TarInfo("bundle.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    payload = cbor2.dumps({1: 1, 2: archive.getvalue(), 3: key.sign(archive.getvalue())})
    rejected_keeps_current(store, payload, key, "does not load")


def test_an_archive_escaping_its_directory_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    store = ModelStore(tmp_path / "models")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    payload = cbor2.dumps({1: 1, 2: archive.getvalue(), 3: key.sign(archive.getvalue())})
    rejected_keeps_current(store, payload, key, "damaged")
    assert not (tmp_path / "escaped.txt").exists()


def test_keys_round_trip_through_pem_files(tmp_path: Path) -> None:
    private, public = generate_key()
    (tmp_path / "k.pem").write_bytes(private)
    (tmp_path / "k.pub").write_bytes(public)
    signer = load_private_key(tmp_path / "k.pem")
    signed = sign_bundle(ARTIFACTS, signer)
    assert verify(signed, [load_public_key(tmp_path / "k.pub")])
    with pytest.raises(ConfigError, match="not a PEM public key"):
        (tmp_path / "bad.pub").write_text("nope")
        load_public_key(tmp_path / "bad.pub")
    with pytest.raises(ConfigError, match="cannot read"):
        load_private_key(tmp_path / "absent.pem")


def test_keygen_and_sign_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prognos.cli import main

    assert main(["models", "keygen", "--out", str(tmp_path / "keys" / "fleet")]) == 0
    private, public = tmp_path / "keys" / "fleet.pem", tmp_path / "keys" / "fleet.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    assert main(["models", "keygen", "--out", str(tmp_path / "keys" / "fleet")]) == 2
    assert "not overwriting" in capsys.readouterr().err
    out = tmp_path / "bundle.signed"
    assert main(["models", "sign", "--key", str(private), "--bundle", str(ARTIFACTS), "--out", str(out)]) == 0
    assert verify(out.read_bytes(), [load_public_key(public)])
    assert main(["models", "sign", "--key", str(public), "--bundle", str(ARTIFACTS), "--out", str(out)]) == 2
    assert "not an unencrypted PEM private key" in capsys.readouterr().err


def test_a_bundle_with_a_malformed_days_calibration_is_refused(tmp_path: Path) -> None:
    directory = bundle_copy(tmp_path, "2099.03.03")
    manifest = json.loads((directory / "bundle.json").read_text())
    manifest["days_to_threshold_calibration"] = {"tires.pressure_loss": ["a", "b"]}
    (directory / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="malformed days_to_threshold_calibration"):
        load_bundle(directory)
    manifest["days_to_threshold_calibration"] = {"tires.pressure_loss": [-0.5, -0.1, 0.2]}
    (directory / "bundle.json").write_text(json.dumps(manifest))
    assert load_bundle(directory).days_calibration["tires.pressure_loss"].log_q50 == -0.1
