"""Runs only on the sensor node (MicroPython): the hardware the firmware touches, over `machine`.

Nothing else in the firmware imports `machine`, so a test replaces the hardware by putting a
stand-in `machine` module first on the import path (tests/support/micropython_shim/machine.py).

    Accelerometer  ADXL345 on I2C: samples at its own output data rate into its 32-sample
                   FIFO; read_into() drains the FIFO into the window buffer
    Probe          an analog probe (temperature, pressure) on an ADC pin, in microvolts
    SampleClock    machine.Timer ticking at tick_hz; the main loop waits on it
    SerialLink     machine.UART to the gateway; send() never waits for the line
    Watchdog       machine.WDT
    reset_cause(), reset(), ticks_ms()

The hot path (SampleClock.wait, Accelerometer.read_into, Probe.read_uv) works in buffers
allocated here once and in small integers, so it allocates nothing on the heap.
"""

import time

import machine
from micropython import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from array import array

# ADXL345 registers and values (datasheet: register map).
_DEVID = const(0x00)
_BW_RATE = const(0x2C)
_POWER_CTL = const(0x2D)
_DATA_FORMAT = const(0x31)
_DATAX0 = const(0x32)
_FIFO_CTL = const(0x38)
_FIFO_STATUS = const(0x39)
ADXL345_ID = const(0xE5)
_MEASURE = const(0x08)
_FULL_RES = const(0x08)
_FIFO_BYPASS = const(0x00)
_FIFO_STREAM = const(0x80)
FIFO_DEPTH = const(32)
# Full resolution: 3.9 mg per count in every range (datasheet: scale factor, full resolution).
G_PER_COUNT = 0.0039
# Output data rate (Hz) -> BW_RATE rate code.
_RATE_CODES = {25: 0x08, 50: 0x09, 100: 0x0A, 200: 0x0B, 400: 0x0C, 800: 0x0D, 1600: 0x0E, 3200: 0x0F}
_RANGE_CODES = {2: 0, 4: 1, 8: 2, 16: 3}

_TICK_MASK = const(0x3FFFFFFF)  # the tick counter stays a small integer (no heap in the callback)
TIMER_ID = const(0)
# ESP32: the UART's hardware FIFO holds this much besides its transmit buffer.
UART_HW_FIFO = const(128)


class Accelerometer:
    """An ADXL345 on I2C in stream mode: it samples at `sample_rate_hz` into its FIFO; the
    node drains the FIFO at least every 32 samples. One axis (0 x, 1 y, 2 z) is kept.

    Counters: `overruns` (the FIFO was found full, so samples were probably lost),
    `discarded` (samples read with the window buffer already full), `errors` (failed I2C
    transfers; the samples of that read are lost)."""

    def __init__(
        self,
        *,
        i2c_id: int,
        scl: int,
        sda: int,
        freq: int,
        addr: int,
        sample_rate_hz: int,
        range_g: int,
        axis: int,
    ) -> None:
        if sample_rate_hz not in _RATE_CODES:
            raise ValueError("the ADXL345 has no output data rate of " + str(sample_rate_hz) + " Hz")
        if range_g not in _RANGE_CODES:
            raise ValueError("the ADXL345 has no range of " + str(range_g) + " g")
        self._i2c = machine.I2C(i2c_id, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)
        self._addr = addr
        self._axis = axis
        self._reg = bytearray(1)
        self._xyz = bytearray(6)
        self.overruns = 0
        self.discarded = 0
        self.errors = 0
        self._i2c.readfrom_mem_into(addr, _DEVID, self._reg)
        if self._reg[0] != ADXL345_ID:
            raise OSError("no ADXL345 at I2C address " + hex(addr) + " (device id " + hex(self._reg[0]) + ")")
        self._write(_POWER_CTL, 0)  # standby while configuring
        self._write(_BW_RATE, _RATE_CODES[sample_rate_hz])
        self._write(_DATA_FORMAT, _FULL_RES | _RANGE_CODES[range_g])
        self.restart()
        self._write(_POWER_CTL, _MEASURE)

    def _write(self, register: int, value: int) -> None:
        self._reg[0] = value
        self._i2c.writeto_mem(self._addr, register, self._reg)

    def restart(self) -> None:
        """Empty the FIFO (bypass mode clears it) and stream again: the next sample read is
        one taken from now on."""
        self._write(_FIFO_CTL, _FIFO_BYPASS)
        self._write(_FIFO_CTL, _FIFO_STREAM)

    def read_into(self, counts: "array[int]", fill: int) -> int:
        """Move every sample in the FIFO into counts[fill:], one axis; return the new fill.
        Samples past the end of `counts` are read (to empty the FIFO) and discarded."""
        reg = self._reg
        xyz = self._xyz
        axis = self._axis * 2
        capacity = len(counts)
        try:
            self._i2c.readfrom_mem_into(self._addr, _FIFO_STATUS, reg)
            entries = reg[0] & 0x3F
            if entries >= FIFO_DEPTH:
                self.overruns += 1
            for _ in range(entries):
                # One 6-byte read of DATAX0..DATAZ1 pops one FIFO entry (datasheet, "FIFO").
                self._i2c.readfrom_mem_into(self._addr, _DATAX0, xyz)
                if fill < capacity:
                    value = xyz[axis] | (xyz[axis + 1] << 8)
                    counts[fill] = value - 65536 if value & 0x8000 else value
                    fill += 1
                else:
                    self.discarded += 1
        except OSError:
            self.errors += 1
        return fill


class Probe:
    """An analog probe on an ADC pin (11 dB attenuation: about 0.15-2.45 V on an ESP32),
    read as calibrated microvolts."""

    def __init__(self, pin: int) -> None:
        self._adc = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_uv(self) -> int:
        return self._adc.read_uv()


class SampleClock:
    """machine.Timer ticking `tick_hz` times a second once started. The timer's callback only
    counts; the main loop calls wait(), which idles until the next tick and says how many ticks
    passed (more than one when the loop fell behind)."""

    def __init__(self, tick_hz: int) -> None:
        self.tick_hz = tick_hz
        self._count = 0
        self._seen = 0
        self._timer = machine.Timer(TIMER_ID)

    def start(self) -> None:
        self._timer.init(mode=machine.Timer.PERIODIC, freq=self.tick_hz, callback=self._tick)

    def _tick(self, timer: "machine.Timer") -> None:
        self._count = (self._count + 1) & _TICK_MASK

    def wait(self) -> int:
        """Idle until a tick; the ticks since the last wait() or skip()."""
        while self._count == self._seen:
            machine.idle()
        return self.skip()

    def skip(self) -> int:
        """The ticks since the last wait() or skip(), without waiting (0 if none)."""
        count = self._count
        ticks = (count - self._seen) & _TICK_MASK
        self._seen = count
        return ticks

    def stop(self) -> None:
        self._timer.deinit()


class SerialLink:
    """The UART to the gateway (8N1, no flow control).

    send() never waits for the line: on an ESP32, UART.write() returns once the bytes are in
    the UART's transmit buffer (`txbuf` bytes, plus its hardware FIFO) and blocks only when
    they do not fit. So the link counts the bytes handed over since the line was last idle
    (`UART.txdone()`), and a frame that would not fit is not written: send() returns False
    and the caller counts it as dropped. A stalled line (a gateway that stopped reading with
    flow control, a shorted TX) costs frames, never the main loop."""

    def __init__(self, *, uart_id: int | str, baud: int, tx: int, rx: int, txbuf: int) -> None:
        self._uart = machine.UART(uart_id, baudrate=baud, tx=tx, rx=rx, txbuf=txbuf)
        self._room = txbuf + UART_HW_FIFO
        self._queued = 0

    def send(self, frame: memoryview) -> bool:
        """Hand `frame` to the UART if it fits without waiting; False if it was not written
        (or only in part: the gateway drops the rest at the next delimiter)."""
        if self._queued and self._uart.txdone():
            self._queued = 0
        n = len(frame)
        if self._queued + n > self._room:
            return False
        written = self._uart.write(frame)
        self._queued += written or 0
        return written == n


class Watchdog:
    """machine.WDT: resets the node unless fed within `timeout_ms`. Once started it cannot be
    stopped."""

    def __init__(self, timeout_ms: int) -> None:
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self) -> None:
        self._wdt.feed()


def ticks_ms() -> int:
    """time.ticks_ms(): milliseconds since boot, wrapping (the stubs make the value opaque, to
    steer arithmetic to time.ticks_diff(); the link sends it as the number it is)."""
    return time.ticks_ms()  # type: ignore[return-value]


def reset_cause() -> int:
    """Why the node started: link.RESET_CAUSES, which uses the ESP32 port's numbers."""
    return machine.reset_cause()


def reset() -> None:
    """Restart the node (the next boot reports it as a soft reset on an ESP32)."""
    machine.reset()
