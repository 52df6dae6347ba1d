"""Processes the benchmarks measure: our server and Orthanc, started on loopback, with RSS
sampling of their whole process trees."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def _children(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            for child in text:
                found += _children(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


class RssMonitor:
    """Samples the summed RSS of a process tree every 50 ms; ``peak_mb`` is the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_rss_kb(p) for p in _children(self.pid))
            self.peak_kb = max(self.peak_kb, total)
            time.sleep(0.05)

    def __enter__(self) -> RssMonitor:
        self.peak_kb = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p) for p in _children(self.pid))


class Peer:
    """A server process started by a benchmark."""

    name = "peer"
    process: subprocess.Popen

    def wait_ready(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                # verify=False: a benchmark's HTTPS server has a certificate it made.
                if requests.get(url, timeout=2, verify=False).status_code < 500:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


class Ours(Peer):
    name = "wsiarchive"

    def __init__(
        self,
        directory: Path,
        port: int,
        workers: int = 2,
        keep: bool = False,
        database_url: str = "",
        source: Path | None = None,
        name: str = "wsiarchive",
        settings: dict[str, str] | None = None,
    ) -> None:
        """*source*: serve the code of another checkout (its folder) instead of this one;
        *settings*: more settings, by name (given as WSIARCHIVE_* variables)."""
        self.name = name
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        scheme = "https" if (settings or {}).get("https_certificate") else "http"
        self.root = f"{scheme}://127.0.0.1:{port}/dicomweb"
        self.data = directory
        command = [sys.executable, "-m", "wsiarchive", "serve", "--data-dir", str(directory)]
        command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
        command += ["--web-only"]
        if database_url:
            command += ["--database-url", database_url]
        # Anonymous from loopback (a variable, which builds without identity ignore).
        env = {**os.environ, "WSIARCHIVE_ANONYMOUS_ACCESS": "loopback"}
        env.update({f"WSIARCHIVE_{k.upper()}": v for k, v in (settings or {}).items()})
        if source is not None:
            env["PYTHONPATH"] = str(source)
        self.process = subprocess.Popen(
            command,
            stdout=open(directory.parent / f"{name}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=source,
            env=env,
        )
        self.wait_ready(self.root + "/studies?limit=1")


class Orthanc(Peer):
    name = "orthanc"

    @staticmethod
    def available() -> bool:
        return shutil.which("Orthanc") is not None and Path(ORTHANC_DICOMWEB).exists()

    def __init__(self, directory: Path, port: int, dicom_port: int) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        config = {
            "Name": "bench",
            "StorageDirectory": str(directory / "storage"),
            "IndexDirectory": str(directory / "index"),
            "HttpPort": port,
            "DicomPort": dicom_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StorageCompression": False,
            "SyncStorageArea": True,  # fsync, as ours does
            "Plugins": [ORTHANC_DICOMWEB],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpTimeout": 3600,
        }
        path = directory / "orthanc.json"
        path.write_text(json.dumps(config))
        self.root = f"http://127.0.0.1:{port}/dicom-web"
        self.process = subprocess.Popen(
            ["Orthanc", str(path)],
            stdout=open(directory.parent / "orthanc.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(f"http://127.0.0.1:{port}/system")


def add_testdata_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:  # noqa: A002
    """--testdata: the shared test data (WSIARCHIVE_TESTDATA, else ../shared/testdata)."""
    parser.add_argument(
        "--testdata",
        type=Path,
        default=Path(
            os.environ.get("WSIARCHIVE_TESTDATA", Path(__file__).parents[2] / "shared/testdata")
        ),
        help=help,
    )
