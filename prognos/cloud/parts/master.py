"""The parts master (the DMS `part` kind) joined into the parts plan: each row gets the part's
name, and each reorder row what the order costs. Pure: DataFrames in, DataFrames out
(docs/forecast.md states the rule).

master: part, name, unit_cost, currency, supplier, pack_size, min_order, lead_time_days (other
columns are ignored); a part without a master row keeps its number as its name and has no cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

MASTER_COLUMNS = (
    "part",
    "name",
    "unit_cost",
    "currency",
    "supplier",
    "pack_size",
    "min_order",
    "lead_time_days",
)
STOCK_COLUMNS = ("service_center", "part", "on_hand", "on_order", "lead_time_weeks")
COST_COLUMNS = (
    "name",
    "unit_cost",
    "currency",
    "supplier",
    "pack_size",
    "min_order",
    "order_units",
    "order_cost",
)


def order_units(quantity: int, pack_size: int = 1, min_order: int = 0) -> int:
    """What is ordered to cover `quantity` units: nothing for nothing, else whole packs and at
    least the minimum order (rounded up to whole packs too)."""
    if quantity <= 0:
        return 0
    pack = max(1, pack_size)
    return pack * math.ceil(max(quantity, min_order) / pack)


def _master(master: pd.DataFrame | None) -> pd.DataFrame:
    if master is None or master.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in MASTER_COLUMNS}).set_index("part")
    frame = master.reindex(columns=list(MASTER_COLUMNS)).copy()
    frame["part"] = frame["part"].astype(str).str.strip()
    return frame.drop_duplicates("part", keep="last").set_index("part")


def _whole(value: object, default: int) -> int:
    number = pd.to_numeric(value, errors="coerce")
    return int(number) if pd.notna(number) else default


def with_names(weekly: pd.DataFrame, master: pd.DataFrame | None) -> pd.DataFrame:
    """The weekly forecast with the part's name after its number."""
    names = _master(master)["name"]
    named = weekly["part"].map(names)
    out = weekly.copy()
    out.insert(out.columns.get_loc("part") + 1, "name", named.where(named.notna(), weekly["part"]))
    return out


def with_costs(reorder: pd.DataFrame, master: pd.DataFrame | None) -> pd.DataFrame:
    """The reorder table with the part's name and COST_COLUMNS: order_units rounds order_qty up
    to whole packs and the minimum order (order_units), order_cost = order_units x unit_cost
    (NaN without a cost). A part without a master row has packs of 1, no minimum and no
    supplier."""
    table = _master(master)
    out = with_names(reorder, master)
    known = out["part"].isin(table.index)
    rows = table.reindex(out["part"])
    cost = pd.to_numeric(rows["unit_cost"], errors="coerce").to_numpy(float)
    units = [
        order_units(int(qty), _whole(pack, 1), _whole(minimum, 0)) if has else int(qty)
        for qty, pack, minimum, has in zip(
            out["order_qty"], rows["pack_size"], rows["min_order"], known, strict=True
        )
    ]
    out["unit_cost"] = cost
    out["currency"] = rows["currency"].fillna("").astype(str).to_numpy()
    out["supplier"] = rows["supplier"].fillna("").astype(str).to_numpy()
    out["pack_size"] = [max(1, _whole(pack, 1)) for pack in rows["pack_size"]]
    out["min_order"] = [max(0, _whole(minimum, 0)) for minimum in rows["min_order"]]
    out["order_units"] = units
    out["order_cost"] = (out["order_units"] * out["unit_cost"]).round(2)
    return out


def with_lead_times(
    stock: pd.DataFrame | None, pairs: Iterable[tuple[str, str]], master: pd.DataFrame | None
) -> pd.DataFrame | None:
    """The stock with a row for each planned pair (service center, part) that has none and whose
    part has a lead time in the master: nothing on hand or on order, lead_time_days / 7 weeks.
    A stock row's own lead time stands; other pairs keep the plan's default."""
    days = pd.to_numeric(_master(master)["lead_time_days"], errors="coerce").dropna()
    have = set() if stock is None else set(zip(stock["service_center"], stock["part"], strict=True))
    extra = [
        (center, part, 0.0, 0.0, float(days[part]) / 7.0)
        for center, part in sorted(set(pairs) - have)
        if part in days.index
    ]
    if not extra:
        return stock
    added = pd.DataFrame(extra, columns=list(STOCK_COLUMNS))
    return added if stock is None or stock.empty else pd.concat([stock, added], ignore_index=True)
