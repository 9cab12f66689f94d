"""A campaign on a signal stream: when it triggers and what it collects. Pure: samples in,
collections out; the gateway feeds it and sends what comes out (not wired yet, docs/campaigns.md).

Times are Unix seconds of the samples, so the stream's own clock decides, not the wall clock.

- A condition is evaluated on every sample of a signal it reads. Mode "always" triggers on each
  evaluation that holds; "rising_edge" only when it holds after not holding (unknown counts as
  not holding; the first evaluation that holds is an edge). Either way a trigger within
  min_interval_s of the last one is suppressed, not deferred.
- A period trigger fires period_s after the first sample, then every period_s after that; a
  sample that comes at the due time goes into the next collection.
- Each collected signal is buffered continuously: a sample is kept if it comes at least
  min_interval_ms after the last one kept, and the buffer holds the last max_samples of them. On
  a trigger the collection stays open post_trigger_s more seconds, then takes the buffers (what
  came before the trigger and during the window) and empties them, so no sample goes up twice.
  A trigger while a collection is open is counted as suppressed.
- A suspended campaign, or one past its expiry, buffers nothing and never triggers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from prognos.campaigns.document import Campaign, ConditionTrigger, PeriodTrigger
from prognos.campaigns.expression import History, evaluate


@dataclass(frozen=True, kw_only=True)
class Collection:
    """What one trigger of a campaign collected."""

    campaign: str
    version: int
    triggered_at_s: float
    closed_at_s: float
    samples: Mapping[str, tuple[tuple[float, float], ...]]  # signal -> (time_s, value) in time order


@dataclass
class RunnerCounts:
    evaluations: int = 0
    triggers: int = 0
    suppressed: int = 0  # triggers dropped: within min_interval_s, or while a collection was open
    collections: int = 0


class CampaignRunner:
    def __init__(self, *, campaign: Campaign) -> None:
        self.campaign = campaign
        self.counts = RunnerCounts()
        trigger = campaign.trigger
        self._condition = trigger if isinstance(trigger, ConditionTrigger) else None
        self._period_s = trigger.period_s if isinstance(trigger, PeriodTrigger) else None
        self._history = (
            History(signals=trigger.condition.signals, window_s=trigger.condition.window_s)
            if isinstance(trigger, ConditionTrigger)
            else None
        )
        self._specs = {spec.path: spec for spec in campaign.signals}
        self._buffers: dict[str, deque[tuple[float, float]]] = {
            spec.path: deque(maxlen=spec.max_samples) for spec in campaign.signals
        }
        self._last_kept_s: dict[str, float] = {}
        self._expires_s = campaign.expires_at.timestamp()
        self._held = False  # the condition held at its last evaluation
        self._last_trigger_s: float | None = None
        self._next_due_s: float | None = None
        self._open_since_s: float | None = None

    @property
    def signals(self) -> frozenset[str]:
        """Every signal the campaign needs to see: the ones it collects and the ones it reads."""
        read = self._history.signals if self._history is not None else frozenset()
        return frozenset(self._buffers) | read

    @property
    def collecting(self) -> bool:
        return self._open_since_s is not None

    def running(self, now_s: float) -> bool:
        return self.campaign.state == "active" and now_s < self._expires_s

    def add(self, signal: str, time_s: float, value: float) -> list[Collection]:
        """Feed one sample; the collections it completed (usually none)."""
        done = self.advance(time_s)
        if not self.running(time_s):
            return done
        spec = self._specs.get(signal)
        if spec is not None:
            last = self._last_kept_s.get(signal)
            if last is None or (time_s >= last and (time_s - last) * 1000.0 >= spec.min_interval_ms):
                self._buffers[signal].append((time_s, value))
                self._last_kept_s[signal] = time_s
        if self._condition is not None and self._history is not None and signal in self._history.signals:
            self._history.add(signal, time_s, value)
            self.counts.evaluations += 1
            holds = evaluate(self._condition.condition, self._history, time_s)
            edge = holds and not self._held
            self._held = holds
            if holds and (self._condition.mode == "always" or edge):
                done += self._trigger(time_s)
        return done

    def advance(self, now_s: float) -> list[Collection]:
        """Let time pass to `now_s` without a sample: a collection whose window has ended closes,
        a period that has come round triggers."""
        done: list[Collection] = []
        if self._open_since_s is not None and now_s > self._open_since_s + self.campaign.post_trigger_s:
            done.append(self._close(self._open_since_s + self.campaign.post_trigger_s))
        if self._period_s is not None and self.running(now_s):
            done += self._period(now_s)
        return done

    def _period(self, now_s: float) -> list[Collection]:
        assert self._period_s is not None
        if self._next_due_s is None:
            self._next_due_s = now_s + self._period_s
            return []
        if now_s < self._next_due_s:
            return []
        while self._next_due_s <= now_s:
            self._next_due_s += self._period_s
        return self._trigger(now_s)

    def _trigger(self, now_s: float) -> list[Collection]:
        minimum_s = self._condition.min_interval_s if self._condition is not None else 0.0
        if self._open_since_s is not None or (
            self._last_trigger_s is not None and now_s - self._last_trigger_s < minimum_s
        ):
            self.counts.suppressed += 1
            return []
        self.counts.triggers += 1
        self._last_trigger_s = now_s
        self._open_since_s = now_s
        if self.campaign.post_trigger_s == 0:
            return [self._close(now_s)]
        return []

    def _close(self, closed_at_s: float) -> Collection:
        assert self._open_since_s is not None
        collection = Collection(
            campaign=self.campaign.name,
            version=self.campaign.version,
            triggered_at_s=self._open_since_s,
            closed_at_s=closed_at_s,
            samples={path: tuple(buffer) for path, buffer in self._buffers.items()},
        )
        for buffer in self._buffers.values():
            buffer.clear()
        self._open_since_s = None
        self.counts.collections += 1
        return collection
