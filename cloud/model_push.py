"""Model updates to gateways: a signed bundle, retained with QoS 1 on each vehicle's model topic,
so a gateway that is offline now gets it when it next connects (docs/model-updates.md)."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.errors import TransientError
from prognos.topics import model_topic

PUBLISH_TIMEOUT_S = 30.0


def push_bundle(*, host: str, port: int, fleet: str, vins: list[str], payload: bytes) -> None:
    """Publish `payload` to every VIN's model topic; returns once the broker has them all."""
    topics = [model_topic(fleet, vin) for vin in vins]  # ConfigError for a bad name, before connecting
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
    )
    try:
        client.connect(host, port)
    except OSError as exc:
        raise TransientError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        for topic in topics:
            info = client.publish(topic, payload, qos=1, retain=True)
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
            if not info.is_published():
                raise TransientError(f"the broker did not acknowledge the update on {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
