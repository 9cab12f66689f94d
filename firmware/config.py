"""Sensor-node settings and boot counter, files on its flash; runs on MicroPython and CPython.

The node reads them at boot; on CPython the tests check the validation.

`node.json` holds the settings (firmware/README.md documents every key). Each key missing from
the file takes its default; a key with a wrong type or out of range takes its default too, and
the reason goes into `Config.problems`, which the node logs at boot. A missing or unreadable
file means all defaults. The node always starts: a typo in the file must not leave a wheel
unmonitored, and the log says what was wrong.

`boot_count` holds one decimal number, the boots so far; `bump_boot_count()` adds one at
each boot and stores it through a temporary file and a rename, so a reset in the middle of
the write leaves the old count, not an empty file.
"""

import json
import os

CONFIG_PATH = "node.json"
BOOT_COUNT_PATH = "boot_count"

# Output data rates of the ADXL345 the node can keep up with (its FIFO holds 32 samples).
SAMPLE_RATES_HZ = (25, 50, 100, 200, 400, 800, 1600)
RANGES_G = (2, 4, 8, 16)
# The window buffer holds int16 counts: 16384 of them are 32 KiB of the node's heap.
MAX_WINDOW_SAMPLES = 16384

# (section or "", key, attribute, default, kind, low, high); kind "int", "float" or "id"
# (an int, or a name where the port names its UARTs).
_SPECS = (
    ("", "node_id", "node_id", 1, "int", 0, 255),
    ("uart", "id", "uart_id", 2, "id", 1, 2),  # UART0 is the REPL console
    ("uart", "baud", "uart_baud", 115200, "int", 1200, 5000000),
    ("uart", "tx", "uart_tx", 17, "int", 0, 48),
    ("uart", "rx", "uart_rx", 16, "int", 0, 48),
    ("uart", "txbuf", "uart_txbuf", 1024, "int", 256, 16384),
    ("i2c", "id", "i2c_id", 0, "int", 0, 1),
    ("i2c", "scl", "i2c_scl", 22, "int", 0, 48),
    ("i2c", "sda", "i2c_sda", 21, "int", 0, 48),
    ("i2c", "freq", "i2c_freq", 400000, "int", 10000, 1000000),
    ("accel", "addr", "accel_addr", 0x53, "int", 0x08, 0x77),
    ("accel", "axis", "accel_axis", 2, "int", 0, 2),
    ("accel", "range_g", "accel_range_g", 16, "int", 2, 16),
    ("", "sample_rate_hz", "sample_rate_hz", 800, "int", 25, 1600),
    ("", "window_ms", "window_ms", 10000, "int", 100, 60000),
    ("", "defect_hz", "defect_hz", 87.5, "float", 0.1, 10000.0),
    ("", "harmonics", "harmonics", 3, "int", 1, 10),
    ("temp_probe", "pin", "temp_pin", 34, "int", 0, 48),
    ("temp_probe", "offset_uv", "temp_offset_uv", 500000.0, "float", -10000000.0, 10000000.0),
    ("temp_probe", "uv_per_unit", "temp_uv_per_unit", 10000.0, "float", -10000000.0, 10000000.0),
    ("pressure_probe", "pin", "pressure_pin", 35, "int", 0, 48),
    ("pressure_probe", "offset_uv", "pressure_offset_uv", 250000.0, "float", -10000000.0, 10000000.0),
    ("pressure_probe", "uv_per_unit", "pressure_uv_per_unit", 2000.0, "float", -10000000.0, 10000000.0),
    ("", "status_every_s", "status_every_s", 60, "int", 1, 86400),
    ("", "wdt_ms", "wdt_ms", 10000, "int", 2000, 60000),
)
_SECTIONS = ("uart", "i2c", "accel", "temp_probe", "pressure_probe")
_TOP_KEYS = (
    "node_id",
    "sample_rate_hz",
    "window_ms",
    "defect_hz",
    "harmonics",
    "channels",
    "status_every_s",
    "wdt_ms",
)


class Config:
    """The node's settings; `problems` lists what the file got wrong (each replaced by its
    default). Attributes are those of _SPECS, plus `channels`, the names to send."""

    def __init__(self) -> None:
        self.node_id = 1
        self.uart_id: int | str = 2
        self.uart_baud = 115200
        self.uart_tx = 17
        self.uart_rx = 16
        self.uart_txbuf = 1024
        self.i2c_id = 0
        self.i2c_scl = 22
        self.i2c_sda = 21
        self.i2c_freq = 400000
        self.accel_addr = 0x53
        self.accel_axis = 2
        self.accel_range_g = 16
        self.sample_rate_hz = 800
        self.window_ms = 10000
        self.defect_hz = 87.5
        self.harmonics = 3
        self.temp_pin = 34
        self.temp_offset_uv = 500000.0
        self.temp_uv_per_unit = 10000.0
        self.pressure_pin = 35
        self.pressure_offset_uv = 250000.0
        self.pressure_uv_per_unit = 2000.0
        self.status_every_s = 60
        self.wdt_ms = 10000
        self.channels: list[str] = []
        self.problems: list[str] = []

    def as_dict(self) -> dict[str, object]:
        """The settings in the file's layout (what `node.json` with every key would hold)."""
        out: dict[str, object] = {}
        for section, key, attr, _, _, _, _ in _SPECS:
            value = getattr(self, attr)
            if section:
                table = out.get(section)
                if not isinstance(table, dict):
                    table = {}
                    out[section] = table
                table[key] = value
            else:
                out[key] = value
        out["channels"] = list(self.channels)
        return out


def load(path: str, channel_names: list[str]) -> Config:
    """The settings in the file at `path`, defaults where it is missing or wrong; never raises.
    `channel_names` are the channels the node can send (link.CHANNELS), in the order sent."""
    try:
        with open(path) as file:
            text = file.read()
    except OSError:
        cfg = parse("{}", channel_names)
        cfg.problems.insert(0, path + ": cannot be read, using the defaults")
        return cfg
    return parse(text, channel_names)


def parse(text: str, channel_names: list[str]) -> Config:
    """The settings in the JSON `text`, as load() reads a file."""
    cfg = Config()
    cfg.channels = list(channel_names)
    problems = cfg.problems
    try:
        data = json.loads(text)
    except ValueError:
        problems.append("not valid JSON, using the defaults")
        return cfg
    if not isinstance(data, dict):
        problems.append("not a JSON object, using the defaults")
        return cfg
    for key in data:
        if key not in _SECTIONS and key not in _TOP_KEYS:
            problems.append("unknown key " + key + ", ignored")
    tables = {}
    for section in _SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(section + ": must be an object, using its defaults")
            table = {}
        tables[section] = table
    for section, key, attr, default, kind, low, high in _SPECS:
        source = tables[section] if section else data
        if key not in source:
            continue
        value = source[key]
        name = section + "." + key if section else key
        if _valid(value, kind, low, high):
            setattr(cfg, attr, value)
        else:
            problems.append(_wrong(name, value, kind, low, high, default))
    for section in _SECTIONS:
        for key in tables[section]:
            if not _known(section, key):
                problems.append("unknown key " + section + "." + key + ", ignored")
    _check_choices(cfg)
    _check_window(cfg)
    if "channels" in data:
        _check_channels(cfg, data["channels"], channel_names)
    return cfg


def _valid(value: object, kind: str, low: float, high: float) -> bool:
    if isinstance(value, bool):  # JSON true/false, which Python also counts as integers
        return False
    if isinstance(value, str):
        return kind == "id" and len(value) > 0
    if isinstance(value, int) or (kind == "float" and isinstance(value, float)):
        return low <= value <= high  # NaN is never in range
    return False


def _wrong(name: str, value: object, kind: str, low: float, high: float, default: object) -> str:
    what = "a number" if kind == "float" else "an integer"
    if kind == "id":
        what = "an integer or a name"
    return "{}: must be {} {}-{}, not {}; using {}".format(
        name, what, low, high, json.dumps(value), json.dumps(default)
    )


def _known(section: str, key: str) -> bool:
    for spec in _SPECS:
        if spec[0] == section and spec[1] == key:
            return True
    return False


def _check_choices(cfg: Config) -> None:
    rates = ", ".join(str(r) for r in SAMPLE_RATES_HZ)
    if cfg.sample_rate_hz not in SAMPLE_RATES_HZ:
        _fall_back(cfg, "sample_rate_hz", "sample_rate_hz: must be one of " + rates)
    if cfg.accel_range_g not in RANGES_G:
        _fall_back(cfg, "accel_range_g", "accel.range_g: must be 2, 4, 8 or 16")
    if cfg.temp_uv_per_unit == 0:
        _fall_back(cfg, "temp_uv_per_unit", "temp_probe.uv_per_unit: must not be 0")
    if cfg.pressure_uv_per_unit == 0:
        _fall_back(cfg, "pressure_uv_per_unit", "pressure_probe.uv_per_unit: must not be 0")


def _fall_back(cfg: Config, attr: str, why: str) -> None:
    """Put the default of `attr` back, and say why."""
    for spec in _SPECS:
        if spec[2] == attr:
            value = getattr(cfg, attr)
            default = spec[3]
            setattr(cfg, attr, default)
            if why.endswith("not be 0"):
                cfg.problems.append("{}; using {}".format(why, json.dumps(default)))
            else:
                cfg.problems.append("{}, not {}; using {}".format(why, json.dumps(value), json.dumps(default)))
            return


def _check_window(cfg: Config) -> None:
    longest_ms = MAX_WINDOW_SAMPLES * 1000 // cfg.sample_rate_hz
    if cfg.window_ms > longest_ms:
        cfg.problems.append(
            "window_ms: {} ms at {} Hz is more than {} samples; using {}".format(
                cfg.window_ms, cfg.sample_rate_hz, MAX_WINDOW_SAMPLES, longest_ms
            )
        )
        cfg.window_ms = longest_ms


def _check_channels(cfg: Config, value: object, channel_names: list[str]) -> None:
    if not isinstance(value, list) or not value:
        cfg.problems.append("channels: must be a non-empty list of channel names; sending all")
        return
    wanted = []
    for name in value:
        if isinstance(name, str) and name in channel_names:
            wanted.append(name)
        else:
            cfg.problems.append("channels: unknown channel {}, ignored".format(json.dumps(name)))
    if not wanted:
        cfg.problems.append("channels: no known channel; sending all")
        return
    cfg.channels = [name for name in channel_names if name in wanted]


def read_boot_count(path: str = BOOT_COUNT_PATH) -> int:
    """Boots stored so far; 0 when the file is missing or holds no number."""
    try:
        with open(path) as file:
            text = file.read().strip()
    except OSError:
        return 0
    try:
        count = int(text)
    except ValueError:
        return 0
    return count if count >= 0 else 0


def bump_boot_count(path: str = BOOT_COUNT_PATH) -> int:
    """Add one boot to the stored count and return the new count. OSError when it cannot be
    stored (the caller still has the count, but the next boot will not)."""
    count = read_boot_count(path) + 1
    temp = path + ".tmp"
    with open(temp, "w") as file:
        file.write(str(count))
    try:
        os.rename(temp, path)
    except OSError:  # a filesystem whose rename does not replace (FAT): remove, then rename
        os.remove(path)
        os.rename(temp, path)
    return count
