"""Sensor nodes on a serial port: frames of the node link (prognos/link.py) in, catalog samples out.

`NodeDecoder` is the pure part: link bytes in, samples out, with counters. `UartSource` reads
a serial port through pyserial and feeds it. A node's value becomes the sample of the catalog
signal that `catalog.by_node[(node id, channel name)]` names.

A sample's time is the gateway's clock when its bytes arrived. A node counts time in ticks
that wrap and start again at every boot, so its `window_start_ms` orders its windows but does
not date them; the frame goes out as its window closes, so arrival time is the window's end
within the UART's transfer time.

pyserial opens and configures the port; the source waits for bytes with poll() and reads them
itself. pyserial's own read waits with select(), which refuses a file descriptor numbered above
1023 (ValueError), as a process with many ports, files and connections open gets them.
"""

from __future__ import annotations

import logging
import math
import os
import select
import time
from collections.abc import Callable
from typing import Self

import serial

from prognos.catalog import Catalog
from prognos.config import SourceConfig, UartSourceConfig
from prognos.edge.buffers import Sample
from prognos.edge.sources import FrameSource, describe_error
from prognos.errors import ConfigError, TransientError
from prognos.link import CHANNEL_NAMES, FeaturesFrame, Frame, FrameDecoder, StatusFrame

log = logging.getLogger(__name__)

SEQ_MODULO = 1 << 16
READ_BYTES = 4096  # at most per read; a 115200-baud line brings about 11.5 kB/s


class NodeDecoder:
    """Link bytes in, samples of catalog signals out; no I/O. Never raises on bytes.

    Counters (they go out in diagnostic records):
      frames_ok            frames decoded
      frames_bad           frames dropped: CRC, COBS, length, version, kind, payload or oversize
                           (`link_errors()` by reason); a steady rate means a wrong baud rate,
                           wiring noise, or a node speaking another link version
      bytes_skipped        bytes of dropped frames and line noise
      frames_missed        frames a node sent that never arrived, from gaps in its sequence numbers
      node_restarts        a sequence number that started again (a node that rebooted starts at 0)
      values_unknown       values of a node id or channel the catalog does not map (a node set
                           to the wrong id, or a channel the catalog lacks); not emitted
      values_out_of_range  values outside the signal's catalog [min, max] or not finite; not emitted
    `status` holds each node's latest status frame (boots, reset cause, free memory, uptime).
    """

    def __init__(self, *, catalog: Catalog) -> None:
        if not catalog.by_node:
            raise ConfigError(
                "the signal catalog maps no sensor-node channel, so a UART source has nothing to read"
            )
        self._catalog = catalog
        self._link = FrameDecoder()
        self._next_seq: dict[int, int] = {}
        self.status: dict[int, StatusFrame] = {}
        self.frames_missed = 0
        self.node_restarts = 0
        self.values_unknown = 0
        self.values_out_of_range = 0

    def feed(self, data: bytes, received_s: float) -> list[Sample]:
        """The samples of every frame that `data` completes, stamped `received_s`."""
        samples: list[Sample] = []
        for frame in self._link.feed(data):
            self._follow_seq(frame)
            if isinstance(frame, FeaturesFrame):
                self._add_samples(frame, received_s, samples)
            elif isinstance(frame, StatusFrame):
                self.status[frame.node_id] = frame
        return samples

    @property
    def pending(self) -> int:
        """Bytes of a frame still arriving."""
        return self._link.pending

    def counters(self) -> dict[str, int]:
        return {
            "frames_seen": self._link.frames_ok + self._link.frames_bad,
            "frames_ok": self._link.frames_ok,
            "frames_bad": self._link.frames_bad,
            "bytes_skipped": self._link.bytes_skipped,
            "frames_missed": self.frames_missed,
            "node_restarts": self.node_restarts,
            "values_unknown": self.values_unknown,
            "values_out_of_range": self.values_out_of_range,
        }

    def link_errors(self) -> dict[str, int]:
        """frames_bad by reason (firmware/README.md lists the reasons)."""
        return dict(self._link.errors)

    def _follow_seq(self, frame: Frame) -> None:
        expected = self._next_seq.get(frame.node_id)
        self._next_seq[frame.node_id] = (frame.seq + 1) % SEQ_MODULO
        if expected is None or frame.seq == expected:
            return
        gap = (frame.seq - expected) % SEQ_MODULO
        if frame.seq == 0 or gap >= SEQ_MODULO // 2:
            self.node_restarts += 1
            log.info(
                "sensor node %d restarted its sequence at %d (expected %d)",
                frame.node_id,
                frame.seq,
                expected,
            )
        else:
            self.frames_missed += gap
            log.debug("sensor node %d: %d frames missing before seq %d", frame.node_id, gap, frame.seq)

    def _add_samples(self, frame: FeaturesFrame, received_s: float, samples: list[Sample]) -> None:
        for channel_id, value in frame.values:
            channel = CHANNEL_NAMES.get(channel_id)
            signal = None if channel is None else self._catalog.by_node.get((frame.node_id, channel))
            if signal is None:
                self.values_unknown += 1
            elif signal.in_range(value):
                samples.append(Sample(signal.path, received_s, value))
            else:
                self.values_out_of_range += 1


class UartSource(FrameSource[bytes]):
    """The sensor nodes on one serial port (e.g. /dev/ttyUSB0, /dev/serial0), 8N1.

    The port is opened exclusively, so a second reader cannot split the byte stream with this
    one. A port that cannot be opened is a ConfigError; a read that fails later (an adapter
    unplugged, any other failure of the port) is a TransientError, and the gateway's reader
    tries again with backoff. `clock` gives sample times (seconds since the epoch). Its raw
    unit is the bytes that have arrived, often part of a frame; its counters are `nodes`'."""

    def __init__(
        self,
        *,
        port: str,
        catalog: Catalog,
        baudrate: int = 115_200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.port = port
        self.baudrate = baudrate
        self.nodes = NodeDecoder(catalog=catalog)
        self._clock = clock
        try:
            self._serial = serial.Serial(port, baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot open sensor-node UART {port} at {baudrate} baud: {describe_error(exc)}"
            ) from exc
        self._fd: int = self._serial.fileno()  # pyserial opens it non-blocking
        self._poll = select.poll()  # any descriptor number, unlike select()
        self._poll.register(self._fd, select.POLLIN)
        log.info("reading sensor nodes on %s at %d baud", port, baudrate)

    @classmethod
    def from_config(cls, config: SourceConfig, *, catalog: Catalog, clock: Callable[[], float]) -> Self:
        if not isinstance(config, UartSourceConfig):
            raise TypeError(f"a UART source is built from a UartSourceConfig, not {type(config).__name__}")
        return cls(port=config.port, catalog=catalog, baudrate=config.baudrate, clock=clock)

    def _read_raw(self, timeout_s: float | None) -> bytes | None:
        """What has arrived, after waiting up to `timeout_s` for it; None if nothing came."""
        try:
            return self._read_bytes(timeout_s) or None
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransientError(
                f"reading sensor-node UART {self.port} failed: {describe_error(exc)}"
            ) from exc

    def _read_bytes(self, timeout_s: float | None) -> bytes:
        timeout_ms = None if timeout_s is None else max(0, math.ceil(timeout_s * 1000.0))
        if not self._poll.poll(timeout_ms):
            return b""
        try:
            data = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return b""  # woken, but the bytes went elsewhere
        if not data:  # readable without bytes: the device went away (pyserial says the same)
            raise serial.SerialException(
                "the port reports bytes to read but returns none (device disconnected?)"
            )
        return data

    def _decode(self, raw: bytes) -> list[Sample]:
        """The samples of the frames these bytes complete, dated by the clock now."""
        return self.nodes.feed(raw, self._clock())

    def _decoder_counters(self) -> dict[str, int]:
        return self.nodes.counters()

    def _release(self) -> None:
        self._serial.close()
