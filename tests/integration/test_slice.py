"""The first slice end to end against the real broker and database: simulated vehicles ->
agents -> MQTT (QoS 1) -> ingest -> InfluxDB, and every record arrives intact."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.catalog import default_catalog
from prognos.cloud.ingest.worker import IngestWorker
from prognos.cloud.storage.client import InfluxClient
from prognos.hil.fleet import FleetClock, run_fleet
from prognos.ops.state import StackInfo
from prognos.receipt import decode_receipt
from prognos.record import (
    MAX_CAUSES,
    Cause,
    DiagnosticRecord,
    FaultHypothesis,
    SubsystemState,
    Trigger,
    encode_record,
)
from prognos.sim.vehicle import Fault, VehicleSpec
from prognos.topics import diag_topic, parse_topic, status_topic
from tests.support.helpers import wait_for


@contextmanager
def ingest_running(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> Iterator[IngestWorker]:
    worker = IngestWorker(
        host=stack.mqtt_host,
        port=stack.mqtt_port,
        influx=influx,
        database=database,
        group=f"g{fleet}",
        fleet=fleet,
        batch_size=50,
        metrics_interval_s=0.5,
    )
    stop = threading.Event()
    worker.start()
    thread = threading.Thread(target=worker.run, args=(stop,), name="ingest-worker")
    thread.start()
    try:
        worker.wait_subscribed(10)
        yield worker
    finally:
        stop.set()
        thread.join(30)


def stored_records(
    influx: InfluxClient, database: str, fleet: str
) -> dict[tuple[str, int], DiagnosticRecord]:
    """Rebuild every record of `fleet` from what InfluxDB holds."""
    params = {"fleet": fleet}

    def rows(measurement: str) -> list[dict[str, Any]]:
        series = influx.query(
            f"SELECT * FROM {measurement} WHERE fleet = $fleet", database=database, params=params
        )
        return [row for s in series for row in s.rows()]

    subsystems: dict[tuple[str, int], dict[str, SubsystemState]] = defaultdict(dict)
    for row in rows("vehicle_health"):
        subsystems[(row["vin"], row["time"])][row["subsystem"]] = SubsystemState(
            row["health"], row["anomaly_score"]
        )
    faults: dict[tuple[str, int], list[FaultHypothesis]] = defaultdict(list)
    causes: dict[tuple[str, int], tuple[Cause, ...]] = {}
    for row in rows("fault"):
        causes[(row["vin"], row["time"])] = tuple(
            Cause(row[f"cause_{rank}_code"], row[f"cause_{rank}_probability"])
            for rank in range(1, MAX_CAUSES + 1)
            if row.get(f"cause_{rank}_code") is not None
        )
        faults[(row["vin"], row["time"])].append(
            FaultHypothesis(
                row["code"],
                row["confidence"],
                row.get("days_to_threshold"),
                row.get("days_low"),
                row.get("days_high"),
            )
        )
    records = {}
    for row in rows("diag"):
        key = (row["vin"], row["time"])
        records[key] = DiagnosticRecord(
            vin=row["vin"],
            seq=row["seq"],
            window_start_ms=row["window_start_ms"],
            window_end_ms=row["time"],
            model_id=row["model_id"],
            model_version=row["model_version"],
            trigger=Trigger(row["trigger"]),
            subsystems=subsystems[key],
            faults=tuple(sorted(faults[key], key=lambda f: f.code)),
            counters={
                k.removeprefix("counter."): v
                for k, v in row.items()
                if k.startswith("counter.") and v is not None
            },
            causes=causes.get(key, ()),
            ambient_c=row.get("ambient_c"),
            humidity_pct=row.get("humidity_pct"),
        )
    return records


def normalised(record: DiagnosticRecord) -> DiagnosticRecord:
    return DiagnosticRecord(
        **{**record.__dict__, "faults": tuple(sorted(record.faults, key=lambda f: f.code))}
    )


def test_every_record_sent_arrives_intact(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> None:
    sent: list[DiagnosticRecord] = []
    specs = [
        VehicleSpec(vin="SLICE000000000001"),
        VehicleSpec(vin="SLICE000000000002", faults=(Fault("battery_drift", -20.0, 6.0, target=1),)),
        VehicleSpec(vin="SLICE000000000003", faults=(Fault("tire_leak", -15.0, 10.0, target=2),)),
    ]
    clock = FleetClock(start_ms=int(time.time() * 1000) - 40 * 86_400_000, window_s=600.0, speedup=1e9)
    receipts: dict[str, list[int]] = defaultdict(list)

    def on_receipt(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        receipts[parse_topic(message.topic).vin] += decode_receipt(message.payload)

    listener = _publisher(stack)
    listener.on_message = on_receipt
    listener.subscribe(f"prognos/v1/{fleet}/+/stored", qos=1)
    with ingest_running(stack, influx, database, fleet) as worker:
        stats = run_fleet(
            specs,
            default_catalog(),
            host=stack.mqtt_host,
            port=stack.mqtt_port,
            fleet=fleet,
            clock=clock,
            windows=1000,
            seed=7,
            stop=threading.Event(),
            on_record=sent.append,
        )
        wait_for(lambda: worker.stats.records_written >= len(sent), what="ingest of every record")
        wait_for(lambda: sum(map(len, receipts.values())) >= len(sent), what="a receipt for every record")
    listener.disconnect()
    listener.loop_stop()
    assert stats.publish_failures == 0
    # Each vehicle hears of its own records, each once (none was delivered twice here).
    assert {vin: sorted(seqs) for vin, seqs in receipts.items()} == {
        spec.vin: sorted(r.seq for r in sent if r.vin == spec.vin) for spec in specs
    }
    assert len(sent) == stats.records_sent > 100
    assert any(r.faults for r in sent), "the simulated faults should raise alerts"
    assert all(r.ambient_c is not None and r.humidity_pct is not None for r in sent)
    assert worker.stats.dead_letters == 0
    stored = stored_records(influx, database, fleet)
    expected = {(r.vin, r.window_end_ms): normalised(r) for r in sent}
    assert stored.keys() == expected.keys()
    mismatched = [key for key in expected if stored[key] != expected[key]]
    assert not mismatched, f"{len(mismatched)} records changed on the way, first {mismatched[0]}"


def test_causes_and_conditions_are_stored_with_the_fault_and_diag_points(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> None:
    vin = "CAUSES00000000001"
    now_ms = int(time.time() * 1000)
    worn = DiagnosticRecord(
        vin=vin,
        seq=1,
        window_start_ms=now_ms - 1_200_000,
        window_end_ms=now_ms - 600_000,
        model_id="prognos-default",
        model_version="2026.11.27",
        trigger=Trigger.ANOMALY,
        subsystems={"brakes": SubsystemState(0.375, 1.5)},
        faults=(FaultHypothesis("brakes.pad_wear", 0.75, 9.5, 6.0, 14.0),),
        causes=(
            Cause("brakes.pad_wear", 0.82),
            Cause("bearings.wheel_bearing_wear", 0.09375),
            Cause("tires.pressure_loss", 0.03125),
        ),
        ambient_c=-3.7,
        humidity_pct=91.5,
    )
    calm = DiagnosticRecord(  # a heartbeat: no causes, one condition known, on the diag point alone
        vin=vin,
        seq=2,
        window_start_ms=now_ms - 600_000,
        window_end_ms=now_ms,
        model_id="prognos-default",
        model_version="2026.11.27",
        ambient_c=21.25,
    )
    with ingest_running(stack, influx, database, fleet) as worker:
        client = _publisher(stack)
        try:
            for record in (worn, calm):
                client.publish(diag_topic(fleet, vin), encode_record(record), qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_for(lambda: worker.stats.records_written >= 2, what="both records stored")
    assert worker.stats.dead_letters == 0
    assert stored_records(influx, database, fleet) == {
        (vin, worn.window_end_ms): worn,
        (vin, calm.window_end_ms): calm,
    }
    series = influx.query(
        'SELECT last("confidence") AS confidence, "cause_1_code", "cause_1_probability", "ambient_c" '
        "FROM fault WHERE fleet = $fleet GROUP BY vin, code",
        database=database,
        params={"fleet": fleet},
    )
    (row,) = [row for s in series for row in s.rows()]
    assert (row["cause_1_code"], row["cause_1_probability"], row["ambient_c"]) == (
        "brakes.pad_wear",
        worn.causes[0].probability,
        worn.ambient_c,
    )


def _publisher(stack: StackInfo) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(stack.mqtt_host, stack.mqtt_port)
    client.loop_start()
    return client


def test_undecodable_payloads_become_dead_letters_and_ingest_goes_on(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> None:
    vin = "DEADLETTER0000001"
    good = DiagnosticRecord(
        vin=vin,
        seq=1,
        window_start_ms=1_700_000_000_000,
        window_end_ms=1_700_000_600_000,
        model_id="rules",
        model_version="1",
        subsystems={"tires": SubsystemState(0.5, 0.25)},
    )
    wrong_vin = DiagnosticRecord(**{**good.__dict__, "vin": "OTHERVIN000000001"})
    with ingest_running(stack, influx, database, fleet) as worker:
        client = _publisher(stack)
        try:
            for payload in (b"\xff\x00garbage", encode_record(wrong_vin), encode_record(good)):
                client.publish(diag_topic(fleet, vin), payload, qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_for(lambda: worker.stats.received >= 3, what="all three messages")
        wait_for(
            lambda: worker.stats.batches >= 1 and worker.stats.dead_letters == 2, what="two dead letters"
        )
    letters = [row for s in influx.query("SELECT * FROM dead_letter", database=database) for row in s.rows()]
    reasons = sorted(row["reason"] for row in letters)
    assert len(letters) == 2
    assert reasons[0].startswith("undecodable: not CBOR") or "CBOR" in reasons[0] or "map" in reasons[0]
    assert any("does not match topic VIN" in r for r in reasons)
    assert {row["topic"] for row in letters} == {diag_topic(fleet, vin)}
    assert any(row["payload_hex"] == b"\xff\x00garbage".hex() for row in letters)
    stored = stored_records(influx, database, fleet)
    assert stored == {(vin, good.window_end_ms): good}


def test_a_redelivered_record_counts_once_and_metrics_are_written(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> None:
    vin = "REDELIVER00000001"
    record = DiagnosticRecord(
        vin=vin,
        seq=7,
        window_start_ms=int(time.time() * 1000) - 600_000,
        window_end_ms=int(time.time() * 1000),
        model_id="rules",
        model_version="1",
        subsystems={"brakes": SubsystemState(0.9, 0.1)},
    )
    with ingest_running(stack, influx, database, fleet) as worker:
        client = _publisher(stack)
        try:
            for _ in range(3):  # as a gateway does when PUBACKs are lost
                client.publish(diag_topic(fleet, vin), encode_record(record), qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_for(lambda: worker.stats.received >= 3, what="all three deliveries")
        wait_for(lambda: worker.stats.duplicates == 2, what="two duplicates counted")

        def metrics() -> list[dict[str, object]]:
            series = influx.query("SELECT * FROM ingest", database=database)
            return [row for s in series for row in s.rows() if row["records_written"] == 1]

        rows = wait_for(metrics, what="the ingest metrics point")
    assert worker.stats.records_written == 1
    assert len(stored_records(influx, database, fleet)) == 1
    assert rows[-1]["worker"] == worker.worker_id and rows[-1]["duplicates"] == 2
    assert 0 <= float(rows[-1]["lag_s"]) < 120  # type: ignore[arg-type]


def test_gateway_status_messages_are_stored_and_bad_ones_dead_lettered(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> None:
    vin = "STATUS00000000001"
    online = {
        "state": "online",
        "model_id": "prognos-default",
        "model_version": "2026.11.27",
        "records": 12,
        "counters": {"spool_depth": 3, "frames_bad": 1, "Bad Key": 5},
    }
    with ingest_running(stack, influx, database, fleet) as worker:
        client = _publisher(stack)
        try:
            for payload in (json.dumps(online).encode(), b'{"state":"offline"}', b"[1,2]", b"\xff"):
                client.publish(status_topic(fleet, vin), payload, qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        wait_for(
            lambda: worker.stats.statuses_written == 2 and worker.stats.dead_letters == 2, what="two statuses"
        )
    rows = [
        row
        for s in influx.query("SELECT * FROM gateway_status ORDER BY time", database=database)
        for row in s.rows()
    ]
    assert [r["state"] for r in rows] == ["online", "offline"]
    assert rows[0]["vin"] == vin and rows[0]["model_version"] == "2026.11.27"
    assert rows[0]["records"] == 12 and rows[0]["spool_depth"] == 3 and rows[0]["frames_bad"] == 1
    assert rows[1]["online"] is False
    assert "Bad Key" not in rows[0]
    letters = [row for s in influx.query("SELECT * FROM dead_letter", database=database) for row in s.rows()]
    assert all(row["reason"].startswith("undecodable: bad status message") for row in letters)
