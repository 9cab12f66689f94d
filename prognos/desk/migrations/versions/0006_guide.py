"""Work orders: what guided diagnosis learns from (prognos.desk.guide): the fault code, the
symptoms and the mileage a vehicle came in with, the root cause found and the repair steps done.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_order") as batch:
        batch.add_column(sa.Column("fault_code", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("symptoms", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("mileage_km", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("root_cause", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("repair", sa.String(length=200), nullable=False, server_default=""))
        batch.create_index("ix_work_order_fault_code", ["fault_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("work_order") as batch:
        batch.drop_index("ix_work_order_fault_code")
        for column in ("repair", "root_cause", "mileage_km", "symptoms", "fault_code"):
            batch.drop_column(column)
