"""Search columns for QIDO: folded and fuzzy names, combined date-times, sequences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:16:09.008112
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_attributes",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("series_pk", sa.Integer(), nullable=False),
        sa.Column("requested_procedure_id", sa.String(length=16), nullable=False),
        sa.Column("scheduled_procedure_step_id", sa.String(length=16), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["series_pk"], ["series.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("request_attributes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_attributes_requested_procedure_id"),
            ["requested_procedure_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_request_attributes_scheduled_procedure_step_id"),
            ["scheduled_procedure_step_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_request_attributes_series_pk"), ["series_pk"], unique=False
        )

    op.create_table(
        "specimen",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("instance_pk", sa.Integer(), nullable=False),
        sa.Column("specimen_identifier", sa.String(length=64), nullable=False),
        sa.Column("specimen_uid", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["instance_pk"], ["instance.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_specimen_instance_pk"), ["instance_pk"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_specimen_specimen_identifier"), ["specimen_identifier"], unique=False
        )

    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bits_allocated", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "container_identifier", sa.String(length=64), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "acquisition_datetime", sa.String(length=32), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "acquisition_datetime_norm", sa.String(length=21), nullable=False, server_default=""
            )
        )
        batch_op.create_index(
            batch_op.f("ix_instance_acquisition_datetime_norm"),
            ["acquisition_datetime_norm"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_instance_container_identifier"), ["container_identifier"], unique=False
        )

    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "patient_name_folded", sa.String(length=400), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "patient_name_words", sa.String(length=500), nullable=False, server_default=""
            )
        )
        batch_op.drop_index(batch_op.f("ix_patient_name"))
        batch_op.create_index("ix_patient_birth_date", ["patient_birth_date"], unique=False)
        batch_op.create_index("ix_patient_patient_id", ["patient_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_patient_patient_name_folded"), ["patient_name_folded"], unique=False
        )

    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "performed_procedure_step_start_datetime",
                sa.String(length=21),
                nullable=False,
                server_default="",
            )
        )

    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("study_datetime", sa.String(length=21), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "referring_physician_name_folded",
                sa.String(length=400),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "referring_physician_name_words",
                sa.String(length=500),
                nullable=False,
                server_default="",
            )
        )
        batch_op.create_index(
            batch_op.f("ix_study_study_datetime"), ["study_datetime"], unique=False
        )

    # Fill the new columns and tables for instances stored before this revision, from the
    # DICOM JSON documents the index keeps.
    from storage.index.reindex import refresh_all

    refresh_all(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_study_datetime"))
        batch_op.drop_column("referring_physician_name_words")
        batch_op.drop_column("referring_physician_name_folded")
        batch_op.drop_column("study_datetime")

    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("performed_procedure_step_start_datetime")

    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_patient_name_folded"))
        batch_op.drop_index("ix_patient_patient_id")
        batch_op.drop_index("ix_patient_birth_date")
        batch_op.create_index(batch_op.f("ix_patient_name"), ["patient_name"], unique=False)
        batch_op.drop_column("patient_name_words")
        batch_op.drop_column("patient_name_folded")

    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_container_identifier"))
        batch_op.drop_index(batch_op.f("ix_instance_acquisition_datetime_norm"))
        batch_op.drop_column("acquisition_datetime_norm")
        batch_op.drop_column("acquisition_datetime")
        batch_op.drop_column("container_identifier")
        batch_op.drop_column("bits_allocated")

    with op.batch_alter_table("specimen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_specimen_specimen_identifier"))
        batch_op.drop_index(batch_op.f("ix_specimen_instance_pk"))

    op.drop_table("specimen")
    with op.batch_alter_table("request_attributes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_attributes_series_pk"))
        batch_op.drop_index(batch_op.f("ix_request_attributes_scheduled_procedure_step_id"))
        batch_op.drop_index(batch_op.f("ix_request_attributes_requested_procedure_id"))

    op.drop_table("request_attributes")
