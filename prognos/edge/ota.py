"""Model updates: signed bundles, verified before use, swapped atomically, rolled back on failure.

A signed bundle is one CBOR map (docs/model-updates.md):

    {1: 1,            format version
     2: archive,      the bundle directory as a gzip'd tar (bundle.json + one directory per model)
     3: signature}    ed25519 over the archive bytes

The gateway keeps its bundles under one directory:

    ROOT/versions/<bundle_id>-<version>-<sha256[:12]>/   one directory per installed bundle
    ROOT/current  -> versions/...                        the bundle the agent runs (a symlink)
    ROOT/previous -> versions/...                        the one before, for rollback

An update is verified, unpacked beside the others, loaded and self-tested; only then does
`current` change, with one rename of a symlink, so a crash at any point leaves either the old
or the new bundle in place, never half of one. The keys are the brand's (prognos/signing.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import cbor2
import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from prognos.edge.detector import Z_CLIP, Bundle, load_bundle
from prognos.edge.inputs import is_context
from prognos.errors import ConfigError, RejectedError

FORMAT_VERSION = 1
MAX_SIGNED_BYTES = 16 * 1024 * 1024
MAX_UNPACKED_BYTES = 64 * 1024 * 1024


def pack_bundle(directory: Path) -> bytes:
    """The bundle directory as a gzip'd tar, the same bytes for the same files."""
    load_bundle(directory)  # refuse to ship what would not load
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(directory)))
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    # Compressed apart: tarfile's "w:gz" stamps the gzip header with the current second.
    return gzip.compress(buffer.getvalue(), mtime=0)


def sign_bundle(directory: Path, key: Ed25519PrivateKey) -> bytes:
    archive = pack_bundle(directory)
    return bytes(cbor2.dumps({1: FORMAT_VERSION, 2: archive, 3: key.sign(archive)}))


def verify(payload: bytes, trusted: list[Ed25519PublicKey]) -> bytes:
    """The archive of a signed bundle whose signature one of `trusted` made; else RejectedError."""
    if not trusted:
        raise RejectedError("no trusted keys are configured: model updates are refused")
    if len(payload) > MAX_SIGNED_BYTES:
        raise RejectedError(f"signed bundle of {len(payload)} bytes exceeds {MAX_SIGNED_BYTES}")
    try:
        envelope = cbor2.loads(payload)
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise RejectedError(f"not a signed bundle (CBOR: {exc})") from exc
    if not isinstance(envelope, dict) or envelope.get(1) != FORMAT_VERSION:
        raise RejectedError("not a signed bundle of format 1")
    archive, signature = envelope.get(2), envelope.get(3)
    if not isinstance(archive, bytes) or not isinstance(signature, bytes):
        raise RejectedError("signed bundle lacks its archive or signature")
    for key in trusted:
        try:
            key.verify(signature, archive)
            return archive
        except InvalidSignature:
            continue
    raise RejectedError("bad signature: no trusted key signed this bundle")


def self_test(bundle: Bundle) -> None:
    """Raise RejectedError unless every model runs, finds its own healthy centre healthy (score
    below 1) and still alerts on inputs at the edge of its range (score 1 or more)."""
    for name, detector in bundle.detectors.items():
        centre = np.asarray(detector.meta.center)
        scored = np.array([not is_context(item) for item in detector.meta.inputs])
        extreme = centre + np.where(scored, Z_CLIP * np.asarray(detector.meta.scale), 0.0)
        healthy, alerting = (float(s) for s in detector.anomaly_scores(np.stack([centre, extreme])))
        if not (np.isfinite(healthy) and healthy < 1.0):
            raise RejectedError(f"self-test: detector {name} scores its healthy centre {healthy:.3g}")
        if not (np.isfinite(alerting) and alerting >= 1.0):
            raise RejectedError(f"self-test: detector {name} would not alert (extreme input: {alerting:.3g})")
    if bundle.classifier is not None:
        centre = np.asarray(bundle.classifier.meta.center)[None, :]
        probabilities = bundle.classifier.class_probabilities(centre)
        if not (np.isfinite(probabilities).all() and abs(float(probabilities.sum()) - 1.0) < 0.05):
            raise RejectedError("self-test: the classifier's probabilities do not sum to 1")


class ModelStore:
    """The gateway's installed bundles and which one runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        try:
            self.versions.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the model directory {self.versions}: {exc.strerror}") from exc

    def current(self) -> Path | None:
        link = self.root / "current"
        return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None

    def seed(self, directory: Path) -> Path:
        """Install an unsigned bundle shipped with the software (first start); the current one
        if there already is one."""
        installed = self.current()
        if installed is not None:
            return installed
        bundle = load_bundle(directory)
        self_test(bundle)
        target = self.versions / f"{bundle.bundle_id}-{bundle.version}-seed"
        if not target.exists():
            staging = Path(tempfile.mkdtemp(prefix=".seed-", dir=self.versions))
            shutil.copytree(directory, staging, dirs_exist_ok=True)
            staging.rename(target)
        self._point("current", target)
        return target

    def install(self, payload: bytes, trusted: list[Ed25519PublicKey]) -> Bundle:
        """Verify, unpack, load and self-test an update, then make it current. On any failure
        nothing changes and RejectedError says why."""
        archive = verify(payload, trusted)
        digest = hashlib.sha256(archive).hexdigest()[:12]
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.versions))
        try:
            _unpack(archive, staging)
            try:
                bundle = load_bundle(staging)
            except ConfigError as exc:
                raise RejectedError(f"the new bundle does not load: {exc}") from exc
            self_test(bundle)
            target = self.versions / f"{bundle.bundle_id}-{bundle.version}-{digest}"
            if target.exists():
                shutil.rmtree(staging)
            else:
                staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        running = self.current()
        if running is not None and running != target:
            self._point("previous", running)
        self._point("current", target)
        return load_bundle(target)

    def rollback(self) -> Path:
        """Make the previous bundle current again (after the new one failed in service)."""
        previous = self.root / "previous"
        if not (previous.is_symlink() and previous.resolve().is_dir()):
            raise RejectedError("no previous model bundle to roll back to")
        target = previous.resolve()
        running = self.current()
        self._point("current", target)
        if running is not None:
            self._point("previous", running)
        return target

    def _point(self, name: str, target: Path) -> None:
        """Atomically repoint ROOT/name at target: a new symlink renamed over the old one."""
        temporary = self.root / f".{name}.new"
        temporary.unlink(missing_ok=True)
        os.symlink(os.path.relpath(target, self.root), temporary)
        os.replace(temporary, self.root / name)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _unpack(archive: bytes, into: Path) -> None:
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            members = tar.getmembers()
            if sum(m.size for m in members) > MAX_UNPACKED_BYTES:
                raise RejectedError("the bundle unpacks to more than 64 MiB")
            if any(not (m.isfile() or m.isdir()) for m in members):
                raise RejectedError("the bundle holds something other than files and directories")
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RejectedError(f"the bundle archive is damaged: {exc}") from exc
