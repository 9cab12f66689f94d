"""The service desk's tables: one definition, read by the store and compared against the
migrations in tests (the migrations under prognos/desk/migrations build the same schema).

Times are timezone-aware UTC. Ids are the business ids the DMS and the desk use (dealer D01,
center SC-01, customer C000001, complaint CP-..., VIN), so an import of the same file twice
finds the same rows.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = 40  # characters of a business id
NAME = 200  # characters of a name, contact or summary line


def _time(name: str, *, nullable: bool = True, index: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable, index=index)


dealer = Table(
    "dealer",
    metadata,
    Column("dealer_id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("region", String(ID), nullable=False),
    # active | at_risk | failed (prognos.desk.customers.DEALER_STATES)
    Column("status", String(16), nullable=False, default="active"),
    Column("status_reason", Text, nullable=False, default=""),
    _time("status_at"),
    # The business calendar of its SLA clocks (prognos.desk.calendar.BusinessCalendar)
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("workdays", String(7), nullable=False, default="12345"),  # ISO weekdays it is open
    Column("opens", String(5), nullable=False, default="08:00"),
    Column("closes", String(5), nullable=False, default="18:00"),
)

holiday = Table(
    "holiday",
    metadata,
    Column("dealer_id", String(ID), ForeignKey("dealer.dealer_id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("name", String(NAME), nullable=False, default=""),
)

service_center = Table(
    "service_center",
    metadata,
    Column("center_id", String(ID), primary_key=True),
    Column("dealer_id", String(ID), ForeignKey("dealer.dealer_id"), nullable=False, index=True),
    Column("name", String(NAME), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("skills", String(NAME), nullable=False, default=""),  # subsystems it repairs, ; between
    Column("capacity_per_week", Integer, nullable=False, default=40),
    Column("technicians", Integer, nullable=False, default=4),
)

customer = Table(
    "customer",
    metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("name_key", String(NAME), nullable=False, index=True),  # lower-case name, for search
    Column("email", String(NAME), nullable=False, default=""),
    Column("phone", String(ID), nullable=False, default=""),
    Column("home_center", String(ID), ForeignKey("service_center.center_id"), index=True),
    _time("created_at", nullable=False),
)

vehicle = Table(
    "vehicle",
    metadata,
    Column("vin", String(17), primary_key=True),
    Column("customer_id", String(ID), ForeignKey("customer.customer_id"), nullable=False, index=True),
    Column("plate", String(16), index=True),
    Column("model", String(ID), nullable=False),
    Column("lot", String(ID), nullable=False, default=""),
    _time("paid_at"),
    _time("delivered_at"),  # empty: ordered (and perhaps paid) but not delivered
    _time("warranty_until"),
)

appointment = Table(
    "appointment",
    metadata,
    Column("appointment_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), ForeignKey("customer.customer_id"), nullable=False, index=True),
    Column("vin", String(17), ForeignKey("vehicle.vin"), nullable=False),
    Column("center_id", String(ID), ForeignKey("service_center.center_id"), nullable=False, index=True),
    _time("scheduled_at", nullable=False, index=True),
    # booked | done | missed | cancelled
    Column("status", String(16), nullable=False, default="booked", index=True),
    Column("purpose", String(NAME), nullable=False, default=""),
    Column("parts", Text, nullable=False, default=""),  # part numbers it needs, ; between
    _time("updated_at", nullable=False),
    # The bay of its slot a booking holds (prognos.desk.booking; migration 0005): one
    # appointment per bay and hour, so a slot is never booked twice over.
    Column("bay", Integer),
    Index("ux_appointment_slot_bay", "center_id", "scheduled_at", "bay", unique=True),
)

# The service history: the DMS's work orders.
work_order = Table(
    "work_order",
    metadata,
    Column("dealer_id", String(ID), primary_key=True),
    Column("order_id", String(ID), primary_key=True),
    Column("vin", String(17), nullable=False, index=True),
    Column("center_id", String(ID)),
    _time("opened_at", nullable=False, index=True),
    _time("closed_at"),
    Column("description", String(NAME), nullable=False, default=""),
    Column("parts", Text, nullable=False, default=""),
    Column("amount", Float, nullable=False, default=0.0),
    Column("currency", String(3), nullable=False, default="EUR"),
    Column("repeat_of_order_id", String(ID)),
    # What guided diagnosis learns from (prognos.desk.guide; migration 0006): the case the vehicle
    # came in with, what was found and what was done (the DMS work_order columns of those names).
    Column("fault_code", String(ID), index=True),  # empty: a visit without a fault code
    Column("symptoms", String(NAME), nullable=False, default="", server_default=""),  # tags, ; between
    Column("mileage_km", Integer),
    Column("root_cause", String(ID)),
    Column("repair", String(NAME), nullable=False, default="", server_default=""),  # steps, ; between
)

alert = Table(
    "alert",
    metadata,
    Column("alert_id", String(ID), primary_key=True),
    Column("vin", String(17), nullable=False, index=True),
    Column("code", String(ID), nullable=False),  # fault code, e.g. brake.pad_wear
    Column("severity", String(16), nullable=False),  # critical | warning | info
    Column("summary", String(NAME), nullable=False, default=""),
    _time("raised_at", nullable=False),
    _time("cleared_at"),
)

complaint = Table(
    "complaint",
    metadata,
    Column("complaint_id", String(ID), primary_key=True),
    Column("source", String(8), nullable=False),  # dms | desk
    Column("customer_id", String(ID), ForeignKey("customer.customer_id"), index=True),
    Column("vin", String(17)),
    Column("dealer_id", String(ID), ForeignKey("dealer.dealer_id"), nullable=False, index=True),
    Column("team", String(ID), nullable=False, default=""),
    Column("category", String(ID), nullable=False),
    Column("summary", String(NAME), nullable=False, default=""),
    # prognos.desk.complaints.STATES
    Column("state", String(24), nullable=False, index=True),
    Column("level", String(8), nullable=False, default="dealer"),  # dealer | region | brand
    _time("opened_at", nullable=False),
    _time("responded_at"),
    _time("resolved_at"),
    _time("closed_at"),
    _time("response_due_at", nullable=False),
    _time("resolution_due_at", nullable=False, index=True),
    Column("contacts", Integer, nullable=False, default=0),  # contacts with the customer so far
    # Added by migration 0002: how often it was reopened, and when each clock was escalated (the
    # escalation job raises the level at most once per clock; reopening clears the resolution's).
    Column("reopened", Integer, nullable=False, default=0, server_default="0"),
    _time("response_escalated_at"),
    _time("resolution_escalated_at"),
    Column("version", Integer, nullable=False, default=1),  # optimistic concurrency
    _time("updated_at", nullable=False),
)

# Append-only: who changed what, when, with the values before and after.
audit = Table(
    "audit",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    _time("at", nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("entity", String(ID), nullable=False),
    Column("entity_id", String(ID), nullable=False),
    Column("action", String(ID), nullable=False),
    Column("before", JSON),
    Column("after", JSON),
    Index("ix_audit_entity", "entity", "entity_id"),
)

# The entitlement ledger: append-only, each entry chained to the one before by its hash and
# signed with the brand's key (prognos.desk.ledger).
ledger = Table(
    "ledger",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    _time("at", nullable=False),
    Column("kind", String(16), nullable=False),  # grant | consume | transfer | revoke
    Column("entitlement_id", String(ID), nullable=False, index=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("body", Text, nullable=False),  # the canonical JSON the hash covers
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("signature", String(128), nullable=False),
    Column("key_id", String(16), nullable=False),
)

# The DMS files imported, by content hash: a second import of the same file changes nothing.
dms_file = Table(
    "dms_file",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("kind", String(ID), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("rows", Integer, nullable=False),
    _time("imported_at", nullable=False),
)

# The customer list's set queries (prognos.desk.customers.candidate_facts; migration 0004): vehicles
# paid and not delivered, warranties ending soon, open critical alerts, a vehicle's complaints,
# repeat orders (only they are in that index).
Index("ix_vehicle_delivered_at_paid_at", vehicle.c.delivered_at, vehicle.c.paid_at)
Index("ix_vehicle_warranty_until", vehicle.c.warranty_until)
Index("ix_alert_severity_cleared_at", alert.c.severity, alert.c.cleared_at)
Index("ix_complaint_vin", complaint.c.vin)
Index(
    "ix_work_order_repeats",
    work_order.c.opened_at,
    sqlite_where=work_order.c.repeat_of_order_id.is_not(None),
    postgresql_where=work_order.c.repeat_of_order_id.is_not(None),
)

# What a dealer's failure moved: each customer and appointment, from where to where, or why it
# could not be placed (prognos.desk.failure).
reassignment = Table(
    "reassignment",
    metadata,
    Column("reassignment_id", Integer, primary_key=True, autoincrement=True),
    Column("dealer_id", String(ID), ForeignKey("dealer.dealer_id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # customer | appointment
    Column("item_id", String(ID), nullable=False),  # the appointment's id, or the customer's VIN
    Column("customer_id", String(ID), ForeignKey("customer.customer_id"), nullable=False, index=True),
    Column("vin", String(17), nullable=False),
    Column("from_center", String(ID), nullable=False),
    Column("to_center", String(ID)),  # empty: unplaced
    Column("distance_km", Float),
    _time("scheduled_at"),  # appointments: when it happens at the new center
    Column("reason", String(NAME), nullable=False, default=""),
    _time("at", nullable=False),
)

# Diagnosis reports (prognos.desk.reports, docs/desk.md "Diagnosis reports"; migration 0007): one
# per alert a record raised or escalated, with its JSON body and its self-contained HTML; the
# state of each vehicle's alert per code the report worker decides by; and each report's
# notifications (webhook, e-mail) until they are sent or given up. VINs and codes as long as a
# record's (prognos.record), since reports come straight from the records.
REPORT_VIN = 32
REPORT_CODE = 64
REPORT_ID = 64

diagnosis_report = Table(
    "diagnosis_report",
    metadata,
    Column("report_id", String(ID), primary_key=True),
    Column("alert_id", String(REPORT_ID), nullable=False, index=True),  # prognos.desk.alerts.alert_id
    Column("vin", String(REPORT_VIN), nullable=False),
    Column("code", String(REPORT_CODE), nullable=False),
    Column("priority", String(4), nullable=False),  # P1 | P2
    Column("event", String(16), nullable=False),  # raised | escalated
    Column("center_id", String(ID)),  # the first center the report offers
    Column("summary", String(NAME), nullable=False, default=""),
    _time("created_at", nullable=False, index=True),
    _time("published_at", nullable=False),  # the record's window end
    _time("received_at", nullable=False),  # when the worker received the record
    Column("body", JSON, nullable=False),  # prognos.cloud.reports.report.to_dict
    Column("html", Text, nullable=False),  # prognos.cloud.reports.render.render_html
    Index("ix_diagnosis_report_vin_created_at", "vin", "created_at"),
)

report_state = Table(
    "report_state",
    metadata,
    Column("vin", String(REPORT_VIN), primary_key=True),
    Column("code", String(REPORT_CODE), primary_key=True),
    Column("priority", String(4), nullable=False),  # the most urgent reported since it was raised
    _time("opened_at", nullable=False),  # record time of the raise
    _time("last_seen_at", nullable=False),  # record time of the latest record carrying it
    Column("report_id", String(ID)),
    Column("version", Integer, nullable=False, default=1),  # raised by each raise and escalation
)

report_notification = Table(
    "report_notification",
    metadata,
    Column("notification_id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", String(ID), ForeignKey("diagnosis_report.report_id"), nullable=False, index=True),
    Column("channel", String(16), nullable=False),  # webhook | email
    Column("target", Text, nullable=False),  # the URL, or the recipients with commas between
    Column("status", String(16), nullable=False, default="pending"),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    _time("next_attempt_at", nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    _time("created_at", nullable=False),
    _time("sent_at"),
    Column("claim", String(32)),  # the token of the worker's call that took it last
    Index("ix_report_notification_due", "status", "next_attempt_at"),
    Index("ix_report_notification_claim", "claim"),
)
