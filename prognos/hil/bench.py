"""The HIL bench runner: simulated vehicles drive real gateway agents through real interfaces,
and what the agents publish is read back from the broker.

Each vehicle gets its own gateway agent, built from a gateway.toml the bench writes (kept in
the work directory) by the same `prognos.edge.assembly.build_gateway` that `prognos edge run
--config` builds it with, with its own VIN, spool, MQTT connection, CAN interface and UART. The
agents run as threads of the bench's process rather than as `prognos edge run` subprocesses, for
one reason: simulated time. A subprocess would date what it reads by its own wall clock; in
process, each agent is given the bench's clock (build_gateway(config, clock=...)) and so sees
days pass in seconds, exactly as consistently as it would see them pass in service.

Time (docs/hil.md): the bench is the time master and moves in steps of one agent window. For
each step it sends every frame of the step, the CAN frames carrying their simulated times
(python-can Message.timestamp, kept by the virtual bus) and the node frames written while the
vehicle's clock shows their send time (the UART source dates them on arrival by that clock).
It then waits until the agent has taken every sample its decoders make of those frames (the
bench decodes what it sends with the agent's own DBC, catalog and decoders, so it knows the
count) and only then lets the clock pass the step's end. The agent closes a window two seconds
after the clock passes its end, so every sample lands in its window however fast the bench
goes, and a run gives the same records at any speed. `speedup` caps the pace; simulated time
never runs ahead of the wall clock.

With `can = "replay"` the vehicle's traffic is first recorded to a log (or a given log is
used) and the agent replays it as fast as it can read it, in event time, as `prognos edge run`
does with a replay source.
"""

from __future__ import annotations

import heapq
import logging
import multiprocessing
import queue
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prognos.edge.gateway import LATENESS_S
from prognos.edge.ota import ModelStore
from prognos.errors import ConfigError, PrognosError
from prognos.hil.judge import Judgement, judge
from prognos.hil.links import LogRecorder
from prognos.hil.listener import RecordListener
from prognos.hil.report import write_report
from prognos.hil.results import BenchRun, VehicleRun
from prognos.hil.rig import RigEvent, VehicleRig
from prognos.hil.scenario import Scenario
from prognos.hil.vehicle_bus import Frames, NodeFrame, WakeSchedule, empty_frames
from prognos.security import FleetLogins
from prognos.topics import check_fleet

log = logging.getLogger(__name__)

SYNC_TIMEOUT_S = 60.0  # an agent that takes no sample for this long has stopped working
DELIVERY_TIMEOUT_S = 30.0  # for the broker to hand the bench every record the agents sent
# Vehicles per bench process: pyserial waits for UART bytes with select(), which cannot watch a
# file descriptor above 1023, and each vehicle's agent and interfaces take about a dozen.
SHARD_VEHICLES = 64
SAMPLE_COST_S = 5e-6  # about what an agent spends on one sample, to pace the bench's waiting
CHUNK_VEHICLE_HOURS = 96.0  # simulated at once: bounds the bench's memory with big fleets


class BenchError(PrognosError):
    """The bench could not run the scenario to the end (an agent stopped, the broker went away)."""


Progress = Callable[[float], None]  # simulated days done so far


class StopFlag(Protocol):
    """A threading.Event, or a multiprocessing one in a shard's process."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class _Setup:
    """What every vehicle of a run shares; picklable, for shard processes."""

    scenario: Scenario
    start_ms: int
    host: str
    port: int
    fleet: str
    work_dir: Path
    logs_dir: Path | None
    models_dir: Path | None
    logins: FleetLogins


def run_bench(
    scenario: Scenario,
    *,
    host: str,
    port: int,
    fleet: str,
    work_dir: Path,
    logs_dir: Path | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    now_s: float | None = None,
    logins: FleetLogins | None = None,
) -> BenchRun:
    """Run `scenario` against the broker at host:port; the agents' records come back in the
    result's inbox. Agents' configs and spools go to `work_dir`, logs the bench records for a
    replay to `logs_dir`. `stop` ends the run early (it is then marked interrupted). A fleet of
    more than SHARD_VEHICLES runs in shards, one process each (docs/hil.md, "Fleet mode")."""
    stop = stop or threading.Event()
    wall_start = time.monotonic()
    now_s = time.time() if now_s is None else now_s
    start_ms = scenario.time.start_ms(now_s)
    if start_ms / 1000.0 > now_s:
        raise ConfigError(
            f"{scenario.origin}: [time] start lies in the future; "
            "the bench cannot run ahead of the wall clock"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    logins = logins or FleetLogins()
    setup = _Setup(
        scenario, start_ms, host, port, fleet, work_dir, logs_dir, _seed_models(scenario, work_dir), logins
    )
    listener = RecordListener(host=host, port=port, fleet=fleet, auth=logins.observer_auth())
    try:
        indices = list(range(len(scenario.vehicles)))
        if len(indices) <= SHARD_VEHICLES:
            vehicles, days, interrupted = _run_vehicles(setup, indices, stop, progress)
        else:
            vehicles, days, interrupted = _run_shards(setup, indices, stop, progress)
        expected = sum(vehicle.records for vehicle in vehicles.values())
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while listener.count() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # a duplicate delivery right behind the last record
        inbox = listener.inbox()
    finally:
        listener.close()
    return BenchRun(
        scenario=scenario,
        fleet=fleet,
        start_ms=start_ms,
        simulated_days=days,
        wall_s=time.monotonic() - wall_start,
        interrupted=interrupted,
        vehicles={spec.vin: vehicles[spec.vin] for spec in scenario.vehicles},
        inbox=inbox,
        work_dir=work_dir,
        replayed=scenario.interfaces.can == "replay",
    )


def _run_vehicles(
    setup: _Setup, indices: list[int], stop: StopFlag, progress: Progress | None
) -> tuple[dict[str, VehicleRun], float, bool]:
    """Run the scenario's vehicles `indices` in this process: (results, simulated days, interrupted)."""
    scenario = setup.scenario
    rigs: list[VehicleRig] = []
    runner = _Runner(scenario, setup.start_ms, stop, progress)
    try:
        for index in indices:
            rigs.append(
                VehicleRig(
                    scenario,
                    index,
                    scenario.vehicles[index],
                    start_ms=setup.start_ms,
                    work_dir=setup.work_dir,
                    host=setup.host,
                    port=setup.port,
                    fleet=setup.fleet,
                    models_dir=setup.models_dir,
                    logs_dir=setup.logs_dir,
                    clock=time.time if scenario.time.realtime else None,
                    logins=setup.logins,
                )
            )
        if scenario.interfaces.can == "replay":
            runner.replay(rigs)
        else:
            runner.live(rigs)
    finally:
        for rig in rigs:
            rig.stop_soon()
        for rig in rigs:
            rig.stop()
            rig.close()
    return {rig.spec.vin: rig.result for rig in rigs}, runner.simulated_days, runner.interrupted


def _run_shards(
    setup: _Setup, indices: list[int], stop: threading.Event, progress: Progress | None
) -> tuple[dict[str, VehicleRun], float, bool]:
    """The vehicles in shards of at most SHARD_VEHICLES, each in a process of its own; progress
    is the slowest shard's."""
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    halt = context.Event()
    shards = [indices[i : i + SHARD_VEHICLES] for i in range(0, len(indices), SHARD_VEHICLES)]
    workers = [
        context.Process(
            target=_shard_main, args=(setup, shard, k, messages, halt), name=f"prognos-hil-shard-{k}"
        )
        for k, shard in enumerate(shards)
    ]
    days = [0.0] * len(shards)
    results: dict[int, tuple[dict[str, VehicleRun], float, bool]] = {}
    failures: list[str] = []
    for worker in workers:
        worker.start()
    try:
        while len(results) < len(workers):
            if stop.is_set():
                halt.set()
            try:
                kind, k, payload = messages.get(timeout=0.2)
            except queue.Empty:
                if any(not w.is_alive() and i not in results for i, w in enumerate(workers)):
                    time.sleep(1.0)  # its last message may still be in the pipe
                    if messages.empty():
                        raise BenchError("a shard process of the bench died") from None
                continue
            if kind == "progress":
                days[k] = payload
                if progress is not None:
                    progress(min(days))
            elif kind == "error":
                failures.append(payload)
                halt.set()
            else:
                results[k] = payload
    finally:
        halt.set()
        for worker in workers:
            worker.join(60.0)
            if worker.is_alive():
                worker.kill()
    if failures:
        raise BenchError(failures[0])
    vehicles: dict[str, VehicleRun] = {}
    for part, _, _ in results.values():
        vehicles.update(part)
    return vehicles, min(r[1] for r in results.values()), any(r[2] for r in results.values())


def _shard_main(
    setup: _Setup,
    indices: list[int],
    k: int,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
    halt: StopFlag,
) -> None:
    """A shard process: its vehicles, its messages to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which sets `halt`
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = _run_vehicles(setup, indices, halt, lambda d: messages.put(("progress", k, d)))
    except Exception as exc:  # every failure goes to the parent, which reports it
        messages.put(
            ("error", k, f"{type(exc).__name__}: {exc}" if not isinstance(exc, PrognosError) else str(exc))
        )
        return
    messages.put(("done", k, result))


def _seed_models(scenario: Scenario, work_dir: Path) -> Path | None:
    """One model store for the fleet's agents, holding the scenario's bundle (read only here:
    the bench pushes no updates)."""
    if scenario.agent.models is None:
        return None
    store_dir = work_dir / "models"
    if store_dir.exists():
        shutil.rmtree(store_dir)
    ModelStore(store_dir).seed(scenario.agent.models)
    return store_dir


class _Runner:
    def __init__(self, scenario: Scenario, start_ms: int, stop: StopFlag, progress: Progress | None) -> None:
        self.scenario = scenario
        self.start_s = start_ms / 1000.0
        self.window_s = scenario.time.window_s
        self.steps = scenario.time.windows
        self.stop = stop
        self.progress = progress
        self.simulated_days = 0.0
        self.interrupted = False

    def _chunks(self, vehicles: int) -> Iterator[tuple[int, int]]:
        """(first step, step count) of each stretch simulated at once."""
        hours = min(24.0, max(1.0, CHUNK_VEHICLE_HOURS / max(1, vehicles)))
        per_chunk = max(1, int(hours * 3600.0 / self.window_s))
        for first in range(0, self.steps, per_chunk):
            yield first, min(per_chunk, self.steps - first)

    def _frames(self, rig: VehicleRig, first: int, count: int) -> tuple[Frames, list[NodeFrame]]:
        starts_ms = np.round((self.start_s + (first + np.arange(count)) * self.window_s) * 1000.0).astype(
            np.int64
        )
        samples = rig.sim.windows(starts_ms, self.window_s)
        chunk_start = self.start_s + first * self.window_s
        awake = (
            WakeSchedule.build(rig.sim, chunk_start, chunk_start + count * self.window_s)
            if self.scenario.interfaces.bus_sleep
            else None
        )
        frames = rig.bus.can_frames(samples, awake) if rig.can is not None else empty_frames()
        nodes = rig.bus.node_frames(samples, awake) if rig.uart is not None else []
        return frames, nodes

    def _report(self, steps_done: int) -> None:
        self.simulated_days = steps_done * self.window_s / 86_400.0
        if self.progress is not None:
            self.progress(self.simulated_days)

    def live(self, rigs: list[VehicleRig]) -> None:
        """Step by step through the agents' live interfaces."""
        for rig in rigs:
            rig.start()
        realtime = self.scenario.time.realtime
        speedup = self.scenario.time.speedup
        paced_from = time.monotonic()
        for first, count in self._chunks(len(rigs)):
            planned = [self._frames(rig, first, count) for rig in rigs]
            for step in range(first, first + count):
                step_start = self.start_s + step * self.window_s
                step_end = step_start + self.window_s
                if not realtime and self._wait(paced_from, step_start, step_end, speedup):
                    self.interrupted = True
                    return
                lists = []
                for rig, (frames, nodes) in zip(rigs, planned, strict=True):
                    events = rig.events(
                        frames.between(step_start, step_end),
                        [n for n in nodes if step_start <= n.time_s < step_end],
                    )
                    if events:
                        rig.result.windows_with_data += 1
                        lists.append(events)
                if realtime:
                    if self._send_on_time(heapq.merge(*lists, key=lambda e: e.time_s)):
                        self.interrupted = True
                        return
                else:
                    for events in lists:
                        for event in events:
                            event.rig.deliver(event)
                self._sync(rigs)
                for rig in rigs:
                    rig.clock_s = max(rig.clock_s, step_end)
                self._report(step + 1)
        self._finish(rigs)

    def _wait(self, paced_from: float, step_start: float, step_end: float, speedup: float | None) -> bool:
        """Hold the step back for the speedup cap and until the wall clock has passed its end;
        True if the run was stopped meanwhile."""
        due = time.monotonic()
        if speedup is not None:
            due = max(due, paced_from + (step_start - self.start_s) / speedup)
        due = max(due, time.monotonic() + (step_end - time.time()))
        while True:
            left = due - time.monotonic()
            if self.stop.wait(max(0.0, min(left, 1.0))):
                return True
            if left <= 0:
                return False

    def _send_on_time(self, events: Iterator[RigEvent]) -> bool:
        for event in events:
            left = event.time_s - time.time()
            if left > 0 and self.stop.wait(left):
                return True
            event.rig.deliver(event)
        return False

    def _sync(self, rigs: list[VehicleRig]) -> None:
        """Wait until every agent has taken every sample sent to it."""
        waiting = [rig for rig in rigs if rig.samples_taken < rig.result.samples_sent]
        last_progress = time.monotonic()
        taken = {rig.spec.vin: rig.samples_taken for rig in waiting}
        while waiting:
            # Sleep about as long as the agents need for what is left: polling often would
            # take the interpreter lock from them for nothing.
            left = sum(rig.result.samples_sent - rig.samples_taken for rig in waiting)
            time.sleep(min(0.02, max(0.0002, left * SAMPLE_COST_S)))
            for rig in waiting:
                if not rig.alive:
                    raise BenchError(f"the agent of {rig.spec.vin} stopped: {rig.result.error or 'it ended'}")
            now = time.monotonic()
            if any(rig.samples_taken != taken[rig.spec.vin] for rig in waiting):
                last_progress = now
                taken = {rig.spec.vin: rig.samples_taken for rig in waiting}
            elif now - last_progress > SYNC_TIMEOUT_S:
                rig = waiting[0]
                raise BenchError(
                    f"the agent of {rig.spec.vin} took {rig.samples_taken} of the {rig.result.samples_sent} "
                    f"samples sent to it and no more for {SYNC_TIMEOUT_S:.0f} s"
                )
            waiting = [rig for rig in waiting if rig.samples_taken < rig.result.samples_sent]

    def _finish(self, rigs: list[VehicleRig]) -> None:
        """Move every clock past the last window's end and wait until the agents assessed it."""
        end_s = self.start_s + self.steps * self.window_s + LATENESS_S + 1.0
        for rig in rigs:
            rig.clock_s = max(rig.clock_s, end_s)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while any(rig.windows_done < rig.result.windows_with_data and rig.alive for rig in rigs):
            if self.scenario.time.realtime and time.time() < end_s:
                time.sleep(0.1)
                deadline = time.monotonic() + SYNC_TIMEOUT_S
                continue
            if time.monotonic() > deadline:
                rig = next(r for r in rigs if r.windows_done < r.result.windows_with_data)
                raise BenchError(
                    f"the agent of {rig.spec.vin} assessed {rig.windows_done} of "
                    f"{rig.result.windows_with_data} windows within {SYNC_TIMEOUT_S:.0f} s of the end"
                )
            time.sleep(0.01)

    def replay(self, rigs: list[VehicleRig]) -> None:
        """Record each vehicle's traffic (unless a log was given), then let the agents replay it."""
        for rig in rigs:
            if isinstance(rig.can, LogRecorder):
                for first, count in self._chunks(1):
                    frames, _ = self._frames(rig, first, count)
                    for event in rig.events(frames, []):
                        rig.deliver(event)
                    if self.stop.is_set():
                        self.interrupted = True
                        return
                rig.can.close()
        for rig in rigs:
            rig.start()
        days = self.steps * self.window_s / 86_400.0
        while any(rig.alive for rig in rigs):
            if self.stop.wait(0.2):
                self.interrupted = True
                return
            if self.progress is not None:  # the share of the recorded samples the agents took
                done = [
                    min(1.0, r.samples_taken / r.result.samples_sent) for r in rigs if r.result.samples_sent
                ]
                self.progress(days * sum(done) / len(done) if done else 0.0)
        self.simulated_days = days
        for rig in rigs:
            if rig.result.error:
                raise BenchError(f"the agent of {rig.spec.vin} stopped: {rig.result.error}")


def run_scenario(
    scenario: Scenario,
    *,
    host: str,
    port: int,
    report_dir: Path,
    fleet: str | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    logins: Callable[[str, list[str]], FleetLogins] | None = None,
) -> tuple[Judgement, dict[str, Any]]:
    """Run, judge and report: `report_dir` gets summary.json, report.html and, for a replay of
    simulated traffic, the recorded logs (logs/VIN.blf). The agents' work files live in a
    temporary directory. `logins(fleet, vins)` says how the agents and the bench log in to the
    broker (none by default). The judgement and the JSON summary."""
    fleet = fleet or scenario.fleet or f"hil-{scenario.name}-{uuid.uuid4().hex[:8]}"
    check_fleet(fleet)
    with tempfile.TemporaryDirectory(prefix="prognos-hil-") as work:
        run = run_bench(
            scenario,
            host=host,
            port=port,
            fleet=fleet,
            work_dir=Path(work),
            logs_dir=report_dir / "logs",
            progress=progress,
            stop=stop,
            logins=logins(fleet, [spec.vin for spec in scenario.vehicles]) if logins else None,
        )
    judgement = judge(run)
    return judgement, write_report(run, judgement, report_dir)
