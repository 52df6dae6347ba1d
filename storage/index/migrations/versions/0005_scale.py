"""Scale: study and series counters, accent-folded and phonetic names, indexes for every
QIDO matching type (trigram indexes on PostgreSQL)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _counter(name: str) -> sa.Column[int]:
    """A counter column: NOT NULL, 0 until the backfill below."""
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "patient_name_phonetic", sa.String(length=500), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "referring_physician_name_phonetic",
                sa.String(length=500),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(_counter("number_of_series"))
        batch_op.add_column(_counter("number_of_instances"))
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(_counter("number_of_instances"))
        batch_op.drop_index("ix_series_modality")
        batch_op.create_index("ix_series_modality_study", ["modality", "study_pk"], unique=False)

    # The counters of what is stored already.
    op.execute(
        "UPDATE series SET number_of_instances = (SELECT count(*) FROM instance "
        "WHERE instance.series_pk = series.pk AND instance.status = 'stored')"
    )
    op.execute(
        "UPDATE study SET number_of_series = (SELECT count(*) FROM series "
        "WHERE series.study_pk = study.pk), number_of_instances = (SELECT "
        "coalesce(sum(series.number_of_instances), 0) FROM series WHERE series.study_pk = study.pk)"
    )

    # Names folded anew (accents now fold too) and their phonetic codes.
    from storage.index.columns import name_values

    bind = op.get_bind()
    for table, prefix in (("patient", "patient_name"), ("study", "referring_physician_name")):
        rows = bind.execute(
            sa.text(
                f"SELECT pk, {prefix} FROM {table} WHERE {prefix} <> '' OR {prefix}_folded <> ''"
            )
        )
        changes = [{"pk": pk, **name_values("", name)} for pk, name in rows]
        if changes:
            bind.execute(
                sa.text(
                    f"UPDATE {table} SET {prefix}_folded = :_folded, {prefix}_words = :_words, "
                    f"{prefix}_phonetic = :_phonetic WHERE pk = :pk"
                ),
                changes,
            )

    if bind.dialect.name == "postgresql":
        from storage.index import pgsearch

        pgsearch.ensure(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from storage.index import pgsearch

        for table, column in pgsearch.TRIGRAM_COLUMNS:
            op.execute(f"DROP INDEX IF EXISTS {pgsearch.index_name(table, column)}")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index("ix_series_modality_study")
        batch_op.create_index("ix_series_modality", ["modality"], unique=False)
        batch_op.drop_column("number_of_instances")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("number_of_instances")
        batch_op.drop_column("number_of_series")
        batch_op.drop_column("referring_physician_name_phonetic")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_column("patient_name_phonetic")
