"""Guided diagnosis: from the work-order history, the likely root causes of a new case and
their repair steps, each with a confidence and its evidence, and a backtest that replays the
history (docs/desk.md, "Guided diagnosis"). Pure: orders in, suggestions and figures out.

A case is a fault as it came in and how it ended: the first order with a fault code and the
orders that came back for it, each within COMEBACK_DAYS of the closing of the order it repeats
(`repeat_of_order_id`). The root cause of the case's last order is the one its repair
confirmed; a case with a comeback was not fixed the first time. The guide learns from settled
cases (COMEBACK_DAYS past their last order, so no comeback can still come) and scores each
root cause seen for the fault code by a smoothed naive Bayes over the vehicle's model, its
mileage band, the symptoms and the root cause of the vehicle's previous order for the same
code (its past repair). Learning from confirmed causes is how outcomes count: a repair that
came back teaches the cause found at the comeback, not the one first tried.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from prognos.errors import ConfigError

COMEBACK_DAYS = 30  # a repeat visit within this many days of closing: not fixed the first time
BANDS_KM = (20_000, 60_000, 120_000)  # mileage bands: below 20,000 km, 20,000-60,000, ...
SMOOTHING_CASES = 2.0  # each cause's counts of a value start from this many cases at its overall share
SPLIT_SHARE = 0.7  # the backtest's default split: the first 70 % of the cases to learn from
NO_PREVIOUS = "none"  # the previous-repair value of a vehicle without one for the code


class NoHistoryError(ConfigError):
    """The history holds nothing to learn from for what was asked."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Order:
    """One work order as the guide reads it."""

    dealer_id: str
    order_id: str
    vin: str
    model: str | None
    opened_at: datetime
    closed_at: datetime | None
    fault_code: str | None
    symptoms: frozenset[str] = frozenset()
    mileage_km: int | None = None
    root_cause: str | None = None
    repair: tuple[str, ...] = ()
    repeat_of_order_id: str | None = None  # an earlier order of the same dealer

    @property
    def key(self) -> tuple[str, str]:
        return self.dealer_id, self.order_id

    @property
    def ended_at(self) -> datetime:
        return self.closed_at or self.opened_at


@dataclass(frozen=True, slots=True)
class Case:
    """A fault from its first order to the last comeback for it, in order."""

    visits: tuple[Order, ...]
    previous: str  # the root cause of the vehicle's previous order for the code, or NO_PREVIOUS

    @property
    def first(self) -> Order:
        return self.visits[0]

    @property
    def code(self) -> str:
        return self.first.fault_code or ""

    @property
    def confirmed_cause(self) -> str | None:
        """The root cause the last repair confirmed (nothing came back after it)."""
        return self.visits[-1].root_cause

    @property
    def repair(self) -> tuple[str, ...]:
        return self.visits[-1].repair

    @property
    def fixed_first_time(self) -> bool:
        return len(self.visits) == 1

    @property
    def settled_at(self) -> datetime:
        """When no comeback can join it any more."""
        return self.visits[-1].ended_at + timedelta(days=COMEBACK_DAYS)

    @property
    def features(self) -> Features:
        first = self.first
        return Features(
            code=self.code,
            symptoms=first.symptoms,
            model=first.model,
            mileage_km=first.mileage_km,
            previous=self.previous,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Features:
    """What is known of a case when the vehicle comes in."""

    code: str
    symptoms: frozenset[str] = frozenset()
    symptoms_known: bool = True  # False: nobody looked, so a symptom not listed is no evidence
    model: str | None = None
    mileage_km: int | None = None
    previous: str = NO_PREVIOUS

    @property
    def band(self) -> str | None:
        return mileage_band(self.mileage_km)


def mileage_band(mileage_km: int | None) -> str | None:
    """The band of a mileage, e.g. "20k-60k km"; None when unknown."""
    if mileage_km is None:
        return None
    lower = 0
    for upper in BANDS_KM:
        if mileage_km < upper:
            return f"{lower // 1000}k-{upper // 1000}k km"
        lower = upper
    return f"{lower // 1000}k+ km"


def cases(orders: Iterable[Order]) -> list[Case]:
    """The cases of a history, by when they began. An order joins the case of the order it
    repeats when it was opened within COMEBACK_DAYS of that order's closing; any other order
    with a fault code begins a case; orders without one (services) are no case."""
    visits: list[list[Order]] = []
    previous: list[str] = []
    case_of: dict[tuple[str, str], int] = {}
    by_key: dict[tuple[str, str], Order] = {}
    last_cause: dict[tuple[str, str], str] = {}  # (vin, code) -> root cause of its latest order
    for order in sorted(orders, key=lambda o: (o.opened_at, o.dealer_id, o.order_id)):
        by_key[order.key] = order
        repeated = (order.dealer_id, order.repeat_of_order_id) if order.repeat_of_order_id else None
        index = case_of.get(repeated) if repeated else None
        if index is not None and repeated is not None:
            window_end = by_key[repeated].ended_at + timedelta(days=COMEBACK_DAYS)
            if order.opened_at > window_end:
                index = None
        if index is None:
            if not order.fault_code:
                continue
            index = len(visits)
            visits.append([])
            previous.append(last_cause.get((order.vin, order.fault_code), NO_PREVIOUS))
        visits[index].append(order)
        case_of[order.key] = index
        if order.fault_code and order.root_cause:
            last_cause[(order.vin, order.fault_code)] = order.root_cause
    return [Case(tuple(v), p) for v, p in zip(visits, previous, strict=True)]


# --- the guide ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Suggestion:
    root_cause: str
    repair: tuple[str, ...]  # the steps that most often confirmed this cause for the code
    confidence: float  # the guide's probability of this cause, 0..1
    similar_cases: int  # similar past cases (Guide.similar) this cause was confirmed in
    fixed_first_time: int  # of those, how many were fixed at the first visit
    cases: int  # every past case of the code this cause was confirmed in


@dataclass(frozen=True, kw_only=True, slots=True)
class Advice:
    features: Features
    learned_cases: int  # past cases of the code the guide learned from
    similar_cases: int  # of those, the similar ones
    suggestions: tuple[Suggestion, ...]  # most likely first


@dataclass
class _CodeCounts:
    """What the guide counted for one fault code."""

    cases: list[Case] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)
    models: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    bands: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    previous: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    symptoms: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    repairs: defaultdict[str, Counter[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, case: Case, cause: str) -> None:
        features = case.features
        self.cases.append(case)
        self.causes[cause] += 1
        if features.model:
            self.models[cause][features.model] += 1
        if features.band:
            self.bands[cause][features.band] += 1
        self.previous[cause][features.previous] += 1
        self.symptoms[cause].update(features.symptoms)
        self.repairs[cause][case.repair] += 1

    @cached_property
    def overall(self) -> dict[str, Counter[str]]:
        """Each feature's counts of each value over every cause (once learning is done)."""
        return {
            "model": _overall(self.models),
            "band": _overall(self.bands),
            "previous": _overall(self.previous),
            "symptoms": _overall(self.symptoms),
        }


def _overall(by_cause: Mapping[str, Counter[str]]) -> Counter[str]:
    """The counts of each value over every cause."""
    total: Counter[str] = Counter()
    for counter in by_cause.values():
        total.update(counter)
    return total


@dataclass(frozen=True)
class Guide:
    """The guide learned from settled cases (learn)."""

    counts: Mapping[str, _CodeCounts]

    @property
    def codes(self) -> list[str]:
        return sorted(self.counts)

    def scores(self, features: Features) -> dict[str, float]:
        """Each root cause seen for the code -> its probability for these features."""
        counts = self.counts.get(features.code)
        if counts is None or not counts.causes:
            raise NoHistoryError(f"no settled case of fault code {features.code!r} in the work-order history")
        m = SMOOTHING_CASES
        total = sum(counts.causes.values())
        logs: dict[str, float] = {}
        values: list[tuple[Mapping[str, Counter[str]], str, float]] = []  # (counts, value, its share)
        for by_cause, overall, value in (
            (counts.models, counts.overall["model"], features.model),
            (counts.bands, counts.overall["band"], features.band),
            (counts.previous, counts.overall["previous"], features.previous),
        ):
            if value is not None and value in overall:  # a value never seen for the code says nothing
                share = (overall[value] + 1) / (overall.total() + len(overall) + 1)
                values.append((by_cause, value, share))
        symptoms = counts.overall["symptoms"] if features.symptoms_known else Counter()
        for cause, n in counts.causes.items():
            score = math.log((n + 1) / (total + len(counts.causes)))
            for tally, value, share in values:
                score += math.log((tally.get(cause, Counter())[value] + m * share) / (n + m))
            for symptom, seen in symptoms.items():
                share = (seen + 1) / (total + 2)
                present = (counts.symptoms.get(cause, Counter())[symptom] + m * share) / (n + m)
                score += math.log(present if symptom in features.symptoms else 1.0 - present)
            logs[cause] = score
        top = max(logs.values())
        weights = {cause: math.exp(score - top) for cause, score in logs.items()}
        norm = sum(weights.values())
        return {cause: weight / norm for cause, weight in weights.items()}

    def similar(self, features: Features) -> list[Case]:
        """The past cases of the code like this one: same model and mileage band (where known),
        holding at least half of the symptoms asked about."""
        counts = self.counts.get(features.code)
        if counts is None:
            return []
        needed = math.ceil(len(features.symptoms) / 2)
        found = []
        for case in counts.cases:
            known = case.features
            if features.model and known.model != features.model:
                continue
            if features.band and known.band != features.band:
                continue
            if len(features.symptoms & known.symptoms) < needed:
                continue
            found.append(case)
        return found

    def advise(self, features: Features, *, limit: int = 5) -> Advice:
        """The likely root causes of a case, most likely first, with their repair steps."""
        counts = self.counts.get(features.code)
        probabilities = self.scores(features)
        assert counts is not None  # scores raised otherwise
        similar = self.similar(features)
        confirmed = Counter(case.confirmed_cause for case in similar)
        first_time = Counter(case.confirmed_cause for case in similar if case.fixed_first_time)
        ranked = sorted(probabilities.items(), key=lambda item: (-item[1], item[0]))[:limit]
        suggestions = tuple(
            Suggestion(
                root_cause=cause,
                repair=min(counts.repairs[cause].items(), key=lambda item: (-item[1], item[0]))[0],
                confidence=probability,
                similar_cases=confirmed[cause],
                fixed_first_time=first_time[cause],
                cases=counts.causes[cause],
            )
            for cause, probability in ranked
        )
        return Advice(
            features=features,
            learned_cases=len(counts.cases),
            similar_cases=len(similar),
            suggestions=suggestions,
        )

    def first_choice(self, features: Features) -> tuple[str, float]:
        """The most likely root cause and its probability."""
        probabilities = self.scores(features)
        return min(probabilities.items(), key=lambda item: (-item[1], item[0]))


def learn(history: Iterable[Case], *, at: datetime | None = None) -> Guide:
    """The guide from the cases settled by `at` (every case when None) whose last order names
    a root cause."""
    counts: dict[str, _CodeCounts] = {}
    for case in history:
        cause = case.confirmed_cause
        if not case.code or not cause or (at is not None and case.settled_at > at):
            continue
        counts.setdefault(case.code, _CodeCounts()).add(case, cause)
    return Guide(counts)


# --- the backtest ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Backtest:
    split: datetime
    learned_cases: int  # settled by the split
    replayed_cases: int  # begun at or after the split and settled by the end of the history
    unanswered: int  # replayed cases of a code with no settled case before the split (left out)
    fixed_without: int
    fixed_with: int
    fixed_recorded: int  # the replayed cases the workshops fixed at the first visit
    confidence_with: float  # the sum over the replayed cases of the first suggestion's confidence

    @property
    def ftfr_without(self) -> float:
        return self.fixed_without / self.replayed_cases if self.replayed_cases else math.nan

    @property
    def ftfr_with(self) -> float:
        return self.fixed_with / self.replayed_cases if self.replayed_cases else math.nan

    @property
    def ftfr_recorded(self) -> float:
        return self.fixed_recorded / self.replayed_cases if self.replayed_cases else math.nan

    @property
    def mean_confidence_with(self) -> float:
        """What the guide expected its first suggestions to fix (against ftfr_with: calibration)."""
        return self.confidence_with / self.replayed_cases if self.replayed_cases else math.nan

    def as_dict(self) -> dict[str, object]:
        return {
            "ftfr_without": round(self.ftfr_without, 4),
            "ftfr_with": round(self.ftfr_with, 4),
            "ftfr_recorded": round(self.ftfr_recorded, 4),
            "mean_confidence_with": round(self.mean_confidence_with, 4),
            "cases": self.replayed_cases,
            "learned_cases": self.learned_cases,
            "unanswered": self.unanswered,
            "split": self.split.isoformat().replace("+00:00", "Z"),
        }


def habits(orders: Iterable[Order]) -> dict[str, str]:
    """Fault code -> the root cause most often repaired for it (ties: the first by name): what a
    workshop does out of habit, given the code alone."""
    tally: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for order in orders:
        if order.fault_code and order.root_cause:
            tally[order.fault_code][order.root_cause] += 1
    return {code: min(c.items(), key=lambda item: (-item[1], item[0]))[0] for code, c in tally.items()}


def default_split(history: Sequence[Case]) -> datetime:
    """The start of the first case after the first SPLIT_SHARE of the cases."""
    starts = sorted(case.first.opened_at for case in history)
    if len(starts) < 2:
        raise NoHistoryError(
            f"the work-order history holds {len(starts)} case(s); a backtest needs two or more"
        )
    return starts[min(len(starts) - 1, max(1, int(len(starts) * SPLIT_SHARE)))]


def backtest(orders: Sequence[Order], *, split: datetime | None = None) -> Backtest:
    """Replay the history: learn from what was known at the split, then take each case begun
    at or after it and settled by the end of the history (the latest time an order names), and
    count it fixed the first time under a policy when the root cause the policy picks first is
    the one the case's last repair confirmed. "Without": the root cause most often repaired for
    the code in the orders opened before the split (habits); "with": the guide's first
    suggestion. Replayed cases of a code neither could answer are left out of both."""
    history = [case for case in cases(orders) if case.confirmed_cause]
    if not history:
        raise NoHistoryError(
            "the work-order history holds no case: no order with a fault code and a root cause"
        )
    split = split or default_split(history)
    end = max(max(order.opened_at, order.ended_at) for order in orders)
    guide = learn(history, at=split)
    habit = habits(order for order in orders if order.opened_at < split)
    replay = [case for case in history if case.first.opened_at >= split and case.settled_at <= end]
    if not guide.counts:
        raise NoHistoryError(f"no case settled before the split {_when(split)}: nothing to learn from")
    if not replay:
        raise NoHistoryError(
            f"no case began at or after the split {_when(split)} and was settled "
            f"({COMEBACK_DAYS} days past its last order) by the end of the history {_when(end)}"
        )
    without = with_guide = recorded = unanswered = 0
    confidence = 0.0
    for case in replay:
        if case.code not in guide.counts or case.code not in habit:
            unanswered += 1
            continue
        truth = case.confirmed_cause
        without += habit[case.code] == truth
        choice, probability = guide.first_choice(case.features)
        with_guide += choice == truth
        confidence += probability
        recorded += case.fixed_first_time
    if unanswered == len(replay):
        raise NoHistoryError(
            f"none of the {len(replay)} cases after the split {_when(split)} has a fault code "
            "with a settled case before it"
        )
    return Backtest(
        split=split,
        learned_cases=sum(len(c.cases) for c in guide.counts.values()),
        replayed_cases=len(replay) - unanswered,
        unanswered=unanswered,
        fixed_without=without,
        fixed_with=with_guide,
        fixed_recorded=recorded,
        confidence_with=confidence,
    )


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
