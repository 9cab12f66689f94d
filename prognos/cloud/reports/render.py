"""A diagnosis report as a self-contained HTML page (inline CSS, inline SVG charts, no link to
anything outside it, so it opens from a file or an e-mail alike) and as plain text for e-mail.
Pure: a Report in, text out. Every value from the report is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime

from prognos.cloud.reports.report import (
    NO_CAUSES,
    CenterChoice,
    Point,
    Report,
    Thresholds,
    days_words,
)

DASH = "—"
PRIORITY_COLOURS = {"P1": "#b3261e", "P2": "#b26a00", "P3": "#1a5fb4"}
CHART_W, CHART_H, PAD = 320, 110, 6

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
  margin: 0; background: #f5f5f7; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem; background: #fff; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #555; font-size: .9rem; }
.badge { display: inline-block; color: #fff; border-radius: .3rem; padding: .1rem .5rem; font-weight: 600; }
.summary { font-size: 1.1rem; margin: .8rem 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: .3rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #fafafa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { color: #b3261e; font-weight: 600; }
.note { color: #555; font-style: italic; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figcaption { font-size: .8rem; color: #555; }
svg { background: #fcfcfc; border: 1px solid #eee; }
footer { margin-top: 2rem; font-size: .8rem; color: #777; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def minute(moment: datetime | None) -> str:
    return DASH if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _num(value: float | None, digits: int = 2) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def trigger_words(report: Report) -> str:
    if report.trigger == "escalated" and report.previous_priority:
        return f"escalated from {report.previous_priority} to {report.priority}"
    return f"raised as {report.priority}"


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table of cells already escaped; without headings, no heading row."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    head = f"<thead><tr>{head}</tr></thead>" if headings else ""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def sparkline(
    points: Sequence[Point],
    value: str,
    *,
    low: float,
    high: float,
    lines: Sequence[tuple[float, str]],
    label: str,
    colour: str,
) -> str:
    """An inline SVG line of `value` (health or anomaly_score) over time, with a dashed line at
    each threshold of `lines` (value, name); values outside [low, high] widen the scale."""
    values = [float(getattr(p, value)) for p in points]
    if not values:
        return f'<p class="note">No stored points of {_e(label)} yet.</p>'
    low, high = min(low, *values), max(high, *values)
    span = (high - low) or 1.0
    times = [p.at.timestamp() for p in points]
    t0, t1 = min(times), max(times)
    width_s = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return PAD + (CHART_W - 2 * PAD) * ((t - t0) / width_s if len(points) > 1 else 1.0)

    def y(v: float) -> float:
        return PAD + (CHART_H - 2 * PAD) * (1.0 - (v - low) / span)

    marks = "".join(
        f'<line x1="{PAD}" x2="{CHART_W - PAD}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
        f'stroke="#999" stroke-dasharray="4 3" stroke-width="1"/>'
        f'<text x="{CHART_W - PAD}" y="{y(level) - 2:.1f}" font-size="9" text-anchor="end" fill="#777">'
        f"{_e(name)} {level:g}</text>"
        for level, name in lines
    )
    path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, values, strict=True))
    last = f'<circle cx="{x(times[-1]):.1f}" cy="{y(values[-1]):.1f}" r="3" fill="{colour}"/>'
    title = f"{label}: {values[-1]:.2f} at {minute(points[-1].at)}"
    return (
        f'<figure><svg width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{_e(title)}">'
        f"<title>{_e(title)}</title>{marks}"
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}"/>{last}</svg>'
        f"<figcaption>{_e(label)}, {minute(points[0].at)} to {minute(points[-1].at)}</figcaption></figure>"
    )


def _centers_html(report: Report) -> str:
    if not report.centers:
        return '<p class="note">No service center that repairs this subsystem is known to the desk.</p>'
    headings = [
        "Center",
        "Dealer",
        "Distance",
        *[f"Stock of {p.part}" for p in report.parts],
        "Next free slots",
    ]
    rows = []
    for c in report.centers:
        distance = "home center" if c.home else (DASH if c.distance_km is None else f"{c.distance_km:.0f} km")
        stock = [_e(s.status) for s in c.stock]
        slots = "<br>".join(_e(minute(s)) for s in c.slots) or "none in the next weeks"
        rows.append([f"{_e(c.name)} ({_e(c.center_id)})", _e(c.dealer_id), _e(distance), *stock, slots])
    return _table(headings, rows)


def render_html(report: Report) -> str:
    """The report as one HTML document that needs nothing else to show."""
    ev, trend = report.evidence, report.trend
    th: Thresholds = ev.thresholds
    colour = PRIORITY_COLOURS.get(report.priority, "#555")
    subsystems = _table(
        ["Subsystem", "Health (1 = as new)", "Anomaly score (1 = alert level)", "Against the thresholds"],
        [
            [
                f"<b>{_e(s.subsystem)}</b>" if s.subsystem == report.subsystem else _e(s.subsystem),
                _num(s.health),
                _num(s.anomaly_score),
                _e(s.status),
            ]
            for s in ev.subsystems
        ],
        numeric=(1, 2),
    )
    faults = (
        _table(
            ["Fault", "Confidence", "Days to threshold", f"{trend.interval:.0%} interval (days)"],
            [
                [
                    _e(f.code),
                    _num(f.confidence),
                    _num(f.days_to_threshold, 1),
                    DASH
                    if f.days_low is None or f.days_high is None
                    else f"{f.days_low:.1f}-{f.days_high:.1f}",
                ]
                for f in ev.faults
            ],
            numeric=(1, 2),
        )
        if ev.faults
        else '<p class="note">The record names no fault.</p>'
    )
    charts = (
        '<div class="charts">'
        + sparkline(
            ev.series,
            "health",
            low=0.0,
            high=1.0,
            lines=((th.act_health, "act"), (th.watch_health, "watch")),
            label=f"{report.subsystem} health",
            colour="#1a5fb4",
        )
        + sparkline(
            ev.series,
            "anomaly_score",
            low=0.0,
            high=th.alert_score,
            lines=((th.watch_score, "watch"), (th.alert_score, "alert")),
            label=f"{report.subsystem} anomaly score",
            colour="#b3261e",
        )
        + "</div>"
    )
    counters = ", ".join(f"{_e(name)} {value}" for name, value in ev.counters) or DASH
    if trend.days is not None:
        trend_html = (
            "<p>Failure threshold reached "
            f"<b>{_e(days_words(trend.days, trend.days_low, trend.days_high))}</b> "
            f"from the record's window end ({_e(minute(ev.window_end))}).</p>"
            f'<p class="meta">Source: {_e(trend.source)}'
            + (f", estimated {_e(minute(trend.estimated_at))}" if trend.estimated_at else "")
            + ".</p>"
        )
    else:
        trend_html = f'<p class="note">Days to the failure threshold not estimated: {_e(trend.source)}.</p>'
    trend_html += (
        f'<p class="meta">Lowest health over the chart: {_num(ev.min_health)}; highest anomaly score: '
        f"{_num(ev.max_score)}.</p>"
    )
    causes = (
        _table(
            ["Rank", "Cause", "Confidence"],
            [[str(i), _e(c.code), f"{c.probability:.0%}"] for i, c in enumerate(report.causes, 1)],
            numeric=(0, 2),
        )
        if report.causes
        else f'<p class="note">{_e(NO_CAUSES[:1].upper() + NO_CAUSES[1:])}.</p>'
    )
    parts_rows = [
        [
            _e(p.part),
            _e(p.name),
            str(p.units),
            DASH if p.unit_cost is None else _e(f"{p.unit_cost:,.2f} {p.currency}".strip()),
            _e(p.fault),
        ]
        for p in report.parts
    ]
    if not report.parts:
        parts = '<p class="note">No part is planned for this alert.</p>'
    else:
        parts = _table(["Part", "Name", "Units", "Unit cost", "For fault"], parts_rows, numeric=(2, 3))
        if report.parts_are_candidates:
            note = "No fault is named yet: the parts this subsystem usually needs."
            parts = f'<p class="meta">{note}</p>{parts}'
    contact = report.contact
    if contact.source == "none":
        contact_html = (
            '<p class="note">The owner is not known to the service desk or the vehicle registry.</p>'
        )
    else:
        rows = [
            ["Owner", _e(contact.name) or DASH],
            ["Customer", _e(contact.customer_id) or DASH],
            [
                "E-mail",
                f'<a href="mailto:{_e(contact.email)}">{_e(contact.email)}</a>' if contact.email else DASH,
            ],
            ["Phone", _e(contact.phone) or DASH],
            ["Home center", _e(contact.home_center) or DASH],
            ["From", "the service desk" if contact.source == "desk" else "the vehicle registry"],
        ]
        contact_html = _table([], rows)
    checks = "".join(f"<li>{_e(c)}</li>" for c in report.checks)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(report.title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>"
        f'<h1><span class="badge" style="background:{colour}">{_e(report.priority)}</span> '
        f"{_e(report.code)} on {_e(report.vin)}</h1>"
        f'<p class="meta">Diagnosis report {_e(report.report_id)} · alert {_e(report.alert_id)} · '
        f"fleet {_e(report.fleet)} · {_e(trigger_words(report))} · "
        f"created {_e(minute(report.created_at))}</p>"
        f'<p class="summary">{_e(report.summary)}</p>'
        f'<p class="meta">Why: {_e(report.reason)}</p>'
        "<h2>Evidence</h2>"
        f'<p class="meta">Record {ev.seq} ({_e(ev.record_trigger)}), window {_e(minute(ev.window_start))} to '
        f"{_e(minute(ev.window_end))}, model {_e(ev.model)}. Thresholds: health act below "
        f"{th.act_health}, watch below {th.watch_health}; anomaly score watch at {th.watch_score}, "
        f"alert at {th.alert_score}.</p>"
        f"{subsystems}{faults}{charts}"
        f'<p class="meta">Counters: {counters}</p>'
        "<h2>Trend</h2>"
        f"{trend_html}"
        "<h2>Likely causes</h2>"
        f"{causes}"
        "<h2>Recommended checks and parts</h2>"
        f"<ul>{checks}</ul>{parts}"
        "<h2>Where: nearest capable service centers</h2>"
        f"{_centers_html(report)}"
        "<h2>Owner</h2>"
        f"{contact_html}"
        f"<footer>Prognos diagnosis report · record published {_e(minute(report.published_at))}, "
        f"received {_e(minute(report.received_at))}</footer>"
        "</main></body></html>\n"
    )


def _center_text(c: CenterChoice) -> list[str]:
    where = "home center" if c.home else (DASH if c.distance_km is None else f"{c.distance_km:.0f} km")
    lines = [f"- {c.name} ({c.center_id}, dealer {c.dealer_id}), {where}"]
    lines += [f"    {s.part}: {s.status}" for s in c.stock]
    slots = ", ".join(minute(s) for s in c.slots) or "none in the next weeks"
    lines.append(f"    next free slots: {slots}")
    return lines


def render_text(report: Report) -> str:
    """The report as plain text, the e-mail's body (the HTML goes along as the alternative)."""
    ev, trend = report.evidence, report.trend
    lines = [
        f"{report.title}: {trigger_words(report)}",
        report.summary,
        f"Why: {report.reason}",
        f"Report {report.report_id} (alert {report.alert_id}), created {minute(report.created_at)}",
        "",
        "EVIDENCE",
        f"Record {ev.seq}, window {minute(ev.window_start)} to {minute(ev.window_end)}, model {ev.model}",
    ]
    lines += [
        f"- {s.subsystem}: health {_num(s.health)}, anomaly score {_num(s.anomaly_score)} ({s.status})"
        for s in ev.subsystems
    ]
    lines += [f"- fault {f.code}, confidence {_num(f.confidence)}" for f in ev.faults]
    lines += ["", "TREND"]
    if trend.days is not None:
        lines.append(f"Failure threshold reached {days_words(trend.days, trend.days_low, trend.days_high)}")
        lines.append(f"Source: {trend.source}")
    else:
        lines.append(f"Not estimated: {trend.source}")
    lines += ["", "LIKELY CAUSES"]
    lines += [f"{i}. {c.code} ({c.probability:.0%})" for i, c in enumerate(report.causes, 1)] or [
        NO_CAUSES[:1].upper() + NO_CAUSES[1:]
    ]
    lines += ["", "CHECKS AND PARTS", *[f"- {c}" for c in report.checks]]
    lines += [f"- part {p.part}: {p.name} x{p.units}" for p in report.parts]
    lines += ["", "NEAREST CAPABLE CENTERS"]
    for center in report.centers:
        lines += _center_text(center)
    if not report.centers:
        lines.append("No service center that repairs this subsystem is known to the desk.")
    contact = report.contact
    lines += ["", "OWNER"]
    if contact.source == "none":
        lines.append("Not known to the service desk or the vehicle registry.")
    else:
        lines.append(
            ", ".join(x for x in (contact.name, contact.customer_id or "", contact.email, contact.phone) if x)
        )
    return "\n".join(lines) + "\n"
