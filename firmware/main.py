"""Runs only on the sensor node (MicroPython): boot, then sample, compute and send, forever.

Boot: read node.json (config.py), add one to the boot counter, read the reset cause, note all
three in node.log, send a status frame, start the sensors, the sample clock and the watchdog.

Loop, once per tick of the sample clock (SampleClock, tick_hz = max(10, sample_rate_hz // 16),
so the accelerometer's 32-sample FIFO is drained when about half full):
  feed the watchdog; drain the accelerometer FIFO into the window buffer; read the temperature
  and pressure probes once; and after ticks_per_window ticks end the window: compute the
  features, send a features frame, collect garbage, and send a status frame when one is due
  (every status_every_s seconds of uptime, at the end of a window).
Between window ends the loop allocates nothing. While a window is computed the accelerometer's
FIFO overflows; the node empties it afterwards, so the next window starts with fresh samples
and windows are back to back but for the compute time.

An exception that escapes the loop is written to node.log and the node restarts; if the loop
hangs instead, the watchdog restarts it. Either way the next status frame says why it started.
A file named `hold` on the flash keeps the node from starting, for maintenance with mpremote.
"""

import gc
import os
import sys

import config
import features
import hal
import link

LOG_PATH = "node.log"
HOLD_PATH = "hold"  # while this file exists the node does not start (see held())
LOG_MAX_BYTES = 4096  # node.log moves to node.log.1 beyond this, at boot: at most 8 KiB of flash


def log(message: str) -> None:
    """One line on the console (mpremote repl shows it) and in node.log."""
    line = "[{}] {}".format(hal.ticks_ms(), message)
    print(line)
    try:
        with open(LOG_PATH, "a") as file:
            file.write(line + "\n")
    except OSError as exc:
        print("cannot write", LOG_PATH, exc)


def rotate_log() -> None:
    try:
        size = os.stat(LOG_PATH)[6]
    except OSError:
        return
    if size > LOG_MAX_BYTES:
        try:
            os.rename(LOG_PATH, LOG_PATH + ".1")
        except OSError:  # FAT does not replace an existing file
            os.remove(LOG_PATH + ".1")
            os.rename(LOG_PATH, LOG_PATH + ".1")


def ticks_per_second(sample_rate_hz: int) -> int:
    """The sample clock's rate: about 16 accelerometer samples per tick, at least 10 ticks/s."""
    return max(10, sample_rate_hz // 16)


class Node:
    """The running node: its sensors, sample clock, window buffers, link and counters."""

    def __init__(self, cfg: config.Config, boot_count: int, reset_cause: int) -> None:
        self.cfg = cfg
        self.boot_count = boot_count
        self.reset_cause = reset_cause if 0 <= reset_cause <= 255 else 0
        self.tick_hz = ticks_per_second(cfg.sample_rate_hz)
        self.ticks_per_window = max(1, cfg.window_ms * self.tick_hz // 1000)
        samples = cfg.sample_rate_hz * self.ticks_per_window // self.tick_hz
        self.channel_ids = [link.CHANNEL_IDS[name] for name in cfg.channels]
        self.frames_sent = 0
        self.frames_dropped = 0
        self.uptime_s = 0
        self.windows = 0
        self._sub_ticks = 0  # ticks of the current uptime second
        self._window_ticks = 0
        self._next_status_s = cfg.status_every_s
        self._window_start_ms = 0
        self._watchdog: hal.Watchdog | None = None

        gc.collect()  # the window buffers are the largest blocks: allocate them first
        self.vibration = features.Vibration(
            capacity=samples + hal.FIFO_DEPTH,
            sample_rate_hz=cfg.sample_rate_hz,
            g_per_count=hal.G_PER_COUNT,
            defect_hz=cfg.defect_hz,
            harmonics=cfg.harmonics,
        )
        self.temperature = features.Probe(
            capacity=self.ticks_per_window, offset_uv=cfg.temp_offset_uv, uv_per_unit=cfg.temp_uv_per_unit
        )
        self.pressure = features.Probe(
            capacity=self.ticks_per_window,
            offset_uv=cfg.pressure_offset_uv,
            uv_per_unit=cfg.pressure_uv_per_unit,
        )
        self.encoder = link.FrameEncoder(cfg.node_id)
        self.link = hal.SerialLink(
            uart_id=cfg.uart_id, baud=cfg.uart_baud, tx=cfg.uart_tx, rx=cfg.uart_rx, txbuf=cfg.uart_txbuf
        )
        self.accel: hal.Accelerometer | None = None
        try:
            self.accel = hal.Accelerometer(
                i2c_id=cfg.i2c_id,
                scl=cfg.i2c_scl,
                sda=cfg.i2c_sda,
                freq=cfg.i2c_freq,
                addr=cfg.accel_addr,
                sample_rate_hz=cfg.sample_rate_hz,
                range_g=cfg.accel_range_g,
                axis=cfg.accel_axis,
            )
        except OSError as exc:  # no vibration, but temperatures, pressure and status go on
            log("accelerometer: " + str(exc) + "; running without vibration")
        self.temp_probe = hal.Probe(cfg.temp_pin)
        self.pressure_probe = hal.Probe(cfg.pressure_pin)
        self.clock = hal.SampleClock(self.tick_hz)

    def start(self) -> None:
        """Start the first window: an empty FIFO, the sample clock running."""
        if self.accel is not None:
            self.accel.restart()
        self.clock.start()
        self._window_start_ms = hal.ticks_ms()

    def run(self, watchdog: hal.Watchdog) -> None:
        """The main loop; never returns."""
        self._watchdog = watchdog
        clock = self.clock
        while True:
            ticks = clock.wait()
            watchdog.feed()
            self.step(ticks)

    # --- the work of each tick, without allocating ----------------------------------------------

    def step(self, ticks: int) -> None:
        """The work of `ticks` clock ticks (usually 1). Allocates nothing unless a window ends."""
        self._count_uptime(ticks)
        vibration = self.vibration
        if self.accel is not None:
            vibration.fill = self.accel.read_into(vibration.counts, vibration.fill)
        self.temperature.add(self.temp_probe.read_uv())
        self.pressure.add(self.pressure_probe.read_uv())
        self._window_ticks += ticks
        if self._window_ticks >= self.ticks_per_window:
            self.end_window()

    def _count_uptime(self, ticks: int) -> None:
        self._sub_ticks += ticks
        while self._sub_ticks >= self.tick_hz:
            self._sub_ticks -= self.tick_hz
            self.uptime_s += 1

    # --- once per window ------------------------------------------------------------------------

    def end_window(self) -> None:
        """Compute and send the window's features, start the next window, and send a status
        frame if one is due."""
        vibration = self.vibration
        vibration.compute()
        if self._watchdog is not None:  # the longest step of the loop: feed it once more
            self._watchdog.feed()
        self.temperature.compute()
        self.pressure.compute()
        values = [(channel_id, self.value(channel_id)) for channel_id in self.channel_ids]
        self.send(self.encoder.features(self._window_start_ms, values))
        self.windows += 1
        vibration.reset()
        self.temperature.reset()
        self.pressure.reset()
        # Ticks that passed while computing count as uptime, not as the next window's: its
        # samples start now, with what piled up in the FIFO meanwhile thrown away.
        self._count_uptime(self.clock.skip())
        if self.accel is not None:
            self.accel.restart()
        self._window_ticks = 0
        self._window_start_ms = hal.ticks_ms()
        gc.collect()
        if self.uptime_s >= self._next_status_s:
            self.send_status()
            while self._next_status_s <= self.uptime_s:
                self._next_status_s += self.cfg.status_every_s

    def value(self, channel_id: int) -> float:
        """The value of a channel for the window just computed; the ids are link.CHANNELS'
        (1 vib_rms ... 9 pressure_kpa), which are never reused."""
        if channel_id == 1:
            return self.vibration.rms
        if channel_id == 2:
            return self.vibration.peak
        if channel_id == 3:
            return self.vibration.crest
        if channel_id == 4:
            return self.vibration.kurtosis
        if channel_id == 5:
            return self.vibration.defect_db
        if channel_id == 6:
            return self.temperature.low
        if channel_id == 7:
            return self.temperature.mean
        if channel_id == 8:
            return self.temperature.high
        if channel_id == 9:
            return self.pressure.mean
        return features.NAN

    def send_status(self) -> None:
        self.send(
            self.encoder.status(
                boot_count=self.boot_count,
                reset_cause=self.reset_cause,
                mem_free=gc.mem_free(),
                uptime_s=self.uptime_s,
                frames_sent=self.frames_sent,
                frames_dropped=self.frames_dropped,
            )
        )

    def send(self, frame: memoryview) -> None:
        if self.link.send(frame):
            self.frames_sent += 1
        else:
            self.frames_dropped += 1


def boot() -> Node:
    """Read the config, count the boot, note why the node started, announce it to the gateway."""
    channel_names = [name for _, name, _ in link.CHANNELS]
    cfg = config.load(config.CONFIG_PATH, channel_names)
    try:
        boot_count = config.bump_boot_count(config.BOOT_COUNT_PATH)
    except OSError as exc:
        boot_count = config.read_boot_count(config.BOOT_COUNT_PATH) + 1
        log("boot counter not stored: " + str(exc))
    cause = hal.reset_cause()
    causes = dict(link.RESET_CAUSES)
    log(
        "boot {} ({}), node {}, {} Hz, {} ms windows".format(
            boot_count, causes.get(cause, cause), cfg.node_id, cfg.sample_rate_hz, cfg.window_ms
        )
    )
    for problem in cfg.problems:
        log("node.json: " + problem)
    node = Node(cfg, boot_count, cause)
    gc.collect()
    node.send_status()
    return node


def held() -> bool:
    """True when the file `hold` is on the flash: the node then leaves the board to mpremote.
    Once started, the ESP32's watchdog cannot be stopped, so a board whose program was
    interrupted (every mpremote command but repl interrupts it) resets within wdt_ms."""
    try:
        os.stat(HOLD_PATH)
    except OSError:
        return False
    log("held: the file hold is on the flash, so the node does not start (remove it and reset)")
    return True


def main() -> None:
    rotate_log()
    if held():
        return
    try:
        node = boot()
        watchdog = hal.Watchdog(node.cfg.wdt_ms)
        node.start()
        node.run(watchdog)
    except Exception as exc:  # the node cannot go on: keep the reason, then start again
        try:
            with open(LOG_PATH, "a") as file:
                file.write("[{}] stopped by an exception:\n".format(hal.ticks_ms()))
                sys.print_exception(exc, file)
        finally:
            sys.print_exception(exc)
            hal.reset()


if __name__ == "__main__":
    main()
