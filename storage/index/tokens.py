"""API tokens and share links in the index: created with a random secret shown once, kept as
a SHA-256 hash, looked up by their public id, revocable, with expiry and last use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from storage.access import Scope, TokenInfo
from storage.index.engine import WRITE
from storage.index.models import ApiToken

PREFIX = "wsa"  # tokens read wsa_<id>_<secret>: recognisable by secret scanners
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _digest(secret: str) -> str:
    # The secret is 256 random bits: a fast hash is as strong as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiToken) -> TokenInfo:
    groups = None if row.groups == "*" else frozenset(row.groups.split())
    return TokenInfo(
        row.token_id,
        row.name,
        Scope.parse(row.scopes.split()),
        groups,
        row.study_instance_uid,
        row.created_by,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


class TokenStore:
    """The api_token table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self, write: bool = False) -> Session:
        return Session(self.engine.execution_options(**WRITE) if write else self.engine)

    def create(
        self,
        name: str,
        scopes: frozenset[Scope],
        groups: frozenset[str] | None,
        study: str | None,
        created_by: str,
        lifetime: timedelta | None,
    ) -> tuple[TokenInfo, str]:
        """A new token and its text, which is shown once and never stored."""
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = _now()
        row = ApiToken(
            token_id=token_id,
            secret_hash=_digest(secret),
            name=name,
            scopes=" ".join(sorted(scope.value for scope in scopes)),
            groups="*" if groups is None else " ".join(sorted(groups)),
            study_instance_uid=study,
            created_by=created_by,
            created_at=now,
            expires_at=now + lifetime if lifetime is not None else None,
        )
        with self._session(write=True) as session, session.begin():
            session.add(row)
            session.flush()
            info = _info(row)
        return info, f"{PREFIX}_{token_id}_{secret}"

    def verify(self, text: str) -> TokenInfo | None:
        """The active token *text* is, or None (unknown, wrong secret, expired, revoked)."""
        parts = text.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        token_id, secret = parts[1], parts[2]
        with self._session() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_id == token_id))
            info = _info(row) if row is not None else None
            digest = row.secret_hash if row is not None else _digest("")
        # Compared even when the id is unknown, so the time taken tells nothing.
        matches = hmac.compare_digest(digest, _digest(secret))
        now = _now()
        if info is None or not matches or not info.active(now):
            return None
        if info.last_used_at is None or now - info.last_used_at > LAST_USED_EVERY:
            with self._session(write=True) as session, session.begin():
                session.execute(
                    update(ApiToken).where(ApiToken.token_id == token_id).values(last_used_at=now)
                )
        return info

    def list(self) -> list[TokenInfo]:  # noqa: A003
        """Every token, oldest first (revoked and expired ones too)."""
        with self._session() as session:
            return [_info(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.pk))]

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its id; False when there is no such active token."""
        with self._session(write=True) as session, session.begin():
            result = session.execute(
                update(ApiToken)
                .where(ApiToken.token_id == token_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return bool(getattr(result, "rowcount", 0))
