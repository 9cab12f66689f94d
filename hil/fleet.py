"""A simulated fleet driven through real agents: each vehicle has its own simulator, its own
assessor and its own MQTT connection, and time runs `speedup` times faster than real time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.agent import VehicleAssessor
from edge.detector import Bundle
from edge.uplink import MqttUplink
from hil.simulator import VehicleSimulator, VehicleSpec
from prognos.catalog import Catalog
from prognos.errors import TransientError
from prognos.record import DiagnosticRecord, encode_record

log = logging.getLogger(__name__)


@dataclass
class FleetStats:
    windows: int = 0
    records_sent: int = 0
    bytes_sent: int = 0
    publish_failures: int = 0


@dataclass(frozen=True)
class FleetClock:
    """Simulated time: window k covers [start_ms + k * window_s, start_ms + (k + 1) * window_s)."""

    start_ms: int
    window_s: float
    speedup: float

    def window_start_ms(self, k: int) -> int:
        return self.start_ms + int(k * self.window_s * 1000)


def run_fleet(
    specs: list[VehicleSpec],
    catalog: Catalog,
    *,
    host: str,
    port: int,
    fleet: str,
    clock: FleetClock,
    windows: int | None,
    seed: int,
    stop: threading.Event,
    on_record: Callable[[DiagnosticRecord], None] | None = None,
    heartbeat_s: float = 3600.0,
    bundle: Bundle | None = None,
) -> FleetStats:
    """Run `windows` windows (None: until `stop` is set); every record goes out with QoS 1."""
    sims = [
        VehicleSimulator(s, catalog, seed=seed * 100_003 + i, epoch_ms=clock.start_ms)
        for i, s in enumerate(specs)
    ]
    agents = [
        VehicleAssessor(vin=s.vin, heartbeat_s=heartbeat_s)
        if bundle is None
        else VehicleAssessor(
            vin=s.vin,
            heartbeat_s=heartbeat_s,
            detectors=bundle.detectors,
            model_id=bundle.bundle_id,
            model_version=bundle.version,
            days_calibration=bundle.days_calibration,
        )
        for s in specs
    ]
    uplinks = [MqttUplink(host=host, port=port, fleet=fleet, vin=s.vin) for s in specs]
    stats = FleetStats()
    frames_seen = [0] * len(specs)
    try:
        for uplink in uplinks:
            uplink.wait_connected(30.0)
        k = 0
        started = time.monotonic()
        while (windows is None or k < windows) and not stop.is_set():
            start_ms = clock.window_start_ms(k)
            end_ms = clock.window_start_ms(k + 1)
            for i, (sim, agent, uplink) in enumerate(zip(sims, agents, uplinks, strict=True)):
                samples = sim.window(start_ms, clock.window_s)
                frames_seen[i] += sum(len(values) for _, values in samples.values())
                record = agent.window(start_ms, end_ms, samples, {"frames_seen": frames_seen[i]})
                stats.windows += 1
                if record is None:
                    continue
                payload = encode_record(record)
                try:
                    uplink.publish_record(payload)
                except TransientError as exc:
                    stats.publish_failures += 1
                    log.warning("%s: record %d not sent: %s", record.vin, record.seq, exc)
                    continue
                stats.records_sent += 1
                stats.bytes_sent += len(payload)
                if on_record is not None:
                    on_record(record)
            k += 1
            due = started + k * clock.window_s / clock.speedup
            # Simulated time never runs ahead of the wall clock: once caught up it goes live.
            due = max(due, time.monotonic() + (clock.window_start_ms(k + 1) / 1000.0 - time.time()))
            stop.wait(max(0.0, due - time.monotonic()))
    finally:
        for uplink in uplinks:
            uplink.close()
    return stats
