"""The report worker: diagnostic records from an MQTT 5 shared subscription beside ingest's, one
diagnosis report per alert a record raises or escalates, stored and then sent to the service
center (docs/reports.md).

Threads: paho's network thread decodes each record and checks it against the alert rules
(alerting.record_alerts, cheap), and sends the PUBACKs queued for it; the thread of `run` takes
what arrived in batches, decides raise or escalate against the alerts' stored states and hands
the reports to a small pool of builder threads, which build and store them; it decides the next
batch meanwhile and acknowledges the batches in the order they came once their reports are
stored. A notifier thread takes what the store holds to send (webhook, e-mail), sends it with a
few sender threads and records each outcome, retrying failures with backoff.

Acknowledgement point: a message is acknowledged once every report it raised is stored (with
the alert's new state, in one transaction) or it raised none. A store that cannot be reached
stalls the worker and loses nothing: the broker redelivers what was not acknowledged, and a
redelivered record finds its alert's state already moved on (no second report). Sending never
holds storing up: notifications wait in the store until sent or given up, never dropped
silently.

Alert states live in the store, so a restarted worker, or a second worker of the same group,
does not report an alert again. The worker remembers which alerts it has seen recently and
skips the store for a record that changes nothing (same or lower priority, last-seen time
written less than `touch_every` ago).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from prognos.backoff import Backoff
from prognos.cloud.analytics.alerts import more_urgent
from prognos.cloud.analytics.common import DEFAULT_SETTINGS, AnalyticsSettings
from prognos.cloud.ingest.worker import _AckingClient  # ingest's client that sends queued PUBACKs itself
from prognos.cloud.reports.alerting import (
    DEFAULT_TRIGGERS,
    AlertState,
    Decision,
    RecordAlert,
    TriggerSettings,
    decide,
    record_alerts,
    reportable,
)
from prognos.cloud.reports.notify import MailSender, WebhookSender, mail_subject, recipients_of, webhook_body
from prognos.cloud.reports.render import render_html, render_text
from prognos.cloud.reports.report import Contact, Report, build_report, from_dict, to_dict
from prognos.cloud.reports.sources import InfluxSources
from prognos.cloud.reports.store import DeskContext, Key, Notification, Outcome, ReportStore
from prognos.errors import ConfigError, DecodeError, RejectedError, TransientError
from prognos.record import DiagnosticRecord, decode_record
from prognos.security import BrokerAuth
from prognos.topics import ingest_subscription, parse_topic

log = logging.getLogger(__name__)
T = TypeVar("T")

WEBHOOK = "webhook"
EMAIL = "email"
CHANNELS = (WEBHOOK, EMAIL)
INBOX_POLL_S = 0.005
RECENT_ALERTS = 100_000
RECENT_REPORTS = 256  # stored reports kept for the notifier, which sends them moments later


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    triggers: TriggerSettings = DEFAULT_TRIGGERS
    analytics: AnalyticsSettings = DEFAULT_SETTINGS
    touch_every: timedelta = timedelta(minutes=10)  # last-seen times written at most this often
    centers: int = 3  # capable centers offered
    slots: int = 3  # free slots offered per center
    builders: int = 4  # reports built at once
    batch_size: int = 200
    batch_wait_s: float = 0.05
    queue_size: int = 10_000
    retry_base_s: float = 0.5  # the store and InfluxDB: retried until they answer
    retry_cap_s: float = 30.0
    notify_base_s: float = 5.0  # notifications: retried with backoff ...
    notify_cap_s: float = 600.0
    notify_attempts: int = 10  # ... this many times, then given up (status failed)
    notify_lease: timedelta = timedelta(minutes=2)
    senders: int = 4  # notifications sent at once
    batches_in_flight: int = 8  # decided, their reports being built; acknowledged in order
    notify_poll_s: float = 1.0


@dataclass
class ReportStats:
    received: int = 0
    undecodable: int = 0  # ingest dead-letters these; the report worker only counts them
    alerting: int = 0  # records with a reportable alert
    raised: int = 0
    escalated: int = 0
    reports: int = 0  # stored
    lost_races: int = 0  # another worker stored the report first
    failed_builds: int = 0  # a report that could not be built (bad data): logged, acknowledged
    retries: int = 0  # store or InfluxDB calls retried
    notifications_sent: int = 0
    notification_failures: int = 0  # attempts that failed
    notifications_given_up: int = 0


@dataclass
class _Item:
    message: mqtt.MQTTMessage
    received_at: datetime
    fleet: str = ""
    record: DiagnosticRecord | None = None
    alerts: list[RecordAlert] = field(default_factory=list)


class _Stopped(Exception):
    """The worker was asked to stop while a call kept failing."""


@dataclass(frozen=True, kw_only=True)
class Channels:
    """Where reports are sent: a webhook URL (with its sender) and e-mail recipients (with the
    SMTP sender); either may be absent."""

    webhook_url: str | None = None
    webhook: WebhookSender | None = None
    mail_to: tuple[str, ...] = ()
    mail: MailSender | None = None

    def targets(self) -> list[tuple[str, str]]:
        found = []
        if self.webhook_url and self.webhook is not None:
            found.append((WEBHOOK, self.webhook_url))
        if self.mail_to and self.mail is not None:
            found.append((EMAIL, ", ".join(self.mail_to)))
        return found


class ReportWorker:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        store: ReportStore,
        sources: InfluxSources,
        channels: Channels = Channels(),
        group: str = "reports",
        fleet: str = "+",
        client_id: str | None = None,
        session_expiry_s: int = 7 * 86_400,
        auth: BrokerAuth | None = None,
        settings: WorkerSettings = WorkerSettings(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.sources = sources
        self.channels = channels
        self.settings = settings
        self.stats = ReportStats()
        self.subscription = ingest_subscription(group, fleet)
        self._clock = clock
        self._inbox: collections.deque[_Item] = collections.deque()
        self._halted = threading.Event()
        self._subscribed = threading.Event()
        self._wake_notifier = threading.Event()
        self._recent: OrderedDict[Key, tuple[str, datetime]] = OrderedDict()  # priority, last-seen written
        self._lock = threading.Lock()  # of the maps below and stats: builder threads change them too
        self._pending: dict[Key, AlertState] = {}  # decided, their reports not yet stored
        self._tails: dict[Key, Future[None]] = {}  # the latest report task of each alert
        self._stored: OrderedDict[str, tuple[dict[str, object], str]] = OrderedDict()  # id -> body, HTML
        self._host, self._port, self._session_expiry_s = host, port, session_expiry_s
        self.worker_id = client_id or f"prognos-reports-{group}-{random.getrandbits(32):08x}"
        # Acknowledgements are queued and sent by paho's own network thread: an ack() from
        # another thread wakes that thread once per message (docs/ingest.md).
        self._client = _AckingClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.worker_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        (auth or BrokerAuth()).apply(self._client)
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # ---- MQTT

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

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason_code: object, properties: object
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("broker refused the report worker: %s", reason_code)
            return
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reason_codes: object, properties: object
    ) -> None:
        refused = [code for code in reason_codes or [] if getattr(code, "is_failure", False)]  # type: ignore[attr-defined]
        if refused:
            log.error("the broker refused the subscription %s: %s", self.subscription, refused[0])
            return
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        item = _Item(message, self._clock())
        try:
            vehicle = parse_topic(message.topic)
            record = decode_record(bytes(message.payload))
            if record.vin != vehicle.vin:
                raise DecodeError(f"record VIN {record.vin} does not match topic VIN {vehicle.vin}")
            item.fleet, item.record = vehicle.fleet, record
            item.alerts = reportable(
                record_alerts(record, settings=self.settings.analytics), self.settings.triggers
            )
        except DecodeError as exc:
            log.debug("undecodable message on %s: %s", message.topic, exc)
        while len(self._inbox) >= self.settings.queue_size and not self._halted.wait(INBOX_POLL_S):
            pass
        self._inbox.append(item)

    # ---- the loop

    def run(self, stop: threading.Event) -> ReportStats:
        """Process records until `stop` is set, then disconnect; what was not acknowledged
        stays with the broker for the next worker.

        Batches overlap: the next batch is decided while the reports of the one before are
        still being built, and each batch is acknowledged, in the order the batches came, once
        its reports are stored."""
        notifier = threading.Thread(
            target=self._notify_loop, args=(stop,), name="reports-notifier", daemon=True
        )
        notifier.start()
        pool = ThreadPoolExecutor(
            max_workers=max(1, self.settings.builders), thread_name_prefix="reports-build"
        )
        inflight: collections.deque[tuple[list[_Item], list[Future[None]]]] = collections.deque()
        try:
            while not stop.is_set():
                self._acknowledge_done(inflight)
                if len(inflight) >= self.settings.batches_in_flight:
                    wait(inflight[0][1], timeout=0.05, return_when=FIRST_EXCEPTION)
                    continue
                batch = self._next_batch(stop, idle_s=0.01 if inflight else 0.2)
                if batch:
                    inflight.append((batch, self._process(batch, stop, pool)))
        except _Stopped:
            pass
        finally:
            self._halted.set()
            pool.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(Exception):  # leaving anyway: what was stored in the meantime
                self._acknowledge_done(inflight)
            self._client.disconnect()
            self._client.loop_stop()
            self._wake_notifier.set()
            notifier.join()
            self.sources.close()
        return self.stats

    def _acknowledge_done(self, inflight: collections.deque[tuple[list[_Item], list[Future[None]]]]) -> None:
        """Acknowledge the batches at the head whose reports are all stored. A _Stopped or a
        bug of a build stops the loop; that batch stays at the head, so neither it nor any
        batch after it is acknowledged (PUBACKs go in the order the messages came)."""
        while inflight and all(f.done() for f in inflight[0][1]):
            for future in inflight[0][1]:
                if future.cancelled():
                    raise _Stopped()
                future.result()
            batch, _ = inflight.popleft()
            self._client.queue_messages(
                [], [(i.message.mid, i.message.qos) for i in batch if i.message.qos > 0]
            )

    def _next_batch(self, stop: threading.Event, *, idle_s: float) -> list[_Item]:
        """Up to batch_size records: as soon as that many arrived, or batch_wait_s after the
        first; [] after idle_s without any."""
        idle_until = time.monotonic() + idle_s
        while not self._inbox:
            if time.monotonic() >= idle_until or stop.wait(INBOX_POLL_S):
                return []
        deadline = time.monotonic() + self.settings.batch_wait_s
        while len(self._inbox) < self.settings.batch_size and time.monotonic() < deadline:
            if stop.wait(INBOX_POLL_S):
                break
        return [self._inbox.popleft() for _ in range(min(self.settings.batch_size, len(self._inbox)))]

    def _process(
        self, batch: list[_Item], stop: threading.Event, pool: ThreadPoolExecutor
    ) -> list[Future[None]]:
        """Decide the batch's alerts (in the order they came) and hand its reports to the
        builders; the futures of those reports. An alert whose report is still being stored is
        decided against the state that report will store, not the store's."""
        self._count("received", len(batch))
        self._count("undecodable", sum(1 for item in batch if item.record is None))
        self._count("alerting", sum(1 for item in batch if item.alerts))
        alerts = [(item, alert) for item in batch for alert in item.alerts]
        if not alerts:
            return []
        with self._lock:
            pending = {
                (a.vin, a.code): self._pending[(a.vin, a.code)]
                for _, a in alerts
                if (a.vin, a.code) in self._pending
            }
        unknown = [
            (item, alert)
            for item, alert in alerts
            if (alert.vin, alert.code) in pending or not self._known(alert, item)
        ]
        keys = {(a.vin, a.code) for _, a in unknown} - set(pending)
        states: dict[Key, AlertState] = self._retrying(lambda: self.store.states(keys), stop) if keys else {}
        states.update(pending)
        triggers: dict[Key, list[tuple[_Item, RecordAlert, Decision]]] = {}
        touches: dict[Key, datetime] = {}
        for item, alert in unknown:
            assert item.record is not None
            key = (alert.vin, alert.code)
            decision = decide(states.get(key), alert, _at(item.record), self.settings.triggers)
            states[key] = decision.state
            if decision.trigger is None:
                touches[key] = decision.state.last_seen_at
            else:
                triggers.setdefault(key, []).append((item, alert, decision))
        touches = {k: v for k, v in touches.items() if k not in triggers and k not in pending}
        if touches:
            self._retrying(lambda: self.store.touch(touches), stop)
            for key, seen in touches.items():
                self._remember(key, states[key].priority, seen)
        futures = []
        for key, group in triggers.items():
            with self._lock:
                self._pending[key] = group[-1][2].state
                before = self._tails.get(key)
                future = pool.submit(self._report_all, key, group, before, stop)
                self._tails[key] = future
            future.add_done_callback(functools.partial(self._drop_tail, key))
            futures.append(future)
        return futures

    def _known(self, alert: RecordAlert, item: _Item) -> bool:
        """Whether the worker knows this record changes nothing for the alert: its priority is
        no more urgent than the last one seen, and the last-seen time was written recently."""
        assert item.record is not None
        with self._lock:
            known = self._recent.get((alert.vin, alert.code))
        if known is None:
            return False
        priority, seen = known
        return (
            not more_urgent(alert.priority, priority) and _at(item.record) - seen < self.settings.touch_every
        )

    def _remember(self, key: Key, priority: str, seen: datetime) -> None:
        with self._lock:
            self._recent[key] = (priority, seen)
            self._recent.move_to_end(key)
            if len(self._recent) > RECENT_ALERTS:
                self._recent.popitem(last=False)

    def _forget(self, key: Key) -> None:
        with self._lock:
            self._recent.pop(key, None)

    def _count(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + by)

    def _report_all(
        self,
        key: Key,
        group: list[tuple[_Item, RecordAlert, Decision]],
        before: Future[None] | None,
        stop: threading.Event,
    ) -> None:
        """The reports of one alert in the order its records came (a raise, then perhaps an
        escalation, each expecting the state the one before stored), after those of an earlier
        batch (`before`: submitted earlier, so already running or done)."""
        if before is not None:
            wait([before])
        try:
            for item, alert, decision in group:
                if not self._report(item, alert, decision, stop):
                    self._forget(key)
                    return
                self._remember(key, decision.state.priority, decision.state.last_seen_at)
        finally:
            with self._lock:
                if self._pending.get(key) is group[-1][2].state:
                    del self._pending[key]

    def _drop_tail(self, key: Key, future: Future[None]) -> None:
        with self._lock:
            if self._tails.get(key) is future:
                del self._tails[key]

    def _report(self, item: _Item, alert: RecordAlert, decision: Decision, stop: threading.Event) -> bool:
        record = item.record
        assert record is not None and decision.trigger is not None
        try:
            report = self._retrying(lambda: self._build(item, record, alert, decision), stop)
        except (DecodeError, RejectedError, ConfigError) as exc:
            self._count("failed_builds")
            log.error("no report for %s %s (record %d): %s", alert.vin, alert.code, record.seq, exc)
            return False
        body, html = to_dict(report), render_html(report)
        targets = self.channels.targets()
        saved = self._retrying(lambda: self.store.save(report, body, html, decision, targets), stop)
        if not saved:
            self._count("lost_races")
            return False
        self._count("reports")
        self._count("raised" if decision.trigger == "raised" else "escalated")
        log.info("report %s: %s", report.report_id, report.summary)
        if targets:
            with self._lock:
                self._stored[report.report_id] = (body, html)
                if len(self._stored) > RECENT_REPORTS:
                    self._stored.popitem(last=False)
            self._wake_notifier.set()
        return True

    def _build(self, item: _Item, record: DiagnosticRecord, alert: RecordAlert, decision: Decision) -> Report:
        context = self._context(record.vin, alert.subsystem, home=None)
        registry = None
        if context.contact is None or context.home_center is None:
            # Not the desk's customer, or no home center there: the vehicle registry may know.
            registry = self.sources.registry(record.vin)
            if registry is not None and registry.service_center and context.home_center is None:
                context = self._context(record.vin, alert.subsystem, home=registry.service_center)
        contact = context.contact
        if contact is None and registry is not None and (registry.owner_name or registry.owner_contact):
            email = registry.owner_contact if "@" in registry.owner_contact else ""
            contact = Contact(
                source="registry",
                name=registry.owner_name,
                email=email,
                phone="" if email else registry.owner_contact,
                home_center=context.home_center,
            )
        series = self.sources.history(record.vin, alert.subsystem, record.window_end_ms)
        estimate = (
            self.sources.last_estimate(record.vin, alert.code, record.window_end_ms)
            if alert.kind == "fault" and alert.days_to_threshold is None
            else None
        )
        master, stock = self.sources.master(), self.sources.stock()
        causes = [(c.code, c.probability) for c in record.causes]  # the classifier's, most likely first
        return build_report(
            fleet=item.fleet,
            record=record,
            alert=alert,
            trigger=decision.trigger or "raised",
            previous_priority=decision.previous.priority if decision.previous is not None else None,
            alert_id=self.store.alert_id(record.vin, alert.code),
            created_at=self._clock(),  # everything read: what is left is rendering and storing
            received_at=item.received_at,
            series=series,
            history_hours=self.sources.history_hours,
            last_estimate=estimate,
            causes=causes,
            master=master,
            centers=context.centers,
            stock=stock,
            slots=context.slots,
            contact=contact or Contact(source="none", home_center=context.home_center),
        )

    def _context(self, vin: str, subsystem: str, *, home: str | None) -> DeskContext:
        return self.store.context(
            vin,
            subsystem,
            home=home,
            now=self._clock(),
            centers=self.settings.centers,
            slots=self.settings.slots,
        )

    def _retrying(self, call: Callable[[], T], stop: threading.Event) -> T:
        """`call` until it answers, waiting with backoff after each TransientError (the store
        raises one when its database cannot be reached); _Stopped when `stop` is set meanwhile."""
        backoff = Backoff(base_s=self.settings.retry_base_s, cap_s=self.settings.retry_cap_s)
        while True:
            try:
                return call()
            except TransientError as exc:
                self._count("retries")
                delay = backoff.next_delay_s()
                log.warning("retrying in %.1f s: %s", delay, exc)
                if stop.wait(delay):
                    raise _Stopped() from exc

    # ---- notifications

    def _notify_loop(self, stop: threading.Event) -> None:
        """Take what is due, send it with a few senders at once, record how each attempt ended;
        again when a report is stored or every notify_poll_s."""
        channels = {channel for channel, _ in self.channels.targets()}
        if not channels:
            return
        senders = max(1, self.settings.senders)
        with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="reports-send") as pool:
            while not stop.is_set():
                self._wake_notifier.wait(self.settings.notify_poll_s)
                self._wake_notifier.clear()
                try:
                    due = self.store.claim_due(
                        now=self._clock(),
                        channels=channels,
                        limit=8 * senders,
                        lease=self.settings.notify_lease,
                    )
                    if not due:
                        continue
                    self.store.finish(list(pool.map(self._attempt, due)))
                    self._wake_notifier.set()  # perhaps more are due
                except TransientError as exc:
                    log.warning("notifications wait: the store failed: %s", exc)

    def _attempt(self, notification: Notification) -> Outcome:
        """Send one notification once; how it ended (never raises for a failed send)."""
        try:
            self._send(notification)
        except (TransientError, RejectedError) as exc:
            self._count("notification_failures")
            if notification.attempts >= self.settings.notify_attempts:
                self._count("notifications_given_up")
                log.error(
                    "%s of report %s given up after %d attempts: %s",
                    notification.channel,
                    notification.report_id,
                    notification.attempts,
                    exc,
                )
                return Outcome(notification_id=notification.notification_id, error=str(exc))
            backoff = Backoff(base_s=self.settings.notify_base_s, cap_s=self.settings.notify_cap_s)
            delay = 0.0
            for _ in range(notification.attempts):
                delay = backoff.next_delay_s()
            log.warning(
                "%s of report %s failed (attempt %d), again in %.0f s: %s",
                notification.channel,
                notification.report_id,
                notification.attempts,
                delay,
                exc,
            )
            return Outcome(
                notification_id=notification.notification_id,
                error=str(exc),
                retry_at=self._clock() + timedelta(seconds=delay),
            )
        self._count("notifications_sent")
        return Outcome(notification_id=notification.notification_id, sent_at=self._clock())

    def _send(self, notification: Notification) -> None:
        with self._lock:
            stored = self._stored.get(notification.report_id)
        if stored is None:
            stored = self.store.stored_report(notification.report_id)
        if stored is None:
            raise RejectedError(f"report {notification.report_id} is not in the store")
        body, html = stored
        if notification.channel == WEBHOOK:
            if self.channels.webhook is None:
                raise RejectedError("no webhook configured")
            self.channels.webhook.send(
                notification.target, webhook_body(body), delivery=str(notification.notification_id)
            )
        elif notification.channel == EMAIL:
            if self.channels.mail is None:
                raise RejectedError("no SMTP server configured")
            try:
                text = render_text(from_dict(body))
                recipients = recipients_of(notification.target)
            except (DecodeError, ConfigError) as exc:
                raise RejectedError(f"report {notification.report_id}: {exc}") from exc
            self.channels.mail.send(recipients, subject=mail_subject(body), text=text, html=html)
        else:
            raise RejectedError(f"unknown channel {notification.channel!r}")


def _at(record: DiagnosticRecord) -> datetime:
    return datetime.fromtimestamp(record.window_end_ms / 1000.0, UTC)
