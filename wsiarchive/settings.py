"""Every setting, declared once (name, type, default, help); read from defaults < TOML file <
WSIARCHIVE_* environment variables < command-line flags, and documented from the same place."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "WSIARCHIVE_"


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:  # noqa: A002
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Settings:
    """The archive's configuration."""

    host: str = setting("127.0.0.1", "Address the HTTP server listens on.")
    port: int = setting(8080, "TCP port of the HTTP server (DICOMweb under /dicomweb).")
    data_dir: str = setting(
        "data",
        "Directory of the archive: the SQLite index and the blob store live here unless "
        "database_url / blob_dir say otherwise.",
    )
    database_url: str = setting(
        "",
        "SQLAlchemy URL of the study index; empty means SQLite at <data_dir>/index.sqlite3. "
        "PostgreSQL: postgresql+psycopg://user:password@host/dbname.",
    )
    blob_dir: str = setting(
        "", "Directory of the filesystem blob store; empty means <data_dir>/blobs."
    )
    duplicate_policy: str = setting(
        "reject",
        "What storing an instance whose SOP Instance UID is already stored does: reject it "
        "(STOW Failure Reason 0111) or overwrite the stored one.",
        ("reject", "overwrite"),
    )
    base_url: str = setting(
        "",
        "Public URL of the DICOMweb root (e.g. https://pacs.example.org/dicomweb), used in "
        "RetrieveURL and BulkDataURI; empty means taken from each request's Host.",
    )
    max_request_bytes: int = setting(
        64 << 30, "Largest STOW-RS request body accepted, in bytes; a larger one gets 413."
    )
    max_search_results: int = setting(
        1000,
        "Most results one QIDO-RS response returns; a larger or absent limit is cut to this, "
        "with a Warning header telling how many more can be requested.",
    )
    cache_max_age: int = setting(
        86400,
        "Seconds a client may reuse a frame, rendered image or bulk data value without asking "
        "again (Cache-Control: private, max-age); after that its ETag revalidates it with a "
        "304. 0 makes clients revalidate every time.",
    )
    transcode_cache_mb: int = setting(
        256,
        "Megabytes of transcoded frames each server process keeps, so that a viewer panning "
        "over a slide stored in a form it cannot decode pays the transcoding once per tile.",
    )
    thumbnail_size: int = setting(
        256,
        "Largest side in pixels of a thumbnail when the request gives no viewport.",
    )
    max_rendered_pixels: int = setting(
        50_000_000,
        "Largest rendered image (width x height) the server produces; a request for more "
        "(e.g. a whole slide level without a viewport) gets 413 Payload Too Large.",
    )
    fsync: bool = setting(
        True,
        "fsync every blob, its directory and every index commit before reporting success. "
        "Turning it off risks losing acknowledged instances on power failure.",
    )
    slide_metadata: str = setting(
        "",
        "JSON file of default slide metadata (docs/converter.md) for import and watch; "
        "flags and a slide's own .json sidecar override it.",
    )
    convert_workers: int = setting(0, "Threads converting a slide; 0 means one per CPU core.")
    max_instance_bytes: int = setting(
        0,
        "A converted pyramid level with more pixel data than this many bytes is split into a "
        "concatenation of instances; 0 never splits (Extended Offset Tables address any size; "
        "dciodvfy's WG26SP2025 profile rejects concatenated TILED_FULL instances).",
    )
    watch_settle_seconds: float = setting(
        10.0, "A dropped file counts as completely written once unchanged this long."
    )
    web: bool = setting(True, "Serve DICOMweb (`--web-only` turns DIMSE off).")
    dimse: bool = setting(
        True, "Serve DIMSE: the DICOM listener (`--dimse-only` turns DICOMweb off)."
    )
    dimse_port: int = setting(11112, "TCP port of the DICOM listener.")
    ae_title: str = setting("WSIARCHIVE", "Application Entity title of the DICOM listener.")
    dimse_allowed_aets: str = setting(
        "", "Comma-separated calling AE titles allowed to associate; empty allows any."
    )
    dimse_allowed_hosts: str = setting(
        "", "Comma-separated peer IP addresses allowed to associate; empty allows any."
    )
    dimse_max_associations: int = setting(20, "Most DICOM associations served at once.")
    dimse_destinations: str = setting(
        "",
        "C-MOVE destinations as AE=host:port, comma-separated (e.g. "
        "PACS=10.0.0.5:104,VIEWER=10.0.0.9:11112).",
    )
    tls_certificate: str = setting(
        "", "PEM certificate (chain) of the DICOM listener; set to use TLS (PS3.15 Annex B)."
    )
    tls_key: str = setting("", "PEM private key of tls_certificate.")
    tls_ca: str = setting(
        "", "PEM CA certificates; when set, DICOM peers must present a certificate they sign."
    )
    workers: int = setting(0, "HTTP worker processes; 0 means one per CPU core.")
    threads: int = setting(
        4,
        "Threads per HTTP worker process. Measured with 32 clients reading random frames on 2 "
        "cores: 4 gives the best p99 latency (more threads only contend for the GIL).",
    )
    log_level: str = setting("info", "Logging level.", ("debug", "info", "warning", "error"))

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / 'index.sqlite3').resolve()}"

    @property
    def blobs(self) -> Path:
        return Path(self.blob_dir) if self.blob_dir else Path(self.data_dir) / "blobs"


def declarations() -> list:  # type: ignore[type-arg]
    """The dataclass fields: name, type, default and metadata (help, choices)."""
    return list(fields(Settings))


def _type(declaration) -> type:  # type: ignore[no-untyped-def]
    return (
        {"str": str, "int": int, "bool": bool, "float": float}[declaration.type]
        if isinstance(declaration.type, str)
        else declaration.type
    )


def convert(declaration, value: Any, source: str) -> Any:  # type: ignore[no-untyped-def]
    """Coerce *value* to the declared type; raise ValueError naming *source*."""
    kind = _type(declaration)
    try:
        if kind is bool:
            if isinstance(value, bool):
                result: Any = value
            elif str(value).strip().lower() in ("1", "true", "yes", "on"):
                result = True
            elif str(value).strip().lower() in ("0", "false", "no", "off"):
                result = False
            else:
                raise ValueError(value)
        elif kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            result = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            result = float(value)
        else:
            result = str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{source}: {declaration.name} must be {kind.__name__}, got {value!r}"
        ) from exc
    choices = declaration.metadata.get("choices")
    if choices and result not in choices:
        raise ValueError(f"{source}: {declaration.name} must be one of {', '.join(choices)}")
    return result


def load(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: defaults < TOML file < WSIARCHIVE_* variables < *overrides* (flags)."""
    environ = os.environ if environ is None else environ
    by_name = {d.name: d for d in declarations()}
    values: dict[str, Any] = {}
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        with open(config_file, "rb") as fp:
            document = tomllib.load(fp)
        for name, value in document.items():
            if name not in by_name:
                raise ValueError(f"{config_file}: unknown setting {name!r}")
            values[name] = convert(by_name[name], value, str(config_file))
    for name, declaration in by_name.items():
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            values[name] = convert(declaration, environ[variable], variable)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = convert(by_name[name], value, f"--{name.replace('_', '-')}")
    return replace(Settings(), **values)


def to_environ(settings: Settings) -> dict[str, str]:
    """The settings as WSIARCHIVE_* variables (how worker processes receive them)."""
    out = {}
    for declaration in declarations():
        value = getattr(settings, declaration.name)
        out[ENV_PREFIX + declaration.name.upper()] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_document() -> str:
    """The default configuration file, every setting with its help as a comment."""
    lines = [
        "# wsiarchive configuration. Every setting is shown with its default value.",
        "# Precedence: built-in defaults < this file (--config or WSIARCHIVE_CONFIG)",
        "#             < WSIARCHIVE_<NAME> environment variables < command-line flags.",
        "# Generated by `wsiarchive settings --toml`; docs/settings.md comes from the same source.",
        "",
    ]
    for declaration in declarations():
        lines.append(f"# {declaration.metadata['help']}")
        if declaration.metadata.get("choices"):
            lines.append(f"# One of: {', '.join(declaration.metadata['choices'])}.")
        lines.append(f"{declaration.name} = {_toml_value(declaration.default)}")
        lines.append("")
    return "\n".join(lines)


def markdown_document() -> str:
    """docs/settings.md: a table of every setting."""
    lines = [
        "# Settings",
        "",
        "Generated by `wsiarchive settings --markdown` from the declarations in "
        "`wsiarchive/settings.py`. Each setting can be given in a TOML file (`--config FILE` or "
        "`WSIARCHIVE_CONFIG`), as an environment variable and as a command-line flag; later "
        "sources win: defaults < file < environment < flags.",
        "",
        "| name | flag | environment | type | default | help |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d in declarations():
        help_text = d.metadata["help"]
        if d.metadata.get("choices"):
            help_text += f" One of: {', '.join(d.metadata['choices'])}."
        flag = f"--{d.name.replace('_', '-')}"
        if _type(d) is bool:
            flag += f" / --no-{d.name.replace('_', '-')}"
        lines.append(
            f"| `{d.name}` | `{flag}` | `{ENV_PREFIX}{d.name.upper()}` | {_type(d).__name__} | "
            f"`{_toml_value(d.default)}` | {help_text} |"
        )
    return "\n".join(lines) + "\n"
