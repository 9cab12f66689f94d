"""The local stack: a Mosquitto broker and an InfluxDB 1.x server as local processes.

Each stack lives in one home directory (PROGNOS_HOME, default ./.prognos) that holds its
configs, data, logs and stack.json, the file other commands read to find the stack. Data
directories survive `stack down`, so bringing the stack up again keeps what was stored.

A stack is secure unless started with `secure=False` (`prognos stack up --insecure`, for
development only): the broker speaks TLS with a certificate from the stack's fleet CA and lets
in only known users under the ACL of prognos.ops.identities; InfluxDB requires a login, and each
cloud role gets its own user with least privilege (docs/security.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from prognos.errors import MissingDependencyError, TransientError
from prognos.ops import postgres
from prognos.ops.access import ensure_users, prepare_database
from prognos.ops.identities import (
    BROKER_ROLES,
    BrokerUsers,
    ensure_pki,
    role_credentials,
)
from prognos.ops.state import DEFAULT_DATABASE, STATE_FILE, StackInfo, read_state
from prognos.security import write_secret

DESK_DATABASE = "desk"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
BINARIES = {
    "mosquitto": ("mosquitto", "apt-get install -y mosquitto"),
    "influxd": ("influxdb", "apt-get install -y influxdb"),
}


def find_binary(name: str) -> str:
    """The path of mosquitto or influxd; MissingDependencyError says how to install it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        package, command = BINARIES[name]
        raise MissingDependencyError(
            f"{name} is not installed; install the Debian package {package!r}: sudo {command}"
        )
    return found


def stack_status(home: Path) -> dict[str, bool]:
    """Whether each service of the stack in `home` runs and answers (postgres only when the
    stack was started with it)."""
    info = read_state(home)
    if info is None:
        return {"mosquitto": False, "influxd": False}
    status = {
        "mosquitto": _alive(info.mosquitto_pid, "mosquitto") and _port_open(info.mqtt_host, info.mqtt_port),
        "influxd": _alive(info.influxd_pid, "influxd") and _influx_ping(info.influx_url),
    }
    if info.postgres_port is not None and info.postgres_pid is not None:
        status["postgres"] = _alive(info.postgres_pid, "postgres") and _port_open(
            "127.0.0.1", info.postgres_port
        )
    return status


def stack_up(
    home: Path,
    *,
    secure: bool = True,
    databases: tuple[str, ...] = (DEFAULT_DATABASE,),
    desk_postgres: bool = False,
) -> tuple[StackInfo, bool]:
    """Start the stack in `home`, or find it running. Returns the stack and whether it was
    started. A running stack of the other kind (secure or not) is restarted as asked. On a
    secure stack, `databases` are created with every role's grant (roles cannot create them).
    With `desk_postgres`, PostgreSQL runs too and holds the service desk's database (its URL in
    credentials/desk.url); without it the desk uses SQLite."""
    mosquitto_bin = find_binary("mosquitto")
    influxd_bin = find_binary("influxd")
    if desk_postgres:
        postgres.find_bin_dir()
    previous = read_state(home)
    same_kind = previous is not None and previous.secure == secure
    same_kind = same_kind and (previous is not None and (previous.postgres_port is not None) == desk_postgres)
    if previous is not None and same_kind and all(stack_status(home).values()):
        if secure:
            _ensure_database_users(previous, databases)
        return previous, False
    if previous is not None:
        _stop_services(previous)  # one service may still run; never leave a half stack behind
    home.mkdir(parents=True, exist_ok=True)
    mqtt_port = _reuse_or_free_port(previous.mqtt_port if previous else None)
    influx_port = _reuse_or_free_port(previous.influx_port if previous else None)
    rpc_port = _reuse_or_free_port(previous.influx_rpc_port if previous else None)
    if secure:
        ensure_pki(home / "pki")
        _render_broker_users(home)
    mosquitto_conf = _write_mosquitto_config(home, mqtt_port, secure)
    influx_conf = _write_influx_config(home, influx_port, rpc_port, secure)
    mosquitto = _spawn([mosquitto_bin, "-c", str(mosquitto_conf)], home / "mosquitto" / "stdout.log")
    influxd = _spawn([influxd_bin, "-config", str(influx_conf)], home / "influxdb" / "stdout.log")
    info = StackInfo(
        home=str(home),
        mqtt_host="127.0.0.1",
        mqtt_port=mqtt_port,
        influx_url=f"http://127.0.0.1:{influx_port}",
        influx_port=influx_port,
        influx_rpc_port=rpc_port,
        mosquitto_pid=mosquitto.pid,
        influxd_pid=influxd.pid,
        secure=secure,
        ca_file=str(home / "pki" / "ca.pem") if secure else None,
    )
    if desk_postgres:
        info = _start_desk_postgres(home, info, previous.postgres_port if previous else None)
    tmp = home / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2))
    tmp.replace(home / STATE_FILE)
    try:
        _wait_until(
            lambda: _port_open(info.mqtt_host, mqtt_port),
            mosquitto,
            "mosquitto",
            home / "mosquitto" / "mosquitto.log",
        )
        _wait_until(
            lambda: _influx_ping(info.influx_url), influxd, "influxd", home / "influxdb" / "stdout.log"
        )
        if secure:
            _ensure_database_users(info, databases)
    except TransientError:
        _stop_services(info)
        raise
    return info, True


def reload_broker_users(info: StackInfo) -> None:
    """Write the broker's password and ACL files from the registry and make the running
    broker read them (SIGHUP); connections of removed users are closed by the broker."""
    _render_broker_users(Path(info.home))
    if _alive(info.mosquitto_pid, "mosquitto"):
        os.kill(info.mosquitto_pid, signal.SIGHUP)


def broker_users(info_or_home: StackInfo | Path) -> BrokerUsers:
    home = Path(info_or_home.home) if isinstance(info_or_home, StackInfo) else info_or_home
    return BrokerUsers(home / "identities.json")


def _render_broker_users(home: Path) -> None:
    users = broker_users(home)
    for role in BROKER_ROLES:
        users.add_role(role_credentials(home / "credentials", f"mqtt-{role}"), role)
    users.save()
    users.render(home / "mosquitto" / "passwd", home / "mosquitto" / "acl")


def _ensure_database_users(info: StackInfo, databases: tuple[str, ...]) -> None:
    """The database users and `databases` with their grants."""
    ensure_users(info)
    for database in databases:
        prepare_database(info, database)


def _start_desk_postgres(home: Path, info: StackInfo, previous_port: int | None) -> StackInfo:
    data_dir = home / "postgres" / "data"
    try:
        server = postgres.start(data_dir, _reuse_or_free_port(previous_port))
    except TransientError:
        _stop_services(info)
        raise
    url = postgres.ensure_database(server, DESK_DATABASE)
    info = replace(info, postgres_port=server.port, postgres_pid=server.pid)
    write_secret(info.desk_url_file, url + "\n")
    return info


def stack_down(home: Path) -> bool:
    """Stop the stack in `home`; data stays. Returns False if there was none."""
    info = read_state(home)
    if info is None:
        return False
    _stop_services(info)
    (home / STATE_FILE).unlink(missing_ok=True)
    return True


def _stop_services(info: StackInfo) -> None:
    if info.postgres_pid is not None and _alive(info.postgres_pid, "postgres"):
        postgres.stop(Path(info.home) / "postgres" / "data")
    for pid, name in ((info.mosquitto_pid, "mosquitto"), (info.influxd_pid, "influxd")):
        if not _alive(pid, name):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid, name) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid, name):
                time.sleep(0.05)


def _write_mosquitto_config(home: Path, port: int, secure: bool) -> Path:
    data = home / "mosquitto"
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "mosquitto.conf"
    pki = home / "pki"
    access = (
        [
            f"cafile {pki}/ca.pem",
            f"certfile {pki}/server.pem",
            f"keyfile {pki}/server.key",
            "tls_version tlsv1.2",
            "allow_anonymous false",
            f"password_file {data}/passwd",
            f"acl_file {data}/acl",
        ]
        if secure
        else ["allow_anonymous true"]
    )
    lines = [
        "# Written by `prognos stack up`; rewritten at every start.",
        f"listener {port} 127.0.0.1",
        *access,
        "persistence true",
        f"persistence_location {data}/",
        # Save the in-memory store after every 100 changes (not every 5 s): a kill -9 of the broker
        # loses at most the messages of the last 100 changes; saving at every change loses none
        # but rewrites the whole backlog each time (docs/chaos.md).
        "autosave_on_changes true",
        "autosave_interval 100",
        f"log_dest file {data}/mosquitto.log",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "max_queued_messages 1000000",
        "max_inflight_messages 1000",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # otherwise mosquitto drops to a user that cannot write `data`
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _write_influx_config(home: Path, http_port: int, rpc_port: int, secure: bool) -> Path:
    data = home / "influxdb"
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "influxdb.conf"
    conf.write_text(
        "# Written by `prognos stack up`; rewritten at every start.\n"
        "reporting-disabled = true\n"
        f'bind-address = "127.0.0.1:{rpc_port}"\n'
        "[meta]\n"
        f'  dir = "{data}/meta"\n'
        "[data]\n"
        f'  dir = "{data}/data"\n'
        f'  wal-dir = "{data}/wal"\n'
        "  query-log-enabled = false\n"
        "[http]\n"
        f'  bind-address = "127.0.0.1:{http_port}"\n'
        "  log-enabled = false\n"
        "  max-body-size = 25000000\n"
        f"  auth-enabled = {'true' if secure else 'false'}\n"
        "[monitor]\n"
        "  store-enabled = false\n"
        "[logging]\n"
        '  level = "warn"\n'
    )
    return conf


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


def _wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log_path: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            raise TransientError(f"{name} exited at start; last log lines:\n{_tail(log_path)}")
        time.sleep(0.1)
    raise TransientError(f"{name} did not answer within {START_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _alive(pid: int, name: str) -> bool:
    """Whether `pid` is a live (not zombie) process running `name`."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
    return state != "Z" and name.encode() in cmdline


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _influx_ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1.0) as answer:
            return bool(answer.status == 204)
    except (urllib.error.URLError, OSError):
        return False


def _reuse_or_free_port(previous: int | None) -> int:
    if previous is not None:
        with socket.socket() as sock:
            # As the services bind: connections of the previous run in TIME_WAIT do not block it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", previous))
                return previous
            except OSError:
                pass
    return free_port()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
