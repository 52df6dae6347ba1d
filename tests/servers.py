"""Real servers for the tests: wsiarchive itself and a throw-away PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import requests
from urllib3.exceptions import InsecureRequestWarning

from tests.dicomfiles import multipart_body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ArchiveServer:
    """A `wsiarchive serve` process on loopback with its own data directory."""

    data_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    dimse_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    log_dir: Path | None = None  # default: beside data_dir
    # RLIMIT_FSIZE of the server's processes: a write past it fails with EFBIG, as on a full
    # disk (SIGXFSZ ignored), without needing a small filesystem.
    file_size_limit: int | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.get("https_certificate") else "http"
        return f"{scheme}://127.0.0.1:{self.port}/dicomweb"

    def start(self, timeout: float = 60) -> ArchiveServer:
        env = dict(os.environ)
        # WSIARCHIVE_SERVER_SOURCE: serve from another checkout (e.g. to show that a test
        # fails on an older build); the tests and their clients stay this checkout's.
        source = env.pop("WSIARCHIVE_SERVER_SOURCE", None)
        if source:
            env["PYTHONPATH"] = source
        # The tests' clients come from loopback without tokens unless a test says otherwise.
        env.setdefault("WSIARCHIVE_ANONYMOUS_ACCESS", "loopback")
        env.update({f"WSIARCHIVE_{k.upper()}": str(v) for k, v in self.settings.items()})
        env.setdefault("WSIARCHIVE_BASE_URL", self.url)
        self.log_path = (self.log_dir or self.data_dir.parent) / f"{self.data_dir.name}-server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child process writes it)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsiarchive",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--workers",
                str(self.settings.get("workers", 2)),
                "--log-level",
                "warning",
                "--dimse-port",
                str(self.dimse_port),
            ],
            env=env,
            cwd=source or None,
            preexec_fn=self._limits if self.file_size_limit else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with warnings.catch_warnings():
                    # verify=False: a test's HTTPS server has a certificate the test made.
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                    ready = requests.get(self.url + "/studies?limit=1", timeout=2, verify=False)
                # Up once it answers: 200, or 401 when it needs a token.
                if ready.status_code in (200, 401):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def _limits(self) -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(self.file_size_limit or 0)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def listener_status(self) -> dict[str, str]:
        """/proc/<pid>/status of the DICOM listener: the serve process's spawned child (not
        multiprocessing's resource tracker, its other child)."""
        assert self.process is not None
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
                cmdline = (status.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline and f"PPid:\t{self.process.pid}\n" in text:
                return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        raise AssertionError("the DICOM listener process was not found")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def wait_dimse(self, timeout: float = 30) -> ArchiveServer:
        """Wait until the DICOM listener (a process of its own) accepts connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.dimse_port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"the DICOM listener does not listen on {self.dimse_port}")

    def store(self, parts: list[bytes]) -> requests.Response:
        """STOW-RS Part-10 *parts* in one request; the test fails unless all are stored."""
        body, content_type = multipart_body(parts)
        response = requests.post(
            self.url + "/studies", data=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 200, response.text
        return response

    def kill(self) -> None:
        """Simulate a crash: SIGKILL the whole process group."""
        self.stop(signal.SIGKILL)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


@dataclass
class PostgresCluster:
    """A PostgreSQL server of its own, in a temporary directory, on loopback."""

    directory: Path
    port: int = field(default_factory=free_port)

    @staticmethod
    def available() -> bool:
        return _pg_bin("initdb") is not None and _pg_bin("pg_ctl") is not None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://wsiarchive@127.0.0.1:{self.port}/wsiarchive"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd="/")

    def resume(self) -> None:
        """Start the cluster again after stop() (its data kept)."""
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        self._run(
            _pg_bin("pg_ctl") or "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "log"),
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on",
            "-w",
            "start",
        )

    def start(self) -> PostgresCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "nobody")
        data = self.directory / "data"
        self._run(
            _pg_bin("initdb") or "initdb",
            "-D",
            str(data),
            "-U",
            "wsiarchive",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        self._pg_ctl_start()
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=wsiarchive dbname=postgres", autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE wsiarchive")
        return self

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run *sql* as the cluster's superuser (autocommit)."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=wsiarchive dbname={database}"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def database(self, name: str, user: str = "wsiarchive") -> str:
        """A new empty database *name* (owned by the superuser) and the URL of *user* on it."""
        self.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(
                _pg_bin("pg_ctl") or "pg_ctl",
                "-D",
                str(self.directory / "data"),
                "-m",
                "fast",
                "stop",
            )


# -- object storage: moto's standalone S3 server and Azurite (Azure Blob), on loopback --------
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's fixed, published development key (not a secret: every Azurite has it).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_BIN = Path(__file__).resolve().parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"


@dataclass
class ObjectServer:
    """An object-storage server process on loopback: moto (S3) or Azurite (Azure Blob)."""

    kind: str  # "s3" | "azure"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return f"{base}/{AZURITE_ACCOUNT}" if self.kind == "azure" else base

    def start(self, timeout: float = 30) -> ObjectServer:
        if self.kind == "s3":
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            if not AZURITE_BIN.exists():
                raise RuntimeError("Azurite is missing: run scripts/setup.sh --test")
            command = [
                str(AZURITE_BIN),
                "--inMemoryPersistence",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited at start")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the {self.kind} server did not start")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    # -- a bucket (container) of its own, and an independent client of it ---------------------
    def bucket(self, name: str) -> ObjectBucket:
        if self.kind == "s3":
            self.s3_client().create_bucket(Bucket=name)
            options = {
                "endpoint": self.endpoint,
                "region": "us-east-1",
                "access_key_id": "testing",
                "secret_access_key": "testing",
                "allow_http": True,
            }
            return ObjectBucket(self, name, f"s3://{name}/archive", options)
        self.azure_client().create_container(name)
        options = {
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint": self.endpoint,
            "allow_http": True,
        }
        return ObjectBucket(self, name, f"az://{name}/archive", options)

    def s3_client(self):  # boto3's, independent of obstore
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def azure_client(self):  # azure-storage-blob's, independent of obstore
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint};"
        )


@dataclass
class ObjectBucket:
    """A bucket (container) on an ObjectServer: the archive's blob_url and blob_options, and
    the objects under the archive's prefix as an independent client sees them."""

    server: ObjectServer
    name: str
    url: str
    options: dict[str, object]
    prefix: str = "archive/"

    @property
    def settings(self) -> dict[str, str]:
        """The archive settings that put its blobs here (for fresh_server / settings_for)."""
        import json

        return {"blob_url": self.url, "blob_options": json.dumps(self.options)}

    def keys(self) -> list[str]:
        """Every object key under the archive's prefix (prefix removed)."""
        if self.server.kind == "s3":
            pages = self.server.s3_client().get_paginator("list_objects_v2")
            found = [
                item["Key"]
                for page in pages.paginate(Bucket=self.name, Prefix=self.prefix)
                for item in page.get("Contents", [])
            ]
        else:
            container = self.server.azure_client().get_container_client(self.name)
            found = [blob.name for blob in container.list_blobs(name_starts_with=self.prefix)]
        return sorted(key[len(self.prefix) :] for key in found)

    def read(self, key: str) -> bytes:
        """One object's bytes, read by the independent client."""
        if self.server.kind == "s3":
            body = self.server.s3_client().get_object(Bucket=self.name, Key=self.prefix + key)
            return body["Body"].read()
        container = self.server.azure_client().get_container_client(self.name)
        return container.download_blob(self.prefix + key).readall()

    def write(self, key: str, data: bytes) -> None:
        """Put an object behind the archive's back (an orphan, for verify)."""
        if self.server.kind == "s3":
            self.server.s3_client().put_object(Bucket=self.name, Key=self.prefix + key, Body=data)
        else:
            container = self.server.azure_client().get_container_client(self.name)
            container.upload_blob(self.prefix + key, data)
