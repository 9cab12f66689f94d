"""Client-side identities: how a gateway, a cloud role or a bench logs in to the broker, and
the owner-only files credentials are kept in (docs/security.md). The operator's side (broker
users, ACLs, database roles, the fleet CA) is prognos.ops.identities."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prognos.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class BrokerAuth:
    """How a client logs in to the broker: TLS trusting `ca_file` (when set) and a password
    login (when `credentials` are set). The default is the development stack: neither."""

    ca_file: str | None = None
    credentials: Credentials | None = None

    def apply(self, client: Any) -> None:
        """Configure a paho client (before connect)."""
        if self.ca_file is not None:
            client.tls_set(ca_certs=self.ca_file)
        if self.credentials is not None:
            client.username_pw_set(self.credentials.username, self.credentials.password)


@dataclass(frozen=True)
class FleetLogins:
    """How a simulated fleet and its observer log in to a broker (picklable, for processes):
    the CA, one login per VIN and the observer's login; all empty on a development broker.
    With `receipt_timeout_s` the agents keep records until ingest's storage receipt (only where
    an ingest worker runs)."""

    ca_file: str | None = None
    vehicles: Mapping[str, Credentials] = field(default_factory=dict)
    observer: Credentials | None = None
    receipt_timeout_s: float | None = None

    def vehicle_auth(self, vin: str) -> BrokerAuth:
        return BrokerAuth(self.ca_file, self.vehicles.get(vin))

    def observer_auth(self) -> BrokerAuth:
        return BrokerAuth(self.ca_file, self.observer)


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (never a moment world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def read_credentials(path: Path) -> Credentials:
    try:
        data = json.loads(path.read_text())
        return Credentials(str(data["username"]), str(data["password"]))
    except FileNotFoundError as exc:
        raise ConfigError(f"no credentials at {path}: run `prognos stack up` first") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a credentials file ({exc})") from exc
