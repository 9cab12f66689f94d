"""A PostgreSQL server as a local process, for the service desk in deployment form: its own
data directory, a free port on 127.0.0.1, a superuser password in a file only its owner reads.

PostgreSQL refuses to run as root, so under root the server (and initdb) run as the `postgres`
user the Debian package creates, and the data directory belongs to that user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prognos.errors import MissingDependencyError, TransientError

START_TIMEOUT_S = 30.0
SERVER_USER = "postgres"  # the account the Debian package creates
SUPERUSER = "postgres"  # the database superuser initdb creates
PASSWORD_FILE = "superuser.password"


@dataclass(frozen=True)
class PostgresServer:
    data_dir: Path
    port: int
    password: str
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"


def find_bin_dir() -> Path:
    """The directory holding postgres, initdb and pg_ctl (the newest installed version)."""
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise MissingDependencyError(
            "PostgreSQL is not installed; install the Debian package 'postgresql': "
            "sudo apt-get install -y postgresql"
        )
    return versions[-1].parent


def _as_server_user() -> dict[str, object]:
    """subprocess arguments that run a command as the server's account when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise MissingDependencyError(
            f"PostgreSQL will not run as root and there is no {SERVER_USER!r} user to run it as"
        ) from exc
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_USER)
        os.chown(path, account.pw_uid, account.pw_gid)


def start(data_dir: Path, port: int) -> PostgresServer:
    """Start PostgreSQL on `port` with its data in `data_dir`, creating the cluster on first use.
    Returns once it accepts connections. Under root, every directory above `data_dir` must let
    the postgres user pass (mode o+x)."""
    bin_dir = find_bin_dir()
    run_as = _as_server_user()
    if run_as:
        _check_reachable(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _own(data_dir)
    data_dir.chmod(0o700)
    password_file = data_dir.parent / PASSWORD_FILE
    if not (data_dir / "PG_VERSION").exists():
        password = secrets.token_urlsafe(24)
        scratch = data_dir.parent / ".pwfile"
        scratch.write_text(password + "\n")
        scratch.chmod(0o600)
        _own(scratch)
        try:
            _run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--auth=scram-sha-256",
                    f"--pwfile={scratch}",
                    "--no-instructions",
                ],
                run_as,
            )
        finally:
            scratch.unlink(missing_ok=True)
        password_file.write_text(password)
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    log = data_dir.parent / "postgres.log"
    log.touch()
    _own(log)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir}"
    _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-o", options, "-w", "start"], run_as)
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    _wait_for_port(port, log)
    return PostgresServer(data_dir=data_dir, port=port, password=password, pid=pid)


def stop(data_dir: Path) -> None:
    """Stop the server of `data_dir` if it runs (fast shutdown: sessions end, data is kept)."""
    if not (data_dir / "postmaster.pid").exists():
        return
    _run([str(find_bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], _as_server_user())


def create_database(server: PostgresServer, name: str) -> str:
    """Create database `name` (a plain identifier) and return its URL."""
    _check_name(name)
    with _admin(server) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def ensure_database(server: PostgresServer, name: str) -> str:
    """Database `name`'s URL, creating it if it does not exist yet."""
    _check_name(name)
    with _admin(server) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _check_name(name: str) -> None:
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not a plain database name")


def _admin(server: PostgresServer) -> Any:
    import psycopg

    return psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user=SUPERUSER,
        password=server.password,
        dbname="postgres",
        autocommit=True,
    )


def _check_reachable(data_dir: Path) -> None:
    for directory in data_dir.resolve().parents:
        if directory.exists() and not directory.stat().st_mode & 0o001:
            raise TransientError(
                f"PostgreSQL runs as the {SERVER_USER!r} user, which cannot enter {directory} "
                f"(mode {directory.stat().st_mode & 0o777:o}): put its data elsewhere or chmod o+x it"
            )


def _run(argv: list[str], run_as: dict[str, object]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, cwd="/", **run_as)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise TransientError(
            f"{Path(argv[0]).name} failed: {(result.stderr or result.stdout).strip()[-800:]}"
        )


def _wait_for_port(port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TransientError(f"PostgreSQL did not answer on port {port}: {log.read_text()[-800:]}")
