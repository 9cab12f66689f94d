"""The secure stack against the real Mosquitto and InfluxDB: TLS, per-vehicle logins and ACL,
revocation, least-privilege database users (docs/security.md)."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.cloud.ingest.worker import IngestWorker
from prognos.cloud.model_push import push_bundle
from prognos.cloud.storage.client import AccessDeniedError, InfluxClient
from prognos.config import RECEIPT_TIMEOUT_S, parse_gateway_config
from prognos.edge.assembly import open_link
from prognos.edge.spool import Priority, Spool
from prognos.errors import ConfigError, MissingDependencyError, RejectedError
from prognos.ops.access import stack_influx
from prognos.ops.identities import acl_text, mosquitto_hash
from prognos.ops.stack import stack_down, stack_up
from prognos.ops.state import StackInfo
from prognos.receipt import decode_receipt
from prognos.record import DiagnosticRecord, encode_record
from prognos.security import BrokerAuth, Credentials
from prognos.topics import diag_topic, model_topic, stored_topic
from tests.support.helpers import wait_for

FLEET = "secfleet"
DATABASE = "prognos"
DBC = Path(__file__).resolve().parents[2] / "prognos" / "hil" / "dbc" / "prognos_sim.dbc"
VINS = ("SEC00000000000001", "SEC00000000000002", "SEC00000000000003")


def prognos(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROGNOS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "prognos.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    home = tmp_path_factory.mktemp("secure-stack")
    try:
        info, _ = stack_up(home)
    except MissingDependencyError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield info
    stack_down(home)


@pytest.fixture(scope="module")
def provisioned(secure_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("provisioned")
    result = prognos(
        "fleet", "provision", *VINS, "--fleet", FLEET, "--out", str(out), home=Path(secure_stack.home)
    )
    assert result.returncode == 0, result.stderr
    return out


class Client:
    """A bare MQTT 5 client that records what happens to it."""

    def __init__(self, stack: StackInfo, auth: BrokerAuth, client_id: str = "") -> None:
        self.connack: Any = None
        self.pubacks: dict[int, Any] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self.disconnected = threading.Event()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            protocol=MQTTProtocolVersion.MQTTv5,
            client_id=client_id,
            reconnect_on_failure=False,
        )
        auth.apply(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.client.connect(stack.mqtt_host, stack.mqtt_port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = reason
        self.connected.set()

    def wait_connack(self) -> Any:
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), timeout_s=10, what="CONNACK")
        return self.connack

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        return wait_for(lambda: self.pubacks.get(info.mid), timeout_s=10, what=f"PUBACK on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def vehicle_auth(provisioned: Path, vin: str) -> BrokerAuth:
    return BrokerAuth(
        str(provisioned / vin / "ca.pem"),
        Credentials(vin, (provisioned / vin / "password").read_text().strip()),
    )


def record(vin: str, seq: int) -> DiagnosticRecord:
    end = 1_780_000_000_000 + seq * 600_000
    return DiagnosticRecord(
        vin=vin, seq=seq, window_start_ms=end - 600_000, window_end_ms=end, model_id="m", model_version="1"
    )


def test_provisioning_hands_out_a_working_gateway_broker_table(
    secure_stack: StackInfo, provisioned: Path, tmp_path: Path
) -> None:
    vin = VINS[0]
    files = provisioned / vin
    assert stat.S_IMODE((files / "password").stat().st_mode) == 0o600, "the password is for its owner only"
    assert (files / "ca.pem").read_bytes() == Path(str(secure_stack.ca_file)).read_bytes()
    (tmp_path / "trace.log").write_text("")
    config = parse_gateway_config(
        f'[gateway]\nfleet = "{FLEET}"\nvin = "{vin}"\n\n{(files / "broker.toml").read_text()}\n'
        f'[spool]\npath = "{tmp_path / "spool.db"}"\n\n'
        f'[[source]]\nkind = "replay"\npath = "{tmp_path / "trace.log"}"\ndbc = "{DBC}"\n'
    )
    assert config.broker.ca_file is not None and config.broker.username == vin
    assert config.broker.receipt_timeout_s == RECEIPT_TIMEOUT_S, "provisioned gateways wait for receipts"

    influx = stack_influx(secure_stack, "ingest")
    worker = IngestWorker(
        host=secure_stack.mqtt_host,
        port=secure_stack.mqtt_port,
        auth=secure_stack.broker_auth("ingest"),
        influx=influx,
        database=DATABASE,
        group="sectest",
        fleet=FLEET,
        batch_size=10,
    )
    stop = threading.Event()
    worker.start()
    thread = threading.Thread(target=worker.run, args=(stop,), name="ingest-worker")
    thread.start()
    spool = Spool(config.spool.path, max_bytes=config.spool.max_bytes)
    # Wired from the provisioned table as every gateway's are: TLS, the login, storage receipts.
    uplink, forwarder = open_link(config.broker, fleet=FLEET, vin=vin, spool=spool)
    # The vehicle hears of its own stored records; another vehicle, listening to every
    # vehicle's receipts, hears nothing (the ACL lets each read only its own).
    listeners = [Client(secure_stack, vehicle_auth(provisioned, v)) for v in (vin, VINS[1])]
    try:
        for listener in listeners:
            assert listener.wait_connack() == 0
            listener.client.subscribe(f"prognos/v1/{FLEET}/+/stored", qos=1)
        worker.wait_subscribed(15)
        time.sleep(0.3)
        forwarder.submit(encode_record(record(vin, 1)), Priority.HIGH)
        forwarder.flush(15)  # the spool empties on the receipt, which the gateway may read
        assert forwarder.receipted == 1 and worker.stats.records_written == 1
        wait_for(lambda: listeners[0].messages, what="the vehicle's receipt")
        time.sleep(0.3)
        assert [decode_receipt(m.payload) for m in listeners[0].messages] == [[1]]
        assert [m.topic for m in listeners[0].messages] == [stored_topic(FLEET, vin)]
        assert listeners[1].messages == []
    finally:
        for listener in listeners:
            listener.close()
        forwarder.close()
        uplink.close()
        spool.close()
        stop.set()
        thread.join(30)
        influx.close()

    reader = stack_influx(secure_stack, "dashboard")
    rows = reader.query("SELECT seq FROM diag WHERE vin = $vin", database=DATABASE, params={"vin": vin})
    assert [row["seq"] for s in rows for row in s.rows()] == [1]
    with pytest.raises(AccessDeniedError):
        reader.write(DATABASE, ["diag,fleet=x,vin=X seq=9i 1000"])
    with pytest.raises(AccessDeniedError):
        stack_influx(secure_stack, "ingest").query("SELECT * FROM diag", database=DATABASE)


def test_a_vehicle_publishing_as_another_vin_is_refused(secure_stack: StackInfo, provisioned: Path) -> None:
    observer = Client(secure_stack, secure_stack.broker_auth("observer"))
    own, spoofer = VINS[1], VINS[0]
    assert observer.wait_connack() == 0
    observer.client.subscribe(f"prognos/v1/{FLEET}/+/diag", qos=1)
    time.sleep(0.3)
    gateway = Client(secure_stack, vehicle_auth(provisioned, spoofer))
    try:
        assert gateway.wait_connack() == 0
        assert gateway.publish(diag_topic(FLEET, own), b"spoofed").getName() == "Not authorized"
        assert gateway.publish(diag_topic(FLEET, spoofer), b"own").getName() == "Success"
        assert gateway.publish(model_topic(FLEET, spoofer), b"a model").getName() == "Not authorized"
        wait_for(lambda: observer.messages, what="the vehicle's own record")
        time.sleep(0.3)
        assert [m.topic for m in observer.messages] == [diag_topic(FLEET, spoofer)]
    finally:
        gateway.close()
        observer.close()


@pytest.mark.parametrize(
    "who",
    ["wrong password", "unknown user", "anonymous", "plain TCP", "untrusted certificate"],
)
def test_unknown_clients_are_refused(secure_stack: StackInfo, provisioned: Path, who: str) -> None:
    real = vehicle_auth(provisioned, VINS[0])
    assert real.credentials is not None
    auth = {
        "wrong password": BrokerAuth(real.ca_file, Credentials(VINS[0], "not-the-password")),
        "unknown user": BrokerAuth(real.ca_file, Credentials("WHOAMI", "whatever")),
        "anonymous": BrokerAuth(real.ca_file, None),
        "plain TCP": BrokerAuth(None, real.credentials),
    }.get(who)
    if who == "untrusted certificate":  # the system's CAs, not the fleet CA: the server is not trusted
        with pytest.raises(ssl.SSLCertVerificationError):
            Client(secure_stack, BrokerAuth(ssl.get_default_verify_paths().cafile, real.credentials))
        return
    assert auth is not None
    client = Client(secure_stack, auth)
    try:
        answer = client.wait_connack()
        assert answer is None or answer.is_failure, f"{who}: the broker let it in ({answer})"
    finally:
        client.close()


def test_a_vehicle_receives_only_its_own_model_updates(secure_stack: StackInfo, provisioned: Path) -> None:
    vin, other = VINS[2], VINS[1]
    gateway = Client(secure_stack, vehicle_auth(provisioned, vin))
    try:
        assert gateway.wait_connack() == 0
        gateway.client.subscribe(f"prognos/v1/{FLEET}/+/model", qos=1)
        time.sleep(0.3)
        push_bundle(
            host=secure_stack.mqtt_host,
            port=secure_stack.mqtt_port,
            auth=secure_stack.broker_auth("operator"),
            fleet=FLEET,
            vins=[other, vin],
            payload=b"signed bundle",
        )
        wait_for(lambda: gateway.messages, what="the vehicle's own update")
        time.sleep(0.3)
        assert [m.topic for m in gateway.messages] == [model_topic(FLEET, vin)]
    finally:
        gateway.close()
    with pytest.raises(RejectedError, match="Not authorized"):  # a vehicle cannot push models
        push_bundle(
            host=secure_stack.mqtt_host,
            port=secure_stack.mqtt_port,
            auth=vehicle_auth(provisioned, vin),
            fleet=FLEET,
            vins=[other],
            payload=b"malicious",
        )


def test_a_revoked_vehicle_is_cut_off(secure_stack: StackInfo, tmp_path: Path) -> None:
    vin = "SEC0000000000REV1"
    home = Path(secure_stack.home)
    assert (
        prognos("fleet", "provision", vin, "--fleet", FLEET, "--out", str(tmp_path), home=home).returncode
        == 0
    )
    auth = vehicle_auth(tmp_path, vin)
    gateway = Client(secure_stack, auth)
    assert gateway.wait_connack() == 0
    try:
        revoked = prognos("fleet", "revoke", vin, "NOSUCHVIN", home=home)
        assert (
            revoked.returncode == 1
            and f"{vin}: revoked" in revoked.stdout
            and "NOSUCHVIN: unknown" in revoked.stdout
        )
        assert gateway.disconnected.wait(10), "the broker must close a revoked vehicle's connection"
    finally:
        gateway.close()
    again = Client(secure_stack, auth)
    try:
        answer = again.wait_connack()
        assert answer is None or answer.is_failure
    finally:
        again.close()


def test_database_roles_have_least_privilege(secure_stack: StackInfo) -> None:
    line = ["probe,fleet=f,vin=V value=1 1000"]
    ingest, dashboard, analytics = (
        stack_influx(secure_stack, role) for role in ("ingest", "dashboard", "analytics")
    )
    ingest.write(DATABASE, line)
    with pytest.raises(AccessDeniedError):
        ingest.query("SELECT * FROM probe", database=DATABASE)
    assert dashboard.query("SELECT value FROM probe", database=DATABASE)[0].values == [[1000, 1.0]]
    with pytest.raises(AccessDeniedError):
        dashboard.write(DATABASE, line)
    analytics.write(DATABASE, ["probe,fleet=f,vin=V value=2 2000"])
    assert len(analytics.query("SELECT value FROM probe", database=DATABASE)[0].values) == 2
    for client in (ingest, dashboard, analytics):
        with pytest.raises(AccessDeniedError):
            client.query(
                "CREATE USER \"intruder\" WITH PASSWORD 'x' WITH ALL PRIVILEGES", database=None, method="POST"
            )
    with pytest.raises(AccessDeniedError):  # no login at all
        InfluxClient(secure_stack.influx_url).query("SHOW DATABASES", database=None)
    with pytest.raises(ConfigError, match="may not create it"):
        ingest.ensure_database("not_prepared")


def test_the_insecure_stack_says_so_loudly(tmp_path: Path) -> None:
    home = tmp_path / "dev"
    try:
        result = prognos("stack", "up", "--insecure", home=home)
        assert result.returncode == 0, result.stderr
        assert "WARNING: insecure stack" in result.stderr
        assert "NO TLS, NO LOGIN" in result.stdout
        status = prognos("stack", "status", home=home)
        assert "mqtt://" in status.stdout
    finally:
        prognos("stack", "down", home=home)


def test_gateway_broker_files_are_checked(tmp_path: Path) -> None:
    (tmp_path / "trace.log").write_text("")
    base = (
        '[gateway]\nfleet = "f"\nvin = "V1"\n[spool]\npath = "spool.db"\n'
        f'[[source]]\nkind = "replay"\npath = "trace.log"\ndbc = "{DBC}"\n'
    )
    path = tmp_path / "gateway.toml"
    path.write_text(base + '[broker]\npassword_file = "missing"\n')
    from prognos.config import load_gateway_config

    with pytest.raises(ConfigError, match=r"\[broker\] password_file: cannot read"):
        load_gateway_config(path).broker.auth()
    (tmp_path / "password").write_text("\n")
    path.write_text(base + '[broker]\npassword_file = "password"\n')
    config = load_gateway_config(path)
    assert config.broker.username == "V1", "the login defaults to the VIN"
    with pytest.raises(ConfigError, match="is empty"):
        config.broker.auth()


def test_password_hashes_are_salted_and_the_acl_names_only_own_topics() -> None:
    assert mosquitto_hash("same") != mosquitto_hash("same")
    assert mosquitto_hash("pw", salt=b"0" * 12).startswith("$7$101$")
    from prognos.ops.identities import BrokerUser

    text = acl_text([BrokerUser("VIN1", "h", "vehicle", "f", "VIN1")])
    assert "topic write prognos/v1/f/VIN1/diag" in text
    assert "topic read prognos/v1/f/VIN1/model" in text
    assert "topic read prognos/v1/f/VIN1/stored" in text
    rules = [line for line in text.splitlines() if line.startswith("topic")]
    assert len(rules) == 4 and not any("+" in r or "#" in r for r in rules), "its own topics only"


def test_imported_text_is_shown_as_written_not_as_markdown() -> None:
    from prognos.dashboard.widgets import plain

    owner = "[Call now](https://phish.example) **urgent** <b>x</b>"
    escaped = plain(owner)
    assert escaped.replace("\\", "") == owner, "nothing is lost, only escaped"
    assert "\\[Call now\\]\\(https://phish\\.example\\)" in escaped and "\\*\\*urgent\\*\\*" in escaped
