"""Ingest throughput: the two ceilings and what IngestWorker achieves between them.

    .venv/bin/python benchmarks/ingest_throughput.py [--records 20000] [--vehicles 2000]
        [--batch-size 500] [--default-records 0] [--home DIR]

On a stack of its own (prognos.ops.stack.stack_up on a temporary directory, stack_down at the end):

a. InfluxDB's write ceiling: the points the records produce (prognos.cloud.ingest.points.record_lines),
   written straight to /write through prognos.cloud.storage.client.InfluxClient in gzip batches, by one writer
   and by two at once;
b. the broker's rate: QoS 1 PUBLISH of the records' payloads by one paho client, received by a
   paho subscriber (QoS 1) in another process;
c. end to end, broker -> IngestWorker -> InfluxDB, with one worker and with two workers of one
   shared-subscription group, each worker in its own process (as `prognos cloud ingest` runs).
   The records are published first, while the workers' persistent sessions are offline, so
   the broker holds them; the clock starts when the workers connect and stops when the last
   record is stored (checked with a count in InfluxDB).

The end-to-end runs use --batch-size (default 500, the worker's default: two batches fill the
broker's in-flight window of 1,000 in the stack's mosquitto.conf), and, with --default-records
> 0, also the worker's default batch size on that many records.
Records are realistic DiagnosticRecords (five subsystems, frame counters, a fault on a share)
of --vehicles vehicles. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import queue
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The broker figure needs a bare MQTT client beside the project's own adapter.
import paho.mqtt.client as mqtt  # noqa: E402, TID251
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402, TID251
from paho.mqtt.packettypes import PacketTypes  # noqa: E402, TID251
from paho.mqtt.properties import Properties  # noqa: E402, TID251

from prognos.cloud.ingest.points import record_lines  # noqa: E402
from prognos.cloud.ingest.worker import IngestWorker, tune_garbage_collection  # noqa: E402
from prognos.cloud.storage.client import InfluxClient  # noqa: E402
from prognos.ops.stack import stack_down, stack_up  # noqa: E402
from prognos.ops.state import StackInfo  # noqa: E402
from prognos.record import (  # noqa: E402
    DiagnosticRecord,
    FaultHypothesis,
    SubsystemState,
    Trigger,
    encode_record,
)
from prognos.topics import diag_topic, ingest_subscription  # noqa: E402

EPOCH_MS = 1_767_225_600_000
WINDOW_MS = 600_000
SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")
FAULT_CODES = (
    "battery.module_temperature_drift",
    "tires.pressure_loss",
    "brakes.pad_wear",
    "bearings.wheel_bearing_wear",
    "motor.noise",
)
COUNTERS = ("frames_seen", "frames_bad", "frames_unknown", "values_out_of_range", "samples_dropped")
WRITE_BATCH_RECORDS = 500
PUBLISH_INFLIGHT = 1000
RUN_TIMEOUT_S = 600.0


# ---------------------------------------------------------------- records


def make_records(count: int, vehicles: int, *, seed: int, fault_share: float = 0.1) -> list[DiagnosticRecord]:
    """`count` records spread over `vehicles` VINs, ten-minute windows, each VIN's seq rising."""
    rng = random.Random(seed)
    offsets = [rng.randrange(WINDOW_MS) for _ in range(vehicles)]
    records = []
    for i in range(count):
        v, seq = i % vehicles, i // vehicles + 1
        end = EPOCH_MS + seq * WINDOW_MS + offsets[v]
        faults: tuple[FaultHypothesis, ...] = ()
        trigger = Trigger.HEARTBEAT
        if rng.random() < fault_share:
            days = rng.uniform(3.0, 60.0)
            code = FAULT_CODES[v % len(FAULT_CODES)]
            faults = (FaultHypothesis(code, rng.uniform(0.5, 0.95), days, days * 0.6, days * 1.5),)
            trigger = Trigger.ANOMALY
        elif rng.random() < 0.2:
            trigger = Trigger.CHANGE
        records.append(
            DiagnosticRecord(
                vin=f"PGB{v:014d}",
                seq=seq,
                window_start_ms=end - WINDOW_MS,
                window_end_ms=end,
                model_id="prognos-default",
                model_version="2026.11.27",
                trigger=trigger,
                subsystems={
                    name: SubsystemState(rng.uniform(0.4, 1.0), rng.uniform(0.0, 0.8)) for name in SUBSYSTEMS
                },
                faults=faults,
                counters={
                    "frames_seen": rng.randrange(50_000, 70_000),
                    "frames_bad": rng.randrange(0, 3),
                    "frames_unknown": rng.randrange(0, 40),
                    "values_out_of_range": 0,
                    "samples_dropped": 0,
                },
            )
        )
    return records


def shifted(record: DiagnosticRecord, days: int) -> DiagnosticRecord:
    """The same record `days` later: new point keys, the same shape."""
    shift = days * 86_400_000
    return DiagnosticRecord(
        **{
            **record.__dict__,
            "window_start_ms": record.window_start_ms + shift,
            "window_end_ms": record.window_end_ms + shift,
        }
    )


# ---------------------------------------------------------------- a. InfluxDB ceiling


def influx_ceiling(info: StackInfo, records: Sequence[DiagnosticRecord], writers: int) -> tuple[float, float]:
    """(records/s, points/s) writing every record's points in gzip batches of
    WRITE_BATCH_RECORDS records, `writers` at once."""
    database = f"bench_ceiling_{writers}"
    batches = []
    for start in range(0, len(records), WRITE_BATCH_RECORDS):
        batches.append(
            [line for r in records[start : start + WRITE_BATCH_RECORDS] for line in record_lines("bench", r)]
        )
    points = sum(len(b) for b in batches)
    clients = [InfluxClient(info.influx_url, timeout_s=60.0) for _ in range(writers)]
    clients[0].create_database(database)

    def write(index: int) -> None:
        client = clients[index % writers]
        for batch in batches[index::writers]:
            client.write(database, batch, precision="ms")

    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    elapsed = time.perf_counter() - started
    stored = _count(clients[0], database, "bench")
    for client in clients:
        client.close()
    if stored != len(records):
        raise SystemExit(f"ceiling run stored {stored} of {len(records)} records")
    return len(records) / elapsed, points / elapsed


def _count(influx: InfluxClient, database: str, fleet: str) -> int:
    series = influx.query(
        'SELECT count("seq") FROM diag WHERE fleet = $fleet', database=database, params={"fleet": fleet}
    )
    return int(series[0].values[0][1]) if series else 0


# ---------------------------------------------------------------- b. broker rate


def _client(client_id: str = "") -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )


def _connect(client: mqtt.Client, host: str, port: int, *, persistent: bool) -> None:
    if not persistent:
        client.connect(host, port)
        return
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=False, properties=properties)


def _subscriber(
    host: str,
    port: int,
    topic: str,
    expected: int,
    client_id: str,
    go: Any,
    ready: Any,
    result: Any,
    acks_from_thread: bool = False,
) -> None:
    """Process: wait for `go`, connect (a persistent session when `client_id` is given),
    subscribe at QoS 1 and receive `expected` messages; reports (received, connect time, time
    of the last message). paho acknowledges each message as it arrives, or, with
    `acks_from_thread`, each message goes through a queue to another thread that acknowledges
    it (manual ack), as a worker that acknowledges after its write would."""
    got = 0
    last = 0.0
    done = threading.Event()
    handed: queue.Queue[mqtt.MQTTMessage] = queue.Queue()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal got, last
        got += 1
        if acks_from_thread:
            handed.put(message)
        if got >= expected:
            last = time.monotonic()
            done.set()

    def on_subscribe(*args: object) -> None:
        ready.set()

    def acknowledge() -> None:
        while not done.is_set() or not handed.empty():
            with contextlib.suppress(queue.Empty):
                message = handed.get(timeout=0.05)
                client.ack(message.mid, message.qos)

    client = _client(client_id)
    if acks_from_thread:
        client.manual_ack_set(True)
        threading.Thread(target=acknowledge, daemon=True).start()
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    go.wait()
    connected = time.monotonic()
    _connect(client, host, port, persistent=bool(client_id))
    client.subscribe(topic, qos=1)
    client.loop_start()
    done.wait(RUN_TIMEOUT_S)
    client.disconnect()
    client.loop_stop()
    result.put((got, connected, last))


def publish_all(info: StackInfo, messages: Sequence[tuple[str, bytes]]) -> float:
    """Publish every (topic, payload) at QoS 1 and wait for every PUBACK; returns when the
    first publish started (time.monotonic)."""
    client = _client()
    client.max_inflight_messages_set(PUBLISH_INFLIGHT)
    client.max_queued_messages_set(0)
    client.connect(info.mqtt_host, info.mqtt_port)
    client.loop_start()
    try:
        started = time.monotonic()
        sent = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for item in sent:
            item.wait_for_publish(RUN_TIMEOUT_S)
            if item.rc != mqtt.MQTT_ERR_SUCCESS or not item.is_published():
                raise SystemExit(f"publish failed: rc {item.rc}")
    finally:
        client.disconnect()
        client.loop_stop()
    return started


def broker_live(info: StackInfo, messages: Sequence[tuple[str, bytes]], topic_filter: str) -> float:
    """Messages/s from the first QoS 1 publish to the last message received by a subscriber in
    another process, publisher and subscriber running at once."""
    context = mp.get_context("spawn")
    go, ready, result = context.Event(), context.Event(), context.Queue()
    go.set()
    process = context.Process(
        target=_subscriber,
        args=(info.mqtt_host, info.mqtt_port, topic_filter, len(messages), "", go, ready, result),
    )
    process.start()
    if not ready.wait(60):
        process.kill()
        raise SystemExit("the subscriber did not subscribe")
    started = publish_all(info, messages)
    got, _, last = result.get(timeout=RUN_TIMEOUT_S)
    last = float(last)
    process.join(30)
    if got < len(messages):
        raise SystemExit(f"the subscriber received {got} of {len(messages)} messages")
    return len(messages) / (last - started)


def broker_held(
    info: StackInfo, messages: Sequence[tuple[str, bytes]], fleet: str, *, acks_from_thread: bool = False
) -> float:
    """Messages/s the broker delivers to a QoS 1 subscriber (another process) that connects to
    its persistent session, shared subscription, after the messages were published: what an
    ingest worker receives, without the worker's work."""
    topic, client_id = ingest_subscription("benchraw", fleet), f"bench-raw-subscriber-{fleet}"
    registered = threading.Event()
    client = _client(client_id)
    client.on_subscribe = lambda *args: registered.set()
    _connect(client, info.mqtt_host, info.mqtt_port, persistent=True)
    client.subscribe(topic, qos=1)
    client.loop_start()
    if not registered.wait(30):
        raise SystemExit("the broker did not confirm the subscription")
    client.disconnect()
    client.loop_stop()
    publish_all(info, messages)
    context = mp.get_context("spawn")
    go, ready, result = context.Event(), context.Event(), context.Queue()
    process = context.Process(
        target=_subscriber,
        args=(
            info.mqtt_host,
            info.mqtt_port,
            topic,
            len(messages),
            client_id,
            go,
            ready,
            result,
            acks_from_thread,
        ),
    )
    process.start()
    time.sleep(2.0)  # let the interpreter start before the clock does
    go.set()
    got, connected, last = result.get(timeout=RUN_TIMEOUT_S)
    process.join(30)
    if got < len(messages):
        raise SystemExit(f"the subscriber received {got} of {len(messages)} messages")
    return len(messages) / (float(last) - float(connected))


# ---------------------------------------------------------------- c. end to end


@dataclass(frozen=True)
class Setup:
    host: str
    port: int
    influx_url: str
    database: str
    group: str
    fleet: str
    batch_size: int


def _worker(
    setup: Setup, client_id: str, go: ProcessEvent, stop: ProcessEvent, progress: Any, result: Any
) -> None:
    """Process: one IngestWorker, as `prognos cloud ingest` runs it; publishes records_written
    and the time of its latest write."""
    influx = InfluxClient(setup.influx_url, timeout_s=60.0)
    tune_garbage_collection()
    worker = IngestWorker(
        host=setup.host,
        port=setup.port,
        influx=influx,
        database=setup.database,
        group=setup.group,
        fleet=setup.fleet,
        client_id=client_id,
        batch_size=setup.batch_size,
        metrics_interval_s=3600.0,
    )
    halt = threading.Event()
    last_change = [0.0]

    def watch() -> None:
        seen = -1
        while not halt.is_set():
            written = worker.stats.records_written
            if written != seen:
                seen, last_change[0] = written, time.monotonic()
                progress.value = written
            if stop.is_set():
                halt.set()
            time.sleep(0.005)

    go.wait()
    cpu_at_go = time.process_time()
    watcher = threading.Thread(target=watch, name="bench-watch")
    watcher.start()
    worker.start()
    stats = worker.run(halt)
    watcher.join()
    influx.close()
    cpu_s = time.process_time() - cpu_at_go
    result.put((client_id, stats.records_written, stats.batches, stats.duplicates, last_change[0], cpu_s))


def register_sessions(setup: Setup, client_ids: Sequence[str]) -> None:
    """Connect each worker once and leave: its persistent session and shared subscription stay
    in the broker, which then holds the records published while it is away."""
    influx = InfluxClient(setup.influx_url)
    for client_id in client_ids:
        worker = IngestWorker(
            host=setup.host,
            port=setup.port,
            influx=influx,
            database=setup.database,
            group=setup.group,
            fleet=setup.fleet,
            client_id=client_id,
        )
        worker.start()
        worker.wait_subscribed(30)
        stopped = threading.Event()
        stopped.set()
        worker.run(stopped)  # creates the database, then disconnects
    influx.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each party used during an end-to-end run, and the run's wall time."""

    workers: float
    mosquitto: float
    influxd: float
    wall: float

    def summary(self) -> str:
        busy = (self.workers + self.mosquitto + self.influxd) / self.wall
        return (
            f"CPU: workers {self.workers:.1f} s, mosquitto {self.mosquitto:.1f} s, influxd "
            f"{self.influxd:.1f} s in {self.wall:.1f} s = {busy:.2f} of {os.cpu_count()} cores busy"
        )


def end_to_end(
    info: StackInfo, records: Sequence[DiagnosticRecord], *, workers: int, batch_size: int, tag: str
) -> tuple[float, list[tuple[str, int, int, int]], CpuUse]:
    """Records/s from the workers' connect to the last record stored, per worker (client id,
    records, batches, duplicates), and the CPU time the run took."""
    setup = Setup(
        info.mqtt_host,
        info.mqtt_port,
        info.influx_url,
        f"bench_e2e_{tag}",
        f"bench{tag}",
        f"bench{tag}",
        batch_size,
    )
    client_ids = [f"bench-ingest-{tag}-{n}" for n in range(workers)]
    register_sessions(setup, client_ids)
    publish_all(info, [(diag_topic(setup.fleet, r.vin), encode_record(r)) for r in records])
    context = mp.get_context("spawn")
    go, stop, result = context.Event(), context.Event(), context.Queue()
    counters = [context.Value("q", 0) for _ in client_ids]
    processes = [
        context.Process(target=_worker, args=(setup, client_id, go, stop, counter, result))
        for client_id, counter in zip(client_ids, counters, strict=True)
    ]
    for process in processes:
        process.start()
    time.sleep(2.0)  # let the interpreters start before the clock does
    services = (info.mosquitto_pid, info.influxd_pid)
    cpu_before = [cpu_seconds(pid) for pid in services]
    started = time.monotonic()
    go.set()
    deadline = started + RUN_TIMEOUT_S
    while sum(int(c.value) for c in counters) < len(records) and time.monotonic() < deadline:
        time.sleep(0.01)
    cpu_after = [cpu_seconds(pid) for pid in services]
    stop.set()
    reports = [result.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
    finished = max(report[4] for report in reports)
    influx = InfluxClient(info.influx_url, timeout_s=60.0)
    stored = _count(influx, setup.database, setup.fleet)
    influx.close()
    if stored != len(records):
        raise SystemExit(f"{workers} worker(s) stored {stored} of {len(records)} records")
    cpu = CpuUse(
        workers=sum(report[5] for report in reports),
        mosquitto=cpu_after[0] - cpu_before[0],
        influxd=cpu_after[1] - cpu_before[1],
        wall=finished - started,
    )
    return len(records) / (finished - started), [report[:4] for report in reports], cpu


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=20_000, help="records per measurement (default: 20000)"
    )
    parser.add_argument("--vehicles", type=int, default=2_000, help="distinct VINs (default: 2000)")
    parser.add_argument(
        "--batch-size", type=int, default=500, help="IngestWorker batch size for the main runs (default: 500)"
    )
    parser.add_argument(
        "--default-records",
        type=int,
        default=0,
        help="records for extra runs with the worker's default batch size, 500 (default: 0, none)",
    )
    parser.add_argument(
        "--inflight",
        type=int,
        default=None,
        help="set the broker's max_inflight_messages (reloaded with SIGHUP) instead of the stack's 1,000",
    )
    parser.add_argument("--home", type=Path, default=None, help="stack directory (default: a temporary one)")
    args = parser.parse_args()

    scratch = None if args.home else tempfile.TemporaryDirectory(prefix="prognos-ingest-bench-")
    home = args.home or Path(scratch.name if scratch else ".")
    info, _ = stack_up(home, secure=False)
    print(f"stack: mosquitto {info.mqtt_address}, influxd {info.influx_url} ({os.cpu_count()} cores)")
    try:
        if args.inflight is not None:
            set_inflight(info, args.inflight)
        run(info, args)
    finally:
        stack_down(home)
        if scratch is not None:
            scratch.cleanup()


def set_inflight(info: StackInfo, inflight: int) -> None:
    """Change the broker's in-flight window per client and make it reload its configuration."""
    conf = Path(info.home) / "mosquitto" / "mosquitto.conf"
    lines = conf.read_text().splitlines()
    lines = [line for line in lines if not line.startswith("max_inflight_messages")]
    conf.write_text("\n".join([*lines, f"max_inflight_messages {inflight}"]) + "\n")
    os.kill(info.mosquitto_pid, signal.SIGHUP)
    time.sleep(1.0)
    print(f"broker: max_inflight_messages {inflight}")


def run(info: StackInfo, args: argparse.Namespace) -> None:
    made = time.perf_counter()
    records = make_records(args.records, args.vehicles, seed=1)
    payloads = [encode_record(r) for r in records]
    points = sum(len(record_lines("bench", r)) for r in records)
    print(
        f"{len(records)} records of {args.vehicles} vehicles: {points / len(records):.2f} points and "
        f"{sum(map(len, payloads)) / len(payloads):.0f} B of CBOR per record "
        f"(made in {time.perf_counter() - made:.1f} s)"
    )

    one_rate, one_points = influx_ceiling(info, records, writers=1)
    two_rate, two_points = influx_ceiling(info, [shifted(r, 100) for r in records], writers=2)
    print(f"a. InfluxDB /write, gzip batches of {WRITE_BATCH_RECORDS} records:")
    print(f"   one writer  {one_rate:10,.0f} records/s ({one_points:,.0f} points/s)")
    print(f"   two writers {two_rate:10,.0f} records/s ({two_points:,.0f} points/s)")

    raw = [(diag_topic("benchraw", r.vin), p) for r, p in zip(records, payloads, strict=True)]
    live = broker_live(info, raw, "prognos/v1/benchraw/+/diag")
    held = broker_held(
        info,
        [(diag_topic("benchheld", r.vin), p) for r, p in zip(records, payloads, strict=True)],
        "benchheld",
    )
    handed = broker_held(
        info,
        [(diag_topic("benchhanded", r.vin), p) for r, p in zip(records, payloads, strict=True)],
        "benchhanded",
        acks_from_thread=True,
    )
    print("b. broker, QoS 1, paho publisher and subscriber (another process):")
    print(f"   publish -> receive, both at once  {live:10,.0f} messages/s")
    print(
        f"   held messages -> a subscriber     {held:10,.0f} messages/s "
        "(persistent session, shared subscription)"
    )
    print(f"   the same, acked by another thread {handed:10,.0f} messages/s (not a ceiling)")
    lower = min(one_rate, held)
    which = "InfluxDB, one writer" if one_rate <= held else "broker, held messages"
    print(f"   lower ceiling: {lower:,.0f} records/s ({which})")

    print(f"c. end to end, broker -> IngestWorker -> InfluxDB, batch size {args.batch_size}:")
    rates = {}
    for workers in (1, 2):
        rate, reports, cpu = end_to_end(
            info,
            [shifted(r, 200 + workers) for r in records],
            workers=workers,
            batch_size=args.batch_size,
            tag=f"b{args.batch_size}w{workers}",
        )
        rates[workers] = rate
        split = ", ".join(f"{n} records in {b} batches" for _, n, b, _ in reports)
        print(
            f"   {workers} worker(s): {rate:10,.0f} records/s = {rate / lower:.0%} of the lower ceiling "
            f"({split})"
        )
        print(f"      {cpu.summary()}")
    print(f"   second worker: x{rates[2] / rates[1]:.2f}")
    if args.default_records > 0:
        few = records[: args.default_records]
        print(f"   with the worker's default batch size 500 ({len(few)} records):")
        for workers in (1, 2):
            rate, _, _ = end_to_end(
                info,
                [shifted(r, 300 + workers) for r in few],
                workers=workers,
                batch_size=500,
                tag=f"b500w{workers}",
            )
            print(
                f"   {workers} worker(s): {rate:10,.0f} records/s = {rate / lower:.0%} of the lower ceiling"
            )


if __name__ == "__main__":
    main()
