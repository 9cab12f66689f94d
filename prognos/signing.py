"""The brand's ed25519 signing keys: made by `prognos models keygen`, read from PEM files, named
by a key id. Model bundles (prognos/edge/ota.py) and the entitlement ledger
(prognos/desk/ledger.py) are signed with them.

Signing and verifying many small messages (the ledger) goes through libsodium when PyNaCl is
installed (the desk extra installs it): its verify takes about half the time of OpenSSL's on the
project's build machine (docs/benchmarks.md). Without PyNaCl, `cryptography` does the same work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from prognos.errors import ConfigError

KEY_ID_CHARS = 16
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

# (signature, message) -> whether the key made that signature
Verifier = Callable[[bytes, bytes], bool]
# message -> signature
Signer = Callable[[bytes], bytes]


def generate_key() -> tuple[bytes, bytes]:
    """A new signing key: (private key PEM, public key PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read signing key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read trusted key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an ed25519 public key")
    return key


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The 32 bytes of the public key itself (no PEM, no ASN.1)."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | bytes) -> str:
    """The key's name in signed records: the first 16 hex digits of the SHA-256 of its raw 32
    bytes (a public key, or its raw bytes)."""
    raw = key if isinstance(key, bytes) else raw_public_key(key)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_CHARS]


def signer(key: Ed25519PrivateKey) -> Signer:
    """A function that signs a message with `key` (libsodium when installed: same signatures,
    ed25519 is deterministic)."""
    try:
        from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
    except ImportError:
        return key.sign
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    _public, secret = crypto_sign_seed_keypair(seed)

    def sign(message: bytes) -> bytes:
        return crypto_sign(message, secret)[:SIGNATURE_BYTES]

    return sign


def verifier(key: Ed25519PublicKey | bytes) -> Verifier:
    """A function that tells whether `key` (a public key, or its raw 32 bytes) signed a message."""
    raw = key if isinstance(key, bytes) else raw_public_key(key)
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ConfigError(f"an ed25519 public key has {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
    try:
        from nacl.bindings import crypto_sign_open
        from nacl.exceptions import BadSignatureError
    except ImportError:
        return _openssl_verifier(Ed25519PublicKey.from_public_bytes(raw))

    def verify(signature: bytes, message: bytes) -> bool:
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            crypto_sign_open(signature + message, raw)
        except BadSignatureError:
            return False
        return True

    return verify


def _openssl_verifier(key: Ed25519PublicKey) -> Verifier:
    def verify(signature: bytes, message: bytes) -> bool:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify
