"""The gateway service end to end against the real broker: a recorded CAN log replayed through
the real Hyundai DBC comes out as records on the broker, and signed model updates pushed over
MQTT are installed (or refused) while the gateway runs on a live bus. Without a broker: how
build_gateway wires a gateway.toml, and the agent running on the parts it is given."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tty
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import can
import cantools
import cbor2
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.catalog import default_catalog, load_catalog
from prognos.cloud.model_push import push_bundle
from prognos.cloud.storage.client import InfluxClient
from prognos.config import GatewayConfig, parse_gateway_config
from prognos.edge.assembly import SEQS_PER_RUN, build_gateway, make_assessor
from prognos.edge.buffers import Sample
from prognos.edge.forwarder import AckOutcome, Forwarder, LinkListener
from prognos.edge.gateway import Gateway, GatewayStats
from prognos.edge.ota import ModelStore, sign_bundle
from prognos.edge.sources.can_bus import CanBusSource
from prognos.edge.sources.replay import ReplaySource
from prognos.edge.sources.uart import UartSource
from prognos.edge.spool import Spool
from prognos.edge.uplink import MqttUplink
from prognos.errors import ConfigError
from prognos.hil.scenario import BENCH_CATALOG, BENCH_DBC
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, Trigger, decode_record
from prognos.topics import diag_topic, status_topic, stored_topic
from tests.integration.test_slice import ingest_running
from tests.support.helpers import wait_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "prognos" / "models" / "artifacts"
PSI_KPA = 6.894757293168361
T0 = 1_780_000_200.0  # a multiple of 600 s: windows start with the log


@pytest.fixture
def hyundai_dbc(shared_data: Path) -> Path:
    path = shared_data / "dbc" / "hyundai_2015_ccan.dbc"
    if not path.is_file():
        pytest.skip(f"the Hyundai DBC is not in the shared data ({path})")
    return path


class Listener:
    """A subscriber to one vehicle's diag and status topics."""

    def __init__(self, stack: StackInfo, fleet: str, vin: str) -> None:
        self.records: list[DiagnosticRecord] = []
        self.status: dict[str, object] = {}
        self.statuses: list[dict[str, object]] = []  # every status message, in order
        self._diag, self._status = diag_topic(fleet, vin), status_topic(fleet, vin)
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.connect(stack.mqtt_host, stack.mqtt_port)
        self._client.subscribe([(self._diag, 1), (self._status, 1)])
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._diag:
            self.records.append(decode_record(message.payload))
        else:
            self.status = json.loads(message.payload)
            self.statuses.append(self.status)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def vin() -> str:
    return f"GW{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture
def listener(stack: StackInfo, fleet: str, vin: str) -> Iterator[Listener]:
    subscriber = Listener(stack, fleet, vin)
    yield subscriber
    subscriber.close()


def config_text(stack: StackInfo, tmp_path: Path, fleet: str, vin: str, source: str, extra: str = "") -> str:
    return f"""
[gateway]
fleet = "{fleet}"
vin = "{vin}"
{extra}

[broker]
host = "{stack.mqtt_host}"
port = {stack.mqtt_port}

[spool]
path = "{tmp_path / "spool.db"}"

[models]
dir = "{tmp_path / "models"}"

{source}
"""


def tpms_frame(
    db: cantools.database.Database, t: float, psi: tuple[float, float, float, float]
) -> can.Message:
    message = db.get_message_by_name("TPMS11")
    values = {signal.name: 0 for signal in message.signals}
    values.update(dict(zip(("PRESSURE_FL", "PRESSURE_FR", "PRESSURE_RL", "PRESSURE_RR"), psi, strict=True)))
    return can.Message(
        timestamp=t, arbitration_id=message.frame_id, is_extended_id=False, data=message.encode(values)
    )


def test_a_replayed_log_becomes_records_on_the_broker(
    stack: StackInfo, tmp_path: Path, fleet: str, vin: str, listener: Listener, hyundai_dbc: Path
) -> None:
    db = cantools.database.load_file(hyundai_dbc, strict=False)
    log_path = tmp_path / "trace.log"
    frames = 0
    with can.Logger(str(log_path)) as writer:
        for i in range(3 * 360):  # three hours at 0.1 Hz; the front-left tire goes flat in hour three
            t = T0 + 10.0 * i
            writer.on_message_received(tpms_frame(db, t, (25.0 if i >= 720 else 35.0, 35.0, 35.0, 35.0)))
            writer.on_message_received(can.Message(timestamp=t, arbitration_id=0x7FF, is_extended_id=False))
            frames += 2
    source = f'[[source]]\nkind = "replay"\npath = "{log_path}"\ndbc = "{hyundai_dbc}"'
    config = parse_gateway_config(config_text(stack, tmp_path, fleet, vin, source))

    stats = build_gateway(config).run(threading.Event())

    assert stats.windows == 18
    wait_for(lambda: len(listener.records) == stats.records, what="every record on the broker")
    records = sorted(listener.records, key=lambda r: r.seq)
    assert [r.seq for r in records] == list(range(1, stats.records + 1))
    assert {(r.model_id, r.model_version) for r in records} == {("prognos-default", load_version())}
    assert records[0].window_start_ms == T0 * 1000 and records[0].trigger is Trigger.HEARTBEAT
    alerts = [r for r in records if r.trigger is Trigger.ANOMALY]
    assert alerts and all(r.window_start_ms >= (T0 + 7200) * 1000 for r in alerts)
    assert any(f.code == "tires.pressure_loss" for f in alerts[0].faults)
    assert stats.counters["frames_seen"] == frames and stats.counters["frames_unknown"] == frames // 2
    assert records[-1].counters["frames_seen"] <= frames
    wait_for(lambda: listener.status.get("state") == "offline", what="the offline status after the run")
    assert gateway_spool_is_empty(tmp_path)
    # The final status goes out after the last spool flush: everything was delivered, so it says 0.
    final = [status for status in listener.statuses if status.get("state") == "online"][-1]
    counters = final["counters"]
    assert final["records"] == stats.records and isinstance(counters, dict) and counters["spool_depth"] == 0
    assert stats.counters["spool_depth"] == 0


def write_tpms_log(path: Path, dbc: Path, first_s: float, hours: int) -> None:
    db = cantools.database.load_file(dbc, strict=False)
    with can.Logger(str(path)) as writer:
        for i in range(hours * 360):
            writer.on_message_received(tpms_frame(db, first_s + 10.0 * i, (35.0, 35.0, 35.0, 35.0)))


def test_with_receipts_records_stay_spooled_until_ingest_stored_them_and_seqs_go_on(
    stack: StackInfo,
    tmp_path: Path,
    fleet: str,
    vin: str,
    listener: Listener,
    hyundai_dbc: Path,
    influx: InfluxClient,
    database: str,
) -> None:
    """The broker's PUBACK does not empty the spool: with no ingest worker the records stay, and
    go out again on the next start, when ingest stores them and its receipts delete them. The
    second start numbers its records after the first's."""
    runs = []
    for hour in (0, 1):
        log_path = tmp_path / f"hour{hour}.log"
        write_tpms_log(log_path, hyundai_dbc, T0 + 3600 * hour, 1)
        source = f'[[source]]\nkind = "replay"\npath = "{log_path}"\ndbc = "{hyundai_dbc}"'
        text = config_text(stack, tmp_path, fleet, vin, source)
        broker_port = f"port = {stack.mqtt_port}\n"
        runs.append(parse_gateway_config(text.replace(broker_port, broker_port + "receipt_timeout_s = 2\n")))

    first = build_gateway(runs[0])
    first_stats = first.run(threading.Event())  # no ingest: the receipts never come
    assert first_stats.records > 0 and first.spooled == first_stats.records
    assert len({r.seq for r in listener.records}) == first_stats.records, "the broker had them all"
    assert first_stats.counters["receipted"] == 0 and first_stats.counters["published"] >= first_stats.records

    with ingest_running(stack, influx, database, fleet):
        second = build_gateway(runs[1])
        second_stats = second.run(threading.Event())
    assert second.spooled == 0
    assert second_stats.counters["receipted"] == first_stats.records + second_stats.records
    series = influx.query("SELECT seq FROM diag WHERE vin = $vin", database=database, params={"vin": vin})
    stored = sorted(int(row["seq"]) for s in series for row in s.rows())
    second_first = 1 + SEQS_PER_RUN
    assert stored == [
        *range(1, first_stats.records + 1),
        *range(second_first, second_first + second_stats.records),
    ]


def gateway_spool_is_empty(tmp_path: Path) -> bool:
    from prognos.edge.spool import Spool

    with Spool(tmp_path / "spool.db", max_bytes=1 << 20) as spool:
        return spool.depth == 0


def load_version() -> str:
    return str(json.loads((ARTIFACTS / "bundle.json").read_text())["version"])


def bundle_copy(tmp_path: Path, version: str) -> Path:
    directory = tmp_path / f"bundle-{version}"
    shutil.copytree(ARTIFACTS, directory)
    manifest = json.loads((directory / "bundle.json").read_text())
    manifest["version"] = version
    (directory / "bundle.json").write_text(json.dumps(manifest))
    return directory


def test_signed_updates_are_installed_and_bad_ones_refused_while_running(
    stack: StackInfo, tmp_path: Path, fleet: str, vin: str, listener: Listener, hyundai_dbc: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "fleet.pub").write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    channel = f"gw-{uuid.uuid4().hex[:12]}"
    source = f'[[source]]\nkind = "can"\ninterface = "virtual"\nchannel = "{channel}"\ndbc = "{hyundai_dbc}"'
    text = config_text(
        stack, tmp_path, fleet, vin, source, extra="window_s = 1\nheartbeat_s = 1\nstatus_interval_s = 1"
    ).replace("[models]\n", f'[models]\ntrusted_keys = ["{tmp_path / "fleet.pub"}"]\n')
    gateway = build_gateway(parse_gateway_config(text))
    stop = threading.Event()
    runner = threading.Thread(target=gateway.run, args=(stop,))
    runner.start()
    db = cantools.database.load_file(hyundai_dbc, strict=False)
    bus = can.Bus(interface="virtual", channel=channel)
    sending = threading.Event()

    def send() -> None:
        while not sending.is_set():
            bus.send(tpms_frame(db, time.time(), (35.0, 35.0, 35.0, 35.0)))
            sending.wait(0.05)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_for(lambda: listener.records, what="a first record")
        assert listener.records[0].model_version == load_version()

        signed = sign_bundle(bundle_copy(tmp_path, "2099.01.01"), key)
        push_bundle(host=stack.mqtt_host, port=stack.mqtt_port, fleet=fleet, vins=[vin], payload=signed)
        wait_for(
            lambda: listener.status.get("model_version") == "2099.01.01", what="the update in the status"
        )
        wait_for(
            lambda: listener.records[-1].model_version == "2099.01.01", what="records from the new models"
        )

        envelope = cbor2.loads(sign_bundle(bundle_copy(tmp_path, "2099.02.02"), key))
        envelope[2] = envelope[2][:-1] + bytes([envelope[2][-1] ^ 1])
        push_bundle(
            host=stack.mqtt_host, port=stack.mqtt_port, fleet=fleet, vins=[vin], payload=cbor2.dumps(envelope)
        )
        wait_for(lambda: listener.status.get("model_updates_rejected") == 1, what="the refusal in the status")
        assert "bad signature" in str(listener.status["last_model_error"])
        assert listener.status["model_version"] == "2099.01.01"
        count = len(listener.records)
        wait_for(lambda: len(listener.records) > count + 1, what="records after the refusal")
        assert listener.records[-1].model_version == "2099.01.01"
    finally:
        sending.set()
        sender.join()
        bus.shutdown()
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert gateway.spooled == 0


def test_edge_run_names_the_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nfleet = "f"\nvin = "V1"\nwindow = 5\n')
    result = subprocess.run(
        [sys.executable, "-m", "prognos.cli", "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown key 'window' in [gateway]" in result.stderr
    assert "Traceback" not in result.stderr


# --- assembly and the agent's parts, without a broker ------------------------------------------

OFFLINE_VIN = "UNIT0000000000001"


def unused_port() -> int:
    """A local port nothing listens on: the uplink keeps trying, as with a broker down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_config(tmp_path: Path, sources: str, *, broker: str = "", models: bool = True) -> GatewayConfig:
    models_table = f'[models]\ndir = "{tmp_path / "models"}"\n' if models else ""
    return parse_gateway_config(f"""
[gateway]
fleet = "unit"
vin = "{OFFLINE_VIN}"
catalog = "{BENCH_CATALOG}"

[broker]
host = "127.0.0.1"
port = {unused_port()}
{broker}
[spool]
path = "{tmp_path / "spool.db"}"

{models_table}
{sources}
""")


def closed(agent: Gateway) -> GatewayStats:
    """Close every part of an agent that is not to run: run() with the stop already set."""
    stop = threading.Event()
    stop.set()
    return agent.run(stop)


def test_build_gateway_wires_the_parts_a_config_names(tmp_path: Path) -> None:
    log_path = tmp_path / "drive.log"
    log_path.write_text("")
    channel = f"unit-{uuid.uuid4().hex[:12]}"
    sources = (
        f'[[source]]\nkind = "replay"\npath = "{log_path}"\ndbc = "{BENCH_DBC}"\n\n'
        f'[[source]]\nkind = "can"\ninterface = "virtual"\nchannel = "{channel}"\ndbc = "{BENCH_DBC}"\n'
    )
    config = offline_config(tmp_path, sources, broker="receipt_timeout_s = 30\n")
    agent = build_gateway(config)
    try:
        replay, bus = agent._sources
        assert isinstance(replay, ReplaySource) and replay.path == log_path
        assert isinstance(bus, CanBusSource) and bus.dated_by is None
        assert (bus.interface, bus.channel) == ("virtual", channel)
        assert agent._live, "a live source among them: the clock moves windows on"
        assert set(agent.catalog.keys()) == set(load_catalog(BENCH_CATALOG).keys())
        # The model store was seeded with the shipped bundle, and the assessor runs it.
        assert (agent.assessor.model_id, agent.assessor.model_version) == ("prognos-default", load_version())
        assert ModelStore(tmp_path / "models").current() is not None
        assert agent._models is not None and agent._models.trusted == []
        uplink = agent._uplink
        assert isinstance(uplink, MqttUplink)
        assert uplink._on_model_update == agent._models.inbox.put, "updates reach the agent's inbox"
        # Storage receipts: the uplink listens for them and the forwarder keeps records until them.
        assert uplink._stored_topic == stored_topic("unit", OFFLINE_VIN)
        assert agent._forwarder._receipt_timeout_s == 30.0
        record = agent.assessor.window(0, 600_000, {}, {})
        assert record is not None and record.seq == 1
    finally:
        closed(agent)
    assert replay.finished and bus.finished and not uplink._thread.is_alive()

    again = build_gateway(config)  # a second start of the same gateway
    try:
        record = again.assessor.window(0, 600_000, {}, {})
        assert record is not None and record.seq == 1 + SEQS_PER_RUN, "each start claims its own seqs"
    finally:
        closed(again)


def test_without_models_dir_or_receipts_the_rules_run_and_the_puback_settles(tmp_path: Path) -> None:
    log_path = tmp_path / "drive.log"
    log_path.write_text("")
    sources = f'[[source]]\nkind = "replay"\npath = "{log_path}"\ndbc = "{BENCH_DBC}"\n'
    agent = build_gateway(offline_config(tmp_path, sources, models=False))
    try:
        assert agent.assessor.model_id == "rules" and agent._models is None
        assert not agent._live, "only a recording: its samples alone move windows on"
        assert isinstance(agent._uplink, MqttUplink) and agent._uplink._stored_topic is None
        assert agent._uplink._on_model_update is None
        assert agent._forwarder._receipt_timeout_s is None
    finally:
        closed(agent)


@pytest.mark.parametrize("failing", ["a source", "the broker login"])
def test_build_gateway_leaves_nothing_open_when_a_part_fails(tmp_path: Path, failing: str) -> None:
    controller, device = os.openpty()
    try:
        tty.setraw(device)
        port = os.ttyname(device)
        sources = f'[[source]]\nkind = "uart"\nport = "{port}"\n'
        broker = ""
        if failing == "a source":  # after the UART was opened
            sources += (
                f'\n[[source]]\nkind = "replay"\npath = "{tmp_path / "absent.log"}"\ndbc = "{BENCH_DBC}"\n'
            )
            expected = "cannot read replay log"
        else:  # after the sources and the spool were opened
            broker = f'password_file = "{tmp_path / "absent"}"\n'
            expected = "password_file: cannot read"
        with pytest.raises(ConfigError, match=expected):
            build_gateway(offline_config(tmp_path, sources, broker=broker, models=False))
        # The UART is opened exclusively: it opens again only if the failed build closed it.
        UartSource(port=port, catalog=load_catalog(BENCH_CATALOG)).close()
    finally:
        os.close(controller)
        os.close(device)


class RecordingLink:
    """The uplink's part a forwarder and an agent use, in memory: each record is acknowledged as
    it is sent, and every record and status is kept."""

    def __init__(self) -> None:
        self.session: int | None = 1
        self.reconnects = 0
        self.records: list[DiagnosticRecord] = []
        self.statuses: list[dict[str, object]] = []
        self.closed = False
        self._listener: LinkListener | None = None

    def set_listener(self, listener: LinkListener | None) -> None:
        self._listener = listener

    def send_record(self, payload: bytes) -> tuple[int, int]:
        assert self._listener is not None
        self.records.append(decode_record(payload))
        self._listener.acknowledged(1, len(self.records), AckOutcome.ACCEPTED, "")
        return 1, len(self.records)

    def drop_connection(self, reason: str) -> None:
        raise AssertionError(f"nothing should drop the connection: {reason}")

    def publish_status(self, status: dict[str, object]) -> None:
        self.statuses.append(status)

    def close(self) -> None:
        self.closed = True


class RecordedDrive:
    """A recording of samples (the agent's SampleSource interface, in memory): a few per read,
    then the end."""

    live = False

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = list(samples)
        self._read = 0
        self.finished = False
        self.closed = False

    def read(self, timeout_s: float | None = None) -> list[Sample]:
        batch, self._samples = self._samples[:7], self._samples[7:]
        self._read += len(batch)
        self.finished = not self._samples
        return batch

    def counters(self) -> dict[str, int]:
        return {"frames_seen": self._read}

    def close(self) -> None:
        self.closed = self.finished = True


def test_the_agent_runs_on_the_parts_it_is_given(tmp_path: Path) -> None:
    samples = [Sample("Vehicle.Speed", T0 + 10.0 * i, 50.0) for i in range(3 * 360)]  # three hours
    source = RecordedDrive(samples)
    link = RecordingLink()
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20)
    agent = Gateway(
        sources=[source],
        assessor=make_assessor(vin=OFFLINE_VIN, heartbeat_s=3600.0),
        spool=spool,
        forwarder=Forwarder(spool=spool, link=link),
        link=link,
        catalog=default_catalog(),
        window_s=600.0,
        status_interval_s=60.0,
    )
    stats = agent.run(threading.Event())  # a recording: it ends at the recording's end

    assert (stats.windows, stats.samples) == (18, len(samples))
    assert stats.records >= 3, "a heartbeat an hour at least"
    assert [r.seq for r in link.records] == list(range(1, stats.records + 1))
    assert link.records[0].window_start_ms == T0 * 1000 and link.records[0].trigger is Trigger.HEARTBEAT
    assert link.records[-1].counters["frames_seen"] <= len(samples)
    final = link.statuses[-1]  # after the last flush
    counters = final["counters"]
    assert isinstance(counters, dict) and counters["frames_seen"] == len(samples)
    assert (
        final["records"] == stats.records
        and counters["spool_depth"] == 0
        and counters["published"] == stats.records
    )
    assert agent.spooled == 0
    assert source.closed and link.closed, "the agent closes its parts as it ends"
