"""Log replay: recorded CAN traffic through python-can's log readers, decoded like a live bus.

The format follows the file's extension (REPLAY_FORMATS): candump `.log`, Vector `.asc` and
`.blf`, python-can `.csv`. Frames come as fast as they can be read, or, with `realtime`,
paced by their recorded timestamps through can.MessageSync (gaps longer than `max_gap_s`
are shortened to it). Samples keep the recorded timestamps.

A log that cannot be read is a ConfigError naming the file: missing, an unknown extension, a
header the reader refuses, or a line or block the reader cannot parse (the error says after
how many frames; the samples of those frames were already delivered). A reader stops at its
first unparseable line or block, so the rest of that file cannot be replayed. The ASC reader
is the exception: it skips lines it does not understand (ASC files hold many kinds of event
lines), so a garbled .asc line is skipped, and a truncated frame line, whose payload is
shorter than its length code, reaches the decoder and counts in frames_bad. A log from which
the reader gets no frame at all is a ConfigError too, which catches a file that is not of its
extension's format at all.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import can
from can.io.blf import BLFParseError
from can.io.generic import MessageReader

from prognos.catalog import Catalog
from prognos.config import ReplaySourceConfig, SourceConfig
from prognos.edge.sources import describe_error
from prognos.edge.sources.can_bus import CanDecoder, DbcSource, load_decoder
from prognos.errors import ConfigError

log = logging.getLogger(__name__)

# Suffix -> reader options. ASC times become absolute (from the file's start date), as the others are.
REPLAY_FORMATS: Mapping[str, Mapping[str, Any]] = {
    ".asc": {"relative_timestamp": False},
    ".blf": {},
    ".csv": {},
    ".log": {},
}
# What python-can's readers raise on a malformed file.
READ_ERRORS = (ValueError, IndexError, KeyError, EOFError, OSError, struct.error, zlib.error, BLFParseError)


class ReplaySource(DbcSource):
    """The frames of one log file, a recording: it ends (`finished`) at the end of the file.
    `_read_raw` ignores the timeout: the next frame is always there, after the pacing wait when
    `realtime`."""

    live = False

    def __init__(
        self, path: Path, *, decoder: CanDecoder, realtime: bool = False, max_gap_s: float = 60.0
    ) -> None:
        super().__init__(decoder=decoder)
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        options = REPLAY_FORMATS.get(self.suffix)
        if options is None:
            raise ConfigError(
                f"cannot replay {self.path}: unknown log format {self.suffix or '(no extension)'!r}; "
                f"replay reads {', '.join(sorted(REPLAY_FORMATS))}"
            )
        if not self.path.is_file():
            raise ConfigError(f"cannot read replay log {self.path}: no such file")
        if not max_gap_s > 0:
            raise ConfigError(f"replay max_gap_s must be positive, got {max_gap_s}")
        self._reader = self._open(options)
        frames: Iterable[can.Message] = self._reader
        if realtime:
            frames = can.MessageSync(self._reader, timestamps=True, skip=max_gap_s)
        self._frames: Iterator[can.Message] = iter(frames)
        self.frames_read = 0
        log.info("replaying %s%s", self.path, " in real time" if realtime else "")

    @classmethod
    def from_config(cls, config: SourceConfig, *, catalog: Catalog, clock: Callable[[], float]) -> Self:
        if not isinstance(config, ReplaySourceConfig):
            raise TypeError(f"a replay is built from a ReplaySourceConfig, not {type(config).__name__}")
        return cls(config.path, decoder=load_decoder(config.dbc, catalog), realtime=config.realtime)

    def _open(self, options: Mapping[str, Any]) -> MessageReader:
        try:
            if self.suffix != ".blf":
                reader: MessageReader = can.LogReader(self.path, **options)  # text readers read nothing yet
                return reader
            # The BLF reader parses the header as it opens: open the file here, so that a file
            # it refuses is closed again.
            stream = self.path.open("rb")
        except OSError as exc:
            raise ConfigError(
                f"cannot read replay log {self.path}: {exc.strerror or describe_error(exc)}"
            ) from exc
        try:
            return can.BLFReader(stream, **options)
        except READ_ERRORS as exc:
            stream.close()
            raise ConfigError(
                f"replay log {self.path} is not a valid {self.suffix} file: {describe_error(exc)}"
            ) from exc

    def _read_raw(self, timeout_s: float | None) -> can.Message | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            self.close()
            if self.frames_read == 0:
                raise ConfigError(
                    f"replay log {self.path} holds no CAN frame that the {self.suffix} reader understands"
                ) from None
            return None
        except READ_ERRORS as exc:
            self.close()
            raise ConfigError(
                f"replay log {self.path} is not a valid {self.suffix} file "
                f"(after frame {self.frames_read}): {describe_error(exc)}"
            ) from exc
        self.frames_read += 1
        return frame

    def _release(self) -> None:
        self._reader.stop()
