"""`wsiarchive verify [--repair]` on a real archive damaged in every way it checks for."""

from __future__ import annotations

import json
import os
import sqlite3
import time

from storage.index import integrity
from storage.index.engine import Database
from storage.index.writes import IndexWriter
from tests.inprocess import TESTER, multiframe, open_at, store
from wsiarchive.cli import main

FILES = [
    "dicom/ezwsi_label_test.dcm",
    "dicom/ezwsi_multiframe_camelyon_challenge_image.dcm",
    "dicom/wsi2dcm_jpeg.dcm",
    "dicom/wsi2dcm_raw.dcm",
]


def run(capsys, data_dir, *flags: str) -> tuple[int, dict]:
    status = main(["verify", "--data-dir", str(data_dir), "--json", *flags])
    return status, json.loads(capsys.readouterr().out)


def problems(report: dict) -> dict[str, list[bool]]:
    found: dict[str, list[bool]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["problem"], []).append(finding["repaired"])
    return found


def test_clean_archive_verifies(tmp_path, testdata, capsys) -> None:
    archive, _ = open_at(tmp_path)
    for name in FILES:
        archive.ingest_file(testdata / name, who=TESTER)
    archive.close()
    status, report = run(capsys, tmp_path)
    assert (status, report["findings"], report["instances"], report["blobs"]) == (0, [], 4, 4)


def test_every_damage_is_found_and_the_safe_ones_repaired(tmp_path, testdata, capsys) -> None:
    archive, settings = open_at(tmp_path)
    stored = [archive.ingest_file(testdata / name, who=TESTER) for name in FILES]
    extra = store(archive, multiframe(3))
    records = {
        s.instance: archive.records(s.study, s.series, s.instance, who=TESTER)[0] for s in stored
    }
    blob = {uid: tmp_path / "blobs" / record.blob_key for uid, record in records.items()}
    label, camelyon, jpeg, raw = (s.instance for s in stored)
    blob[label].unlink()  # missing
    with open(blob[camelyon], "ab") as fp:  # size mismatch
        fp.write(b"\0\0")
    data = bytearray(blob[jpeg].read_bytes())  # hash mismatch, same size
    data[-20] ^= 0xFF
    blob[jpeg].write_bytes(bytes(data))
    orphan = tmp_path / "blobs" / "1.2" / "3.4" / "orphan.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes((testdata / FILES[0]).read_bytes())
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    database = Database.open(settings.database)
    writer = IndexWriter(database.engine)
    writer.claim("1.2.826.0.1.3680043.10.999.7", "9/9/stale.dcm", False)
    extra_pk = archive.records(extra.study, who=TESTER)[0].pk
    wrong = archive.frame_table(archive.records(extra.study, who=TESTER)[0])
    assert wrong is not None
    integrity.replace_frames(
        database.engine, extra_pk, wrong.__class__.from_ranges([0], [1]).to_bytes()
    )
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.execute(
            "UPDATE instance SET content_hash = NULL, claimed_at = '2000-01-01 00:00:00' "
            "WHERE sop_instance_uid IN (?, ?)",
            (raw, "1.2.826.0.1.3680043.10.999.7"),
        )
    archive.close()
    database.dispose()

    status, report = run(capsys, tmp_path)
    assert status == 1
    assert problems(report) == {
        "missing-blob": [False],
        "size-mismatch": [False],
        "hash-mismatch": [False],
        "orphan-blob": [False],
        "stale-claim": [False],
        "frame-table-mismatch": [False],
        "missing-hash": [False],
    }

    status, report = run(capsys, tmp_path, "--repair")
    assert status == 1  # the missing and damaged blobs remain: never silently deleted
    assert problems(report) == {
        "missing-blob": [False],
        "size-mismatch": [False],
        "hash-mismatch": [False],
        "orphan-blob": [True],
        "stale-claim": [True],
        "frame-table-mismatch": [True],
        "missing-hash": [True],
    }
    assert not orphan.exists()
    assert (tmp_path / "blobs" / ".quarantine" / "1.2" / "3.4" / "orphan.dcm").exists()
    assert blob[camelyon].exists() and blob[jpeg].exists()

    status, report = run(capsys, tmp_path)
    assert sorted(problems(report)) == ["hash-mismatch", "missing-blob", "size-mismatch"]
    # The rebuilt frame table serves the right frames again.
    archive, _ = open_at(tmp_path)
    record = archive.records(extra.study, who=TESTER)[0]
    frames = archive.frames(record)
    assert [frames.read(n) for n in (1, 2, 3)] == [
        multiframe(3).PixelData[i * 256 : (i + 1) * 256] for i in range(3)
    ]
    archive.close()
