"""Model updates to gateways: a signed bundle, retained with QoS 1 on each vehicle's model topic,
so a gateway that is offline now gets it when it next connects (docs/model-updates.md)."""

from __future__ import annotations

import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from prognos.errors import RejectedError, TransientError
from prognos.security import BrokerAuth
from prognos.topics import model_topic

PUBLISH_TIMEOUT_S = 30.0


def push_bundle(
    *, host: str, port: int, fleet: str, vins: list[str], payload: bytes, auth: BrokerAuth | None = None
) -> None:
    """Publish `payload` to every VIN's model topic; returns once the broker has them all."""
    topics = [model_topic(fleet, vin) for vin in vins]  # ConfigError for a bad name, before connecting
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5
    )
    (auth or BrokerAuth()).apply(client)
    connack: list[Any] = []
    answers: dict[int, Any] = {}
    answered = threading.Condition()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with answered:
            connack.append(reason)
            answered.notify_all()

    def on_publish(client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with answered:
            answers[mid] = reason
            answered.notify_all()

    client.on_connect = on_connect
    client.on_publish = on_publish
    try:
        client.connect(host, port)
    except (OSError, ssl.SSLError) as exc:
        raise TransientError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        with answered:
            answered.wait_for(lambda: connack, PUBLISH_TIMEOUT_S)
        if not connack:
            raise TransientError(f"no answer from the broker at {host}:{port}")
        if connack[0].is_failure:
            raise RejectedError(f"the broker refused the login: {connack[0]}")
        for topic in topics:
            mid = client.publish(topic, payload, qos=1, retain=True).mid
            with answered:
                answered.wait_for(lambda: mid in answers, PUBLISH_TIMEOUT_S)  # noqa: B023
            if mid not in answers:
                raise TransientError(f"the broker did not acknowledge the update on {topic}")
            if answers[mid].is_failure:
                raise RejectedError(f"the broker refused the update on {topic}: {answers[mid]}")
    finally:
        client.disconnect()
        client.loop_stop()
