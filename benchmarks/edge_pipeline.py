"""Gateway pipeline benchmark on one core: acquisition (CAN decoding with a real DBC), sample
buffers, windows, features, rules and the LiteRT detectors; window-to-record latency; the time
the fault classifier adds to a window whose record reports a fault; resident memory; uplink
bytes against raw sample bytes.

    .venv/bin/python benchmarks/edge_pipeline.py [--days 3] [--dbc ../shared/data/dbc/hyundai_2015_ccan.dbc]

Results are recorded in docs/benchmarks.md. The simulated vehicle's samples are generated
before the clock starts; what is timed is what a gateway does with them.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prognos.catalog import default_catalog  # noqa: E402
from prognos.edge.agent import VehicleAssessor, classify  # noqa: E402
from prognos.edge.buffers import SampleBuffers  # noqa: E402
from prognos.edge.detector import load_bundle  # noqa: E402
from prognos.edge.features import feature_matrix  # noqa: E402
from prognos.record import encode_record  # noqa: E402
from prognos.sim.fleet import make_fleet  # noqa: E402
from prognos.sim.vehicle import VehicleSimulator  # noqa: E402
from prognos.topics import diag_topic  # noqa: E402

WINDOW_S = 600.0
EPOCH_MS = 1_767_225_600_000
RAW_SAMPLE_BYTES = 12  # a float64 timestamp and a float32 value: the least a raw stream would send
DEFAULT_DBC = ROOT.parent / "shared" / "data" / "dbc" / "hyundai_2015_ccan.dbc"


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def acquisition(dbc: Path, frames: int) -> tuple[float, float] | None:
    """(frames/s, samples/s) decoding TPMS frames with the real DBC; None without the DBC."""
    if not dbc.is_file():
        return None
    import can
    import cantools

    from prognos.edge.sources.can_bus import load_decoder

    decoder = load_decoder(dbc, default_catalog())
    message = cantools.database.load_file(dbc, strict=False).get_message_by_name("TPMS11")
    values = {signal.name: 0 for signal in message.signals}
    values.update(PRESSURE_FL=35, PRESSURE_FR=35, PRESSURE_RL=34, PRESSURE_RR=36)
    data = message.encode(values)
    batch = [
        can.Message(timestamp=i * 0.01, arbitration_id=message.frame_id, is_extended_id=False, data=data)
        for i in range(frames)
    ]
    started = time.perf_counter()
    samples = sum(len(decoder.decode(frame)) for frame in batch)
    elapsed = time.perf_counter() - started
    return frames / elapsed, samples / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=3.0, help="simulated vehicle-days (default: 3)")
    parser.add_argument("--dbc", type=Path, default=DEFAULT_DBC, help="DBC for the acquisition figure")
    parser.add_argument("--models", type=Path, default=ROOT / "prognos" / "models" / "artifacts")
    args = parser.parse_args()
    print(pin_to_one_core())

    catalog = default_catalog()
    spec = make_fleet(1, seed=7, fault_share=0.0)[0]
    simulator = VehicleSimulator(spec, catalog, seed=7, epoch_ms=EPOCH_MS)
    windows = int(args.days * 86_400 / WINDOW_S)
    starts = EPOCH_MS + np.arange(windows, dtype=np.int64) * int(WINDOW_S * 1000)
    batch = simulator.windows(starts, WINDOW_S)
    print(f"generated {windows} windows of one vehicle ({args.days:g} days, {len(batch)} signals)")

    bundle = load_bundle(args.models)
    assessor = VehicleAssessor(
        vin=spec.vin,
        detectors=bundle.detectors,
        model_id=bundle.bundle_id,
        model_version=bundle.version,
        days_calibration=bundle.days_calibration,
        classifier=bundle.classifier,
    )
    buffers = SampleBuffers(catalog.keys())
    topic_bytes = len(diag_topic("fleet", spec.vin))
    samples = 0
    uplink_bytes = 0
    records = 0
    latencies = []
    started = time.perf_counter()
    for k in range(windows):
        for path, (times, values) in batch.items():
            row_times, row_values = times[k], values[k]
            present = np.isfinite(row_values)
            buffers.extend(path, row_times[present], row_values[present])
            samples += int(present.sum())
        start_s = starts[k] / 1000.0
        window_started = time.perf_counter()
        window = buffers.take_window(start_s, start_s + WINDOW_S)
        record = assessor.window(int(starts[k]), int(starts[k]) + int(WINDOW_S * 1000), window, {})
        if record is not None:
            payload = encode_record(record)
            # MQTT 5 PUBLISH, QoS 1: fixed header (2-4), topic (2 + n), packet id (2), properties (1).
            uplink_bytes += len(payload) + 4 + 2 + topic_bytes + 2 + 1
            records += 1
        latencies.append(time.perf_counter() - window_started)
    elapsed = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    lat_ms = np.array(latencies) * 1000.0
    raw_bytes = samples * RAW_SAMPLE_BYTES
    print(f"pipeline (buffers, windows, features, rules, {len(bundle.detectors)} LiteRT detectors):")
    print(f"  {samples} samples in {elapsed:.2f} s: {samples / elapsed:,.0f} samples/s on one core")
    print(
        f"  window-to-record latency: p50 {np.percentile(lat_ms, 50):.2f} ms, "
        f"p99 {np.percentile(lat_ms, 99):.2f} ms, max {lat_ms.max():.2f} ms"
    )
    print(f"  records: {records} ({records / args.days:.1f} per vehicle-day)")
    print(
        f"  uplink: {uplink_bytes / args.days:,.0f} B per vehicle-day against "
        f"{raw_bytes / args.days:,.0f} B of raw samples ({100.0 * uplink_bytes / raw_bytes:.3f}%)"
    )
    if bundle.classifier is not None:
        # The classifier runs only for windows whose record reports a fault (few on this healthy
        # vehicle), so it is timed on its own, on every window's features.
        classified = []
        for k in range(windows):
            matrices = {path: feature_matrix(times[k], values[k]) for path, (times, values) in batch.items()}
            started = time.perf_counter()
            classify(bundle.classifier, matrices)
            classified.append(time.perf_counter() - started)
        cls_ms = np.array(classified) * 1000.0
        print(
            f"fault classifier (inputs, LiteRT, ranking), added to a window whose record reports a fault: "
            f"p50 {np.percentile(cls_ms, 50):.3f} ms, p99 {np.percentile(cls_ms, 99):.3f} ms"
        )
    acquired = acquisition(args.dbc, 200_000)
    if acquired is None:
        print(f"acquisition: skipped ({args.dbc} not found)")
    else:
        print(
            f"acquisition (CAN decoding, TPMS11 with the real DBC): {acquired[0]:,.0f} frames/s, "
            f"{acquired[1]:,.0f} samples/s"
        )
    print(f"peak resident memory: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
