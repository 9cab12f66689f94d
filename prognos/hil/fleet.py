"""Simulated fleets.

`run_fleet` (`prognos edge simulate`) drives a fleet through bare assessors: each vehicle has
its own simulator, its own assessor and its own MQTT connection, without spool or interfaces,
and time runs `speedup` times faster than real time. The assessors and connections are made
by the gateway's own assembly (prognos/edge/assembly.py: make_assessor, open_uplink).

`prognos demo` runs a bench scenario in fleet mode instead (prognos/hil/bench.py, docs/hil.md): real
gateway agents fed through real interfaces, in a `ScenarioThread` beside the demo's other
work. `first_vehicles` cuts such a scenario down to a demo size, and `demo_dms` generates the
dealer data with a vehicle registry that describes exactly the vehicles the scenario drives.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prognos.catalog import Catalog
from prognos.config import BrokerConfig
from prognos.edge.assembly import make_assessor, open_uplink
from prognos.edge.detector import Bundle
from prognos.errors import ConfigError, TransientError
from prognos.hil.bench import Progress, run_scenario
from prognos.hil.judge import Judgement
from prognos.hil.scenario import HIL_DIR, Scenario
from prognos.record import DiagnosticRecord, encode_record
from prognos.security import FleetLogins
from prognos.sim.dealers import Row, make_dms
from prognos.sim.vehicle import VehicleSimulator, VehicleSpec

log = logging.getLogger(__name__)

DEMO_SCENARIO = HIL_DIR / "scenarios" / "fleet_demo.toml"
REGISTRY_FIELDS = ("vin", "model", "lot", "region")


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
    logins: FleetLogins | None = None,
) -> FleetStats:
    """Run `windows` windows (None: until `stop` is set); every record goes out with QoS 1."""
    sims = [
        VehicleSimulator(s, catalog, seed=seed * 100_003 + i, epoch_ms=clock.start_ms)
        for i, s in enumerate(specs)
    ]
    agents = [make_assessor(vin=s.vin, heartbeat_s=heartbeat_s, bundle=bundle) for s in specs]
    logins = logins or FleetLogins()
    broker = BrokerConfig(host=host, port=port)
    uplinks = [open_uplink(broker, fleet=fleet, vin=s.vin, auth=logins.vehicle_auth(s.vin)) for s in specs]
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


def first_vehicles(scenario: Scenario, count: int) -> Scenario:
    """`scenario` with only its first `count` vehicles, with their faults (all of them when it
    has no more). An expectation that names vehicles keeps those still there; one left with
    none is dropped."""
    if count >= len(scenario.vehicles):
        return scenario
    specs = scenario.vehicles[:count]
    kept = {spec.vin for spec in specs}
    expectations = []
    for expectation in scenario.expectations:
        if expectation.vehicles is None:
            expectations.append(expectation)
            continue
        vins = tuple(vin for vin in expectation.vehicles if vin in kept)
        if vins:
            expectations.append(dataclasses.replace(expectation, vehicles=vins))
    return dataclasses.replace(scenario, vehicles=specs, expectations=tuple(expectations))


def check_registry(
    registry: Sequence[Mapping[str, str]], specs: Sequence[VehicleSpec], *, origin: str
) -> None:
    """ConfigError unless the registry rows describe exactly the vehicles `specs` (VIN, model,
    lot and region, in order), so the dashboard's registry and the fleet's records agree."""
    described = [tuple(row.get(name, "") for name in REGISTRY_FIELDS) for row in registry]
    driven = [(spec.vin, spec.model, spec.lot, spec.region) for spec in specs]
    if described != driven:
        first = next(
            (i for i, pair in enumerate(zip(described, driven, strict=False)) if pair[0] != pair[1]),
            min(len(described), len(driven)),
        )
        raise ConfigError(
            f"{origin}: the demo's vehicle registry (generated like [vehicles] count = N with the "
            f"scenario's seed) does not describe the scenario's vehicles: {len(described)} registry rows "
            f"for {len(driven)} vehicles, first difference at vehicle {first}; the demo needs a "
            "scenario with a generated fleet ([vehicles] count)"
        )


def demo_dms(scenario: Scenario, *, fleet: str) -> dict[str, list[Row]]:
    """The demo's dealer-system data (prognos.sim.dealers.make_dms) for the scenario's fleet: its vehicle
    registry is generated with the scenario's seed and checked against the scenario's vehicles."""
    rows = make_dms(vehicles=len(scenario.vehicles), fleet_seed=scenario.seed, fleet=fleet)
    check_registry(rows["vehicle"], scenario.vehicles, origin=scenario.origin)
    return rows


class ScenarioThread:
    """A bench scenario (prognos.hil.bench.run_scenario: run, judge, report) in a thread; a fleet of more
    than SHARD_VEHICLES runs in shard processes of its own. `result` is the judgement and the
    JSON summary, `error` why the bench could not finish."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        host: str,
        port: int,
        fleet: str,
        report_dir: Path,
        progress: Progress | None = None,
        logins: Callable[[str, list[str]], FleetLogins] | None = None,
    ) -> None:
        self.scenario = scenario
        self._logins = logins
        self.report_dir = report_dir
        self.result: tuple[Judgement, dict[str, Any]] | None = None
        self.error: Exception | None = None
        self.wall_s = 0.0
        self.host, self.port, self.fleet = host, port, fleet
        self._progress = progress
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        """Run until the scenario ends or `stop` is set (the report then says it was interrupted)."""
        self._thread = threading.Thread(target=self._run, args=(stop,), name="prognos-fleet-run", daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        try:
            self.result = run_scenario(
                self.scenario,
                host=self.host,
                port=self.port,
                report_dir=self.report_dir,
                fleet=self.fleet,
                progress=self._progress,
                stop=stop,
                logins=self._logins,
            )
        except Exception as exc:  # handed to whoever started the run, which reports it
            log.debug("the fleet run failed", exc_info=True)
            self.error = exc
        finally:
            self.wall_s = time.monotonic() - started

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def interrupted(self) -> bool:
        return self.result is not None and bool(self.result[1].get("interrupted"))

    def join(self, timeout_s: float) -> bool:
        """Wait for the run to end; False if it is still running after `timeout_s`."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not (self._thread is not None and self._thread.is_alive())
