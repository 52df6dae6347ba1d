"""De-identified export of studies to a folder (`wsiarchive export`) and the administrator's
look-up of the pseudonym map (`wsiarchive pseudonyms`): PS3.15 Annex E, docs/conformance.md."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storage.access import Principal, local_admin
from storage.audit import AuditRecord, Operation
from storage.deid import Column, Deidentifier, Options, Unsupported, left_out, read_header
from storage.deid import write_deidentified as write_file
from storage.errors import ArchiveError
from storage.records import InstanceFile, StoredRecord

if TYPE_CHECKING:
    from storage import Archive

Opener = Callable[[argparse.Namespace], "Archive"]
DEFAULT_PROJECT = "default"
# The flag of each option of the Basic Profile (PS3.15 E.3): --retain-uids for RETAIN_UIDS ...
OPTION_HELP = {
    Column.RETAIN_SAFE_PRIVATE: "Retain Safe Private Option (E.3.10)",
    Column.RETAIN_UIDS: "Retain UIDs Option (E.3.9)",
    Column.RETAIN_DEVICE_IDENTITY: "Retain Device Identity Option (E.3.8)",
    Column.RETAIN_INSTITUTION_IDENTITY: "Retain Institution Identity Option (E.3.11)",
    Column.RETAIN_PATIENT_CHARACTERISTICS: "Retain Patient Characteristics Option (E.3.7)",
    Column.RETAIN_FULL_DATES: "Retain Longitudinal Temporal Information Full Dates (E.3.6)",
    Column.RETAIN_MODIFIED_DATES: "Retain Longitudinal Temporal Information Modified Dates (E.3.6)",
    Column.CLEAN_DESCRIPTORS: "Clean Descriptors Option (E.3.5)",
    Column.CLEAN_STRUCTURED_CONTENT: "Clean Structured Content Option (E.3.4)",
    Column.CLEAN_GRAPHICS: "Clean Graphics Option (E.3.3)",
}


@dataclass
class ExportOutcome:
    """What an export wrote and what it left out (and why)."""

    written: list[Path] = field(default_factory=list)
    bytes: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, error)
    # original -> exported Study UID, of the studies of which something was exported
    studies: dict[str, str] = field(default_factory=dict)


def export_studies(
    archive: Archive,
    studies: list[str],
    folder: Path,
    project: str,
    options: Options,
    include: frozenset[str],
    who: Principal,
) -> ExportOutcome:
    """Write every instance of *studies* de-identified into *folder*/study/series/, one at a
    time (the header rewritten, the pixel data copied from the blob), and keep the map."""
    deidentifier = Deidentifier(archive.export_key(project, who=who), options)
    outcome = ExportOutcome()
    found = {study: archive.records(study, who=who) for study in studies}  # NotFound first
    for study, records in found.items():
        before = len(outcome.written)
        for record in records:
            try:
                _export(archive, record, folder, deidentifier, include, outcome)
            except (ArchiveError, OSError, ValueError) as exc:  # the others are still written
                outcome.failed.append((record.instance, str(exc)))
        if len(outcome.written) > before:
            outcome.studies[study] = deidentifier.uid(study)
        archive.record_pseudonyms(project, deidentifier.pseudonyms.drain(), who=who)
        archive.audit(
            AuditRecord(
                datetime.now(UTC).replace(tzinfo=None),
                who.subject,
                who.kind.value,
                who.source,
                Operation.EXPORT,
                study=study,
                detail=f"de-identified (PS3.15 E.1) into project {project}",
            )
        )
    return outcome


def _export(
    archive: Archive,
    record: StoredRecord,
    folder: Path,
    deidentifier: Deidentifier,
    include: frozenset[str],
    outcome: ExportOutcome,
) -> None:
    item = InstanceFile(
        record.study,
        record.series,
        record.instance,
        record.sop_class,
        record.transfer_syntax,
        record.blob_key,
    )
    with archive.local_file(item) as path:
        try:
            dataset, pixels = read_header(path)
        except Unsupported as exc:
            outcome.left_out.append((record.instance, str(exc)))
            return
        reason = left_out(dataset, include)
        if reason is not None:
            outcome.left_out.append((record.instance, reason))
            return
        deidentifier.apply(dataset)
        target = (
            folder
            / str(dataset.StudyInstanceUID)
            / str(dataset.SeriesInstanceUID)
            / f"{dataset.SOPInstanceUID}.dcm"
        )
        outcome.bytes += write_file(target, dataset, path, pixels)
        outcome.written.append(target)


def command_export(archive: Archive, args: argparse.Namespace) -> int:
    if args.to is None and args.stow is None:
        raise ValueError("export needs --to FOLDER, --stow URL, or both")
    if args.to is None:  # only sent: the files are written to a workspace and removed after
        import shutil

        workspace = archive.workspace()
        try:
            return _export_command(archive, args, workspace)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
    return _export_command(archive, args, args.to)


def _export_command(archive: Archive, args: argparse.Namespace, folder: Path) -> int:
    options = Options(**{column.value: getattr(args, column.value) for column in Column})
    include = frozenset(
        name
        for name, asked in (
            ("label", args.include_label),
            ("overview", args.include_overview),
            ("burned-in", args.include_burned_in),
        )
        if asked
    )
    try:
        outcome = export_studies(
            archive, list(args.studies), folder, args.project, options, include,
            local_admin("export"),
        )  # fmt: skip
    except ArchiveError as exc:  # a study not found (nothing written), an index unavailable
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for original, exported in outcome.studies.items():
        print(f"study {original} exported as {exported}")
    for instance, reason in outcome.left_out:
        print(f"left out {instance}: {reason}")
    if args.stow is not None:
        _send(outcome, args.stow, args.stow_token)
    for instance, error in outcome.failed:
        print(f"error: {instance} not exported: {error}", file=sys.stderr)
    where = " and ".join(str(w) for w in (args.to, args.stow) if w is not None)
    print(
        f"{len(outcome.written)} instances ({outcome.bytes} bytes) written to {where}, "
        f"{len(outcome.left_out)} left out, {len(outcome.failed)} failed; "
        f"pseudonyms kept in project {args.project}"
    )
    return 1 if outcome.failed else 0


def _send(outcome: ExportOutcome, url: str, token: str | None) -> None:
    """Send every written file to another archive by STOW-RS (wsiarchive.stow), each judged
    by the forwarder's verdict; a file's name is its SOP Instance UID."""
    from wsiarchive.stow import send

    for path in list(outcome.written):
        try:
            send(url, path, path.stem, token)
        except OSError as exc:
            outcome.written.remove(path)
            outcome.failed.append((path.stem, str(exc)))


def command_pseudonyms(archive: Archive, args: argparse.Namespace) -> int:
    found = archive.find_pseudonyms(args.value, args.project, who=local_admin("pseudonyms"))
    if args.json:
        rows = [
            {
                "project": entry.project,
                "kind": entry.kind,
                "original": entry.original,
                "pseudonym": entry.pseudonym,
            }
            for entry in found
        ]
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for entry in found:
            print(f"{entry.project}  {entry.kind:18s} {entry.original}  ->  {entry.pseudonym}")
    if not found:
        print(f"error: {args.value} is in no pseudonym map", file=sys.stderr)
        return 1
    return 0


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    settings_parser: Callable[[str], argparse.ArgumentParser],
    opener: Opener,
) -> None:
    """`wsiarchive export` and `wsiarchive pseudonyms`."""

    def run(command: Callable[[Archive, argparse.Namespace], int]) -> Callable[..., int]:
        return lambda args: command(opener(args), args)

    export = commands.add_parser(
        "export",
        parents=[settings_parser("export")],
        help="export studies de-identified (PS3.15 E.1) to a folder",
    )
    export.add_argument("studies", nargs="+", metavar="STUDY_UID")
    export.add_argument("--to", type=Path, metavar="FOLDER", help="write the files here")
    export.add_argument(
        "--stow", metavar="URL", help="send them to this DICOMweb service by STOW-RS too"
    )
    export.add_argument("--stow-token", metavar="TOKEN", help="bearer token for --stow")
    export.add_argument(
        "--project",
        default=DEFAULT_PROJECT,
        help="export project: one patient has one pseudonym in it across exports",
    )
    for column, what in OPTION_HELP.items():
        export.add_argument(f"--{column.value.replace('_', '-')}", action="store_true", help=what)
    for flag, what in (
        ("--include-label", "export slide LABEL images too"),
        ("--include-overview", "export slide OVERVIEW images too"),
        ("--include-burned-in", "export instances with BurnedInAnnotation YES too"),
    ):
        export.add_argument(flag, action="store_true", help=what)
    export.set_defaults(run=run(command_export))
    lookup = commands.add_parser(
        "pseudonyms",
        parents=[settings_parser("pseudonyms")],
        help="look up an original or a pseudonym in the export projects' maps (admin)",
    )
    lookup.add_argument("value", metavar="VALUE", help="a Patient ID, name or UID, or pseudonym")
    lookup.add_argument("--project", help="only this export project")
    lookup.add_argument("--json", action="store_true", help="the entries as JSON")
    lookup.set_defaults(run=run(command_pseudonyms))
