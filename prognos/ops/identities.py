"""Identities and transport security of the stack (docs/security.md).

- A fleet CA per stack issues the broker's TLS certificate; clients trust only that CA.
- Every MQTT client logs in with its own username and password: one per vehicle (the VIN),
  one per cloud role. The broker's password file holds salted PBKDF2-SHA512 hashes; the ACL
  lets a vehicle publish only its own diag/status topics and read only its own model topic.
- InfluxDB users with least privilege: ingest writes, the dashboard reads, the analytics job
  reads and writes, the admin manages databases and users.

The registry of broker users (identities.json in the stack home) holds hashes only; a
vehicle's password exists in clear only in what `prognos fleet provision` hands out. The
passwords of the cloud roles live in the stack's credentials/ directory, one file per role,
readable by the owner only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from prognos.errors import ConfigError
from prognos.security import Credentials, read_credentials, write_secret
from prognos.topics import ROOT, topic

# Broker roles besides the vehicles, and what each may do (MQTT topic filters).
BROKER_ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest": (("read", f"{ROOT}/+/+/diag"), ("read", f"{ROOT}/+/+/status"), ("write", f"{ROOT}/+/+/stored")),
    "reports": (("read", f"{ROOT}/+/+/diag"),),  # the diagnosis-report worker (prognos cloud reports run)
    "operator": (("write", f"{ROOT}/+/+/model"),),  # model updates
    "observer": (("read", f"{ROOT}/#"),),  # the HIL judge and monitoring: read everything
}
# Database roles and their privilege on each database of the stack.
DATABASE_ROLES: dict[str, str] = {"ingest": "WRITE", "analytics": "ALL", "dashboard": "READ"}
INFLUX_ADMIN = "admin"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes by default; the hash is salted per user
SALT_BYTES = 12
CERT_DAYS = 825


# ---------------------------------------------------------------- passwords


def new_password() -> str:
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A password-file entry's hash in Mosquitto 2's format: $7$iterations$salt$PBKDF2-SHA512."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def role_credentials(credentials_dir: Path, name: str) -> Credentials:
    """The credentials of a cloud role, created on first use."""
    path = credentials_dir / f"{name}.json"
    if not path.exists():
        username = name.split("-", 1)[1]
        write_secret(path, json.dumps({"username": username, "password": new_password()}) + "\n")
    return read_credentials(path)


# ---------------------------------------------------------------- broker users and ACL


@dataclass(frozen=True)
class BrokerUser:
    username: str
    password_hash: str
    role: str  # "vehicle" or one of BROKER_ROLES
    fleet: str | None = None
    vin: str | None = None

    def rules(self) -> list[tuple[str, str]]:
        if self.role == "vehicle":
            assert self.fleet is not None and self.vin is not None
            return [
                ("write", topic(self.fleet, self.vin, "diag")),
                ("write", topic(self.fleet, self.vin, "status")),
                ("read", topic(self.fleet, self.vin, "model")),
                ("read", topic(self.fleet, self.vin, "stored")),
            ]
        return list(BROKER_ROLES[self.role])


class BrokerUsers:
    """The registry of broker users, kept in one JSON file; `render` writes Mosquitto's
    password and ACL files from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users: dict[str, BrokerUser] = {}
        if path.exists():
            try:
                for item in json.loads(path.read_text())["users"]:
                    user = BrokerUser(**item)
                    self.users[user.username] = user
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path} is damaged ({exc})") from exc

    def add_vehicle(self, fleet: str, vin: str) -> Credentials:
        """New credentials for `vin` in `fleet`; replaces (and so revokes) any it had."""
        topic(fleet, vin, "diag")  # ConfigError for a malformed fleet or VIN
        if vin in BROKER_ROLES:
            raise ConfigError(f"{vin!r} is the name of a cloud role, not a VIN")
        password = new_password()
        self.users[vin] = BrokerUser(vin, mosquitto_hash(password), "vehicle", fleet, vin)
        return Credentials(vin, password)

    def add_role(self, credentials: Credentials, role: str) -> None:
        if role not in BROKER_ROLES:
            raise ConfigError(f"unknown broker role {role!r}")
        current = self.users.get(credentials.username)
        if current is None or not _hash_matches(current.password_hash, credentials.password):
            self.users[credentials.username] = BrokerUser(
                credentials.username, mosquitto_hash(credentials.password), role
            )

    def remove(self, username: str) -> bool:
        return self.users.pop(username, None) is not None

    def save(self) -> None:
        data = {"users": [asdict(user) for user in sorted(self.users.values(), key=lambda u: u.username)]}
        write_secret(self.path, json.dumps(data, indent=1) + "\n")

    def render(self, password_file: Path, acl_file: Path) -> None:
        users = sorted(self.users.values(), key=lambda u: u.username)
        write_secret(password_file, "".join(f"{u.username}:{u.password_hash}\n" for u in users))
        write_secret(acl_file, acl_text(users))


def acl_text(users: list[BrokerUser]) -> str:
    """Mosquitto's ACL file: nothing is allowed that a user's entry does not name."""
    blocks = ["# Written by prognos from identities.json; edits here are overwritten.\n"]
    for user in users:
        lines = [f"user {user.username}"] + [f"topic {access} {name}" for access, name in user.rules()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def _hash_matches(entry: str, password: str) -> bool:
    try:
        _, kind, iterations, salt, digest = entry.split("$")
        if kind != "7":
            return False
        computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
        return secrets.compare_digest(computed, base64.b64decode(digest))
    except ValueError:
        return False


# ---------------------------------------------------------------- the fleet CA


def ensure_pki(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
    """A CA (ca.pem, ca.key) and the broker's certificate (server.pem, server.key) signed by
    it, created once; keys readable by the owner only."""
    if all((directory / name).exists() for name in ("ca.pem", "ca.key", "server.pem", "server.key")):
        return
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(key: ec.EllipticCurvePrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Prognos fleet CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    write_secret(directory / "ca.key", pem_key(ca_key))
    write_secret(directory / "server.key", pem_key(server_key))
    (directory / "server.pem").write_text(server_cert.public_bytes(serialization.Encoding.PEM).decode())
    (directory / "ca.pem").write_text(ca_cert.public_bytes(serialization.Encoding.PEM).decode())
