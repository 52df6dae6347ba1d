"""`wsiarchive update`: correct patient, study and specimen attributes of a stored study (or
of one series) after ingest, as a LIS completes what the scanner could not know."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage.access import local_admin
from storage.dicom.corrections import CORRECTABLE, from_assignments, from_json
from storage.errors import ArchiveError, InvalidRequest

if TYPE_CHECKING:
    from storage import Archive

Opener = Callable[[argparse.Namespace], "Archive"]
REFUSED, FAILED = 2, 1  # exit statuses: the correction is not valid; it could not be done


def command_update(archive: Archive, args: argparse.Namespace) -> int:
    try:
        try:
            if args.json is not None:
                correction = from_json(json.loads(Path(args.json).read_text(encoding="utf-8")))
            else:
                correction = from_assignments(args.set)
        except (json.JSONDecodeError, OSError) as exc:  # the --json file, before anything
            raise InvalidRequest(str(exc)) from exc
        series = (args.series,) if args.series else None
        count = archive.update(args.study, series, correction, who=local_admin("update"))
    except InvalidRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    except (ArchiveError, OSError) as exc:  # a valid correction that could not be written
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    finally:
        archive.close()
    print(f"corrected {', '.join(correction.keywords)} of {count} instances")
    return 0


def add_commands(
    commands: Any, settings_parser: Callable[[str], argparse.ArgumentParser], opener: Opener
) -> None:
    """The update sub-command."""
    parser = commands.add_parser(
        "update",
        parents=[settings_parser("update")],
        help="correct patient, study or specimen attributes of a stored study or series",
    )
    parser.add_argument("study", metavar="STUDY_UID")
    parser.add_argument("--series", metavar="UID", help="only this series (specimen attributes)")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--set",
        action="append",
        metavar="KEYWORD=VALUE",
        help="an attribute to set, of: " + ", ".join(CORRECTABLE),
    )
    given.add_argument("--json", metavar="FILE", help="a DICOM JSON data set of the attributes")
    parser.set_defaults(run=lambda args: command_update(opener(args), args))
