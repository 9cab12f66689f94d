"""One vehicle on the HIL bench: its simulator, its ends of the interfaces (virtual CAN, slcan,
socketcan, a sensor-node UART, or a recorded log) and its gateway agent, built from the
gateway.toml the rig writes by the same build_gateway that `prognos edge run` uses. The bench
(prognos.hil.bench) runs many rigs on one clock."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import can

from prognos.catalog import load_catalog
from prognos.config import broker_toml, load_gateway_config, toml_string
from prognos.edge.assembly import build_gateway
from prognos.edge.gateway import Gateway, GatewayStats
from prognos.edge.sources.can_bus import load_dbc, load_decoder
from prognos.edge.sources.uart import NodeDecoder
from prognos.hil.links import CanLink, LogRecorder, ReplayLog, SlcanPty, SocketCan, UartPty, VirtualCan
from prognos.hil.results import VehicleRun
from prognos.hil.scenario import BENCH_CATALOG, BENCH_DBC, Scenario
from prognos.hil.vehicle_bus import Frames, NodeFrame, SampleCounter, VehicleBus
from prognos.security import FleetLogins, write_secret
from prognos.sim.vehicle import VehicleSimulator, VehicleSpec

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 60.0


class VehicleRig:
    """One vehicle on the bench: its simulator, its ends of the interfaces and its agent."""

    def __init__(
        self,
        scenario: Scenario,
        index: int,
        spec: VehicleSpec,
        *,
        start_ms: int,
        work_dir: Path,
        host: str,
        port: int,
        fleet: str,
        models_dir: Path | None,
        logs_dir: Path | None,
        clock: Callable[[], float] | None,
        logins: FleetLogins,
    ) -> None:
        self.spec = spec
        self.result = VehicleRun(spec.vin)
        self.clock_s = start_ms / 1000.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        interfaces = scenario.interfaces
        catalog = load_catalog(BENCH_CATALOG)
        self.sim = VehicleSimulator(spec, catalog, seed=scenario.seed * 100_003 + index, epoch_ms=start_ms)
        self.bus = VehicleBus(database=load_dbc(BENCH_DBC), catalog=catalog, boot_s=start_ms / 1000.0)
        home = work_dir / spec.vin
        home.mkdir(parents=True, exist_ok=True)
        self.can: CanLink | None = None
        self.uart: UartPty | None = None
        self.gateway: Gateway | None = None
        try:
            if interfaces.can == "virtual":
                self.can = VirtualCan()
            elif interfaces.can == "slcan":
                self.can = SlcanPty()
            elif interfaces.can == "socketcan":
                self.can = SocketCan(interfaces.can_channel)
            elif interfaces.can == "replay":
                self.can = (
                    ReplayLog(interfaces.log)
                    if interfaces.log
                    else LogRecorder((logs_dir or home) / f"{spec.vin}.blf")
                )
            if interfaces.uart == "pty":
                self.uart = UartPty()
            self.config_path = home / "gateway.toml"
            self.config_path.write_text(
                self._config_text(
                    scenario, home, host=host, port=port, fleet=fleet, models_dir=models_dir, logins=logins
                )
            )
            config = load_gateway_config(self.config_path)
            # What the agent makes of the frames, with its own DBC, catalog and decoders.
            agent_catalog = load_catalog(config.catalog) if config.catalog else catalog
            self.expect_can: SampleCounter | None = None
            if self.can is not None:
                self.expect_can = SampleCounter(
                    database=load_dbc(scenario.agent.dbc),
                    catalog=agent_catalog,
                    decoder=load_decoder(scenario.agent.dbc, agent_catalog),
                )
            self.expect_nodes = NodeDecoder(catalog=agent_catalog) if self.uart is not None else None
            self.config = config
            self.clock: Callable[[], float] = clock or self._clock
        except BaseException:
            self.close()
            raise

    def _clock(self) -> float:
        return self.clock_s

    def _config_text(
        self,
        scenario: Scenario,
        home: Path,
        *,
        host: str,
        port: int,
        fleet: str,
        models_dir: Path | None,
        logins: FleetLogins,
    ) -> str:
        agent = scenario.agent
        credentials = logins.vehicles.get(self.spec.vin)
        password_file = None
        if credentials is not None:
            password_file = home / "broker-password"
            write_secret(password_file, credentials.password + "\n")
        broker = broker_toml(
            host,
            port,
            ca_file=logins.ca_file,
            username=credentials.username if credentials is not None else None,
            password_file=password_file,
            receipt_timeout_s=logins.receipt_timeout_s,
        )
        lines = [
            "# Written by the HIL bench for one simulated vehicle (docs/hil.md).",
            "[gateway]",
            f"fleet = {toml_string(fleet)}",
            f"vin = {toml_string(self.spec.vin)}",
            f"catalog = {toml_string(agent.catalog)}",
            f"window_s = {scenario.time.window_s!r}",
            f"heartbeat_s = {agent.heartbeat_s!r}",
            f"status_interval_s = {STATUS_INTERVAL_S!r}",
            "",
            broker,
            "[spool]",
            f"path = {toml_string(home / 'spool.db')}",
            "",
        ]
        if models_dir is not None:
            lines += ["[models]", f"dir = {toml_string(models_dir)}", ""]
        if self.can is not None:
            lines.append(self.can.source_toml(agent.dbc))
        if self.uart is not None:
            lines.append(self.uart.source_toml())
        return "\n".join(lines)

    # The agent.

    def start(self) -> None:
        self.gateway = build_gateway(self.config, clock=self.clock)
        self._thread = threading.Thread(target=self._serve, name=f"prognos-hil-{self.spec.vin}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self.gateway is not None
        try:
            self.gateway.run(self._stop)
        except Exception as exc:  # the agent's failure is the bench's finding, reported as such
            log.exception("the agent of %s stopped", self.spec.vin)
            self.result.error = f"{type(exc).__name__}: {exc}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop_soon(self) -> None:
        """Tell the agent to stop (it flushes its spool first); stop() waits for it."""
        self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.gateway is not None:
            self._collect(self.gateway)

    def _collect(self, gateway: Gateway) -> None:
        stats: GatewayStats = gateway.stats
        self.result.records = stats.records
        self.result.record_bytes = stats.record_bytes
        self.result.samples_taken = stats.samples
        self.result.windows = stats.windows
        self.result.counters = dict(stats.counters)
        self.result.spooled = gateway.spooled

    @property
    def samples_taken(self) -> int:
        return 0 if self.gateway is None else self.gateway.stats.samples

    @property
    def windows_done(self) -> int:
        return 0 if self.gateway is None else self.gateway.stats.windows

    # Frames.

    def deliver(self, event: RigEvent) -> None:
        """Send one CAN frame, or the node frames of one instant."""
        self.clock_s = max(self.clock_s, event.time_s)
        if isinstance(event.item, can.Message):
            assert self.can is not None
            self.can.send(event.item)
        else:
            assert self.uart is not None
            self.uart.write(event.item)

    def events(self, frames: Frames, nodes: list[NodeFrame]) -> list[RigEvent]:
        """This vehicle's frames of one step as events in time order (the node frames of one
        instant go out in one write, as the nodes' frames share the UART), counting them and the
        samples the agent will make of them."""
        can_events: list[RigEvent] = []
        if self.can is not None and len(frames):
            assert self.expect_can is not None
            self.result.frames_sent += len(frames)
            self.result.samples_sent += self.expect_can.count(frames)
            can_events = [
                RigEvent(float(frames.times_s[i]), self, frames.message(i)) for i in range(len(frames))
            ]
        node_events: list[RigEvent] = []
        if self.uart is not None and nodes:
            assert self.expect_nodes is not None
            self.result.node_frames_sent += len(nodes)
            for time_s, group in itertools.groupby(nodes, key=lambda n: n.time_s):
                payload = b"".join(n.payload for n in group)
                self.result.samples_sent += len(self.expect_nodes.feed(payload, time_s))
                node_events.append(RigEvent(time_s, self, payload))
        return list(heapq.merge(can_events, node_events, key=lambda e: e.time_s))

    def close(self) -> None:
        for link in (self.can, self.uart):
            if link is not None:
                link.close()


class RigEvent(NamedTuple):
    time_s: float
    rig: VehicleRig
    item: can.Message | bytes  # a CAN frame, or the node frames of one instant
