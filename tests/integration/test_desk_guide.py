"""Guided diagnosis on SQLite and PostgreSQL: a desk seeded by the simulator, its backtest
through the command line (the guide fixes clearly more cases the first time than the habit of
doing the code's most common repair), advice for a vehicle, and clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from prognos.cli import main
from prognos.desk import schema
from prognos.desk.store import connect
from prognos.sim.dealers import make_dms
from prognos.sim.desk_seed import seed_desk

NOW = datetime(2026, 6, 15, 9, tzinfo=UTC)  # the seed's present; the commands run later


@pytest.fixture
def seeded(desk_url: str) -> str:
    engine = connect(desk_url)
    dms = make_dms(seed=3, months=12, end=NOW.date().replace(day=1), vehicles=30, order_scale=0.4)
    seed_desk(engine, customers=60, seed=3, key=Ed25519PrivateKey.generate(), now=NOW, dms=dms)
    engine.dispose()
    return desk_url


def test_the_backtest_shows_the_guide_fixing_more_cases_the_first_time(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["desk", "guide", "backtest", "--db", seeded, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["cases"] >= 200 and figures["unanswered"] == 0
    assert 0.5 < figures["ftfr_without"] < 0.9
    assert figures["ftfr_with"] > figures["ftfr_without"] + 0.05
    assert abs(figures["mean_confidence_with"] - figures["ftfr_with"]) < 0.1  # it knows how sure it is

    assert main(["desk", "guide", "backtest", "--db", seeded, "--split", "2026-01-01"]) == 0
    text = capsys.readouterr().out
    assert "split 2026-01-01T00:00:00Z" in text and "with the guide" in text

    assert main(["desk", "guide", "backtest", "--db", seeded, "--split", "2030-01-01"]) == 2
    assert "no case began at or after the split 2030-01-01" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["desk", "guide", "backtest", "--db", seeded, "--split", "next week"])
    assert exited.value.code == 2
    assert "is not an ISO 8601 date" in capsys.readouterr().err


def test_advice_for_a_vehicle_ranks_causes_with_their_evidence(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = connect(seeded)
    w, v = schema.work_order, schema.vehicle
    with engine.connect() as connection:
        vin, model, code = connection.execute(
            select(w.c.vin, v.c.model, w.c.fault_code)
            .join(v, v.c.vin == w.c.vin)
            .where(w.c.fault_code == "brakes.pad_wear")
            .order_by(w.c.opened_at.desc())
            .limit(1)
        ).one()
    engine.dispose()
    argv = ["desk", "guide", "suggest", "--db", seeded, "--vin", vin, "--code", code]
    assert (
        main([*argv, "--symptom", "pulls_to_side", "--symptom", "hot_wheel", "--mileage", "30000", "--json"])
        == 0
    )
    advice = json.loads(capsys.readouterr().out)
    assert (advice["model"], advice["mileage_km"], advice["mileage_band"]) == (model, 30_000, "20k-60k km")
    assert advice["symptoms"] == ["hot_wheel", "pulls_to_side"] and advice["previous_root_cause"]
    top = advice["suggestions"][0]
    assert top["root_cause"] == "caliper_sticking" and top["repair"] == ["overhaul_caliper", "replace_pads"]
    assert top["confidence"] > 0.5 and top["cases"] >= top["similar_cases"] >= top["fixed_first_time"]
    confidences = [s["confidence"] for s in advice["suggestions"]]
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) == pytest.approx(1, abs=1e-3)
    assert advice["learned_cases"] >= advice["similar_cases"] > 0

    assert main([*argv, "--limit", "2"]) == 0  # mileage from the vehicle's latest order, no symptoms
    text = capsys.readouterr().out
    assert f"{vin}: {model}" in text and "none given (not used)" in text
    assert text.count("cases of the code)") == 2

    assert main(["desk", "guide", "suggest", "--db", seeded, "--vin", "NOSUCHVIN", "--code", code]) == 2
    assert "no vehicle with VIN 'NOSUCHVIN'" in capsys.readouterr().err
    assert main(["desk", "guide", "suggest", "--db", seeded, "--vin", vin, "--code", "P0A7F"]) == 2
    assert "no settled case of fault code 'P0A7F'" in capsys.readouterr().err
