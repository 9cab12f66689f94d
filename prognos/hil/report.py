"""The bench report: `summary.json` (docs/hil.md, "Summary") and `report.html` with Plotly charts,
written into one directory (with plotly.min.js beside the page, so it opens without a network).

Charts: per injected fault, the anomaly score the agent published for the fault's subsystem
over simulated days, with the alert threshold (1.0), the fault's onset and failure days and the
detection; the uplink per vehicle-day of each vehicle against the budget; the fleet's uplink per
day by what triggered the records.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from prognos.errors import ConfigError, MissingDependencyError
from prognos.hil.judge import FaultOutcome, Judgement, VehicleRecords, summary
from prognos.hil.results import BenchRun
from prognos.record import Trigger
from prognos.sim.vehicle import FAULT_PARTS

MAX_FAULT_CHARTS = 24
MAX_TABLE_ROWS = 200
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


def write_report(run: BenchRun, judgement: Judgement, directory: Path) -> dict[str, Any]:
    """Write summary.json and report.html into `directory`; the summary."""
    data = summary(run, judgement)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SUMMARY_FILE).write_text(json.dumps(data, indent=1) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {directory}: {exc.strerror or exc}") from exc
    try:
        import plotly.graph_objects as go
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise MissingDependencyError(
            f"the HTML report needs plotly: pip install 'prognos[dashboard]' ({SUMMARY_FILE} is written)"
        ) from exc
    figures = [
        *_fault_figures(go, run, judgement),
        _uplink_figure(go, run, judgement),
        _daily_figure(go, run, judgement),
    ]
    charts = "\n".join(
        f'<div class="chart">{fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart{i}")}</div>'
        for i, fig in enumerate(figures)
    )
    try:
        (directory / "plotly.min.js").write_text(get_plotlyjs())
        (directory / REPORT_FILE).write_text(_page(data, judgement, charts))
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {directory}: {exc.strerror or exc}") from exc
    return data


def _fault_order(outcome: FaultOutcome) -> tuple[int, str, str]:
    """Missed faults first, then detected, then those still developing."""
    return ({"missed": 0, "detected": 1, "pending": 2}.get(outcome.status, 3), outcome.vin, outcome.kind)


def _fault_figures(go: Any, run: BenchRun, judgement: Judgement) -> list[Any]:
    outcomes = sorted(judgement.faults, key=_fault_order)
    figures = []
    for outcome in outcomes[:MAX_FAULT_CHARTS]:
        subsystem = FAULT_PARTS[outcome.kind]
        bucket = judgement.by_vehicle.get(outcome.vin, VehicleRecords())
        days, scores, alerts = [], [], []
        for i, record in enumerate(bucket.records):
            state = record.subsystems.get(subsystem)
            if state is None:
                continue
            day = bucket.day(i, run.start_ms)
            days.append(day)
            scores.append(max(state.anomaly_score, 1e-3))
            alerts.append(any(f.code.startswith(subsystem + ".") for f in record.faults))
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(
                x=days,
                y=scores,
                mode="lines+markers",
                name=f"{subsystem} anomaly score",
                marker={"color": ["#c0392b" if a else "#2c6fbb" for a in alerts], "size": 5},
                line={"color": "#2c6fbb", "width": 1},
            )
        )
        fig.add_hline(y=1.0, line_dash="dot", line_color="#555", annotation_text="alert threshold")
        fig.add_vline(x=outcome.onset_day, line_dash="dash", line_color="#e67e22", annotation_text="onset")
        fig.add_vline(
            x=outcome.failure_day, line_dash="dash", line_color="#8e1b10", annotation_text="failure"
        )
        if outcome.detection_day is not None:
            fig.add_trace(
                go.Scatter(
                    x=[outcome.detection_day],
                    y=[1.0],
                    mode="markers",
                    name=f"detected, {outcome.lead_days:.1f} days before failure",
                    marker={"symbol": "star", "size": 14, "color": "#27ae60"},
                )
            )
        target = f" (part {outcome.target})" if outcome.target else ""
        fig.update_layout(
            title=f"{outcome.vin}: {outcome.kind}{target}, {outcome.status}",
            xaxis_title="simulated day",
            yaxis_title="anomaly score (log)",
            yaxis_type="log",
            xaxis_range=[0, max(run.simulated_days, outcome.failure_day) * 1.02],
            height=340,
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
            legend={"orientation": "h", "y": -0.25},
        )
        figures.append(fig)
    return figures


def _uplink_figure(go: Any, run: BenchRun, judgement: Judgement) -> Any:
    days = max(run.simulated_days, 1e-9)
    rates = sorted(
        ((vin, sum(bucket.sizes) / days) for vin, bucket in judgement.by_vehicle.items()),
        key=lambda item: -item[1],
    )
    faulty = {spec.vin for spec in run.scenario.vehicles if spec.faults}
    fig = go.Figure(
        go.Bar(
            x=[vin for vin, _ in rates],
            y=[rate for _, rate in rates],
            marker_color=["#c0392b" if vin in faulty else "#2c6fbb" for vin, _ in rates],
            name="bytes per vehicle-day",
        )
    )
    for expectation in run.scenario.expectations:
        if expectation.kind == "uplink" and expectation.max_bytes_per_vehicle_day is not None:
            fig.add_hline(
                y=expectation.max_bytes_per_vehicle_day,
                line_dash="dot",
                annotation_text="budget (fleet mean)",
            )
    fig.add_hline(
        y=judgement.uplink_bytes_per_vehicle_day, line_color="#27ae60", annotation_text="fleet mean"
    )
    fig.update_layout(
        title="Uplink: record bytes per vehicle-day (red: vehicles with an injected fault)",
        yaxis_title="bytes per day",
        height=360,
        margin={"l": 60, "r": 20, "t": 50, "b": 80},
    )
    return fig


def _daily_figure(go: Any, run: BenchRun, judgement: Judgement) -> Any:
    by_day: dict[Trigger, dict[int, int]] = {trigger: defaultdict(int) for trigger in Trigger}
    for bucket in judgement.by_vehicle.values():
        for i, record in enumerate(bucket.records):
            by_day[record.trigger][int(bucket.day(i, run.start_ms) - 1e-9)] += bucket.sizes[i]
    day_count = max(1, int(run.simulated_days + 0.999))
    fig = go.Figure(
        [
            go.Bar(
                x=list(range(day_count)),
                y=[by_day[trigger][d] for d in range(day_count)],
                name=trigger.name.lower(),
            )
            for trigger in Trigger
        ]
    )
    fig.update_layout(
        barmode="stack",
        title="Fleet uplink per simulated day, by record trigger",
        xaxis_title="simulated day",
        yaxis_title="bytes",
        height=340,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig


def _page(data: dict[str, Any], judgement: Judgement, charts: str) -> str:
    e = html.escape
    verdict = data["verdict"]
    alarm_rate = judgement.false_alarms_per_1000_vehicle_days
    facts = [
        ("scenario", f"{data['scenario']} ({data['origin']})"),
        ("fleet", data["fleet"]),
        ("vehicles", f"{data['vehicle_count']} ({data['vehicle_days']:g} vehicle-days)"),
        (
            "simulated",
            f"{data['simulated_days']:g} of {data['duration_days']:g} days, windows of {data['window_s']:g} s"
            + (" (interrupted)" if data["interrupted"] else ""),
        ),
        ("wall time", f"{data['wall_s']:.1f} s, {data['speedup_achieved'] or 0:,.0f} times real time"),
        (
            "interfaces",
            ", ".join(f"{k} = {v}" for k, v in data["interfaces"].items() if v is not None),
        ),
        ("agent", ", ".join(f"{k} = {v}" for k, v in data["agent"].items())),
        ("false alarms", f"{data['false_alarms']} ({alarm_rate:.2f} per 1,000 vehicle-days)"),
        (
            "uplink",
            f"{data['uplink']['records']} records, {data['uplink']['bytes']:,} bytes, "
            f"{data['uplink']['bytes_per_vehicle_day']:,.0f} per vehicle-day",
        ),
    ]
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts)
    checks = "".join(
        f'<tr class="{"pass" if c.passed else "fail"}"><td>{"PASS" if c.passed else "FAIL"}</td>'
        f"<td>{e(c.description)}</td><td>{e(c.detail)}</td></tr>"
        for c in judgement.checks
    )
    faults = (
        "".join(
            f"<tr><td>{e(o.vin)}</td><td>{e(o.kind)}</td><td>{o.target}</td><td>{o.onset_day:.2f}</td>"
            f"<td>{o.failure_day:.2f}</td><td>{e(o.status)}</td>"
            f"<td>{'' if o.detection_day is None else f'{o.detection_day:.2f}'}</td>"
            f"<td>{'' if o.lead_days is None else f'{o.lead_days:.2f}'}</td></tr>"
            for o in sorted(judgement.faults, key=_fault_order)[:MAX_TABLE_ROWS]
        )
        or '<tr><td colspan="8">none injected</td></tr>'
    )
    alarms = (
        "".join(
            f"<tr><td>{e(a.vin)}</td><td>{e(a.subsystem)}</td><td>{a.day:.2f}</td></tr>"
            for a in judgement.false_alarms[:MAX_TABLE_ROWS]
        )
        or '<tr><td colspan="3">none</td></tr>'
    )
    vehicles = "".join(
        f"<tr><td>{e(v['vin'])}</td><td>{e(', '.join(v['faults']))}</td><td>{v['frames_sent']}</td>"
        f"<td>{v['node_frames_sent']}</td><td>{v['samples_taken']} / {v['samples_sent']}</td>"
        f"<td>{v['windows']}</td>"
        f"<td>{v['records']}</td><td>{v['bytes']}</td>"
        f"<td>{e(', '.join(f'{k} {n}' for k, n in v['counters'].items() if n and k in _WATCHED))}</td></tr>"
        for v in data["vehicles"][:MAX_TABLE_ROWS]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HIL bench: {e(data["scenario"])} {verdict.upper()}</title>
<script src="plotly.min.js"></script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
.verdict {{ display: inline-block; padding: 0.2em 0.8em; color: white; border-radius: 4px; }}
.verdict.pass, tr.pass td:first-child {{ background: #27ae60; color: white; }}
.verdict.fail, tr.fail td:first-child {{ background: #c0392b; color: white; }}
.chart {{ max-width: 1100px; }}
</style></head><body>
<h1>HIL bench: {e(data["scenario"])} <span class="verdict {verdict}">{verdict.upper()}</span></h1>
<table>{rows}</table>
<h2>Expectations</h2>
<table><tr><th>verdict</th><th>expectation</th><th>measured</th></tr>{checks}</table>
<h2>Injected faults</h2>
<table><tr><th>VIN</th><th>fault</th><th>part</th><th>onset day</th><th>failure day</th><th>outcome</th>
<th>detected day</th><th>lead days</th></tr>{faults}</table>
<h2>False alarms</h2>
<table><tr><th>VIN</th><th>subsystem</th><th>day</th></tr>{alarms}</table>
<h2>Charts</h2>
{charts}
<h2>Vehicles</h2>
<table><tr><th>VIN</th><th>faults</th><th>CAN frames</th><th>node frames</th><th>samples taken / sent</th>
<th>windows</th><th>records</th><th>bytes</th><th>agent counters (non-zero)</th></tr>{vehicles}</table>
</body></html>
"""


# Agent counters worth a look in the vehicles table: each non-zero one means trouble.
_WATCHED = (
    "frames_bad",
    "frames_unknown",
    "values_out_of_range",
    "values_unknown",
    "frames_missed",
    "samples_dropped",
    "samples_bad_time",
    "spool_dropped",
    "spool_unstored",
    "refused",
    "reconnects",
)
