"""The specimen facts a whole-slide image lacks, searchable (QIDO-RS missingspecimenfacts)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "missing_specimen_facts", sa.String(length=64), nullable=False, server_default=""
            )
        )
        batch_op.create_index(
            batch_op.f("ix_instance_missing_specimen_facts"), ["missing_specimen_facts"]
        )
    # Whole-slide images stored before this revision are marked from their DICOM JSON.
    from storage.index.reindex import refresh_specimen_facts

    refresh_specimen_facts(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_missing_specimen_facts"))
        batch_op.drop_column("missing_specimen_facts")
