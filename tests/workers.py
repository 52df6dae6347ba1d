"""Real `wsiarchive worker` and `watch` processes for the job tests and the benchmark, and a
PostgreSQL database of their own on the tests' cluster."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

# Slide metadata every job of the tests carries (docs/converter.md: mandatory values).
METADATA = {
    "container_identifier": "SLIDE-JOBS",
    "anatomy": "SCT:39607008:Lung structure",
    "stains": ["hematoxylin stain", "water soluble eosin stain"],
    "mpp": 0.5,  # for the slides that do not say (the TCGA SVS)
}
SLIDE_FLAGS = [
    "--container-id",
    "SLIDE-JOBS",
    "--anatomy",
    "SCT:39607008:Lung structure",
    "--stain",
    "hematoxylin stain",
    "--stain",
    "water soluble eosin stain",
    "--mpp",
    "0.5",
]


def new_database(postgres: object) -> str:
    """A new empty database on the cluster (the session's cluster is shared by tests)."""
    import psycopg

    name = "jobs_" + secrets.token_hex(4)
    port = postgres.port  # type: ignore[attr-defined]
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=wsiarchive dbname=postgres", autocommit=True
    ) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://wsiarchive@127.0.0.1:{port}/{name}"


def queue_env(database_url: str, blob_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of every process sharing one PostgreSQL index and blob directory."""
    env = dict(os.environ)
    env.update(
        {
            "WSIARCHIVE_DATABASE_URL": database_url,
            "WSIARCHIVE_BLOB_DIR": str(blob_dir),
            "WSIARCHIVE_JOB_QUEUE": "postgresql",
            "WSIARCHIVE_JOB_LEASE_SECONDS": "3",
            "WSIARCHIVE_JOB_RETRY_SECONDS": "0.5",
            "WSIARCHIVE_CONVERT_WORKERS": "1",
        }
    )
    env.update({f"WSIARCHIVE_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class WorkerProcess:
    """One `wsiarchive worker` with its own data directory (its logs there)."""

    data_dir: Path
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    file_size_limit: int | None = None
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + "-worker.log")

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child writes it)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wsiarchive", "worker", "--data-dir", str(self.data_dir)]
            + self.args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limits if self.file_size_limit else None,
        )
        return self

    def _limits(self) -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(self.file_size_limit or 0)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    @property
    def name_suffix(self) -> str:
        """The end of the name the worker gives itself in its jobs (host:pid)."""
        assert self.process is not None
        return f":{self.process.pid}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def wait_for(predicate, timeout: float = 120, every: float = 0.1, what: str = "condition"):  # noqa: ANN001, ANN201
    """Poll until *predicate* returns something true; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def api_jobs(base: str) -> list[dict]:
    """GET /api/jobs of a server whose DICOMweb root is *base*."""
    response = requests.get(base.removesuffix("/dicomweb") + "/api/jobs?limit=1000", timeout=10)
    response.raise_for_status()
    return response.json()["jobs"]
