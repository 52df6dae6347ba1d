"""Forward the same instances from wsiarchive to Orthanc over C-STORE and over STOW-RS, against
dcmtk's storescu and dicomweb-client sending the same files to an Orthanc of their own, in one
run; report MB/s, instances/s and the ratios.

    .venv/bin/python benchmarks/forwarding.py [--large-gb 0.5] [--repeat-small 2]

The set is the DIMSE benchmark's (benchmarks/dimse_store.py): one large synthetic JPEG WSI and
every DICOM object of the shared test data. It is imported into a fresh archive once; each
measurement queues every study with `wsiarchive send` and times `wsiarchive forward --once`,
the command that drains the queues (its start-up included), into an empty Orthanc. Each is
measured --rounds times, each time into a new Orthanc; the fastest counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dimse_store import prepare, push  # noqa: E402
from benchmarks.peers import Orthanc  # noqa: E402

HTTP_PORT, DICOM_PORT = 14480, 14481


def wsiarchive(data: Path, *args: str, destinations: str | None = None) -> str:
    chosen = ["--forward-destinations", destinations] if destinations else []
    result = subprocess.run(
        [sys.executable, "-m", "wsiarchive", *args, "--data-dir", str(data), *chosen]
        + ["--log-level", "warning"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"wsiarchive {args[0]} failed: {result.stdout[-800:]}{result.stderr[-800:]}"
        )
    return result.stdout


def orthanc_count(orthanc: Orthanc) -> int:
    import requests

    port = orthanc.root.split(":")[2].split("/")[0]
    return int(
        requests.get(f"http://127.0.0.1:{port}/statistics", timeout=30).json()["CountInstances"]
    )


STARTUP: list[float] = []  # seconds of `forward --once` with nothing due: the process alone


def forward(data: Path, studies: list[str], destination: dict[str, object]) -> float:
    """Seconds for `forward --once` to send every study to *destination*."""
    text = json.dumps([destination])
    start = time.perf_counter()
    wsiarchive(data, "forward", "--once", destinations=text)
    STARTUP.append(time.perf_counter() - start)
    for study in studies:
        wsiarchive(data, "send", study, "--to", str(destination["name"]), destinations=text)
    start = time.perf_counter()
    out = wsiarchive(data, "forward", "--once", destinations=text)
    seconds = time.perf_counter() - start
    if " 0 pending" not in out or " 0 failed" not in out:
        raise RuntimeError(f"forwarding did not finish cleanly: {out}")
    return seconds


def imported_set(
    workdir: Path, large_gb: float, repeat: int
) -> tuple[list[Path], int, list[str], Path]:
    """The DIMSE benchmark's set (its files and size), the studies they make, and an archive
    they were imported into once (kept in *workdir* for the next run)."""
    files, total = prepare(workdir, large_gb, repeat)
    studies = sorted(
        {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in files}
    )
    print(f"{len(files)} instances in {len(studies)} studies, {total / 1e9:.2f} GB", flush=True)
    data = workdir / "archive"
    if not (data / ".imported").exists():
        shutil.rmtree(data, ignore_errors=True)
        wsiarchive(data, "import", str(workdir / "set"))
        (data / ".imported").touch()
    return files, total, studies, data


def stow_with_dicomweb_client(root: str, files: list[Path]) -> float:
    """Seconds for dicomweb-client to STOW every file, one request each, as a peer."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=root)
    start = time.perf_counter()
    for path in files:
        client.store_instances(datasets=[pydicom.dcmread(path)])
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-gb", type=float, default=0.5)
    parser.add_argument("--repeat-small", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=2, help="each measured so often; the fastest counts"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsiarchive-forward-bench"))
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "forwarding.json"
    )
    args = parser.parse_args()
    if not Orthanc.available():
        print("Orthanc with its DICOMweb plugin is needed")
        return 1
    files, total, studies, data = imported_set(args.workdir, args.large_gb, args.repeat_small)
    results: dict[str, object] = {"instances": len(files), "bytes": total}

    def measure(name: str, run: object) -> None:
        times = []
        for round_ in range(args.rounds):
            orthanc = Orthanc(args.workdir / f"orthanc-{name}-{round_}", HTTP_PORT, DICOM_PORT)
            try:
                subprocess.run(["sync"], check=True)
                times.append(run(orthanc))  # type: ignore[operator]
                held = orthanc_count(orthanc)
                if held != len(files):
                    raise RuntimeError(f"{name}: Orthanc holds {held} of {len(files)} instances")
            finally:
                orthanc.stop()
                subprocess.run(["rm", "-rf", str(args.workdir / f"orthanc-{name}-{round_}")])
        seconds = min(times)
        results[name] = {
            "seconds": round(seconds, 2),
            "all_seconds": [round(t, 2) for t in times],
            "mb_per_s": round(total / 1e6 / seconds, 1),
            "instances_per_s": round(len(files) / seconds, 1),
        }
        print(f"  {name}: {results[name]}", flush=True)

    measure(
        "wsiarchive_c_store",
        lambda o: forward(
            data,
            studies,
            {
                "name": "o",
                "kind": "dimse",
                "ae_title": "ORTHANC",
                "host": "127.0.0.1",
                "port": DICOM_PORT,
            },
        ),
    )
    measure("storescu", lambda o: push(DICOM_PORT, "ORTHANC", files))
    measure(
        "wsiarchive_stow_rs",
        lambda o: forward(data, studies, {"name": "o", "kind": "dicomweb", "url": o.root}),
    )
    measure("dicomweb_client_stow_rs", lambda o: stow_with_dicomweb_client(o.root, files))

    def ratio(ours: str, peer: str) -> float:
        a, b = results[ours], results[peer]
        assert isinstance(a, dict) and isinstance(b, dict)
        return round(float(a["mb_per_s"]) / float(b["mb_per_s"]), 2)

    results["ratio_c_store_to_storescu"] = ratio("wsiarchive_c_store", "storescu")
    # The forwarder of a running serve has no start-up to pay: the same without it.
    startup = min(STARTUP)
    results["forward_startup_seconds"] = round(startup, 2)
    for ours, peer in (
        ("wsiarchive_c_store", "storescu"),
        ("wsiarchive_stow_rs", "dicomweb_client_stow_rs"),
    ):
        a, b = results[ours], results[peer]
        assert isinstance(a, dict) and isinstance(b, dict)
        key = f"ratio_{ours.removeprefix('wsiarchive_')}_to_{peer}_without_startup"
        results[key] = round(float(b["seconds"]) / (float(a["seconds"]) - startup), 2)
    results["ratio_stow_to_dicomweb_client"] = ratio(
        "wsiarchive_stow_rs", "dicomweb_client_stow_rs"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k.startswith("ratio")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
