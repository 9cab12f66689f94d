"""What ingest stores, as InfluxDB line protocol: diagnostic records, gateway status messages,
dead letters and the workers' metrics. The measurements are declared in
prognos.cloud.storage.schema; every point goes through its declaration (encode), except the
vehicle_health line, written out below for speed and tested against the encoder.

One record becomes these points, all stamped with the window end (ms), so a redelivered record
overwrites itself instead of counting twice:

    diag,fleet=F,vin=V seq=..i,window_start_ms=..i,model_id="..",model_version="..",trigger=..i,
        [ambient_c=..,humidity_pct=..,]counter.NAME=..i (one field per counter)
    vehicle_health,fleet=F,subsystem=S,vin=V health=..,anomaly_score=..
    fault,fleet=F,vin=V,code=C confidence=..[,days_to_threshold=..,days_low=..,days_high=..]
        [,cause_1_code="..",cause_1_probability=.. (one pair per cause)][,ambient_c=..,humidity_pct=..]

A field the record does not have (a condition it did not know, a cause it did not name) is left
out of the point.
"""

from __future__ import annotations

from collections.abc import Mapping

from prognos import status
from prognos.cloud.storage import schema
from prognos.cloud.storage.encode import MAX_STRING_FIELD, encode, escape_key
from prognos.record import DiagnosticRecord

MAX_STATUS_TEXT = 200  # characters kept of a status message's text field
MAX_TOPIC = 200
MAX_REASON = 4000

_HEALTH = escape_key(schema.VEHICLE_HEALTH.name)
_COUNTER = schema.COUNTER_PREFIX


def record_lines(fleet: str, record: DiagnosticRecord) -> list[str]:
    """The points of one record; timestamps in milliseconds."""
    ts = record.window_end_ms
    vehicle = {"fleet": fleet, "vin": record.vin}
    diag: dict[str, object] = {
        "seq": record.seq,
        "window_start_ms": record.window_start_ms,
        "model_id": record.model_id,
        "model_version": record.model_version,
        "trigger": int(record.trigger),
        "ambient_c": record.ambient_c,
        "humidity_pct": record.humidity_pct,
    }
    diag.update({_COUNTER + name: value for name, value in record.counters.items()})
    lines = [encode(schema.DIAG, vehicle, diag, ts)]
    # What encode gives for vehicle_health, written out: a record has five of these, and ingest
    # formats thousands of records a second. Tags in key order: fleet, subsystem, vin
    # (tests/unit/test_lineprotocol.py holds it to the declaration and the encoder).
    fleet_tag, vin_tag = escape_key(fleet), escape_key(record.vin)
    for name, state in record.subsystems.items():
        lines.append(
            f"{_HEALTH},fleet={fleet_tag},subsystem={escape_key(name)},vin={vin_tag} "
            f"health={state.health!r},anomaly_score={state.anomaly_score!r} {ts}"
        )
    context: dict[str, object] = {}
    for rank, cause in enumerate(record.causes, start=1):
        context[f"cause_{rank}_code"] = cause.code
        context[f"cause_{rank}_probability"] = cause.probability
    context["ambient_c"] = record.ambient_c
    context["humidity_pct"] = record.humidity_pct
    for fault in record.faults:
        fields = {
            "confidence": fault.confidence,
            "days_to_threshold": fault.days_to_threshold,
            "days_low": fault.days_low,
            "days_high": fault.days_high,
            **context,
        }
        lines.append(encode(schema.FAULT, {**vehicle, "code": fault.code}, fields, ts))
    return lines


def gateway_status_line(fleet: str, vin: str, message: Mapping[str, object], received_ms: int) -> str:
    """A gateway's status message (prognos.status) as one point, stamped (ms) when it was
    received: `state`, and `online` (a bool) beside it; each text field cut to MAX_STATUS_TEXT
    characters; each integer field; each counter of `counters` whose name is a counter name
    and not a field's. A value of another type is left out. Raises ValueError for a message
    whose state is neither online nor offline."""
    state = message.get("state")
    if state not in status.STATES:
        raise ValueError(f"status state must be online or offline, not {state!r}")
    fields: dict[str, object] = {"state": state, "online": state == status.ONLINE}
    for field in status.FIELDS:
        value = message.get(field.name)
        if field.name in fields:
            continue
        if field.type == "string" and isinstance(value, str):
            fields[field.name] = value[:MAX_STATUS_TEXT]
        elif field.type == "integer" and isinstance(value, int) and not isinstance(value, bool):
            fields[field.name] = value
    counters = message.get("counters")
    if isinstance(counters, Mapping):
        for key, value in counters.items():
            name = str(key)
            if (
                name not in fields
                and name not in status.FIELD_NAMES
                and status.COUNTER_NAME.fullmatch(name)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                fields[name] = value
    return encode(schema.GATEWAY_STATUS, {"fleet": fleet, "vin": vin}, fields, received_ms)


def ingest_metrics_line(worker: str, fields: Mapping[str, float | int], ts_ns: int) -> str:
    """One worker's ingest metrics at one moment (docs/ingest.md)."""
    return encode(schema.INGEST, {"worker": worker}, fields, ts_ns)


def dead_letter_line(topic: str, reason: str, payload: bytes, received_ns: int) -> str:
    """A dead letter: where it came from, why it was refused, and its payload (hex, truncated).
    Stamped in nanoseconds; the caller keeps the stamps unique so none overwrites another."""
    return encode(
        schema.DEAD_LETTER,
        {"topic": topic[:MAX_TOPIC]},
        {
            "reason": reason[:MAX_REASON],
            "payload_hex": payload.hex()[:MAX_STRING_FIELD],
            "size": len(payload),
        },
        received_ns,
    )
