"""Change feed: the ordered log of instance changes, its sequence counter, consumer cursors

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_event",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("access_group", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
    )
    with op.batch_alter_table("change_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_event_at"), ["at"])
        batch_op.create_index(batch_op.f("ix_change_event_sop_instance_uid"), ["sop_instance_uid"])
    op.create_table(
        "change_counter",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
    )
    # The instances stored before the feed existed: one create event each, in the order they
    # were stored, so a follower starting at offset 0 learns of every instance.
    stored = "COALESCE(i.stored_at, CURRENT_TIMESTAMP)"
    op.execute(
        "INSERT INTO change_event (sequence, at, action, state, study_instance_uid, "
        "series_instance_uid, sop_instance_uid, access_group) "
        f"SELECT ROW_NUMBER() OVER (ORDER BY {stored}, i.pk), {stored}, 'create', 'current', "
        "st.study_instance_uid, se.series_instance_uid, i.sop_instance_uid, st.access_group "
        "FROM instance i JOIN series se ON i.series_pk = se.pk "
        "JOIN study st ON se.study_pk = st.pk "
        "WHERE i.status = 'stored'"
    )
    op.execute(
        "INSERT INTO change_counter (pk, sequence, at) "
        "SELECT 1, COALESCE(MAX(sequence), 0), MAX(at) FROM change_event"
    )
    op.create_table(
        "change_cursor",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("change_cursor")
    op.drop_table("change_counter")
    op.drop_table("change_event")
