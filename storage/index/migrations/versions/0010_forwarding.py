"""Forwarding: the forward_outbox table (a row per instance and destination), instance.stored_by

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stored_by", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_table(
        "forward_outbox",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("retry_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        "ix_forward_outbox_destination_state", "forward_outbox", ["destination", "state", "pk"]
    )
    op.create_index(
        "uq_forward_outbox_item", "forward_outbox", ["destination", "sop_instance_uid"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_forward_outbox_item", table_name="forward_outbox")
    op.drop_index("ix_forward_outbox_destination_state", table_name="forward_outbox")
    op.drop_table("forward_outbox")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_column("stored_by")
