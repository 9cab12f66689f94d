"""`prognos demo` end to end on a fresh home, as on a new machine: it starts a secure stack, a
small fleet scenario runs on the HIL bench through real gateway agents that log in with their
own provisioned credentials over TLS, its records reach InfluxDB through the demo's ingest
worker, the imported registry describes the vehicles the bench drove, the HIL report is
written, and Ctrl-C stops every process the demo started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prognos.errors import ConfigError
from prognos.hil.fleet import check_registry, demo_dms, first_vehicles
from prognos.hil.scenario import load_scenario, parse_scenario
from prognos.ops.access import stack_influx
from prognos.ops.stack import free_port, stack_down
from prognos.ops.state import read_state
from prognos.sim.dealers import make_dms
from tests.support.helpers import wait_for

SCENARIO = """
name = "demo-test"
seed = 7
fleet = "{fleet}"

[time]
start_days_ago = 2
duration_days = 2

[vehicles]
count = 4

[[fault]]
kind = "tire_leak"
vehicles = [3]
onset_day = -10
failure_day = 1.5

[interfaces]
can = "virtual"
uart = "pty"

[[expect]]
kind = "uplink"
max_bytes_per_vehicle_day = 5000
"""
EXPLICIT = """
name = "explicit"
[time]
duration_days = 1
[[vehicle]]
vin = "ABC1"
[[expect]]
kind = "uplink"
max_bytes_per_vehicle_day = 5000
"""


def test_the_demo_runs_the_bench_fleet_into_the_dashboards_database(fleet: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    scenario_path = tmp_path / "demo-test.toml"
    scenario_path.write_text(SCENARIO.format(fleet=fleet))
    report = tmp_path / "report"
    log_path = tmp_path / "demo.log"
    argv = [sys.executable, "-m", "prognos.cli", "demo", "--home", str(home)]
    argv += ["--scenario", str(scenario_path), "--vehicles", "3", "--report", str(report)]
    argv += ["--port", str(free_port())]
    with log_path.open("wb") as log:
        # A session of its own, as a terminal's foreground job: Ctrl-C reaches the whole group.
        demo = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(
            lambda: "HIL report:" in log_path.read_text(), timeout_s=120.0, what="the end of the fleet run"
        )
        output = log_path.read_text()
        assert demo.poll() is None, output  # the dashboard stays up
        assert f"HIL report: {report / 'report.html'}" in output
        assert "The dashboard stays up at http://127.0.0.1:" in output
        info = read_state(home)
        assert info is not None and info.secure, "a fresh demo runs the secure stack"
        influx = stack_influx(info, "dashboard")
        assert (home / "identities.json").read_text().count('"role": "vehicle"') == 3
        summary = json.loads((report / "summary.json").read_text())
        assert (summary["fleet"], summary["vehicle_count"], summary["interrupted"]) == (fleet, 3, False)
        records = summary["uplink"]["records"]
        assert records > 0 and summary["checks"][0]["passed"], summary["checks"][0]  # delivery

        # Every record the bench fleet published is in the dashboard's database.
        def stored() -> int:
            series = influx.query(
                'SELECT count("seq") FROM diag WHERE "fleet" = $fleet',
                database="prognos",
                params={"fleet": fleet},
            )
            return int(series[0].values[0][1]) if series else 0

        wait_for(lambda: stored() == records, what=f"{records} records of fleet {fleet} in InfluxDB")

        # The registry the demo imported describes the vehicles the bench drove.
        rows = influx.query(
            'SELECT "vin", "model", "lot", "region" FROM vehicle WHERE "fleet" = $fleet',
            database="prognos",
            params={"fleet": fleet},
        )[0].rows()
        driven = first_vehicles(load_scenario(scenario_path), 3).vehicles
        assert sorted((r["vin"], r["model"], r["lot"], r["region"]) for r in rows) == sorted(
            (s.vin, s.model, s.lot, s.region) for s in driven
        )
        assert sorted(v["vin"] for v in summary["vehicles"]) == sorted(s.vin for s in driven)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
        try:
            code = demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
        finally:
            stack_down(home)
    output = log_path.read_text()
    assert code == 0, output
    assert "demo stopped; the stack still runs" in output
    deadline = time.monotonic() + 10.0
    while _group_alive(demo.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(demo.pid), "a process the demo started still runs"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_first_vehicles_keeps_the_faults_and_expectations_of_the_vehicles_kept() -> None:
    text = SCENARIO.format(fleet="demo") + '\n[[expect]]\nkind = "no_alert"\nvehicles = [0, 3]\n'
    scenario = parse_scenario(text)
    cut = first_vehicles(scenario, 2)
    assert cut.vehicles == scenario.vehicles[:2]
    assert [e.kind for e in cut.expectations] == ["uplink", "no_alert"]
    assert cut.expectations[1].vehicles == (scenario.vehicles[0].vin,)
    assert first_vehicles(scenario, 10) is scenario


def test_the_demo_registry_describes_the_scenarios_vehicles() -> None:
    scenario = parse_scenario(SCENARIO.format(fleet="demo"))
    registry = demo_dms(scenario, fleet="demo")["vehicle"]
    assert [(r["vin"], r["model"], r["lot"], r["fleet"]) for r in registry] == [
        (s.vin, s.model, s.lot, "demo") for s in scenario.vehicles
    ]
    other = make_dms(vehicles=4, fleet_seed=8)["vehicle"]  # another seed: other vehicles
    with pytest.raises(ConfigError, match="does not describe the scenario's vehicles"):
        check_registry(other, scenario.vehicles, origin="demo-test.toml")
    with pytest.raises(ConfigError, match=r"needs a scenario with a generated fleet \(\[vehicles\] count\)"):
        demo_dms(parse_scenario(EXPLICIT), fleet="demo")
