"""The service desk's first schema: dealers and their calendars, service centers, customers,
vehicles, appointments, work orders, alerts, complaints, the audit trail, the entitlement ledger
and the imported DMS files. The ledger and the audit trail refuse UPDATE and DELETE.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_vin"), ["vin"], unique=False)

    op.create_table(
        "audit",
        sa.Column("audit_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("audit_id"),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entity", ["entity", "entity_id"], unique=False)

    op.create_table(
        "dealer",
        sa.Column("dealer_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("workdays", sa.String(length=7), nullable=False),
        sa.Column("opens", sa.String(length=5), nullable=False),
        sa.Column("closes", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("dealer_id"),
    )
    op.create_table(
        "dms_file",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "ledger",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("entitlement_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entitlement_id"), ["entitlement_id"], unique=False)

    op.create_table(
        "work_order",
        sa.Column("dealer_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("center_id", sa.String(length=40), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("repeat_of_order_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("dealer_id", "order_id"),
    )
    with op.batch_alter_table("work_order", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_order_opened_at"), ["opened_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_order_vin"), ["vin"], unique=False)

    op.create_table(
        "holiday",
        sa.Column("dealer_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["dealer_id"],
            ["dealer.dealer_id"],
        ),
        sa.PrimaryKeyConstraint("dealer_id", "day"),
    )
    op.create_table(
        "service_center",
        sa.Column("center_id", sa.String(length=40), nullable=False),
        sa.Column("dealer_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("skills", sa.String(length=200), nullable=False),
        sa.Column("capacity_per_week", sa.Integer(), nullable=False),
        sa.Column("technicians", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dealer_id"],
            ["dealer.dealer_id"],
        ),
        sa.PrimaryKeyConstraint("center_id"),
    )
    with op.batch_alter_table("service_center", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_center_dealer_id"), ["dealer_id"], unique=False)

    op.create_table(
        "customer",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("home_center", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["home_center"],
            ["service_center.center_id"],
        ),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_home_center"), ["home_center"], unique=False)
        batch_op.create_index(batch_op.f("ix_customer_name_key"), ["name_key"], unique=False)

    op.create_table(
        "complaint",
        sa.Column("complaint_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("vin", sa.String(length=17), nullable=True),
        sa.Column("dealer_id", sa.String(length=40), nullable=False),
        sa.Column("team", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.customer_id"],
        ),
        sa.ForeignKeyConstraint(
            ["dealer_id"],
            ["dealer.dealer_id"],
        ),
        sa.PrimaryKeyConstraint("complaint_id"),
    )
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_complaint_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaint_dealer_id"), ["dealer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaint_resolution_due_at"), ["resolution_due_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaint_state"), ["state"], unique=False)

    op.create_table(
        "vehicle",
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=True),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("lot", sa.String(length=40), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warranty_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.customer_id"],
        ),
        sa.PrimaryKeyConstraint("vin"),
    )
    with op.batch_alter_table("vehicle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vehicle_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vehicle_plate"), ["plate"], unique=False)

    op.create_table(
        "appointment",
        sa.Column("appointment_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("center_id", sa.String(length=40), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["center_id"],
            ["service_center.center_id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.customer_id"],
        ),
        sa.ForeignKeyConstraint(
            ["vin"],
            ["vehicle.vin"],
        ),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_center_id"), ["center_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_scheduled_at"), ["scheduled_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_appointment_status"), ["status"], unique=False)

    _append_only("ledger")
    _append_only("audit")


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on `table` in the database itself."""
    message = f"{table} is append-only"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )


def downgrade() -> None:
    # Children before parents; indexes and triggers go with their tables.
    for table in (
        "appointment",
        "vehicle",
        "complaint",
        "customer",
        "service_center",
        "holiday",
        "work_order",
        "ledger",
        "audit",
        "alert",
        "dms_file",
        "dealer",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_append_only()")
        op.execute("DROP FUNCTION audit_append_only()")
