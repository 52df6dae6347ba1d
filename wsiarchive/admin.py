"""The administrator's commands on the archive's own machine: API tokens, share links and the
audit trail (`wsiarchive token|share|audit`)."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from storage.access import Scope, local_admin
from storage.audit import AuditQuery, AuditRecord, Operation

if TYPE_CHECKING:
    from storage import Archive
    from storage.access import TokenInfo

Opener = Callable[[argparse.Namespace], "Archive"]
SHARE_DAYS = 14  # a share link's default lifetime


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") + "Z" if value else "-"


def _token_row(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.token_id,
        "name": info.name,
        "scopes": sorted(scope.value for scope in info.scopes),
        "groups": "*" if info.groups is None else sorted(info.groups),
        "study": info.study,
        "created_by": info.created_by,
        "created_at": _when(info.created_at),
        "expires_at": _when(info.expires_at),
        "last_used_at": _when(info.last_used_at),
        "revoked_at": _when(info.revoked_at),
    }


def _print_tokens(infos: list[TokenInfo], as_json: bool) -> None:
    rows = [_token_row(info) for info in infos]
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return
    for row in rows:
        scope = row["study"] or ",".join(row["scopes"])
        print(
            f"{row['id']}  {row['name'] or '-':24s} {scope:20s} expires {row['expires_at']:20s} "
            f"last used {row['last_used_at']:20s} revoked {row['revoked_at']}"
        )


def _lifetime(days: float | None) -> timedelta | None:
    if days is None:
        return None
    if days <= 0:
        raise ValueError("--expires-days must be positive")
    return timedelta(days=days)


def token_create(archive: Archive, args: argparse.Namespace) -> int:
    scopes = Scope.parse(args.scopes.replace(",", " ").split())
    unknown = set(args.scopes.replace(",", " ").split()) - {s.value for s in scopes}
    if unknown or not scopes:
        raise ValueError(f"--scopes must name some of {', '.join(s.value for s in Scope)}")
    groups = frozenset(args.groups.replace(",", " ").split()) if args.groups else None
    info, text = archive.create_token(
        args.name,
        scopes,
        who=local_admin("token create"),
        groups=groups,
        lifetime=_lifetime(args.expires_days),
    )
    print(f"token {info.token_id} created; it is shown only now:", file=sys.stderr)
    print(text)
    return 0


def share_create(archive: Archive, args: argparse.Namespace) -> int:
    info, text = archive.create_token(
        args.name,
        frozenset({Scope.READ}),
        who=local_admin("share create"),
        study=args.study,
        lifetime=_lifetime(args.expires_days),
    )
    print(
        f"share link {info.token_id} opens study {args.study} read-only until "
        f"{_when(info.expires_at)}; give the colleague this token (shown only now):",
        file=sys.stderr,
    )
    print(text)
    return 0


def tokens_list(archive: Archive, args: argparse.Namespace, shares: bool) -> int:
    infos = archive.tokens(who=local_admin("token list"))
    _print_tokens([i for i in infos if (i.study is not None) == shares], args.json)
    return 0


def token_revoke(archive: Archive, args: argparse.Namespace) -> int:
    if not archive.revoke_token(args.id, who=local_admin("token revoke")):
        print(f"error: no active token {args.id}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


def _record_row(record: AuditRecord) -> dict[str, Any]:
    return {
        "at": _when(record.at),
        "actor": record.actor,
        "kind": record.actor_kind,
        "source": record.source,
        "operation": record.operation.value,
        "study": record.study,
        "series": record.series,
        "instance": record.instance,
        "outcome": record.outcome,
        "success": record.success,
        "detail": record.detail,
    }


def audit_list(archive: Archive, args: argparse.Namespace) -> int:
    query: AuditQuery = AuditQuery(
        since=datetime.fromisoformat(args.since) if args.since else None,
        until=datetime.fromisoformat(args.until) if args.until else None,
        actor=args.actor,
        study=args.study,
        operation=Operation(args.operation) if args.operation else None,
        failures_only=args.failures,
        limit=args.limit,
    )
    records = archive.audit_events(query, who=local_admin("audit"))
    rows = [_record_row(record) for record in records]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    for row in rows:
        where = "/".join(part for part in (row["study"], row["series"], row["instance"]) if part)
        print(
            f"{row['at']} {row['actor']} ({row['source']}) {row['operation']} {where or '-'} "
            f"-> {row['outcome']}{'' if row['success'] else ' FAILED'} {row['detail']}"
        )
    return 0


def _token_arguments(create: argparse.ArgumentParser) -> None:
    create.add_argument("name", help="who or what uses it, e.g. 'scanner 3, histology'")
    create.add_argument("--scopes", default="read", help="of read, write, delete, admin, metrics")
    create.add_argument("--groups", default="", help="access groups it may see (default all)")
    create.add_argument("--expires-days", type=float, default=None)


def _share_arguments(create: argparse.ArgumentParser) -> None:
    create.add_argument("study", help="Study Instance UID")
    create.add_argument("--name", default="", help="for whom, e.g. 'Dr Okafor, Christie'")
    create.add_argument("--expires-days", type=float, default=SHARE_DAYS)


def add_commands(
    commands: Any,
    settings_parser: Callable[[str], argparse.ArgumentParser],
    opener: Opener,
) -> None:
    """The token, share and audit sub-commands."""

    def runs(work: Callable[[Archive, argparse.Namespace], int]) -> Callable[..., int]:
        return lambda args: work(opener(args), args)

    kinds = {
        # command: (help, what one is called, whether `list` shows share links)
        "token": ("API tokens for machines", "token", False),
        "share": (
            "read-only, expiring links to one study, for a second opinion",
            "share link",
            True,
        ),
    }
    creators: dict[str, Callable[[argparse.ArgumentParser], None]] = {
        "token": _token_arguments,
        "share": _share_arguments,
    }
    for command, (help_text, called, shares) in kinds.items():
        parser = commands.add_parser(command, parents=[settings_parser(command)], help=help_text)
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help=f"create a {called} (shown once)")
        creators[command](create)
        create.set_defaults(run=runs(token_create if command == "token" else share_create))
        listing = actions.add_parser("list", help=f"every {called}, without secrets")
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(run=runs(functools.partial(tokens_list, shares=shares)))
        revoke = actions.add_parser("revoke", help=f"revoke a {called} by its id")
        revoke.add_argument("id")
        revoke.set_defaults(run=runs(token_revoke))

    audit = commands.add_parser(
        "audit", parents=[settings_parser("audit")], help="search the audit trail"
    )
    audit.add_argument("--since", help="ISO date-time (UTC)")
    audit.add_argument("--until", help="ISO date-time (UTC)")
    audit.add_argument("--actor")
    audit.add_argument("--study", help="Study Instance UID")
    audit.add_argument("--operation", choices=[o.value for o in Operation])
    audit.add_argument("--failures", action="store_true", help="only refused or failed ones")
    audit.add_argument("--limit", type=int, default=1000)
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(run=runs(audit_list))
