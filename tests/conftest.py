"""Fixtures: one real stack (Mosquitto + InfluxDB) per test session, and per test its own
database and fleet (so its own topics). Each test is marked by its folder: tests/unit (starts no
server), tests/integration (a real broker or database, or slow) and tests/browser (Chromium);
tests/support holds the rigs and helpers they import."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.errors import MissingDependencyError
from prognos.ops import postgres
from prognos.ops.postgres import PostgresServer
from prognos.ops.stack import free_port, stack_down, stack_up
from prognos.ops.state import StackInfo

TESTS_DIR = Path(__file__).resolve().parent
SHARED_DATA = TESTS_DIR.parent.parent / "shared" / "data"
KINDS = ("unit", "integration", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind, the folder it lives in, so `-m unit` and the like select
    by folder too."""
    misplaced: set[str] = set()
    for item in items:
        path = item.path.resolve()
        if not path.is_relative_to(TESTS_DIR):
            continue
        parts = path.relative_to(TESTS_DIR).parts
        if len(parts) > 1 and parts[0] in KINDS:
            item.add_marker(parts[0])
        else:
            misplaced.add(item.nodeid.split("::")[0])
    if misplaced:
        raise pytest.UsageError(
            f"tests outside tests/unit, tests/integration and tests/browser: {', '.join(sorted(misplaced))}"
        )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    home = tmp_path_factory.mktemp("stack")
    try:
        # The development stack (anonymous, plain); tests/integration/test_security.py runs the secure one.
        info, _ = stack_up(home, secure=False)
    except MissingDependencyError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield info
    stack_down(home)


@pytest.fixture
def influx(stack: StackInfo) -> Iterator[InfluxClient]:
    client = InfluxClient(stack.influx_url)
    yield client
    client.close()


@pytest.fixture
def database(influx: InfluxClient) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    influx.create_database(name)
    yield name
    influx.query("DROP DATABASE " + quote_identifier(name), database=None, method="POST")


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server per test session, in a directory its own user can reach."""
    home = Path(tempfile.mkdtemp(prefix="prognos-pg-"))
    home.chmod(0o755)  # PostgreSQL runs as the postgres user, who must reach its data
    try:
        server = postgres.start(home / "data", free_port())
    except MissingDependencyError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield server
    postgres.stop(home / "data")
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def desk_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty service-desk database: each test using it runs on SQLite and on a real
    PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'desk.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return postgres.create_database(server, f"desk_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fleet() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared datasets are not beside the project ({SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Fail a test that leaves an MQTT client or worker thread running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and (not t.daemon or t.name.startswith("paho"))
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"test left threads running: {[t.name for t in extra]}"
