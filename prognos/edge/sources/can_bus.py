"""CAN acquisition: frames from a python-can bus, decoded with a DBC (cantools) into catalog samples.

`load_dbc` reads the vehicle's DBC; `CanDecoder` compiles, once, the frame ids that carry a
catalog signal, and turns each frame into samples in catalog units (DBC physical value *
scale + offset). It never raises on a frame: unknown, bad and out-of-range ones are counted.
`CanBusSource` reads a live bus: socketcan on gateways, slcan for serial adapters, virtual in
tests. `DbcSource` (a FrameSource of CAN frames) is what the live bus and the log replay share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import can
import cantools
from cantools.database import Database as DbcDatabase
from cantools.database import DecodeError as DbcDecodeError
from cantools.database import Message as DbcMessage
from cantools.database.errors import UnsupportedDatabaseFormatError

from prognos.catalog import Catalog, Signal
from prognos.config import CanSourceConfig, SourceConfig
from prognos.edge.buffers import Sample
from prognos.edge.sources import FrameSource, describe_error
from prognos.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

# CAN interfaces whose frames python-can dates with the host's wall clock as it parses them: an
# slcan adapter's lines carry no time. The gateway dates their samples by its own clock as it
# reads them: the same time in service, the simulated time on the HIL bench (docs/hil.md).
CLOCK_DATED_INTERFACES = frozenset({"slcan"})


def load_dbc(path: Path) -> DbcDatabase:
    """The CAN database in DBC file `path` (read leniently, as vehicle DBCs need)."""
    try:
        database = cantools.database.load_file(path, database_format="dbc", strict=False)
    except OSError as exc:
        raise ConfigError(f"cannot read DBC file {path}: {exc.strerror or describe_error(exc)}") from exc
    except UnsupportedDatabaseFormatError as exc:
        raise ConfigError(f"DBC file {path} is not a valid DBC database: {describe_error(exc)}") from exc
    if not isinstance(database, DbcDatabase):  # pragma: no cover - database_format="dbc" gives one
        raise ConfigError(f"DBC file {path} is not a CAN database")
    return database


@dataclass(frozen=True, slots=True)
class _Mapped:
    dbc_signal: str
    signal: Signal
    scale: float
    offset: float


@dataclass(frozen=True, slots=True)
class _Frame:
    message: DbcMessage
    length: int
    mapped: tuple[_Mapped, ...]


class CanDecoder:
    """Frames -> catalog samples, for the frame ids that carry a catalog signal.

    Counters (they go out in diagnostic records):
      frames_seen          every frame given to decode()
      frames_unknown       an id the DBC lacks or that carries no catalog signal, or a remote frame
      frames_bad           an error frame, a payload whose length differs from the DBC's, or one
                           cantools cannot decode
      values_out_of_range  a decoded value outside the catalog's [min, max] or not finite; not emitted
    A source adds the lines its interface could not parse to frames_seen and frames_bad.
    """

    def __init__(self, *, database: DbcDatabase, catalog: Catalog, origin: str = "the DBC") -> None:
        if not catalog.by_dbc:
            raise ConfigError("the signal catalog maps no DBC signal, so a CAN source has nothing to decode")
        by_message: dict[str, list[_Mapped]] = {}
        missing: list[str] = []
        messages = {message.name: message for message in database.messages}
        for (message_name, signal_name), signal in sorted(catalog.by_dbc.items()):
            message = messages.get(message_name)
            if message is None:
                missing.append(f"{message_name}.{signal_name} (no message {message_name})")
                continue
            if not any(s.name == signal_name for s in message.signals):
                missing.append(f"{message_name}.{signal_name} (no such signal)")
                continue
            assert signal.dbc is not None
            mapped = _Mapped(signal_name, signal, signal.dbc.scale, signal.dbc.offset)
            by_message.setdefault(message_name, []).append(mapped)
        if missing:
            raise ConfigError(f"{origin} lacks signals the catalog maps: {', '.join(missing)}")
        self._frames: dict[tuple[int, bool], _Frame] = {
            (messages[name].frame_id, bool(messages[name].is_extended_frame)): _Frame(
                messages[name], messages[name].length, tuple(mapped)
            )
            for name, mapped in by_message.items()
        }
        self.frames_seen = 0
        self.frames_unknown = 0
        self.frames_bad = 0
        self.values_out_of_range = 0

    @property
    def frame_ids(self) -> frozenset[tuple[int, bool]]:
        """(arbitration id, is extended) of every frame that carries a catalog signal."""
        return frozenset(self._frames)

    def decode(self, frame: can.Message) -> list[Sample]:
        """The catalog samples in one frame; [] for a frame that is unknown, bad or out of range."""
        self.frames_seen += 1
        if frame.is_error_frame:
            self.frames_bad += 1
            return []
        compiled = self._frames.get((frame.arbitration_id, bool(frame.is_extended_id)))
        if compiled is None or frame.is_remote_frame:
            self.frames_unknown += 1
            return []
        data = bytes(frame.data or b"")
        if len(data) != compiled.length:
            self.frames_bad += 1
            log.debug("frame 0x%X: %d bytes, DBC %d", frame.arbitration_id, len(data), compiled.length)
            return []
        try:
            decoded = compiled.message.decode_simple(data, decode_choices=False, scaling=True)
        except (DbcDecodeError, ValueError) as exc:
            self.frames_bad += 1
            log.debug("frame 0x%X: %s", frame.arbitration_id, exc)
            return []
        timestamp_s = float(frame.timestamp)
        samples: list[Sample] = []
        for mapped in compiled.mapped:
            raw = decoded.get(mapped.dbc_signal)
            if not isinstance(raw, int | float):  # absent from this multiplexed frame
                continue
            value = float(raw) * mapped.scale + mapped.offset
            if mapped.signal.in_range(value):
                samples.append(Sample(mapped.signal.path, timestamp_s, value))
            else:
                self.values_out_of_range += 1
        return samples

    def counters(self) -> dict[str, int]:
        return {
            "frames_seen": self.frames_seen,
            "frames_unknown": self.frames_unknown,
            "frames_bad": self.frames_bad,
            "values_out_of_range": self.values_out_of_range,
        }


def load_decoder(dbc_path: Path, catalog: Catalog) -> CanDecoder:
    """A decoder for the catalog's DBC signals, from DBC file `dbc_path`."""
    return CanDecoder(database=load_dbc(dbc_path), catalog=catalog, origin=f"DBC file {dbc_path}")


class DbcSource(FrameSource[can.Message]):
    """CAN frames decoded with a DBC: what the live bus and the log replay share. Its counters
    are the decoder's, with the lines an interface could not parse added (FrameSource)."""

    def __init__(self, *, decoder: CanDecoder, dated_by: Callable[[], float] | None = None) -> None:
        super().__init__(dated_by=dated_by)
        self.decoder = decoder

    def _decode(self, raw: can.Message) -> list[Sample]:
        return self.decoder.decode(raw)

    def _decoder_counters(self) -> dict[str, int]:
        return self.decoder.counters()


class CanBusSource(DbcSource):
    """A live CAN bus through python-can: `interface` is a python-can interface name
    ("socketcan", "slcan", "virtual", ...), `channel` its channel ("can0", "/dev/ttyACM0").
    `options` go to can.Bus as they are (e.g. {"sleep_after_open": 0} for slcan). `dated_by`:
    see FrameSource; from a config, the interfaces in CLOCK_DATED_INTERFACES get the gateway's
    clock."""

    def __init__(
        self,
        *,
        decoder: CanDecoder,
        interface: str,
        channel: str,
        bitrate: int | None = None,
        options: Mapping[str, Any] | None = None,
        dated_by: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(decoder=decoder, dated_by=dated_by)
        self.interface = interface
        self.channel = channel
        where = f"CAN interface {interface} channel {channel}"
        if interface not in can.VALID_INTERFACES:
            raise ConfigError(
                f"cannot open {where}: python-can has no interface {interface!r}; "
                f"it has {', '.join(sorted(can.VALID_INTERFACES))}"
            )
        kwargs = dict(options or {})
        if bitrate is not None:
            kwargs["bitrate"] = bitrate
        try:
            self._bus = can.Bus(interface=interface, channel=channel, **kwargs)
        except (can.CanError, OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"cannot open {where}: {describe_error(exc)}") from exc
        log.info("reading %s", where)

    @classmethod
    def from_config(cls, config: SourceConfig, *, catalog: Catalog, clock: Callable[[], float]) -> Self:
        if not isinstance(config, CanSourceConfig):
            raise TypeError(f"a CAN source is built from a CanSourceConfig, not {type(config).__name__}")
        return cls(
            decoder=load_decoder(config.dbc, catalog),
            interface=config.interface,
            channel=config.channel,
            bitrate=config.bitrate,
            dated_by=clock if config.interface in CLOCK_DATED_INTERFACES else None,
        )

    def _read_raw(self, timeout_s: float | None) -> can.Message | None:
        try:
            frame: can.Message | None = self._bus.recv(timeout=timeout_s)
        except (ValueError, IndexError, KeyError) as exc:
            # A serial adapter's line that python-can cannot parse (a cut-off line, a bad digit):
            # the line is consumed, so count it and go on with the next one.
            self._count_unreadable()
            log.debug("unreadable frame on %s %s: %s", self.interface, self.channel, exc)
            return None
        except (can.CanError, OSError) as exc:
            if not isinstance(exc.__cause__, UnicodeDecodeError):
                raise self._read_failed(exc) from exc
            # A serial line that is not text (noise, a wrong baud rate). python-can's slcan keeps
            # it in its line buffer and fails on every later line, so drop the pending input.
            self._count_unreadable()
            self._flush_input()
            return None
        return frame

    def _flush_input(self) -> None:
        flush = getattr(self._bus, "flush", None)
        if callable(flush):
            try:
                flush()
            except (can.CanError, OSError) as exc:
                raise self._read_failed(exc) from exc

    def _read_failed(self, exc: BaseException) -> TransientError:
        return TransientError(
            f"reading CAN interface {self.interface} channel {self.channel} failed: {describe_error(exc)}"
        )

    def _release(self) -> None:
        try:
            self._bus.shutdown()
        except (can.CanError, OSError) as exc:  # e.g. an adapter unplugged: nothing to close
            log.warning("closing CAN interface %s channel %s: %s", self.interface, self.channel, exc)
