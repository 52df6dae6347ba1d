"""Export projects and their pseudonym maps in the index: each project's secret key (from
which its pseudonyms and UIDs are derived) and every original -> pseudonym it exported."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.index.engine import WRITE
from storage.index.models import DeidProject, PseudonymRow
from storage.records import Pseudonym

KEY_BYTES = 32


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class PseudonymStore:
    """The deid_project and pseudonym tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self, write: bool = False) -> Session:
        return Session(self.engine.execution_options(**WRITE) if write else self.engine)

    def key(self, project: str, created_by: str) -> bytes:
        """The secret key of *project*, made on its first export (two processes making it
        at once agree: the loser of the unique name reads the winner's)."""
        for _ in range(2):
            with self._session() as session:
                found = session.scalar(select(DeidProject).where(DeidProject.name == project))
                if found is not None:
                    return bytes.fromhex(found.secret)
            try:
                with self._session(write=True) as session, session.begin():
                    session.add(
                        DeidProject(
                            name=project,
                            secret=secrets.token_hex(KEY_BYTES),
                            created_by=created_by,
                            created_at=_now(),
                        )
                    )
            except IntegrityError:
                continue
        return self.key(project, created_by)

    def record(self, project: str, entries: Iterable[tuple[str, str, str]]) -> int:
        """Add (kind, original, pseudonym) entries to the map of *project* (which exists);
        entries already there are left as they are. Returns how many were added."""
        wanted = {(kind, original): value for kind, original, value in entries}
        if not wanted:
            return 0
        with self._session(write=True) as session, session.begin():
            project_pk = session.scalar(select(DeidProject.pk).where(DeidProject.name == project))
            if project_pk is None:
                raise KeyError(f"no export project {project!r}")
            originals = {original for _, original in wanted}
            present = {
                (row.kind, row.original)
                for row in session.scalars(
                    select(PseudonymRow).where(
                        PseudonymRow.project_pk == project_pk,
                        PseudonymRow.original.in_(originals),
                    )
                )
            }
            now = _now()
            added = [
                PseudonymRow(
                    project_pk=project_pk, kind=kind, original=original, pseudonym=value,
                    created_at=now,
                )
                for (kind, original), value in wanted.items()
                if (kind, original) not in present
            ]  # fmt: skip
            session.add_all(added)
        return len(added)

    def find(self, value: str, project: str | None = None) -> list[Pseudonym]:
        """Entries whose original or pseudonym is *value* (in *project*, or in every one)."""
        query = (
            select(PseudonymRow, DeidProject.name)
            .join(DeidProject, DeidProject.pk == PseudonymRow.project_pk)
            .where(or_(PseudonymRow.original == value, PseudonymRow.pseudonym == value))
            .order_by(PseudonymRow.pk)
        )
        if project is not None:
            query = query.where(DeidProject.name == project)
        with self._session() as session:
            return [
                Pseudonym(name, row.kind, row.original, row.pseudonym, row.created_at)
                for row, name in session.execute(query)
            ]

    def projects(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(DeidProject.name).order_by(DeidProject.name)))
