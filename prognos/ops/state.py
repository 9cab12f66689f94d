"""Where the local stack is: stack.json in the stack's home, read by every command that needs
the broker or the database, and the logins of the cloud roles on it."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from prognos.errors import ConfigError
from prognos.ops.identities import BROKER_ROLES, DATABASE_ROLES, INFLUX_ADMIN, role_credentials
from prognos.security import BrokerAuth, Credentials

STATE_FILE = "stack.json"
DEFAULT_DATABASE = "prognos"


@dataclass(frozen=True)
class StackInfo:
    home: str
    mqtt_host: str
    mqtt_port: int
    influx_url: str
    influx_port: int
    influx_rpc_port: int
    mosquitto_pid: int
    influxd_pid: int
    secure: bool = False
    ca_file: str | None = None  # the fleet CA the broker's certificate chains to (secure stacks)
    postgres_port: int | None = None  # the service desk's PostgreSQL, when started with the stack
    postgres_pid: int | None = None

    @property
    def mqtt_address(self) -> str:
        return f"{'mqtts' if self.secure else 'mqtt'}://{self.mqtt_host}:{self.mqtt_port}"

    def broker_auth(self, role: str) -> BrokerAuth:
        """How a cloud role (ingest, operator, observer) logs in to this stack's broker."""
        if not self.secure:
            return BrokerAuth()
        if role not in BROKER_ROLES:
            raise ConfigError(f"unknown broker role {role!r} (known: {', '.join(BROKER_ROLES)})")
        return BrokerAuth(self.ca_file, role_credentials(self.credentials_dir, f"mqtt-{role}"))

    def influx_credentials(self, role: str) -> Credentials | None:
        """The database login of a role (ingest, analytics, dashboard, admin); None on an
        insecure stack."""
        if not self.secure:
            return None
        if role != INFLUX_ADMIN and role not in DATABASE_ROLES:
            raise ConfigError(f"unknown database role {role!r} (known: {', '.join(DATABASE_ROLES)})")
        return role_credentials(self.credentials_dir, f"influx-{role}")

    @property
    def credentials_dir(self) -> Path:
        return Path(self.home) / "credentials"

    @property
    def desk_url_file(self) -> Path:
        """The service desk's PostgreSQL URL with its password (readable by the owner only)."""
        return self.credentials_dir / "desk.url"


def default_home() -> Path:
    return Path(os.environ.get("PROGNOS_HOME", ".prognos")).resolve()


def read_state(home: Path) -> StackInfo | None:
    try:
        data = json.loads((home / STATE_FILE).read_text())
        return StackInfo(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{home / STATE_FILE} is damaged ({exc}); remove it and run `prognos stack up`"
        ) from exc


def load_stack(home: Path | None = None) -> StackInfo:
    """The running stack, for commands that need the broker or the database."""
    home = home or default_home()
    info = read_state(home)
    if info is None:
        raise ConfigError(f"no stack in {home}: run `prognos stack up` first (or set PROGNOS_HOME)")
    return info


DESK_DB_ENV = "PROGNOS_DESK_DB"


def desk_url(home: Path, given: str | None = None) -> str:
    """The service desk's database: `given`, else $PROGNOS_DESK_DB, else the PostgreSQL of the
    stack in `home` when it runs one (`prognos stack up --postgres`), else SQLite in `home`."""
    from prognos.desk.store import default_url

    if given or os.environ.get(DESK_DB_ENV):
        return str(given or os.environ[DESK_DB_ENV])
    info = read_state(home)
    if info is not None and info.postgres_port is not None and info.desk_url_file.exists():
        return info.desk_url_file.read_text().strip()
    return default_url(home)


def stack_home(args: argparse.Namespace) -> Path:
    """The stack directory a command was given with --home, else the default."""
    return Path(args.home).resolve() if args.home else default_home()
