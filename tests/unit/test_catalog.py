"""The signal catalog: the shipped default and every way a catalog file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from prognos.catalog import (
    UNITS,
    VSS_PATH_PATTERN,
    Catalog,
    default_catalog,
    load_catalog,
    load_catalog_text,
)
from prognos.errors import ConfigError

SPEED: dict[str, Any] = {
    "path": "Vehicle.Speed",
    "unit": "km/h",
    "rate_hz": 1.0,
    "min": 0.0,
    "max": 250.0,
    "subsystem": "drive",
}
PRESSURE: dict[str, Any] = {
    "path": "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure",
    "unit": "kPa",
    "rate_hz": 1.0,
    "min": 0.0,
    "max": 600.0,
    "subsystem": "tires",
    "dbc": {"message": "TPMS11", "signal": "PRESSURE_FL", "scale": 0.5, "offset": -10.0},
}


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # a JSON string, number or boolean is also TOML


def catalog_text(*signals: dict[str, Any]) -> str:
    return "".join(
        "[[signal]]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in s.items())
        for s in signals
    )


def without(signal: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in signal.items() if k != key}


# --- the default catalog ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


def test_default_catalog_is_sound(catalog: Catalog) -> None:
    assert len(catalog) > 0
    for path, signal in catalog.items():
        assert VSS_PATH_PATTERN.fullmatch(path), path
        assert signal.path == path
        assert signal.unit in UNITS
        assert signal.rate_hz > 0
        assert signal.min < signal.max


def test_default_catalog_covers_the_record_subsystems(catalog: Catalog) -> None:
    subsystems = {signal.subsystem for signal in catalog.values()}
    assert {"battery", "tires", "brakes", "bearings", "motor"} <= subsystems
    assert len(catalog.subsystem("tires")) == 4
    assert len(catalog.subsystem("bearings")) == 12


def test_lookup_by_dbc(catalog: Catalog) -> None:
    signal = catalog.by_dbc[("TPMS11", "PRESSURE_RL")]
    assert signal.path == "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure"
    assert signal.unit == "kPa"
    for (message, name), sig in catalog.by_dbc.items():
        assert sig.dbc is not None
        assert (sig.dbc.message, sig.dbc.signal) == (message, name)


def test_lookup_by_node(catalog: Catalog) -> None:
    signal = catalog.by_node[(3, "vib_rms")]
    assert signal.path == "Vehicle.Chassis.Axle.Row2.Wheel.Left.Bearing.VibrationRMS"
    assert signal.subsystem == "bearings"
    for (node_id, channel), sig in catalog.by_node.items():
        assert sig.node is not None
        assert (sig.node.node_id, sig.node.channel) == (node_id, channel)


def test_every_source_is_indexed(catalog: Catalog) -> None:
    assert sum(s.dbc is not None for s in catalog.values()) == len(catalog.by_dbc)
    assert sum(s.node is not None for s in catalog.values()) == len(catalog.by_node)


def test_in_range(catalog: Catalog) -> None:
    speed = catalog["Vehicle.Speed"]
    assert speed.in_range(0.0)
    assert speed.in_range(250.0)
    assert not speed.in_range(-0.1)
    assert not speed.in_range(float("nan"))


# --- loading ----------------------------------------------------------------------------------


def test_load_text_with_all_keys() -> None:
    catalog = load_catalog_text(catalog_text(SPEED, PRESSURE))
    dbc = catalog[PRESSURE["path"]].dbc
    assert dbc is not None
    assert (dbc.scale, dbc.offset) == (0.5, -10.0)
    assert catalog["Vehicle.Speed"].dbc is None
    assert catalog.by_dbc[("TPMS11", "PRESSURE_FL")] is catalog[PRESSURE["path"]]


def test_dbc_scale_and_offset_default() -> None:
    plain = {**PRESSURE, "dbc": {"message": "TPMS11", "signal": "PRESSURE_FL"}}
    dbc = load_catalog_text(catalog_text(plain))[PRESSURE["path"]].dbc
    assert dbc is not None
    assert (dbc.scale, dbc.offset) == (1.0, 0.0)


def test_integers_are_accepted_for_numbers() -> None:
    signal = load_catalog_text(catalog_text({**SPEED, "rate_hz": 2, "min": 0, "max": 250}))
    assert signal["Vehicle.Speed"].rate_hz == 2.0


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(catalog_text(SPEED), encoding="utf-8")
    assert list(load_catalog(path)) == ["Vehicle.Speed"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read signal catalog"):
        load_catalog(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[signal]\npath = 1\n", "not valid TOML"),
        ("", r"no \[\[signal\]\] entries"),
        ("signal = 5\n", r"no \[\[signal\]\] entries"),
        ("signal = [1]\n", "signal 1: must be a table"),
        (catalog_text({**SPEED, "colour": "red"}), "unknown key 'colour'"),
        (catalog_text(without(SPEED, "unit")), "missing key 'unit'"),
        (catalog_text(without(SPEED, "path")), "missing key 'path'"),
        (catalog_text(without(SPEED, "subsystem")), "missing key 'subsystem'"),
        (catalog_text({**SPEED, "rate_hz": "fast"}), r"rate_hz has the wrong type \(str\)"),
        (catalog_text({**SPEED, "min": True}), r"min has the wrong type \(bool\)"),
        (catalog_text({**SPEED, "path": 7}), r"path has the wrong type \(int\)"),
        (catalog_text({**SPEED, "unit": "mph"}), "unit 'mph' is not one of"),
        (catalog_text({**SPEED, "rate_hz": 0}), "rate_hz must be a positive number"),
        (catalog_text({**SPEED, "min": 10.0, "max": 10.0}), "min below max"),
        (catalog_text({**SPEED, "min": 300.0}), "min below max"),
        (catalog_text(SPEED, SPEED), "Vehicle.Speed is defined twice"),
        (catalog_text({**SPEED, "path": "Speed"}), "must be a VSS path"),
        (catalog_text({**SPEED, "path": "Vehicle"}), "must be a VSS path"),
        (catalog_text({**SPEED, "path": "Vehicle.speed"}), "must be a VSS path"),
        (catalog_text({**SPEED, "path": "Vehicle..Speed"}), "must be a VSS path"),
        (catalog_text({**SPEED, "path": "Vehicle/Speed"}), "must be a VSS path"),
        (catalog_text({**SPEED, "dbc": {"message": "M"}}), "dbc needs signal"),
        (catalog_text({**SPEED, "node": {"id": "1", "channel": "c"}}), "id has the wrong type"),
        (catalog_text({**SPEED, "node": {"id": 1}}), "node needs channel"),
        (catalog_text({**SPEED, "node": {"id": 1, "channel": "c", "sacle": 1}}), "unknown key node.sacle"),
        (catalog_text({**SPEED, "node": {"id": 300, "channel": "c"}}), "node id must be 0-255"),
        (catalog_text({**SPEED, "subsystem": "Tires!"}), "subsystem 'Tires!' must match"),
    ],
)
def test_config_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_catalog_text(text, "test.toml")


def test_error_names_the_signal() -> None:
    text = catalog_text(SPEED, {**PRESSURE, "unit": "psi"})
    with pytest.raises(ConfigError, match=r"test\.toml: signal 2 \(Vehicle\.Chassis\..*\): unit"):
        load_catalog_text(text, "test.toml")


@pytest.mark.parametrize("scale", ["big", True, [1]])
def test_non_numeric_dbc_scale_is_a_config_error(scale: object) -> None:
    text = catalog_text({**PRESSURE, "dbc": {"message": "M", "signal": "S", "scale": scale}})
    with pytest.raises(ConfigError, match="dbc scale must be a number"):
        load_catalog_text(text)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# Fahrzeugkatalog f\xfcr Tests\n" + catalog_text(SPEED).encode())
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_catalog(path)
