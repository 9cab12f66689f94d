"""What the Customers, Complaints and This week pages show, as tables with headings, units and words:
pure (desk read models in, DataFrames and text out), so tests check it without a browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from prognos.cloud.reports.report import NO_CAUSES, Report, days_words, from_dict
from prognos.desk.booking import Slot
from prognos.desk.customers import CustomerView, PriorityRow, SearchHit
from prognos.desk.entitlements import PRODUCT_NAMES, Entitlement
from prognos.desk.reports import ReportDetail
from prognos.desk.tickets import Ticket, clocks
from prognos.desk.week import Call, Due, Visit

DASH = "—"  # an empty cell: never "None" (a lone "-" would render as a list bullet)
SEVERITY_ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
STATE_NAMES = {
    "new": "new",
    "acknowledged": "acknowledged",
    "in_progress": "in progress",
    "waiting_for_customer": "waiting for customer",
    "resolved": "resolved",
    "closed": "closed",
    "reopened": "reopened",
}
ENTITLEMENT_STATUS = {"active": "active", "used_up": "used up", "expired": "expired", "revoked": "revoked"}


def day(moment: datetime | None) -> str:
    return DASH if moment is None else f"{moment:%Y-%m-%d}"


def minute(moment: datetime | None) -> str:
    return DASH if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def text(value: object) -> str:
    return DASH if value is None or value == "" else str(value)


def tag_level(weight: float) -> str:
    return "high" if weight >= 25 else "medium" if weight >= 12 else "low"


def call_list_table(rows: Sequence[PriorityRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Rank": row.rank,
                "Customer": row.customer_id,
                "Name": row.name,
                "Contact": text(row.contact),
                "Home center": text(row.home_center),
                "Score (points)": f"{row.score:.1f}",
                "Risk tags": ", ".join(tag.label for tag in row.tags),
                "Why call": "; ".join(tag.reason for tag in row.tags),
            }
            for row in rows
        ],
        columns=[
            "Rank",
            "Customer",
            "Name",
            "Contact",
            "Home center",
            "Score (points)",
            "Risk tags",
            "Why call",
        ],
    )


def search_table(hits: Sequence[SearchHit]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Customer": hit.customer_id,
                "Name": hit.name,
                "Contact": text(hit.contact),
                "Home center": text(hit.home_center),
                "Matched on": hit.matched,
            }
            for hit in hits
        ],
        columns=["Customer", "Name", "Contact", "Home center", "Matched on"],
    )


def vehicles_table(view: CustomerView) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "VIN": v.vin,
                "Plate": text(v.plate),
                "Model": v.model,
                "Lot": text(v.lot),
                "Paid": day(v.paid_at),
                "Delivered": day(v.delivered_at) if v.delivered_at else "not delivered",
                "Warranty until": day(v.warranty_until),
            }
            for v in view.vehicles
        ],
        columns=["VIN", "Plate", "Model", "Lot", "Paid", "Delivered", "Warranty until"],
    )


def alerts_table(view: CustomerView) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Severity": f"{SEVERITY_ICONS.get(a.severity, '')} {a.severity}".strip(),
                "VIN": a.vin,
                "Fault": a.code,
                "What": text(a.summary),
                "Raised": minute(a.raised_at),
            }
            for a in view.open_alerts
        ],
        columns=["Severity", "VIN", "Fault", "What", "Raised"],
    )


def complaints_table(view: CustomerView) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Complaint": c.complaint.complaint_id,
                "Category": c.complaint.category.replace("_", " "),
                "State": STATE_NAMES.get(c.complaint.state, c.complaint.state),
                "Dealer": c.complaint.dealer_id,
                "Opened": minute(c.complaint.opened_at),
                "SLA": ("⚠ " if c.overdue else "") + c.sla,
            }
            for c in view.open_complaints
        ],
        columns=["Complaint", "Category", "State", "Dealer", "Opened", "SLA"],
    )


def entitlements_table(entitlements: Sequence[Entitlement]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Entitlement": e.entitlement_id,
                "Product": PRODUCT_NAMES[e.product],
                "VIN": e.vin,
                "Services left": "unlimited" if e.remaining is None else f"{e.remaining} of {e.units}",
                "Valid from": day(e.valid_from),
                "Valid until": day(e.valid_until),
                "Honoured at": e.center_id,
                "Sold by": e.granted_by,
                "Status": ENTITLEMENT_STATUS.get(e.status, e.status),
            }
            for e in entitlements
        ],
        columns=[
            "Entitlement",
            "Product",
            "VIN",
            "Services left",
            "Valid from",
            "Valid until",
            "Honoured at",
            "Sold by",
            "Status",
        ],
    )


def appointments_table(view: CustomerView) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Appointment": a.appointment_id,
                "When": minute(a.scheduled_at),
                "Center": a.center_id,
                "VIN": a.vin,
                "For": text(a.purpose),
            }
            for a in view.open_appointments
        ],
        columns=["Appointment", "When", "Center", "VIN", "For"],
    )


def history_table(view: CustomerView, limit: int = 50) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Order": o.order_id,
                "Dealer": o.dealer_id,
                "Center": text(o.center_id),
                "VIN": o.vin,
                "Opened": day(o.opened_at),
                "Closed": day(o.closed_at) if o.closed_at else "open",
                "Work": text(o.description),
                "Amount": f"{o.amount:,.2f} {o.currency}",
                "Repeat of": text(o.repeat_of_order_id),
            }
            for o in view.service_history[:limit]
        ],
        columns=["Order", "Dealer", "Center", "VIN", "Opened", "Closed", "Work", "Amount", "Repeat of"],
    )


def tickets_table(tickets: Sequence[Ticket], now: datetime) -> pd.DataFrame:
    """Open and recent tickets, the clock that matters now in words."""
    return pd.DataFrame(
        [
            {
                "Complaint": t.complaint_id,
                "State": STATE_NAMES.get(t.state, t.state),
                "Level": t.level,
                "Category": t.category.replace("_", " "),
                "Dealer": t.dealer_id,
                "Team": t.team,
                "Customer": text(t.customer_id),
                "Opened": minute(t.opened_at),
                "Clock": clock_summary(t, now),
                "Summary": text(t.summary),
            }
            for t in tickets
        ],
        columns=[
            "Complaint",
            "State",
            "Level",
            "Category",
            "Dealer",
            "Team",
            "Customer",
            "Opened",
            "Clock",
            "Summary",
        ],
    )


def clock_summary(ticket: Ticket, now: datetime) -> str:
    """The SLA clock that runs now (first response until answered, then resolution) and its
    due time; the business hours left are on the ticket's page."""
    running = [clock for clock in clocks(ticket) if clock.running()]
    if not running:
        resolution = clocks(ticket)[1]
        return "resolved in time" if resolution.met() else "resolved late"
    clock = running[0]
    if clock.run_out(now):
        return f"⚠ {clock.name} overdue since {clock.due_at:%Y-%m-%d %H:%M} UTC"
    return f"{clock.name} due {clock.due_at:%Y-%m-%d %H:%M} UTC"


def move_text(move: Mapping[str, Any]) -> str:
    """A row of the desk's `reassignment` table in words."""
    what = "this customer" if move["kind"] == "customer" else f"appointment {move['item_id']}"
    if move["to_center"]:
        distance = f" ({move['distance_km']:.0f} km)" if move["distance_km"] is not None else ""
        where = f"moved from {move['from_center']} to {move['to_center']}{distance}"
    else:
        where = f"could not be moved from {move['from_center']}: {move['reason']}"
    return f"Dealer {move['dealer_id']} failed on {day(move['at'])}: {what} {where}."


def slot_text(slot: Slot) -> str:
    bays = f"{slot.free_bays} bay{'s' if slot.free_bays != 1 else ''} free"
    return f"{slot.start:%a %Y-%m-%d %H:%M} UTC ({bays})"


def dues_from_snapshot(service: pd.DataFrame, alerts: pd.DataFrame, *, last_day: date) -> list[Due]:
    """The vehicles due for a visit by `last_day`: the service list's entries due by then, and
    the vehicles with a P1 alert but no entry (due at once, on the snapshot's day)."""
    dues: dict[str, Due] = {}
    for row in service.itertuples(index=False):
        due = date.fromisoformat(str(row.due_date))
        if due > last_day:
            continue
        dues[str(row.vin)] = Due(
            vin=str(row.vin),
            due=due,
            reason=text_or_empty(row.reason),
            codes=tuple(c.strip() for c in text_or_empty(row.codes).split(",") if c.strip()),
            owner=text_or_empty(row.owner_name),
            contact=text_or_empty(row.owner_contact),
            center_id=text_or_empty(row.service_center),
        )
    urgent = alerts[alerts["priority"] == "P1"] if not alerts.empty else alerts
    for vin, rows in urgent.groupby("vin", sort=False) if not urgent.empty else ():
        if str(vin) in dues:
            continue
        reasons = [text_or_empty(r) for r in rows["reason"]]
        seen = pd.to_numeric(rows["last_seen_ms"], errors="coerce").max()
        when = datetime.fromtimestamp(seen / 1000, UTC).date() if seen == seen else last_day
        dues[str(vin)] = Due(
            vin=str(vin),
            due=min(when, last_day),
            reason="; ".join(r for r in reasons if r) or "urgent alert",
            codes=tuple(str(c) for c in rows["code"]),
            priority="P1",
        )
    return list(dues.values())


def text_or_empty(value: object) -> str:
    """A cell as text, "" for an empty one (None, NaN)."""
    return "" if value is None or value != value else str(value)


def center_plan_table(
    visits: Sequence[Visit], part_names: Mapping[str, str], *, links: bool = True
) -> pd.DataFrame:
    """A center's booked visits: when, bay, customer (a link to their page), contact, vehicle,
    what for and the parts to have ready, by name."""
    rows = []
    for visit in visits:
        customer = f"[{visit.customer}](customers?customer={visit.customer_id})" if links else visit.customer
        parts = ", ".join(f"{part_names.get(p, p)} ({p})" for p in visit.parts)
        rows.append(
            {
                "When": f"{visit.at:%a %Y-%m-%d %H:%M} UTC",
                "Bay": text(visit.bay),
                "Appointment": visit.appointment_id,
                "Customer": customer,
                "Phone": text(visit.phone),
                "Vehicle": " ".join(p for p in (visit.vin, f"({visit.plate})" if visit.plate else "") if p),
                "For": text(visit.purpose),
                "Parts to have ready": parts or DASH,
            }
        )
    columns = ["When", "Bay", "Appointment", "Customer", "Phone", "Vehicle", "For", "Parts to have ready"]
    return pd.DataFrame(rows, columns=columns)


WEEK_COLUMNS = [
    "Due by",
    "Owner",
    "Contact",
    "Vehicle",
    "Why",
    "Service center",
    "Proposed slot",
    "Report",
]


def week_table(calls: Sequence[Call], *, links: bool = True) -> pd.DataFrame:
    """This week's calls in a service manager's words; with `links` the owner and the vehicle
    open their pages. Without links (the CSV) the customer id, e-mail and phone get their own
    columns."""
    rows = []
    for call in calls:
        owner, due, center = call.owner, call.due, call.center
        name = owner.name if owner is not None else due.owner
        if owner is not None and links:
            name = f"[{owner.name}](customers?customer={owner.customer_id})"
        contact = " · ".join(p for p in (owner.phone, owner.email) if p) if owner is not None else due.contact
        vehicle = f"[{due.vin}](vehicle?vin={due.vin})" if links else due.vin
        if owner is not None and (owner.plate or owner.model):
            vehicle += f" ({', '.join(p for p in (owner.plate, owner.model) if p)})"
        if center is None:
            where = "no capable center known"
        else:
            far = f", {call.distance_km:.0f} km from home" if call.distance_km else ""
            where = f"{center.name or center.id} ({center.id}{far})"
        if owner is not None and owner.booked_at is not None:
            slot = f"booked {owner.booked_at:%a %Y-%m-%d %H:%M} UTC"
        elif call.slot is not None:
            slot = f"{call.slot:%a %Y-%m-%d %H:%M} UTC"
        else:
            slot = "none free in the next weeks" if center is not None else DASH
        row = {
            "Due by": f"{due.due:%Y-%m-%d}" + (" (P1 alert)" if due.priority == "P1" else ""),
            "Owner": text(name),
            "Contact": text(contact),
            "Vehicle": vehicle,
            "Why": text(due.reason),
            "Service center": where,
            "Proposed slot": slot,
            "Report": (
                (f"[{call.report_id}](vehicle?vin={due.vin})" if links else call.report_id)
                if call.report_id
                else "none yet"
            ),
        }
        if not links:
            row |= {
                "Customer": owner.customer_id if owner is not None else "",
                "E-mail": owner.email if owner is not None else "",
                "Phone": owner.phone if owner is not None else "",
            }
        rows.append(row)
    columns = WEEK_COLUMNS if links else [*WEEK_COLUMNS, "Customer", "E-mail", "Phone"]
    return pd.DataFrame(rows, columns=columns)


# ---- diagnosis reports (the vehicle page)


def report_heading(report: Report) -> str:
    """E.g. `P1 · brakes.pad_wear · raised 2026-12-07 09:00 UTC`."""
    how = (
        f"escalated from {report.previous_priority}"
        if report.trigger == "escalated" and report.previous_priority
        else "raised"
    )
    return f"{report.priority} · {report.code} · {how} {minute(report.created_at)}"


def report_subsystems_table(report: Report) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Subsystem": s.subsystem,
                "Health (1 = as new)": f"{s.health:.2f}",
                "Anomaly score (1 = alert level)": f"{s.anomaly_score:.2f}",
                "Against the thresholds": s.status,
            }
            for s in report.evidence.subsystems
        ],
        columns=[
            "Subsystem",
            "Health (1 = as new)",
            "Anomaly score (1 = alert level)",
            "Against the thresholds",
        ],
    )


def report_series(report: Report) -> pd.DataFrame:
    """The alerting subsystem's points for a line chart: time (UTC) as the index."""
    return pd.DataFrame(
        {
            "health": [p.health for p in report.evidence.series],
            "anomaly score": [p.anomaly_score for p in report.evidence.series],
        },
        index=pd.DatetimeIndex([p.at for p in report.evidence.series], name="time (UTC)"),
    )


def report_trend_text(report: Report) -> str:
    trend = report.trend
    if trend.days is None:
        return f"Days to the failure threshold not estimated: {trend.source}."
    when = days_words(trend.days, trend.days_low, trend.days_high)
    return f"Failure threshold reached {when} from {minute(report.evidence.window_end)} ({trend.source})."


def no_causes_text() -> str:
    return NO_CAUSES[:1].upper() + NO_CAUSES[1:] + "."


def report_causes_table(report: Report) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"Rank": rank, "Cause": cause.code, "Confidence": f"{cause.probability:.0%}"}
            for rank, cause in enumerate(report.causes, 1)
        ],
        columns=["Rank", "Cause", "Confidence"],
    )


def report_parts_table(report: Report) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Part": p.part,
                "Name": p.name,
                "Units": p.units,
                "Unit cost": DASH if p.unit_cost is None else f"{p.unit_cost:,.2f} {p.currency}".strip(),
                "For fault": p.fault,
            }
            for p in report.parts
        ],
        columns=["Part", "Name", "Units", "Unit cost", "For fault"],
    )


def report_centers_table(report: Report) -> pd.DataFrame:
    parts = [p.part for p in report.parts]
    rows = []
    for c in report.centers:
        row: dict[str, object] = {
            "Center": f"{c.name} ({c.center_id})",
            "Dealer": c.dealer_id,
            "Distance": "home center"
            if c.home
            else (DASH if c.distance_km is None else f"{c.distance_km:.0f} km"),
        }
        for part, stock in zip(parts, c.stock, strict=True):
            row[f"Stock of {part}"] = stock.status
        row["Next free slots"] = ", ".join(f"{s:%a %d %b %H:%M}" for s in c.slots) or "none in the next weeks"
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["Center", "Dealer", "Distance", *[f"Stock of {p}" for p in parts], "Next free slots"]
    )


def report_contact_text(report: Report) -> str:
    contact = report.contact
    if contact.source == "none":
        return "Owner: not known to the service desk or the vehicle registry."
    who = ", ".join(x for x in (contact.name, contact.customer_id or "") if x) or DASH
    how = ", ".join(x for x in (contact.email, contact.phone) if x) or "no contact details"
    where = "the service desk" if contact.source == "desk" else "the vehicle registry"
    return f"Owner: {who} ({how}); home center {text(contact.home_center)}; from {where}."


def notifications_text(detail: ReportDetail) -> str:
    """Where the report went, in words: `webhook sent; email pending (2 attempts)`."""
    if not detail.notifications:
        return "Not sent: no webhook or e-mail was configured when it was stored."
    parts = []
    for n in detail.notifications:
        state = n.status if n.status != "pending" or not n.attempts else f"pending ({n.attempts} attempts)"
        parts.append(f"{'e-mail' if n.channel == 'email' else n.channel} {state}")
    return "Sent to the center: " + "; ".join(parts) + "."


def report_file_name(report: Report) -> str:
    return f"prognos-report-{report.vin}-{report.created_at:%Y%m%d-%H%M}-{report.report_id}.html"


def report_of(detail: ReportDetail) -> Report:
    """The stored report's content; DecodeError when its body is not a report this version reads."""
    return from_dict(detail.body)
