"""What a bench run produced, as plain data: what the bench sent each agent, what each agent said
about itself when it stopped, and every message read back from the broker. The judge
(prognos/hil/judge.py) works from this alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prognos.hil.scenario import Scenario


@dataclass(frozen=True)
class Received:
    """One message on a vehicle's diag topic, as the broker delivered it."""

    vin: str
    payload: bytes
    received_s: float  # wall clock


@dataclass
class Inbox:
    messages: list[Received] = field(default_factory=list)
    foreign: int = 0  # messages on a topic that is no vehicle's diag topic of the fleet


@dataclass
class VehicleRun:
    """What the bench did with one vehicle, and what its agent counted."""

    vin: str
    frames_sent: int = 0  # CAN frames
    node_frames_sent: int = 0  # sensor-node link frames
    samples_sent: int = 0  # samples the agent's own decoders make of what was sent
    windows_with_data: int = 0
    records: int = 0  # records the agent assessed and spooled
    record_bytes: int = 0
    spooled: int = 0  # records still in its spool when it stopped: not delivered
    samples_taken: int = 0  # samples the agent put in its buffers
    windows: int = 0  # windows it assessed
    counters: dict[str, int] = field(default_factory=dict)  # its last status counters
    error: str = ""  # why its agent stopped early, if it did


@dataclass
class BenchRun:
    scenario: Scenario
    fleet: str
    start_ms: int  # day 0
    simulated_days: float
    wall_s: float
    interrupted: bool
    vehicles: dict[str, VehicleRun]
    inbox: Inbox
    work_dir: Path
    replayed: bool = False  # the agents replayed logs: samples were not counted step by step
