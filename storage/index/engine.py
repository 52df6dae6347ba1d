"""Connecting to the study index: engine set-up for SQLite (WAL) or PostgreSQL, and migrations."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from storage import metrics
from storage.config import DatabasePool
from storage.errors import IndexUnavailable, SchemaNotCurrent

MIGRATIONS = Path(__file__).with_name("migrations")
WRITE = {"wsiarchive_write": True}


# SQLSTATE classes of an index that cannot be reached: 08 connection exception, 57P
# operator intervention (admin shutdown, cannot connect now), 53 no room (when not writing).
_UNREACHABLE_STATES = ("08", "57P")
_SQLITE_GONE = ("unable to open database file", "no such table", "disk I/O error")
CONNECT_TIMEOUT = 5  # seconds a PostgreSQL connection may take before the index is unavailable


def _unavailable(context: Any) -> None:
    """Every error of the engine passes here: an index that cannot be reached becomes one
    typed error (IndexUnavailable, 503 / A700), never a hang or an internal error."""
    original = context.original_exception
    state = getattr(original, "sqlstate", None)
    gone = context.is_disconnect
    gone = gone or (isinstance(state, str) and state.startswith(_UNREACHABLE_STATES))
    gone = gone or any(text in str(original) for text in _SQLITE_GONE)
    # No connection could be made at all (refused, timed out, shutting down).
    gone = gone or (
        context.connection is None and isinstance(context.sqlalchemy_exception, OperationalError)
    )
    if gone and not isinstance(original, IndexUnavailable):
        metrics.count_index_unavailable()
        raise IndexUnavailable(f"the study index cannot be reached: {original}") from original


def create_index_engine(url: str, pool: DatabasePool | None = None) -> Engine:
    """An engine for *url*; SQLite gets WAL, full fsync, foreign keys and immediate writers,
    PostgreSQL a pool sized by *pool*."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        pool = pool or DatabasePool()
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
        if not pool.prepared_statements:
            connect_args["prepare_threshold"] = None  # psycopg 3: never prepare
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool.size,
            max_overflow=pool.overflow,
            pool_timeout=pool.timeout,
            pool_recycle=pool.recycle,
            connect_args=connect_args,
        )
        event.listen(engine, "handle_error", _unavailable)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    event.listen(engine, "handle_error", _unavailable)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own transaction handling is off).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns, as blobs are.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        # LIKE is case-sensitive, as in PostgreSQL and as PS3.4 C.2.2.2.4 wildcard matching
        # requires (person names are matched on a case-folded column instead).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front, so two writers never deadlock upgrading a
        # read lock; readers stay concurrent under WAL.
        if connection.get_execution_options().get("wsiarchive_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


def _config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# The key of the PostgreSQL advisory lock every migration holds (any constant the archive
# alone uses): processes starting at once on a cluster migrate one after the other.
MIGRATION_LOCK = 0x77736961  # "wsia"


@dataclass(frozen=True)
class Revisions:
    """Where an index schema is (None: empty) and where this build needs it."""

    current: str | None
    head: str | None

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def _lock(connection: Connection) -> None:
    """On PostgreSQL, wait for the migration lock until this transaction ends (SQLite's
    BEGIN IMMEDIATE already makes writers take turns)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def migrate(engine: Engine) -> Revisions:
    """Bring the index schema to the newest revision, safely when several processes do it at
    once: each takes the lock first, so the second finds the schema current. Returns the
    revisions before the upgrade."""
    with engine.execution_options(**WRITE).begin() as connection:
        _lock(connection)
        before = _revisions(connection)
        command.upgrade(_config(connection), "head")
        if connection.dialect.name == "postgresql":
            from storage.index import pgsearch

            pgsearch.ensure(connection)  # indexes left out for want of pg_trgm, once it exists
    return before


def _revisions(connection: Connection) -> Revisions:
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(_config(connection)).get_current_head()
    return Revisions(current, head)


def revisions(engine: Engine) -> Revisions:
    """Where the index schema is, and where this build needs it."""
    with engine.connect() as connection:
        return _revisions(connection)


@functools.cache
def _head() -> str | None:
    """The newest revision of this build's migrations (read from their files once)."""
    return ScriptDirectory.from_config(_config(None)).get_current_head()


def is_current(engine: Engine) -> bool:
    """True when the index is at the newest revision (one query: readiness asks it often)."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current == _head()


@dataclass(frozen=True)
class Database:
    """The index's connection pool, opened on a schema at the newest revision."""

    engine: Engine

    @classmethod
    def open(cls, url: str, pool: DatabasePool | None = None, upgrade: bool = True) -> Database:
        """Open the index at *url*, migrating it (*upgrade*) or refusing it with
        SchemaNotCurrent when it is not at the newest revision."""
        engine = create_index_engine(url, pool)
        if upgrade:
            migrate(engine)
            return cls(engine)
        found = revisions(engine)
        if not found.is_current:
            engine.dispose()
            raise SchemaNotCurrent(
                f"the index schema is at revision {found.current or 'none (empty)'}, this "
                f"build needs {found.head}: run `wsiarchive migrate` (migrate_on_start is off)"
            )
        return cls(engine)

    def is_current(self) -> bool:
        """True when the index answers and is at this build's newest revision."""
        return is_current(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection (a process about to fork or exit)."""
        self.engine.dispose()
