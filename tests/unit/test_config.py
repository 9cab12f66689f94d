"""The gateway config: a valid file loads with its defaults; each mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from prognos.config import (
    BrokerConfig,
    CanSourceConfig,
    ReplaySourceConfig,
    UartSourceConfig,
    broker_toml,
    load_gateway_config,
    parse_gateway_config,
)
from prognos.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"

MINIMAL = """
[gateway]
fleet = "acme"
vin = "VIN123"

[spool]
path = "spool.db"

[[source]]
kind = "uart"
port = "/dev/ttyUSB0"
"""


def test_minimal_config_gets_defaults_and_relative_paths_resolve_beside_the_file() -> None:
    config = parse_gateway_config(MINIMAL, base=Path("/etc/prognos"))
    assert (config.fleet, config.vin) == ("acme", "VIN123")
    assert config.broker.host == "localhost" and config.broker.port == 1883
    assert config.spool.path == Path("/etc/prognos/spool.db")
    assert config.spool.max_bytes == 64 * 1024 * 1024
    assert config.sources == (UartSourceConfig("/dev/ttyUSB0", 115_200),)
    assert config.window_s == 600.0 and config.heartbeat_s == 3600.0
    assert config.models is None and config.catalog is None


def test_the_shipped_example_is_valid() -> None:
    config = load_gateway_config(EXAMPLE)
    kinds = {type(s) for s in config.sources}
    assert kinds == {CanSourceConfig, UartSourceConfig}
    assert config.spool.max_bytes == 64 * 1024 * 1024
    assert config.trusted_keys == (Path("/etc/prognos/model-signing.pub"),)


def test_can_and_replay_sources() -> None:
    text = (
        MINIMAL
        + """
[[source]]
kind = "can"
interface = "virtual"
channel = "bench"
dbc = "/data/car.dbc"
bitrate = 500000

[[source]]
kind = "replay"
path = "trace.asc"
dbc = "car.dbc"
realtime = true
"""
    )
    config = parse_gateway_config(text, base=Path("/srv"))
    assert config.sources[1] == CanSourceConfig(Path("/data/car.dbc"), "virtual", "bench", 500_000)
    assert config.sources[2] == ReplaySourceConfig(Path("/srv/trace.asc"), Path("/srv/car.dbc"), True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[spool]", "[spool]\nmax_gb = 2"), "unknown key 'max_gb' in [spool]"),
        (('vin = "VIN123"', 'vin = "VIN123"\nwindow = 60'), "unknown key 'window' in [gateway]"),
        (('vin = "VIN123"', 'vin = "vin 123"'), "VIN 'vin 123'"),
        (('fleet = "acme"', ""), "[gateway] fleet: missing"),
        (('path = "spool.db"', "path = 12"), "[spool] path: must be a string, not int"),
        (('port = "/dev/ttyUSB0"', 'port = "/dev/ttyUSB0"\nbaudrate = 12'), "baudrate: must be between"),
        (('kind = "uart"', 'kind = "ethernet"'), "'ethernet' is not one of can, replay, uart"),
        (("[gateway]", "[gateway]\nwindow_s = 0"), "window_s: must be a number >= 1"),
        (("[gateway]", "[gateway]\nwindow_s = 7200"), "heartbeat_s"),
        (("[spool]", "[log]\nlevel = 'loud'\n[spool]"), "[log] level: must be one of"),
        (("[spool]", "[brokr]\nhost = 'x'\n[spool]"), "unknown key 'brokr' in top level"),
        (("[spool]", "[broker]\nport = true\n[spool]"), "[broker] port: must be an integer, not bool"),
        (("[spool]", "[broker]\nreceipt_timeout_s = 0\n[spool]"), "receipt_timeout_s: must be a number >= 1"),
        (('kind = "uart"', 'kind = "uart"\nparity = "N"'), "unknown key 'parity' in [source 1]"),
        (("[gateway]", "[gateway]\nwindow_s = 1979-05-27"), "window_s: must be a number, not a date or time"),
    ],
)
def test_each_mistake_is_named(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in MINIMAL
    with pytest.raises(ConfigError) as caught:
        parse_gateway_config(MINIMAL.replace(old, new, 1), origin="gw.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("gw.toml")


def test_the_broker_table_written_for_a_gateway_reads_back() -> None:
    odd = 'a "quoted" back\\slash, tab\t, control\x01\x7f, é and 😀'
    text = MINIMAL + broker_toml(
        "broker.example",
        8883,
        ca_file=f"/ca/{odd}.pem",
        username=f"V{odd}",
        password_file=Path(f"/secrets/{odd}"),
    )
    assert parse_gateway_config(text).broker == BrokerConfig(
        "broker.example",
        8883,
        ca_file=Path(f"/ca/{odd}.pem"),
        username=f"V{odd}",
        password_file=Path(f"/secrets/{odd}"),
    )
    assert parse_gateway_config(MINIMAL + broker_toml("h", 1884)).broker == BrokerConfig("h", 1884)
    with_receipts = parse_gateway_config(MINIMAL + broker_toml("h", 1884, receipt_timeout_s=90.0)).broker
    assert with_receipts == BrokerConfig("h", 1884, receipt_timeout_s=90.0)


def test_a_gateway_needs_a_source() -> None:
    text = MINIMAL.split("[[source]]")[0]
    with pytest.raises(ConfigError, match="no \\[\\[source\\]\\]"):
        parse_gateway_config(text)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read gateway config"):
        load_gateway_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\nfleet=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_gateway_config(bad)
    bad.write_text("[gateway]\nwindow_s = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="too many digits"):
        load_gateway_config(bad)
    bad.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_gateway_config(bad)
