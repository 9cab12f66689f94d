"""The bench's ends of the real interfaces the agent reads: a python-can bus the vehicle's frames
go out on, a serial adapter (slcan) and the sensor nodes' UART emulated over pseudo-terminals,
and a log recorder for replays. Each says, as a gateway.toml [[source]] table, how the agent
opens its end.

- `VirtualCan`: can.Bus("virtual", preserve_timestamps=True), so frames keep their simulated
  times; the agent opens `kind = "can"`, `interface = "virtual"` on the same channel.
- `SlcanPty`: slcan text lines (`t1C14...` CR) to a pseudo-terminal; the agent opens
  `interface = "slcan"` on its other end, as it would a USB-serial CAN adapter.
- `SocketCan`: can.Bus("socketcan") on a real or vcan channel, which the agent opens too.
- `LogRecorder`: every frame into a log (can.Logger picks the format by the extension); the
  agent replays it with `kind = "replay"`.
- `UartPty`: sensor-node link frames to a pseudo-terminal; the agent opens `kind = "uart"` on
  its other end.
"""

from __future__ import annotations

import contextlib
import os
import tty
import uuid
from pathlib import Path
from typing import Any, Protocol

import can

from prognos.config import toml_string
from prognos.errors import ConfigError, TransientError


class BenchFrame(can.Message):
    """A CAN frame the bench sends. python-can's virtual bus deep-copies each frame for each
    receiver through the generic copy protocol; this copies the fields directly into a plain
    can.Message, which makes a send about three times cheaper. The agent receives the same frame."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any] | None) -> can.Message:
        return can.Message(
            timestamp=self.timestamp,
            arbitration_id=self.arbitration_id,
            is_extended_id=self.is_extended_id,
            is_remote_frame=self.is_remote_frame,
            is_error_frame=self.is_error_frame,
            channel=self.channel,
            dlc=self.dlc,
            data=bytes(self.data),
            is_fd=self.is_fd,
            is_rx=self.is_rx,
            bitrate_switch=self.bitrate_switch,
            error_state_indicator=self.error_state_indicator,
        )


class CanLink(Protocol):
    def send(self, frame: can.Message) -> None: ...

    def source_toml(self, dbc: Path) -> str:
        """The agent's [[source]] table for its end of this link."""
        ...

    def close(self) -> None: ...


class VirtualCan:
    def __init__(self) -> None:
        self.channel = f"hil-{uuid.uuid4().hex[:16]}"
        self._bus = can.Bus(interface="virtual", channel=self.channel, preserve_timestamps=True)

    def send(self, frame: can.Message) -> None:
        self._bus.send(frame)

    def source_toml(self, dbc: Path) -> str:
        return (
            f'[[source]]\nkind = "can"\ninterface = "virtual"\nchannel = {toml_string(self.channel)}\n'
            f"dbc = {toml_string(dbc)}\n"
        )

    def close(self) -> None:
        self._bus.shutdown()


class SocketCan:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        try:
            self._bus = can.Bus(interface="socketcan", channel=channel)
        except (can.CanError, OSError, ImportError) as exc:
            raise ConfigError(f"cannot open socketcan channel {channel} for the bench: {exc}") from exc

    def send(self, frame: can.Message) -> None:
        try:
            self._bus.send(frame)
        except (can.CanError, OSError) as exc:
            raise TransientError(f"sending on socketcan {self.channel} failed: {exc}") from exc

    def source_toml(self, dbc: Path) -> str:
        return (
            f'[[source]]\nkind = "can"\ninterface = "socketcan"\nchannel = {toml_string(self.channel)}\n'
            f"dbc = {toml_string(dbc)}\n"
        )

    def close(self) -> None:
        self._bus.shutdown()


class _Pty:
    """A pseudo-terminal in raw mode: the bench writes to the master, the agent opens the slave by
    its path. The bench keeps the slave open too, so the line never hangs up between opens."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except OSError as exc:
                raise TransientError(
                    f"writing to pseudo-terminal {self.port} failed: {exc.strerror}"
                ) from exc
            view = view[written:]

    def drain(self) -> bytes:
        """What the agent wrote to its end (an slcan adapter's commands), without waiting."""
        os.set_blocking(self._master, False)
        try:
            return os.read(self._master, 65536)
        except (BlockingIOError, OSError):
            return b""
        finally:
            os.set_blocking(self._master, True)

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SlcanPty:
    """A serial CAN adapter speaking slcan: each frame is one text line `t` + 3 hex digits of id +
    length + payload in hex + CR (`T` and 8 digits for an extended id)."""

    def __init__(self) -> None:
        self._pty = _Pty()
        self.port = self._pty.port

    def send(self, frame: can.Message) -> None:
        data = bytes(frame.data or b"")
        if frame.is_extended_id:
            line = f"T{frame.arbitration_id:08X}{len(data)}{data.hex().upper()}\r"
        else:
            line = f"t{frame.arbitration_id:03X}{len(data)}{data.hex().upper()}\r"
        self._pty.write(line.encode("ascii"))

    def source_toml(self, dbc: Path) -> str:
        return (
            f'[[source]]\nkind = "can"\ninterface = "slcan"\nchannel = {toml_string(self.port)}\n'
            f"bitrate = 500000\ndbc = {toml_string(dbc)}\n"
        )

    def drain(self) -> bytes:
        return self._pty.drain()

    def close(self) -> None:
        self._pty.close()


class LogRecorder:
    """Frames into a log file the agent then replays (.blf, .asc, .log or .csv)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = can.Logger(str(path))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot record the bench's CAN traffic to {path}: {exc}") from exc
        self._open = True

    def send(self, frame: can.Message) -> None:
        self._writer.on_message_received(frame)

    def source_toml(self, dbc: Path) -> str:
        return f'[[source]]\nkind = "replay"\npath = {toml_string(self.path)}\ndbc = {toml_string(dbc)}\n'

    def close(self) -> None:
        if self._open:
            self._open = False
            self._writer.stop()


class UartPty:
    """The sensor nodes' UART: link frames, byte for byte, to the agent's serial port."""

    def __init__(self) -> None:
        self._pty = _Pty()
        self.port = self._pty.port

    def write(self, payload: bytes) -> None:
        self._pty.write(payload)

    def source_toml(self) -> str:
        return f'[[source]]\nkind = "uart"\nport = {toml_string(self.port)}\n'

    def close(self) -> None:
        self._pty.close()


class ReplayLog:
    """A recorded log given by the scenario, replayed as it is."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, frame: can.Message) -> None:
        raise TypeError("a recorded log is replayed as it is")

    def source_toml(self, dbc: Path) -> str:
        return f'[[source]]\nkind = "replay"\npath = {toml_string(self.path)}\ndbc = {toml_string(dbc)}\n'

    def close(self) -> None:
        pass
