"""What the agents published, read back from the broker as the cloud would read it: every
diagnostic record of one fleet, subscribed with QoS 1 before the first agent starts.

The bench judges the agent from these alone, never from the agent's memory, so a record that
was assessed but not delivered counts as missing. This is the bench's one MQTT client; like the
edge uplink and the cloud ingest it talks to paho directly (CallbackAPIVersion.VERSION2), and
its callback only appends under a lock.
"""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.errors import TransientError
from prognos.hil.results import Inbox, Received
from prognos.security import BrokerAuth
from prognos.topics import ROOT, check_fleet, parse_topic

CONNECT_TIMEOUT_S = 10.0


class RecordListener:
    """Subscribes to `prognos/v1/{fleet}/+/diag`; `messages()` is everything received so far."""

    def __init__(self, *, host: str, port: int, fleet: str, auth: BrokerAuth | None = None) -> None:
        check_fleet(fleet)
        self.topic = f"{ROOT}/{fleet}/+/diag"
        self._fleet = fleet
        self._lock = threading.Lock()
        self._inbox = Inbox()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            protocol=MQTTProtocolVersion.MQTTv5,
            client_id=f"prognos-hil-{uuid.uuid4().hex[:8]}-{fleet}"[:64],
        )
        (auth or BrokerAuth()).apply(self._client)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        try:
            self._client.connect(host, port)
        except OSError as exc:
            raise TransientError(f"the bench cannot reach the broker at {host}:{port}: {exc}") from exc
        self._client.loop_start()
        if not self._subscribed.wait(CONNECT_TIMEOUT_S):
            self.close()
            raise TransientError(f"the broker at {host}:{port} did not confirm the bench's subscription")

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: object, properties: object
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            vehicle = parse_topic(message.topic)
        except ValueError:
            vehicle = None
        with self._lock:
            if vehicle is None or vehicle.fleet != self._fleet or vehicle.kind != "diag":
                self._inbox.foreign += 1
            else:
                self._inbox.messages.append(Received(vehicle.vin, bytes(message.payload), time.time()))

    def count(self) -> int:
        with self._lock:
            return len(self._inbox.messages)

    def inbox(self) -> Inbox:
        with self._lock:
            return Inbox(list(self._inbox.messages), self._inbox.foreign)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
