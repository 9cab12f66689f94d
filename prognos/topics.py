"""The MQTT topic scheme, defined once.

    prognos/v1/{fleet}/{vin}/diag     diagnostic records, gateway -> cloud, QoS 1
    prognos/v1/{fleet}/{vin}/status   gateway status (JSON), retained; the Last Will is {"state":"offline"}
    prognos/v1/{fleet}/{vin}/model    model updates, cloud -> gateway, QoS 1
    prognos/v1/{fleet}/{vin}/stored   storage receipts (prognos/receipt.py), cloud -> gateway, QoS 1

Ingest workers share the diag stream through an MQTT 5 shared subscription,
$share/{group}/prognos/v1/+/+/diag, so each record goes to exactly one worker of the group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prognos.errors import ConfigError, DecodeError

ROOT = "prognos/v1"
KINDS = ("diag", "status", "model", "stored")
SEGMENT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
VIN_SEGMENT_PATTERN = re.compile(r"[A-Z0-9]{1,32}")


@dataclass(frozen=True)
class VehicleTopic:
    fleet: str
    vin: str
    kind: str


def topic(fleet: str, vin: str, kind: str) -> str:
    """The topic of one vehicle's stream; raises ConfigError for a name MQTT could misread."""
    check_fleet(fleet)
    if not VIN_SEGMENT_PATTERN.fullmatch(vin):
        raise ConfigError(f"VIN {vin!r} must be 1-32 characters A-Z or 0-9")
    if kind not in KINDS:
        raise ConfigError(f"topic kind {kind!r} is not one of {', '.join(KINDS)}")
    return f"{ROOT}/{fleet}/{vin}/{kind}"


def diag_topic(fleet: str, vin: str) -> str:
    return topic(fleet, vin, "diag")


def status_topic(fleet: str, vin: str) -> str:
    return topic(fleet, vin, "status")


def model_topic(fleet: str, vin: str) -> str:
    return topic(fleet, vin, "model")


def stored_topic(fleet: str, vin: str) -> str:
    return topic(fleet, vin, "stored")


def check_fleet(fleet: str) -> None:
    if not SEGMENT_PATTERN.fullmatch(fleet):
        raise ConfigError(f"fleet name {fleet!r} must be 1-64 characters A-Z, a-z, 0-9, _ or -")


def ingest_subscription(group: str, fleet: str = "+", kind: str = "diag") -> str:
    """The shared subscription that ingest workers of one group split between them."""
    if not SEGMENT_PATTERN.fullmatch(group):
        raise ConfigError(f"subscription group {group!r} must be 1-64 characters A-Z, a-z, 0-9, _ or -")
    if fleet != "+":
        check_fleet(fleet)
    if kind not in ("diag", "status"):
        raise ConfigError(f"ingest subscribes to diag and status, not {kind!r}")
    return f"$share/{group}/{ROOT}/{fleet}/+/{kind}"


def parse_topic(name: str) -> VehicleTopic:
    """Split a vehicle topic into its parts; raises DecodeError for anything else."""
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != ROOT:
        raise DecodeError(f"topic {name!r} is not {ROOT}/{{fleet}}/{{vin}}/{{kind}}")
    fleet, vin, kind = parts[2:]
    if not SEGMENT_PATTERN.fullmatch(fleet) or not VIN_SEGMENT_PATTERN.fullmatch(vin):
        raise DecodeError(f"topic {name!r} has a malformed fleet or VIN")
    if kind not in KINDS:
        raise DecodeError(f"topic {name!r} has unknown kind {kind!r}")
    return VehicleTopic(fleet, vin, kind)
