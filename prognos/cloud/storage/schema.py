"""Every measurement Prognos writes to InfluxDB, declared once: tags, fields with their types,
the unit of the timestamps. docs/storage.md lists them; pure data.

Two groups are derived rather than listed here: `gateway_status` from the status message
(prognos.status), and the DMS kinds from their columns (prognos.cloud.dealers.dms.KINDS).
"""

from __future__ import annotations

import re
from types import MappingProxyType

from prognos import status
from prognos.cloud.dealers.kinds import KINDS
from prognos.cloud.storage.measurement import FieldPattern, FieldType, Measurement
from prognos.record import MAX_CAUSES, NAME_PATTERN

FLOAT, INT, STR, BOOL = FieldType.FLOAT, FieldType.INT, FieldType.STR, FieldType.BOOL

# ---------------------------------------------------------------- ingest (prognos.cloud.ingest.worker)

COUNTER_PREFIX = "counter."  # a record's counter NAME is the diag field counter.NAME
# A record's conditions, on its diag point and on each of its fault points.
CONDITIONS = {"ambient_c": FLOAT, "humidity_pct": FLOAT}
# A record's causes, the most likely first, on each of its fault points: cause_1_code, ...
CAUSE_FIELDS = {
    name: kind
    for rank in range(1, MAX_CAUSES + 1)
    for name, kind in ((f"cause_{rank}_code", STR), (f"cause_{rank}_probability", FLOAT))
}

DIAG = Measurement(
    name="diag",
    meaning="one diagnostic record, stamped with its window end",
    tags=("fleet", "vin"),
    fields={
        "seq": INT,
        "window_start_ms": INT,
        "model_id": STR,
        "model_version": STR,
        "trigger": INT,
        **CONDITIONS,
    },
    extra_fields=FieldPattern(
        pattern=re.compile(re.escape(COUNTER_PREFIX) + NAME_PATTERN.pattern),
        type=INT,
        meaning="counter.NAME: the record's counter NAME",
    ),
    precision="ms",
)
VEHICLE_HEALTH = Measurement(
    name="vehicle_health",
    meaning="one subsystem's state in one record",
    tags=("fleet", "vin", "subsystem"),
    fields={"health": FLOAT, "anomaly_score": FLOAT},
    precision="ms",
)
FAULT = Measurement(
    name="fault",
    meaning="one fault hypothesis of one record; the days only when it is trending; the record's "
    "causes and conditions when it has them",
    tags=("fleet", "vin", "code"),
    fields={
        "confidence": FLOAT,
        "days_to_threshold": FLOAT,
        "days_low": FLOAT,
        "days_high": FLOAT,
        **CAUSE_FIELDS,
        **CONDITIONS,
    },
    precision="ms",
)

_STATUS_TYPES = {"string": STR, "integer": INT}
GATEWAY_STATUS = Measurement(
    name="gateway_status",
    meaning="one gateway status message (prognos.status), stamped when ingest received it",
    tags=("fleet", "vin"),
    fields={
        "state": STR,
        "online": BOOL,
        **{
            f.name: _STATUS_TYPES[f.type]
            for f in status.FIELDS
            if f.type in _STATUS_TYPES and f.name != "state"
        },
    },
    extra_fields=FieldPattern(
        pattern=status.COUNTER_NAME, type=INT, meaning="each counter of the message's `counters`"
    ),
    precision="ms",
)
DEAD_LETTER = Measurement(
    name="dead_letter",
    meaning="a message ingest could not store, with why; stamped when it was refused",
    tags=("topic",),
    fields={"reason": STR, "payload_hex": STR, "size": INT},
    precision="ns",
)
INGEST = Measurement(
    name="ingest",
    meaning="one ingest worker's metrics at one moment (docs/ingest.md)",
    tags=("worker",),
    fields={
        "received": INT,
        "records_written": INT,
        "records_per_s": FLOAT,
        "duplicates": INT,
        "dead_letters": INT,
        "write_retries": INT,
        "receipts": INT,
        "lag_s": FLOAT,
        "queue_depth": INT,
    },
    precision="ns",
)

# ------------------------------------------------------- DMS import (prognos.cloud.dealers.dms_import)

DMS: MappingProxyType[str, Measurement] = MappingProxyType(
    {name: kind.measurement for name, kind in KINDS.items()}
)

# ---------------------------------------------------------------- analytics (prognos.cloud.analytics.job)

ALERT = Measurement(
    name="alert",
    meaning="one open alert of a snapshot",
    tags=("fleet", "vin", "code", "priority"),
    fields={
        "rank": INT,
        "kind": STR,
        "subsystem": STR,
        "health": FLOAT,
        "anomaly_score": FLOAT,
        "confidence": FLOAT,
        "cause_code": STR,
        "cause_probability": FLOAT,
        "days_left": FLOAT,
        "days_low_left": FLOAT,
        "days_high_left": FLOAT,
        "band": STR,
        "vehicle_health": FLOAT,
        "last_seen_ms": INT,
        "action": STR,
        "reason": STR,
    },
    precision="ms",
)
COHORT = Measurement(
    name="cohort",
    meaning="one significant cohort of a snapshot",
    tags=("attribute", "value", "code"),
    fields={
        "cohort_id": STR,
        "affected": INT,
        "cohort_size": INT,
        "registered": INT,
        "share": FLOAT,
        "base_rate": FLOAT,
        "lift": FLOAT,
        "p_value": FLOAT,
        "q_value": FLOAT,
        "status": STR,
        "covered_by": STR,
        "part": STR,
        "part_name": STR,
        "check": STR,
        "campaign_vehicles": INT,
        "not_yet_affected": INT,
    },
    precision="ms",
)
CAMPAIGN_VEHICLE = Measurement(
    name="campaign_vehicle",
    meaning="one vehicle of a campaign cohort of a snapshot",
    tags=("cohort", "vin"),
    fields={
        "attribute": STR,
        "value": STR,
        "code": STR,
        "status": STR,
        "affected": BOOL,
        "model": STR,
        "lot": STR,
        "owner_name": STR,
        "owner_contact": STR,
        "service_center": STR,
        "part": STR,
        "check": STR,
    },
    precision="ms",
)
SERVICE_LIST = Measurement(
    name="service_list",
    meaning="one vehicle of a snapshot's proactive service list",
    tags=("vin",),
    fields={
        "rank": INT,
        "fleet": STR,
        "owner_name": STR,
        "owner_contact": STR,
        "service_center": STR,
        "registered": BOOL,
        "due_date": STR,
        "due_ms": INT,
        "failure_date": STR,
        "failure_ms": INT,
        "days_left": FLOAT,
        "codes": STR,
        "parts": STR,
        "reason": STR,
    },
    precision="ms",
)
VEHICLE_BAND = Measurement(
    name="vehicle_band",
    meaning="one vehicle with data in a snapshot's window, with its health band",
    tags=("vin",),
    fields={
        "band": STR,
        "health": FLOAT,
        "worst_subsystem": STR,
        "max_score": FLOAT,
        "last_seen_ms": INT,
    },
    precision="ms",
)
MAINTENANCE_INTERVAL = Measurement(
    name="maintenance_interval",
    meaning="one vehicle's personalised service interval of one wear part, in a snapshot",
    tags=("vin", "part"),
    fields={
        "subsystem": STR,
        "method": STR,
        "days_of_data": INT,
        "health": FLOAT,
        "wear_rate_per_day": FLOAT,
        "fleet_rate_per_day": FLOAT,
        "relative_rate": FLOAT,
        "standard_interval_days": FLOAT,
        "interval_days": FLOAT,
        "next_service_days": FLOAT,
        "next_service_date": STR,
    },
    precision="ms",
)
PARTS_FORECAST = Measurement(
    name="parts_forecast",
    meaning="a snapshot's weekly part demand per service center and part (the parts plan)",
    tags=("service_center", "part", "week"),
    fields={
        "name": STR,
        "week_index": INT,
        "week_start_ms": INT,
        "week_start": STR,
        "baseline": FLOAT,
        "from_failures": FLOAT,
        "forecast": FLOAT,
        "low": INT,
        "high": INT,
    },
    precision="ms",
)
PARTS_REORDER = Measurement(
    name="parts_reorder",
    meaning="a snapshot's reorder recommendation per service center and part",
    tags=("service_center", "part"),
    fields={
        "on_hand": FLOAT,
        "on_order": FLOAT,
        "lead_time_weeks": FLOAT,
        "review_weeks": FLOAT,
        "protection_demand": FLOAT,
        "safety_stock": FLOAT,
        "reorder_point": INT,
        "order_qty": INT,
        "name": STR,
        "unit_cost": FLOAT,
        "currency": STR,
        "order_units": INT,
        "order_cost": FLOAT,
        "baseline_per_week": FLOAT,
        "failures_due": INT,
        "from_failures": FLOAT,
        "protection_low": INT,
        "protection_high": INT,
        "supplier": STR,
        "pack_size": INT,
        "min_order": INT,
        "transfer_in": INT,
        "transfer_from": STR,
        "transfer_out": INT,
        "transfer_to": STR,
        "cover_days": FLOAT,
        "reason": STR,
    },
    precision="ms",
)
PARTS_DECISION = Measurement(
    name="parts_decision",
    meaning="a snapshot's order or transfer line of the parts plan: what to place this week",
    tags=("action", "service_center", "part", "from_center"),
    fields={
        "rank": INT,
        "name": STR,
        "supplier": STR,
        "quantity": INT,
        "unit": STR,
        "pack_size": INT,
        "unit_cost": FLOAT,
        "line_cost": FLOAT,
        "currency": STR,
        "need_by": STR,
        "need_by_ms": INT,
        "cover_days": FLOAT,
        "lead_time_days": FLOAT,
        "reason": STR,
    },
    precision="ms",
)
PARTS_CAMPAIGN = Measurement(
    name="parts_campaign",
    meaning="a snapshot's parts to pre-stock for a campaign cohort at a service center",
    tags=("cohort", "service_center", "part"),
    fields={
        "name": STR,
        "code": STR,
        "vehicles": INT,
        "affected": INT,
        "in_plan": INT,
        "expected_units": FLOAT,
        "units_needed": INT,
        "available": INT,
        "to_stock": INT,
        "order_units": INT,
        "order_cost": FLOAT,
        "currency": STR,
        "reason": STR,
    },
    precision="ms",
)
PARTS_ACCURACY = Measurement(
    name="parts_accuracy",
    meaning="a snapshot's forecast against actual of the kept parts plans per service center and family",
    tags=("service_center", "family"),
    fields={
        "pairs": INT,
        "weeks": INT,
        "forecast_units": FLOAT,
        "actual_units": FLOAT,
        "bias": FLOAT,
        "rmsse": FLOAT,
        "coverage": FLOAT,
    },
    precision="ms",
)
# Kept across snapshots (not deleted with them): one plan per ISO week, stamped with its Monday.
PARTS_FORECAST_KEPT = Measurement(
    name="parts_forecast_kept",
    meaning="the weekly forecast of the last parts plan of an ISO week, and what was used once it passed",
    tags=("service_center", "part", "lead"),
    fields={
        "name": STR,
        "made_ms": INT,
        "window_start_ms": INT,
        "window_end_ms": INT,
        "forecast": FLOAT,
        "low": INT,
        "high": INT,
        "scale": FLOAT,
        "actual": FLOAT,
    },
    precision="ms",
)
CONDITION_FINDING = Measurement(
    name="condition_finding",
    meaning="one fault code under one condition, tested by a condition-mining run",
    tags=("code", "condition"),
    fields={
        "lift": FLOAT,
        "lift_low": FLOAT,
        "lift_high": FLOAT,
        "onsets": INT,
        "exposure_months": FLOAT,
        "rate_per_1000": FLOAT,
        "rate_elsewhere_per_1000": FLOAT,
        "p_value": FLOAT,
        "q_value": FLOAT,
        "finding": BOOL,
    },
    precision="ms",
)
CONDITION_RUN = Measurement(
    name="condition_run",
    meaning="the marker of a complete condition-mining run, with its totals; written last",
    tags=(),
    fields={
        "lookback_days": FLOAT,
        "vehicles": INT,
        "exposure_months": FLOAT,
        "onsets": INT,
        "tests": INT,
        "findings": INT,
        "fdr": FLOAT,
    },
    precision="ms",
)
ANALYTICS_RUN = Measurement(
    name="analytics_run",
    meaning="the marker of a complete snapshot, with its counts; written last",
    tags=(),
    fields={
        "window_start_ms": INT,
        "lookback_days": FLOAT,
        "horizon_weeks": INT,
        "vehicles_registered": INT,
        "vehicles_observed": INT,
        "vehicles_unregistered": INT,
        "vehicles_act": INT,
        "vehicles_watch": INT,
        "vehicles_healthy": INT,
        "alerts": INT,
        "alerts_p1": INT,
        "alerts_p2": INT,
        "alerts_p3": INT,
        "cohorts_tested": INT,
        "cohorts": INT,
        "campaigns": INT,
        "campaign_vehicles": INT,
        "service_list": INT,
        "maintenance_intervals": INT,
        "parts_forecast": INT,
        "parts_reorder": INT,
        "parts_orders": INT,
        "parts_transfers": INT,
        "parts_campaign": INT,
        "parts_kept": INT,
        "parts_accuracy": INT,
        "duration_s": FLOAT,
    },
    precision="ms",
)
ANALYTICS_BEGUN = Measurement(
    name="analytics_begun",
    meaning="a snapshot whose writing began: where results may lie (written first)",
    tags=(),
    fields={"begun": BOOL},
    precision="ms",
)
ANALYTICS_ROLLUP_DAY = Measurement(
    name="analytics_rollup_day",
    meaning="a UTC day whose daily rollups exist, stamped with its midnight",
    tags=(),
    fields={"done": BOOL},
    precision="ms",
)
# Written by InfluxDB itself, from the job's SELECT ... INTO queries: one point per series and
# day, in a retention policy of their own.
ROLLUP_POLICY = "rollup"
ROLLUP_HEALTH_DAY = Measurement(
    name="health_day",
    meaning="per vehicle, subsystem and UTC day: the sum and count of health, the highest anomaly score",
    tags=("fleet", "vin", "subsystem"),
    fields={"health_sum": FLOAT, "health_points": INT, "score_max": FLOAT},
    precision="ms",
    retention_policy=ROLLUP_POLICY,
)
ROLLUP_DIAG_DAY = Measurement(
    name="diag_day",
    meaning="per vehicle and UTC day: the records",
    tags=("fleet", "vin"),
    fields={"records": INT},
    precision="ms",
    retention_policy=ROLLUP_POLICY,
)
ROLLUP_FAULT_DAY = Measurement(
    name="fault_day",
    meaning="per vehicle, fault code and UTC day: the fault points, and those with a days estimate",
    tags=("fleet", "vin", "code"),
    fields={"points": INT, "estimates": INT},
    precision="ms",
    retention_policy=ROLLUP_POLICY,
)

# The results of a snapshot, stamped with its time and replaced together.
ANALYTICS_RESULTS = (
    ALERT,
    COHORT,
    CAMPAIGN_VEHICLE,
    SERVICE_LIST,
    VEHICLE_BAND,
    MAINTENANCE_INTERVAL,
    PARTS_FORECAST,
    PARTS_REORDER,
    PARTS_DECISION,
    PARTS_CAMPAIGN,
    PARTS_ACCURACY,
)
ANALYTICS_ROLLUPS = (ROLLUP_HEALTH_DAY, ROLLUP_DIAG_DAY, ROLLUP_FAULT_DAY)

# ---------------------------------------------------------------- all of them

INGESTED = (DIAG, VEHICLE_HEALTH, FAULT, GATEWAY_STATUS, DEAD_LETTER, INGEST)
ANALYTICS = (
    *ANALYTICS_RESULTS,
    CONDITION_FINDING,
    CONDITION_RUN,
    PARTS_FORECAST_KEPT,
    ANALYTICS_RUN,
    ANALYTICS_BEGUN,
    ANALYTICS_ROLLUP_DAY,
    *ANALYTICS_ROLLUPS,
)
MEASUREMENTS: MappingProxyType[str, Measurement] = MappingProxyType(
    {m.name: m for m in (*INGESTED, *DMS.values(), *ANALYTICS)}
)
