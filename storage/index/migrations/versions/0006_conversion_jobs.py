"""Conversion jobs: the conversion_job table, and on PostgreSQL procrastinate's queue schema

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversion_job",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=4000), nullable=False),
        sa.Column("metadata_json", sa.String(length=20000), nullable=False),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=256), nullable=False),
        sa.Column("frames_done", sa.Integer(), nullable=False),
        sa.Column("frames_total", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=128), nullable=False),
        sa.Column("instance_uids", sa.String(length=100000), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("submitted_by", sa.String(length=256), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("job_id"),
    )
    with op.batch_alter_table("conversion_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversion_job_state"), ["state"])
        batch_op.create_index(batch_op.f("ix_conversion_job_submitted_at"), ["submitted_at"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The queue's own tables and functions, as the pinned procrastinate version ships them
        # (a later procrastinate upgrade adds its migration files as a revision of ours).
        from procrastinate.schema import SchemaManager

        exists = bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar()
        if exists is None:
            # The driver's own cursor without parameters: the schema's '%' are no placeholders.
            with bind.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.drop_table("conversion_job")
