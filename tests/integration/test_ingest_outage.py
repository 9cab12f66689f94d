"""Ingest under faults, against the real broker and database: the database killed mid-stream
and brought back, and a burst of invalid payloads among valid records."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.cloud.storage.client import InfluxClient
from prognos.errors import MissingDependencyError
from prognos.ops.stack import find_binary, stack_down, stack_up
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger, encode_record
from prognos.topics import diag_topic, status_topic
from tests.integration.test_slice import ingest_running, normalised, stored_records
from tests.support.helpers import wait_for

SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")
START_MS = 1_767_225_600_000


def make_records(count: int, *, vehicles: int, seed: int, first_seq: int = 1) -> list[DiagnosticRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        seq = first_seq + i // vehicles
        end = START_MS + seq * 600_000 + i % vehicles
        faults: tuple[FaultHypothesis, ...] = ()
        if rng.random() < 0.2:
            days = rng.uniform(5.0, 40.0)
            faults = (FaultHypothesis("brakes.pad_wear", 0.8, days, days * 0.7, days * 1.4),)
        records.append(
            DiagnosticRecord(
                vin=f"OUTAGE{i % vehicles:011d}",
                seq=seq,
                window_start_ms=end - 600_000,
                window_end_ms=end,
                model_id="prognos-default",
                model_version="1",
                trigger=Trigger.ANOMALY if faults else Trigger.HEARTBEAT,
                subsystems={
                    n: SubsystemState(rng.uniform(0.3, 1.0), rng.uniform(0.0, 0.9)) for n in SUBSYSTEMS
                },
                faults=faults,
                counters={"frames_seen": rng.randrange(1000, 9000), "frames_bad": rng.randrange(3)},
            )
        )
    return records


@contextmanager
def publisher(info: StackInfo) -> Iterator[mqtt.Client]:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(info.mqtt_host, info.mqtt_port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, messages: Sequence[tuple[str, bytes]]) -> None:
    """QoS 1, and wait until the broker has every one."""
    sent = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for item in sent:
        item.wait_for_publish(30)
        assert item.is_published(), f"publish failed: rc {item.rc}"


def diag_messages(fleet: str, records: Sequence[DiagnosticRecord]) -> list[tuple[str, bytes]]:
    return [(diag_topic(fleet, r.vin), encode_record(r)) for r in records]


def rows(influx: InfluxClient, database: str, text: str, fleet: str) -> list[dict[str, object]]:
    series = influx.query(text, database=database, params={"fleet": fleet})
    return [row for s in series for row in s.rows()]


def start_influxd(info: StackInfo) -> subprocess.Popen[bytes]:
    """influxd again, with the stack's own configuration: the same ports and data."""
    home = Path(info.home) / "influxdb"
    with (home / "restart.log").open("ab") as log:
        process = subprocess.Popen(
            [find_binary("influxd"), "-config", str(home / "influxdb.conf")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    probe = InfluxClient(info.influx_url, timeout_s=1.0)
    try:
        wait_for(probe.ping, what="influxd back", timeout_s=30)
    finally:
        probe.close()
    return process


def test_records_published_while_the_database_is_down_are_all_stored_once(tmp_path: Path, fleet: str) -> None:
    home = tmp_path / "stack"
    try:
        info, _ = stack_up(home, secure=False)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    influx = InfluxClient(info.influx_url)
    database = "outage"
    restarted: subprocess.Popen[bytes] | None = None
    before = make_records(60, vehicles=20, seed=1)
    during = make_records(300, vehicles=20, seed=2, first_seq=10)
    after = make_records(60, vehicles=20, seed=3, first_seq=40)
    try:
        with ingest_running(info, influx, database, fleet) as worker, publisher(info) as client:
            publish(client, diag_messages(fleet, before))
            wait_for(
                lambda: worker.stats.records_written >= len(before), what="the records before the outage"
            )

            os.kill(info.influxd_pid, signal.SIGKILL)  # the database dies mid-stream
            os.waitpid(info.influxd_pid, 0)
            publish(client, diag_messages(fleet, during))
            wait_for(lambda: worker.stats.write_retries >= 3, what="the worker retrying its write")
            stuck = worker.stats.records_written
            time.sleep(1.0)
            assert worker.stats.records_written == stuck == len(before), "nothing is stored while down"

            restarted = start_influxd(info)
            publish(client, diag_messages(fleet, after))
            total = len(before) + len(during) + len(after)
            wait_for(lambda: worker.stats.records_written >= total, what="every record stored", timeout_s=90)
        stats = worker.stats
        sent = [*before, *during, *after]
        assert stats.records_written == len(sent) and stats.dead_letters == 0
        assert stats.received == len(sent) + stats.duplicates

        diag = rows(influx, database, "SELECT vin, seq FROM diag WHERE fleet = $fleet", fleet)
        per_record = Counter((row["vin"], row["seq"]) for row in diag)
        assert len(per_record) == len(sent), "every record is there"
        assert set(per_record.values()) == {1}, "and none twice"
        assert set(per_record) == {(r.vin, r.seq) for r in sent}
        health = rows(
            influx, database, 'SELECT count("health") FROM vehicle_health WHERE fleet = $fleet', fleet
        )
        assert health[0]["count"] == len(sent) * len(SUBSYSTEMS)
        stored = stored_records(influx, database, fleet)
        assert stored == {(r.vin, r.window_end_ms): normalised(r) for r in sent}
    finally:
        influx.close()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(30)
        stack_down(home)


def invalid_payloads(fleet: str, rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(topic, payload, what the dead letter's reason must say), hundreds of several kinds."""
    good = make_records(1, vehicles=1, seed=99)[0]
    wire = encode_record(good)
    topic = diag_topic(fleet, good.vin)
    bad: list[tuple[str, bytes, str]] = []
    for _ in range(100):  # garbage bytes (0xff is a CBOR break code: never a valid start)
        bad.append((topic, b"\xff" + rng.randbytes(rng.randrange(0, 300)), "undecodable: not CBOR"))
    for n in range(80):  # a valid record under another vehicle's topic
        bad.append((diag_topic(fleet, f"WRONG{n:012d}"), wire, "does not match topic VIN"))
    for _ in range(100):  # truncated CBOR
        bad.append((topic, wire[: rng.randrange(1, len(wire))], "undecodable:"))
    for n in range(40):  # CBOR that breaks the record's rules
        body = cbor2.loads(wire)
        body[0] = 2 if n % 2 else body[0]
        body[7] = {"brakes": [1.5, 0.1]} if n % 2 == 0 else body[7]
        bad.append((topic, cbor2.dumps(body), "undecodable:"))
    statuses = [b"\xff\xfe", b"[1, 2]", b'{"state": "maybe"}', b"not json", b'{"records": 3}', b""]
    for n in range(60):  # status garbage
        bad.append((status_topic(fleet, good.vin), statuses[n % len(statuses)], "bad status message"))
    return bad


def test_a_burst_of_invalid_payloads_becomes_dead_letters_and_every_valid_record_is_stored(
    stack: StackInfo, influx: InfluxClient, database: str, fleet: str
) -> None:
    rng = random.Random(5)
    valid = make_records(200, vehicles=25, seed=4)
    invalid = invalid_payloads(fleet, rng)
    messages = [(t, p, "") for t, p in diag_messages(fleet, valid)] + invalid
    rng.shuffle(messages)
    with ingest_running(stack, influx, database, fleet) as worker, publisher(stack) as client:
        publish(client, [(t, p) for t, p, _ in messages])
        wait_for(
            lambda: worker.stats.records_written + worker.stats.dead_letters >= len(messages),
            what="every message stored or dead-lettered",
        )
    assert worker.stats.records_written == len(valid)
    assert worker.stats.dead_letters == len(invalid) == 380
    letters = [row for s in influx.query("SELECT * FROM dead_letter", database=database) for row in s.rows()]
    assert len(letters) == len(invalid), "one dead letter each, none overwriting another"
    assert Counter((r["topic"], r["payload_hex"]) for r in letters) == Counter(
        (t, p.hex()) for t, p, _ in invalid
    )
    expected_reasons = Counter(must for _, _, must in invalid)
    by_payload: dict[tuple[str, str], list[str]] = {}
    for r in letters:
        by_payload.setdefault((r["topic"], r["payload_hex"]), []).append(r["reason"])
    for topic, payload, must in invalid:
        reasons = by_payload[(topic, payload.hex())]
        assert all(must in reason for reason in reasons), (must, reasons)
        assert all(r.startswith("undecodable: ") and len(r) > len("undecodable: ") + 3 for r in reasons)
    assert sum(expected_reasons.values()) == len(letters)
    assert all(r["size"] == len(bytes.fromhex(r["payload_hex"])) for r in letters)
    stored = stored_records(influx, database, fleet)
    assert stored == {(r.vin, r.window_end_ms): normalised(r) for r in valid}
