"""The MQTT topic scheme: building, parsing and the ingest shared subscription."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.errors import ConfigError, DecodeError
from prognos.topics import (
    KINDS,
    VehicleTopic,
    diag_topic,
    ingest_subscription,
    model_topic,
    parse_topic,
    status_topic,
    topic,
)

FLEETS = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=64)
VINS = st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=32)


def mqtt_matches(topic_filter: str, name: str) -> bool:
    """MQTT topic matching for filters with single-level wildcards (+) only."""
    levels, parts = topic_filter.split("/"), name.split("/")
    if len(levels) != len(parts):
        return False
    return all(level in ("+", part) for level, part in zip(levels, parts, strict=True))


def test_topic_layout() -> None:
    assert topic("fleet-a", "YV1SIM0042", "diag") == "prognos/v1/fleet-a/YV1SIM0042/diag"
    assert diag_topic("f", "V1") == "prognos/v1/f/V1/diag"
    assert status_topic("f", "V1") == "prognos/v1/f/V1/status"
    assert model_topic("f", "V1") == "prognos/v1/f/V1/model"


@settings(max_examples=300)
@given(FLEETS, VINS, st.sampled_from(KINDS))
def test_build_parse_round_trip(fleet: str, vin: str, kind: str) -> None:
    assert parse_topic(topic(fleet, vin, kind)) == VehicleTopic(fleet, vin, kind)


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_parse_accepts_only_what_topic_builds(name: str) -> None:
    try:
        parsed = parse_topic(name)
    except DecodeError:
        return
    assert topic(parsed.fleet, parsed.vin, parsed.kind) == name


BAD_FLEETS = ["", "+", "#", "a/b", "fleet a", "flotte-ü", "$SYS", "x" * 65]
BAD_VINS = ["", "+", "#", "A/B", "yv1sim", "VIN 1", "A" * 33]


@pytest.mark.parametrize("fleet", BAD_FLEETS)
def test_build_rejects_bad_fleet(fleet: str) -> None:
    with pytest.raises(ConfigError, match="fleet"):
        topic(fleet, "V1", "diag")


@pytest.mark.parametrize("vin", BAD_VINS)
def test_build_rejects_bad_vin(vin: str) -> None:
    with pytest.raises(ConfigError, match="VIN"):
        diag_topic("fleet", vin)


@pytest.mark.parametrize("kind", ["", "+", "#", "diag/x", "events", "DIAG"])
def test_build_rejects_unknown_kind(kind: str) -> None:
    with pytest.raises(ConfigError, match="kind"):
        topic("fleet", "V1", kind)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "prognos/v1/fleet/V1",
        "prognos/v1/fleet/V1/diag/extra",
        "prognos/v1/fleet/V1/diag/",
        "/prognos/v1/fleet/V1/diag",
        "prognos/v1//V1/diag",
        "prognos/v1/fleet//diag",
        "prognos/v1/fleet/V1/",
        "prognos/v1/+/V1/diag",
        "prognos/v1/fleet/+/diag",
        "prognos/v1/fleet/V1/#",
        "prognos/v1/#",
        "prognos/v2/fleet/V1/diag",
        "prognos/v1/fleet/v1/diag",
        "prognos/v1/fleet/V1/events",
        "$share/ingest/prognos/v1/+/+/diag",
    ],
)
def test_parse_rejects(name: str) -> None:
    with pytest.raises(DecodeError):
        parse_topic(name)


def test_ingest_subscription_format() -> None:
    assert ingest_subscription("ingest") == "$share/ingest/prognos/v1/+/+/diag"
    assert ingest_subscription("ingest", "fleet-a") == "$share/ingest/prognos/v1/fleet-a/+/diag"


@given(FLEETS, VINS)
def test_ingest_subscription_matches_diag_only(fleet: str, vin: str) -> None:
    share, group, topic_filter = ingest_subscription("workers").split("/", 2)
    assert (share, group) == ("$share", "workers")
    assert mqtt_matches(topic_filter, diag_topic(fleet, vin))
    assert not mqtt_matches(topic_filter, status_topic(fleet, vin))
    assert not mqtt_matches(topic_filter, model_topic(fleet, vin))
    one_fleet = ingest_subscription("workers", fleet).split("/", 2)[2]
    assert mqtt_matches(one_fleet, diag_topic(fleet, vin))
    other = "a" if fleet != "a" else "b"
    assert not mqtt_matches(one_fleet, diag_topic(other, vin))


@pytest.mark.parametrize("group", ["", "+", "#", "a/b", "$share", "x" * 65])
def test_ingest_subscription_rejects_bad_group(group: str) -> None:
    with pytest.raises(ConfigError, match="group"):
        ingest_subscription(group)


@pytest.mark.parametrize("fleet", ["", "#", "a/b", "x" * 65])
def test_ingest_subscription_rejects_bad_fleet(fleet: str) -> None:
    with pytest.raises(ConfigError, match="fleet"):
        ingest_subscription("ingest", fleet)
