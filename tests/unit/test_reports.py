"""Diagnosis reports, the pure parts: which alerts a record raises (the analytics job's rules on
one record), raise or escalate against the stored state, the report's content and JSON form, its
HTML (self-contained, escaped) and text, the webhook's HMAC signature, and the worker's batch
logic on an in-memory store."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from prognos.cloud.analytics.alerts import vehicle_alerts
from prognos.cloud.dealers.reassign import ServiceCenter
from prognos.cloud.reports.alerting import (
    AlertState,
    Decision,
    RecordAlert,
    TriggerSettings,
    decide,
    record_alerts,
    reportable,
)
from prognos.cloud.reports.notify import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    mail_subject,
    read_secret,
    recipients_of,
    sign,
    verify_signature,
    webhook_body,
)
from prognos.cloud.reports.render import render_html, render_text
from prognos.cloud.reports.report import (
    NO_CAUSES,
    Contact,
    Point,
    Report,
    StockLevel,
    build_report,
    days_words,
    from_dict,
    rank_centers,
    report_id,
    to_dict,
    utc_ms,
)
from prognos.cloud.reports.store import DeskContext, Notification, Outcome
from prognos.cloud.reports.worker import ReportWorker, WorkerSettings, _Item
from prognos.errors import ConfigError, DecodeError
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger

END_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
END = utc_ms(END_MS)
VIN = "WVWZZZ1KZ6W000001"
PADS = "brakes.pad_wear"
SECRET = b"0123456789abcdef0123"


def record(
    *,
    seq: int = 7,
    end_ms: int = END_MS,
    faults: tuple[FaultHypothesis, ...] = (),
    brakes: tuple[float, float] = (0.9, 0.1),
    battery: tuple[float, float] = (0.9, 0.1),
    vin: str = VIN,
) -> DiagnosticRecord:
    return DiagnosticRecord(
        vin=vin,
        seq=seq,
        window_start_ms=end_ms - 600_000,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="0.1",
        trigger=Trigger.ANOMALY if faults else Trigger.HEARTBEAT,
        subsystems={"brakes": SubsystemState(*brakes), "battery": SubsystemState(*battery)},
        faults=faults,
        counters={"frames_seen": 1200, "frames_bad": 0},
    )


def pads(days: float | None = 30.0, confidence: float = 0.8) -> FaultHypothesis:
    if days is None:
        return FaultHypothesis(PADS, confidence)
    return FaultHypothesis(PADS, confidence, days, days * 0.6, days * 1.6)


# ---------------------------------------------------------------- alerts of one record


@pytest.mark.parametrize(
    "faults, brakes, expected",
    [
        ((pads(30.0),), (0.6, 1.1), [(PADS, "fault", "P2")]),
        ((pads(9.0),), (0.6, 1.1), [(PADS, "fault", "P1")]),  # due within 14 days
        ((pads(None),), (0.15, 1.1), [(PADS, "fault", "P1")]),  # health below 0.2
        ((), (0.15, 0.1), [("brakes.low_health", "low_health", "P1")]),
        ((), (0.35, 0.1), [("brakes.low_health", "low_health", "P2")]),
        ((), (0.9, 0.75), [("brakes.anomaly", "anomaly", "P2")]),
        ((), (0.9, 0.1), []),
    ],
)
def test_a_records_alerts_follow_the_analytics_rules(
    faults: tuple[FaultHypothesis, ...], brakes: tuple[float, float], expected: list[tuple[str, str, str]]
) -> None:
    found = record_alerts(record(faults=faults, brakes=brakes))
    assert [(a.code, a.kind, a.priority) for a in found] == expected
    # The analytics job, given this record as the vehicle's latest, ranks the same alerts.
    states = pd.DataFrame(
        [
            {"fleet": "f", "vin": VIN, "subsystem": name, "time": END_MS, "health": h, "anomaly_score": s}
            for name, (h, s) in (("brakes", brakes), ("battery", (0.9, 0.1)))
        ]
    )
    frame = pd.DataFrame(
        [
            {
                "fleet": "f",
                "vin": VIN,
                "code": f.code,
                "time": END_MS,
                "confidence": f.confidence,
                "days_to_threshold": math.nan if f.days_to_threshold is None else f.days_to_threshold,
                "days_low": math.nan if f.days_low is None else f.days_low,
                "days_high": math.nan if f.days_high is None else f.days_high,
            }
            for f in faults
        ],
        columns=["fleet", "vin", "code", "time", "confidence", "days_to_threshold", "days_low", "days_high"],
    )
    job = vehicle_alerts(states, frame, END_MS)
    assert sorted(zip(job["code"], job["kind"], job["priority"], strict=True)) == sorted(expected)


def test_a_fault_covers_its_subsystem_and_the_strongest_hypothesis_of_a_code_counts() -> None:
    weak, strong = FaultHypothesis(PADS, 0.3), FaultHypothesis(PADS, 0.9, 5.0)
    found = record_alerts(record(faults=(weak, strong), brakes=(0.1, 2.0)))
    assert len(found) == 1
    assert found[0].confidence == pytest.approx(0.9) and found[0].days_to_threshold == 5.0


def test_only_alerts_as_urgent_as_the_minimum_are_reported() -> None:
    alerts = [alert("P1"), alert("P2")]
    assert [a.priority for a in reportable(alerts, TriggerSettings(min_priority="P1"))] == ["P1"]
    assert len(reportable(alerts)) == 2
    with pytest.raises(ConfigError, match="min_priority"):
        TriggerSettings(min_priority="P9")


# ---------------------------------------------------------------- raise and escalate


def alert(priority: str = "P2", code: str = PADS) -> RecordAlert:
    return RecordAlert(
        vin=VIN, code=code, kind="fault", priority=priority, subsystem="brakes", reason="r", action="a"
    )


def test_the_first_record_raises_and_the_next_ones_change_nothing() -> None:
    first = decide(None, alert(), END)
    assert first.trigger == "raised" and first.state.version == 1 and first.previous is None
    again = decide(first.state, alert(), END + timedelta(minutes=10))
    assert again.trigger is None
    assert again.state.last_seen_at == END + timedelta(minutes=10) and again.state.version == 1


def test_a_more_urgent_priority_escalates_once_and_a_less_urgent_one_never_reports() -> None:
    raised = decide(None, alert("P2"), END).state
    up = decide(raised, alert("P1"), END + timedelta(hours=1))
    assert up.trigger == "escalated" and up.state.priority == "P1" and up.state.version == 2
    assert up.previous == raised
    down = decide(up.state, alert("P2"), END + timedelta(hours=2))
    assert down.trigger is None and down.state.priority == "P1"
    assert decide(down.state, alert("P1"), END + timedelta(hours=3)).trigger is None


def test_an_alert_no_record_carried_for_a_day_is_raised_again() -> None:
    raised = decide(None, alert("P1"), END).state
    settings = TriggerSettings(reopen_after=timedelta(hours=24))
    assert decide(raised, alert("P2"), END + timedelta(hours=23), settings).trigger is None
    later = decide(raised, alert("P2"), END + timedelta(hours=24), settings)
    assert later.trigger == "raised" and later.state.priority == "P2" and later.state.version == 2


def test_an_older_record_arriving_late_changes_nothing() -> None:
    raised = decide(None, alert("P2"), END).state
    late = decide(raised, alert("P2"), END - timedelta(days=3))
    assert late.trigger is None and late.state.last_seen_at == END


# ---------------------------------------------------------------- centers


def center(
    cid: str, lat: float, lon: float, *, skills: str = "", dealer: str = "D1", capacity: int = 40
) -> ServiceCenter:
    return ServiceCenter(
        id=cid,
        dealer_id=dealer,
        lat=lat,
        lon=lon,
        capacity_per_week=capacity,
        technicians=4,
        skills=frozenset(s for s in skills.split(";") if s),
        name=f"Workshop {cid}",
    )


CENTERS = [
    center("SC-HAM", 53.55, 10.0, skills="brakes;tires"),
    center("SC-BER", 52.52, 13.4),
    center("SC-MUC", 48.14, 11.58, skills="battery"),
    center("SC-HAN", 52.37, 9.73, dealer="D9"),
    center("SC-BRE", 53.08, 8.8, capacity=0),
    center("SC-KIE", 54.32, 10.13),
]


def test_the_home_center_comes_first_then_the_nearest_capable_ones() -> None:
    ranked = rank_centers(
        CENTERS, subsystem="brakes", home="SC-HAM", closed_dealers=frozenset({"D9"}), limit=3
    )
    assert [c.id for c, _ in ranked] == ["SC-HAM", "SC-KIE", "SC-BER"]
    assert ranked[0][1] == 0.0 and ranked[1][1] == pytest.approx(86, abs=3)


def test_a_home_center_that_cannot_repair_it_is_still_the_origin() -> None:
    ranked = rank_centers(CENTERS, subsystem="brakes", home="SC-MUC", limit=2)
    assert [c.id for c, _ in ranked] == ["SC-HAN", "SC-BER"]  # nearest to Munich that repair brakes


def test_without_a_home_center_the_capable_centers_come_by_id_without_distance() -> None:
    ranked = rank_centers(CENTERS, subsystem="battery", home=None, limit=10)
    assert [(c.id, d) for c, d in ranked] == [
        ("SC-BER", None),
        ("SC-HAN", None),
        ("SC-KIE", None),
        ("SC-MUC", None),
    ]


# ---------------------------------------------------------------- the report


def a_report(**changes: object) -> Report:
    rec = changes.pop("rec", None) or record(faults=(pads(9.0),), brakes=(0.35, 1.2))
    assert isinstance(rec, DiagnosticRecord)
    found = record_alerts(rec)[0]
    arguments: dict[str, object] = {
        "fleet": "demo",
        "record": rec,
        "alert": found,
        "trigger": "raised",
        "previous_priority": None,
        "alert_id": "FLEET-X",
        "created_at": END + timedelta(seconds=2),
        "received_at": END + timedelta(seconds=1),
        "series": [
            Point(at=END - timedelta(hours=h), health=0.35 + 0.01 * h, anomaly_score=1.2 - 0.05 * h)
            for h in range(1, 24)
        ],
        "history_hours": 72.0,
        "causes": [("brakes.pad_wear.front_axle", 0.72), ("brakes.caliper_sticking", 0.18)],
        "master": {"PG-BRK-3100": {"name": "Brake pad set, front", "unit_cost": 84.5, "currency": "EUR"}},
        "centers": rank_centers(CENTERS, subsystem="brakes", home="SC-HAM", limit=2),
        "stock": {
            ("SC-HAM", "PG-BRK-3100"): StockLevel(on_hand=0, on_order=4, lead_time_weeks=1),
            ("SC-KIE", "PG-BRK-3100"): StockLevel(on_hand=6),
        },
        "slots": {"SC-HAM": [END + timedelta(days=1, hours=9)], "SC-KIE": []},
        "contact": Contact(
            source="desk",
            customer_id="C000001",
            name="Ada Lovelace",
            email="ada@example.org",
            home_center="SC-HAM",
        ),
    }
    arguments.update(changes)
    return build_report(**arguments)  # type: ignore[arg-type]


def test_the_report_holds_evidence_trend_causes_parts_stock_slots_and_contact() -> None:
    report = a_report()
    assert report.priority == "P1" and report.trigger == "raised" and report.code == PADS
    assert report.report_id == report_id(VIN, PADS, 7, END_MS, "raised")
    assert report.published_at == END
    ev = report.evidence
    assert [p.at for p in ev.series] == sorted(p.at for p in ev.series) and ev.series[-1].at == END
    assert ev.series[-1].health == pytest.approx(0.35) and len(ev.series) == 24
    assert ev.min_health == pytest.approx(0.35) and ev.max_score == pytest.approx(1.2)
    brakes = next(s for s in ev.subsystems if s.subsystem == "brakes")
    assert "watch limit 0.4" in brakes.status and "alert level 1.0" in brakes.status
    assert report.trend.days == 9.0 and report.trend.days_low == pytest.approx(5.4)
    assert "in 9 days (80% interval 5-14 days)" in report.summary
    assert (report.causes[0].code, report.causes[0].probability) == ("brakes.pad_wear.front_axle", 0.72)
    assert [(p.part, p.name, p.unit_cost) for p in report.parts] == [
        ("PG-BRK-3100", "Brake pad set, front", 84.5)
    ]
    assert not report.parts_are_candidates
    assert [(c.center_id, c.home) for c in report.centers] == [("SC-HAM", True), ("SC-KIE", False)]
    assert report.centers[0].stock[0].status == "0 in stock, 4 on order, lead time 1 week"
    assert report.centers[1].stock[0].status == "in stock: 6"
    assert report.centers[0].slots == (END + timedelta(days=1, hours=9),)
    assert report.center_id == "SC-HAM"
    assert report.contact.email == "ada@example.org"
    assert "Replace the brake pads" in report.checks[0]


def test_without_an_estimate_in_the_record_the_latest_stored_one_is_counted_on() -> None:
    rec = record(faults=(pads(None),), brakes=(0.6, 1.1))
    two_days_before = END_MS - 2 * 86_400_000
    report = a_report(rec=rec, last_estimate=(two_days_before, 20.0, 12.0, 30.0))
    assert (report.trend.days, report.trend.days_low, report.trend.days_high) == (18.0, 10.0, 28.0)
    assert report.trend.estimated_at == utc_ms(two_days_before)
    none = a_report(rec=rec)
    assert none.trend.days is None and "no trend for this fault yet" in none.trend.source
    assert "time to failure not estimated yet" in none.summary


def test_an_alert_without_a_fault_lists_its_subsystems_parts_as_candidates() -> None:
    report = a_report(rec=record(brakes=(0.9, 0.8)), causes=())
    assert report.code == "brakes.anomaly" and report.parts_are_candidates
    assert [p.part for p in report.parts] == ["PG-BRK-3100"]
    assert report.trend.days is None and "no fault is named yet" in report.trend.source
    assert report.causes == ()


def test_the_report_goes_through_json_and_back_unchanged() -> None:
    report = a_report(trigger="escalated", previous_priority="P2")
    body = json.loads(json.dumps(to_dict(report)))
    assert body["format"] == 1 and body["previous_priority"] == "P2"
    assert from_dict(body) == report
    with pytest.raises(DecodeError, match="format"):
        from_dict({**body, "format": 99})
    with pytest.raises(DecodeError, match="not a diagnosis report"):
        from_dict({**body, "evidence": {"seq": "seven"}})


@pytest.mark.parametrize(
    "days, low, high, words",
    [
        (9.4, 5.6, 14.2, "in 9 days (80% interval 6-14 days)"),
        (0.3, 0.0, 0.9, "within a day (80% interval 0-1 days)"),
        (-2.0, None, None, "within a day"),
        (1.0, None, None, "in 1 day"),
        (None, None, None, "not estimated"),
    ],
)
def test_days_read_as_whole_days_never_below_zero(
    days: float | None, low: float | None, high: float | None, words: str
) -> None:
    assert days_words(days, low, high) == words


# ---------------------------------------------------------------- HTML and text


def test_the_html_is_self_contained_and_escapes_what_it_shows() -> None:
    contact = Contact(source="desk", name='<script>alert("x")</script>', email="a@b.c", home_center="SC-HAM")
    page = render_html(a_report(contact=contact))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert "&lt;script&gt;" in page
    assert page.count("<svg") == 2 and "<polyline" in page
    for text in (
        "Evidence",
        "Trend",
        "Likely causes",
        "brakes.pad_wear.front_axle",
        "72%",
        "PG-BRK-3100",
        "in stock: 6",
        "2026-01-02 09:00 UTC",
        "Workshop SC-KIE",
        "mailto:a@b.c",
        "act 0.2",
    ):
        assert text in page, text


def test_html_and_text_say_when_there_is_no_classifier_output() -> None:
    report = a_report(causes=())
    assert "No classifier output in this record" in render_html(report)
    text = render_text(report)
    assert "No classifier output in this record" in text and NO_CAUSES in text.lower()


def test_the_text_carries_what_the_center_acts_on() -> None:
    text = render_text(a_report(trigger="escalated", previous_priority="P2"))
    assert text.startswith(f"P1 {PADS} on {VIN}: escalated from P2 to P1")
    for line in (
        "1. brakes.pad_wear.front_axle (72%)",
        "PG-BRK-3100: 0 in stock, 4 on order",
        "Ada Lovelace",
    ):
        assert line in text


def test_html_of_a_report_without_points_centers_or_owner_explains_each_gap() -> None:
    page = render_html(
        a_report(series=[], centers=[], contact=Contact(source="none"), rec=record(brakes=(0.3, 0.1)))
    )
    assert "No service center that repairs this subsystem" in page
    assert "not known to the service desk or the vehicle registry" in page
    assert page.count("<svg") == 2  # the record's own point


# ---------------------------------------------------------------- webhook signature


def test_a_signature_verifies_only_for_the_same_secret_body_and_a_fresh_timestamp() -> None:
    body = b'{"report_id":"RP-1"}'
    signature = sign(SECRET, 1_767_225_600, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    ok = {"timestamp": "1767225600", "signature": signature}
    assert verify_signature(SECRET, body, now_s=1_767_225_610, **ok)
    assert not verify_signature(SECRET, body + b" ", now_s=1_767_225_610, **ok)
    assert not verify_signature(b"another secret of 16+", body, now_s=1_767_225_610, **ok)
    assert not verify_signature(SECRET, body, now_s=1_767_225_600 + 301, **ok)  # a replay, later
    assert not verify_signature(SECRET, body, now_s=1_767_225_600 - 301, **ok)
    assert not verify_signature(
        SECRET, body, timestamp="1767225601", signature=signature, now_s=1_767_225_610
    )
    assert not verify_signature(SECRET, body, timestamp=None, signature=signature, now_s=1_767_225_610)
    assert not verify_signature(SECRET, body, timestamp="x", signature=signature, now_s=1_767_225_610)


def test_secrets_and_recipients_are_checked() -> None:
    assert read_secret("  0123456789abcdef\n", "f") == b"0123456789abcdef"
    with pytest.raises(ConfigError, match="shorter than 16"):
        read_secret("short", "secret.txt")
    assert recipients_of("a@x.org, b@y.org") == ["a@x.org", "b@y.org"]
    with pytest.raises(ConfigError):
        recipients_of("not an address")


def test_the_webhook_body_and_the_mail_subject_name_the_report() -> None:
    body = to_dict(a_report(trigger="escalated", previous_priority="P2"))
    envelope = json.loads(webhook_body(body))
    assert envelope["event"] == "diagnosis_report" and envelope["center_id"] == "SC-HAM"
    assert envelope["report"] == body and envelope["priority"] == "P1"
    assert mail_subject(body) == f"[Prognos P1] {PADS} on {VIN}: escalated from P2"


def test_the_webhook_sender_signs_what_it_posts() -> None:
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    class Answer:
        status_code = 204
        text = ""

    class Session:
        def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: float) -> Answer:
            sent.append((url, data, headers))
            return Answer()

        def close(self) -> None:
            pass

    sender = WebhookSender(secret=SECRET, clock=lambda: 1_767_225_600.5, _session=Session())  # type: ignore[arg-type]
    sender.send("http://center.example/hook", b"{}", delivery="42")
    _, data, headers = sent[0]
    assert headers[TIMESTAMP_HEADER] == "1767225600" and headers[DELIVERY_HEADER] == "42"
    assert verify_signature(
        SECRET,
        data,
        timestamp=headers[TIMESTAMP_HEADER],
        signature=headers[SIGNATURE_HEADER],
        now_s=1_767_225_601,
    )


# ---------------------------------------------------------------- the worker's batches


class FakeStore:
    """The ReportStore interface in memory."""

    def __init__(self) -> None:
        self.states_: dict[tuple[str, str], AlertState] = {}
        self.reports: list[Report] = []
        self.reads = 0
        self.touched: list[Mapping[tuple[str, str], datetime]] = []
        self.lock = threading.Lock()

    def alert_id(self, vin: str, code: str) -> str:
        return f"FLEET-{vin}-{code}"

    def states(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], AlertState]:
        self.reads += 1
        return {k: self.states_[k] for k in keys if k in self.states_}

    def touch(self, seen: Mapping[tuple[str, str], datetime]) -> None:
        self.touched.append(dict(seen))
        for key, at in seen.items():
            self.states_[key] = replace(
                self.states_[key], last_seen_at=max(at, self.states_[key].last_seen_at)
            )

    def context(
        self, vin: str, subsystem: str, *, home: str | None, now: datetime, centers: int, slots: int
    ) -> DeskContext:
        ranked = rank_centers(CENTERS, subsystem=subsystem, home="SC-HAM", limit=centers)
        return DeskContext(
            contact=Contact(source="desk", name="Ada", home_center="SC-HAM"),
            home_center="SC-HAM",
            centers=ranked,
            slots={c.id: [now + timedelta(hours=3)] for c, _ in ranked},
        )

    def save(
        self,
        report: Report,
        body: dict[str, object],
        html: str,
        decision: Decision,
        channels: Sequence[tuple[str, str]],
    ) -> bool:
        with self.lock:
            key = (decision.state.vin, decision.state.code)
            stored = self.states_.get(key)
            if (stored is None) != (decision.previous is None) or (
                stored is not None
                and decision.previous is not None
                and stored.version != decision.previous.version
            ):
                return False
            self.states_[key] = replace(decision.state, report_id=report.report_id)
            self.reports.append(report)
            return True

    def claim_due(
        self, *, now: datetime, channels: Collection[str], limit: int, lease: timedelta
    ) -> list[Notification]:
        return []

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        pass

    def stored_report(self, report_id: str) -> tuple[dict[str, object], str] | None:
        return None


class FakeSources:
    history_hours = 72.0

    def registry(self, vin: str) -> None:
        return None

    def history(self, vin: str, subsystem: str, end_ms: int) -> list[Point]:
        return []

    def last_estimate(self, vin: str, code: str, end_ms: int) -> None:
        return None

    def stock(self) -> dict[tuple[str, str], StockLevel]:
        return {}

    def master(self) -> dict[str, dict[str, object]]:
        return {}

    def close(self) -> None:
        pass


class Message:
    def __init__(self, mid: int) -> None:
        self.mid, self.qos, self.topic = mid, 1, f"prognos/v1/demo/{VIN}/diag"


def items(*records: DiagnosticRecord) -> list[_Item]:
    out = []
    for n, rec in enumerate(records):
        item = _Item(Message(n), END, fleet="demo", record=rec)  # type: ignore[arg-type]
        item.alerts = reportable(record_alerts(rec))
        out.append(item)
    return out


def done(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result(timeout=10)


def worker(store: FakeStore) -> ReportWorker:
    return ReportWorker(
        host="127.0.0.1",
        port=1,
        store=store,
        sources=FakeSources(),  # type: ignore[arg-type]
        settings=WorkerSettings(builders=2),
        clock=lambda: END + timedelta(seconds=1),
    )


def test_one_batch_raises_then_escalates_an_alert_in_order_and_skips_the_store_when_nothing_changes() -> None:
    store = FakeStore()
    w = worker(store)
    stop = threading.Event()
    minute = 60_000
    with ThreadPoolExecutor(2) as pool:
        batch = items(
            record(seq=1, faults=(pads(30.0),)),
            record(seq=2, end_ms=END_MS + minute, faults=(pads(29.0),)),
            record(seq=3, end_ms=END_MS + 2 * minute, faults=(pads(9.0),)),  # P1 now
            record(seq=4, end_ms=END_MS + 3 * minute),  # healthy: nothing to decide
        )
        done(w._process(batch, stop, pool))
        assert [(r.trigger, r.priority, r.evidence.seq) for r in store.reports] == [
            ("raised", "P2", 1),
            ("escalated", "P1", 3),
        ]
        assert store.reports[1].previous_priority == "P2"
        assert store.states_[(VIN, PADS)].report_id == store.reports[1].report_id
        reads = store.reads
        done(w._process(items(record(seq=5, end_ms=END_MS + 4 * minute, faults=(pads(8.0),))), stop, pool))
        assert store.reads == reads and len(store.reports) == 2  # known and recent: no store call
        done(w._process(items(record(seq=6, end_ms=END_MS + 20 * minute, faults=(pads(8.0),))), stop, pool))
        assert store.reads == reads + 1 and store.touched[-1] == {(VIN, PADS): END + timedelta(minutes=20)}
    assert (w.stats.received, w.stats.alerting, w.stats.raised, w.stats.escalated) == (6, 5, 1, 1)


def test_a_second_worker_finds_the_state_and_does_not_report_again() -> None:
    store = FakeStore()
    stop = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        done(worker(store)._process(items(record(seq=1, faults=(pads(30.0),))), stop, pool))
        again = worker(store)  # restarted: nothing remembered but the store
        done(again._process(items(record(seq=1, faults=(pads(30.0),))), stop, pool))  # redelivered
        done(again._process(items(record(seq=2, end_ms=END_MS + 60_000, faults=(pads(30.0),))), stop, pool))
    assert len(store.reports) == 1 and again.stats.reports == 0


def test_an_escalation_decided_while_the_raise_is_still_being_stored_follows_it() -> None:
    class SlowStore(FakeStore):
        def save(self, *args: Any, **kwargs: Any) -> bool:
            time.sleep(0.2)
            return super().save(*args, **kwargs)

    store = SlowStore()
    w = worker(store)
    stop = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = w._process(items(record(seq=1, faults=(pads(30.0),))), stop, pool)
        reads = store.reads
        second = w._process(items(record(seq=2, end_ms=END_MS + 60_000, faults=(pads(9.0),))), stop, pool)
        assert store.reads == reads  # decided against the raise still being stored, not the store
        assert not first[0].done()
        done(first + second)
    assert [(r.trigger, r.priority) for r in store.reports] == [("raised", "P2"), ("escalated", "P1")]
    assert w._pending == {} and w._tails == {}
