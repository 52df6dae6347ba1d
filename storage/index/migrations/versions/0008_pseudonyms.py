"""De-identified exports: the deid_project table (each project's key) and the pseudonym map

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deid_project",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "pseudonym",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("project_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("original", sa.String(length=400), nullable=False),
        sa.Column("pseudonym", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_pk"], ["deid_project.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("pseudonym", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pseudonym_project_pk"), ["project_pk"])
        batch_op.create_index(batch_op.f("ix_pseudonym_original"), ["original"])
        batch_op.create_index(batch_op.f("ix_pseudonym_pseudonym"), ["pseudonym"])
        batch_op.create_index(
            "ux_pseudonym_original", ["project_pk", "kind", "original"], unique=True
        )


def downgrade() -> None:
    op.drop_table("pseudonym")
    op.drop_table("deid_project")
