"""Dealer closure against the real InfluxDB: `prognos cloud reassign` reads the imported DMS
data and writes the moves as CSV. The hand-made networks and the synthetic data without a
database are tests/unit/test_dealer_reassign.py."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from prognos.cli import main
from prognos.cloud.dealers.dms_import import import_files
from prognos.cloud.storage.client import InfluxClient
from prognos.ops.state import StackInfo
from prognos.sim.dealers import make_dms, write_dms


def test_the_command_reads_the_imported_data_and_writes_the_csv(
    stack: StackInfo, influx: InfluxClient, database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = make_dms(seed=3, months=2, end=date(2024, 7, 1), order_scale=0.3, vehicles=60)
    import_files(influx, database, list(write_dms(rows, tmp_path / "dms").values()))
    out = tmp_path / "moves.csv"
    argv = ["cloud", "reassign", "--home", stack.home, "--database", database, "--dealer", "DLR-01"]
    assert main([*argv, "--as-of", "2024-07-01T00:00:00Z", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("dealer DLR-01 closes SC-01:")
    assert "unplaced" in printed and f"wrote {out}" in printed
    with out.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert table and {r["kind"] for r in table} == {"appointment", "customer"}
    assert all(r["to_center"] not in ("SC-01",) and r["to_dealer"] != "DLR-01" for r in table)
    assert all(r["status"] == "placed" and float(r["distance_km"]) > 0 for r in table if r["to_center"])

    assert main([*argv[:-1], "DLR-99"]) == 2
    assert "dealer 'DLR-99' runs no service center" in capsys.readouterr().err
