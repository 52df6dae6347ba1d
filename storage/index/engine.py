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
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from storage import metrics
from storage.errors import IndexUnavailable

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


def create_index_engine(url: str) -> Engine:
    """An engine for *url*; SQLite gets WAL, full fsync, foreign keys and immediate writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=CONNECT_TIMEOUT,
            connect_args={"connect_timeout": CONNECT_TIMEOUT},
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


def migrate(engine: Engine) -> None:
    """Bring the index schema to the newest revision."""
    with engine.execution_options(**WRITE).begin() as connection:
        command.upgrade(_config(connection), "head")


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
    """The index's connection pool, opened and migrated to the newest revision."""

    engine: Engine

    @classmethod
    def open(cls, url: str) -> Database:
        engine = create_index_engine(url)
        migrate(engine)
        return cls(engine)

    def is_current(self) -> bool:
        """True when the index answers and is at this build's newest revision."""
        return is_current(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection (a process about to fork or exit)."""
        self.engine.dispose()
