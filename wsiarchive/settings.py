"""Every setting, declared once (name, type, default, help); read from defaults < TOML file <
WSIARCHIVE_* environment variables < command-line flags, and documented from the same place."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, get_type_hints

from storage.config import DatabasePool, DuplicatePolicy
from wsiarchive import run
from wsiarchive.audit.syslog import Transport

ENV_PREFIX = "WSIARCHIVE_"


class TLSVersion(StrEnum):
    """The lowest TLS version the HTTPS server accepts (granian's names)."""

    TLS12 = "tls1.2"
    TLS13 = "tls1.3"


class HTTPVersion(StrEnum):
    """The HTTP versions the HTTP server speaks (granian's HTTP modes)."""

    AUTO = "auto"
    HTTP1 = "1"
    HTTP2 = "2"


class Group(StrEnum):
    """Who reads a setting; each command's --help lists the groups it uses (COMMANDS)."""

    COMMON = "common"
    SERVER = "server"  # the listening address of every server
    WEB = "web"
    DIMSE = "dimse"
    ARCHIVE = "archive"  # where the archive is and how it stores
    READING = "reading"  # the read path of a server: transcoding and rendering
    CONVERSION = "conversion"
    WATCH = "watch"
    IDENTITY = "identity"  # who may use the servers: tokens, OpenID Connect, anonymous access
    AUDIT = "audit"  # the audit trail's export as DICOM Audit Messages over syslog
    VERIFY = "verify"
    MONITORING = "monitoring"  # the probes and metrics of a server (docs/operations.md)
    JOBS = "jobs"  # the conversion job queue: submitting, workers, retries
    TIERS = "tiers"  # the rules that move studies between storage tiers, and their timing
    WEBHOOKS = "webhooks"  # the change feed POSTed to URLs as it grows
    DEMO = "demo"  # the demo study serve loads into an empty archive
    FORWARDING = "forwarding"  # new instances sent on to other archives (docs/operations.md)


class AnonymousAccess(StrEnum):
    """Who may use the servers without an identity."""

    OFF = "off"  # nobody: every request needs a token
    LOOPBACK = "loopback"  # clients on this machine only
    ANYWHERE = "anywhere"  # every client (a loud warning at start-up)


class MetricsAccess(StrEnum):
    """Who may read /metrics."""

    LOOPBACK = "loopback"  # scrapers on this machine only
    ANYWHERE = "anywhere"  # every client
    TOKEN = "token"  # a bearer token with the metrics scope


class JobQueueKind(StrEnum):
    """Where slides submitted for conversion wait for a worker (docs/operations.md)."""

    NONE = "none"  # no queue: `watch` converts in its own process, no /api/jobs
    INPROCESS = "inprocess"  # a thread pool in the submitting process (an archive on SQLite)
    POSTGRESQL = "postgresql"  # procrastinate's tables in the PostgreSQL index; `worker`s


# The settings each command uses.
COMMANDS: dict[str, frozenset[Group]] = {
    "serve": frozenset(Group) - {Group.WATCH},
    "token": frozenset({Group.COMMON, Group.ARCHIVE}),
    "share": frozenset({Group.COMMON, Group.ARCHIVE}),
    "audit": frozenset({Group.COMMON, Group.ARCHIVE, Group.AUDIT}),
    "import": frozenset({Group.COMMON, Group.ARCHIVE, Group.CONVERSION}),
    "convert": frozenset({Group.COMMON, Group.CONVERSION}),
    "watch": frozenset({Group.COMMON, Group.ARCHIVE, Group.CONVERSION, Group.WATCH, Group.JOBS}),
    "worker": frozenset({Group.COMMON, Group.ARCHIVE, Group.CONVERSION, Group.JOBS}),
    "submit": frozenset({Group.COMMON, Group.ARCHIVE, Group.CONVERSION, Group.JOBS}),
    "jobs": frozenset({Group.COMMON, Group.ARCHIVE, Group.JOBS}),
    "verify": frozenset({Group.COMMON, Group.ARCHIVE, Group.VERIFY}),
    "migrate": frozenset({Group.COMMON, Group.ARCHIVE}),
    "update": frozenset({Group.COMMON, Group.ARCHIVE}),
    "tiers": frozenset({Group.COMMON, Group.ARCHIVE, Group.TIERS}),
    "export": frozenset({Group.COMMON, Group.ARCHIVE}),
    "pseudonyms": frozenset({Group.COMMON, Group.ARCHIVE}),
    "forward": frozenset({Group.COMMON, Group.ARCHIVE, Group.FORWARDING}),
    "send": frozenset({Group.COMMON, Group.ARCHIVE, Group.FORWARDING}),
    "retrieve": frozenset({Group.COMMON, Group.ARCHIVE, Group.FORWARDING}),
    "settings": frozenset(Group),
}


def setting(
    group: Group,
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,  # noqa: A002
    table: bool = False,
) -> Any:
    """Declare a setting: who reads it, its default, its help text and allowed values.

    A *table* setting is an array of TOML tables in the file; its value is their JSON text
    (also how the environment and flags give it)."""
    if isinstance(default, StrEnum) and choices is None:
        choices = tuple(type(default))
    metadata = {"group": group, "help": help, "choices": choices, "table": table}
    return field(default=default, metadata=metadata)


def _table(value: Any, one: bool = False) -> str:
    """A table setting's value as JSON text: an array of tables, or JSON text of one; with
    *one*, a single table (a TOML table, a JSON object)."""
    tables = json.loads(value) if isinstance(value, str) else value
    if one:
        if not isinstance(tables, dict):
            raise ValueError(value)
    elif not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(value)
    return json.dumps(tables, separators=(",", ":"))


@dataclass(frozen=True)
class Settings:
    """The archive's configuration."""

    host: str = setting(
        Group.SERVER, "127.0.0.1", "Address the HTTP server and the DICOM listener listen on."
    )
    port: int = setting(Group.WEB, 8080, "TCP port of the HTTP server (DICOMweb under /dicomweb).")
    data_dir: str = setting(
        Group.ARCHIVE,
        "data",
        "Directory of the archive: the SQLite index and the blob store live here unless "
        "database_url / blob_dir say otherwise.",
    )
    database_url: str = setting(
        Group.ARCHIVE,
        "",
        "SQLAlchemy URL of the study index; empty means SQLite at <data_dir>/index.sqlite3. "
        "PostgreSQL: postgresql+psycopg://user:password@host/dbname.",
    )
    database_pool_size: int = setting(
        Group.ARCHIVE,
        DatabasePool.size,
        "PostgreSQL: connections each process keeps open (every HTTP worker, the DICOM "
        "listener and each command is one process; docs/operations.md).",
    )
    database_pool_overflow: int = setting(
        Group.ARCHIVE,
        DatabasePool.overflow,
        "PostgreSQL: connections a process may open beyond database_pool_size under a burst.",
    )
    database_pool_timeout: float = setting(
        Group.ARCHIVE,
        DatabasePool.timeout,
        "PostgreSQL: seconds a request waits for a free connection before 503.",
    )
    database_pool_recycle: int = setting(
        Group.ARCHIVE,
        DatabasePool.recycle,
        "PostgreSQL: seconds after which a pooled connection is replaced (-1: never); below "
        "the idle timeout of any firewall or proxy in between.",
    )
    database_prepared_statements: bool = setting(
        Group.ARCHIVE,
        DatabasePool.prepared_statements,
        "PostgreSQL: let psycopg prepare repeated statements; false behind a PgBouncer in "
        "transaction mode that does not track them (before 1.21, max_prepared_statements=0).",
    )
    migrate_on_start: bool = setting(
        Group.ARCHIVE,
        True,
        "Upgrade the index schema whenever a command opens it (one machine). False for a "
        "cluster: run `wsiarchive migrate` once per release, and servers refuse to start on "
        "a schema that is not current.",
    )
    blob_dir: str = setting(
        Group.ARCHIVE, "", "Directory of the filesystem blob store; empty means <data_dir>/blobs."
    )
    # -- the object-storage blob store (docs/object-storage.md) --------------------------------
    blob_url: str = setting(
        Group.ARCHIVE,
        "",
        "Object storage for the blobs: s3://bucket/prefix, az://container/prefix (or "
        "azure://) or gs://bucket/prefix; credentials come from the usual AWS_*, "
        "AZURE_STORAGE_* and GOOGLE_* variables or the machine's managed identity. Empty keeps "
        "the blobs as files under blob_dir, which also holds the staging area either way.",
    )
    blob_options: str = setting(
        Group.ARCHIVE,
        "{}",
        "obstore options of blob_url as a TOML table `[blob_options]` (JSON text in the "
        "environment or a flag): the store's keys (endpoint, region, access_key_id, "
        "account_name, use_emulator, ...), the HTTP client's (allow_http, timeout, ...) and "
        "retry_config (default: 3 retries within 15 s).",
        table=True,
    )
    blob_cache_mb: int = setting(
        Group.ARCHIVE,
        256,
        "Megabytes of ranged reads of object-storage blobs (frames) each server process keeps "
        "in memory; 0 turns the cache off. Blobs never change, so nothing in it goes stale.",
    )
    blob_coalesce_kb: int = setting(
        Group.ARCHIVE,
        64,
        "Ranges of one object-storage blob read together (a frame's fragments, neighbouring "
        "frames) that lie less than this many KiB apart are fetched by one ranged GET.",
    )
    duplicate_policy: DuplicatePolicy = setting(
        Group.ARCHIVE,
        DuplicatePolicy.REJECT,
        "What storing an instance whose SOP Instance UID is already stored does: reject it "
        "(STOW Failure Reason 0111) or overwrite the stored one.",
    )
    base_url: str = setting(
        Group.WEB,
        "",
        "Public URL of the DICOMweb root (e.g. https://pacs.example.org/dicomweb), used in "
        "RetrieveURL and BulkDataURI; empty means taken from each request's Host.",
    )
    max_request_bytes: int = setting(
        Group.WEB,
        64 << 30,
        "Largest STOW-RS request body accepted, in bytes; a larger one gets 413.",
    )
    max_search_results: int = setting(
        Group.WEB,
        1000,
        "Most results one QIDO-RS response returns; a larger or absent limit is cut to this, "
        "with a Warning header telling how many more can be requested.",
    )
    cache_max_age: int = setting(
        Group.WEB,
        86400,
        "Seconds a client may reuse a frame, rendered image or bulk data value without asking "
        "again (Cache-Control: private, max-age); after that its ETag revalidates it with a "
        "304. 0 makes clients revalidate every time.",
    )
    allowed_hosts: str = setting(
        Group.WEB,
        "",
        "Comma-separated Host header values (host or host:port) trusted to name the server in "
        "RetrieveURL and BulkDataURI when base_url is empty; empty trusts the listening "
        "host:port, localhost, 127.0.0.1 and [::1] with the port. Any other Host gets the "
        "listening host:port in URLs.",
    )
    https_certificate: str = setting(
        Group.WEB,
        "",
        "PEM certificate (chain) of the HTTP server; set it and https_key to serve HTTPS "
        "(HTTP/2 is offered by ALPN as well as HTTP/1.1).",
    )
    https_key: str = setting(Group.WEB, "", "PEM private key of https_certificate.")
    https_key_password: str = setting(
        Group.WEB, "", "Password of an encrypted https_key; empty when it is not encrypted."
    )
    https_min_tls: TLSVersion = setting(
        Group.WEB, TLSVersion.TLS12, "Lowest TLS version the HTTPS server accepts."
    )
    http_version: HTTPVersion = setting(
        Group.WEB,
        HTTPVersion.AUTO,
        "HTTP versions served: auto (HTTP/1.1 and HTTP/2: by ALPN over TLS, by prior knowledge "
        "in clear), 1 (HTTP/1.1 only) or 2 (HTTP/2 only).",
    )
    behind_tls_proxy: bool = setting(
        Group.WEB,
        False,
        "A TLS-terminating proxy fronts the server: responses carry Strict-Transport-Security "
        "although the server itself speaks plain HTTP.",
    )
    cors_origins: str = setting(
        Group.WEB,
        "",
        "Comma-separated origins (scheme://host[:port]) whose browser scripts may read "
        "responses (CORS); * allows any origin; empty turns CORS off.",
    )
    cors_credentials: bool = setting(
        Group.WEB,
        False,
        "Let the cors_origins send credentials (cookies, HTTP authentication): "
        "Access-Control-Allow-Credentials. Not allowed with cors_origins = *.",
    )
    viewer: bool = setting(
        Group.WEB,
        True,
        "Serve the built-in browser viewer: the study list at /, the study view at "
        "/study/<uid> (slides next to the patient's radiology), its files under /viewer/.",
    )
    viewer_dir: str = setting(
        Group.WEB,
        "",
        "Folder of the viewer's build (what `npm run --prefix web build` writes, "
        "scripts/setup.sh runs it); empty means web/dist of this checkout. Without a build, "
        "/ answers 503 saying how to make one.",
    )
    header_timeout: float = setting(
        Group.WEB,
        30.0,
        "Seconds a client may take to send the request line and headers.",
    )
    max_uploads: int = setting(
        Group.WEB,
        0,
        "Most STOW-RS requests one worker process receives at once, for every client "
        "together; more get 503 with Retry-After. Below threads, searches and retrievals "
        "always keep a thread even while uploads stall (granian has no body read timeout: "
        "a client that stops sending holds its thread until it disconnects). 0 means one "
        "fewer than threads; a negative value means no limit.",
    )
    max_in_flight: int = setting(
        Group.WEB,
        0,
        "Most requests one client (the authenticated subject, else the remote address) has in "
        "progress in one worker process; more get 429 with Retry-After. 0 means no limit.",
    )
    rate_limit: float = setting(
        Group.WEB,
        0.0,
        "Requests per second one client (the authenticated subject, else the remote address) "
        "may make to one worker process, on average (a token bucket); more get 429 with "
        "Retry-After. 0 means no limit.",
    )
    rate_burst: int = setting(
        Group.WEB,
        0,
        "Requests one client may make at once above rate_limit (the bucket's size); 0 means "
        "one second's worth of rate_limit (at least 1).",
    )
    transcode_cache_mb: int = setting(
        Group.READING,
        256,
        "Megabytes of transcoded frames each server process keeps, so that a viewer panning "
        "over a slide stored in a form it cannot decode pays the transcoding once per tile.",
    )
    thumbnail_size: int = setting(
        Group.READING,
        256,
        "Largest side in pixels of a thumbnail when the request gives no viewport.",
    )
    max_rendered_pixels: int = setting(
        Group.READING,
        50_000_000,
        "Largest rendered image (width x height) the server produces; a request for more "
        "(e.g. a whole slide level without a viewport) gets 413 Payload Too Large.",
    )
    fsync: bool = setting(
        Group.ARCHIVE,
        True,
        "fsync every blob, its directory and every index commit before reporting success. "
        "Turning it off risks losing acknowledged instances on power failure.",
    )
    slide_metadata: str = setting(
        Group.CONVERSION,
        "",
        "JSON file of default slide metadata (docs/converter.md) for import and watch; "
        "flags and a slide's own .json sidecar override it.",
    )
    require_specimen_metadata: bool = setting(
        Group.CONVERSION,
        False,
        "Refuse to convert a slide whose metadata lacks the WG-26 profile's specimen facts "
        "(the anatomy, a preparation step). Off: such a slide converts with those Type 2 "
        "attributes empty, with a warning, and QIDO-RS missingspecimenfacts=true finds it.",
    )
    barcode_accession_pattern: str = setting(
        Group.CONVERSION,
        "",
        "Regular expression with a named group 'accession' applied to the slide label's "
        "barcodes: the group fills the Accession Number when none is given, so the slide "
        "joins the study of its case. Empty: the Accession Number is never read from a label. "
        "E.g. '^(?P<accession>S\\d{2}-\\d+)'.",
    )
    convert_workers: int = setting(
        Group.CONVERSION, 0, "Threads converting a slide; 0 means one per CPU core."
    )
    max_instance_bytes: int = setting(
        Group.CONVERSION,
        0,
        "A converted pyramid level with more pixel data than this many bytes is split into a "
        "concatenation of instances; 0 never splits (Extended Offset Tables address any size; "
        "dciodvfy's WG26SP2025 profile rejects concatenated TILED_FULL instances).",
    )
    watch_settle_seconds: float = setting(
        Group.WATCH, 10.0, "A dropped file counts as completely written once unchanged this long."
    )
    job_queue: JobQueueKind = setting(
        Group.JOBS,
        JobQueueKind.NONE,
        "Where slides submitted for conversion (`submit`, `watch`, POST /api/jobs) wait: none "
        "(`watch` converts in its own process; no job API), inprocess (a thread pool in the "
        "submitting process; for an index on SQLite) or postgresql (the PostgreSQL index "
        "holds the queue; `wsiarchive worker` processes on any machine convert).",
    )
    job_max_attempts: int = setting(
        Group.JOBS,
        3,
        "Runs of a job before it is marked failed, when its failures are transient (index "
        "unreachable, disk full, a worker killed); a slide that cannot be read fails at once.",
    )
    job_retry_seconds: float = setting(
        Group.JOBS,
        10.0,
        "Delay before a job's second run after a transient failure; it doubles with each "
        "further attempt.",
    )
    job_lease_seconds: float = setting(
        Group.JOBS,
        30.0,
        "A worker beats a heartbeat five times per this period; the job of a worker silent "
        "this long (killed, its machine lost) is given to another worker.",
    )
    job_threads: int = setting(
        Group.JOBS, 1, "Slides the in-process queue converts at once (job_queue = inprocess)."
    )
    job_upload_dir: str = setting(
        Group.JOBS,
        "",
        "Directory where slides uploaded to POST /api/jobs are written, on storage every "
        "worker reads (shared filesystem); empty means <data_dir>/uploads. An upload is "
        "removed once its job is done.",
    )
    max_upload_bytes: int = setting(
        Group.JOBS, 64 << 30, "Largest slide file POST /api/jobs accepts, in bytes (else 413)."
    )
    verify_orphan_seconds: float = setting(
        Group.VERIFY,
        3600.0,
        "`verify --repair` moves a blob no index row names to <blob_dir>/.quarantine (under "
        "blob_url: the .quarantine/ prefix) once it is this many seconds old (younger ones "
        "may belong to a write in progress).",
    )
    verify_claim_seconds: float = setting(
        Group.VERIFY,
        1800.0,
        "`verify` reports a pending claim this many seconds old as abandoned, and `--repair` "
        "releases it (as the start-up recovery does).",
    )
    web: bool = setting(Group.WEB, True, "Serve DICOMweb (`--web-only` turns DIMSE off).")
    dimse: bool = setting(
        Group.DIMSE, True, "Serve DIMSE: the DICOM listener (`--dimse-only` turns DICOMweb off)."
    )
    dimse_port: int = setting(Group.DIMSE, 11112, "TCP port of the DICOM listener.")
    ae_title: str = setting(
        Group.DIMSE, "WSIARCHIVE", "Application Entity title of the DICOM listener."
    )
    dimse_peers: str = setting(
        Group.DIMSE,
        "[]",
        "The DICOM peers allowed to associate, as TOML tables `[[dimse_peers]]` (JSON text in "
        "the environment or a flag), each with `ae_title`, optional `host` (an address or a "
        "network, e.g. 10.0.0.0/24), `operations` (some of echo, store, find, move, get, "
        "commit; absent means all) and `groups` (the access groups whose studies it may see "
        "and store into; absent means all). Another calling AE title is rejected (docs/"
        "conformance.md 9.1). Tables go at the end of a TOML file.",
        table=True,
    )
    dimse_allow_any_calling_ae: bool = setting(
        Group.DIMSE,
        False,
        "Accept any calling AE title not in dimse_peers, with every operation on every study "
        "(logged as a warning at start-up). Only for a closed network.",
    )
    dimse_allowed_hosts: str = setting(
        Group.DIMSE,
        "",
        "Comma-separated peer addresses or networks (10.0.0.0/24) allowed to connect; empty "
        "allows any. Others are refused as soon as they connect.",
    )
    dimse_max_pdu_length: int = setting(
        Group.DIMSE,
        4 << 20,
        "Largest PDU the DICOM listener receives once an association is accepted, in bytes "
        "(PS3.8 D.1 Maximum Length); a larger one aborts the association. Before acceptance "
        "the limit is 64 KiB.",
    )
    dimse_max_associations: int = setting(
        Group.DIMSE, 20, "Most DICOM associations served at once."
    )
    dimse_destinations: str = setting(
        Group.DIMSE,
        "",
        "C-MOVE destinations as AE=host:port, comma-separated (e.g. "
        "PACS=10.0.0.5:104,VIEWER=10.0.0.9:11112).",
    )
    tls_certificate: str = setting(
        Group.DIMSE,
        "",
        "PEM certificate (chain) of the DICOM listener; set to use TLS (PS3.15 Annex B).",
    )
    tls_key: str = setting(Group.DIMSE, "", "PEM private key of tls_certificate.")
    tls_ca: str = setting(
        Group.DIMSE,
        "",
        "PEM CA certificates that sign the certificates of DICOM peers.",
    )
    tls_require_client_certificate: bool = setting(
        Group.DIMSE,
        True,
        "With tls_ca: DICOM peers must present a certificate signed by it (otherwise one is "
        "checked only when presented).",
    )
    workers: int = setting(Group.WEB, 0, "HTTP worker processes; 0 means one per CPU core.")
    threads: int = setting(
        Group.WEB,
        4,
        "Threads per HTTP worker process. Measured with 32 clients reading random frames on 2 "
        "cores: 4 gives the best p99 latency (more threads only contend for the GIL).",
    )
    audit_source_id: str = setting(
        Group.AUDIT,
        "",
        "AuditSourceID of the archive's DICOM Audit Messages (PS3.15 A.5.2) and its UserID "
        "in them; empty means the host name.",
    )
    audit_enterprise_site_id: str = setting(
        Group.AUDIT, "", "AuditEnterpriseSiteID of the audit messages; empty leaves it out."
    )
    audit_syslog_host: str = setting(
        Group.AUDIT,
        "",
        "Audit record repository the audit trail is sent to as syslog (RFC 5424); empty "
        "sends nothing.",
    )
    audit_syslog_port: int = setting(
        Group.AUDIT, 6514, "Port of the audit record repository (6514: syslog over TLS)."
    )
    audit_syslog_transport: Transport = setting(
        Group.AUDIT,
        Transport.TLS,
        "tls: RFC 5425, the repository's certificate checked against audit_syslog_ca (IHE "
        "ATNA); udp: RFC 5426, unprotected and lossy.",
    )
    audit_syslog_ca: str = setting(
        Group.AUDIT,
        "",
        "PEM CA certificates the repository's certificate must chain to; empty means the system's.",
    )
    audit_syslog_certificate: str = setting(
        Group.AUDIT, "", "PEM client certificate (chain) presented to the repository, if any."
    )
    audit_syslog_key: str = setting(Group.AUDIT, "", "PEM private key of audit_syslog_certificate.")
    audit_syslog_facility: int = setting(
        Group.AUDIT,
        10,
        "Syslog facility of the messages: 10 security/authorization (IHE ATNA) or 13 log audit.",
    )
    log_level: str = setting(
        Group.COMMON, "info", "Logging level.", ("debug", "info", "warning", "error")
    )
    access_group_attribute: str = setting(
        Group.ARCHIVE,
        "",
        "DICOM keyword (e.g. InstitutionName, IssuerOfPatientID) whose value, in the first "
        "instance stored of a study, names the study's access group; identities see only the "
        "studies of their groups (docs/security.md). Empty: one group, every study.",
    )
    audit_repeat_seconds: float = setting(
        Group.ARCHIVE,
        300.0,
        "The same access (who, from where, what, which operation, outcome) repeated within "
        "this many seconds is recorded once in the audit trail (a viewer reads many tiles).",
    )
    token_recheck_seconds: float = setting(
        Group.ARCHIVE,
        30.0,
        "Seconds a server process trusts an API token or share link it has verified before "
        "asking the index again: a revocation takes effect within this long everywhere.",
    )
    # -- storage tiers (storage.tiers, docs/operations.md "Storage tiers") ----------------------
    storage_tiers: str = setting(
        Group.ARCHIVE,
        "[]",
        "The storage tiers, as TOML tables `[[storage_tiers]]` (JSON text in the environment "
        "or a flag), hottest first, each with `name`, `location` (a directory; absent: the "
        "blob store), `storage_class` (S3 storage class or Azure access tier of a tier in an "
        "object store), `needs_recall` (true: reads wait for a recall, which takes about "
        "`recall_seconds`), `price_gb_month` and `price_gb_retrieved` (for `tiers report`). "
        "The first tier is the blob store, where new instances go. Empty: one tier, the "
        "blob store. Tables go at the end of a TOML file.",
        table=True,
    )
    tier_rules: str = setting(
        Group.TIERS,
        "[]",
        "The rules that move studies between storage_tiers, as TOML tables `[[tier_rules]]`: "
        "`tier` (where to), and the conditions that must all hold: `after_days` (since "
        "acquisition: AcquisitionDateTime, else StudyDate), `idle_days` (since the study was "
        "last read) and `modalities` (of the series). The first rule that holds for an "
        "instance decides; none: it stays.",
        table=True,
    )
    tier_apply_seconds: float = setting(
        Group.TIERS,
        0.0,
        "`serve` applies tier_rules this often (seconds); 0: only `wsiarchive tiers apply`.",
    )
    tier_recall_check_seconds: float = setting(
        Group.TIERS,
        30.0,
        "`serve` looks this often (seconds) for recalls that are done, and moves their blobs "
        "back to the first tier (when storage_tiers are configured).",
    )
    anonymous_access: AnonymousAccess = setting(
        Group.IDENTITY,
        AnonymousAccess.OFF,
        "Who may use DICOMweb without a token: off (nobody), loopback (clients on this "
        "machine) or anywhere (every client, with a warning at start-up).",
    )
    anonymous_scopes: str = setting(
        Group.IDENTITY,
        "read write",
        "Space-separated scopes (read, write, delete, admin, metrics) of anonymous access.",
    )
    oidc_issuer: str = setting(
        Group.IDENTITY,
        "",
        "OpenID Connect issuer URL whose bearer JWTs are accepted (its discovery document "
        "and JWKS are fetched from it); empty accepts only API tokens.",
    )
    oidc_audience: str = setting(
        Group.IDENTITY,
        "",
        "The audience (aud) a JWT must name; required with oidc_issuer (e.g. the public URL "
        "of the DICOMweb root).",
    )
    oidc_algorithms: str = setting(
        Group.IDENTITY, "RS256 PS256 ES256", "Space-separated JWS algorithms accepted."
    )
    oidc_leeway_seconds: int = setting(
        Group.IDENTITY, 30, "Clock skew allowed on exp, nbf and iat, in seconds."
    )
    oidc_scope_claim: str = setting(
        Group.IDENTITY,
        "scope",
        "Claim holding the granted scopes (a space-separated string or a list).",
    )
    oidc_scope_prefix: str = setting(
        Group.IDENTITY,
        "",
        "Prefix of this archive's scopes in the claim (e.g. 'wsiarchive.' for "
        "wsiarchive.read); others are ignored.",
    )
    oidc_groups_claim: str = setting(
        Group.IDENTITY,
        "",
        "Claim listing the access groups the identity may see; empty: every group. With a "
        "claim set, an identity without it sees no study unless it has the admin scope.",
    )
    oidc_subject_claim: str = setting(
        Group.IDENTITY, "sub", "Claim naming the identity in the audit trail."
    )
    oidc_client_id: str = setting(
        Group.IDENTITY,
        "",
        "Client id of the browser login (a public client at the issuer, authorization code "
        "flow with PKCE, redirect URI <public origin>/callback); empty: no /login.",
    )
    oidc_login_scopes: str = setting(
        Group.IDENTITY,
        "openid read",
        "Scopes the browser login asks the issuer for.",
    )
    oidc_key_refresh_seconds: float = setting(
        Group.IDENTITY,
        10.0,
        "Least seconds between fetches of the issuer's key set forced by an unknown key id: "
        "a rotated key is accepted this soon after the last fetch, and made-up key ids cost "
        "the issuer at most one fetch per period.",
    )
    metrics: bool = setting(
        Group.MONITORING,
        True,
        "Count the Prometheus metrics and serve them at /metrics (docs/operations.md).",
    )
    metrics_access: MetricsAccess = setting(
        Group.MONITORING,
        MetricsAccess.LOOPBACK,
        "Who may read /metrics: loopback (scrapers on this machine), anywhere, or token (a "
        "bearer token with the metrics scope).",
    )
    drain_seconds: float = setting(
        Group.MONITORING,
        0.0,
        "Seconds serve keeps serving after a SIGTERM with /readyz answering 503, so that load "
        "balancers stop sending before it stops; 0 stops at once. SIGINT always stops at once.",
    )

    webhook_urls: str = setting(
        Group.WEBHOOKS,
        "",
        "Comma-separated http(s) URLs the change feed is POSTed to as it grows (JSON arrays of "
        "events, in order, at least once; docs/conformance.md 14.3). A URL added later gets "
        "the events from then on. Of several `serve` processes on one index, one delivers to "
        "each URL at a time. Empty: no webhooks.",
    )
    webhook_secret: str = setting(
        Group.WEBHOOKS,
        "",
        "Key of the HMAC-SHA256 of each webhook body, sent as `X-Wsiarchive-Signature: "
        "sha256=<hex>`; empty sends no signature.",
    )
    webhook_poll_seconds: float = setting(
        Group.WEBHOOKS, 1.0, "Seconds between looks at the change feed for new events."
    )
    webhook_max_backoff_seconds: float = setting(
        Group.WEBHOOKS,
        300.0,
        "Longest wait before retrying a webhook URL that failed (the wait doubles from 1 s "
        "with each failure; a success resets it).",
    )
    demo_study: bool = setting(
        Group.DEMO,
        False,
        "At start, when the archive holds no study, load a demo study: a slide converted from "
        "the test data next to a CR chest X-ray of the same fictitious patient (Demo^Patient, "
        "DEMO-0001). ./scripts/serve.sh turns it on; nothing is loaded into an archive that "
        "holds anything.",
    )
    demo_data: str = setting(
        Group.DEMO,
        "",
        "Folder of the test data the demo study is made from (svs/CMU-1-Small-Region.svs and "
        "radiology/fodicom_CR-MONO1-10-chest.nopreamble); empty means $WSIARCHIVE_TESTDATA, "
        "else ../shared/testdata beside the checkout.",
    )

    forward_destinations: str = setting(
        Group.FORWARDING,
        "[]",
        "The archives instances are forwarded to, as TOML tables `[[forward_destinations]]` "
        "(JSON text in the environment or a flag), each with `name` and `kind`: `dicomweb` "
        "with `url` (the STOW-RS service root) and optionally `token_env` or `token_file` "
        "(where its bearer token is: an environment variable, a file; never inline) or "
        "OAuth 2.0 client credentials (`token_url`, `client_id`, `client_secret_env` or "
        "`client_secret_file`, optionally `scope`, `token_auth` and a `token_params` table), "
        "or "
        "`dimse` with `ae_title`, `host` and `port` (C-STORE). Tables go at the end of a TOML "
        "file (docs/operations.md, Forwarding).",
        table=True,
    )
    forward_rules: str = setting(
        Group.FORWARDING,
        "[]",
        "Which new instances go to which destination, as TOML tables `[[forward_rules]]`, "
        "each with `to` (a destination name or a list of them) and conditions that must all "
        "hold: `modality`, `sop_class`, `institution`, `study_description` and `source_ae` "
        "(the calling AE title of the C-STORE that stored it; glob patterns, or lists of "
        "them, matched without regard to case). A rule without conditions "
        "forwards everything. Instances stored from then on are queued.",
        table=True,
    )
    forward_poll_seconds: float = setting(
        Group.FORWARDING, 1.0, "Seconds between looks for new instances and queued sends."
    )
    forward_max_backoff_seconds: float = setting(
        Group.FORWARDING,
        300.0,
        "Longest wait before retrying a destination that failed (the wait doubles from 1 s "
        "with each failure of the instance at the head of its queue).",
    )
    forward_max_attempts: int = setting(
        Group.FORWARDING,
        0,
        "Attempts after which an instance the destination keeps refusing is marked failed "
        "and the destination's queue moves on; 0 retries for ever (order kept strictly).",
    )

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / 'index.sqlite3').resolve()}"

    @property
    def database_pool(self) -> DatabasePool:
        return DatabasePool(
            self.database_pool_size,
            self.database_pool_overflow,
            self.database_pool_timeout,
            self.database_pool_recycle,
            self.database_prepared_statements,
        )

    @property
    def blobs(self) -> Path:
        return Path(self.blob_dir) if self.blob_dir else Path(self.data_dir) / "blobs"

    @property
    def draining(self) -> bool:
        """True once a SIGTERM asked this serve to drain (wsiarchive.run)."""
        return run.draining()

    @property
    def uploads(self) -> Path:
        return Path(self.job_upload_dir) if self.job_upload_dir else Path(self.data_dir) / "uploads"

    @property
    def session_secret(self) -> str:
        """The key that signs the browser login's cookies: <data_dir>/session.key, made on
        first use (readable by the archive's user only), shared by every server process."""
        path = Path(self.data_dir) / "session.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            made = path.with_suffix(f".{os.getpid()}.tmp")
            descriptor = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as fp:
                fp.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(made, path)  # the first process to get here wins; others read it
            made.unlink()
        return path.read_text().strip()


def declarations(command: str | None = None) -> list[Field[Any]]:
    """The declared settings (name, type, default; metadata: group, help, choices), all of
    them or those *command* uses."""
    groups = COMMANDS[command] if command is not None else frozenset(Group)
    return [d for d in fields(Settings) if d.metadata["group"] in groups]


def commands_using(declaration: Field[Any]) -> list[str]:
    """The commands (other than ``settings``) whose --help lists the setting."""
    group = declaration.metadata["group"]
    return [name for name, groups in COMMANDS.items() if group in groups and name != "settings"]


_TYPES: dict[str, type] = {}


def kind_of(declaration: Field[Any]) -> type:
    """The declared type of a setting (annotations are strings here: PEP 563)."""
    if not _TYPES:
        _TYPES.update(get_type_hints(Settings))
    return _TYPES[declaration.name]


def convert(declaration: Field[Any], value: Any, source: str) -> Any:
    """Coerce *value* to the declared type; raise ValueError naming *source*."""
    kind = kind_of(declaration)
    choices = declaration.metadata.get("choices")
    try:
        if declaration.metadata.get("table"):
            result: Any = _table(value, declaration.default == "{}")
        elif kind is bool:
            if isinstance(value, bool):
                result = value
            elif str(value).strip().lower() in ("1", "true", "yes", "on"):
                result = True
            elif str(value).strip().lower() in ("0", "false", "no", "off"):
                result = False
            else:
                raise ValueError(value)
        elif kind in (int, float):
            if isinstance(value, bool):
                raise ValueError(value)
            result = kind(value)
        elif issubclass(kind, StrEnum):
            result = kind(str(value))
        else:
            result = str(value)
    except (TypeError, ValueError) as exc:
        if choices:
            raise ValueError(
                f"{source}: {declaration.name} must be one of {', '.join(choices)}"
            ) from exc
        expected = kind.__name__
        if declaration.metadata.get("table"):
            expected = "a table" if declaration.default == "{}" else "an array of tables"
        raise ValueError(f"{source}: {declaration.name} must be {expected}, got {value!r}") from exc
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


def _display_type(declaration: Field[Any]) -> str:
    kind = kind_of(declaration)
    return "str" if issubclass(kind, StrEnum) else kind.__name__


def _toml_value(value: Any, table: bool = False) -> str:
    if table:
        return str(value)  # "[]" and "{}": empty tables read the same in TOML and JSON
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
        default = _toml_value(declaration.default, declaration.metadata["table"])
        lines.append(f"{declaration.name} = {default}")
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
        "| name | flag | environment | type | default | commands | help |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in declarations():
        help_text = d.metadata["help"]
        if d.metadata.get("choices"):
            help_text += f" One of: {', '.join(d.metadata['choices'])}."
        flag = f"--{d.name.replace('_', '-')}"
        if kind_of(d) is bool:
            flag += f" / --no-{d.name.replace('_', '-')}"
        default = _toml_value(d.default, d.metadata["table"])
        lines.append(
            f"| `{d.name}` | `{flag}` | `{ENV_PREFIX}{d.name.upper()}` | {_display_type(d)} | "
            f"`{default}` | {', '.join(commands_using(d))} | {help_text} |"
        )
    return "\n".join(lines) + "\n"


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    """The application log of every process kind, at the configured level."""
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
