"""Diagnosis reports: the reports, the alert states the report worker decides by, and the
reports' notifications.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diagnosis_report",
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("vin", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("center_id", sa.String(length=40), nullable=True),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("report_id"),
    )
    op.create_index("ix_diagnosis_report_alert_id", "diagnosis_report", ["alert_id"])
    op.create_index("ix_diagnosis_report_created_at", "diagnosis_report", ["created_at"])
    op.create_index("ix_diagnosis_report_vin_created_at", "diagnosis_report", ["vin", "created_at"])
    op.create_table(
        "report_state",
        sa.Column("vin", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("vin", "code"),
    )
    op.create_table(
        "report_notification",
        sa.Column("notification_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("report_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["diagnosis_report.report_id"]),
        sa.PrimaryKeyConstraint("notification_id"),
    )
    op.create_index("ix_report_notification_report_id", "report_notification", ["report_id"])
    op.create_index("ix_report_notification_due", "report_notification", ["status", "next_attempt_at"])
    op.create_index("ix_report_notification_claim", "report_notification", ["claim"])


def downgrade() -> None:
    op.drop_table("report_notification")
    op.drop_table("report_state")
    op.drop_table("diagnosis_report")
