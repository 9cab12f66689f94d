"""The gateway agent: sources in, records out (docs/gateway.md).

    sources (CAN, replay, UART; one reader thread each) -> bounded queue -> sample buffers
    -> windows cut at multiples of window_s -> assessor (features, rules, detectors, trend)
    -> record -> spool (SQLite, before anything is sent) -> forwarder -> MQTT QoS 1

`Gateway` runs that loop on the parts it is given; it puts nothing together itself.
prognos/edge/assembly.py builds an agent from a gateway.toml (`build_gateway`), and is the one
place that knows how the parts fit; `prognos edge run` calls it.

Time is event time: a window closes once the samples (a replay's recorded time) or, with a
live source, the clock have passed its end by LATENESS_S. A replay therefore runs as fast as
the machine allows and gives the records the recording would have given live.

Model updates arrive on the vehicle's model topic and are installed between windows
(prognos/edge/ota.py); the retained status message carries the counters.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from prognos import __version__
from prognos.catalog import Catalog
from prognos.edge.agent import RULES_MODEL_ID, VehicleAssessor
from prognos.edge.buffers import Sample, SampleBuffers, Window
from prognos.edge.detector import Bundle, load_bundle
from prognos.edge.forwarder import Forwarder
from prognos.edge.ota import ModelStore
from prognos.edge.sources import SampleSource
from prognos.edge.spool import Spool, priority_for
from prognos.errors import PrognosError, TransientError
from prognos.record import encode_record
from prognos.status import status_message

log = logging.getLogger(__name__)

LATENESS_S = 2.0  # samples may arrive this late and still count in their window
QUEUE_BATCHES = 1024
READ_TIMEOUT_S = 0.5
FLUSH_ON_EXIT_S = 10.0
# Counters every record carries (the status message carries all of them).
RECORD_COUNTERS = ("frames_seen", "frames_bad", "frames_unknown", "values_out_of_range", "samples_dropped")


class Uplink(Protocol):
    """What the agent itself needs of its MQTT connection (prognos.edge.uplink.MqttUplink is the
    real one; the forwarder sends the records through it)."""

    def publish_status(self, status: dict[str, object]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelUpdates:
    """Model updates (docs/model-updates.md): the store they are installed in, the keys they must
    be signed with (none: every update is refused), and the inbox the uplink puts each one in as
    it arrives (on paho's thread, so it only enqueues; the agent installs between windows)."""

    store: ModelStore
    trusted: list[Ed25519PublicKey]
    inbox: queue.Queue[bytes] = field(default_factory=queue.Queue)


@dataclass
class GatewayStats:
    windows: int = 0
    records: int = 0
    record_bytes: int = 0
    samples: int = 0
    source_errors: int = 0
    model_updates: int = 0
    model_updates_rejected: int = 0
    model_rollbacks: int = 0
    last_model_error: str = ""
    counters: dict[str, int] = field(default_factory=dict)


class Gateway:
    """One vehicle's gateway agent. `run(stop)` works until `stop` is set or, when every source
    is a recording, until the recordings end; then it waits up to FLUSH_ON_EXIT_S for the
    spool to drain (what is left stays spooled for the next start)."""

    def __init__(
        self,
        *,
        sources: Sequence[SampleSource],
        assessor: VehicleAssessor,
        spool: Spool,
        forwarder: Forwarder,
        link: Uplink,
        catalog: Catalog,
        window_s: float,
        status_interval_s: float,
        models: ModelUpdates | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """The agent owns its parts from here on: run() closes them all as it ends. `forwarder`
        drains `spool` into `link`; the agent publishes its status on `link`. It keeps samples
        of `catalog`'s signals, assesses windows of `window_s` and refreshes the status every
        `status_interval_s`. `clock` is the time of live sources (the HIL bench's is simulated).
        Without `models`, no update is taken and a failing bundle falls back to the rules."""
        self.catalog = catalog
        self.assessor = assessor
        self.stats = GatewayStats()
        self._sources = list(sources)
        self._live = any(source.live for source in self._sources)
        self._spool = spool
        self._forwarder = forwarder
        self._uplink = link
        self._window_s = window_s
        self._status_interval_s = status_interval_s
        self._models = models
        self._clock = clock
        self._buffers = SampleBuffers(catalog.keys())
        self._queue: queue.Queue[list[Sample]] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._last_update_digest = ""
        self.spooled = 0  # records left in the spool when run() ended

    def run(self, stop: threading.Event) -> GatewayStats:
        readers = [
            threading.Thread(target=self._read, args=(source, stop), name=f"prognos-source-{i}", daemon=True)
            for i, source in enumerate(self._sources)
        ]
        for reader in readers:
            reader.start()
        next_start_s: float | None = None
        watermark_s = -math.inf
        next_status_s = 0.0
        try:
            while not stop.is_set():
                batch = self._next_batch()
                if batch:
                    self._buffers.add(batch)
                    self.stats.samples += len(batch)
                    watermark_s = max(watermark_s, max(s.timestamp_s for s in batch))
                    if next_start_s is None:
                        first_s = min(s.timestamp_s for s in batch)
                        next_start_s = math.floor(first_s / self._window_s) * self._window_s
                if self._live:
                    watermark_s = max(watermark_s, self._clock())
                finished = self._queue.empty() and not any(r.is_alive() for r in readers)
                if next_start_s is not None:
                    horizon_s = math.inf if finished else watermark_s - LATENESS_S
                    next_start_s = self._close_windows(next_start_s, horizon_s, watermark_s)
                self._install_updates()
                if time.monotonic() >= next_status_s:
                    self._publish_status()
                    next_status_s = time.monotonic() + self._status_interval_s
                if finished and not self._live:
                    break
        finally:
            stop.set()
            for reader in readers:
                reader.join(timeout=5.0)
            self._close()
        return self.stats

    # Windows and records.

    def _close_windows(self, start_s: float, horizon_s: float, watermark_s: float) -> float:
        """Assess every window that ended before `horizon_s`; the start of the next open one."""
        window_s = self._window_s
        while start_s + window_s <= horizon_s and start_s <= watermark_s:
            end_s = start_s + window_s
            samples = self._buffers.take_window(start_s, end_s)
            if samples:
                self._assess(start_s, end_s, samples)
            start_s = end_s
        return start_s

    def _assess(self, start_s: float, end_s: float, samples: Window) -> None:
        counters = self._counters()
        record_counters = {name: counters.get(name, 0) for name in RECORD_COUNTERS}
        start_ms, end_ms = round(start_s * 1000), round(end_s * 1000)
        try:
            record = self.assessor.window(start_ms, end_ms, samples, record_counters)
        except Exception:
            if self.assessor.model_id == RULES_MODEL_ID:
                raise
            log.exception("the running models failed on a window")
            self._roll_back()
            record = self.assessor.window(start_ms, end_ms, samples, record_counters)
        self.stats.windows += 1
        if record is None:
            return
        payload = encode_record(record)
        self._forwarder.submit(payload, priority_for(record.trigger))
        self.stats.records += 1
        self.stats.record_bytes += len(payload)

    # Sources.

    def _read(self, source: SampleSource, stop: threading.Event) -> None:
        """One source's reader thread: its samples into the queue, in batches, until it ends."""
        failures = 0
        while not stop.is_set() and not source.finished:
            try:
                samples = source.read(READ_TIMEOUT_S)
                failures = 0
            except TransientError as exc:
                failures += 1
                self.stats.source_errors += 1
                log.warning("source read failed (%d in a row): %s", failures, exc)
                stop.wait(min(30.0, 0.5 * 2**failures))
                continue
            except PrognosError as exc:
                self.stats.source_errors += 1
                log.error("source stopped: %s", exc)
                return
            while samples and not stop.is_set():
                try:
                    self._queue.put(samples, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def _next_batch(self) -> list[Sample]:
        """Up to a few hundred queued batches as one, waiting briefly when there are none."""
        try:
            batch = list(self._queue.get(timeout=0.1))
        except queue.Empty:
            return []
        for _ in range(256):
            try:
                batch.extend(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    # Models.

    def _use(self, bundle: Bundle) -> None:
        self.assessor.use_bundle(bundle)
        log.info("running model bundle %s %s", bundle.bundle_id, bundle.version)

    def _install_updates(self) -> None:
        if self._models is None:
            return
        while True:
            try:
                payload = self._models.inbox.get_nowait()
            except queue.Empty:
                return
            digest = hashlib.sha256(payload).hexdigest()
            if digest == self._last_update_digest:
                continue  # the retained update comes again after every reconnect
            self._last_update_digest = digest
            try:
                bundle = self._models.store.install(payload, self._models.trusted)
            except PrognosError as exc:
                self.stats.model_updates_rejected += 1
                self.stats.last_model_error = str(exc)
                log.error("model update refused, %s %s keeps running: %s", *self._running(), exc)
                continue
            self.stats.model_updates += 1
            self._use(bundle)

    def _roll_back(self) -> None:
        self.stats.model_rollbacks += 1
        try:
            assert self._models is not None
            self._use(load_bundle(self._models.store.rollback()))
        except (PrognosError, AssertionError) as exc:
            log.error("no bundle to roll back to (%s): running on rules alone", exc)
            self.assessor.use_detectors({}, RULES_MODEL_ID, __version__)

    def _running(self) -> tuple[str, str]:
        return self.assessor.model_id, self.assessor.model_version

    # Status and shutdown.

    def _counters(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for source in self._sources:
            for name, value in source.counters().items():
                totals[name] = totals.get(name, 0) + value
        totals.update(self._buffers.counters())
        return totals

    def _publish_status(self) -> None:
        counters = {**self._counters(), **self._forwarder.counters()}
        self.stats.counters = counters
        model_id, model_version = self._running()
        self._uplink.publish_status(
            status_message(
                model_id=model_id,
                model_version=model_version,
                windows=self.stats.windows,
                records=self.stats.records,
                source_errors=self.stats.source_errors,
                model_updates=self.stats.model_updates,
                model_updates_rejected=self.stats.model_updates_rejected,
                model_rollbacks=self.stats.model_rollbacks,
                last_model_error=self.stats.last_model_error,
                counters=counters,
            )
        )

    def _close(self) -> None:
        # Forward what can be forwarded first, so the final status counts what is really left.
        try:
            self._forwarder.flush(FLUSH_ON_EXIT_S)
        except TransientError as exc:
            log.warning("%s; they stay spooled for the next start", exc)
        self._publish_status()
        self._forwarder.close()
        self._uplink.close()
        self.spooled = self._spool.depth
        self._spool.close()
        self._close_sources()

    def _close_sources(self) -> None:
        for source in self._sources:
            try:
                source.close()
            except Exception:  # closing must go on for the others
                log.exception("closing a source failed")
