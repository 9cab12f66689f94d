"""Sample buffers: time order, bounded rings with counted overflow, half-open window cuts, the
window shape the assessor takes. Throughput is measured in benchmarks/, not here."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.catalog import default_catalog
from prognos.edge.agent import VehicleAssessor
from prognos.edge.buffers import Sample, SampleBuffers, SignalRing
from prognos.record import Trigger

SPEED = "Vehicle.Speed"
TEMP = "Vehicle.Exterior.AirTemperature"
T0 = 1_700_000_000.0


def held(buffers: SampleBuffers, path: str) -> tuple[list[float], list[float]]:
    window = buffers.window(-np.inf, np.inf)
    times, values = window.get(path, (np.empty(0), np.empty(0)))
    return times.tolist(), values.tolist()


def test_samples_come_out_in_time_order_whatever_order_they_came_in() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=100)
    for t in [5.0, 1.0, 3.0]:
        buffers.append(SPEED, T0 + t, t * 10)
    buffers.extend(SPEED, [T0 + 4.0, T0 + 0.5, T0 + 2.0], [40.0, 5.0, 20.0])
    buffers.add([Sample(SPEED, T0 + 6.0, 60.0), Sample(SPEED, T0 + 2.5, 25.0)])
    times, values = held(buffers, SPEED)
    assert times == [T0 + t for t in (0.5, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)]
    assert values == [5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0]
    assert buffers.counters() == {"samples_dropped": 0, "samples_bad_time": 0, "samples_unknown_path": 0}


def test_samples_with_equal_times_keep_their_arrival_order() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=100)
    buffers.append(SPEED, T0, 1.0)
    buffers.append(SPEED, T0 + 1.0, 2.0)
    buffers.append(SPEED, T0, 3.0)  # late, ties with the first
    buffers.extend(SPEED, [T0, T0 + 1.0], [4.0, 5.0])
    assert held(buffers, SPEED) == ([T0, T0, T0, T0 + 1.0, T0 + 1.0], [1.0, 3.0, 4.0, 2.0, 5.0])


def test_overflow_keeps_the_newest_samples_and_counts_the_dropped_ones() -> None:
    capacity = 50
    buffers = SampleBuffers([SPEED, TEMP], capacity_per_signal=capacity)
    for i in range(125):  # single samples, wrapping the ring twice and a half
        buffers.append(SPEED, T0 + i, float(i))
    times, values = held(buffers, SPEED)
    assert values == [float(i) for i in range(75, 125)]
    assert times == [T0 + i for i in range(75, 125)]
    assert buffers.counters()["samples_dropped"] == 75
    buffers.extend(TEMP, T0 + np.arange(130.0), np.arange(130.0))  # one batch above capacity
    assert held(buffers, TEMP)[1] == [float(i) for i in range(80, 130)]
    assert buffers.counters()["samples_dropped"] == 75 + 80
    buffers.append(SPEED, T0 - 1.0, -1.0)  # older than all 50 held: it is the one dropped
    assert held(buffers, SPEED)[1] == [float(i) for i in range(75, 125)]
    buffers.append(SPEED, T0 + 100.5, 100.5)  # a late one inside the range pushes out the oldest
    assert held(buffers, SPEED)[1] == [float(i) for i in range(76, 101)] + [100.5] + [
        float(i) for i in range(101, 125)
    ]
    assert buffers.counters()["samples_dropped"] == 75 + 80 + 2
    assert len(buffers) == 2 * capacity


def test_windows_are_half_open_and_consecutive_ones_share_no_sample() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=1000)
    buffers.extend(SPEED, T0 + np.arange(0.0, 30.0, 0.5), np.arange(60.0))
    first = buffers.window(T0 + 10.0, T0 + 20.0)[SPEED]
    assert first[0][0] == T0 + 10.0  # a sample at the start is in
    assert first[0][-1] == T0 + 19.5  # one at the end is not
    assert first[0].size == 20
    cuts = [
        buffers.window(T0 + s, T0 + s + 7.0).get(SPEED, (np.empty(0), np.empty(0)))[1]
        for s in range(0, 35, 7)
    ]
    assert np.concatenate(cuts).tolist() == list(np.arange(60.0))
    assert buffers.window(T0 + 10.0, T0 + 10.0) == {}  # empty interval
    with pytest.raises(ValueError, match="after its end"):
        buffers.window(T0 + 2.0, T0 + 1.0)


def test_take_window_drops_what_came_before_it_and_keeps_its_own_samples() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=1000)
    buffers.extend(SPEED, T0 + np.arange(30.0), np.arange(30.0))
    assert buffers.take_window(T0 + 10.0, T0 + 20.0)[SPEED][1].tolist() == list(np.arange(10.0, 20.0))
    assert held(buffers, SPEED)[1] == list(np.arange(10.0, 30.0))  # 0-9 gone
    # An overlapping window still finds the previous window's samples.
    assert buffers.take_window(T0 + 15.0, T0 + 25.0)[SPEED][1].tolist() == list(np.arange(15.0, 25.0))
    assert len(buffers) == 15
    assert buffers.counters()["samples_dropped"] == 0  # discarding is not overflow


def test_taking_windows_in_time_keeps_the_rings_from_overflowing() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=25)
    seen = []
    for k in range(20):  # 20 windows of 10 samples through a ring of 25
        buffers.extend(SPEED, T0 + np.arange(10 * k, 10 * k + 10), np.arange(10 * k, 10 * k + 10))
        seen += buffers.take_window(T0 + 10 * k, T0 + 10 * k + 10)[SPEED][1].tolist()
    assert seen == list(np.arange(200.0))
    assert buffers.counters()["samples_dropped"] == 0


def test_signals_without_samples_are_left_out_of_a_window() -> None:
    buffers = SampleBuffers([SPEED, TEMP], capacity_per_signal=10)
    buffers.append(SPEED, T0, 50.0)
    window = buffers.window(T0, T0 + 1.0)
    assert set(window) == {SPEED}
    times, values = window[SPEED]
    assert times.dtype == values.dtype == np.float64
    assert (times.shape, values.shape) == ((1,), (1,))


def test_unknown_paths_and_non_finite_times_are_counted_and_dropped() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=10)
    buffers.append("Vehicle.Unknown", T0, 1.0)
    buffers.add([Sample("Vehicle.Other", T0, 1.0), Sample(SPEED, float("nan"), 1.0)])
    buffers.extend("Vehicle.Unknown", [T0, T0 + 1.0], [1.0, 2.0])
    buffers.extend(SPEED, [T0, float("inf"), T0 + 1.0], [1.0, 2.0, float("nan")])
    assert buffers.counters() == {"samples_dropped": 0, "samples_bad_time": 2, "samples_unknown_path": 4}
    times, values = held(buffers, SPEED)
    assert times == [T0, T0 + 1.0]
    assert values[0] == 1.0 and np.isnan(values[1])  # a NaN value is kept: features skip it


def test_windows_are_copies() -> None:
    buffers = SampleBuffers([SPEED], capacity_per_signal=4)
    buffers.extend(SPEED, T0 + np.arange(4.0), np.arange(4.0))
    times, values = buffers.window(T0, T0 + 10.0)[SPEED]
    values[:] = -1.0
    buffers.extend(SPEED, T0 + np.arange(4.0, 12.0), np.arange(4.0, 12.0))  # overwrites every slot
    assert times.tolist() == [T0 + i for i in range(4)]
    assert held(buffers, SPEED)[1] == [8.0, 9.0, 10.0, 11.0]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SignalRing(0)
    with pytest.raises(ValueError, match="at least one signal path"):
        SampleBuffers([])
    buffers = SampleBuffers([SPEED], capacity_per_signal=4)
    with pytest.raises(ValueError, match="3 times but 2 values"):
        buffers.extend(SPEED, [1.0, 2.0, 3.0], [1.0, 2.0])


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 40),
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 100)),
            st.tuples(st.just("extend"), st.lists(st.integers(0, 100), max_size=60)),
            st.tuples(st.just("take"), st.tuples(st.integers(0, 100), st.integers(0, 30))),
        ),
        max_size=40,
    ),
)
def test_buffers_behave_like_a_sorted_list_cut_to_its_newest_samples(
    capacity: int, operations: list[tuple[str, object]]
) -> None:
    """A plain model: a list sorted by (time, arrival), cut to the newest `capacity`."""
    buffers = SampleBuffers([SPEED], capacity_per_signal=capacity)
    model: list[tuple[float, int, float]] = []  # (time, arrival number, value)
    dropped = arrival = 0
    for kind, argument in operations:
        if kind == "take":
            assert isinstance(argument, tuple)
            start, length = argument
            got = buffers.take_window(float(start), float(start + length)).get(SPEED)
            expected = [(t, v) for t, _, v in model if start <= t < start + length]
            assert (list(zip(*got, strict=True)) if got else []) == expected
            model = [item for item in model if item[0] >= start]
            continue
        times = [argument] if kind == "append" else argument
        assert isinstance(times, list)
        for t in times:
            model.append((float(t), arrival, float(arrival)))
            arrival += 1
        if kind == "append":
            buffers.append(SPEED, float(times[0]), float(arrival - 1))
        else:
            buffers.extend(
                SPEED, np.array(times, dtype=float), np.arange(arrival - len(times), arrival, dtype=float)
            )
        model.sort()
        dropped += max(0, len(model) - capacity)
        model = model[-capacity:]
        if kind == "extend" or len(model) % 7 == 0:  # look now and then, not after every append
            assert held(buffers, SPEED) == ([t for t, _, _ in model], [v for _, _, v in model])
    assert held(buffers, SPEED) == ([t for t, _, _ in model], [v for _, _, v in model])
    assert buffers.counters()["samples_dropped"] == dropped


def test_a_taken_window_is_what_the_assessor_takes() -> None:
    catalog = default_catalog()
    buffers = SampleBuffers(catalog, capacity_per_signal=512)
    tires = [signal.path for signal in catalog.subsystem("tires")]
    for i in range(60):  # ten minutes at 0.1 Hz
        buffers.add(Sample(path, T0 + 10.0 * i, 240.0 + (i % 3)) for path in tires)
        buffers.append(SPEED, T0 + 10.0 * i, 80.0)
    start_ms, end_ms = int(T0 * 1000), int((T0 + 600.0) * 1000)
    window = buffers.take_window(start_ms / 1000, end_ms / 1000)
    assert set(window) == {*tires, SPEED}
    record = VehicleAssessor(vin="KMHTEST0000000001").window(start_ms, end_ms, window, buffers.counters())
    assert record is not None and record.trigger is Trigger.HEARTBEAT
    assert record.subsystems["tires"].health == pytest.approx(1.0)
    assert record.faults == ()
    assert record.counters == {"samples_dropped": 0, "samples_bad_time": 0, "samples_unknown_path": 0}
