"""MQTT uplink of one gateway: diagnostic records with QoS 1, a retained status with Last Will.

Each connection is its own paho client. A supervisor thread connects, runs the client's network
thread until the connection ends, then waits a full-jitter backoff (prognos/backoff.py) and starts
a fresh client: paho's own reconnect (fixed doubling, no jitter) is off. Nothing unacknowledged
outlives its connection in memory; durability is the spool's job (prognos/edge/spool.py), and the
forwarder (prognos/edge/forwarder.py) publishes the spool again after a reconnect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.backoff import Backoff
from prognos.edge.forwarder import AckOutcome, LinkListener
from prognos.errors import DecodeError, TransientError
from prognos.receipt import decode_receipt
from prognos.security import BrokerAuth
from prognos.topics import diag_topic, model_topic, status_topic, stored_topic

log = logging.getLogger(__name__)
paho_log = logging.getLogger(f"{__name__}.paho")

ONLINE = b'{"state":"online"}'
OFFLINE = b'{"state":"offline"}'
GOODBYE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0  # for the broker's CONNACK, before the connection counts as failed
# PUBACK reason codes (MQTT 5, section 3.4.2.1) worth retrying: the broker may take the same
# message later. Every other failure code is a refusal of this message for good.
RETRY_PUBACK_CODES = frozenset({0x80, 0x97})  # unspecified error, quota exceeded
NO_MATCHING_SUBSCRIBERS = 0x10


class MqttUplink:
    """One gateway's MQTT connection, kept up with backoff until `close()`.

    Blocking use: `publish_record()` waits for the PUBACK. Spooled use: a `Forwarder` calls
    `send_record()` and learns of PUBACKs and connection changes through its listener.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        fleet: str,
        vin: str,
        keepalive_s: int = 30,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        max_inflight: int = 20,
        reconnect_backoff: Backoff | None = None,
        on_model_update: Callable[[bytes], None] | None = None,
        auth: BrokerAuth | None = None,
        receipts: bool = False,
    ) -> None:
        """With `on_model_update`, the uplink subscribes to the vehicle's model topic and hands
        each update's payload to it (on the network thread: it should only queue it). `auth`:
        TLS and the vehicle's login (prognos.security; none on a development broker). With
        `receipts`, it subscribes to the vehicle's storage receipts and tells the listener."""
        self.fleet = fleet
        self._auth = auth or BrokerAuth()
        self.vin = vin
        self._host = host
        self._port = port
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._max_inflight = max_inflight
        self._backoff = reconnect_backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._diag_topic = diag_topic(fleet, vin)
        self._status_topic = status_topic(fleet, vin)
        self._model_topic = model_topic(fleet, vin)
        self._stored_topic = stored_topic(fleet, vin) if receipts else None
        self._on_model_update = on_model_update
        self._client_id = f"prognos-gw-{fleet}-{vin}"
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._session: int | None = None  # the generation of the connection the broker accepted
        self._generation = 0
        self._sessions = 0
        self._status = ONLINE
        self._listener: LinkListener | None = None
        self._connected = threading.Event()
        self._session_ended = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prognos-uplink-{vin}", daemon=True)
        self._thread.start()

    @property
    def reconnects(self) -> int:
        """Connections the broker accepted after the first one; each follows a lost connection."""
        return max(0, self._sessions - 1)

    @property
    def session(self) -> int | None:
        """An id of the current accepted connection, or None while disconnected."""
        return self._session

    def set_listener(self, listener: LinkListener | None) -> None:
        self._listener = listener

    def wait_connected(self, timeout_s: float) -> None:
        if not self._connected.wait(timeout_s):
            raise TransientError(f"no connection to the broker within {timeout_s:.0f} s")

    def publish_record(self, payload: bytes, timeout_s: float = 10.0) -> None:
        """Publish one encoded record with QoS 1 and wait for the broker's PUBACK."""
        deadline = time.monotonic() + timeout_s
        self.wait_connected(timeout_s)
        with self._lock:
            client = self._client
        if client is None:
            raise TransientError("publish failed: the connection was lost")
        info = client.publish(self._diag_topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransientError(f"publish failed: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            raise TransientError(f"publish failed: {exc}") from exc
        if not info.is_published():
            raise TransientError(f"no PUBACK within {timeout_s:.0f} s")

    def send_record(self, payload: bytes) -> tuple[int, int]:
        """Start a QoS 1 publish without waiting; returns (session, mid) for the listener's ack.

        Raises TransientError when there is no accepted connection to publish on.
        """
        with self._lock:
            client, session = self._client, self._session
        if client is None or session is None:
            raise TransientError("not connected to the broker")
        info = client.publish(self._diag_topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransientError(f"publish failed: {mqtt.error_string(info.rc)}")
        return session, info.mid

    def drop_connection(self, reason: str) -> None:
        """End the current connection (for example a PUBACK is overdue); the supervisor reconnects."""
        with self._lock:
            client = self._client
        if client is not None:
            log.warning("dropping the connection of %s: %s", self.vin, reason)
            client.disconnect()

    def publish_status(self, status: dict[str, object]) -> None:
        """Publish the retained status now if connected; it is published again on every connect."""
        payload = json.dumps({"state": "online", **status}, separators=(",", ":")).encode()
        with self._lock:
            self._status = payload
            client = self._client if self._session is not None else None
        if client is not None:
            client.publish(self._status_topic, payload, qos=1, retain=True)

    def close(self) -> None:
        """Say goodbye cleanly: the retained status becomes offline, then disconnect and stop."""
        with self._lock:
            client = self._client if self._session is not None else None
        if client is not None:
            info = client.publish(self._status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(GOODBYE_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:
                log.info("offline status of %s not sent: %s", self.vin, exc)
        self._stop.set()
        self._session_ended.set()
        self._thread.join()

    def _run(self) -> None:
        """Supervisor: connect, run the connection until it ends, back off, again; until close()."""
        failures = 0
        while True:
            self._session_ended.clear()
            if self._stop.is_set():
                return
            client = self._new_client()
            try:
                client.connect(self._host, self._port, keepalive=self._keepalive_s)
            except OSError as exc:
                failures += 1
                log.log(
                    logging.INFO if failures == 1 else logging.DEBUG,
                    "broker %s:%d unreachable (attempt %d): %s",
                    self._host,
                    self._port,
                    failures,
                    exc,
                )
                self._pause()
                continue
            failures = 0
            with self._lock:
                self._client = client
            client.loop_start()
            if not self._session_ended.wait(self._connect_timeout_s) and not self._connected.is_set():
                log.warning(
                    "no CONNACK from %s:%d within %.0f s", self._host, self._port, self._connect_timeout_s
                )
                client.disconnect()
            self._session_ended.wait()
            if self._stop.is_set():
                client.disconnect()
            client.loop_stop()
            with self._lock:
                self._client = None
                self._session = None
            self._connected.clear()
            if not self._stop.is_set():
                self._pause()

    def _pause(self) -> None:
        self._stop.wait(self._backoff.next_delay_s())

    def _new_client(self) -> mqtt.Client:
        self._generation += 1
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            userdata=self._generation,
            reconnect_on_failure=False,
        )
        self._auth.apply(client)
        client.connect_timeout = self._connect_timeout_s
        client.max_inflight_messages_set(self._max_inflight)
        client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
        client.on_log = _on_paho_log
        client.will_set(self._status_topic, OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # paho callbacks: they run on the connection's network thread and only mark and notify.

    def _on_connect(
        self, client: mqtt.Client, generation: int, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("broker refused %s: %s", self.vin, reason_code)
            return
        with self._lock:
            self._session = generation
            self._sessions += 1
            status = self._status
        client.publish(self._status_topic, status, qos=1, retain=True)
        if self._on_model_update is not None:
            client.subscribe(self._model_topic, qos=1)
        if self._stored_topic is not None:
            # A new session each connection: receipts sent while it was down are gone, and the
            # forwarder sends those records again when their receipt is overdue.
            client.subscribe(self._stored_topic, qos=1)
        self._backoff.reset()
        self._connected.set()
        log.info("%s connected to %s:%d (session %d)", self.vin, self._host, self._port, generation)
        self._notify_link_changed()

    def _on_disconnect(
        self, client: mqtt.Client, generation: int, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._lock:
            was_connected = self._session == generation
            if was_connected:
                self._session = None
        self._connected.clear()
        self._session_ended.set()
        if was_connected and not self._stop.is_set():
            log.warning("%s lost the connection to %s:%d: %s", self.vin, self._host, self._port, reason_code)
        self._notify_link_changed()

    def _on_publish(
        self, client: mqtt.Client, generation: int, mid: int, reason_code: Any, properties: Any
    ) -> None:
        listener = self._listener
        if listener is not None:
            listener.acknowledged(generation, mid, _ack_outcome(reason_code), str(reason_code))

    def _on_message(self, client: mqtt.Client, generation: int, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._model_topic and self._on_model_update is not None:
            self._on_model_update(bytes(message.payload))
        elif message.topic == self._stored_topic:
            try:
                seqs = decode_receipt(message.payload)
            except DecodeError as exc:
                log.warning("%s: a storage receipt that is not one (%s); ignored", self.vin, exc)
                return
            listener = self._listener
            if listener is not None:
                listener.stored(seqs)

    def _notify_link_changed(self) -> None:
        listener = self._listener
        if listener is not None:
            listener.link_changed()


def _on_paho_log(client: mqtt.Client, userdata: Any, level: int, message: str) -> None:
    """paho's own log is chatty (it reports an orderly close as an error): DEBUG, except for
    exceptions it caught in our callbacks, which are bugs."""
    paho_log.log(logging.ERROR if message.startswith("Caught exception") else logging.DEBUG, "%s", message)


def _ack_outcome(reason_code: Any) -> AckOutcome:
    if reason_code.value == NO_MATCHING_SUBSCRIBERS:
        # The broker took it but will hand it to nobody: after a broker restart Mosquitto 2.0
        # routes nothing to the ingest group until a worker subscribes again (docs/chaos.md).
        return AckOutcome.RETRY
    if not reason_code.is_failure:
        return AckOutcome.ACCEPTED
    if reason_code.value in RETRY_PUBACK_CODES:
        return AckOutcome.RETRY
    return AckOutcome.REJECTED
