"""Acquisition sources: where the agent's samples come from (docs/acquisition.md).

A source yields `Sample`s (VSS path, timestamp_s, value in catalog units) and keeps counters.
The sources are adapters: `can_bus` reads a live python-can bus, `replay` a recorded log. This
package itself imports neither python-can nor cantools; SOURCES names each source's class, and
`source_class` imports it when it is chosen, with an error naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from prognos.edge.buffers import Sample
from prognos.errors import ConfigError, MissingDependencyError

__all__ = ["SOURCES", "Sample", "SampleSource", "describe_error", "source_class"]

SOURCES = {
    "can": "prognos.edge.sources.can_bus:CanBusSource",
    "replay": "prognos.edge.sources.replay:ReplaySource",
}
ADAPTER_PACKAGES = frozenset({"can", "cantools", "serial"})
MAX_ERROR_CHARS = 200


class SampleSource(Protocol):
    """What the agent reads samples from."""

    finished: bool

    def read(self, timeout_s: float | None = None) -> list[Sample]:
        """The samples of the next frame; [] if none came within timeout_s or it held none."""
        ...

    def counters(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def source_class(name: str) -> Callable[..., SampleSource]:
    """The class of source `name` in SOURCES, imported now."""
    target = SOURCES.get(name)
    if target is None:
        raise ConfigError(f"unknown source {name!r}; choose one of {', '.join(sorted(SOURCES))}")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in ADAPTER_PACKAGES:
            raise
        raise MissingDependencyError(
            f"the {name} source needs python-can and cantools: pip install 'prognos[edge]'"
        ) from exc
    cls: Callable[..., SampleSource] = getattr(module, attribute)
    return cls


def describe_error(exc: BaseException) -> str:
    """A foreign exception as one short printable line, for a ConfigError message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
