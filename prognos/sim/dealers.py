"""Synthetic dealer-system (DMS) exports for the demo and the tests.

A handful of dealers with realistic KPI levels (first-time fix near 80 %, CSAT near 4.4,
two to four complaints per 100 orders, fulfilment near 97 %, steady cash), and one dealer
that slips over its last months: complaints rise, fulfilment and satisfaction fall and its
cash flow swings, so the risk early warning has something to find. The vehicle registry is
built from prognos.sim.fleet.make_fleet, so its VINs, models, lots and suppliers are those of the
simulated fleet with the same seed; each dealer's service center has a place, a capacity and
its technicians (WORKSHOPS). A third of the work orders repair a fault the vehicle reported:
they carry its code, the symptoms, the mileage, the root cause found and the repair done
(prognos.sim.repairs), and a wrong first repair brings the vehicle back. `write_dms` writes one
CSV file per kind in the formats of docs/dms.md.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from prognos.cloud.dealers.kinds import KINDS
from prognos.sim.fleet import make_fleet
from prognos.sim.repairs import Diagnoser, Diagnosis, mileage_km

Row = dict[str, str]

# part number -> (share of orders that use it, the scale of its stock draws in _stock); PG-* as
# prognos/cloud/parts/plan.py
PARTS = {
    "PG-BRK-3100": (0.22, 60),
    "BRK-DSC-02": (0.08, 24),
    "PG-TYR-2100": (0.15, 80),
    "PG-BAT-1100": (0.03, 6),
    "PG-WBR-4100": (0.05, 12),
    "PG-MOT-5100": (0.02, 4),
    "FLT-CAB-1": (0.30, 90),
    "WIPER-600": (0.18, 70),
}


@dataclass(frozen=True)
class PartMaster:
    """A part's row of the parts master (the `part` kind)."""

    name: str
    unit_cost: float  # EUR
    supplier: str
    lead_time_days: int
    pack_size: int
    min_order: int
    substitutes: str = ""


MASTER = {  # every part of PARTS
    "PG-BRK-3100": PartMaster("Brake pad set, front axle", 48.50, "Brembo", 7, 1, 2),
    "BRK-DSC-02": PartMaster("Brake disc, front, vented", 62.00, "Brembo", 10, 2, 2),
    "PG-TYR-2100": PartMaster("Tyre 215/55 R17 with valve and TPMS sensor", 139.00, "Continental", 5, 1, 4),
    "PG-BAT-1100": PartMaster("Battery module temperature sensor", 86.40, "Bosch", 21, 1, 1),
    "PG-WBR-4100": PartMaster("Wheel bearing hub unit, front", 118.00, "SKF", 14, 1, 1),
    "PG-MOT-5100": PartMaster("Drive motor bearing kit", 214.00, "Schaeffler", 28, 1, 1),
    "FLT-CAB-1": PartMaster(
        "Cabin air filter, activated carbon", 18.90, "Mann+Hummel", 5, 10, 10, "FLT-CAB-2"
    ),
    "WIPER-600": PartMaster("Wiper blade, 600 mm", 14.20, "Valeo", 5, 10, 10),
}
PROMISES_MIN = (45, 60, 90, 120, 180, 240, 480)
COMPLAINT_CATEGORIES = ("waiting time", "repair quality", "billing", "communication", "parts delay")
FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaja")
LAST_NAMES = ("Berger", "Costa", "Dahl", "Ekström", "Fischer", "García", "Horvat", "Ivanova", "Jansen")
SUPPLIER_COLUMNS = {  # part, as prognos.sim.vehicle names it -> registry column
    "battery": "battery_supplier",
    "tires": "tire_supplier",
    "brakes": "brake_supplier",
    "bearings": "bearing_supplier",
    "motor": "motor_supplier",
}


@dataclass(frozen=True)
class DealerProfile:
    """A dealer's normal levels; the slipping dealer drifts away from them."""

    dealer_id: str
    service_center: str
    region: str  # one of prognos.sim.fleet.REGIONS, so registry vehicles find a home dealer
    orders_per_month: int
    ftf: float  # share of orders fixed the first time
    fcr: float  # share resolved at the first contact
    sla: float  # share closed within the promised time
    csat: float  # mean CSAT, 1..5
    promoters: float  # share of NPS answers 9-10
    detractors: float  # share of NPS answers 0-6
    complaints_per_100: float
    fulfilment: float  # share of customer orders fulfilled
    income: float  # cash in per month
    margin: float  # net cash flow as a share of income
    cash_noise: float  # std of net cash flow as a share of income


DEFAULT_DEALERS = (
    DealerProfile(
        "DLR-01", "SC-01", "north", 260, 0.91, 0.78, 0.92, 4.5, 0.62, 0.10, 2.5, 0.97, 410e3, 0.08, 0.03
    ),
    DealerProfile(
        "DLR-02", "SC-02", "north", 220, 0.88, 0.74, 0.89, 4.4, 0.55, 0.12, 3.0, 0.96, 350e3, 0.07, 0.04
    ),
    DealerProfile(
        "DLR-03", "SC-03", "south", 300, 0.90, 0.80, 0.93, 4.5, 0.60, 0.09, 2.2, 0.98, 480e3, 0.09, 0.03
    ),
    DealerProfile(
        "DLR-04", "SC-04", "coast", 240, 0.86, 0.72, 0.87, 4.3, 0.50, 0.14, 3.4, 0.96, 380e3, 0.06, 0.04
    ),
    DealerProfile(
        "DLR-05", "SC-05", "south", 250, 0.89, 0.76, 0.90, 4.4, 0.57, 0.11, 2.8, 0.97, 400e3, 0.08, 0.03
    ),
)


@dataclass(frozen=True)
class Workshop:
    """Where a dealer's service center is and what it can take (the `service_center` kind)."""

    name: str
    lat: float  # WGS 84
    lon: float
    technicians: int
    skills: str = ""  # subsystems it repairs, ";" between them; empty: everything


WORKSHOPS = {  # service center -> workshop; capacity comes from the dealer's order volume
    "SC-01": Workshop("Prognos Service Hamburg", 53.551, 9.994, 12),
    "SC-02": Workshop("Prognos Service Bremen", 53.079, 8.802, 10),
    "SC-03": Workshop("Prognos Service Munich", 48.137, 11.575, 14),
    "SC-04": Workshop("Prognos Service Kiel", 54.323, 10.123, 9, "tires;brakes;bearings;motor"),
    "SC-05": Workshop("Prognos Service Stuttgart", 48.776, 9.183, 11),
}
SLIPPING_DEALER = "DLR-05"


def _month_starts(end: date, months: int) -> list[datetime]:
    starts = []
    year, month = end.year, end.month
    for _ in range(months):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        starts.append(datetime(year, month, 1, tzinfo=UTC))
    return starts[::-1]


def _next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def make_dms(
    *,
    seed: int = 7,
    months: int = 12,
    end: date | None = None,
    dealers: Sequence[DealerProfile] = DEFAULT_DEALERS,
    slipping: str | None = SLIPPING_DEALER,
    slip_months: int = 5,
    vehicles: int = 60,
    fleet_seed: int = 1,
    fleet: str = "demo",
    order_scale: float = 1.0,
) -> dict[str, list[Row]]:
    """Rows of every kind (kind -> rows of CSV text) for the `months` whole months before `end`
    (default: the first day of this month). `slipping` names the dealer that drifts over its
    last `slip_months` months; `order_scale` scales every dealer's order volume."""
    end = end or datetime.now(UTC).date().replace(day=1)
    end_time = datetime(end.year, end.month, 1, tzinfo=UTC)
    starts = _month_starts(end, months)
    registry = _vehicles(vehicles, fleet_seed, fleet, dealers, seed)
    rows: dict[str, list[Row]] = {name: [] for name in KINDS}
    rows["vehicle"] = registry
    rows["service_center"] = [_service_center(profile) for profile in dealers]
    rows["part"] = [_part(part, MASTER[part]) for part in PARTS]
    workshop = _Workshop(Diagnoser(seed=seed), registry)
    for index, profile in enumerate(dealers):
        rng = np.random.default_rng([seed, index])
        local = [v["vin"] for v in registry if v["service_center"] == profile.service_center]
        vins = local or [v["vin"] for v in registry] or ["UNKNOWN0000000000"]
        counter = {"order": 0, "complaint": 0, "survey": 0}
        for m, start in enumerate(starts):
            slip = 0.0
            if profile.dealer_id == slipping:
                slip = float(np.clip((m - (months - slip_months) + 1) / slip_months, 0.0, 1.0))
            _month(rows, rng, profile, start, end_time, slip, m, vins, counter, order_scale, workshop)
    return rows


@dataclass
class _Workshop:
    """What the work orders' diagnoses need (prognos.sim.repairs): each vehicle's model and
    when it took the road (its production date, else 2023-01-01)."""

    diagnoser: Diagnoser
    registry: list[Row]

    def __post_init__(self) -> None:
        self.models = {row["vin"]: row.get("model") or "EV-1" for row in self.registry}
        self.since = {
            row["vin"]: np.datetime64(row.get("production_date") or "2023-01-01", "s")
            for row in self.registry
        }

    def mileage_km(self, vin: str, at: np.datetime64) -> int:
        since = self.since.get(vin, np.datetime64("2023-01-01", "s"))
        return mileage_km(vin, float((at - since) / np.timedelta64(1, "D")))


def _vehicles(
    size: int, fleet_seed: int, fleet: str, dealers: Sequence[DealerProfile], seed: int
) -> list[Row]:
    rng = np.random.default_rng([seed, 10_000])
    home = {profile.region: profile.service_center for profile in reversed(dealers)}
    fallback = dealers[0].service_center if dealers else "SC-01"
    registry = []
    for spec in make_fleet(size, seed=fleet_seed) if size else []:
        first, last = str(rng.choice(FIRST_NAMES)), str(rng.choice(LAST_NAMES))
        lot_index = int(spec.lot.lstrip("L") or 1)
        built = date(2023, 1, 16) + timedelta(days=45 * lot_index + int(rng.integers(0, 20)))
        row: Row = {
            "vin": spec.vin,
            "model": spec.model,
            "lot": spec.lot,
            "region": spec.region,
            "owner_name": f"{first} {last}",
            "owner_contact": f"{first}.{last}@example.com".lower().replace("ö", "o").replace("í", "i"),
            "service_center": home.get(spec.region, fallback),
            "production_date": built.isoformat(),
            "fleet": fleet,
        }
        for part, column in SUPPLIER_COLUMNS.items():
            row[column] = dict(spec.suppliers).get(part, "")
        registry.append(row)
    return registry


def _part(part: str, m: PartMaster) -> Row:
    return {
        "part": part,
        "name": m.name,
        "unit_cost": f"{m.unit_cost:.2f}",
        "currency": "EUR",
        "supplier": m.supplier,
        "lead_time_days": str(m.lead_time_days),
        "pack_size": str(m.pack_size),
        "min_order": str(m.min_order),
        "substitutes": m.substitutes,
    }


# How much of its need over lead time + review period a center's stock of a part covers, by
# (center number + part index) mod 5: every part is short at some centers (an order) and
# plentiful at a neighbour (a transfer), as stock drifts between a network's stores.
STOCK_COVER = (0.5, 1.7, 0.8, 2.6, 1.1)
REVIEW_WEEKS = 1.0  # the parts plan's review period (prognos.cloud.parts.plan.DEFAULT_REVIEW_WEEKS)


def _center_number(center: str) -> int:
    digits = "".join(ch for ch in center if ch.isdigit())
    return int(digits) if digits else sum(map(ord, center))


def _stock(p: DealerProfile, rng: np.random.Generator, counted: str, order_scale: float) -> list[Row]:
    """A center's stock count of every part: its weekly use (orders a week x the part's share)
    times its lead time (the parts master's) + review period, times the part's STOCK_COVER, with
    10 % noise; a little on order. Draws from `rng` as many numbers as it always has, so the
    rest of the month's data does not change with the stock's rule."""
    weekly_orders = p.orders_per_month * order_scale * 12 / 52
    rows = []
    for j, (part, (share, typical)) in enumerate(PARTS.items()):
        noise = (rng.normal(typical, typical * 0.15) - typical) / (typical * 0.15)
        drawn = int(rng.integers(0, max(2, typical // 3)))
        lead_weeks = MASTER[part].lead_time_days / 7
        need = weekly_orders * share * (lead_weeks + REVIEW_WEEKS)
        cover = STOCK_COVER[(_center_number(p.service_center) + j) % len(STOCK_COVER)]
        on_order = min(drawn, round(0.5 * weekly_orders * share)) if cover < 1.0 else 0
        rows.append(
            {
                "dealer_id": p.dealer_id,
                "service_center": p.service_center,
                "part": part,
                "on_hand": str(max(0, round(cover * need * (1.0 + 0.1 * noise)))),
                "on_order": str(on_order),
                "lead_time_weeks": f"{lead_weeks:.2f}",
                "as_of": counted,
            }
        )
    return rows


def _service_center(p: DealerProfile) -> Row:
    """A dealer's service center: its workshop (a default place for a dealer not in
    WORKSHOPS); its capacity is its usual orders a week with a quarter to spare."""
    shop = WORKSHOPS.get(p.service_center, Workshop(p.service_center, 51.0, 10.0, 10))
    return {
        "service_center": p.service_center,
        "name": shop.name,
        "dealer_id": p.dealer_id,
        "lat": f"{shop.lat:.4f}",
        "lon": f"{shop.lon:.4f}",
        "capacity_per_week": str(round(p.orders_per_month * 12 / 52 * 1.25)),
        "technicians": str(shop.technicians),
        "skills": shop.skills,
    }


def _stamps(moments: np.ndarray) -> list[str]:
    """datetime64[s] values as ISO 8601 UTC text."""
    return [text + "Z" for text in np.datetime_as_string(moments, unit="s")]


def _seconds(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype("timedelta64[s]")


def _month(
    rows: dict[str, list[Row]],
    rng: np.random.Generator,
    p: DealerProfile,
    start: datetime,
    end_time: datetime,
    slip: float,
    m: int,
    vins: list[str],
    counter: dict[str, int],
    order_scale: float,
    workshop: _Workshop,
) -> None:
    first = np.datetime64(start.replace(tzinfo=None), "s")
    end = np.datetime64(end_time.replace(tzinfo=None), "s")
    days = (_next_month(start) - start).days
    ftf, fcr, sla = p.ftf - 0.12 * slip, p.fcr - 0.10 * slip, p.sla - 0.20 * slip
    promoters = max(0.05, p.promoters - 0.30 * slip)
    detractors = min(0.80, p.detractors + 0.30 * slip)

    def moments(n: int) -> np.ndarray:  # n moments in the month's working hours
        day, hour, minute = rng.integers(0, days, n), rng.integers(7, 17, n), rng.integers(0, 60, n)
        return first + _seconds(day * 86_400 + hour * 3_600 + minute * 60)

    n = int(rng.poisson(p.orders_per_month * order_scale))
    opened = moments(n)
    promised = np.asarray(PROMISES_MIN)[rng.integers(0, len(PROMISES_MIN), n)]
    factor = np.where(rng.random(n) < sla, rng.uniform(0.4, 1.0, n), rng.uniform(1.05, 2.5, n))
    closed = opened + _seconds(np.round(promised * factor) * 60)
    fixed = rng.random(n) < ftf
    resolved = rng.random(n) < fcr
    uses = rng.random((n, len(PARTS))) < np.array([share for share, _ in PARTS.values()])
    labour = np.round(np.maximum(0.1, promised / 60 * rng.gamma(4.0, 0.2, n)), 1)
    amount = np.round(labour * 95.0 + 40.0 * uses.sum(axis=1) + rng.uniform(0, 30, n), 2)
    vin = np.asarray(vins)[rng.integers(0, len(vins), n)]
    again = closed + _seconds(rng.uniform(2, 20, n) * 86_400)
    again_closed = again + _seconds(promised // 2 * 60)
    comes_back = rng.random(n) < 0.6
    # A visit for a reported fault is fixed the first time when the first repair was of its root
    # cause; a wrong one always brings the vehicle back (prognos.sim.repairs).
    diagnoses = _diagnoses(workshop, vin, opened)
    for i, diagnosis in diagnoses.items():
        fixed[i] = diagnosis.fixed_first_time
        comes_back[i] = not diagnosis.fixed_first_time
    repeat = ~fixed & comes_back & (again < end)
    texts = [_stamps(t) for t in (opened, closed, again, again_closed)]
    part_names = list(PARTS)
    for i in range(n):
        counter["order"] += 1
        order_id = f"{p.dealer_id}-WO{counter['order']:06d}"
        used = ";".join(part_names[j] for j in np.flatnonzero(uses[i]))
        row = _order_row(
            p,
            order_id,
            str(vin[i]),
            texts[0][i],
            texts[1][i] if closed[i] < end else "",
            int(promised[i]),
            bool(resolved[i]),
            bool(fixed[i]),
            float(labour[i]),
            used,
            float(amount[i]),
        )
        row["mileage_km"] = str(workshop.mileage_km(str(vin[i]), opened[i]))
        if i in diagnoses:
            row |= diagnoses[i].visit_columns(int(row["mileage_km"]))
        rows["work_order"].append(row)
        if repeat[i]:
            counter["order"] += 1
            back = _order_row(
                p,
                f"{p.dealer_id}-WO{counter['order']:06d}",
                str(vin[i]),
                texts[2][i],
                texts[3][i] if again_closed[i] < end else "",
                int(promised[i]),
                True,
                True,
                round(float(labour[i]) / 2, 1),
                "",
                round(float(amount[i]) / 3, 2),
            )
            back["repeat_of_order_id"] = order_id
            back["mileage_km"] = str(workshop.mileage_km(str(vin[i]), again[i]))
            if i in diagnoses:
                back |= diagnoses[i].visit_columns(int(back["mileage_km"]), comeback=True)
            rows["work_order"].append(back)

    count = int(rng.poisson((p.complaints_per_100 + 8.0 * slip) / 100.0 * n))
    raised = moments(count)
    settled = raised + _seconds(rng.uniform(1, 20, count) * 86_400)
    category = rng.integers(0, len(COMPLAINT_CATEGORIES), count)
    about = np.where(rng.random(count) < 0.8, np.asarray(vins)[rng.integers(0, len(vins), count)], "")
    raised_text, settled_text = _stamps(raised), _stamps(settled)
    for i in range(count):
        counter["complaint"] += 1
        rows["complaint"].append(
            {
                "dealer_id": p.dealer_id,
                "complaint_id": f"{p.dealer_id}-C{counter['complaint']:05d}",
                "opened_at": raised_text[i],
                "closed_at": settled_text[i] if settled[i] < end else "",
                "category": COMPLAINT_CATEGORIES[category[i]],
                "vin": str(about[i]),
            }
        )

    answered = closed + _seconds(rng.uniform(2, 96, n) * 3_600)
    asked = (rng.random(n) < 0.3) & (answered < end)
    csat = np.clip(np.round(rng.normal(p.csat - 0.9 * slip, 0.7, n)), 1, 5).astype(int)
    group = rng.random(n)
    nps = np.where(
        group < promoters,
        rng.integers(9, 11, n),
        np.where(group < promoters + detractors, rng.integers(0, 7, n), rng.integers(7, 9, n)),
    )
    answered_text = _stamps(answered)
    for i in map(int, np.flatnonzero(asked)):
        counter["survey"] += 1
        rows["survey"].append(
            {
                "dealer_id": p.dealer_id,
                "survey_id": f"{p.dealer_id}-S{counter['survey']:06d}",
                "vin": str(vin[i]),
                "answered_at": answered_text[i],
                "csat": str(csat[i]),
                "nps": str(nps[i]),
            }
        )

    counted = _stamps(np.array([first + np.timedelta64(6, "h")]))[0]
    rows["parts_stock"] += _stock(p, rng, counted, order_scale)

    received = n + int(rng.poisson(40))  # workshop orders and parts-counter sales
    fulfilled = int(rng.binomial(received, float(np.clip(p.fulfilment - 0.20 * slip, 0.0, 1.0))))
    cash_in = p.income * order_scale * float(rng.normal(1.0, 0.04))
    swing = (1 if m % 2 else -1) * 0.35 * slip  # the slipping dealer's cash swings month to month
    net = cash_in * (p.margin + swing + float(rng.normal(0.0, p.cash_noise + 0.15 * slip)))
    rows["dealer_finance"].append(
        {
            "dealer_id": p.dealer_id,
            "period": f"{start.year:04d}-{start.month:02d}",
            "cash_in": f"{cash_in:.2f}",
            "cash_out": f"{max(0.0, cash_in - net):.2f}",
            "orders_received": str(received),
            "orders_fulfilled": str(fulfilled),
        }
    )


def _diagnoses(workshop: _Workshop, vins: np.ndarray, opened: np.ndarray) -> dict[int, Diagnosis]:
    """Order index -> the diagnosis of each of the month's visits for a reported fault, drawn in
    the order the visits happened (a diagnosis depends on the vehicle's earlier repairs)."""
    found = {}
    for i in map(int, np.argsort(opened, kind="stable")):
        code = workshop.diagnoser.fault_code()
        if code is None:
            continue
        vin = str(vins[i])
        found[i] = workshop.diagnoser.diagnose(
            vin=vin,
            model=workshop.models.get(vin, "EV-1"),
            code=code,
            mileage_km=workshop.mileage_km(vin, opened[i]),
        )
    return found


def _order_row(
    p: DealerProfile,
    order_id: str,
    vin: str,
    opened: str,
    closed: str,
    promised: int,
    resolved: bool,
    fixed: bool,
    labour: float,
    parts: str,
    amount: float,
) -> Row:
    return {
        "dealer_id": p.dealer_id,
        "order_id": order_id,
        "vin": vin,
        "opened_at": opened,
        "closed_at": closed,
        "promised_minutes": str(promised),
        "first_contact_resolved": "true" if resolved else "false",
        "fixed_first_time": "true" if fixed else "false",
        "repeat_of_order_id": "",
        "labour_hours": f"{labour:.1f}",
        "parts": parts,
        "amount": f"{amount:.2f}",
        "currency": "EUR",
        "service_center": p.service_center,
        "region": p.region,
        "fault_code": "",
        "symptoms": "",
        "mileage_km": "",
        "root_cause": "",
        "repair": "",
    }


def write_dms(rows: dict[str, list[Row]], out_dir: Path) -> dict[str, Path]:
    """One CSV file per kind that has rows (out_dir/<kind>.csv), columns in the documented order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, kind_rows in rows.items():
        if not kind_rows:
            continue
        path = out_dir / f"{kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(KINDS[kind].names), lineterminator="\n")
            writer.writeheader()
            writer.writerows(kind_rows)
        paths[kind] = path
    return paths
