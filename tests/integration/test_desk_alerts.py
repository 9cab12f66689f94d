"""The fleet's alerts reach the desk: analytics snapshots written to the real InfluxDB the way
the job writes them (prognos.cloud.analytics.job.write_snapshot), synced into a desk on SQLite
and on a real PostgreSQL, read back through the customer view; and `prognos desk sync-alerts`
on the running stack, after the real analytics job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from prognos.cli import main
from prognos.cloud.analytics.job import run_once, write_snapshot
from prognos.cloud.analytics.reading import latest_snapshot_ms, rfc3339, snapshot_alerts
from prognos.cloud.storage import schema as influx_schema
from prognos.cloud.storage.client import InfluxClient
from prognos.cloud.storage.encode import encode_row
from prognos.desk import schema
from prognos.desk.alerts import AlertChanges, alert_id, fleet_alerts, sync_alerts
from prognos.desk.customers import customer_view
from prognos.desk.store import connect
from prognos.desk.tags import Settings
from prognos.ops.stack import free_port
from prognos.ops.state import STATE_FILE, StackInfo
from prognos.record import Cause
from tests.integration.test_analytics_job import HEALTHY, HOUR_MS, record, write_records
from tests.support.helpers import wait_for

T1 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(minutes=1)
V1, V2, V3, STRANGER = "WVWZZZ1KZ6W000001", "WVWZZZ1KZ6W000002", "WVWZZZ1KZ6W000003", "PRG007S1234500009"
CRITICAL = "open critical alert"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def alert_point(vin: str, code: str, priority: str, rank: int, **fields: Any) -> dict[str, Any]:
    subsystem = code.split(".", 1)[0]
    kind = fields.pop("kind", "fault")
    return {
        "fleet": "demo",
        "vin": vin,
        "code": code,
        "priority": priority,
        "rank": rank,
        "kind": kind,
        "subsystem": subsystem,
        "health": 0.5,
        "band": "act" if kind == "fault" else "watch",
        "action": "see the workshop",
        "reason": "test",
        **fields,
    }


def write_alert_snapshot(
    influx: InfluxClient, database: str, at: datetime, alerts: list[dict[str, Any]]
) -> None:
    lines = [line for row in alerts if (line := encode_row(influx_schema.ALERT, row, ms(at)))]
    counts = {"alerts": len(alerts), "alerts_p1": sum(a["priority"] == "P1" for a in alerts)}
    write_snapshot(influx, database, lines, counts, ms(at), keep_days=None)


def seed_desk(engine: Engine) -> None:
    """Two customers with a vehicle each, a third vehicle, and an alert from the seed."""
    with engine.begin() as connection:
        connection.execute(insert(schema.dealer), [{"dealer_id": "D01", "name": "Autohaus", "region": "R1"}])
        connection.execute(
            insert(schema.service_center),
            [{"center_id": "SC-01", "dealer_id": "D01", "name": "Nord", "lat": 48.1, "lon": 11.5}],
        )
        connection.execute(
            insert(schema.customer),
            [
                {
                    "customer_id": customer_id,
                    "name": name,
                    "name_key": name.lower(),
                    "home_center": "SC-01",
                    "created_at": T1 - timedelta(days=400),
                }
                for customer_id, name in (("C1", "Anna Alt"), ("C2", "Bernd Bauer"))
            ],
        )
        connection.execute(
            insert(schema.vehicle),
            [
                {"vin": vin, "customer_id": owner, "model": "EV-1", "delivered_at": T1 - timedelta(days=300)}
                for vin, owner in ((V1, "C1"), (V2, "C2"), (V3, "C2"))
            ],
        )
        connection.execute(
            insert(schema.alert),
            [
                {
                    "alert_id": "A-6W000003-1",
                    "vin": V3,
                    "code": "motor.noise",
                    "severity": "warning",
                    "summary": "drive motor noise rising",
                    "raised_at": T1 - timedelta(days=2),
                    "cleared_at": None,
                }
            ],
        )


def desk_alerts(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(schema.alert)).mappings()
        found = {row["alert_id"]: dict(row) for row in rows}
    for row in found.values():  # SQLite hands back naive UTC times
        for key in ("raised_at", "cleared_at"):
            if row[key] is not None and row[key].tzinfo is None:
                row[key] = row[key].replace(tzinfo=UTC)
    return found


def labels(engine: Engine, customer_id: str, now: datetime) -> list[str]:
    with engine.connect() as connection:
        view = customer_view(connection, customer_id, now=now, settings=Settings())
    return [tag.label for tag in view.tags]


@pytest.fixture
def desk(desk_url: str) -> Iterator[Engine]:
    engine = connect(desk_url)
    seed_desk(engine)
    yield engine
    engine.dispose()


def sync_latest(influx: InfluxClient, database: str, engine: Engine) -> AlertChanges:
    at_ms = latest_snapshot_ms(influx, database)
    assert at_ms is not None
    alerts = fleet_alerts(snapshot_alerts(influx, database, at_ms).to_dict("records"))
    return sync_alerts(engine, alerts, at=datetime.fromtimestamp(at_ms / 1000, UTC))


def test_a_snapshots_alerts_become_desk_alerts_and_tag_the_owner(
    influx: InfluxClient, database: str, desk: Engine
) -> None:
    assert latest_snapshot_ms(influx, database) is None  # the job has not run yet
    assert latest_snapshot_ms(influx, database + "_missing") is None
    pads = alert_point(V1, "brakes.pad_wear", "P1", 1, days_left=9.2, days_low_left=6.1, days_high_left=13.8)
    tire = alert_point(V2, "tires.pressure_loss", "P2", 2)
    stranger = alert_point(STRANGER, "motor.anomaly", "P2", 3, kind="anomaly")
    write_alert_snapshot(influx, database, T1, [pads, tire, stranger])
    assert labels(desk, "C1", T1 + timedelta(hours=1)).count(CRITICAL) == 0

    changes = sync_latest(influx, database, desk)
    assert changes.text() == "3 new, 0 changed, 0 cleared (3 open); 1 not linked to a customer"
    rows = desk_alerts(desk)
    assert set(rows) == {
        "A-6W000003-1",
        alert_id(V1, "brakes.pad_wear"),
        alert_id(V2, "tires.pressure_loss"),
        alert_id(STRANGER, "motor.anomaly"),
    }
    first = rows[alert_id(V1, "brakes.pad_wear")]
    assert (first["severity"], first["raised_at"], first["cleared_at"]) == ("critical", T1, None)
    assert first["summary"] == (
        "Brake pads near their wear limit; failure expected in 9 days (80 % interval 6-14 days)"
    )
    assert rows[alert_id(V2, "tires.pressure_loss")]["severity"] == "warning"
    assert rows[alert_id(STRANGER, "motor.anomaly")]["vin"] == STRANGER  # kept without a customer
    assert CRITICAL in labels(desk, "C1", T1 + timedelta(hours=1))
    assert CRITICAL not in labels(desk, "C2", T1 + timedelta(hours=1))

    again = sync_latest(influx, database, desk)  # the same snapshot: nothing changes
    assert again.empty and desk_alerts(desk) == rows

    # The next snapshot: the pads were changed, the tire got worse, the stranger is quiet.
    write_alert_snapshot(influx, database, T2, [alert_point(V2, "tires.pressure_loss", "P1", 1)])
    changes = sync_latest(influx, database, desk)
    assert changes.text() == "0 new, 1 changed, 2 cleared (1 open)"
    rows = desk_alerts(desk)
    pads_row, tire_row = rows[alert_id(V1, "brakes.pad_wear")], rows[alert_id(V2, "tires.pressure_loss")]
    assert (pads_row["cleared_at"], pads_row["raised_at"]) == (T2, T1)
    assert (tire_row["severity"], tire_row["raised_at"], tire_row["cleared_at"]) == ("critical", T1, None)
    assert rows[alert_id(STRANGER, "motor.anomaly")]["cleared_at"] == T2
    assert rows["A-6W000003-1"]["cleared_at"] is None  # the seed's alert is not the fleet's
    later = T2 + timedelta(hours=1)
    assert CRITICAL not in labels(desk, "C1", later)
    assert CRITICAL in labels(desk, "C2", later)
    assert sync_latest(influx, database, desk).empty


def test_sync_alerts_on_the_stack_after_the_analytics_job(
    stack: StackInfo,
    influx: InfluxClient,
    database: str,
    desk_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["desk", "sync-alerts", "--home", stack.home, "--database", database, "--db", desk_url]
    assert main(argv) == 0, capsys.readouterr().err
    assert f"no analytics snapshot in database {database!r}" in capsys.readouterr().out

    engine = connect(desk_url)
    try:
        seed_desk(engine)
        now = int(time.time()) * 1000
        faults = [("brakes.pad_wear", 10.0, 7.0, 15.0)]
        worn = record(V1, now - HOUR_MS, {**HEALTHY, "brakes": (0.5, 1.2)}, faults)
        write_records(influx, database, [replace(worn, causes=(Cause("brakes.pad_wear", 0.8203125),))])
        run_once(influx, database, as_of_ms=now)
        assert main(argv) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert out == f"alerts of snapshot {rfc3339(now)}: 1 new, 0 changed, 0 cleared (1 open)\n"
        assert main(argv) == 0
        assert "0 new, 0 changed, 0 cleared (1 open)" in capsys.readouterr().out
        row = desk_alerts(engine)[alert_id(V1, "brakes.pad_wear")]
        assert row["severity"] == "critical" and "failure expected in 10 days" in row["summary"]
        assert "likely cause: worn brake pads (82 %)" in row["summary"]
        assert CRITICAL in labels(engine, "C1", datetime.now(UTC))
    finally:
        engine.dispose()

    # A stack whose InfluxDB does not answer: one clear line, exit 1.
    home = tmp_path / "gone"
    home.mkdir()
    gone = replace(stack, home=str(home), influx_url=f"http://127.0.0.1:{free_port()}")
    (home / STATE_FILE).write_text(json.dumps(asdict(gone)))
    dead = ["desk", "sync-alerts", "--home", str(home), "--database", database, "--db", desk_url]
    assert main(dead) == 1
    assert "InfluxDB unreachable" in capsys.readouterr().err
    assert main([*dead, "--every", "soon"]) == 2
    assert "--every 'soon' is not a positive length of time" in capsys.readouterr().err


def test_sync_alerts_every_interval_until_sigterm(
    stack: StackInfo, influx: InfluxClient, database: str, desk_url: str, tmp_path: Path
) -> None:
    write_alert_snapshot(influx, database, T1, [alert_point(V1, "brakes.pad_wear", "P1", 1)])
    log = tmp_path / "sync.log"
    argv = [sys.executable, "-m", "prognos.cli", "desk", "sync-alerts", "--home", stack.home]
    argv += ["--database", database, "--db", desk_url, "--every", "1s"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: log.read_text().count("alerts of snapshot") >= 2, what="two syncs")
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    lines = log.read_text().splitlines()
    assert code == 0, lines
    unlinked = "(1 open); 1 not linked to a customer"  # this desk holds no customers
    assert lines[0] == f"alerts of snapshot {rfc3339(ms(T1))}: 1 new, 0 changed, 0 cleared {unlinked}"
    assert lines[1].endswith(f": 0 new, 0 changed, 0 cleared {unlinked}")
