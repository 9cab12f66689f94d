"""HIL scenario files: every scenario shipped in prognos/hil/scenarios loads; a bad file is refused with
one ConfigError that names the file, the table and the key; arbitrary text raises nothing else."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prognos.edge import SHIPPED_BUNDLE
from prognos.errors import ConfigError
from prognos.hil.scenario import BENCH_CATALOG, BENCH_DBC, load_scenario, parse_scenario
from prognos.sim.vehicle import FAULT_KINDS

SCENARIOS = Path(__file__).resolve().parents[2] / "prognos" / "hil" / "scenarios"
MINIMAL = """
name = "minimal"

[time]
duration_days = 2

[[vehicle]]
vin = "PRGTEST0000000001"

[[expect]]
kind = "no_alert"
"""


def with_(text: str, extra: str) -> str:
    return text + "\n" + extra


@pytest.mark.parametrize(
    "path", sorted(SCENARIOS.rglob("*.toml")), ids=lambda p: str(p.relative_to(SCENARIOS))
)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.vehicles and scenario.expectations
    assert scenario.time.duration_days * 86_400 >= scenario.time.window_s


def test_the_library_covers_every_fault_kind_a_healthy_fleet_and_a_fleet_of_hundreds() -> None:
    library = [load_scenario(p) for p in sorted(SCENARIOS.glob("*.toml"))]
    for kind in FAULT_KINDS:
        assert any(
            any(f.kind == kind for v in s.vehicles for f in v.faults)
            and any(e.kind == "detect" and e.fault == kind for e in s.expectations)
            for s in library
        ), kind
    assert any(all(not v.faults for v in s.vehicles) for s in library)
    assert max(len(s.vehicles) for s in library) >= 100
    ci = [load_scenario(p) for p in sorted((SCENARIOS / "ci").glob("*.toml"))]
    assert {f.kind for s in ci for v in s.vehicles for f in v.faults} == set(FAULT_KINDS)


def test_a_minimal_scenario_gets_the_documented_defaults(tmp_path: Path) -> None:
    scenario = parse_scenario(MINIMAL, origin="m.toml", base=tmp_path)
    assert scenario.seed == 1 and scenario.fleet is None
    assert scenario.time.start == dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    assert (scenario.time.window_s, scenario.time.speedup) == (600.0, None)
    assert scenario.interfaces.can == "virtual" and scenario.interfaces.uart == "pty"
    assert scenario.interfaces.bus_sleep
    assert scenario.agent.models == SHIPPED_BUNDLE
    assert (scenario.agent.catalog, scenario.agent.dbc) == (BENCH_CATALOG, BENCH_DBC)
    assert scenario.vehicles[0].faults == ()
    assert scenario.time.start_ms(0.0) % 600_000 == 0


def test_faults_and_expectations_refer_to_vehicles_by_vin_or_number(tmp_path: Path) -> None:
    text = with_(
        MINIMAL,
        """
[[vehicle]]
vin = "PRGTEST0000000002"
climate = "south"
model = "EV-2"

[[fault]]
kind = "tire_leak"
vehicles = [1]
onset_day = 1
failure_day = 5
target = 3

[[fault]]
kind = "motor_noise"
vehicles = "all"
onset_day = -2
failure_day = 9

[[expect]]
kind = "detect"
fault = "tire_leak"
vehicles = ["PRGTEST0000000002"]
within_days_of_onset = 3
""",
    )
    scenario = parse_scenario(text, origin="m.toml", base=tmp_path)
    first, second = scenario.vehicles
    assert [f.kind for f in first.faults] == ["motor_noise"]
    assert [(f.kind, f.target) for f in second.faults] == [("tire_leak", 3), ("motor_noise", 0)]
    assert second.region == "south" and second.model == "EV-2"
    detect = scenario.expectations[1]
    assert detect.vehicles == ("PRGTEST0000000002",) and detect.within_days_of_onset == 3.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("", None),
        ('color = "red"', r"m\.toml: unknown key 'color' in top level"),
        ('name = "Bad Name"', r"m\.toml: name: must be 1-48 of a-z"),
        ("[time]\nwindow_s = 5", r"\[time\] window_s: must be a number >= 10"),
        ('[time]\nwindow_s = "600"', r"\[time\] window_s: must be a number, not str"),
        ("[time]\nduration_days = 0", r"\[time\] duration_days: must be a number > 0"),
        ('[time]\nspeedup = "fast"', r"\[time\] speedup: must be a number >= 1 or \"max\""),
        ("[time]\nspeedup = 0.5", r"\[time\] speedup: must be a number >= 1"),
        ("[time]\nstart = 2026-09-01T00:00:00", r"\[time\] start: must be a date-time with its UTC offset"),
        ("[time]\nstart = 2026-09-01T00:00:00Z\nstart_days_ago = 3", r"give either start or start_days_ago"),
        ('[interfaces]\ncan = "vcan"', r"\[interfaces\] can: 'vcan' is not one of virtual, slcan"),
        ('[interfaces]\ncan = "replay"', r"\[interfaces\] uart: a replay runs as fast as the log"),
        ('[interfaces]\ncan = "socketcan"', r"\[interfaces\] can: the kernel dates socketcan frames"),
        ('[interfaces]\ncan = "none"\nuart = "none"', r"the agent would get no signal"),
        ('[interfaces]\ncan_channel = "can1"', r"\[interfaces\] can_channel: only for can = \"socketcan\""),
        (
            '[interfaces]\ncan = "replay"\nuart = "none"\nlog = "nope.blf"',
            r"\[interfaces\] log: no such file",
        ),
        ('[agent]\nmodels = "no/such/bundle"', r"\[agent\] models: .* is not a model bundle"),
        ('[agent]\ncatalog = "missing.toml"', r"\[agent\] catalog: no such file"),
        ("[agent]\nheartbeat_s = 60", r"\[agent\] heartbeat_s: must be a number >= 600"),
        (
            '[[vehicle]]\nvin = "PRGTEST0000000001"',
            r"\[\[vehicle\]\] 2 vin: PRGTEST0000000001 is given twice",
        ),
        ('[[vehicle]]\nvin = "prg-1"', r"\[\[vehicle\]\] 2 vin: must be 1-32 characters A-Z or 0-9"),
        (
            '[[vehicle]]\nvin = "PRG2"\nclimate = "arctic"',
            r"\[\[vehicle\]\] 2 climate: 'arctic' is not one of north",
        ),
        (
            '[[vehicle]]\nvin = "PRG2"\naggressiveness = 2',
            r"\[\[vehicle\]\] 2 aggressiveness: must be a number",
        ),
        ("[vehicles]\ncount = 3", r"give either \[vehicles\] count or \[\[vehicle\]\] entries"),
        (
            '[[fault]]\nkind = "flat"\nvehicles = "all"\nonset_day = 1\nfailure_day = 2',
            r"\[\[fault\]\] 1 kind: 'flat'",
        ),
        (
            '[[fault]]\nkind = "tire_leak"\nonset_day = 1\nfailure_day = 2',
            r"\[\[fault\]\] 1 vehicles: missing",
        ),
        (
            '[[fault]]\nkind = "tire_leak"\nvehicles = [7]\nonset_day = 1\nfailure_day = 2',
            r"\[\[fault\]\] 1 vehicles: there is no vehicle number 7",
        ),
        (
            '[[fault]]\nkind = "tire_leak"\nvehicles = ["PRGX"]\nonset_day = 1\nfailure_day = 2',
            r"\[\[fault\]\] 1 vehicles: no vehicle has VIN 'PRGX'",
        ),
        (
            '[[fault]]\nkind = "tire_leak"\nvehicles = "all"\nonset_day = 3\nfailure_day = 2',
            r"\[\[fault\]\] 1 tire_leak: failure day must come after the onset day",
        ),
        (
            '[[fault]]\nkind = "pad_wear"\nvehicles = "all"\nonset_day = 1\nfailure_day = 2\ntarget = 2',
            r"\[\[fault\]\] 1 target: must be between 0 and 1",
        ),
        (
            '[[fault]]\nkind = "tire_leak"\nvehicles = "all"\nonset_day = 1\nfailure_day = 2\n'
            '[[fault]]\nkind = "tire_leak"\nvehicles = [0]\nonset_day = 2\nfailure_day = 3',
            r"\[\[fault\]\] 2 vehicles: PRGTEST0000000001 already has a tire_leak fault",
        ),
        ('[[expect]]\nkind = "maybe"', r"\[\[expect\]\] 2 kind: 'maybe' is not one of detect"),
        ('[[expect]]\nkind = "detect"\nmin_share = 0', r"\[\[expect\]\] 2 min_share: must be a number > 0"),
        ('[[expect]]\nkind = "false_alarms"', r"\[\[expect\]\] 2 max_per_1000_vehicle_days: missing"),
        (
            '[[expect]]\nkind = "uplink"\nmax_per_1000_vehicle_days = 1',
            r"unknown key 'max_per_1000_vehicle_days'",
        ),
        (
            '[[expect]]\nkind = "no_alert"\nsubsystems = ["wipers"]',
            r"subsystems: must be a non-empty list of battery",
        ),
        ("fault = 3", r"m\.toml: fault must be an array of tables"),
        ("[time", r"m\.toml: not valid TOML"),
    ],
)
def test_a_bad_scenario_is_refused_with_a_message_naming_the_key(
    tmp_path: Path, change: str, message: str | None
) -> None:
    text = MINIMAL
    if change.startswith("[time]"):
        replacement = change if "duration_days" in change else change + "\nduration_days = 2"
        text = text.replace("[time]\nduration_days = 2", replacement)
    elif change.startswith("name ="):
        text = text.replace('name = "minimal"', change)
    elif change.startswith(("color", "fault =")):
        text = change + "\n" + text
    elif change:
        text = with_(text, change)
    if message is None:
        parse_scenario(text, origin="m.toml", base=tmp_path)
        return
    with pytest.raises(ConfigError, match=message):
        parse_scenario(text, origin="m.toml", base=tmp_path)


def test_missing_parts_are_named(tmp_path: Path) -> None:
    for text, message in [
        ('name = "x"\n[[vehicle]]\nvin = "A"\n[[expect]]\nkind = "no_alert"', r"missing table \[time\]"),
        ('name = "x"\n[time]\nduration_days = 1\n[[expect]]\nkind = "no_alert"', r"no vehicles"),
        ('name = "x"\n[time]\nduration_days = 1\n[[vehicle]]\nvin = "A"', r"no \[\[expect\]\]"),
        (
            '[time]\nduration_days = 1\n[[vehicle]]\nvin = "A"\n[[expect]]\nkind = "no_alert"',
            r"name: missing",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_scenario(text, origin="m.toml", base=tmp_path)
    with pytest.raises(ConfigError, match=r"^cannot read scenario .*nope\.toml"):
        load_scenario(tmp_path / "nope.toml")
    (tmp_path / "latin1.toml").write_bytes(b'name = "\xe9"')
    with pytest.raises(ConfigError, match=r"is not UTF-8 text"):
        load_scenario(tmp_path / "latin1.toml")


# Fuzzing: lines of plausible keys and values, shuffled into tables, so most inputs parse as
# TOML and reach the checks; any outcome but a Scenario or a ConfigError is a bug.
KEYS = [
    "name", "seed", "fleet", "kind", "vin", "vehicles", "count", "duration_days", "window_s", "speedup",
    "start", "start_days_ago", "onset_day", "failure_day", "target", "growth", "can", "uart", "log",
    "models", "catalog", "dbc", "heartbeat_s", "fault", "min_share", "within_days_of_onset", "min_lead_days",
    "max_per_1000_vehicle_days", "max_bytes_per_vehicle_day", "subsystems", "climate", "aggressiveness",
    "bus_sleep", "can_channel", "fault_share", "batch_defects", "model", "lot",
]  # fmt: skip
VALUES = [
    '"all"', '"now"', '"max"', '"virtual"', '"replay"', '"pty"', '"none"', '"tire_leak"', '"detect"',
    '"no_alert"', '"uplink"', '"false_alarms"', '"PRGTEST0000000001"', '"north"', '"EV-2"', '"default"',
    "0", "1", "-1", "3", "600", "1e308", "-1e308", "nan", "inf", "0.5", "true", "false", "[]", "[0]",
    "[1, 2]", '["PRGTEST0000000001"]', '["tires"]', "2026-09-01T00:00:00Z", "2026-09-01", "12:00:00",
    "{ a = 1 }", "99999999999999999999",
]  # fmt: skip
HEADERS = ["", "[time]", "[vehicles]", "[[vehicle]]", "[[fault]]", "[interfaces]", "[agent]", "[[expect]]"]

lines = st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)).map(lambda kv: f"{kv[0]} = {kv[1]}")
sections = st.tuples(st.sampled_from(HEADERS), st.lists(lines, max_size=6)).map(
    lambda hv: "\n".join([hv[0], *hv[1]])
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(sections, max_size=8), st.booleans())
def test_tomlish_text_gives_a_scenario_or_a_config_error(parts: list[str], seeded: bool) -> None:
    text = (MINIMAL if seeded else "") + "\n" + "\n".join(parts)
    try:
        parse_scenario(text, origin="fuzz.toml", base=Path("/nonexistent"))
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: ")
        assert "\n" not in str(exc).split(": not valid TOML")[0]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_a_scenario_or_a_config_error(text: str) -> None:
    try:
        parse_scenario(text, origin="fuzz.toml", base=Path("/nonexistent"))
    except ConfigError as exc:
        assert re.match(r"fuzz\.toml: ", str(exc))


def test_the_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from prognos.cli import main

    for command in (["hil"], ["hil", "run"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith("usage: prognos " + " ".join(command))
