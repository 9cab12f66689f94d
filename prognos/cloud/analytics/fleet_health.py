"""Fleet health from the latest subsystem states: pure, DataFrame in, DataFrame out."""

from __future__ import annotations

import pandas as pd

ACT_HEALTH = 0.2
WATCH_HEALTH = 0.4
WATCH_SCORE = 0.7
BANDS = ("act", "watch", "healthy")


def health_band(min_health: float, max_score: float, open_faults: int) -> str:
    """act: a fault is open or a subsystem is near failure; watch: drifting; else healthy."""
    if open_faults > 0 or min_health < ACT_HEALTH:
        return "act"
    if min_health < WATCH_HEALTH or max_score >= WATCH_SCORE:
        return "watch"
    return "healthy"


def vehicle_table(states: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    """One row per vehicle, worst first.

    states: columns fleet, vin, subsystem, time, health, anomaly_score (latest per subsystem).
    faults: columns vin, code, time (open faults: those in the vehicle's latest record).
    """
    columns = [
        "fleet",
        "vin",
        "band",
        "health",
        "worst_subsystem",
        "max_score",
        "open_faults",
        "faults",
        "last_seen",
    ]
    if states.empty:
        return pd.DataFrame(columns=columns)
    worst = states.loc[states.groupby("vin")["health"].idxmin()].set_index("vin")
    per_vehicle = states.groupby("vin").agg(
        fleet=("fleet", "first"), max_score=("anomaly_score", "max"), last_seen=("time", "max")
    )
    per_vehicle["health"] = worst["health"]
    per_vehicle["worst_subsystem"] = worst["subsystem"]
    codes = (
        faults.groupby("vin")["code"].agg(lambda c: ", ".join(sorted(set(c))))
        if not faults.empty
        else pd.Series(dtype=str)
    )
    counts = faults.groupby("vin")["code"].nunique() if not faults.empty else pd.Series(dtype=int)
    per_vehicle["open_faults"] = counts.reindex(per_vehicle.index).fillna(0).astype(int)
    per_vehicle["faults"] = codes.reindex(per_vehicle.index).fillna("")
    per_vehicle["band"] = [
        health_band(h, s, n)
        for h, s, n in zip(
            per_vehicle["health"], per_vehicle["max_score"], per_vehicle["open_faults"], strict=True
        )
    ]
    order = {band: i for i, band in enumerate(BANDS)}
    table = per_vehicle.reset_index()
    table = table.assign(_order=table["band"].map(order)).sort_values(["_order", "health", "vin"])
    return table[columns].reset_index(drop=True)
