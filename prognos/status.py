"""The gateway status message: the retained JSON object a gateway publishes on
`prognos/v1/{fleet}/{vin}/status` (docs/gateway.md, docs/topics.md).

The gateway builds it with `status_message`. Ingest stores each one as a `gateway_status` point
(prognos.cloud.ingest.points), whose fields prognos.cloud.storage.schema derives from FIELDS.
The Last Will and a gateway's clean stop publish `{"state":"offline"}` alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from prognos.record import NAME_PATTERN

ONLINE = "online"
OFFLINE = "offline"
STATES = (ONLINE, OFFLINE)
COUNTER_NAME = NAME_PATTERN  # a counter's name: lower-case, digits and _, at most 32 characters

JsonType = Literal["string", "integer", "object"]


@dataclass(frozen=True, kw_only=True)
class StatusField:
    name: str
    type: JsonType
    unit: str  # what an integer counts; "" for text
    meaning: str


FIELDS: tuple[StatusField, ...] = (
    StatusField(name="state", type="string", unit="", meaning="`online` or `offline`"),
    StatusField(
        name="model_id", type="string", unit="", meaning="the running model bundle (also in every record)"
    ),
    StatusField(name="model_version", type="string", unit="", meaning="its version"),
    StatusField(name="windows", type="integer", unit="windows", meaning="windows assessed since start"),
    StatusField(
        name="records", type="integer", unit="records", meaning="records sent to the spool since start"
    ),
    StatusField(
        name="source_errors",
        type="integer",
        unit="reads",
        meaning="failed reads (an unplugged adapter); the source is retried with backoff",
    ),
    StatusField(
        name="model_updates",
        type="integer",
        unit="updates",
        meaning="model updates installed since start (docs/model-updates.md)",
    ),
    StatusField(
        name="model_updates_rejected",
        type="integer",
        unit="updates",
        meaning="model updates refused (a bad signature, a bundle that fails its self-test, ...)",
    ),
    StatusField(
        name="model_rollbacks",
        type="integer",
        unit="rollbacks",
        meaning="times the running bundle failed in service and was rolled back",
    ),
    StatusField(
        name="last_model_error",
        type="string",
        unit="",
        meaning="why the latest model update was refused; empty while none was",
    ),
    StatusField(
        name="counters",
        type="object",
        unit="",
        meaning="counter name -> count since start: acquisition, sample buffers, spool and forwarder "
        "(the table below)",
    ),
)
FIELD_NAMES = tuple(field.name for field in FIELDS)


def status_message(
    *,
    model_id: str,
    model_version: str,
    windows: int,
    records: int,
    source_errors: int,
    model_updates: int,
    model_updates_rejected: int,
    model_rollbacks: int,
    last_model_error: str,
    counters: Mapping[str, int],
) -> dict[str, object]:
    """An online gateway's status message, its fields in the order of FIELDS."""
    return {
        "state": ONLINE,
        "model_id": model_id,
        "model_version": model_version,
        "windows": windows,
        "records": records,
        "source_errors": source_errors,
        "model_updates": model_updates,
        "model_updates_rejected": model_updates_rejected,
        "model_rollbacks": model_rollbacks,
        "last_model_error": last_model_error,
        "counters": dict(counters),
    }
