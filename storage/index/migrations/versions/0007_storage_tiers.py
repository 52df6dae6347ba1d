"""Storage tiers: the tier of each instance's blob, asked-for recalls, each study's last read

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tier", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("recall_requested_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_instance_tier"), ["tier"])
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_accessed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("last_accessed_at")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_tier"))
        batch_op.drop_column("recall_requested_at")
        batch_op.drop_column("tier")
