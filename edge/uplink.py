"""MQTT uplink of one gateway: diagnostic records with QoS 1, a retained status with Last Will."""

from __future__ import annotations

import json
import logging
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.errors import TransientError
from prognos.topics import diag_topic, status_topic

log = logging.getLogger(__name__)

OFFLINE = b'{"state":"offline"}'


class MqttUplink:
    def __init__(self, *, host: str, port: int, fleet: str, vin: str, keepalive_s: int = 30) -> None:
        self.fleet = fleet
        self.vin = vin
        self._diag_topic = diag_topic(fleet, vin)
        self._status_topic = status_topic(fleet, vin)
        self._connected = threading.Event()
        self.reconnects = 0
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"prognos-gw-{fleet}-{vin}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.will_set(self._status_topic, OFFLINE, qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.connect_async(host, port, keepalive=keepalive_s)
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> None:
        if not self._connected.wait(timeout_s):
            raise TransientError(f"no connection to the broker within {timeout_s:.0f} s")

    def publish_record(self, payload: bytes, timeout_s: float = 10.0) -> None:
        """Publish one encoded record with QoS 1 and wait for the broker's PUBACK."""
        info = self._client.publish(self._diag_topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransientError(f"publish failed: {mqtt.error_string(info.rc)}")
        deadline = time.monotonic() + timeout_s
        while not info.is_published():
            if time.monotonic() > deadline:
                raise TransientError(f"no PUBACK within {timeout_s:.0f} s")
            time.sleep(0.002)

    def publish_status(self, status: dict[str, object]) -> None:
        payload = json.dumps({"state": "online", **status}, separators=(",", ":")).encode()
        self._client.publish(self._status_topic, payload, qos=1, retain=True)

    def close(self) -> None:
        """Say goodbye cleanly: the retained status becomes offline, then disconnect."""
        if self._connected.is_set():
            self._client.publish(self._status_topic, OFFLINE, qos=1, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("broker refused %s: %s", self.vin, reason_code)
            return
        client.publish(self._status_topic, b'{"state":"online"}', qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object
    ) -> None:
        if self._connected.is_set():
            self.reconnects += 1
        self._connected.clear()
