"""What a dealer's failure moved: the reassignment table.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reassignment",
        sa.Column("reassignment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dealer_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("from_center", sa.String(length=40), nullable=False),
        sa.Column("to_center", sa.String(length=40), nullable=True),
        sa.Column("distance_km", sa.Float(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.customer_id"]),
        sa.ForeignKeyConstraint(["dealer_id"], ["dealer.dealer_id"]),
        sa.PrimaryKeyConstraint("reassignment_id"),
    )
    op.create_index("ix_reassignment_customer_id", "reassignment", ["customer_id"])
    op.create_index("ix_reassignment_dealer_id", "reassignment", ["dealer_id"])


def downgrade() -> None:
    op.drop_table("reassignment")
