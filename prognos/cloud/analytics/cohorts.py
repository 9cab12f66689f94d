"""Cohorts and campaigns: the same fault across a production lot, a supplier, a model or a
region, found by an enrichment test with false-discovery control, and the vehicles to call in
(docs/analytics.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from prognos.cloud.analytics.common import (
    ANOMALY_SUFFIX,
    CAMPAIGN_CHECKS,
    CAMPAIGN_COLUMNS,
    COHORT_COLUMNS,
    DEFAULT_SETTINGS,
    SUBSYSTEM_WORDS,
    SUPPLIER_OF,
    AnalyticsSettings,
    empty_frame,
)
from prognos.cloud.parts.plan import (
    FAULT_PARTS,
)


def log_factorials(n: int) -> npt.NDArray[np.float64]:
    """log(k!) for k = 0..n."""
    values: npt.NDArray[np.float64] = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))
    return values


def enrichment_p(
    k: int, n: int, affected: int, total: int, logf: npt.NDArray[np.float64] | None = None
) -> float:
    """One-sided Fisher exact test: P(X >= k) for X hypergeometric, drawing n of `total`
    vehicles of which `affected` are affected. The chance that a group of n holds k or more
    affected vehicles if being affected had nothing to do with the group."""
    if logf is None or logf.size <= total:
        logf = log_factorials(total)
    low = max(k, n + affected - total, 0)
    high = min(n, affected)
    if k <= max(0, n + affected - total):
        return 1.0
    if low > high:
        return 0.0
    x = np.arange(low, high + 1)

    def log_choose(a: int | npt.NDArray[np.int64], b: int | npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = logf[a] - logf[b] - logf[np.subtract(a, b)]
        return result

    terms = log_choose(affected, x) + log_choose(total - affected, n - x) - log_choose(total, n)
    top = float(np.max(terms))
    return float(min(1.0, math.exp(top) * float(np.sum(np.exp(terms - top)))))


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values): reject those <= the FDR level."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    return q


def signatures(fault_counts: pd.DataFrame, peaks: pd.DataFrame | None = None) -> pd.DataFrame:
    """vin, code: the anomaly signatures each vehicle showed in the window: every fault code
    it reported, and SUBSYSTEM.anomaly for a subsystem whose anomaly score reached 1 (the alert
    threshold) without any fault code of that subsystem."""
    rows = []
    named: set[tuple[str, str]] = set()
    if not fault_counts.empty:
        for r in fault_counts.itertuples(index=False):
            if float(getattr(r, "points", 1) or 0) > 0:
                rows.append((str(r.vin), str(r.code)))
                named.add((str(r.vin), str(r.code).split(".", 1)[0]))
    if peaks is not None and not peaks.empty:
        for r in peaks.itertuples(index=False):
            if float(r.max_score) >= 1.0 and (str(r.vin), str(r.subsystem)) not in named:
                rows.append((str(r.vin), f"{r.subsystem}{ANOMALY_SUFFIX}"))
    return pd.DataFrame(sorted(set(rows)), columns=["vin", "code"])


def cohort_id(attribute: str, value: str, code: str) -> str:
    return f"{attribute}={value}:{code}"


TEST_COLUMNS = ("attribute", "value", "code", "affected", "cohort_size", "lift", "p_value", "q_value")


@dataclass(frozen=True)
class CohortFindings:
    cohorts: pd.DataFrame  # COHORT_COLUMNS: the significant cohorts, campaigns first
    tests: pd.DataFrame  # TEST_COLUMNS: every (attribute, value, code) group tested

    @property
    def tested(self) -> int:
        """The m of Benjamini-Hochberg."""
        return len(self.tests)


@dataclass
class _Group:
    attribute: str
    value: str
    code: str
    members: frozenset[str]
    affected: int
    p_value: float
    q_value: float = 1.0
    share: float = 0.0
    base_rate: float = 0.0
    lift: float = 0.0
    status: str = "campaign"
    covered_by: str = ""

    @property
    def id(self) -> str:
        return cohort_id(self.attribute, self.value, self.code)


def _lift(k: int, n: int, k_rest: int, n_rest: int) -> float:
    """share / base rate, the base rate estimated as (k_rest + 0.5) / (n_rest + 1) so a rest
    without any affected vehicle gives a finite lift."""
    if n <= 0:
        return 0.0
    return (k / n) / ((k_rest + 0.5) / (n_rest + 1.0))


def _preference(attribute: str, code: str) -> int:
    """Which of several cohorts with the same vehicles names the campaign: the lot, then the
    supplier of the code's part, then other suppliers, then the model."""
    if attribute == "lot":
        return 0
    if attribute == SUPPLIER_OF.get(code.split(".", 1)[0]):
        return 1
    return 3 if attribute == "model" else 2


def find_cohorts(
    registry: pd.DataFrame,
    affected: pd.DataFrame,
    observed: Iterable[str],
    *,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> CohortFindings:
    """Cohorts whose vehicles show a signature more often than the rest of the fleet.

    The fleet is the registered vehicles with data in the window (`observed`); `affected` is
    signatures(). For every attribute, value and signature: k affected of the cohort's n
    vehicles, K of the fleet's N. One-sided Fisher test of k against the rest of the fleet,
    Benjamini-Hochberg over all groups tested; a cohort is significant when q <= fdr,
    k >= min_affected and lift >= min_lift. Nested significant cohorts of one signature are
    then resolved (docs/analytics.md): a cohort whose excess lies wholly in smaller significant
    cohorts inside it, or that is no worse than the larger cohort around it, or that has the
    same vehicles as a preferred one, is `covered` by that cohort instead of a campaign."""
    seen = set(map(str, observed))
    fleet = registry[registry["vin"].astype(str).isin(seen)].drop_duplicates("vin")
    total = len(fleet)
    if total == 0 or affected.empty:
        return CohortFindings(empty_frame(COHORT_COLUMNS), empty_frame(TEST_COLUMNS))
    fleet_vins = set(fleet["vin"].astype(str))
    by_code = {
        str(code): frozenset(str(v) for v in group["vin"] if str(v) in fleet_vins)
        for code, group in affected.groupby("code")
    }
    by_code = {code: vins for code, vins in by_code.items() if vins}
    logf = log_factorials(total)
    groups: list[_Group] = []
    for attribute in settings.cohort_attributes:
        if attribute not in fleet.columns:
            continue
        values = fleet[attribute].astype(object).where(fleet[attribute].notna(), "").astype(str).str.strip()
        for value, members_frame in fleet.assign(_value=values.to_numpy()).groupby("_value"):
            members = frozenset(members_frame["vin"].astype(str))
            n = len(members)
            if not value or n >= total:
                continue
            for code, vins in sorted(by_code.items()):
                k = len(members & vins)
                big_k = len(vins)
                group = _Group(
                    attribute, str(value), code, members, k, enrichment_p(k, n, big_k, total, logf)
                )
                group.share = k / n
                group.base_rate = (big_k - k) / (total - n)
                group.lift = _lift(k, n, big_k - k, total - n)
                groups.append(group)
    q_values = benjamini_hochberg([g.p_value for g in groups])
    for group, q in zip(groups, q_values, strict=True):
        group.q_value = float(q)
    tests = pd.DataFrame(
        [
            (g.attribute, g.value, g.code, g.affected, len(g.members), g.lift, g.p_value, g.q_value)
            for g in groups
        ],
        columns=list(TEST_COLUMNS),
    )
    significant = [
        g
        for g in groups
        if g.q_value <= settings.fdr and g.affected >= settings.min_affected and g.lift >= settings.min_lift
    ]
    for code in sorted({g.code for g in significant}):
        _resolve_nesting(
            [g for g in significant if g.code == code], by_code[code], fleet_vins, logf, settings
        )
    registered = {
        attribute: registry[attribute]
        .astype(object)
        .where(registry[attribute].notna(), "")
        .astype(str)
        .str.strip()
        for attribute in settings.cohort_attributes
        if attribute in registry.columns
    }
    rows = []
    for g in significant:
        spec = FAULT_PARTS.get(g.code)
        subsystem = g.code.split(".", 1)[0]
        what = SUBSYSTEM_WORDS.get(subsystem, f"the {subsystem}")
        rows.append(
            {
                "cohort_id": g.id,
                "attribute": g.attribute,
                "value": g.value,
                "code": g.code,
                "affected": g.affected,
                "cohort_size": len(g.members),
                "registered": int((registered[g.attribute] == g.value).sum()),
                "share": g.share,
                "base_rate": g.base_rate,
                "lift": g.lift,
                "p_value": g.p_value,
                "q_value": g.q_value,
                "status": g.status,
                "covered_by": g.covered_by,
                "part": spec.part if spec else "",
                "part_name": spec.name if spec else "",
                "check": CAMPAIGN_CHECKS.get(
                    g.code, f"Inspect {what}: the detector flags unusual readings in this cohort."
                ),
            }
        )
    if not rows:
        return CohortFindings(empty_frame(COHORT_COLUMNS), tests)
    table = pd.DataFrame(rows)
    table = table.assign(_campaign=table["status"] != "campaign").sort_values(
        ["_campaign", "p_value", "cohort_id"], kind="stable"
    )
    return CohortFindings(table[list(COHORT_COLUMNS)].reset_index(drop=True), tests)


def _elevated(
    k: int, n: int, k_rest: int, n_rest: int, logf: npt.NDArray[np.float64], settings: AnalyticsSettings
) -> bool:
    """Is the share k/n clearly above k_rest/n_rest (same rules as a cohort, unadjusted)?"""
    if n <= 0 or n_rest <= 0 or k < settings.min_affected:
        return False
    p = enrichment_p(k, n, k + k_rest, n + n_rest, logf)
    return p <= settings.nested_alpha and _lift(k, n, k_rest, n_rest) >= settings.min_lift


def _resolve_nesting(
    groups: list[_Group],
    affected: frozenset[str],
    fleet: set[str],
    logf: npt.NDArray[np.float64],
    settings: AnalyticsSettings,
) -> None:
    """Mark which significant cohorts of one signature are campaigns and which are covered."""
    # 1. The same vehicles under several names: keep the preferred name.
    by_members: dict[frozenset[str], list[_Group]] = {}
    for g in groups:
        by_members.setdefault(g.members, []).append(g)
    for same in by_members.values():
        same.sort(key=lambda g: (_preference(g.attribute, g.code), g.id))
        for g in same[1:]:
            g.status, g.covered_by = "covered", same[0].id
    live = [g for g in groups if g.status == "campaign"]
    # 2. A cohort whose excess lies in the significant cohorts inside it (a model whose only
    #    bad lot is significant on its own) is covered by the one of them with most affected.
    for outer in sorted(live, key=lambda g: len(g.members)):
        inner = [g for g in live if g is not outer and g.members < outer.members and g.status == "campaign"]
        if not inner:
            continue
        rest = outer.members - frozenset().union(*(g.members for g in inner))
        outside = fleet - outer.members
        if not _elevated(
            len(rest & affected), len(rest), len(outside & affected), len(outside), logf, settings
        ):
            outer.status = "covered"
            outer.covered_by = max(inner, key=lambda g: (g.affected, -len(g.members))).id
    live = [g for g in groups if g.status == "campaign"]
    # 3. A cohort no worse than the rest of a larger campaign around it (one lot of a bad
    #    supplier) is covered by that campaign.
    for small in sorted(live, key=lambda g: len(g.members)):
        for outer in sorted(live, key=lambda g: len(g.members)):
            if outer is small or not small.members < outer.members or outer.status != "campaign":
                continue
            rest = outer.members - small.members
            if not _elevated(
                small.affected, len(small.members), len(rest & affected), len(rest), logf, settings
            ):
                small.status, small.covered_by = "covered", outer.id
                break
    # A cover that was covered in turn hands its vehicles on: point at the campaign.
    by_id = {g.id: g for g in groups}
    for g in groups:
        target, steps = g.covered_by, 0
        while target and by_id[target].status != "campaign" and steps < len(groups):
            target, steps = by_id[target].covered_by, steps + 1
        g.covered_by = target


def campaign_vehicles(
    cohorts: pd.DataFrame, registry: pd.DataFrame, affected: pd.DataFrame, observed: Iterable[str]
) -> pd.DataFrame:
    """Every registered vehicle of every campaign cohort (CAMPAIGN_COLUMNS): status
    `affected`, `not yet affected` (data in the window, signature not shown: the vehicles a
    campaign is for), or `no recent data`. Per cohort: affected first, then by VIN."""
    if cohorts.empty:
        return empty_frame(CAMPAIGN_COLUMNS)
    seen = set(map(str, observed))
    shown = (
        {(str(r.vin), str(r.code)) for r in affected.itertuples(index=False)} if not affected.empty else set()
    )
    rows = []
    for c in cohorts[cohorts["status"] == "campaign"].itertuples(index=False):
        column = str(c.attribute)
        values = registry[column].astype(object).where(registry[column].notna(), "").astype(str).str.strip()
        for v in registry[values == str(c.value)].itertuples(index=False):
            vin = str(v.vin)
            hit = (vin, str(c.code)) in shown
            status = "affected" if hit else ("not yet affected" if vin in seen else "no recent data")
            rows.append(
                {
                    "cohort_id": c.cohort_id,
                    "vin": vin,
                    "attribute": c.attribute,
                    "value": c.value,
                    "code": c.code,
                    "status": status,
                    "affected": hit,
                    "model": as_text(getattr(v, "model", "")),
                    "lot": as_text(getattr(v, "lot", "")),
                    "owner_name": as_text(getattr(v, "owner_name", "")),
                    "owner_contact": as_text(getattr(v, "owner_contact", "")),
                    "service_center": as_text(getattr(v, "service_center", "")),
                    "part": c.part,
                    "check": c.check,
                }
            )
    if not rows:
        return empty_frame(CAMPAIGN_COLUMNS)
    table = pd.DataFrame(rows)
    order = {"affected": 0, "not yet affected": 1, "no recent data": 2}
    table = table.assign(_order=table["status"].map(order)).sort_values(["cohort_id", "_order", "vin"])
    return table[list(CAMPAIGN_COLUMNS)].reset_index(drop=True)


def as_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)
