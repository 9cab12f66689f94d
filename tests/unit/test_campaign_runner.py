"""A campaign on synthetic streams: rising-edge and minimum-interval semantics, period triggers,
the post-trigger window and the per-signal sample limits."""

from __future__ import annotations

from typing import Any

from prognos.campaigns.document import campaign_from_dict
from prognos.campaigns.runner import CampaignRunner, Collection
from tests.unit.test_layers import PACKAGE, impure_imports

EXPIRES = "2030-01-01T00:00:00Z"
T0 = 1_800_000_000.0  # the streams' clock: Unix seconds, before EXPIRES


def runner(trigger: dict[str, Any], *, post_trigger_s: float = 0.0, **extra: Any) -> CampaignRunner:
    signals = extra.pop("signals", [{"path": "S"}])
    doc = {
        "name": "test",
        "version": 1,
        "expires_at": EXPIRES,
        "post_trigger_s": post_trigger_s,
        "trigger": trigger,
        "signals": signals,
        **extra,
    }
    return CampaignRunner(campaign=campaign_from_dict(doc))


def feed(run: CampaignRunner, stream: list[tuple[float, float]], signal: str = "S") -> list[Collection]:
    done: list[Collection] = []
    for offset_s, value in stream:
        done += run.add(signal, T0 + offset_s, value)
    return done


def trigger_times(collections: list[Collection]) -> list[float]:
    return [c.triggered_at_s - T0 for c in collections]


SQUARE = [(float(t), 10.0 if (t // 5) % 2 else 0.0) for t in range(30)]  # high on 5-9, 15-19, 25-29


def test_rising_edge_triggers_once_per_crossing() -> None:
    run = runner({"condition": "S > 5", "mode": "rising_edge"})
    assert trigger_times(feed(run, SQUARE)) == [5.0, 15.0, 25.0]
    assert run.counts.evaluations == 30 and run.counts.triggers == 3 and run.counts.suppressed == 0


def test_always_triggers_on_every_evaluation_that_holds() -> None:
    run = runner({"condition": "S > 5", "mode": "always"})
    assert len(feed(run, SQUARE)) == 15


def test_the_minimum_interval_suppresses_triggers_and_does_not_defer_them() -> None:
    run = runner({"condition": "S > 5", "mode": "rising_edge", "min_interval_s": 12})
    assert trigger_times(feed(run, SQUARE)) == [5.0, 25.0]  # 15 is 10 s after 5: dropped
    assert run.counts.suppressed == 1
    always = runner({"condition": "S > 5", "mode": "always", "min_interval_s": 3})
    assert trigger_times(feed(always, SQUARE)) == [5.0, 8.0, 15.0, 18.0, 25.0, 28.0]


def test_a_condition_true_from_the_start_is_an_edge_and_unknown_is_not_holding() -> None:
    run = runner({"condition": "S > 5 or T > 5"}, signals=[{"path": "S"}, {"path": "T"}])
    assert trigger_times(feed(run, [(0.0, 10.0), (1.0, 10.0)])) == [0.0]
    other = runner({"condition": "S > 5 and T > 5"}, signals=[{"path": "S"}])
    assert feed(other, [(0.0, 10.0), (1.0, 10.0)]) == []  # T never came: unknown
    assert trigger_times(feed(other, [(2.0, 10.0)], signal="T")) == [2.0]


def test_window_functions_and_changed_on_a_stream() -> None:
    run = runner({"condition": "avg(S, 3) > 5", "mode": "rising_edge"})
    # the window [t - 3, t] holds four samples: their average passes 5 two steps after S does
    assert trigger_times(feed(run, SQUARE)) == [7.0, 17.0, 27.0]
    changes = runner({"condition": "changed(S)", "mode": "always"})
    assert trigger_times(feed(changes, SQUARE)) == [5.0, 10.0, 15.0, 20.0, 25.0]


def test_the_post_trigger_window_keeps_collecting_then_closes() -> None:
    run = runner({"condition": "S > 5"}, post_trigger_s=3.0)
    done = feed(run, SQUARE[:9])
    assert done == [] and run.collecting
    done = feed(run, SQUARE[9:10])  # t=9 is after 5 + 3: the window closed at 8
    [collection] = done
    assert collection.triggered_at_s == T0 + 5 and collection.closed_at_s == T0 + 8
    assert [t - T0 for t, _ in collection.samples["S"]] == [float(t) for t in range(9)]
    assert not run.collecting
    # what was collected is not collected again: the next one starts after it
    [second] = feed(run, SQUARE[10:20])
    assert second.samples["S"][0][0] == T0 + 9.0


def test_time_alone_closes_a_window_and_a_trigger_while_open_is_suppressed() -> None:
    run = runner({"condition": "S > 5", "mode": "always"}, post_trigger_s=10.0)
    assert feed(run, [(0.0, 10.0), (1.0, 10.0), (2.0, 10.0)]) == []
    assert run.counts.triggers == 1 and run.counts.suppressed == 2
    assert run.advance(T0 + 10.0) == []
    [collection] = run.advance(T0 + 11.0)
    assert collection.closed_at_s == T0 + 10.0 and len(collection.samples["S"]) == 3


def test_per_signal_sample_limits() -> None:
    run = runner(
        {"condition": "T > 0"},
        signals=[
            {"path": "S", "max_samples": 4},
            {"path": "R", "min_interval_ms": 2500},
        ],
    )
    stream = [(float(t), float(t)) for t in range(10)]
    feed(run, stream, "S")
    feed(run, stream, "R")
    feed(run, stream, "U")  # not collected
    [collection] = feed(run, [(10.0, 1.0)], "T")
    assert [v for _, v in collection.samples["S"]] == [6.0, 7.0, 8.0, 9.0]
    assert [v for _, v in collection.samples["R"]] == [0.0, 3.0, 6.0, 9.0]
    assert set(collection.samples) == {"S", "R"}
    assert run.signals == {"S", "R", "T"}


def test_a_period_trigger_fires_every_period() -> None:
    run = runner({"period_s": 10})
    stream = [(float(t), 1.0) for t in range(35)]
    done = feed(run, stream)
    assert trigger_times(done) == [10.0, 20.0, 30.0]
    assert [len(c.samples["S"]) for c in done] == [10, 10, 10]
    assert trigger_times(run.advance(T0 + 45.0)) == [45.0]  # a missed period fires once


def test_suspended_and_expired_campaigns_do_nothing() -> None:
    suspended = runner({"condition": "S > 5"}, state="suspended")
    assert feed(suspended, SQUARE) == [] and suspended.counts.evaluations == 0
    expired = runner({"condition": "S > 5"})
    late = 1_900_000_000.0 - T0  # after EXPIRES
    assert feed(expired, [(late, 10.0)]) == []
    assert expired.counts.evaluations == 0


def test_the_language_the_documents_and_the_runner_are_pure() -> None:
    for module in ("expression", "document", "runner"):
        path = PACKAGE / "campaigns" / f"{module}.py"
        assert impure_imports(path.read_text(encoding="utf-8"), f"prognos.campaigns.{module}") == []
