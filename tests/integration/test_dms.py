"""DMS import against the real InfluxDB: one bad row in any file writes nothing, a good import
reads back as it went in, importing again does not count twice, fields of another type are
refused, and the dealer-kpis command writes its tables. The validation without a database is
tests/unit/test_dms.py."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from prognos.cli import main
from prognos.cloud.dealers.data import dealer_report, read_records
from prognos.cloud.dealers.dms_import import RejectedFilesError, check_files, import_files, read_file
from prognos.cloud.dealers.kinds import KINDS, Record
from prognos.cloud.storage.client import InfluxClient
from prognos.errors import ConfigError
from prognos.ops.state import StackInfo
from prognos.sim.dealers import make_dms, write_dms
from tests.unit.test_dms import ORDER_1, ORDER_9, order, orders_csv


def small_dms(tmp_path: Path) -> dict[str, Path]:
    rows = make_dms(seed=3, months=3, end=date(2024, 7, 1), order_scale=0.06, vehicles=8)
    return write_dms(rows, tmp_path / "dms")


def measurements(influx: InfluxClient, database: str) -> list[str]:
    return [row["name"] for s in influx.query("SHOW MEASUREMENTS", database=database) for row in s.rows()]


def order_count(influx: InfluxClient, database: str) -> int:
    series = influx.query('SELECT COUNT("order_id") FROM work_order', database=database)
    return int(series[0].values[0][1]) if series else 0


def test_one_bad_row_in_any_file_writes_nothing(
    stack: StackInfo,
    influx: InfluxClient,
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = small_dms(tmp_path)
    bad = tmp_path / "late.csv"
    bad.write_bytes(orders_csv(ORDER_1, ORDER_9, order(closed_at="2024-02-01T00:00:00Z")))
    files = [*paths.values(), bad]
    with pytest.raises(RejectedFilesError) as caught:
        import_files(influx, database, files)
    assert f"{bad} (work_order): 1 bad of 3 rows" in str(caught.value)
    assert "line 4: closed_at" in str(caught.value)
    code = main(["cloud", "import-dms", "--home", stack.home, "--database", database, *map(str, files)])
    assert code == 2
    assert "line 4: closed_at 2024-02-01T00:00:00.000Z is before opened_at" in capsys.readouterr().err
    assert measurements(influx, database) == []


def test_import_reads_back_as_it_went_in(influx: InfluxClient, database: str, tmp_path: Path) -> None:
    paths = small_dms(tmp_path)
    summary = import_files(influx, database, list(paths.values()))
    assert {f.kind for f in summary.files} == set(KINDS)
    assert sorted(measurements(influx, database)) == sorted(KINDS)
    for kind_name, path in paths.items():
        sent = read_file(path)
        kind = sent.kind
        assert sent.ok and sent.records
        stored = read_records(influx, database, kind_name)

        def key(record: Record, kind: Any = kind) -> tuple[str, ...]:
            return tuple(str(record[name]) for name in kind.unique)

        assert sorted(stored, key=key) == sorted(sent.records, key=key), kind_name


def test_importing_again_does_not_count_twice(
    stack: StackInfo, influx: InfluxClient, database: str, tmp_path: Path
) -> None:
    paths = small_dms(tmp_path)
    argv = ["cloud", "import-dms", "--home", stack.home, "--database", database, *map(str, paths.values())]
    assert main(argv) == 0
    orders = order_count(influx, database)
    first = dealer_report(influx, database)
    # The same rows again, and the work orders once more as a JSON array (another file format,
    # the same records): the points overwrite themselves.
    parsed = read_file(paths["work_order"])
    as_json = tmp_path / "orders.json"
    as_json.write_text(
        json.dumps([{k: _jsonable(v) for k, v in r.items()} for r in parsed.records]), encoding="utf-8"
    )
    assert main([*argv, str(as_json)]) == 0
    assert order_count(influx, database) == orders == len(parsed.records)
    second = dealer_report(influx, database)
    assert first.kpis.equals(second.kpis)
    assert first.risk.equals(second.risk)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def test_fields_of_another_type_are_refused_before_writing(
    influx: InfluxClient, database: str, tmp_path: Path
) -> None:
    influx.write(database, ['work_order,dealer_id=OTHER amount="twelve" 1'], precision="ns")
    path = tmp_path / "orders.csv"
    path.write_bytes(orders_csv(ORDER_1, ORDER_9))
    with pytest.raises(ConfigError, match=r"work_order\.amount is string in the database, float here"):
        import_files(influx, database, [path])
    assert order_count(influx, database) == 0
    assert check_files([path])[0].ok


def test_dealer_kpis_command_writes_the_tables(
    stack: StackInfo,
    influx: InfluxClient,
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = make_dms(seed=11, months=7, end=date(2024, 7, 1), order_scale=0.35, vehicles=4)
    paths = write_dms(rows, tmp_path / "dms")
    home = ["--home", stack.home, "--database", database]
    assert main(["cloud", "import-dms", *home, *map(str, paths.values())]) == 0
    kpis_csv, risk_csv = tmp_path / "kpis.csv", tmp_path / "risk.csv"
    argv = ["cloud", "dealer-kpis", *home, "--out", str(kpis_csv), "--risk-out", str(risk_csv)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "DLR-05" in out and "at risk" in out
    import pandas as pd

    kpis, risk = pd.read_csv(kpis_csv), pd.read_csv(risk_csv)
    assert set(kpis["dealer_id"]) == {f"DLR-0{i}" for i in range(1, 6)}
    assert len(kpis) == 5 * 7
    assert risk.iloc[0]["dealer_id"] == "DLR-05" and risk.iloc[0]["level"] == "at risk"
    assert main(["cloud", "dealer-kpis", "--home", stack.home, "--database", database + "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
