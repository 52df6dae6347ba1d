"""The `wsiarchive` command: serve, import, settings."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from wsiarchive import settings as settings_module

log = logging.getLogger("wsiarchive")


def _settings_parser() -> argparse.ArgumentParser:
    """Flags for every declared setting (defaults come from the resolution chain)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("settings (see docs/settings.md)")
    group.add_argument("--config", type=Path, help="TOML file of settings")
    for declaration in settings_module.declarations():
        flag = "--" + declaration.name.replace("_", "-")
        kind = settings_module._type(declaration)
        help_text = declaration.metadata["help"] + f" (default: {declaration.default!r})"
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
                type=kind,
                default=None,
                choices=declaration.metadata.get("choices"),
                help=help_text,
            )
    return parser


def _resolve(args: argparse.Namespace) -> settings_module.Settings:
    overrides = {d.name: getattr(args, d.name, None) for d in settings_module.declarations()}
    return settings_module.load(args.config, overrides=overrides)


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def command_import(args: argparse.Namespace) -> int:
    """Ingest DICOM files or folders straight into the archive."""
    from storage import ArchiveError, open_archive

    settings = _resolve(args)
    archive = open_archive(
        settings.database, settings.blobs, settings.duplicate_policy, settings.fsync
    )
    stored = failed = 0
    for path in _files(args.paths):
        if not path.exists():
            print(f"error: {path}: no such file or directory", file=sys.stderr)
            failed += 1
            continue
        try:
            result = archive.ingest_file(path)
        except ArchiveError as exc:
            print(f"error: {path}: {exc.reason}", file=sys.stderr)
            failed += 1
            continue
        stored += 1
        print(f"stored {path} as {result.instance} ({result.number_of_frames} frames)")
    print(f"{stored} stored, {failed} failed")
    return 0 if failed == 0 else 1


def command_serve(args: argparse.Namespace) -> int:
    from wsiarchive.server import serve

    serve(_resolve(args))
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
    common = _settings_parser()
    root = argparse.ArgumentParser(
        prog="wsiarchive", description="DICOM WSI archive and DICOMweb server"
    )
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", parents=[common], help="run the DICOMweb server")
    serve.set_defaults(run=command_serve)
    importer = commands.add_parser(
        "import", parents=[common], help="ingest DICOM files or folders into the archive"
    )
    importer.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    importer.set_defaults(run=command_import)
    show = commands.add_parser(
        "settings", parents=[common], help="show resolved settings, or document them"
    )
    formats = show.add_mutually_exclusive_group()
    formats.add_argument("--toml", action="store_true", help="print the default TOML file")
    formats.add_argument("--markdown", action="store_true", help="print docs/settings.md")
    show.set_defaults(run=command_settings)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ValueError as exc:  # settings errors name their source
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
