"""Push the same instances with dcmtk's storescu to wsiarchive's DICOM listener, to dcmtk's own
storescp writing to disk, and to Orthanc, in one run; report MB/s, instances/s and the peak
RSS of each receiver.

    .venv/bin/python benchmarks/dimse_store.py [--large-gb 1] [--repeat-small 5]

The set: one large synthetic JPEG WSI plus every DICOM object of the shared test data (each
pushed --repeat-small times under new UIDs, so the small-instance rate counts too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers import RssMonitor  # noqa: E402
from benchmarks.synthetic import write_wsi  # noqa: E402
from tests.conftest import dicom_files  # noqa: E402

# What `storescu -R -xy` can send: JPEG baseline, or uncompressed (it cannot convert others).
SENDABLE = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}
ORTHANC_CONFIG = {
    "Name": "bench",
    "RemoteAccessAllowed": False,
    "AuthenticationEnabled": False,
    "StorageCompression": False,
    "SyncStorageArea": True,
    "DicomAet": "ORTHANC",
}


def _wait(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def prepare(workdir: Path, large_gb: float, repeat: int) -> tuple[list[Path], int]:
    """The instances to push (written once) and their total size."""
    folder = workdir / "set"
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_wsi(folder / "large.dcm", int(large_gb * 1e9))
        for round_ in range(repeat):
            for number, path in enumerate(dicom_files()):
                dataset = pydicom.dcmread(path)
                if dataset.file_meta.TransferSyntaxUID not in SENDABLE:
                    continue
                dataset.SOPInstanceUID = generate_uid()
                dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
                dataset.save_as(folder / f"small-{round_}-{number}.dcm")
        marker.touch()
    files = sorted(p for p in folder.glob("*.dcm"))
    return files, sum(p.stat().st_size for p in files)


def push(port: int, ae_title: str, files: list[Path]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        ["storescu", "-aec", ae_title, "-R", "-xy", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {ae_title} failed: {result.stderr[-1000:]}")
    return time.perf_counter() - start


def receiver(name: str, workdir: Path, port: int) -> subprocess.Popen:
    target = workdir / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
    if name == "wsiarchive":
        command = [
            sys.executable,
            "-m",
            "wsiarchive",
            "serve",
            "--dimse-only",
            "--data-dir",
            str(target),
            "--dimse-port",
            str(port),
            "--dimse-peers",
            '[{"ae_title": "STORESCU", "host": "127.0.0.1", "operations": ["store"]}]',
            "--log-level",
            "warning",
        ]
    elif name == "storescp":
        command = ["storescp", "+xa", "-od", str(target), str(port)]
    elif name == "storescp_bit_preserving":
        # +B: received data written straight to the file, as this archive does.
        command = ["storescp", "+xa", "+B", "-od", str(target), str(port)]
    else:
        config = dict(
            ORTHANC_CONFIG,
            StorageDirectory=str(target / "storage"),
            IndexDirectory=str(target / "index"),
            DicomPort=port,
            HttpPort=port + 1,
        )
        (target / "orthanc.json").write_text(json.dumps(config))
        command = ["Orthanc", str(target / "orthanc.json")]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    _wait(port)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-gb", type=float, default=1.0)
    parser.add_argument("--repeat-small", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-dimse-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "dimse_store.json"
    )
    args = parser.parse_args()
    files, total = prepare(args.workdir, args.large_gb, args.repeat_small)
    print(f"{len(files)} instances, {total / 1e9:.2f} GB", flush=True)
    results: dict = {"instances": len(files), "bytes": total}
    titles = {
        "wsiarchive": "WSIARCHIVE",
        "storescp": "ANY-SCP",
        "storescp_bit_preserving": "ANY-SCP",
        "orthanc": "ORTHANC",
    }
    for number, name in enumerate(titles):
        if name == "orthanc" and not shutil.which("Orthanc"):
            continue
        port = 14300 + 10 * number
        process = receiver(name, args.workdir, port)
        try:
            subprocess.run(["sync"], check=True)
            with RssMonitor(process.pid) as monitor:
                seconds = push(port, titles[name], files)
            results[name] = {
                "seconds": seconds,
                "mb_per_s": total / 1e6 / seconds,
                "instances_per_s": len(files) / seconds,
                "peak_rss_mb": monitor.peak_mb,
            }
            print(f"  {name}: {results[name]}", flush=True)
        finally:
            process.terminate()
            process.wait(30)
        shutil.rmtree(args.workdir / name, ignore_errors=True)
    ours = results["wsiarchive"]["mb_per_s"]
    results["ratio_to_storescp"] = ours / results["storescp"]["mb_per_s"]
    results["ratio_to_storescp_bit_preserving"] = (
        ours / results["storescp_bit_preserving"]["mb_per_s"]
    )
    if "orthanc" in results:
        results["ratio_to_orthanc"] = ours / results["orthanc"]["mb_per_s"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k.startswith("ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
