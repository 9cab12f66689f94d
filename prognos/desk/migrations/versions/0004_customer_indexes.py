"""Indexes for the customer list's set queries: vehicles paid and not delivered, warranties
ending soon, open critical alerts, a vehicle's complaints and repeat orders.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_vehicle_delivered_at_paid_at", "vehicle", ["delivered_at", "paid_at"]),
    ("ix_vehicle_warranty_until", "vehicle", ["warranty_until"]),
    ("ix_alert_severity_cleared_at", "alert", ["severity", "cleared_at"]),
    ("ix_complaint_vin", "complaint", ["vin"]),
)
REPEATS = sa.text("repeat_of_order_id IS NOT NULL")


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    # only the orders that repeat another, by when they were opened
    op.create_index(
        "ix_work_order_repeats", "work_order", ["opened_at"], sqlite_where=REPEATS, postgresql_where=REPEATS
    )


def downgrade() -> None:
    op.drop_index("ix_work_order_repeats", table_name="work_order")
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
