"""Diagnosis reports: the time from a record's PUBLISH to its stored report (target: p95 < 5 s).

    .venv/bin/python benchmarks/report_latency.py [--vehicles 600] [--rate 10] [--background 200]
        [--fleet-size 5000] [--workers 1] [--builders 4] [--home DIR]

On a stack of its own (prognos.ops.stack.stack_up on a temporary directory, plain MQTT, stopped
at the end), as `prognos demo` runs it: `prognos cloud ingest` and `prognos cloud reports run`
(--workers of them, one shared-subscription group) as processes of their own, the desk in SQLite
in the stack home, and the center's webhook a local HTTP server in this process that checks
each request's signature.

The desk holds 12 dealers with 40 service centers spread over Germany (skills: a third
repair only some subsystems), a customer per vehicle of the fleet (home centers spread evenly)
and about 10 booked appointments per center in the coming two weeks; InfluxDB holds the DMS
parts stock of every center and the parts master, and 48 hourly points of each alerting
vehicle's history, as ingest would have written them.

Then --vehicles vehicles each publish one record that raises an alert (a fault, P1 or P2, over
the five subsystems), --rate a second, while --background healthy records a second from the
rest of a fleet of --fleet-size vehicles go the same way (ingest stores them; the report
worker receives and checks every one). Each raising record's window ends at its publish time.
Measured per report: from PUBLISH (this process's clock before publish()) to the report's
created_at (all its inputs read; rendering and the INSERT follow) and to the row being seen in
the desk (polled every 50 ms), and to the signed webhook's arrival. Printed: p50 / p95 / max
and the throughput. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402, TID251
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402, TID251
from sqlalchemy import Engine, insert, select  # noqa: E402

from prognos.cloud.dealers.dms_import import import_files  # noqa: E402
from prognos.cloud.ingest.points import record_lines  # noqa: E402
from prognos.cloud.parts.plan import FAULT_PARTS  # noqa: E402
from prognos.cloud.reports.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature  # noqa: E402
from prognos.cloud.storage.client import InfluxClient  # noqa: E402
from prognos.desk import schema  # noqa: E402
from prognos.desk.store import connect, default_url  # noqa: E402
from prognos.ops.stack import stack_down, stack_up  # noqa: E402
from prognos.ops.state import DEFAULT_DATABASE  # noqa: E402
from prognos.record import (  # noqa: E402
    DiagnosticRecord,
    FaultHypothesis,
    SubsystemState,
    Trigger,
    encode_record,
)
from prognos.topics import diag_topic  # noqa: E402

FLEET = "bench"
SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")
CODES = tuple(FAULT_PARTS)
SECRET = b"benchmark webhook secret 0123456789"
HOUR_MS = 3_600_000


def vin(n: int) -> str:
    return f"PRGBENCH{n:09d}"


def healthy(n: int, seq: int, end_ms: int, rng: random.Random) -> DiagnosticRecord:
    return DiagnosticRecord(
        vin=vin(n),
        seq=seq,
        window_start_ms=end_ms - 600_000,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="0.1",
        trigger=Trigger.HEARTBEAT,
        subsystems={s: SubsystemState(rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.4)) for s in SUBSYSTEMS},
        counters={"frames_seen": rng.randrange(1000, 9000), "frames_bad": rng.randrange(3)},
    )


def raising(n: int, seq: int, end_ms: int, rng: random.Random) -> DiagnosticRecord:
    record = healthy(n, seq, end_ms, rng)
    code = CODES[n % len(CODES)]
    subsystem = code.split(".", 1)[0]
    days = rng.choice([5.0, 9.0, 20.0, 40.0])
    states = dict(record.subsystems)
    states[subsystem] = SubsystemState(rng.uniform(0.25, 0.5), rng.uniform(1.0, 1.6))
    fault = FaultHypothesis(code, rng.uniform(0.6, 0.95), days, days * 0.6, days * 1.5)
    return DiagnosticRecord(
        vin=record.vin,
        seq=seq,
        window_start_ms=record.window_start_ms,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="0.1",
        trigger=Trigger.ANOMALY,
        subsystems=states,
        faults=(fault,),
        counters=record.counters,
    )


# ---------------------------------------------------------------- the desk and InfluxDB


def seed_desk(engine: Engine, fleet_size: int, now: datetime, rng: random.Random) -> list[str]:
    dealers = [f"D{d:02d}" for d in range(12)]
    centers = []
    for c in range(40):
        skills = "" if c % 3 else ";".join(rng.sample(SUBSYSTEMS, 3))
        centers.append(
            {
                "center_id": f"SC-{c:02d}",
                "dealer_id": dealers[c % len(dealers)],
                "name": f"Workshop {c:02d}",
                "lat": rng.uniform(47.5, 54.5),
                "lon": rng.uniform(6.5, 14.5),
                "skills": skills,
                "capacity_per_week": rng.choice([30, 40, 60]),
                "technicians": rng.choice([2, 3, 4]),
            }
        )
    ids = [c["center_id"] for c in centers]
    with engine.begin() as c:
        c.execute(
            insert(schema.dealer),
            [
                {"dealer_id": d, "name": f"Dealer {d}", "region": "de", "timezone": "Europe/Berlin"}
                for d in dealers
            ],
        )
        c.execute(insert(schema.service_center), centers)
        customers = [
            {
                "customer_id": f"C{n:07d}",
                "name": f"Owner {n}",
                "name_key": f"owner {n}",
                "email": f"owner{n}@example.org",
                "phone": f"+49 30 {n:07d}",
                "home_center": ids[n % len(ids)],
                "created_at": now,
            }
            for n in range(fleet_size)
        ]
        for start in range(0, len(customers), 5000):
            c.execute(insert(schema.customer), customers[start : start + 5000])
        vehicles = [{"vin": vin(n), "customer_id": f"C{n:07d}", "model": "EV-1"} for n in range(fleet_size)]
        for start in range(0, len(vehicles), 5000):
            c.execute(insert(schema.vehicle), vehicles[start : start + 5000])
        appointments = []
        for center in ids:
            for k in range(10):
                day = now + timedelta(days=1 + rng.randrange(14))
                at = day.replace(hour=rng.randrange(8, 16), minute=0, second=0, microsecond=0)
                owner = rng.randrange(fleet_size)
                appointments.append(
                    {
                        "appointment_id": f"AP-{center}-{k}",
                        "customer_id": f"C{owner:07d}",
                        "vin": vin(owner),
                        "center_id": center,
                        "scheduled_at": at,
                        "status": "booked",
                        "updated_at": now,
                        "bay": None,
                    }
                )
        c.execute(insert(schema.appointment), appointments)
    return ids


def seed_influx(
    influx: InfluxClient, centers: list[str], alerting: int, folder: Path, rng: random.Random
) -> None:
    influx.ensure_database(DEFAULT_DATABASE)
    stock = folder / "stock.csv"
    rows = ["dealer_id,service_center,part,on_hand,on_order,lead_time_weeks,as_of"]
    for n, center in enumerate(centers):
        for spec in FAULT_PARTS.values():
            rows.append(
                f"D{n % 12:02d},{center},{spec.part},{rng.randrange(0, 8)},{rng.randrange(0, 4)},"
                f"{rng.choice([1, 2, 3])},2026-01-05T08:00:00Z"
            )
    stock.write_text("\n".join(rows) + "\n")
    master = folder / "parts.csv"
    master.write_text(
        "part,name,unit_cost,currency\n"
        + "".join(f'{s.part},"{s.name}",{rng.uniform(20, 400):.2f},EUR\n' for s in FAULT_PARTS.values())
    )
    import_files(influx, DEFAULT_DATABASE, [stock, master])
    now_ms = int(time.time() * 1000)
    lines: list[str] = []
    for n in range(alerting):
        for hour in range(1, 49):
            lines += record_lines(FLEET, healthy(n, 1000 + hour, now_ms - hour * HOUR_MS, rng))
        if len(lines) > 20_000:
            influx.write(DEFAULT_DATABASE, lines, precision="ms")
            lines = []
    influx.write(DEFAULT_DATABASE, lines, precision="ms")


# ---------------------------------------------------------------- the webhook


class Webhook:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # report id -> arrival (epoch s)
        self.bad = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                valid = verify_signature(
                    SECRET,
                    body,
                    timestamp=self.headers.get(TIMESTAMP_HEADER),
                    signature=self.headers.get(SIGNATURE_HEADER),
                    now_s=now,
                )
                if valid:
                    hook.arrived.setdefault(json.loads(body)["vin"], now)
                else:
                    hook.bad += 1
                self.send_response(204 if valid else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the run


def cpu_s(pid: int) -> float:
    """User and system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> str:
    if not values:
        return "no values"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return f"p50 {at(0.5):.2f} s, p95 {at(0.95):.2f} s, p99 {at(0.99):.2f} s, max {ordered[-1]:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vehicles", type=int, default=600, help="vehicles raising an alert")
    parser.add_argument("--rate", type=float, default=10.0, help="raising records a second")
    parser.add_argument("--background", type=float, default=200.0, help="healthy records a second")
    parser.add_argument("--fleet-size", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1, help="report workers (one group)")
    parser.add_argument("--builders", type=int, default=4, help="reports each worker builds at once")
    parser.add_argument("--home", type=Path, default=None, help="stack directory (default: a temporary one)")
    args = parser.parse_args()
    rng = random.Random(7)
    home = args.home or Path(tempfile.mkdtemp(prefix="prognos-reports-bench-"))
    info, _ = stack_up(home, secure=False)
    children: list[subprocess.Popen[bytes]] = []
    hook = Webhook()
    try:
        now = datetime.now(UTC)
        engine = connect(default_url(home))
        centers = seed_desk(engine, args.fleet_size, now, rng)
        influx = InfluxClient(info.influx_url, timeout_s=60)
        seed_influx(influx, centers, args.vehicles, home, rng)
        secret = home / "webhook.secret"
        secret.write_bytes(SECRET)
        base = [sys.executable, "-m", "prognos.cli"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        logs = home / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / "ingest.log").open("wb") as out:
            children.append(
                subprocess.Popen(
                    [*base, "cloud", "ingest", "--home", str(home)], stdout=out, stderr=out, env=env
                )
            )
        for w in range(args.workers):
            with (logs / f"reports-{w}.log").open("wb") as out:
                children.append(
                    subprocess.Popen(
                        [*base, "cloud", "reports", "run", "--home", str(home), "--client-id",
                         f"bench-reports-{w}", "--builders", str(args.builders), "--webhook", hook.url,
                         "--webhook-secret-file", str(secret)],
                        stdout=out,
                        stderr=out,
                        env=env,
                    )
                )  # fmt: skip
        deadline = time.monotonic() + 60
        while not all(
            b"reports: $share/" in (logs / f"reports-{w}.log").read_bytes() for w in range(args.workers)
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the report workers did not start; see " + str(logs))
            time.sleep(0.2)
        time.sleep(2.0)  # their subscriptions, and ingest's

        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.max_inflight_messages_set(1000)
        client.connect(info.mqtt_host, info.mqtt_port)
        client.loop_start()
        published: dict[str, float] = {}
        seen: dict[str, float] = {}
        created: dict[str, float] = {}
        polling = threading.Event()

        def poll() -> None:
            """Each report as it appears in the desk: when it was seen (every 50 ms) and its created_at."""
            r = schema.diagnosis_report
            while not polling.is_set():
                with engine.connect() as c:
                    rows = c.execute(select(r.c.vin, r.c.created_at)).all()
                at = time.time()
                for row in rows:
                    if row.vin not in seen:
                        seen[row.vin] = at
                        created[row.vin] = row.created_at.replace(tzinfo=UTC).timestamp()
                polling.wait(0.05)

        processes = {
            "ingest": children[0].pid,
            **{f"reports {w}": child.pid for w, child in enumerate(children[1:])},
            "mosquitto": info.mosquitto_pid,
            "influxd": info.influxd_pid,
        }
        cpu_before = {name: cpu_s(pid) for name, pid in processes.items()}
        load_before = os.getloadavg()[0]
        poller = threading.Thread(target=poll, name="desk-poll")
        poller.start()
        background_vins = range(args.vehicles, args.fleet_size)
        start = time.time()
        duration = args.vehicles / args.rate
        sent_background = 0
        seq = 1
        infos = []
        next_alert = 0
        while next_alert < args.vehicles:
            now_s = time.time()
            due_alerts = min(args.vehicles, int((now_s - start) * args.rate) + 1)
            while next_alert < due_alerts:
                end_ms = int(time.time() * 1000)
                payload = encode_record(raising(next_alert, seq, end_ms, rng))
                published[vin(next_alert)] = time.time()
                infos.append(client.publish(diag_topic(FLEET, vin(next_alert)), payload, qos=1))
                next_alert += 1
            due_background = int((now_s - start) * args.background)
            while sent_background < due_background:
                n = rng.choice(background_vins)
                payload = encode_record(healthy(n, seq + sent_background, int(time.time() * 1000), rng))
                infos.append(client.publish(diag_topic(FLEET, vin(n)), payload, qos=1))
                sent_background += 1
            time.sleep(0.005)
        publish_s = time.time() - start
        for item in infos:
            item.wait_for_publish(60)
        print(
            f"published {args.vehicles} raising records ({args.rate:g}/s) and {sent_background} healthy ones "
            f"({args.background:g}/s) of a {args.fleet_size}-vehicle fleet in {publish_s:.1f} s "
            f"(planned {duration:.1f} s)",
            flush=True,
        )
        deadline = time.monotonic() + 300
        while len(seen) < args.vehicles and time.monotonic() < deadline:
            time.sleep(0.2)
        cpu = {name: cpu_s(pid) - cpu_before[name] for name, pid in processes.items()}
        polling.set()
        poller.join()
        time.sleep(2.0)
        client.disconnect()
        client.loop_stop()

        stored = [created[v] - published[v] for v in created]
        polled_lat = [seen[v] - published[v] for v in seen]
        hooked = [hook.arrived[v] - published[v] for v in hook.arrived if v in published]
        last = max(seen.values()) if seen else start
        print(
            f"reports stored: {len(created)} of {args.vehicles}; webhooks received: {len(hook.arrived)}, "
            f"bad signatures: {hook.bad}"
        )
        print(f"PUBLISH -> report built (created_at):   {percentiles(stored)}")
        print(f"PUBLISH -> report seen in the desk:     {percentiles(polled_lat)}")
        print(f"PUBLISH -> signed webhook received:     {percentiles(hooked)}")
        span = max(last - start, 1e-9)
        print(f"throughput: {len(seen) / span:.1f} reports/s over {span:.1f} s from the first PUBLISH")
        print(
            "CPU seconds over the run: "
            + ", ".join(f"{name} {value:.1f}" for name, value in cpu.items())
            + f"; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        )
        p95 = sorted(polled_lat)[round(0.95 * (len(polled_lat) - 1))] if polled_lat else float("inf")
        met = p95 < 5.0 and len(seen) == args.vehicles
        print(f"target p95 < 5 s from PUBLISH to the stored report: {'MET' if met else 'NOT MET'}")
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        hook.close()
        stack_down(home)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
