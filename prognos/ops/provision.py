"""Vehicle identities on a stack's broker: issue, hand out and revoke (docs/security.md)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from prognos.config import RECEIPT_TIMEOUT_S, broker_toml
from prognos.errors import ConfigError
from prognos.ops.identities import BrokerUsers
from prognos.ops.stack import broker_users, reload_broker_users
from prognos.ops.state import StackInfo
from prognos.security import Credentials, FleetLogins, write_secret


@contextmanager
def _registry(info: StackInfo) -> Iterator[BrokerUsers]:
    """The broker users, changed by one process at a time; saved, rendered and reloaded after."""
    if not info.secure:
        raise ConfigError(
            f"the stack in {info.home} is insecure (anonymous broker): vehicles need no credentials; "
            "restart it without --insecure to use identities"
        )
    lock_path = Path(info.home) / "identities.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users = broker_users(info)
        yield users
        users.save()
        reload_broker_users(info)


def issue_credentials(info: StackInfo, fleet: str, vins: Sequence[str]) -> dict[str, Credentials]:
    """New broker credentials for each VIN of `fleet` (any earlier ones stop working)."""
    with _registry(info) as users:
        return {vin: users.add_vehicle(fleet, vin) for vin in vins}


def fleet_logins(
    info: StackInfo, fleet: str, vins: Sequence[str], *, receipt_timeout_s: float | None = None
) -> FleetLogins:
    """Logins for a simulated or bench fleet on this stack (fresh credentials for each VIN) and
    for the observer that reads what it publishes; none on an insecure stack. With
    `receipt_timeout_s`, the agents wait for ingest's storage receipts (ingest must run)."""
    if not info.secure:
        return FleetLogins(receipt_timeout_s=receipt_timeout_s)
    return FleetLogins(
        info.ca_file,
        issue_credentials(info, fleet, vins),
        info.broker_auth("observer").credentials,
        receipt_timeout_s,
    )


def provision_vehicles(info: StackInfo, fleet: str, vins: Sequence[str], out: Path) -> dict[str, Path]:
    """Issue credentials and write, per VIN, OUT/VIN/{ca.pem, password, broker.toml}."""
    written: dict[str, Path] = {}
    for vin, credentials in issue_credentials(info, fleet, vins).items():
        directory = out / vin
        write_broker_files(info, credentials, directory)
        written[vin] = directory
    return written


def write_broker_files(info: StackInfo, credentials: Credentials, directory: Path) -> None:
    """ca.pem, password (owner-only) and broker.toml, the [broker] table of a gateway.toml that
    names the other two by their absolute paths."""
    assert info.ca_file is not None
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_bytes(Path(info.ca_file).read_bytes())
    write_secret(directory / "password", credentials.password + "\n")
    broker = broker_toml(
        info.mqtt_host,
        info.mqtt_port,
        ca_file=(directory / "ca.pem").resolve(),
        username=credentials.username,
        password_file=(directory / "password").resolve(),
        receipt_timeout_s=RECEIPT_TIMEOUT_S,
    )
    (directory / "broker.toml").write_text(broker, encoding="utf-8")


def revoke_vehicles(info: StackInfo, vins: Sequence[str]) -> set[str]:
    """Remove the VINs' logins; returns those that had none."""
    with _registry(info) as users:
        return {vin for vin in vins if not users.remove(vin)}
