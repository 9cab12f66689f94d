"""The bay a booked appointment holds in its slot, unique per center and hour.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("bay", sa.Integer(), nullable=True))
        batch.create_index("ux_appointment_slot_bay", ["center_id", "scheduled_at", "bay"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.drop_index("ux_appointment_slot_bay")
        batch.drop_column("bay")
