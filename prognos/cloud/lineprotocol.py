"""Diagnostic records as InfluxDB line protocol.

One record becomes these points, all stamped with the window end (ms), so a redelivered record
overwrites itself instead of counting twice:

    diag,fleet=F,vin=V seq=..i,window_start_ms=..i,model_id="..",model_version="..",trigger=..i,
        counter.NAME=..i (one field per counter)
    vehicle_health,fleet=F,vin=V,subsystem=S health=..,anomaly_score=..
    fault,fleet=F,vin=V,code=C confidence=..[,days_to_threshold=..,days_low=..,days_high=..]
"""

from __future__ import annotations

import functools
import re

from prognos.record import DiagnosticRecord

DIAG = "diag"
HEALTH = "vehicle_health"
FAULT = "fault"
DEAD_LETTER = "dead_letter"
INGEST = "ingest"
GATEWAY_STATUS = "gateway_status"
STATUS_NUMBERS = (
    "windows",
    "records",
    "source_errors",
    "model_updates",
    "model_updates_rejected",
    "model_rollbacks",
)
COUNTER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_STRING_FIELD = 60_000  # InfluxDB 1.x refuses string fields over 64 KiB


@functools.lru_cache(maxsize=65_536)  # names, VINs and codes repeat in every batch
def escape_key(text: str) -> str:
    """Measurement names, tag keys, tag values and field keys."""
    return (
        text.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\n")
    )


def string_field(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _line(measurement: str, tags: dict[str, str], fields: dict[str, object], ts: int) -> str:
    tag_text = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v)
    parts = []
    for key, value in fields.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = f"{value}i"
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = string_field(str(value))
        parts.append(f"{escape_key(key)}={text}")
    return f"{escape_key(measurement)}{tag_text} {','.join(parts)} {ts}"


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
    }
    diag.update({f"counter.{name}": value for name, value in record.counters.items()})
    lines = [_line(DIAG, vehicle, diag, ts)]
    # What _line gives for these, written out: a record has five of them, and ingest formats
    # thousands of records a second. Tags in key order: fleet, subsystem, vin.
    fleet_tag, vin_tag = escape_key(fleet), escape_key(record.vin)
    for name, state in record.subsystems.items():
        lines.append(
            f"{HEALTH},fleet={fleet_tag},subsystem={escape_key(name)},vin={vin_tag} "
            f"health={state.health!r},anomaly_score={state.anomaly_score!r} {ts}"
        )
    for fault in record.faults:
        fields: dict[str, object] = {"confidence": fault.confidence}
        for key in ("days_to_threshold", "days_low", "days_high"):
            value = getattr(fault, key)
            if value is not None:
                fields[key] = value
        lines.append(_line(FAULT, {**vehicle, "code": fault.code}, fields, ts))
    return lines


def gateway_status_line(fleet: str, vin: str, status: dict[str, object], received_ms: int) -> str:
    """A gateway's status message (docs/gateway.md) as one point, stamped (ms) when it was received.
    Raises ValueError for a status that is not a JSON object with a `state`."""
    state = status.get("state")
    if state not in ("online", "offline"):
        raise ValueError(f"status state must be online or offline, not {state!r}")
    fields: dict[str, object] = {"state": state, "online": state == "online"}
    for key in ("model_id", "model_version", "last_model_error"):
        if isinstance(status.get(key), str):
            fields[key] = str(status[key])[:200]
    counters = status.get("counters")
    numbers = {key: status.get(key) for key in STATUS_NUMBERS}
    if isinstance(counters, dict):
        numbers.update({str(k): v for k, v in counters.items() if COUNTER_NAME.fullmatch(str(k))})
    fields.update({k: v for k, v in numbers.items() if isinstance(v, int) and not isinstance(v, bool)})
    return _line(GATEWAY_STATUS, {"fleet": fleet, "vin": vin}, fields, received_ms)


def ingest_metrics_line(worker: str, fields: dict[str, float | int], ts_ns: int) -> str:
    """One worker's ingest metrics at one moment (docs/ingest.md)."""
    return _line(INGEST, {"worker": worker}, dict(fields), ts_ns)


def dead_letter_line(topic: str, reason: str, payload: bytes, received_ns: int) -> str:
    """A dead letter: where it came from, why it was refused, and its payload (hex, truncated).
    Stamped in nanoseconds; the caller keeps the stamps unique so none overwrites another."""
    payload_hex = payload.hex()[:MAX_STRING_FIELD]
    return _line(
        DEAD_LETTER,
        {"topic": topic[:200]},
        {"reason": reason[:4000], "payload_hex": payload_hex, "size": len(payload)},
        received_ns,
    )
