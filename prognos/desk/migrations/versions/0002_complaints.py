"""Complaints: how often a ticket was reopened, and when each of its SLA clocks was escalated
(the escalation job raises a ticket's level at most once per clock).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("complaint", sa.Column("reopened", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("complaint", sa.Column("response_escalated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "complaint", sa.Column("resolution_escalated_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("complaint", schema=None) as batch_op:
        batch_op.drop_column("resolution_escalated_at")
        batch_op.drop_column("response_escalated_at")
        batch_op.drop_column("reopened")
