"""The `wsiarchive` command: serve, import, convert, watch, worker, submit, jobs, verify,
token, share, audit, tiers, export, pseudonyms, update, forward, send, retrieve, migrate,
settings."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from storage.access import local_admin
from wsiarchive import admin, correcting, export, tiering
from wsiarchive import settings as settings_module

if TYPE_CHECKING:
    from converter import ConversionOptions, SlideInfo
    from storage import Archive

log = logging.getLogger("wsiarchive")


def _settings_parser(command: str) -> argparse.ArgumentParser:
    """Flags for the settings *command* uses (defaults come from the resolution chain)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("settings (see docs/settings.md)")
    group.add_argument("--config", type=Path, help="TOML file of settings")
    for declaration in settings_module.declarations(command):
        flag = "--" + declaration.name.replace("_", "-")
        kind = settings_module.kind_of(declaration)
        default = declaration.default
        shown = str(default) if isinstance(default, StrEnum) else repr(default)
        help_text = declaration.metadata["help"] + f" (default: {shown})"
        if kind is bool:
            group.add_argument(
                flag,
                dest=declaration.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag,
                dest=declaration.name,
                type=str if issubclass(kind, StrEnum) else kind,
                default=None,
                choices=declaration.metadata.get("choices"),
                help=help_text,
            )
    return parser


def _resolve(args: argparse.Namespace) -> settings_module.Settings:
    """Settings from every source; flags only for what the command offers."""
    overrides = {d.name: getattr(args, d.name, None) for d in settings_module.declarations()}
    return settings_module.load(args.config, overrides=overrides)


def _slide_parser() -> argparse.ArgumentParser:
    """Slide metadata flags (docs/converter.md); they override --metadata and slide_metadata."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("slide metadata (see docs/converter.md)")
    group.add_argument("--metadata", type=Path, help="JSON file of slide metadata")
    for flag, name, help_text in SLIDE_FLAGS:
        if name == "stains":
            group.add_argument(flag, dest=name, action="append", help=help_text)
        elif name == "mpp":
            group.add_argument(flag, dest=name, type=float, help=help_text)
        else:
            group.add_argument(flag, dest=name, help=help_text)
    return parser


SLIDE_FLAGS = [
    ("--patient-id", "patient_id", "Patient ID"),
    ("--patient-name", "patient_name", "Patient's Name, e.g. Doe^Jane"),
    ("--accession", "accession_number", "Accession Number (slides of one case share a study)"),
    ("--study-uid", "study_uid", "Study Instance UID to put the slide into"),
    ("--container-id", "container_identifier", "the slide identifier (Container Identifier)"),
    ("--specimen-id", "specimen_identifier", "Specimen Identifier (default: the slide id)"),
    ("--anatomy", "anatomy", "anatomy as SCHEME:CODE:MEANING, e.g. SCT:39607008:Lung structure"),
    ("--stain", "stains", "a stain, e.g. 'hematoxylin stain' (repeat for several)"),
    ("--fixative", "fixative", "fixative, e.g. Formalin"),
    ("--embedding", "embedding", "embedding medium, e.g. 'Paraffin wax'"),
    ("--collection", "collection", "collection procedure, e.g. Biopsy"),
    ("--mpp", "mpp", "base level micrometres per pixel, when the file does not say"),
]


def _slide_info(args: argparse.Namespace, settings: settings_module.Settings | None) -> SlideInfo:
    from converter import SlideInfo

    info = SlideInfo()
    if settings is not None and settings.slide_metadata:
        info = SlideInfo.from_json(Path(settings.slide_metadata))
    if args.metadata:
        info = info.updated(**vars(SlideInfo.from_json(args.metadata)))
    return info.updated(**{name: getattr(args, name, None) for _, name, _ in SLIDE_FLAGS})


def _conversion_options(settings: settings_module.Settings) -> ConversionOptions:
    from wsiarchive.options import conversion_options

    return conversion_options(settings)


def _open_archive(settings: settings_module.Settings) -> Archive:
    from storage import open_archive

    return open_archive(settings)


def _report(text: str) -> None:
    print(text, file=sys.stderr if text.startswith("error:") else sys.stdout)


class _Refused(Exception):
    """The command cannot start: its slide metadata is wrong (exit status 2)."""


def _conversion(args: argparse.Namespace) -> tuple[settings_module.Settings, SlideInfo]:
    """The settings and slide metadata of a command that converts."""
    from converter import ConversionError

    settings = _resolve(args)
    try:
        return settings, _slide_info(args, settings)
    except ConversionError as exc:
        raise _Refused(str(exc)) from exc


def command_import(args: argparse.Namespace) -> int:
    """Ingest DICOM files or folders, and convert vendor slides, straight into the archive."""
    from wsiarchive.importer import import_paths

    settings, info = _conversion(args)
    outcome = import_paths(
        _open_archive(settings),
        list(args.paths),
        info,
        _conversion_options(settings),
        local_admin("import"),
        _report,
    )
    print(outcome.summary())
    return 0 if not outcome.failed else 1


def command_convert(args: argparse.Namespace) -> int:
    """Convert vendor slides into DICOM Part-10 files in OUTDIR (one folder per slide)."""
    from dataclasses import replace

    from converter import ConversionError, convert

    settings, info = _conversion(args)
    warn = lambda text: print(f"warning: {text}", file=sys.stderr)  # noqa: E731
    options = replace(_conversion_options(settings), warn=warn)
    failed = 0
    for path in args.inputs:
        try:
            files = convert(path, args.output / path.stem, info, options)
        except ConversionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"converted {path} into {len(files)} instances in {args.output / path.stem}")
    return 0 if not failed else 1


def command_watch(args: argparse.Namespace) -> int:
    """Import every slide dropped into DIR, moving it to done/ or failed/."""
    from wsiarchive.watch import DropFolder

    settings, info = _conversion(args)
    settings_module.configure_logging(settings)
    from wsiarchive.jobs import open_queue

    archive = _open_archive(settings)
    queue = open_queue(archive, settings)
    folder = DropFolder(
        args.directory,
        archive,
        info,
        _conversion_options(settings),
        settings.watch_settle_seconds,
        queue,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            folder.run(args.interval, once=args.once)
    finally:
        if queue is not None:
            queue.close()
    return 0


def command_verify(args: argparse.Namespace) -> int:
    """Compare the index with the blob store; exit status 1 while problems remain."""
    import json
    from dataclasses import asdict

    from storage.verify import Bounds

    settings = _resolve(args)
    archive = _open_archive(settings)
    bounds = Bounds(settings.verify_orphan_seconds, settings.verify_claim_seconds)
    report = archive.verify(bounds, repair=args.repair, who=local_admin("verify"))
    archive.close()
    if args.json:
        document = {
            "instances": report.instances,
            "blobs": report.blobs,
            "findings": [asdict(f) for f in report.findings],
            "remaining": len(report.remaining),
        }
        print(json.dumps(document, indent=2))
    else:
        for finding in report.findings:
            state = "repaired" if finding.repaired else "found"
            print(f"{finding.problem} {state}: {finding.key} ({finding.detail})")
        print(
            f"{report.instances} instances, {report.blobs} blobs checked: "
            f"{len(report.remaining)} problems remain"
        )
    return 1 if report.remaining else 0


def command_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from wsiarchive.run import run_directory

    settings = _resolve(args)
    if args.web_only:
        settings = replace(settings, dimse=False)
    if args.dimse_only:
        settings = replace(settings, web=False)
    # Before the server's modules load prometheus-client: it reads its variable then.
    with run_directory(settings.metrics):
        from wsiarchive.server import serve

        serve(settings)
    return 0


SCHEMA_NOT_CURRENT = 3  # exit status of a command refused for the index schema's revision


def command_migrate(args: argparse.Namespace) -> int:
    """Upgrade the index schema to this build's revision (safe while servers run and when
    several processes migrate at once); --status only reports (exit 3 when behind)."""
    from storage import index_revisions, migrate_index

    settings = _resolve(args)
    if args.status:
        found = index_revisions(settings)
        state = "current" if found.is_current else "behind: run `wsiarchive migrate`"
        print(f"index schema at {found.current or 'none (empty)'}, head {found.head}: {state}")
        return 0 if found.is_current else SCHEMA_NOT_CURRENT
    before = migrate_index(settings)
    if before.is_current:
        print(f"index schema at {before.head}: current, nothing to do")
    else:
        print(f"index schema upgraded from {before.current or 'none (empty)'} to {before.head}")
    return 0


def command_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(settings_module.markdown_document())
    elif args.toml:
        sys.stdout.write(settings_module.toml_document())
    else:
        resolved = _resolve(args)
        for declaration in settings_module.declarations():
            print(f"{declaration.name} = {getattr(resolved, declaration.name)!r}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="wsiarchive", description="DICOM WSI archive and DICOMweb server"
    )
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        parents=[_settings_parser("serve")],
        help="run the DICOMweb server and the DICOM listener",
    )
    only = serve.add_mutually_exclusive_group()
    only.add_argument("--web-only", action="store_true", help="no DICOM listener")
    only.add_argument("--dimse-only", action="store_true", help="no DICOMweb")
    serve.set_defaults(run=command_serve)
    slide = _slide_parser()
    importer = commands.add_parser(
        "import",
        parents=[_settings_parser("import"), slide],
        help="ingest DICOM files or folders, and convert vendor slides, into the archive",
    )
    importer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    importer.set_defaults(run=command_import)
    converter = commands.add_parser(
        "convert",
        parents=[_settings_parser("convert"), slide],
        help="convert vendor slides to DICOM files",
    )
    converter.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    converter.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    converter.set_defaults(run=command_convert)
    watcher = commands.add_parser(
        "watch",
        parents=[_settings_parser("watch"), slide],
        help="import slides dropped into a folder",
    )
    watcher.add_argument("directory", type=Path, metavar="DIR")
    watcher.add_argument("--interval", type=float, default=2.0, help="seconds between scans")
    watcher.add_argument("--once", action="store_true", help="stop when the folder is empty")
    watcher.set_defaults(run=command_watch)
    admin.add_commands(commands, _settings_parser, lambda args: _open_archive(_resolve(args)))
    from wsiarchive.jobs import commands as job_commands

    job_commands.add_commands(commands, _settings_parser, slide, _resolve, _slide_info)
    tiering.add_commands(commands, _settings_parser, lambda args: _open_archive(_resolve(args)))
    export.add_commands(commands, _settings_parser, lambda args: _open_archive(_resolve(args)))
    correcting.add_commands(commands, _settings_parser, lambda args: _open_archive(_resolve(args)))
    from wsiarchive.forwarding import commands as forward_commands

    forward_commands.add_commands(commands, _settings_parser, _resolve, _open_archive)
    verifier = commands.add_parser(
        "verify",
        parents=[_settings_parser("verify")],
        help="compare the index with the blob store (docs/operations.md)",
    )
    verifier.add_argument("--repair", action="store_true", help="repair what is safe")
    verifier.add_argument("--json", action="store_true", help="the report as JSON")
    verifier.set_defaults(run=command_verify)
    migrator = commands.add_parser(
        "migrate",
        parents=[_settings_parser("migrate")],
        help="upgrade the index schema (for clusters: docs/operations.md)",
    )
    migrator.add_argument(
        "--status", action="store_true", help="only report the revision (exit 3 when behind)"
    )
    migrator.set_defaults(run=command_migrate)
    show = commands.add_parser(
        "settings",
        parents=[_settings_parser("settings")],
        help="show resolved settings, or document them",
    )
    formats = show.add_mutually_exclusive_group()
    formats.add_argument("--toml", action="store_true", help="print the default TOML file")
    formats.add_argument("--markdown", action="store_true", help="print docs/settings.md")
    show.set_defaults(run=command_settings)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    from storage.errors import SchemaNotCurrent

    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, _Refused) as exc:  # settings errors name their source
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SchemaNotCurrent as exc:
        print(f"error: {exc}", file=sys.stderr)
        return SCHEMA_NOT_CURRENT


if __name__ == "__main__":
    sys.exit(main())
