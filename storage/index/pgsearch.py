"""PostgreSQL's own indexes for QIDO's wildcard and fuzzy matching: trigram (pg_trgm) GIN
indexes, which serve LIKE with a leading wildcard ('*son') as well as prefixes ('Smi*') in
any collation. SQLite has no such index type; its btree indexes serve prefixes only."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

EXTENSION = "pg_trgm"
# (table, column) of every text column QIDO matches with wildcards (storage.query.matching:
# match_text, match_person_name, match_fuzzy_person_name).
TRIGRAM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("patient", "patient_id"),
    ("patient", "patient_name_folded"),
    ("patient", "patient_name_words"),
    ("patient", "patient_name_phonetic"),
    ("study", "accession_number"),
    ("study", "study_id"),
    ("study", "study_description"),
    ("study", "referring_physician_name_folded"),
    ("study", "referring_physician_name_words"),
    ("study", "referring_physician_name_phonetic"),
    ("series", "series_description"),
    ("instance", "container_identifier"),
)


def index_name(table: str, column: str) -> str:
    return f"ix_{table}_{column}_trgm"


def has_trigrams(connection: Connection) -> bool:
    """True when pg_trgm is installed in the index's database, after trying to install it
    (which needs the CREATE privilege on the database, or a DBA to run
    ``CREATE EXTENSION pg_trgm`` once)."""
    installed = text("SELECT 1 FROM pg_extension WHERE extname = :name")
    if connection.scalar(installed, {"name": EXTENSION}):
        return True
    try:
        with connection.begin_nested():  # a savepoint: a refusal leaves the migration going
            connection.execute(text(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}"))
    except DBAPIError as exc:
        log.warning(
            "PostgreSQL extension %s could not be created (%s): wildcard and fuzzy name "
            "searches work without its indexes, but scan; have a DBA run "
            "'CREATE EXTENSION %s' in the archive's database, then `wsiarchive migrate`",
            EXTENSION,
            str(exc.orig).strip().splitlines()[0],
            EXTENSION,
        )
        return False
    return True


def ensure(connection: Connection) -> bool:
    """Create the trigram indexes that are missing (when pg_trgm can be had); True when all
    exist. Idempotent: every `migrate` calls it."""
    if not has_trigrams(connection):
        return False
    # Looked up first: CREATE INDEX IF NOT EXISTS would lock each table against writes even
    # when the index is there (a server starting on a live cluster must not).
    existing = set(connection.scalars(text("SELECT indexname FROM pg_indexes")))
    for table, column in TRIGRAM_COLUMNS:
        if index_name(table, column) not in existing:
            connection.execute(
                text(
                    f"CREATE INDEX {index_name(table, column)} "
                    f"ON {table} USING gin ({column} gin_trgm_ops)"
                )
            )
    return True
