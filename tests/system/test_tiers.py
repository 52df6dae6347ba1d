"""Storage tiers against a real server: a study moved by `wsiarchive tiers apply` from the hot
blob store to a cold directory is served byte for byte as before from its new place only; a
study in a tier that needs a recall answers 503 with Retry-After until the server's recall
brings it back; the cost report adds up what is on disk; a move killed half-way leaves only
what `verify` finds and repairs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.dicomfiles import frames, parse_multipart
from tests.inprocess import multiframe, part10

OCTETS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
INSTANCE = 'multipart/related; type="application/dicom"; transfer-syntax=*'
SLIDE = "dicom/wsi2dcm_jpeg.dcm"


def tier_settings(root: Path, rules: list[dict], recall_seconds: float = 2.0) -> dict[str, str]:
    tiers = [
        {"name": "hot", "price_gb_month": 0.0184},
        {"name": "cold", "location": str(root / "cold"), "price_gb_month": 0.0036},
        {
            "name": "deep",
            "location": str(root / "deep"),
            "needs_recall": True,
            "recall_seconds": recall_seconds,
            "price_gb_month": 0.00099,
            "price_gb_retrieved": 0.02,
        },
    ]
    return {
        "storage_tiers": json.dumps(tiers),
        "tier_rules": json.dumps(rules),
        "tier_recall_check_seconds": "0.5",
    }


def cli(data_dir: Path, settings: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`wsiarchive COMMAND --data-dir DIR ACTION...` with the server's settings."""
    env = dict(os.environ)
    env.update({f"WSIARCHIVE_{k.upper()}": v for k, v in settings.items()})
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "wsiarchive", command, "--data-dir", str(data_dir), *rest],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def blobs_in(root: Path) -> dict[str, int]:
    """The blob files under a store's root (staging and quarantine left out), with sizes."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not {".staging", ".quarantine"} & set(p.relative_to(root).parts)
    }


def stored_uids(response: requests.Response) -> tuple[str, str, str]:
    item = response.json()["00081199"]["Value"][0]
    url = item["00081190"]["Value"][0]
    parts = url.split("/")
    return parts[-5], parts[-3], parts[-1]


def get_frames(url: str, numbers: str) -> requests.Response:
    return requests.get(f"{url}/frames/{numbers}", headers={"Accept": OCTETS}, timeout=30)


def payloads(response: requests.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [body for _, body in parse_multipart(response.headers["Content-Type"], response.content)]


def test_a_study_moved_to_a_cold_tier_is_served_unchanged_from_there(
    fresh_server, testdata, tmp_path
) -> None:
    settings = tier_settings(tmp_path, [{"tier": "cold", "modalities": ["SM"]}])
    server = fresh_server(**settings)
    source = testdata / SLIDE
    study, series, instance = stored_uids(server.store([source.read_bytes()]))
    url = f"{server.url}/studies/{study}/series/{series}/instances/{instance}"
    expected = frames(source)
    numbers = ",".join(str(n) for n in range(1, min(len(expected), 8) + 1))
    before = requests.get(url, headers={"Accept": INSTANCE}, timeout=30)
    assert before.status_code == 200
    hot = server.data_dir / "blobs"
    assert len(blobs_in(hot)) == 1 and blobs_in(tmp_path / "cold") == {}

    dry = cli(server.data_dir, settings, "tiers", "apply", "--dry-run")
    assert dry.returncode == 0 and f"would move {instance}" in dry.stdout, dry.stderr
    assert len(blobs_in(hot)) == 1
    applied = cli(server.data_dir, settings, "tiers", "apply")
    assert applied.returncode == 0 and f"moved {instance}" in applied.stdout, applied.stderr

    assert blobs_in(hot) == {}
    assert list(blobs_in(tmp_path / "cold").values()) == [source.stat().st_size]
    assert payloads(get_frames(url, numbers)) == expected[: numbers.count(",") + 1]
    after = requests.get(url, headers={"Accept": INSTANCE}, timeout=30)
    assert payloads(after) == payloads(before)  # the same instance (each body its boundary)
    assert cli(server.data_dir, settings, "verify").returncode == 0


def test_a_recall_tier_answers_503_until_the_recall_is_done(
    fresh_server, testdata, tmp_path
) -> None:
    settings = tier_settings(tmp_path, [{"tier": "deep"}], recall_seconds=2.0)
    server = fresh_server(**settings)
    source = testdata / SLIDE
    study, series, instance = stored_uids(server.store([source.read_bytes()]))
    url = f"{server.url}/studies/{study}/series/{series}/instances/{instance}"
    assert cli(server.data_dir, settings, "tiers", "apply").returncode == 0
    assert len(blobs_in(tmp_path / "deep")) == 1

    pending = get_frames(url, "1")
    assert pending.status_code == 503, pending.text
    assert 1 <= int(pending.headers["Retry-After"]) <= 2
    assert "recall has been started" in pending.text
    # Metadata needs no blob: served from any tier.
    metadata = requests.get(f"{url}/metadata", timeout=30)
    assert metadata.status_code == 200 and metadata.json()[0]["00080018"]["Value"] == [instance]
    deadline = time.monotonic() + 30
    while (answer := get_frames(url, "1")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert payloads(answer) == frames(source)[:1]
    assert blobs_in(tmp_path / "deep") == {}
    assert list(blobs_in(server.data_dir / "blobs").values()) == [source.stat().st_size]
    audit = cli(server.data_dir, settings, "audit", "--study", study, "--json")
    operations = [event["operation"] for event in json.loads(audit.stdout)]
    assert operations.count("tier-move") == 1 and operations.count("recall") == 2


def test_the_cost_report_adds_up_the_bytes_on_disk(fresh_server, testdata, tmp_path) -> None:
    settings = tier_settings(tmp_path, [{"tier": "cold", "modalities": ["SM"]}])
    server = fresh_server(**settings)
    server.store([(testdata / SLIDE).read_bytes()])
    server.store([part10(multiframe(4, seed=n)) for n in range(3)])  # OT: stays hot
    assert cli(server.data_dir, settings, "tiers", "apply").returncode == 0
    report = cli(server.data_dir, settings, "tiers", "report", "--json")
    assert report.returncode == 0, report.stderr
    tiers = {t["name"]: t for t in json.loads(report.stdout)["tiers"]}
    on_disk = {
        "hot": blobs_in(server.data_dir / "blobs"),
        "cold": blobs_in(tmp_path / "cold"),
        "deep": {},
    }
    for name, found in on_disk.items():
        assert (tiers[name]["instances"], tiers[name]["bytes"]) == (
            len(found),
            sum(found.values()),
        )
    assert (tiers["hot"]["instances"], tiers["cold"]["instances"]) == (3, 1)
    cold = tiers["cold"]
    assert abs(cold["monthly_cost"] - cold["bytes"] / 2**30 * 0.0036) < 1e-12
    text = cli(server.data_dir, settings, "tiers", "report")
    assert "cold" in text.stdout and str(cold["bytes"]) in text.stdout


def test_a_move_killed_half_way_leaves_what_verify_repairs(fresh_server, tmp_path) -> None:
    settings = tier_settings(tmp_path, [{"tier": "cold"}])
    server = fresh_server(**settings)
    datasets = [multiframe(48, 256, 256, seed=n) for n in range(16)]  # 3 MB each
    for start in range(0, len(datasets), 4):
        server.store([part10(d) for d in datasets[start : start + 4]])
    urls = []
    for dataset in datasets:
        urls.append(
            f"{server.url}/studies/{dataset.StudyInstanceUID}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
        )
    env = dict(os.environ)
    env.update({f"WSIARCHIVE_{k.upper()}": v for k, v in settings.items()})
    mover = subprocess.Popen(
        [sys.executable, "-m", "wsiarchive", "tiers", "--data-dir", str(server.data_dir), "apply"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cold = tmp_path / "cold"
    deadline = time.monotonic() + 60
    while not (cold.exists() and blobs_in(cold)):
        assert time.monotonic() < deadline and mover.poll() is None, "no move began"
        time.sleep(0.001)
    os.kill(mover.pid, signal.SIGKILL)  # mid-move: copied, maybe committed, not deleted
    mover.wait()
    total = len(blobs_in(server.data_dir / "blobs")) + len(blobs_in(cold))
    assert len(datasets) <= total <= len(datasets) + 1  # at most one copy too many
    for dataset, url in zip(datasets, urls, strict=True):
        assert payloads(get_frames(url, "1,48")) == [
            dataset.PixelData[: 256 * 256],
            dataset.PixelData[47 * 256 * 256 :],
        ]
    verify = ["verify", "--json", "--verify-orphan-seconds", "0"]
    found = json.loads(cli(server.data_dir, settings, *verify).stdout)
    orphans = [f for f in found["findings"] if f["problem"] == "orphan-blob"]
    assert len(orphans) == total - len(datasets)
    repaired = json.loads(cli(server.data_dir, settings, *verify, "--repair").stdout)
    assert repaired["remaining"] == 0
    assert cli(server.data_dir, settings, "tiers", "apply").returncode == 0
    assert blobs_in(server.data_dir / "blobs") == {} and len(blobs_in(cold)) == len(datasets)
    for dataset, url in zip(datasets, urls, strict=True):
        assert payloads(get_frames(url, "2")) == [dataset.PixelData[256 * 256 : 2 * 256 * 256]]
