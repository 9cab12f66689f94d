"""Acquisition sources: where the agent's samples come from (docs/acquisition.md).

A source yields `Sample`s (VSS path, timestamp_s, value in catalog units) and keeps counters.
Every source derives from `FrameSource`, which does what all of them share: reading with a
timeout, the end of a recording, a read that fails because the source was closed meanwhile,
the counters and closing. An adapter writes only its raw read and its decoding:

    _read_raw(timeout_s)   wait up to timeout_s (None: until something comes) for the next raw
                           unit of its interface (a CAN frame, the bytes a UART had); None if
                           nothing came. A failing interface is a TransientError, one that can
                           never work a ConfigError; a recording calls close() at its end.
    _decode(raw)           the samples of that unit, through the adapter's pure decoder (which
                           counts and never raises)
    _decoder_counters()    that decoder's counters
    _release()             (optional) free the interface; close() calls it once
    from_config(...)       the source a [[source]] entry of gateway.toml describes

The adapters are `can_bus` (a live python-can bus), `replay` (a recorded log, through
python-can's readers) and `uart` (sensor nodes on a serial port). This package imports none of
python-can, cantools or pyserial: SOURCES names each kind's class, and `source_class` imports
it when it is chosen, with an error naming the extra to install when it is not there.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from prognos.catalog import Catalog
from prognos.config import SourceConfig
from prognos.edge.buffers import Sample
from prognos.errors import ConfigError, MissingDependencyError, TransientError

__all__ = [
    "SOURCES",
    "FrameSource",
    "Sample",
    "SampleSource",
    "describe_error",
    "open_source",
    "source_class",
]

# Source kind ([[source]] kind in gateway.toml) -> "module:Class", imported when chosen.
SOURCES: Mapping[str, str] = {
    "can": "prognos.edge.sources.can_bus:CanBusSource",
    "replay": "prognos.edge.sources.replay:ReplaySource",
    "uart": "prognos.edge.sources.uart:UartSource",
}
EXTRA = "edge"  # the extra that installs every source's packages
# What each kind imports that may be missing: import name -> the package that provides it.
SOURCE_PACKAGES: Mapping[str, Mapping[str, str]] = {
    "can": {"can": "python-can", "cantools": "cantools"},
    "replay": {"can": "python-can", "cantools": "cantools"},
    "uart": {"serial": "pyserial"},
}
MAX_ERROR_CHARS = 200
POLL_S = 0.1

Raw = TypeVar("Raw")


class SampleSource(Protocol):
    """What the agent reads samples from (every FrameSource is one)."""

    @property
    def finished(self) -> bool:
        """Nothing will come again: closed, or a recording at its end."""
        ...

    @property
    def live(self) -> bool:
        """Live traffic (the clock moves the agent's windows on), not a recording."""
        ...

    def read(self, timeout_s: float | None = None) -> list[Sample]:
        """The samples of the next frame that has any; [] if none came within timeout_s."""
        ...

    def counters(self) -> dict[str, int]: ...

    def close(self) -> None: ...


class FrameSource(ABC, Generic[Raw]):
    """The base of every source: raw units of an interface in, samples out (the module's
    docstring lists what an adapter writes).

    `dated_by`: a clock that dates the samples as they are read, for an interface whose frames
    carry no time of their own (an slcan adapter's lines); None keeps the times the decoder gives.

    Counters: the decoder's (each adapter documents its own), plus the units the interface
    itself could not parse (`_count_unreadable`), which count in frames_seen and frames_bad.
    """

    live: ClassVar[bool] = True

    def __init__(self, *, dated_by: Callable[[], float] | None = None) -> None:
        self.finished = False
        self.dated_by = dated_by
        self._unreadable = 0

    @classmethod
    def from_config(
        cls, config: SourceConfig, *, catalog: Catalog, clock: Callable[[], float]
    ) -> FrameSource[Any]:
        """The source `config` describes, decoding into `catalog`'s signals; `clock` is the
        gateway's (seconds since the epoch). A ConfigError if it cannot be opened."""
        raise NotImplementedError(f"{cls.__name__} is not built from a [[source]] entry")

    @abstractmethod
    def _read_raw(self, timeout_s: float | None) -> Raw | None:
        """The next raw unit, waiting up to `timeout_s`; None if none came."""

    @abstractmethod
    def _decode(self, raw: Raw) -> list[Sample]:
        """The samples of one raw unit; never raises on its content."""

    @abstractmethod
    def _decoder_counters(self) -> Mapping[str, int]:
        """The decoder's counters."""

    def _release(self) -> None:
        """Free the interface; called once, by close()."""

    def _count_unreadable(self) -> None:
        """A unit the interface could not parse (a garbled serial line): seen and bad."""
        self._unreadable += 1

    def read(self, timeout_s: float | None = None) -> list[Sample]:
        """The samples of the next unit that gives any, waiting up to `timeout_s` (None: until
        one comes); [] when none did in that time, and at once when the source is finished."""
        deadline_s = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.finished:
            remaining_s = None if deadline_s is None else max(0.0, deadline_s - time.monotonic())
            try:
                raw = self._read_raw(remaining_s)
            except TransientError:
                if self.finished:  # closed while it waited
                    return []
                raise
            if raw is not None:
                samples = self._decode(raw)
                if samples:
                    return self._dated(samples)
            if deadline_s is not None and time.monotonic() >= deadline_s:
                break
        return []

    def _dated(self, samples: list[Sample]) -> list[Sample]:
        if self.dated_by is None:
            return samples
        now_s = self.dated_by()
        return [Sample(sample.path, now_s, sample.value) for sample in samples]

    def __iter__(self) -> Iterator[Sample]:
        """Every sample until the source is finished (a live one: until closed)."""
        while not self.finished:
            yield from self.read(POLL_S)

    def counters(self) -> dict[str, int]:
        counts = dict(self._decoder_counters())
        if self._unreadable:
            for name in ("frames_seen", "frames_bad"):
                counts[name] = counts.get(name, 0) + self._unreadable
        return counts

    def close(self) -> None:
        if not self.finished:
            self.finished = True
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def source_class(kind: str) -> type[FrameSource[Any]]:
    """The class of source `kind` in SOURCES, imported now: a ConfigError naming the known kinds
    for an unknown one, a MissingDependencyError naming the extra when its packages are missing."""
    target = SOURCES.get(kind)
    if target is None:
        raise ConfigError(f"unknown source {kind!r}; choose one of {', '.join(sorted(SOURCES))}")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        packages = SOURCE_PACKAGES.get(kind, {})
        missing = packages.get((exc.name or "").partition(".")[0])
        if missing is None:
            raise
        raise MissingDependencyError(
            f"the {kind} source needs {missing}, which is not installed: pip install 'prognos[{EXTRA}]'"
        ) from exc
    cls: type[FrameSource[Any]] = getattr(module, attribute)
    return cls


def open_source(config: SourceConfig, *, catalog: Catalog, clock: Callable[[], float]) -> FrameSource[Any]:
    """The source a [[source]] entry describes, through SOURCES; a ConfigError if it cannot be
    opened."""
    return source_class(config.kind).from_config(config, catalog=catalog, clock=clock)


def describe_error(exc: BaseException) -> str:
    """A foreign exception as one short printable line, for a ConfigError message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
