"""Runs under the MicroPython unix port: a stand-in `machine` for running the sensor-node
firmware (firmware/main.py) in tests. tests/integration/test_firmware_node.py puts this directory first on
MICROPYPATH, so `import machine` in firmware/hal.py finds it instead of the port's stub.

A scenario file, named by the environment variable PROGNOS_NODE_SHIM, scripts the hardware:

    {"ticks": 320,                  # timer ticks to run; then the shim ends the run (SystemExit)
     "record": "/tmp/x/record.json",  # where to write what the firmware did to the hardware
     "reset_cause": 1,              # what machine.reset_cause() says
     "accel": {"addr": 83, "z_hex": "...", "x": 0, "y": 0} or null,  # null: no device answers
     "adc": {"34": [uV, ...], "35": [uV, ...]},  # per pin, one value per read, cycling
     "line_stall_ticks": [a, b]}    # the line takes no bytes during ticks a <= t < b

Time is simulated: machine.idle() is the only place it passes. Each call moves the clock to
the timer's next period and runs the timer's callback, so a run takes as long as the firmware's
own work, however long its windows are. The accelerometer is an ADXL345 register model: it
produces samples at the output data rate written to BW_RATE as simulated time passes, into a
32-entry FIFO in stream mode (the oldest sample is lost when it is full); the samples are the
scenario's z counts in order, cycling. A UART whose id is a string writes to that device path
(a pseudo-terminal in the tests) without ever blocking: a byte is written only when poll()
says the line takes one.

The record holds the timer's settings, the watchdog's timeout and how often it was fed (and
the longest simulated gap between feeds), the accelerometer's registers as last written and
its samples produced, read and lost, the bytes the UART carried, whether the firmware called
machine.reset() (the run then ends with exit status 3), `writes_over_buffer` (writes that
would have blocked on an ESP32, whose UART.write waits when its transmit buffer is full) and
`alloc_ticks`, the ticks during whose work the firmware's heap grew (measured between
consecutive idle() calls; the shim's own hardware models allocate nothing while the firmware
runs, and its UART is written only at window ends, where the firmware allocates anyway).
"""

import binascii
import gc
import json
import os
import select
from array import array

TYPE_CHECKING = False  # MicroPython has no typing module; mypy reads the block below
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_FIFO_DEPTH = 32
_RATES = {0x08: 25, 0x09: 50, 0x0A: 100, 0x0B: 200, 0x0C: 400, 0x0D: 800, 0x0E: 1600, 0x0F: 3200}
_MAX_ALLOC_TICKS = 512


def _load_scenario() -> "dict[str, Any]":
    path = os.getenv("PROGNOS_NODE_SHIM")
    if not path:
        raise RuntimeError("set PROGNOS_NODE_SHIM to a scenario file")
    with open(path) as file:
        scenario: dict[str, Any] = json.loads(file.read())
    return scenario


_scenario = _load_scenario()


class _Sim:
    """Simulated time and what the firmware did, for the record."""

    def __init__(self) -> None:
        self.ticks = 0
        self.now_us = 0
        self.budget: int = _scenario["ticks"]
        self.timer: Timer | None = None
        self.accel: _Adxl345 | None = None
        self.uarts: list[UART] = []
        self.wdt: WDT | None = None
        self.alloc_ticks = array("i", bytearray(4 * _MAX_ALLOC_TICKS))
        self.n_alloc_ticks = 0
        self.alloc_at_exit = -1
        stall = _scenario.get("line_stall_ticks") or [0, 0]
        self.stall_from: int = stall[0]
        self.stall_to: int = stall[1]

    def stalled(self) -> bool:
        return self.stall_from <= self.ticks < self.stall_to

    def finish(self, reset: bool = False) -> None:
        for uart in self.uarts:
            uart.flush_at_exit()
        record = {
            "ticks": self.ticks,
            "timer": self.timer.record() if self.timer else None,
            "wdt": self.wdt.record() if self.wdt else None,
            "accel": self.accel.record() if self.accel else None,
            "uarts": [uart.record() for uart in self.uarts],
            "alloc_ticks": [self.alloc_ticks[i] for i in range(min(self.n_alloc_ticks, _MAX_ALLOC_TICKS))],
            "alloc_ticks_total": self.n_alloc_ticks,
            "reset": reset,
        }
        with open(_scenario["record"], "w") as file:
            file.write(json.dumps(record))
        raise SystemExit(3 if reset else 0)


_sim = _Sim()


def idle() -> None:
    """Let simulated time pass to the timer's next tick and run its callback."""
    alloc = gc.mem_alloc()
    if _sim.alloc_at_exit >= 0 and alloc > _sim.alloc_at_exit:
        if _sim.n_alloc_ticks < _MAX_ALLOC_TICKS:
            _sim.alloc_ticks[_sim.n_alloc_ticks] = _sim.ticks
        _sim.n_alloc_ticks += 1
    if _sim.ticks >= _sim.budget:
        _sim.finish()
    timer = _sim.timer
    if timer is None:
        _sim.now_us += 1000
    else:
        _sim.now_us += timer.period_us
        _sim.ticks += 1
        if _sim.accel is not None:
            _sim.accel.advance(timer.period_us)
        if timer.callback is not None:
            timer.callback(timer)
    _sim.alloc_at_exit = gc.mem_alloc()


def reset_cause() -> int:
    cause: int = _scenario.get("reset_cause", PWRON_RESET)
    return cause


def reset() -> None:
    """The firmware gave up and restarts the node: the run ends, with exit status 3."""
    _sim.finish(reset=True)


class Pin:
    IN = 1
    OUT = 3

    def __init__(self, id: int, mode: int = -1, pull: int = -1) -> None:
        self.id = id


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin: Pin, atten: int = ATTN_0DB) -> None:
        values = _scenario.get("adc", {}).get(str(pin.id))
        if not values:
            raise ValueError("the scenario has no ADC values for pin " + str(pin.id))
        self._values = array("i", values)
        self._at = 0
        self.atten = atten

    def read_uv(self) -> int:
        value: int = self._values[self._at]
        self._at += 1
        if self._at == len(self._values):
            self._at = 0
        return value


class _Adxl345:
    """Registers of an ADXL345 (datasheet register map), as far as the firmware uses them."""

    def __init__(self, spec: "dict[str, Any]") -> None:
        self.addr: int = spec.get("addr", 0x53)
        self.regs = bytearray(64)
        self.regs[0x00] = 0xE5
        self.regs[0x2C] = 0x0A  # 100 Hz after power-on
        self.z = array("h", bytearray(binascii.unhexlify(spec["z_hex"])))
        self.x: int = spec.get("x", 0)
        self.y: int = spec.get("y", 0)
        self.next = 0  # index in z of the oldest sample in the FIFO
        self.entries = 0
        self.lost = 0
        self.produced = 0
        self.popped = 0
        self.phase_us = 0
        self.config: dict[int, int] = {}  # register -> last value written (fixed keys: no growth)
        self.fifo_restarts = 0

    def measuring(self) -> bool:
        return bool(self.regs[0x2D] & 0x08)

    def advance(self, us: int) -> None:
        if not self.measuring():
            return
        period_us = 1000000 // _RATES.get(self.regs[0x2C] & 0x0F, 100)
        self.phase_us += us
        while self.phase_us >= period_us:
            self.phase_us -= period_us
            self.produced += 1
            if self.regs[0x38] & 0xC0 == 0:  # bypass: no FIFO
                continue
            if self.entries == _FIFO_DEPTH:  # stream mode: the oldest goes
                self.next = (self.next + 1) % len(self.z)
                self.lost += 1
            else:
                self.entries += 1

    def write(self, reg: int, value: int) -> None:
        self.config[reg] = value
        self.regs[reg] = value
        if reg == 0x38 and value & 0xC0 == 0:  # bypass mode empties the FIFO
            self.fifo_restarts += 1
            self.lost += self.entries
            self.next = (self.next + self.entries) % len(self.z)
            self.entries = 0

    def read_into(self, reg: int, buf: bytearray) -> None:
        """Allocates nothing: the firmware's sample loop calls it."""
        if reg == 0x39:
            buf[0] = self.entries
        elif reg == 0x32 and len(buf) == 6:
            z = self.z[self.next]
            if self.entries:
                self.entries -= 1
                self.next += 1
                if self.next == len(self.z):
                    self.next = 0
                self.popped += 1
            buf[0] = self.x & 0xFF
            buf[1] = (self.x >> 8) & 0xFF
            buf[2] = self.y & 0xFF
            buf[3] = (self.y >> 8) & 0xFF
            buf[4] = z & 0xFF
            buf[5] = (z >> 8) & 0xFF
        else:
            for i in range(len(buf)):
                buf[i] = self.regs[reg + i]

    def record(self) -> "dict[str, Any]":
        return {
            "registers": {str(reg): value for reg, value in self.config.items()},
            "fifo_restarts": self.fifo_restarts,
            "produced": self.produced,
            "popped": self.popped,
            "lost": self.lost,
        }


class I2C:
    def __init__(
        self,
        id: int,
        scl: Pin | None = None,
        sda: Pin | None = None,
        freq: int = 400000,
        timeout: int = 50000,
    ) -> None:
        self.id = id
        self.freq = freq
        spec = _scenario.get("accel")
        self._device: _Adxl345 | None = None
        if spec is not None:
            if _sim.accel is None:
                _sim.accel = _Adxl345(spec)
            self._device = _sim.accel

    def _find(self, addr: int) -> _Adxl345:
        device = self._device
        if device is None or device.addr != addr:
            raise OSError(19)  # ENODEV, as the ESP32 port says for an address nobody acknowledges
        return device

    def readfrom_mem_into(self, addr: int, memaddr: int, buf: bytearray, addrsize: int = 8) -> None:
        self._find(addr).read_into(memaddr, buf)

    def writeto_mem(self, addr: int, memaddr: int, buf: bytearray, addrsize: int = 8) -> None:
        device = self._find(addr)
        for i in range(len(buf)):
            device.write(memaddr + i, buf[i])


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id: int) -> None:
        self.id = id
        self.freq = 0
        self.period_us = 0
        self.callback: Callable[[Timer], None] | None = None

    def init(
        self,
        mode: int = PERIODIC,
        freq: int | None = None,
        period: int | None = None,
        callback: "Callable[[Timer], None] | None" = None,
        hard: bool | None = None,
    ) -> None:
        if mode != Timer.PERIODIC:
            raise ValueError("the shim's timer is periodic only")
        if freq is not None:
            self.freq = freq
            self.period_us = 1000000 // freq
        elif period is not None:
            self.period_us = period * 1000
            self.freq = 1000000 // self.period_us
        else:
            raise ValueError("give the timer a freq or a period")
        self.callback = callback
        _sim.timer = self

    def deinit(self) -> None:
        if _sim.timer is self:
            _sim.timer = None

    def record(self) -> "dict[str, Any]":
        return {"id": self.id, "freq": self.freq, "period_us": self.period_us}


class WDT:
    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        self.timeout_ms = timeout
        self.feeds = 0
        self.last_feed_us = _sim.now_us
        self.longest_gap_us = 0
        _sim.wdt = self

    def feed(self) -> None:
        gap = _sim.now_us - self.last_feed_us
        if gap > self.longest_gap_us:
            self.longest_gap_us = gap
        self.last_feed_us = _sim.now_us
        self.feeds += 1

    def record(self) -> "dict[str, Any]":
        return {"timeout_ms": self.timeout_ms, "feeds": self.feeds, "longest_gap_us": self.longest_gap_us}


class UART:
    def __init__(
        self,
        id: int | str,
        baudrate: int = 9600,
        bits: int = 8,
        parity: int | None = None,
        stop: int = 1,
        tx: int | None = None,
        rx: int | None = None,
        txbuf: int = 256,
    ) -> None:
        if not isinstance(id, str):
            raise ValueError("the shim's UART takes a device path as its id")
        self.path = id
        self.settings = {"baudrate": baudrate, "bits": bits, "tx": tx, "rx": rx, "txbuf": txbuf}
        self._limit = txbuf + 128  # an ESP32 UART: transmit buffer and hardware FIFO
        self._file = open(id, "wb")  # noqa: SIM115  # open for the UART's life, closed at the end of the run
        self._poll = select.poll()
        self._poll.register(self._file, select.POLLOUT)
        self._pending = bytearray()
        self.bytes_written = 0
        self.bytes_carried = 0
        self.writes = 0
        self.writes_over_buffer = 0
        _sim.uarts.append(self)

    def _pump(self) -> None:
        """Bytes to the line for as long as it takes them (not while it is stalled)."""
        if _sim.stalled():
            return
        sent = 0
        while sent < len(self._pending) and self._poll.poll(0):
            self._file.write(self._pending[sent : sent + 1])
            sent += 1
        if sent:
            self._pending = self._pending[sent:]
            self.bytes_carried += sent

    def write(self, buf: "bytes | bytearray | memoryview") -> int:
        self._pump()
        n = len(buf)
        if len(self._pending) + n > self._limit:
            self.writes_over_buffer += 1
        self._pending.extend(buf)
        self.bytes_written += n
        self.writes += 1
        self._pump()
        return n

    def txdone(self) -> bool:
        self._pump()
        return not self._pending

    def flush_at_exit(self) -> None:
        if not _sim.stalled():
            self._file.write(self._pending)
            self.bytes_carried += len(self._pending)
            self._pending = bytearray()
        self._file.close()

    def record(self) -> "dict[str, Any]":
        return {
            "path": self.path,
            "settings": self.settings,
            "bytes_written": self.bytes_written,
            "bytes_carried": self.bytes_carried,
            "writes": self.writes,
            "writes_over_buffer": self.writes_over_buffer,
            "pending_at_exit": len(self._pending),
        }
