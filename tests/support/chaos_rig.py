"""The chaos rig: a stack of its own, gateway agents and ingest workers as processes that can be
SIGKILLed, faults at seeded random times, and the count of records sent against records stored.

tests/integration/test_chaos.py and benchmarks/chaos.py both run on it. The stack is the secure one users
run: TLS with the stack's fleet CA, a broker login and ACL per vehicle (issued as `prognos fleet
provision` issues them) and per cloud role, and least-privilege InfluxDB users. Its two child
programs:

    python -m tests.support.chaos_rig agent --port P --fleet F --vin V --ca-file CA --username U
        --password-file PATH --spool PATH --first-seq N [...]
    python -m tests.support.chaos_rig ingest --home STACK_HOME --database D --group G --fleet F
        --client-id C

The agent is the gateway's store-and-forward path (prognos.edge.spool.Spool, prognos.edge.forwarder.Forwarder,
prognos.edge.uplink.MqttUplink and the retained status message, wired by prognos.edge.assembly.open_link as
every gateway's are)
fed by a deterministic record source in simulated time: record `seq` of a vehicle covers the
10-minute window number `seq`, and every `alert_every`-th record is an alert. Its stdout says
what happened to each record, one line each: `spooled SEQ A|H T` once submit() stored it,
`unstored SEQ A|H T` when the spool could not (T: time.monotonic() when it was made),
`acked SEQ...` once the spool deleted them (on ingest's storage receipt, or without receipts on
the broker's PUBACK); `counters JSON` now and then.
A restarted agent goes on at the seq after the last one it reported spooled (the record in
progress at a kill, if it landed, is sent twice with the same content, so it is stored once).

The ingest worker is prognos.cloud.ingest.worker.IngestWorker as `prognos cloud ingest` runs it (the stack's
ingest logins: it may read the diag and status topics and write to the database) with a fixed
MQTT client id, so that a worker started again after a kill resumes its persistent session and the
messages the broker kept for it; it says `subscribed` each time the broker confirms its
subscription, which tells when records published after a broker restart have a reader again.

Services are restarted from the configuration files `prognos stack up` wrote, on the same ports,
with the same data and the same TLS, password and ACL files (ChaosStack.start_again): stack_up()
itself would also stop the service that still runs, and may move a service to another port.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import faulthandler
import json
import logging
import math
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from prognos.backoff import Backoff
from prognos.cloud.storage.client import InfluxClient
from prognos.config import BrokerConfig
from prognos.edge.assembly import LinkTiming, open_link
from prognos.edge.forwarder import FlushTimeout
from prognos.edge.spool import RESERVE_BYTES, Spool, priority_for
from prognos.ops.access import stack_influx
from prognos.ops.provision import provision_vehicles
from prognos.ops.stack import find_binary, stack_down, stack_up
from prognos.ops.state import StackInfo, load_stack
from prognos.record import (
    DiagnosticRecord,
    FaultHypothesis,
    SubsystemState,
    Trigger,
    decode_record,
    encode_record,
)
from prognos.topics import ROOT, parse_topic

PROJECT = Path(__file__).resolve().parents[2]
DATABASE = "chaos"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
WINDOW_MS = 600_000  # one record per simulated 10-minute window
SUBSYSTEMS = ("battery", "brakes")
KINDS = ("broker", "database", "ingest", "agent", "partition")
ACK_SLACK_S = 1.0  # the ack line reaches the rig a little after the spool deleted the record
# Agents keep each record until ingest's storage receipt, as a provisioned gateway does; short
# here, so that records the broker lost go out again within a test's time.
RECEIPT_TIMEOUT_S = 3.0


# ---------------------------------------------------------------- records


def chaos_record(vin: str, seq: int, alert: bool) -> DiagnosticRecord:
    """The deterministic record `seq` of `vin`: the same arguments give the same bytes."""
    start_ms = T0_MS + (seq - 1) * WINDOW_MS
    health = 0.5 + (seq % 50) / 100
    return DiagnosticRecord(
        vin=vin,
        seq=seq,
        window_start_ms=start_ms,
        window_end_ms=start_ms + WINDOW_MS,
        model_id="rules",
        model_version="1",
        trigger=Trigger.ANOMALY if alert else Trigger.HEARTBEAT,
        subsystems={name: SubsystemState(health, 1.2 if alert else 0.1) for name in SUBSYSTEMS},
        faults=(FaultHypothesis("brakes.pad_wear", 0.75, 9.0, 6.0, 12.0),) if alert else (),
        counters={"frames_seen": 36_000 * seq, "frames_bad": seq % 3},
    )


def simulated_hours(records: int) -> float:
    return records * WINDOW_MS / 3_600_000


# ---------------------------------------------------------------- the stack


def start_stack(home: Path) -> StackInfo:
    """The rig's stack: the secure stack, with the rig's database and every role's grant on it.
    The one place that says how the rig's stack starts; agents and workers connect to
    `info.mqtt_host:mqtt_port`."""
    info, _ = stack_up(home, secure=True, databases=(DATABASE,))
    return info


@dataclass(frozen=True)
class VehicleLogin:
    """A provisioned vehicle's broker login as files, for an agent's command line: a password
    goes into an owner-only file, never onto a command line."""

    ca_file: Path
    username: str
    password_file: Path

    def argv(self) -> list[str]:
        return [
            *("--ca-file", str(self.ca_file), "--username", self.username),
            *("--password-file", str(self.password_file)),
        ]


class ChaosStack:
    """A stack of the rig's own, in `home`, whose services can be SIGKILLed and started again."""

    SERVICES = ("broker", "database")

    def __init__(
        self, home: Path, start: Callable[[Path], StackInfo], broker_lines: Sequence[str] = ()
    ) -> None:
        """`broker_lines`: more Mosquitto settings, appended to the stack's broker configuration
        (a later line wins), and the broker restarted with them: for measuring a setting."""
        self.home = home
        self.info = start(home)  # its pids follow the restarts: provisioning signals the broker
        self._restarted: dict[str, subprocess.Popen[bytes]] = {}
        self._down: set[str] = set()
        self.broker_saved_at: list[float] = []  # at each broker SIGKILL, when it had last saved
        conf = home / "mosquitto" / "mosquitto.conf"
        if broker_lines:
            conf.write_text(conf.read_text() + "".join(f"{line}\n" for line in broker_lines))
            os.kill(self.pid("broker"), signal.SIGTERM)
            _reap(self.pid("broker"))
            self.start_again("broker")
        self.loss_window_s = broker_loss_window_s(conf)

    def influx(self) -> InfluxClient:
        """A client for reading back what was stored: the dashboard's login, which may only read."""
        return stack_influx(self.info, "dashboard")

    def provision(self, fleet: str, vins: Sequence[str]) -> dict[str, VehicleLogin]:
        """Broker logins for `vins` of `fleet`, issued and written as `prognos fleet provision`
        does (the broker reloads its users); earlier logins of those VINs stop working."""
        written = provision_vehicles(self.info, fleet, vins, self.home / "vehicles")
        # A vehicle's broker username is its VIN.
        return {vin: VehicleLogin(path / "ca.pem", vin, path / "password") for vin, path in written.items()}

    def is_down(self, service: str) -> bool:
        return service in self._down

    def pid(self, service: str) -> int:
        return self.info.mosquitto_pid if service == "broker" else self.info.influxd_pid

    def kill(self, service: str) -> None:
        """SIGKILL: no clean shutdown, nothing saved. For the broker, notes when it last saved
        (time.monotonic()): what it acknowledged since then may be lost."""
        pid = self.pid(service)
        if service == "broker":
            self.broker_saved_at.append(self._broker_saved_at())
        os.kill(pid, signal.SIGKILL)
        process = self._restarted.pop(service, None)
        if process is not None:
            process.wait()
        else:
            _reap(pid)
        self._down.add(service)

    def start_again(self, service: str) -> None:
        """The service again, from the configuration the stack wrote: the same port, the same data,
        and for the broker the same TLS certificate, password and ACL files."""
        if service == "broker":
            argv = [find_binary("mosquitto"), "-c", str(self.home / "mosquitto" / "mosquitto.conf")]
            log_path = self.home / "mosquitto" / "restarts.log"
        else:
            argv = [find_binary("influxd"), "-config", str(self.home / "influxdb" / "influxdb.conf")]
            log_path = self.home / "influxdb" / "restarts.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        self._restarted[service] = process
        if service == "broker":
            self.info = dataclasses.replace(self.info, mosquitto_pid=process.pid)
        else:
            self.info = dataclasses.replace(self.info, influxd_pid=process.pid)
        deadline = time.monotonic() + 30.0
        while not self._answers(service):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{service} did not come back; see {log_path}")
            time.sleep(0.05)
        self._down.discard(service)

    def close(self) -> None:
        for process in self._restarted.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._restarted.clear()
        stack_down(self.home)

    def _broker_saved_at(self) -> float:
        """The time of the broker's last save: its persistence file's mtime, on the monotonic clock
        (-inf if it never saved)."""
        try:
            age_s = time.time() - (self.home / "mosquitto" / "mosquitto.db").stat().st_mtime
        except FileNotFoundError:
            return -math.inf
        return time.monotonic() - max(age_s, 0.0)

    def _answers(self, service: str) -> bool:
        if service == "broker":
            try:
                with socket.create_connection((self.info.mqtt_host, self.info.mqtt_port), timeout=0.5):
                    return True
            except OSError:
                return False
        probe = InfluxClient(self.info.influx_url, timeout_s=1.0)
        try:
            return probe.ping()
        finally:
            probe.close()


def broker_loss_window_s(conf: Path) -> float:
    """How long before a crash the broker may have acknowledged messages it had not yet saved:
    `autosave_interval` seconds, or (with `autosave_on_changes`) about nothing."""
    settings = dict(
        line.split(None, 1) for line in conf.read_text().splitlines() if line and not line.startswith("#")
    )
    if settings.get("autosave_on_changes", "false").strip() == "true":
        return ACK_SLACK_S
    return float(settings.get("autosave_interval", "1800")) + ACK_SLACK_S


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # not our child: wait until it is gone
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.02)


# ---------------------------------------------------------------- the network between gateway and broker


class Relay:
    """A TCP relay between gateways and the broker. `swallow` drops what the gateways send;
    `partition()` drops everything both ways, new connections included (a black hole, like a
    dead radio link: nothing is refused, nothing arrives); `cut()` closes every connection.
    A TLS connection passes through as it is: the relay listens on 127.0.0.1, one of the names
    in the broker's certificate, so the gateways' hostname check still holds."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._from_gateway: set[socket.socket] = set()
        self.swallow = False
        self.partitioned = False
        self._cut_requested = threading.Event()
        self._cut_done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-relay")
        self._thread.start()

    def partition(self) -> None:
        self.partitioned = True

    def heal(self) -> None:
        """End the partition; the connections it left half dead are closed, as both ends would
        have found out by their keepalive."""
        self.partitioned = False
        self.cut()

    def cut(self) -> None:
        """Close every relayed connection now; data not yet delivered is lost."""
        self._cut_done.clear()
        self._cut_requested.set()
        assert self._cut_done.wait(5), "the relay did not cut"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._close_all()
        self._selector.close()
        self._listener.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._cut_requested.is_set():
                self._close_all()
                self._cut_requested.clear()
                self._cut_done.set()
            for key, _ in self._selector.select(0.02):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._pump(sock)

    def _accept(self) -> None:
        try:
            gateway_side, _ = self._listener.accept()
        except BlockingIOError:
            return
        broker_side: socket.socket | None = None
        if not self.partitioned:
            try:
                broker_side = socket.create_connection(self._upstream, timeout=5)
            except OSError:  # the broker is down: the gateway sees its connection closed
                gateway_side.close()
                return
            self._peers[broker_side] = gateway_side
            self._selector.register(broker_side, selectors.EVENT_READ)
        self._peers[gateway_side] = broker_side
        self._from_gateway.add(gateway_side)
        self._selector.register(gateway_side, selectors.EVENT_READ)

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        peer = self._peers.get(sock)
        if not data:
            self._close_pair(sock)
        elif peer is None or self.partitioned or (self.swallow and sock in self._from_gateway):
            return
        else:
            try:
                peer.sendall(data)
            except OSError:
                self._close_pair(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        for s in (sock, self._peers.get(sock)):
            if s is not None and s in self._peers:
                self._selector.unregister(s)
                self._peers.pop(s)
                self._from_gateway.discard(s)
                s.close()

    def _close_all(self) -> None:
        for sock in list(self._peers):
            self._close_pair(sock)


# ---------------------------------------------------------------- what the cloud sees


class Observer:
    """A QoS 1 subscriber with a persistent session to a fleet's diag and status topics: the
    order in which records reach a subscriber, and each vehicle's latest status."""

    def __init__(self, info: StackInfo, fleet: str) -> None:
        self._lock = threading.Lock()
        self._arrivals: dict[str, list[int]] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"chaos-observer-{fleet}"[:64],
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        info.broker_auth("observer").apply(self._client)
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        topics = [(f"{ROOT}/{fleet}/+/diag", 1), (f"{ROOT}/{fleet}/+/status", 1)]
        self._client.on_connect = lambda client, *_: client.subscribe(topics)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self._client.connect(
            info.mqtt_host, info.mqtt_port, keepalive=5, clean_start=False, properties=properties
        )
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the observer's subscription was not confirmed")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        topic = parse_topic(message.topic)
        with self._lock:
            if topic.kind == "diag":
                self._arrivals.setdefault(topic.vin, []).append(decode_record(bytes(message.payload)).seq)
            else:
                status = json.loads(message.payload)
                if "counters" in status:  # not the last will's or the goodbye's {"state": "offline"}
                    self._status[topic.vin] = status

    def arrivals(self, vin: str) -> list[int]:
        """Every delivery's seq in arrival order, redeliveries included."""
        with self._lock:
            return list(self._arrivals.get(vin, []))

    def status(self, vin: str) -> dict[str, Any]:
        """The latest status with counters that the vehicle published."""
        with self._lock:
            return dict(self._status.get(vin, {}))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def stored_keys(influx: InfluxClient, fleet: str) -> Counter[tuple[str, int]]:
    """(vin, seq) of every diag point of `fleet` in InfluxDB, with how many points each has."""
    series = influx.query(
        "SELECT vin, seq FROM diag WHERE fleet = $fleet", database=DATABASE, params={"fleet": fleet}
    )
    return Counter((row["vin"], int(row["seq"])) for s in series for row in s.rows())


def stored_health_points(influx: InfluxClient, fleet: str) -> int:
    series = influx.query(
        'SELECT count("health") FROM vehicle_health WHERE fleet = $fleet',
        database=DATABASE,
        params={"fleet": fleet},
    )
    rows = [row for s in series for row in s.rows()]
    return int(rows[0]["count"]) if rows else 0


def first_deliveries(arrivals: Sequence[int]) -> list[int]:
    seen: set[int] = set()
    first = []
    for seq in arrivals:
        if seq not in seen:
            seen.add(seq)
            first.append(seq)
    return first


# ---------------------------------------------------------------- agents


@dataclass
class Vehicle:
    """What one vehicle's agents said about its records, with the rig's clock (time.monotonic)."""

    vin: str
    spooled: dict[int, tuple[float, bool]] = field(default_factory=dict)  # seq -> (when, alert)
    unstored: dict[int, tuple[float, bool]] = field(default_factory=dict)
    acked: dict[int, float] = field(default_factory=dict)  # seq -> when the spool deleted it
    counters: dict[str, Any] = field(default_factory=dict)  # the latest counters line
    final: dict[str, Any] | None = None  # the counters of a clean exit
    last_seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, line: str, now: float) -> None:
        word, _, rest = line.strip().partition(" ")
        with self.lock:
            if word in ("spooled", "unstored"):
                seq_text, kind, made_at = rest.split()
                seq = int(seq_text)
                (self.spooled if word == "spooled" else self.unstored)[seq] = (float(made_at), kind == "A")
                self.last_seq = max(self.last_seq, seq)
            elif word == "acked":
                for seq_text in rest.split():
                    self.acked.setdefault(int(seq_text), now)
            elif word == "counters":
                self.counters = json.loads(rest)
            elif word == "final":
                self.final = json.loads(rest)

    def produced(self) -> dict[int, tuple[float, bool]]:
        with self.lock:
            return dict(self.spooled)


class AgentProcess:
    """One vehicle's agent as a child process (`python -m tests.support.chaos_rig agent`)."""

    def __init__(
        self,
        vehicle: Vehicle,
        *,
        login: VehicleLogin,
        port: int,
        fleet: str,
        spool: Path,
        log_dir: Path,
        rate_per_s: float,
        alert_every: int = 10,
        max_bytes: int = 64 << 20,
        reserve_bytes: int = RESERVE_BYTES,
        host: str = "127.0.0.1",
        count: int = 0,
        receipt_timeout_s: float | None = RECEIPT_TIMEOUT_S,
    ) -> None:
        """`count`: produce that many records, then only forward (0: produce until stopped).
        `receipt_timeout_s` None: the broker's PUBACK settles a record, as without receipts."""
        self.vehicle = vehicle
        self._argv = [
            *("--host", host, "--port", str(port), "--fleet", fleet, "--vin", vehicle.vin),
            *login.argv(),
            *("--spool", str(spool), "--rate", str(rate_per_s), "--alert-every", str(alert_every)),
            *("--max-bytes", str(max_bytes), "--reserve-bytes", str(reserve_bytes)),
            *("--count", str(count)),
            *(["--receipt-timeout-s", str(receipt_timeout_s)] if receipt_timeout_s is not None else []),
        ]
        self._log_path = log_dir / f"agent-{vehicle.vin}.log"
        self.process: subprocess.Popen[str] | None = None
        self.exit_summary = "not stopped yet"
        self._reader: threading.Thread | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        first_seq = self.vehicle.last_seq + 1
        with self._log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.chaos_rig",
                    "agent",
                    *self._argv,
                    "--first-seq",
                    str(first_seq),
                ],
                cwd=PROJECT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.starts += 1
        self._reader = threading.Thread(target=self._read, args=(self.process,), name="chaos-agent-reader")
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.endswith("\n"):  # a line cut by SIGKILL is no statement
                self.vehicle.note(line, time.monotonic())
        process.stdout.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self._join()

    def toggle_all_alerts(self) -> None:
        """Every record an alert from now on, or no longer (SIGUSR1)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR1)

    def toggle_pause(self) -> None:
        """Stop producing records, or start again (SIGUSR2); forwarding goes on."""
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR2)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM: stop producing, drain the spool (up to its drain time), exit; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGQUIT)  # every thread's stack into its log
            time.sleep(1.0)
            self.process.kill()
        self._join()
        return self.process.returncode

    def stop_drained(self, timeout_s: float = 90.0) -> bool:
        """stop(); whether the agent exited cleanly with its spool empty (`exit_summary` says how
        it ended)."""
        status = self.stop(timeout_s)
        final = self.vehicle.final
        drained = status == 0 and final is not None and final.get("spool_depth") == 0
        self.exit_summary = f"exit status {status}, final counters {final}, latest {self.vehicle.counters}"
        if not drained:
            tail = self._log_path.read_text(errors="replace").splitlines()[-60:]
            self.exit_summary += "; the end of its log:\n" + "\n".join(tail)
        return drained

    def _join(self) -> None:
        assert self.process is not None and self._reader is not None
        self.process.wait()
        self._reader.join()


class IngestProcess:
    """One ingest worker as a child process (`python -m tests.support.chaos_rig ingest`), with a fixed
    client id, so that a start after a kill resumes its persistent session. `subscribed_at`: when
    the broker confirmed its subscription (after each connection)."""

    def __init__(self, stack: ChaosStack, *, fleet: str, name: str, log_dir: Path) -> None:
        self._argv = [
            *("-m", "tests.support.chaos_rig", "ingest", "--home", str(stack.home), "--database", DATABASE),
            *("--group", f"chaos{fleet}", "--fleet", fleet, "--client-id", f"chaos-ingest-{name}"),
        ]
        self._log_path = log_dir / f"ingest-{name}.log"
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.subscribed_at: list[float] = []

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *self._argv],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), name="chaos-ingest-reader")
        self._reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with self._log_path.open("a") as log:
            for line in process.stdout:
                if line == "subscribed\n":
                    self.subscribed_at.append(time.monotonic())
                else:
                    log.write(line)
        process.stdout.close()

    def wait_subscribed(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.subscribed_at:
            if time.monotonic() > deadline or not self.alive:
                raise RuntimeError(f"the ingest worker did not subscribe; see {self._log_path}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self._join()

    def stop(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._join()

    def _join(self) -> None:
        assert self.process is not None and self._reader is not None
        self.process.wait()
        self._reader.join()


# ---------------------------------------------------------------- a chaos run


@dataclass(frozen=True)
class Fault:
    at_s: float  # after the start of the run
    kind: str  # one of KINDS
    target: int  # which agent, worker or link (the broker and the database have one each)
    down_s: float


def plan_faults(
    rng: random.Random,
    *,
    count: int,
    duration_s: float,
    agents: int,
    workers: int,
    kinds: Sequence[str] = KINDS,
    warmup_s: float = 6.0,
    down_s: tuple[float, float] = (0.5, 4.0),
) -> list[Fault]:
    """`count` faults at random times, every kind at least once when count allows, in time order.
    The warm-up gives the broker time to save the ingest sessions (autosave) before anything fails."""
    order = [kinds[i % len(kinds)] for i in range(count)]
    rng.shuffle(order)
    latest_s = duration_s - down_s[1] - 1.0
    faults = []
    for kind in order:
        targets = agents if kind in ("agent", "partition") else workers if kind == "ingest" else 1
        at_s, down = rng.uniform(warmup_s, latest_s), rng.uniform(*down_s)
        faults.append(Fault(round(at_s, 2), kind, rng.randrange(targets), round(down, 2)))
    return sorted(faults, key=lambda f: f.at_s)


# Why a record produced by an agent is not in InfluxDB.
BROKER_CRASH = "broker-crash"  # the broker acknowledged it in its save interval before a SIGKILL
BROKER_RESTART = "broker-restart"  # acknowledged after a broker restart, before ingest subscribed again
UNEXPLAINED = "unexplained"


@dataclass
class FaultRow:
    """A fault, and the records produced from it until the next one."""

    at_s: float
    kind: str
    target: str
    down_s: float
    sent: int = 0  # produced: submit() stored it in the spool
    acked: int = 0  # the spool deleted it (on its receipt, or without receipts on its PUBACK)
    stored: int = 0  # in InfluxDB
    lost: Counter[str] = field(default_factory=Counter)  # why -> records
    stored_twice: int = 0

    COUNTS = ("sent", "acked", "stored", "stored_twice")


@dataclass
class ChaosReport:
    plan: ChaosPlan
    rows: list[FaultRow]
    lost: list[tuple[str, int, str]]  # vin, seq, why
    stored_twice: list[tuple[str, int]]
    phantoms: list[tuple[str, int]]  # stored but never produced
    health_points: int
    expected_health_points: int
    unstored: int
    agents_unclean: list[str]  # agents that did not drain their spool and exit cleanly at the end
    skipped_faults: int  # planned on a service that was already down

    def total(self) -> FaultRow:
        total = FaultRow(0.0, "total", "", 0.0)
        for row in self.rows:
            for name in FaultRow.COUNTS:
                setattr(total, name, getattr(total, name) + getattr(row, name))
            total.lost.update(row.lost)
        return total

    def lost_for(self, why: str) -> list[tuple[str, int]]:
        return [(vin, seq) for vin, seq, reason in self.lost if reason == why]


def format_report(report: ChaosReport) -> str:
    plan = report.plan
    header = [
        "at s",
        "fault",
        "target",
        "down s",
        "sent",
        "acked",
        "stored",
        "lost",
        "crash",
        "restart",
        "other",
        "dup",
    ]
    hours = simulated_hours(report.total().sent // max(1, plan.vehicles))
    lines = [
        f"seed {plan.seed}: {plan.duration_s:.0f} s, {plan.vehicles} agents at {plan.rate_per_s:g} records/s "
        f"({hours:.0f} simulated hours each), {plan.workers} ingest workers, "
        f"{len(report.rows) - 1} faults ({report.skipped_faults} skipped: already down)",
        "".join(f"{h:>10}" if i == 1 else f"{h:>8}" for i, h in enumerate(header)),
    ]
    for row in [*report.rows, report.total()]:
        cells = (
            "" if row.kind == "total" else f"{row.at_s:.1f}",
            row.kind,
            row.target,
            "" if row.kind in ("total", "start") else f"{row.down_s:.1f}",
            row.sent,
            row.acked,
            row.stored,
            sum(row.lost.values()),
            row.lost[BROKER_CRASH],
            row.lost[BROKER_RESTART],
            row.lost[UNEXPLAINED],
            row.stored_twice,
        )
        lines.append("".join(f"{c!s:>10}" if i == 1 else f"{c!s:>8}" for i, c in enumerate(cells)))
    if report.phantoms:
        lines.append(f"stored but never produced: {report.phantoms[:20]}")
    if report.agents_unclean:
        lines.append(f"agents that did not drain: {report.agents_unclean}")
    if report.health_points != report.expected_health_points:
        lines.append(f"health points: {report.health_points}, expected {report.expected_health_points}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    duration_s: float = 40.0
    vehicles: int = 2
    workers: int = 2
    rate_per_s: float = 25.0  # records per second per agent, each a simulated 10-minute window
    faults: int = 6
    kinds: tuple[str, ...] = KINDS
    receipt_timeout_s: float | None = RECEIPT_TIMEOUT_S  # None: agents delete records on the PUBACK
    broker_lines: tuple[str, ...] = ()  # more Mosquitto settings (ChaosStack)


def run_chaos(
    home: Path, plan: ChaosPlan, *, start: Callable[[Path], StackInfo], say: Callable[[str], None] = print
) -> ChaosReport:
    """A stack in `home`, `plan.vehicles` agents (each behind its own relay) and `plan.workers`
    ingest workers; the planned faults; then every agent drains its spool and exits, and what
    InfluxDB holds is compared with what the agents produced."""
    rng = random.Random(plan.seed)
    faults = plan_faults(
        rng,
        count=plan.faults,
        duration_s=plan.duration_s,
        agents=plan.vehicles,
        workers=plan.workers,
        kinds=plan.kinds,
    )
    fleet = f"chaos{plan.seed % 100_000}"
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = ChaosStack(home / "stack", start, plan.broker_lines)
    relays = [Relay(stack.info.mqtt_port) for _ in range(plan.vehicles)]
    vehicles = [Vehicle(f"CHAOS{plan.seed % 100_000:05d}{i:03d}") for i in range(plan.vehicles)]
    logins = stack.provision(fleet, [vehicle.vin for vehicle in vehicles])
    agents = [
        AgentProcess(
            vehicle,
            login=logins[vehicle.vin],
            port=relay.port,
            fleet=fleet,
            spool=home / f"spool-{vehicle.vin}.db",
            log_dir=logs,
            rate_per_s=plan.rate_per_s,
            receipt_timeout_s=plan.receipt_timeout_s,
        )
        for vehicle, relay in zip(vehicles, relays, strict=True)
    ]
    workers = [IngestProcess(stack, fleet=fleet, name=str(i), log_dir=logs) for i in range(plan.workers)]
    actions = _fault_actions(stack, agents, workers, relays)
    influx = stack.influx()
    applied: list[tuple[float, Fault]] = []
    broker_kills: list[float] = []
    broker_restarts: list[float] = []
    skipped = 0
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_subscribed()
        for agent in agents:
            agent.start()
        started = time.monotonic()
        say(f"seed {plan.seed}: fleet {fleet}, faults {[(f.at_s, f.kind, f.target) for f in faults]}")
        pending = [(f.at_s, i, "fail", f) for i, f in enumerate(faults)]
        down: set[tuple[str, int]] = set()
        while pending:
            pending.sort(key=lambda item: (item[0], item[1]))
            at_s, index, action, fault = pending.pop(0)
            time.sleep(max(0.0, started + at_s - time.monotonic()))
            key = (fault.kind, fault.target)
            if action == "fail":
                if key in down:
                    skipped += 1
                    continue
                down.add(key)
                now = time.monotonic()
                actions[fault.kind].fail(fault.target)
                applied.append((now, fault))
                if fault.kind == "broker":
                    broker_kills.append(now)
                say(f"{now - started:6.1f} s: {fault.kind} {fault.target} down for {fault.down_s:.1f} s")
                pending.append((at_s + fault.down_s, index, "recover", fault))
            else:
                actions[fault.kind].recover(fault.target)
                if fault.kind == "broker":
                    broker_restarts.append(time.monotonic())
                down.discard(key)
        time.sleep(max(0.0, started + plan.duration_s - time.monotonic()))
        say("stopping the agents; each drains its spool first")
        unclean = [agent.vehicle.vin for agent in agents if not agent.stop_drained()]
        expected = {(v.vin, seq) for v in vehicles for seq in v.produced()}
        wait_stored(influx, fleet, expected, say)
        stored = stored_keys(influx, fleet)
        health = stored_health_points(influx, fleet)
    finally:
        shut_down(agents, workers, *relays, influx, stack)
    resubscribed = sorted(t for worker in workers for t in worker.subscribed_at)
    windows = _loss_windows(broker_kills, stack.broker_saved_at, broker_restarts, resubscribed)
    rows = [FaultRow(0.0, "start", "", 0.0)]
    for when, fault in applied:
        target = "" if fault.kind in ChaosStack.SERVICES else str(fault.target)
        rows.append(FaultRow(round(when - started, 1), fault.kind, target, fault.down_s))
    starts = [started, *(when for when, _ in applied)]
    lost, produced = _account(vehicles, stored, rows, starts, windows)
    return ChaosReport(
        plan=plan,
        rows=rows,
        lost=lost,
        stored_twice=sorted(key for key, n in stored.items() if n > 1),
        phantoms=sorted(set(stored) - produced),
        health_points=health,
        expected_health_points=len(set(stored) & produced) * len(SUBSYSTEMS),
        unstored=sum(len(v.unstored) for v in vehicles),
        agents_unclean=unclean,
        skipped_faults=skipped,
    )


class Closable(Protocol):
    def close(self) -> None: ...


def shut_down(agents: Sequence[AgentProcess], workers: Sequence[IngestProcess], *others: Closable) -> None:
    """The end of a run, however it ended: agents still running killed, workers stopped, then
    the others closed in the order given (the stack last)."""
    for agent in agents:
        if agent.alive:
            agent.kill()
    for worker in workers:
        if worker.alive:
            worker.stop()
    for other in others:
        other.close()


class FaultActions(NamedTuple):
    """How a fault of one kind fails its target and recovers it (an agent, worker or link number;
    the broker and the database are one each)."""

    fail: Callable[[int], None]
    recover: Callable[[int], None]


def _fault_actions(
    stack: ChaosStack,
    agents: Sequence[AgentProcess],
    workers: Sequence[IngestProcess],
    relays: Sequence[Relay],
) -> dict[str, FaultActions]:
    """Each of KINDS: a SIGKILL and a start again, or a network partition and its end."""
    return {
        "broker": FaultActions(lambda _: stack.kill("broker"), lambda _: stack.start_again("broker")),
        "database": FaultActions(lambda _: stack.kill("database"), lambda _: stack.start_again("database")),
        "ingest": FaultActions(lambda i: workers[i].kill(), lambda i: workers[i].start()),
        "agent": FaultActions(lambda i: agents[i].kill(), lambda i: agents[i].start()),
        "partition": FaultActions(lambda i: relays[i].partition(), lambda i: relays[i].heal()),
    }


def wait_stored(
    influx: InfluxClient,
    fleet: str,
    expected: set[tuple[str, int]],
    say: Callable[[str], None] = print,
    quiet_s: float = 20.0,
    missing_ok: int = 0,
) -> None:
    """Until InfluxDB holds every expected record but `missing_ok`, or nothing new arrived for
    `quiet_s`."""
    last, since = -1, time.monotonic()
    while True:
        have = len(set(stored_keys(influx, fleet)) & expected)
        if have >= len(expected) - missing_ok:
            return
        if have != last:
            last, since = have, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            say(f"{len(expected) - have} records not stored, and none new for {quiet_s:.0f} s")
            return
        time.sleep(0.5)


def _loss_windows(
    kills: list[float], saved_at: list[float], restarts: list[float], resubscribed: list[float]
) -> list[tuple[float, float, str]]:
    """When an acknowledgement could be lost by the broker, and why:
    - a SIGKILL loses what the broker acknowledged since it last saved (`saved_at`, one per kill);
    - after a restart, Mosquitto 2.0 routes nothing to the shared subscription of a persistent
      session restored from its file until that session subscribes again: what a gateway
      publishes in between has no subscriber (PUBACK 0x10, or success if another subscriber
      matched), and a gateway without receipts deletes it."""
    windows = [
        (saved - ACK_SLACK_S, kill + ACK_SLACK_S, BROKER_CRASH)
        for kill, saved in zip(kills, saved_at, strict=True)
    ]
    for restart in restarts:
        again = next((t for t in resubscribed if t >= restart), math.inf)
        windows.append((restart, again + ACK_SLACK_S, BROKER_RESTART))
    return windows


def _account(
    vehicles: list[Vehicle],
    stored: Counter[tuple[str, int]],
    rows: list[FaultRow],
    starts: list[float],
    windows: list[tuple[float, float, str]],
) -> tuple[list[tuple[str, int, str]], set[tuple[str, int]]]:
    lost: list[tuple[str, int, str]] = []
    produced: set[tuple[str, int]] = set()
    for vehicle in vehicles:
        for seq, (when, _) in vehicle.produced().items():
            key = (vehicle.vin, seq)
            produced.add(key)
            row = rows[max(i for i, t in enumerate(starts) if t <= when or i == 0)]
            acked_at = vehicle.acked.get(seq)
            row.sent += 1
            row.acked += acked_at is not None
            row.stored += key in stored
            row.stored_twice += stored[key] > 1
            if key in stored:
                continue
            why = next(
                (why for begin, end, why in windows if acked_at is not None and begin <= acked_at <= end),
                UNEXPLAINED,
            )
            row.lost[why] += 1
            lost.append((vehicle.vin, seq, why))
    return lost, produced


# ---------------------------------------------------------------- a file system that fills up


class MountRefused(OSError):
    """This machine does not let the rig mount a file system (it needs root or CAP_SYS_ADMIN)."""


@contextlib.contextmanager
def small_file_system(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: 16m) at `path`: a real file system that fills up, with
    ENOSPC; MountRefused where mounting is not permitted."""
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode().strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        raise MountRefused(f"cannot mount a {size} tmpfs at {path}: {detail}") from exc
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> None:
    """Write to `path` until the file system is full (ENOSPC), in ever smaller pieces."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = 1 << 20
        while size >= 512:
            try:
                os.write(fd, b"\1" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2
    finally:
        os.close(fd)


# ---------------------------------------------------------------- single faults, measured


@dataclass(frozen=True)
class LossResult:
    """Records an agent produced, how many the broker acknowledged, how many InfluxDB holds."""

    produced: int
    acked: int
    stored: int
    publish_s: float  # from the first record to the last acknowledgement
    broker_cpu_s: float  # the broker's CPU time until the fault

    @property
    def lost(self) -> int:
        return self.produced - self.stored


def measure_broker_crash(
    home: Path,
    *,
    start: Callable[[Path], StackInfo],
    ingest_online: bool,
    records: int,
    rate_per_s: float = 300.0,
    broker_lines: Sequence[str] = (),
    receipt_timeout_s: float | None = RECEIPT_TIMEOUT_S,
    say: Callable[[str], None] = print,
) -> LossResult:
    """An agent publishes `records`; as soon as the broker has acknowledged the last one (its
    PUBACK), the broker is SIGKILLed and started again. The ingest worker's persistent session
    exists (saved by the broker) throughout; with `ingest_online` False the worker is stopped
    while the agent publishes, so the records wait in the broker, and started after the restart.
    With `receipt_timeout_s` None the agent deletes each record on its PUBACK, so what the
    broker loses is lost; otherwise it keeps them until ingest's receipt."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = ChaosStack(home / "stack", start, broker_lines)
    fleet = f"crash{os.getpid() % 100_000}"
    worker = IngestProcess(stack, fleet=fleet, name="0", log_dir=logs)
    vehicle = Vehicle("CRASH00000000001")
    agent = AgentProcess(
        vehicle,
        login=stack.provision(fleet, [vehicle.vin])[vehicle.vin],
        port=stack.info.mqtt_port,
        fleet=fleet,
        spool=home / "spool.db",
        log_dir=logs,
        rate_per_s=rate_per_s,
        count=records,
        receipt_timeout_s=receipt_timeout_s,
    )
    influx = stack.influx()
    try:
        worker.start()
        worker.wait_subscribed()
        time.sleep(stack.loss_window_s)  # the broker saves the worker's session
        if not ingest_online:
            worker.stop()
        began = time.monotonic()
        agent.start()
        if receipt_timeout_s is None:  # the spool deletes each record on its PUBACK
            _wait_until(lambda: len(vehicle.acked) >= records, 120.0, "a PUBACK for every record")
        else:
            _wait_until(lambda: _pubacked(vehicle) >= records, 120.0, "a PUBACK for every record")
        last_puback = time.monotonic()
        publish_s = last_puback - began
        cpu_s = _cpu_s(stack.pid("broker"))
        stack.kill("broker")
        say(f"broker SIGKILLed {time.monotonic() - last_puback:.2f} s after the last PUBACK")
        stack.start_again("broker")
        if not ingest_online:
            worker.start()
        agent.stop_drained()
        expected = {(vehicle.vin, seq) for seq in vehicle.produced()}
        wait_stored(influx, fleet, expected, say, quiet_s=10.0)
        stored = len(set(stored_keys(influx, fleet)) & expected)
    finally:
        shut_down([agent], [worker], influx, stack)
    return LossResult(len(vehicle.produced()), len(vehicle.acked), stored, publish_s, cpu_s)


def _pubacked(vehicle: Vehicle) -> int:
    """Records the broker acknowledged, as the agent's latest counters line tells it (up to
    --status-interval-s late)."""
    with vehicle.lock:
        return int(vehicle.counters.get("published", 0))


def _wait_until(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def _cpu_s(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the child programs


class _Lines:
    """stdout for two threads: whole lines, flushed at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


class _ReportingSpool(Spool):
    """The spool, telling whom it concerns which records it deleted (receipt or PUBACK)."""

    def __init__(
        self, path: Path, *, max_bytes: int, reserve_bytes: int, on_delete: Callable[[list[int]], None]
    ) -> None:
        super().__init__(path, max_bytes=max_bytes, reserve_bytes=reserve_bytes)
        self._on_delete = on_delete

    def delete(self, ids: Any) -> int:
        wanted = list(ids)
        count = super().delete(wanted)
        self._on_delete(wanted)
        return count


def _agent_main(argv: Sequence[str]) -> int:
    faulthandler.register(signal.SIGQUIT, all_threads=True)  # stacks to the log, for a hung agent
    parser = argparse.ArgumentParser(prog="chaos_rig agent")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--vin", required=True)
    parser.add_argument("--ca-file", type=Path, required=True, help="the fleet CA to trust")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--first-seq", type=int, default=1)
    parser.add_argument("--rate", type=float, default=25.0, help="records per second")
    parser.add_argument("--count", type=int, default=0, help="stop producing after this many (0: never)")
    parser.add_argument("--alert-every", type=int, default=10)
    parser.add_argument("--max-bytes", type=int, default=64 << 20)
    parser.add_argument("--reserve-bytes", type=int, default=RESERVE_BYTES)
    parser.add_argument("--status-interval-s", type=float, default=0.5)
    parser.add_argument("--drain-s", type=float, default=60.0)
    parser.add_argument(
        "--receipt-timeout-s",
        type=float,
        help="keep each record until ingest's storage receipt; send it again after this long without",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out = _Lines()
    stop = threading.Event()
    alerts_only = threading.Event()
    paused = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def toggler(flag: threading.Event) -> Callable[[int, FrameType | None], None]:
        def toggle(signum: int, frame: FrameType | None) -> None:
            if flag.is_set():
                flag.clear()
            else:
                flag.set()

        return toggle

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, toggler(alerts_only))
    signal.signal(signal.SIGUSR2, toggler(paused))
    seqs: dict[int, int] = {}  # spool id -> seq
    lock = threading.Lock()

    def on_delete(ids: list[int]) -> None:
        with lock:
            done = [seqs.pop(i) for i in ids if i in seqs]
        if done:
            out.say("acked " + " ".join(map(str, done)))

    spool = _ReportingSpool(
        args.spool, max_bytes=args.max_bytes, reserve_bytes=args.reserve_bytes, on_delete=on_delete
    )
    with lock:  # what an earlier run of this agent left spooled
        after = 0
        while batch := spool.peek(500, after_id=after):
            seqs.update((r.id, decode_record(r.payload).seq) for r in batch)
            after = batch[-1].id
    # The [broker] table of a provisioned gateway's configuration (with a short keepalive), wired
    # by the gateway's own assembly, with timeouts short enough for the faults to heal in seconds.
    broker = BrokerConfig(
        host=args.host,
        port=args.port,
        keepalive_s=2,
        ca_file=args.ca_file,
        username=args.username,
        password_file=args.password_file,
        receipt_timeout_s=args.receipt_timeout_s,
    )
    timing = LinkTiming(
        connect_timeout_s=2.0,
        ack_timeout_s=5.0,
        reconnect_backoff=Backoff(base_s=0.1, cap_s=2.0),
        retry_backoff=Backoff(base_s=0.1, cap_s=2.0),
    )
    uplink, forwarder = open_link(broker, fleet=args.fleet, vin=args.vin, spool=spool, timing=timing)
    seq = args.first_seq
    produced = 0
    next_at = next_status = time.monotonic()

    def report() -> dict[str, Any]:
        counters = forwarder.counters()
        uplink.publish_status({"records": produced, "counters": counters})
        out.say("counters " + json.dumps({**counters, "disk_full": spool.disk_full}))
        return counters

    while not stop.is_set():
        now = time.monotonic()
        if now >= next_status:
            report()
            next_status = now + args.status_interval_s
        if paused.is_set():
            next_at = max(next_at, now)  # no catching up afterwards
            stop.wait(0.05)
            continue
        if now < next_at:
            stop.wait(min(next_at, next_status) - now)
            continue
        alert = alerts_only.is_set() or seq % args.alert_every == 0
        made_at = time.monotonic()
        record = chaos_record(args.vin, seq, alert)
        with lock:
            spool_id = forwarder.submit(encode_record(record), priority_for(record.trigger))
            if spool_id is not None:
                seqs[spool_id] = seq
        # Stamped by the agent: the rig reads the line later, later still under load.
        # time.monotonic() is one clock for all processes on Linux.
        verdict = "spooled" if spool_id is not None else "unstored"
        out.say(f"{verdict} {seq} {'A' if alert else 'H'} {made_at:.6f}")
        seq += 1
        produced += 1
        next_at = math.inf if produced == args.count else next_at + 1.0 / args.rate
    with contextlib.suppress(FlushTimeout):
        forwarder.flush(args.drain_s)
    out.say("final " + json.dumps(report()))
    forwarder.close()
    uplink.close()
    spool.close()
    return 0


def _ingest_main(argv: Sequence[str]) -> int:
    from prognos.cloud.ingest.worker import IngestWorker, tune_garbage_collection

    parser = argparse.ArgumentParser(prog="chaos_rig ingest")
    parser.add_argument(
        "--home", type=Path, required=True, help="the stack's home: its addresses and the ingest logins"
    )
    parser.add_argument("--database", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--client-id", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    class Worker(IngestWorker):
        def _on_subscribe(
            self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
        ) -> None:
            super()._on_subscribe(client, userdata, mid, reason_codes, properties)
            print("subscribed", flush=True)  # when the group gets this worker's messages again

    info = load_stack(args.home)
    tune_garbage_collection()  # as `prognos cloud ingest` does
    worker = Worker(
        host=info.mqtt_host,
        port=info.mqtt_port,
        auth=info.broker_auth("ingest"),
        influx=stack_influx(info, "ingest"),
        database=args.database,
        group=args.group,
        fleet=args.fleet,
        client_id=args.client_id,
        batch_size=200,
        metrics_interval_s=2.0,
    )
    worker.start()
    stats = worker.run(stop)
    print("stats " + json.dumps(dataclasses.asdict(stats)), flush=True)
    return 0


if __name__ == "__main__":
    program, *rest = sys.argv[1:] or ["--help"]
    if program == "agent":
        sys.exit(_agent_main(rest))
    if program == "ingest":
        sys.exit(_ingest_main(rest))
    sys.exit("usage: python -m tests.support.chaos_rig agent|ingest ARGS")
