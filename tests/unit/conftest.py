"""Unit tests start no server: asking for one of the fixtures that start or use the session's
Mosquitto and InfluxDB, or the desk's PostgreSQL, fails the test with the reason. A module may
still define a fixture of the same name for its own purpose (a DBC `database`, say); that one
takes precedence."""

from __future__ import annotations

import pytest


def _refuse(request: pytest.FixtureRequest, name: str) -> None:
    pytest.fail(
        f"{request.node.nodeid} asks for the `{name}` fixture, which needs the real broker and "
        "database: a test that does belongs in tests/integration",
        pytrace=False,
    )


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> None:
    _refuse(request, "stack")


@pytest.fixture
def influx(request: pytest.FixtureRequest) -> None:
    _refuse(request, "influx")


@pytest.fixture
def database(request: pytest.FixtureRequest) -> None:
    _refuse(request, "database")


@pytest.fixture
def desk_url(request: pytest.FixtureRequest) -> None:
    _refuse(request, "desk_url")
