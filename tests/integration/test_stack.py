"""The local stack: started once, found again, data kept across restarts, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prognos.errors import MissingDependencyError
from prognos.ops import stack as stack_module
from prognos.ops.access import stack_influx
from prognos.ops.stack import stack_down, stack_status, stack_up
from prognos.ops.state import read_state


def prognos(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROGNOS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "prognos.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_stack_up_twice_keeps_one_stack_and_its_data(tmp_path: Path) -> None:
    home = tmp_path / "stack"
    first = prognos("stack", "up", home=home)
    assert first.returncode == 0, first.stderr
    assert "started stack" in first.stdout
    info = read_state(home)
    assert info is not None
    try:
        assert info.secure, "a stack is secure unless asked otherwise"
        client = stack_influx(info, "admin")
        client.create_database("keep")
        client.write("keep", ["m,vin=A x=1.5 1000"])

        second = prognos("stack", "up", home=home)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert read_state(home) == info, "a second `up` must not start a second stack"
        assert f"influxdb {info.influx_url}" in second.stdout

        status = prognos("stack", "status", home=home)
        assert status.returncode == 0
        assert status.stdout.count(" up ") == 2

        assert prognos("stack", "down", home=home).returncode == 0
        assert stack_status(home) == {"mosquitto": False, "influxd": False}
        assert prognos("stack", "status", home=home).returncode == 1

        assert prognos("stack", "up", home=home).returncode == 0
        again = read_state(home)
        assert again is not None
        rows = stack_influx(again, "admin").query("SELECT x FROM m", database="keep")
        assert rows[0].values == [[1000, 1.5]], "data written before `down` must survive"
    finally:
        stack_down(home)


def test_up_restarts_a_service_that_died(tmp_path: Path) -> None:
    home = tmp_path / "stack"
    info, started = stack_up(home)
    try:
        assert started
        os.kill(info.mosquitto_pid, 9)
        os.waitpid(info.mosquitto_pid, 0)  # our child: wait until it is gone, as after a crash
        again, restarted = stack_up(home)
        assert restarted
        assert again.mosquitto_pid != info.mosquitto_pid
        assert again.mqtt_port == info.mqtt_port, "a restart keeps the addresses when they are free"
        assert all(stack_status(home).values())
    finally:
        stack_down(home)


def test_missing_binary_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(MissingDependencyError, match=r"apt-get install -y mosquitto"):
        stack_module.find_binary("mosquitto")
    with pytest.raises(MissingDependencyError, match=r"apt-get install -y influxdb"):
        stack_module.find_binary("influxd")


def test_commands_that_need_a_stack_say_so(tmp_path: Path) -> None:
    result = prognos("cloud", "ingest", home=tmp_path / "none")
    assert result.returncode == 2
    assert "run `prognos stack up` first" in result.stderr
    assert "Traceback" not in result.stderr
