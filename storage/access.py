"""Who is asking and what they may do: scopes, and the studies a principal may see."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from storage.errors import Forbidden


class Scope(StrEnum):
    """What a principal may do (docs/security.md)."""

    READ = "read"  # search and retrieve
    WRITE = "write"  # store
    DELETE = "delete"  # remove instances
    ADMIN = "admin"  # tokens, audit trail, verify; sees every study
    METRICS = "metrics"  # read /metrics (with metrics_access = token); no patient data

    @classmethod
    def parse(cls, words: Iterable[str]) -> frozenset[Scope]:
        """The scopes named among *words* (other words are ignored)."""
        known = {scope.value: scope for scope in cls}
        return frozenset(known[word] for word in words if word in known)


ALL_SCOPES = frozenset(Scope)


class PrincipalKind(StrEnum):
    """How a principal proved who it is."""

    OIDC = "oidc"  # a bearer JWT from the configured issuer
    TOKEN = "token"  # an API token (wsiarchive token create)
    SHARE = "share"  # a share link: one study, read only
    AE = "ae"  # a DICOM application entity
    ANONYMOUS = "anonymous"  # anonymous access, configured explicitly
    LOCAL = "local"  # an administrator's command on the archive's own machine


@dataclass(frozen=True)
class Principal:
    """An authenticated identity: its scopes and which studies it may see.

    ``groups`` are the access groups (storage.access, Study.access_group) whose studies it may
    see, None for every group; ``studies`` narrows it to those Study Instance UIDs (a share
    link), None for no narrowing. ``source`` is where the request came from (address, AE@host).
    """

    subject: str
    kind: PrincipalKind
    scopes: frozenset[Scope]
    groups: frozenset[str] | None = None
    studies: frozenset[str] | None = None
    source: str = ""
    display: str = field(default="", compare=False)

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def unrestricted(self) -> bool:
        """True when the principal sees every study."""
        return self.groups is None and self.studies is None

    def sees(self, study: str, group: str) -> bool:
        """True when the study (with its access group) is visible to the principal."""
        if self.groups is not None and group not in self.groups:
            return False
        return self.studies is None or study in self.studies

    def at(self, source: str) -> Principal:
        """The same principal, asking from *source*."""
        return Principal(
            self.subject, self.kind, self.scopes, self.groups, self.studies, source, self.display
        )


def local_admin(command: str) -> Principal:
    """The principal of an administrator's command run on the archive's machine."""
    import getpass

    return Principal(
        f"{getpass.getuser()}@local", PrincipalKind.LOCAL, ALL_SCOPES, source=f"cli:{command}"
    )


GROUP_LENGTH = 64  # Study.access_group


def require(who: Principal, scope: Scope) -> None:
    """Refuse (Forbidden) unless *who* holds *scope*."""
    if scope not in who.scopes:
        raise Forbidden(f"{who.subject} lacks the {scope.value} scope")


def group_of(value: object) -> str:
    """The access group named by an attribute's value (its first value, trimmed)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return str(value).strip()[:GROUP_LENGTH]


@dataclass(frozen=True)
class TokenInfo:
    """A token as `token list` shows it: everything but the secret."""

    token_id: str
    name: str
    scopes: frozenset[Scope]
    groups: frozenset[str] | None
    study: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def kind(self) -> PrincipalKind:
        return PrincipalKind.SHARE if self.study else PrincipalKind.TOKEN

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def principal(self) -> Principal:
        return Principal(
            f"{self.kind.value}:{self.token_id}",
            self.kind,
            self.scopes,
            self.groups,
            frozenset({self.study}) if self.study else None,
            display=self.name,
        )
