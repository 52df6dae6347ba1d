"""`wsiarchive tiers report|apply|recall`, and the loop by which `serve` applies the tier
rules and completes recalls (docs/operations.md "Storage tiers")."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from storage.access import local_admin

if TYPE_CHECKING:
    from storage import Archive
    from wsiarchive.settings import Settings

log = logging.getLogger(__name__)
Opener = Callable[[argparse.Namespace], "Archive"]


def tiers_report(archive: Archive, args: argparse.Namespace) -> int:
    reports = archive.tier_report(who=local_admin("tiers"))
    if args.json:
        document = {
            "tiers": [asdict(r) for r in reports],
            "monthly_cost": sum(r.monthly_cost for r in reports),
        }
        json.dump(document, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'tier':12s} {'class':14s} {'instances':>10s} {'bytes':>16s} {'per month':>12s}")
    for r in reports:
        name = r.name + (" (recall)" if r.needs_recall else "")
        print(
            f"{name:12s} {r.storage_class or '-':14s} {r.instances:10d} {r.bytes:16d} "
            f"{r.monthly_cost:12.4f}"
        )
    print(
        f"{'total':12s} {'':14s} {sum(r.instances for r in reports):10d} "
        f"{sum(r.bytes for r in reports):16d} {sum(r.monthly_cost for r in reports):12.4f}"
    )
    return 0


def tiers_apply(archive: Archive, args: argparse.Namespace) -> int:
    moves = archive.apply_tiers(dry_run=args.dry_run, who=local_admin("tiers"))
    for move in moves:
        state = "would move" if args.dry_run else ("moved" if move.done else "skipped")
        print(f"{state} {move.instance} ({move.size} bytes) {move.source} -> {move.target}")
    print(f"{len(moves)} {'planned' if args.dry_run else 'moves'}")
    return 0


def tiers_recall(archive: Archive, args: argparse.Namespace) -> int:
    who = local_admin("tiers")
    asked = archive.recall(args.study, who=who)
    done = archive.complete_recalls(who=who)
    print(f"{asked} instances asked for, {sum(m.done for m in done)} recalls done")
    return 0


def add_commands(
    commands: Any, settings_parser: Callable[[str], argparse.ArgumentParser], opener: Opener
) -> None:
    """The tiers sub-commands."""

    def runs(work: Callable[[Archive, argparse.Namespace], int]) -> Callable[..., int]:
        def run(args: argparse.Namespace) -> int:
            archive = opener(args)
            try:
                return work(archive, args)
            finally:
                archive.close()

        return run

    parser = commands.add_parser(
        "tiers", parents=[settings_parser("tiers")], help="storage tiers: report, apply, recall"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    report = actions.add_parser("report", help="instances, bytes and monthly cost per tier")
    report.add_argument("--json", action="store_true", help="the report as JSON")
    report.set_defaults(run=runs(tiers_report))
    apply = actions.add_parser("apply", help="move studies between tiers as tier_rules say")
    apply.add_argument("--dry-run", action="store_true", help="list the moves only")
    apply.set_defaults(run=runs(tiers_apply))
    recall = actions.add_parser("recall", help="recall a study from tiers that need it")
    recall.add_argument("study", metavar="STUDY", help="Study Instance UID")
    recall.set_defaults(run=runs(tiers_recall))


def run_loop(settings: Settings, stop: threading.Event) -> None:
    """`serve`'s tier work until *stop*: completed recalls every tier_recall_check_seconds,
    the rules every tier_apply_seconds (when not 0)."""
    from storage import open_archive
    from storage.errors import ArchiveError

    archive = open_archive(settings)
    who = local_admin("serve")
    interval = settings.tier_recall_check_seconds
    if settings.tier_apply_seconds:
        interval = min(interval, settings.tier_apply_seconds)
    since_apply = 0.0
    while not stop.wait(interval):
        try:
            archive.complete_recalls(who=who)
            since_apply += interval
            if settings.tier_apply_seconds and since_apply >= settings.tier_apply_seconds:
                since_apply = 0.0
                archive.apply_tiers(who=who)
        except (ArchiveError, OSError) as exc:
            log.warning("storage tiers: %s", getattr(exc, "reason", exc))
        except Exception:
            log.exception("storage tiers")
