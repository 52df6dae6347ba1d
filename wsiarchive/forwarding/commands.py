"""The `forward`, `send` and `retrieve` commands: run the forwarder, show its status, queue a
study for a destination, store a study from one."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from storage.access import local_admin
from storage.records import ForwardState
from wsiarchive.forwarding.config import parse_destinations, parse_rules
from wsiarchive.settings import Settings

if TYPE_CHECKING:
    from storage import Archive
    from wsiarchive.forwarding.forwarder import Forwarder

FAILURES_SHOWN = 20  # failed instances listed per destination by --status
SEND_NOW_SECONDS = 120.0  # send --now waits at most this long for its queue to empty


def forwarder_of(settings: Settings, archive: Archive) -> Forwarder:
    """The forwarder the settings describe (ValueError for settings that cannot work)."""
    from wsiarchive.forwarding.forwarder import Forwarder

    destinations = parse_destinations(settings.forward_destinations)
    return Forwarder(
        archive,
        destinations,
        parse_rules(settings.forward_rules, destinations),
        ae_title=settings.ae_title,
        poll_seconds=settings.forward_poll_seconds,
        max_backoff_seconds=settings.forward_max_backoff_seconds,
        max_attempts=settings.forward_max_attempts,
    )


def status(archive: Archive, as_json: bool) -> int:
    """Per destination: pending, sent, failed, attempts, the last reason, the failures."""
    counts = archive.forward_counts()
    failures = {
        c.destination: archive.forward_items(c.destination, ForwardState.FAILED, FAILURES_SHOWN)
        for c in counts
        if c.failed
    }
    if as_json:
        rows = [
            asdict(c) | {"failures": [f.instance for f in failures.get(c.destination, [])]}
            for c in counts
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not counts:
        print("nothing queued")
    for c in counts:
        print(
            f"{c.destination}: {c.pending} pending, {c.sent} sent, {c.failed} failed, "
            f"{c.attempts} attempts" + (f"; last failure: {c.last_reason}" if c.last_reason else "")
        )
        for item in failures.get(c.destination, []):
            print(f"  failed {item.instance} ({item.attempts} attempts): {item.reason}")
    return 0


def command_forward(settings: Settings, archive: Archive, args: argparse.Namespace) -> int:
    if args.status:
        return status(archive, args.json)
    forwarder = forwarder_of(settings, archive)
    if not forwarder.destinations:
        print("error: no forward_destinations")
        return 2
    if args.once:
        try:
            while forwarder.turn():
                pass
        finally:
            forwarder.release()
        return status(archive, args.json)
    forwarder.run(threading.Event())
    return 0


def command_send(settings: Settings, archive: Archive, args: argparse.Namespace) -> int:
    destinations = parse_destinations(settings.forward_destinations)
    if args.to not in destinations:
        known = ", ".join(destinations) or "none configured"
        print(f"error: no forwarding destination {args.to!r} ({known})")
        return 2
    records = archive.records(args.study, args.series, who=local_admin("send"))
    queued = archive.enqueue_forward(
        args.to, [(r.study, r.series, r.instance) for r in records], again=True
    )
    print(f"{queued} of {len(records)} instances queued for {args.to}")
    if args.now:
        forwarder = forwarder_of(settings, archive)
        forwarder.rules = []  # only this queue, not the change feed
        deadline = time.monotonic() + SEND_NOW_SECONDS
        try:
            while time.monotonic() < deadline:
                if forwarder.send(destinations[args.to]):
                    continue
                # Nothing sent here: done, backing off after a failure, or sent by the
                # process that holds the destination's lease (a running serve).
                counts = {c.destination: c for c in archive.forward_counts()}
                if not counts[args.to].pending:
                    break
                time.sleep(settings.forward_poll_seconds)
        finally:
            forwarder.release()
        return status(archive, False)
    return 0


def command_retrieve(settings: Settings, archive: Archive, args: argparse.Namespace) -> int:
    from storage.errors import InvalidUID
    from wsiarchive.forwarding.retrieve import Move, retrieve

    destinations = parse_destinations(settings.forward_destinations)
    if args.source not in destinations:
        known = ", ".join(destinations) or "none configured"
        print(f"error: no forwarding destination {args.source!r} ({known})")
        return 2
    if args.receive_on and not args.move_to:
        print("error: --receive-on needs --move-to (the AE title it receives as)")
        return 2
    move = None
    if args.move_to:
        move = Move(args.move_to, address_of(args.receive_on, settings.host))
    try:
        done = retrieve(
            archive,
            destinations[args.source],
            args.study,
            local_admin("retrieve"),
            settings.ae_title,
            move,
        )
    except InvalidUID as exc:
        print(f"error: {exc.reason}")
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1
    if done.moved is not None:
        print(done.moved.summary())
    if done.moved is None or args.receive_on:
        print(
            f"{done.stored} stored, {done.duplicates} held already, {done.failed} failed"
            + (f" (last: {done.reason})" if done.reason else "")
        )
    problem = done.moved.problem() if done.moved is not None else ""
    if problem:
        print(f"error: {problem}")
    return 1 if done.failed or problem else 0


def address_of(text: str | None, host: str) -> tuple[str, int] | None:
    """--receive-on's [HOST:]PORT, on *host* when it names none (ValueError when wrong)."""
    if not text:
        return None
    name, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--receive-on {text!r} is not [HOST:]PORT")
    return (name or host, int(port))


def add_commands(
    commands: Any,
    settings_parser: Callable[[str], argparse.ArgumentParser],
    resolve: Callable[[argparse.Namespace], Settings],
    opener: Callable[[Settings], Archive],
) -> None:
    """The forward and send sub-commands."""

    def runs(work: Callable[[Settings, Archive, argparse.Namespace], int]) -> Callable[..., int]:
        def run(args: argparse.Namespace) -> int:
            settings = resolve(args)
            archive = opener(settings)
            try:
                return work(settings, archive, args)
            finally:
                archive.close()

        return run

    forward = commands.add_parser(
        "forward",
        parents=[settings_parser("forward")],
        help="send new instances to forward_destinations (serve does it too), or --status",
    )
    forward.add_argument("--status", action="store_true", help="counts per destination only")
    forward.add_argument("--once", action="store_true", help="stop when nothing is due")
    forward.add_argument("--json", action="store_true", help="the status as JSON")
    forward.set_defaults(run=runs(command_forward))
    send = commands.add_parser(
        "send",
        parents=[settings_parser("send")],
        help="queue a study (or series) for a forwarding destination",
    )
    send.add_argument("study", metavar="STUDY", help="Study Instance UID")
    send.add_argument("--series", help="only this Series Instance UID")
    send.add_argument("--to", required=True, metavar="NAME", help="a forward_destinations name")
    send.add_argument("--now", action="store_true", help="send it now, then show the status")
    send.set_defaults(run=runs(command_send))
    fetch = commands.add_parser(
        "retrieve",
        parents=[settings_parser("retrieve")],
        help="store a study from a forwarding destination here (WADO-RS, C-GET or C-MOVE)",
    )
    fetch.add_argument("study", metavar="STUDY", help="Study Instance UID")
    fetch.add_argument(
        "--from", dest="source", required=True, metavar="NAME", help="a forward_destinations name"
    )
    fetch.add_argument(
        "--move-to",
        metavar="AE",
        help="from a dimse destination by C-MOVE to this AE title (which it must know): this "
        "archive's listener (its ae_title), or with --receive-on a storage SCP of the command",
    )
    fetch.add_argument(
        "--receive-on",
        metavar="[HOST:]PORT",
        help="with --move-to: receive the C-MOVE here, as that AE title on this port (on "
        "host when no HOST), for the duration of the move",
    )
    fetch.set_defaults(run=runs(command_retrieve))
