"""Ingest worker: diagnostic records from MQTT into InfluxDB, acknowledged only once stored.

The worker holds an MQTT 5 shared subscription with a persistent session, so N workers split
the stream and messages wait in the broker while none runs. Three threads share the work:
paho's network thread receives and decodes each message into its points; the calling thread of
`run` cuts what arrived into batches; a writer thread writes each batch and then queues its
PUBACKs (manual ack), which the network thread sends, in the order the messages came. Decoding
overlaps the writes (the broker's in-flight window, 1,000 in the stack, holds two default
batches), and every per-message step stays in one thread: handing each message or each ack to
another thread halves what paho can receive. A message is acknowledged after its points are in
InfluxDB or it is stored as a dead letter with its reason; a database outage therefore stalls
ingest and loses nothing.

QoS 1 delivers at least once. A redelivered record overwrites its own points (their keys are
deterministic) and is counted as a duplicate, not as a new record. Every `metrics_interval_s`
the worker writes its metrics (records/s, lag, dead letters, duplicates) to the `ingest`
measurement (docs/ingest.md).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from prognos.cloud.ingest.points import (
    dead_letter_line,
    gateway_status_line,
    ingest_metrics_line,
    record_lines,
)
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import BatchTooLargeError, InfluxClient
from prognos.cloud.storage.writer import InfluxWriter, WriteStopped
from prognos.errors import DecodeError, TransientError
from prognos.receipt import MAX_SEQS, encode_receipt
from prognos.record import decode_record
from prognos.security import BrokerAuth
from prognos.topics import ingest_subscription, parse_topic, stored_topic

log = logging.getLogger(__name__)
SESSION_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT reason

NETWORK_POLL_S = 0.01  # the longest a queued ack waits for paho's network thread
INBOX_POLL_S = 0.005
BACKOFF_BASE_S = 0.5  # writes retry until they succeed or the worker stops
BACKOFF_CAP_S = 30.0
RECENT_KEYS = 100_000  # records remembered to recognise a redelivery
POINT_PRECISION = schema.DIAG.precision  # of every point of a record and of a status message


@dataclass
class IngestStats:
    received: int = 0
    records_written: int = 0  # distinct records stored; a redelivery counts as a duplicate
    duplicates: int = 0
    statuses_written: int = 0  # gateway status messages stored
    dead_letters: int = 0
    write_retries: int = 0
    receipts: int = 0  # receipt messages published to gateways
    batches: int = 0
    lag_s: float = 0.0  # newest stored record: now minus its window end


@dataclass
class _Decoded:
    message: mqtt.MQTTMessage
    lines: list[str]
    key: tuple[str, str, int, int] | None  # fleet, vin, seq, window end (ms); None for a status
    error: str | None = None  # why it is a dead letter


def tune_garbage_collection() -> None:
    """For a process whose main job is an ingest worker: collect cyclic garbage rarely. A
    message allocates a few dozen objects, all but a handful freed by reference counting, and
    Python's default thresholds (a collection every 700 allocations) cost the worker about a
    third of its CPU time per record (docs/benchmarks.md). What exists when this runs (modules,
    the client) is frozen out of the collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1_000)


class IngestWorker:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        influx: InfluxClient,
        database: str,
        group: str = "ingest",
        fleet: str = "+",
        client_id: str | None = None,
        batch_size: int = 500,
        batch_wait_s: float = 0.2,
        queue_size: int = 10_000,
        session_expiry_s: int = 7 * 86_400,
        metrics_interval_s: float = 10.0,
        auth: BrokerAuth | None = None,
    ) -> None:
        self.influx = influx
        self.database = database
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.stats = IngestStats()
        self.subscription = ingest_subscription(group, fleet)
        self.status_subscription = ingest_subscription(group, fleet, "status")
        self._inbox: collections.deque[_Decoded] = collections.deque()  # from the network thread
        self._inbox_limit = queue_size
        self._halted = threading.Event()
        self._subscribed = threading.Event()
        # Writes retry until stored; they give up only once run() has left (self._halted).
        self._writer = self._writer_until(self._halted)
        self._last_dead_letter_ns = 0
        self._last_status_ms = 0
        self._recent: OrderedDict[tuple[str, str, int, int], None] = OrderedDict()
        self._metrics_interval_s = metrics_interval_s
        self._metrics_due_s = time.monotonic() + metrics_interval_s
        self._metrics_base: tuple[float, int] = (time.monotonic(), 0)
        self._host, self._port, self._session_expiry_s = host, port, session_expiry_s
        self.worker_id = client_id or f"prognos-ingest-{group}-{random.getrandbits(32):08x}"
        self._client = _AckingClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.worker_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        (auth or BrokerAuth()).apply(self._client)
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect and subscribe in the background (paho's network thread)."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        self._client.connect_async(
            self._host, self._port, keepalive=30, clean_start=False, properties=properties
        )
        self._client.loop_start()

    def wait_subscribed(self, timeout_s: float) -> None:
        if not self._subscribed.wait(timeout_s):
            raise TransientError(f"not subscribed to {self.subscription} within {timeout_s:.0f} s")

    def run(self, stop: threading.Event) -> IngestStats:
        """Process batches until `stop` is set, then disconnect; unacknowledged messages stay
        with the broker for the next worker. An error of the writer thread is raised here."""
        batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        failure: list[BaseException] = []
        writer = threading.Thread(
            target=self._write_batches, args=(batches, failure), name="ingest-writer", daemon=True
        )
        try:
            self._writer_until(stop).ensure_database()  # ConfigError if it may not and is missing
            writer.start()
            while not stop.is_set() and writer.is_alive():
                received = self._next_batch(stop)
                batch = self._batch_of(received) if received else None
                while batch is not None and writer.is_alive() and not stop.is_set():
                    try:
                        batches.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        except WriteStopped:
            pass
        finally:
            self._halted.set()
            if writer.is_alive():
                batches.put(None)  # the writer may still be writing: room comes when it takes its next
                writer.join()
            self._client.disconnect()
            self._client.loop_stop()
        if failure:
            raise failure[0]
        return self.stats

    def _write_batches(self, batches: queue.Queue[_Batch | None], failure: list[BaseException]) -> None:
        """The writer thread: each batch written, then acknowledged; metrics when they are due.
        Ends at the None that `run` puts, or once `run` has left (self._halted) while a write
        keeps failing."""
        try:
            while True:
                with contextlib.suppress(queue.Empty):
                    batch = batches.get(timeout=0.2)
                    if batch is None:
                        return
                    self._write_batch(batch)
                if time.monotonic() >= self._metrics_due_s:
                    self._write_metrics()
        except WriteStopped:
            while batches.get() is not None:  # nothing more is acknowledged: the broker redelivers
                pass
        except BaseException as exc:  # handed to run(), which raises it in the caller's thread
            failure.append(exc)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("broker refused the ingest worker: %s", reason_code)
            return
        client.subscribe([(self.subscription, 1), (self.status_subscription, 1)])

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object
    ) -> None:
        if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER:
            log.error(
                "another client connected with this worker's id %s and took its session over: "
                "give each ingest worker its own --client-id",
                self.worker_id,
            )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reason_codes: object, properties: object
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            item = _decode(message, self._status_stamp_ms)
        except DecodeError as exc:
            item = _Decoded(message, [], None, f"undecodable: {exc}")
        # The broker's window bounds what arrives unacknowledged; QoS 0 status messages are not
        # bounded by it, so a full inbox holds paho's thread back: back-pressure to the broker.
        while len(self._inbox) >= self._inbox_limit and not self._halted.wait(INBOX_POLL_S):
            pass
        self._inbox.append(item)

    def _next_batch(self, stop: threading.Event) -> list[_Decoded]:
        """Up to batch_size messages: as soon as that many arrived, or batch_wait_s after the
        first; [] after 0.2 s without any."""
        idle_until = time.monotonic() + 0.2
        while not self._inbox:
            if time.monotonic() >= idle_until or stop.wait(INBOX_POLL_S):
                return []
        deadline = time.monotonic() + self.batch_wait_s
        while len(self._inbox) < self.batch_size and time.monotonic() < deadline:
            if stop.wait(INBOX_POLL_S):
                break
        return [self._inbox.popleft() for _ in range(min(self.batch_size, len(self._inbox)))]

    def _batch_of(self, batch: list[_Decoded]) -> _Batch:
        """Messages decoded by the network thread, split into records and dead letters."""
        self.stats.received += len(batch)
        return _Batch(
            [item.message for item in batch],
            [item for item in batch if item.error is None],
            [(item.message, item.error) for item in batch if item.error is not None],
        )

    def _write_batch(self, item: _Batch) -> None:
        """Store the batch (records, then dead letters), send each vehicle its receipt and
        acknowledge all the messages; raises WriteStopped, with nothing acknowledged, when the
        worker stops while a write keeps failing."""
        dead = item.dead + self._write_records(item.decoded)
        if dead:
            self._write_dead_letters(dead)
        receipts = storage_receipts([d.key for d in item.decoded if d.key is not None])
        self._client.queue_messages(receipts, [(m.mid, m.qos) for m in item.messages if m.qos > 0])
        self.stats.receipts += len(receipts)
        self.stats.batches += 1

    def _write_records(self, items: list[_Decoded]) -> list[tuple[mqtt.MQTTMessage, str]]:
        """Write the messages' points, each message's together; the messages the database
        refuses come back as dead letters, with the reason."""
        if not items:
            return []
        refused = dict(self._writer.write_groups([item.lines for item in items], precision=POINT_PRECISION))
        dead = [
            (items[index].message, f"refused by InfluxDB: {_refusal(error)}")
            for index, error in refused.items()
        ]
        stored = [item for index, item in enumerate(items) if index not in refused]
        records = [item.key for item in stored if item.key is not None]
        for key in records:
            if key in self._recent:
                self.stats.duplicates += 1
                continue
            self._recent[key] = None
            if len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)
            self.stats.records_written += 1
        self.stats.statuses_written += len(stored) - len(records)
        if records:
            self.stats.lag_s = max(0.0, time.time() - max(key[3] for key in records) / 1000.0)
        return dead

    def _write_dead_letters(self, dead: list[tuple[mqtt.MQTTMessage, str]]) -> None:
        lines = []
        for message, reason in dead:
            stamp = max(time.time_ns(), self._last_dead_letter_ns + 1)
            self._last_dead_letter_ns = stamp
            lines.append(dead_letter_line(message.topic, reason, bytes(message.payload), stamp))
            log.warning("dead letter from %s: %s", message.topic, reason)
        self._writer.write(lines, precision=schema.DEAD_LETTER.precision)
        self.stats.dead_letters += len(dead)

    def _status_stamp_ms(self) -> int:
        """Receive time in ms, strictly increasing, so two statuses never overwrite each other."""
        self._last_status_ms = max(time.time_ns() // 1_000_000, self._last_status_ms + 1)
        return self._last_status_ms

    def _write_metrics(self) -> None:
        now = time.monotonic()
        since, written_before = self._metrics_base
        rate = (self.stats.records_written - written_before) / max(now - since, 1e-9)
        self._metrics_base = (now, self.stats.records_written)
        self._metrics_due_s = now + self._metrics_interval_s
        fields: dict[str, float | int] = {
            "received": self.stats.received,
            "records_written": self.stats.records_written,
            "records_per_s": round(rate, 3),
            "duplicates": self.stats.duplicates,
            "dead_letters": self.stats.dead_letters,
            "write_retries": self.stats.write_retries,
            "receipts": self.stats.receipts,
            "lag_s": round(self.stats.lag_s, 3),
            "queue_depth": len(self._inbox),
        }
        line = ingest_metrics_line(self.worker_id, fields, time.time_ns())
        self._writer.write([line], precision=schema.INGEST.precision)

    def _writer_until(self, stop: threading.Event) -> InfluxWriter:
        """A writer whose writes retry until they succeed or `stop` is set (WriteStopped), and
        that creates the database when it is missing."""
        return InfluxWriter(
            client=self.influx,
            database=self.database,
            attempts=None,
            backoff_base_s=BACKOFF_BASE_S,
            backoff_cap_s=BACKOFF_CAP_S,
            stop=stop,
            create_database=True,
            on_retry=self._count_retry,
        )

    def _count_retry(self, error: TransientError, delay_s: float) -> None:
        self.stats.write_retries += 1


class _AckingClient(mqtt.Client):
    """paho's client with receipts and acknowledgements queued by other threads and sent by its
    own network thread, which looks for them at least every NETWORK_POLL_S. A publish() or ack()
    from another thread wakes the network thread once per message."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._outbox: collections.deque[tuple[list[tuple[str, bytes]], list[tuple[int, int]]]] = (
            collections.deque()
        )

    def queue_messages(self, receipts: list[tuple[str, bytes]], acks: list[tuple[int, int]]) -> None:
        """(topic, payload) of receipts to publish (QoS 1), then (mid, qos) of messages to
        acknowledge, in the order they were received."""
        self._outbox.append((receipts, acks))

    def loop_forever(self, timeout: float = 1.0, retry_first_connection: bool = False) -> MQTTErrorCode:
        return super().loop_forever(min(timeout, NETWORK_POLL_S), retry_first_connection)

    def loop_misc(self) -> MQTTErrorCode:
        while self._outbox:
            receipts, acks = self._outbox.popleft()
            for name, payload in receipts:
                self.publish(name, payload, qos=1)
            for mid, qos in acks:
                self.ack(mid, qos)
        return super().loop_misc()


def storage_receipts(keys: list[tuple[str, str, int, int]]) -> list[tuple[str, bytes]]:
    """One receipt (topic, payload) per vehicle for the stored records `keys` (fleet, vin, seq,
    window end), its sequence numbers in the order given."""
    seqs: dict[tuple[str, str], list[int]] = {}
    for fleet, vin, seq, _ in keys:
        seqs.setdefault((fleet, vin), []).append(seq)
    return [
        (stored_topic(fleet, vin), encode_receipt(numbers[at : at + MAX_SEQS]))
        for (fleet, vin), numbers in seqs.items()
        for at in range(0, len(numbers), MAX_SEQS)
    ]


@dataclass
class _Batch:
    """Messages in the order they came, decoded; those that did not decode, with the reason."""

    messages: list[mqtt.MQTTMessage]
    decoded: list[_Decoded]
    dead: list[tuple[mqtt.MQTTMessage, str]]


def _refusal(error: Exception) -> str:
    return "record too large" if isinstance(error, BatchTooLargeError) else str(error)


def _decode(message: mqtt.MQTTMessage, status_stamp_ms: Callable[[], int]) -> _Decoded:
    vehicle = parse_topic(message.topic)
    if vehicle.kind == "status":
        try:
            status = json.loads(bytes(message.payload))
            if not isinstance(status, dict):
                raise ValueError("not a JSON object")
            line = gateway_status_line(vehicle.fleet, vehicle.vin, status, status_stamp_ms())
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise DecodeError(f"bad status message: {exc}") from exc
        return _Decoded(message, [line], None)
    record = decode_record(bytes(message.payload))
    if record.vin != vehicle.vin:
        raise DecodeError(f"record VIN {record.vin} does not match topic VIN {vehicle.vin}")
    key = (vehicle.fleet, record.vin, record.seq, record.window_end_ms)
    return _Decoded(message, record_lines(vehicle.fleet, record), key)
