"""The HIL bench end to end: real gateway agents (prognos/edge/gateway.py) fed through real interfaces
(python-can's virtual bus, slcan over a pseudo-terminal, a UART pseudo-terminal, a recorded BLF
replay), publishing to the real broker, judged from what the broker hands back.

Each short scenario in prognos/hil/scenarios/ci injects one fault type into one vehicle (the healthy one
two vehicles, no fault) and must pass; an agent whose catalog reads the tire pressures with the
wrong scale must make the bench fail, with a verdict that names the missed fault, through the
command line and its exit status."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from prognos.cli import main
from prognos.hil.bench import run_scenario
from prognos.hil.scenario import BENCH_CATALOG, load_scenario
from prognos.ops.state import StackInfo

CI = Path(__file__).resolve().parents[2] / "prognos" / "hil" / "scenarios" / "ci"
PSI_KPA = 6.894757293168361


@pytest.mark.parametrize(
    "name", ["battery_drift", "tire_leak", "pad_wear", "bearing_wear", "motor_noise", "healthy"]
)
def test_a_short_scenario_per_fault_type_passes(
    stack: StackInfo, fleet: str, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "healthy":  # and the fleet mode's shards: one vehicle per bench process
        monkeypatch.setattr("prognos.hil.bench.SHARD_VEHICLES", 1)
    scenario = load_scenario(CI / f"{name}.toml")
    judgement, data = run_scenario(
        scenario, host=stack.mqtt_host, port=stack.mqtt_port, report_dir=tmp_path, fleet=fleet
    )
    assert judgement.passed, [c for c in judgement.checks if not c.passed]
    assert json.loads((tmp_path / "summary.json").read_text()) == data
    assert data["verdict"] == "pass" and data["simulated_days"] == scenario.time.duration_days
    page = (tmp_path / "report.html").read_text()
    assert 'src="plotly.min.js"' in page and (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert "PASS" in page and page.count('class="chart"') == len(judgement.faults) + 2
    for outcome in judgement.faults:
        assert outcome.status == "detected" and outcome.lead_days is not None and outcome.lead_days > 0
    for vehicle in data["vehicles"]:
        # Everything reached the agent through its interfaces, and every record came back.
        assert vehicle["frames_sent"] > 1000 and vehicle["records"] > 0
        assert vehicle["samples_taken"] == vehicle["samples_sent"] or scenario.interfaces.can == "replay"
        assert (vehicle["node_frames_sent"] > 0) == (scenario.interfaces.uart == "pty")
        counters = vehicle["counters"]
        assert counters["frames_bad"] == counters["values_out_of_range"] == counters["samples_dropped"] == 0
    if scenario.interfaces.can == "replay":
        logs = sorted((tmp_path / "logs").glob("*.blf"))
        assert [p.stem for p in logs] == [v.vin for v in scenario.vehicles]
        # The recorded log, replayed as a given log, gives the agent the same drive.
        given = dataclasses.replace(
            scenario, interfaces=dataclasses.replace(scenario.interfaces, log=logs[0])
        )
        again, _ = run_scenario(
            given,
            host=stack.mqtt_host,
            port=stack.mqtt_port,
            report_dir=tmp_path / "again",
            fleet=fleet + "b",
        )
        assert again.passed
        assert [f.detection_day for f in again.faults] == [f.detection_day for f in judgement.faults]


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """The command installs SIGINT and SIGTERM handlers for its run; put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_an_agent_with_a_wrong_catalog_fails_the_bench_with_a_clear_verdict(
    stack: StackInfo, fleet: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], signals_restored: None
) -> None:
    # A catalog written for a TPMS that reports psi: the agent turns the bench DBC's kPa into
    # "kPa" 6.9 times too high, out of the signal's range, and drops every tire pressure.
    catalog = re.sub(
        r'(signal = "TirePressure(FL|FR|RL|RR)")',
        rf"\1, scale = {PSI_KPA}",
        BENCH_CATALOG.read_text(),
    )
    assert catalog.count(f"scale = {PSI_KPA}") == 4
    (tmp_path / "psi.toml").write_text(catalog)
    text = f"""
name = "ci-wrong-catalog"
seed = 11

[time]
duration_days = 1.5

[[vehicle]]
vin = "PRGCIPAD000000001"
km_per_day = 60
trips_per_day = 3

[[fault]]
kind = "tire_leak"
vehicles = "all"
onset_day = 0.2
failure_day = 1.2
growth = 1.0
target = 2

[interfaces]
uart = "none"

[agent]
catalog = "{tmp_path / "psi.toml"}"

[[expect]]
kind = "detect"
fault = "tire_leak"
within_days_of_onset = 0.8
min_lead_days = 0.2
"""
    scenario = tmp_path / "wrong-catalog.toml"
    scenario.write_text(text)
    report = tmp_path / "report"

    code = main(
        ["hil", "run", str(scenario), "--report", str(report), "--home", stack.home, "--fleet", fleet]
    )

    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"^PASS  every record reached the broker", out, re.M)  # the bench itself worked
    assert re.search(
        r"^FAIL  \[\[expect\]\] 1: detect tire_leak faults, within 0.8 days of onset and at least 0.2 days "
        r"before failure: 0 of 1 detected in time; tire_leak on PRGCIPAD000000001 not detected by day 1.00$",
        out,
        re.M,
    )
    assert out.rstrip().endswith(f"FAIL: report in {report / 'report.html'}")
    data = json.loads((report / "summary.json").read_text())
    assert data["verdict"] == "fail" and data["faults"][0]["status"] == "missed"
    counters = data["vehicles"][0]["counters"]
    assert counters["values_out_of_range"] > 0 and counters["frames_bad"] == 0  # the hint for the engineer
    assert "FAIL" in (report / "report.html").read_text()


def test_a_scenario_the_bench_cannot_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.toml").write_text('name = "bad"\n[time]\nduration_days = "long"\n')
    assert main(["hil", "run", str(tmp_path / "bad.toml"), "--report", str(tmp_path / "r")]) == 2
    assert "bad.toml: [time] duration_days: must be a number, not str" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
