"""Fault campaigns: every front door killed -9 at random moments of a store, restarted and
checked. Nothing acknowledged is lost or changed, nothing partial is visible, and
`wsiarchive verify` finds nothing wrong.

Each door's trials share one data directory, so every trial also checks that no later crash
damaged what earlier trials stored. The kill moment is drawn from a seeded RNG within the span
one undisturbed run of the same operation took. WSIARCHIVE_CAMPAIGN_TRIALS=N runs N trials per
door (default 3), WSIARCHIVE_CAMPAIGN_SEED picks other moments; each door prints its tally
(trials, acknowledged instances checked, where the kills fell)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import requests
from pydicom.uid import generate_uid

from tests.dicomfiles import dataset_bytes, frames_of, multipart_body, read
from tests.inprocess import part10
from tests.servers import ArchiveServer

TRIALS = int(os.environ.get("WSIARCHIVE_CAMPAIGN_TRIALS", "3"))
SEED = int(os.environ.get("WSIARCHIVE_CAMPAIGN_SEED", "1729"))
DICOM = "application/dicom; transfer-syntax=*"
# Real multi-frame WSI: one wsi2dcm level and two 3DHISTECH WG26 pyramids (20 instances).
SLIDE_FILES = ["dicom/wsi2dcm_jpeg.dcm"] + [
    f"dicom/{folder}/{name}"
    for folder in ("3dhistech-wg26-BPAEC", "3dhistech-wg26-FluorCell_4")
    for name in ("1_Map", "2", "5_0", "6_0", "7_0", "8_0", "9_0", "10_0", "11_0", "12_0")
]
# The vendor slide converted: of the small real slides the one converted fastest (its base
# level is copied tile for tile; the 24 kB generic TIFF is smaller on disk but decodes and
# re-encodes 50 megapixels).
VENDOR_SLIDE = "svs/CMU-1-Small-Region.svs"
SLIDE_METADATA = [
    "--container-id",
    "FAULT-1",
    "--anatomy",
    "SCT:39607008:Lung structure",
    "--stain",
    "hematoxylin stain",
]


# -- what a trial sends, and what came back ------------------------------------------------------
@dataclass
class Load:
    """One trial's instances: real slides under fresh UIDs, as Part-10 bytes by SOP UID."""

    parts: dict[str, bytes]
    uids: dict[str, tuple[str, str]]  # SOP Instance UID -> (study, series)

    @classmethod
    def of(cls, testdata: Path, names: list[str]) -> Load:
        fresh: dict[str, str] = {}
        parts: dict[str, bytes] = {}
        uids: dict[str, tuple[str, str]] = {}
        for name in names:
            dataset = read(testdata / name)
            for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                old = getattr(dataset, keyword)
                setattr(dataset, keyword, fresh.setdefault(old, generate_uid()))
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            parts[dataset.SOPInstanceUID] = part10(dataset)
            uids[dataset.SOPInstanceUID] = (dataset.StudyInstanceUID, dataset.SeriesInstanceUID)
        return cls(parts, uids)

    def batches(self, size: int) -> list[list[str]]:
        keys = list(self.parts)
        return [keys[i : i + size] for i in range(0, len(keys), size)]


@dataclass
class Tally:
    """A door's campaign in numbers."""

    door: str
    trials: int = 0
    acknowledged: int = 0  # acknowledged instances checked byte for byte after a kill
    completed_unacknowledged: int = 0  # stored server-side, acknowledgement lost; intact
    kills: Counter[str] = field(default_factory=Counter)  # where each kill fell

    def report(self) -> str:
        return (
            f"fault campaign {self.door}: {self.trials} trials, {self.acknowledged} "
            f"acknowledged instances checked, {self.completed_unacknowledged} stored but "
            f"unacknowledged (intact), kills: {dict(self.kills)}"
        )


# One web worker; the campaign's DICOM peer known to the listener (its AE title, loopback).
SETTINGS = {
    "workers": "1",
    "dimse_peers": json.dumps([{"ae_title": "CAMPAIGN", "host": "127.0.0.1"}]),
}


def phase_at_kill(data_dir: Path) -> str:
    """Where a kill fell, read from what it left: claims open (placing the blob or
    committing the index), an upload or conversion in the staging area, or neither."""
    with contextlib.closing(sqlite3.connect(data_dir / "index.sqlite3")) as index:
        claims = index.execute(
            "SELECT count(*) FROM instance WHERE pending_key IS NOT NULL"
        ).fetchone()[0]
    if claims:
        return "commit"
    if any((data_dir / "blobs" / ".staging").iterdir()):
        return "write"
    return "between"


def listed(server: ArchiveServer) -> dict[str, tuple[str, str]]:
    """Every instance QIDO-RS lists: SOP Instance UID -> (study, series)."""
    response = requests.get(server.url + "/instances", params={"limit": 1000}, timeout=60)
    assert response.status_code in (200, 204), response.text
    assert "Warning" not in response.headers, "more instances than one page holds"
    found = response.json() if response.status_code == 200 else []
    return {
        i["00080018"]["Value"][0]: (i["0020000D"]["Value"][0], i["0020000E"]["Value"][0])
        for i in found
    }


def retrieved(server: ArchiveServer, study: str, series: str, instance: str) -> bytes:
    url = f"{server.url}/studies/{study}/series/{series}/instances/{instance}"
    response = requests.get(url, headers={"Accept": DICOM}, timeout=60)
    assert response.status_code == 200, f"{instance}: {response.status_code} {response.text}"
    return response.content


def verify_clean(data_dir: Path) -> int:
    """`wsiarchive verify --json` (the command, run here in-process to spare a start-up):
    no findings at all; returns how many instances it checked."""
    from wsiarchive.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["verify", "--json", "--data-dir", str(data_dir)])
    report = json.loads(out.getvalue())
    assert report["findings"] == [] and status == 0, report
    return int(report["instances"])


@dataclass
class Ledger:
    """Everything a door's trials sent and had acknowledged, across the campaign."""

    sent: dict[str, bytes] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    compare: Callable[[bytes], bytes] = lambda raw: raw  # what of the bytes must match

    def check(self, server: ArchiveServer, trial: Load, tally: Tally) -> None:
        """Nothing acknowledged lost or changed; whatever else is listed is intact."""
        found = listed(server)
        lost = self.acknowledged - set(found)
        assert not lost, f"acknowledged instances lost: {sorted(lost)}"
        foreign = set(found) - set(self.sent)
        assert not foreign, f"listed but never sent: {sorted(foreign)}"
        for uid in trial.parts:
            if uid not in found:
                continue
            got = retrieved(server, *found[uid], uid)
            assert self.compare(got) == self.compare(trial.parts[uid]), f"{uid} differs"
            if uid in self.acknowledged:
                tally.acknowledged += 1
            else:
                tally.completed_unacknowledged += 1
            _check_last_frame(server, found[uid], uid, trial.parts[uid])


def _check_last_frame(server: ArchiveServer, where: tuple[str, str], uid: str, sent: bytes) -> None:
    """The frame table of a listed instance is complete: its last frame is served whole."""
    expected = frames_of(sent)
    if not expected:
        return
    url = f"{server.url}/studies/{where[0]}/series/{where[1]}/instances/{uid}/frames/"
    response = requests.get(
        url + str(len(expected)),
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert expected[-1] in response.content


# -- the campaigns ---------------------------------------------------------------------------------
def server_campaign(
    tmp_path: Path,
    testdata: Path,
    door: str,
    operation: Callable[[ArchiveServer, Load, set[str]], None],
    ledger: Ledger,
    dimse: bool = False,
) -> Tally:
    """Trials of: *operation* running against a server, the server killed -9 during it,
    restarted (its recovery runs), and everything checked."""
    rng = random.Random(f"{SEED}-{door}")
    tally = Tally(door)
    data = tmp_path / "data"
    server = ArchiveServer(data, SETTINGS).start()
    try:
        if dimse:
            server.wait_dimse()
        baseline = Load.of(testdata, SLIDE_FILES)
        ledger.sent.update(baseline.parts)
        began = time.monotonic()
        operation(server, baseline, ledger.acknowledged)
        span = time.monotonic() - began
        assert ledger.acknowledged == set(baseline.parts), "the undisturbed run stored all"
        for _ in range(TRIALS):
            trial = Load.of(testdata, SLIDE_FILES)
            ledger.sent.update(trial.parts)
            delay = rng.uniform(0.0, span)
            errors: list[BaseException] = []

            def client(
                server: ArchiveServer = server, trial: Load = trial, errors: list = errors
            ) -> None:
                try:
                    operation(server, trial, ledger.acknowledged)
                except BaseException as exc:  # re-raised by the test's own thread
                    errors.append(exc)

            worker = threading.Thread(target=client, daemon=True)
            worker.start()
            time.sleep(delay)
            server.kill()
            worker.join(timeout=60)
            assert not worker.is_alive(), "the client did not notice the server's death"
            if errors:
                raise errors[0]
            tally.kills[phase_at_kill(data)] += 1
            server = ArchiveServer(data, SETTINGS).start()
            assert list((data / "blobs" / ".staging").iterdir()) == [], "recovery ran"
            ledger.check(server, trial, tally)
            assert verify_clean(data) == len(listed(server))
            tally.trials += 1
            if dimse:
                server.wait_dimse()
    finally:
        server.stop()
    print(tally.report())
    return tally


def stow(server: ArchiveServer, load: Load, acknowledged: set[str]) -> None:
    """STOW-RS requests of several instances each; a 200 acknowledges all of a request."""
    for batch in load.batches(6):
        body, content_type = multipart_body([load.parts[uid] for uid in batch])
        try:
            response = requests.post(
                server.url + "/studies",
                data=body,
                headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
                timeout=60,
            )
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            return  # the server died: this request is not acknowledged
        assert response.status_code == 200, response.text
        answer = response.json()
        assert "00081198" not in answer, answer  # no Failed SOP Sequence
        referenced = {item["00081155"]["Value"][0] for item in answer["00081199"]["Value"]}
        assert referenced == set(batch)
        acknowledged.update(batch)


def test_stow_rs_killed_mid_store(tmp_path: Path, testdata: Path) -> None:
    tally = server_campaign(tmp_path, testdata, "STOW-RS", stow, Ledger())
    assert tally.trials == TRIALS


def c_store(server: ArchiveServer, load: Load, acknowledged: set[str]) -> None:
    """C-STORE associations of several instances each (pynetdicom as the SCU); a Success
    status acknowledges one instance."""
    from pynetdicom import AE

    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    files = {}
    for uid, raw in load.parts.items():
        files[uid] = folder / f"campaign-{uid}.dcm"
        files[uid].write_bytes(raw)
    contexts = {(read(p).SOPClassUID, read(p).file_meta.TransferSyntaxUID) for p in files.values()}
    try:
        for batch in load.batches(7):
            ae = AE(ae_title="CAMPAIGN")
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
            for sop_class, syntax in contexts:
                ae.add_requested_context(sop_class, [syntax])
            assoc = ae.associate("127.0.0.1", server.dimse_port, ae_title="WSIARCHIVE")
            if not assoc.is_established:
                return
            for uid in batch:
                status = assoc.send_c_store(files[uid])
                if "Status" not in status:
                    return  # the association died with the server
                assert status.Status == 0x0000, f"{uid}: {status.Status:#06x}"
                acknowledged.add(uid)
            assoc.release()
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)


def test_c_store_killed_mid_association(tmp_path: Path, testdata: Path) -> None:
    # DIMSE carries no File Meta Information: the data set is what must come back unchanged.
    ledger = Ledger(compare=dataset_bytes)
    tally = server_campaign(tmp_path, testdata, "C-STORE", c_store, ledger, dimse=True)
    assert tally.trials == TRIALS


# -- the command line ---------------------------------------------------------------------------
def cli(data: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wsiarchive", "import", "--data-dir", str(data), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def staged(data: Path) -> set[str]:
    staging = data / "blobs" / ".staging"
    return {p.name for p in staging.iterdir()} if staging.is_dir() else set()


def work_began(process: subprocess.Popen[str], data: Path, before: set[str]) -> float:
    """Wait until the import writes its first file into the staging area (or exits);
    returns the seconds since *process* was polled first."""
    began = time.monotonic()
    while process.poll() is None and not staged(data) - before:
        time.sleep(0.005)
    return time.monotonic() - began


def work_span(process: subprocess.Popen[str], data: Path) -> float:
    """Seconds an undisturbed import works: from its first staged file to its exit."""
    work_began(process, data, staged(data))
    began = time.monotonic()
    process.wait()
    return time.monotonic() - began


def killed_during(
    process: subprocess.Popen[str], data: Path, before: set[str], delay: float
) -> tuple[str, int]:
    """Kill -9 the import *delay* seconds into its work (its interpreter's start-up, which
    varies with the machine's load, left out); its output and exit status."""
    work_began(process, data, before)
    time.sleep(delay)
    process.kill()
    out, _ = process.communicate()
    return out, process.returncode


def write_folder(folder: Path, load: Load) -> None:
    folder.mkdir(parents=True)
    for number, raw in enumerate(load.parts.values()):
        (folder / f"{number:02d}.dcm").write_bytes(raw)


def test_import_of_dicom_files_killed(tmp_path: Path, testdata: Path) -> None:
    """`wsiarchive import` of a folder killed -9 while a server serves the archive: every
    file it printed "stored" for is retrievable byte for byte and nothing partial is listed,
    before any recovery; the next start of the server releases the dead imports' claims."""
    rng = random.Random(f"{SEED}-import")
    tally, ledger = Tally("import DICOM"), Ledger()
    data = tmp_path / "data"
    server = ArchiveServer(data, SETTINGS).start()
    try:
        span = 0.0
        for trial_number in range(TRIALS + 1):
            trial = Load.of(testdata, SLIDE_FILES)
            folder = tmp_path / f"in{trial_number}"
            write_folder(folder, trial)
            ledger.sent.update(trial.parts)
            before = staged(data)
            process = cli(data, str(folder))
            if trial_number == 0:  # the undisturbed run
                span = work_span(process, data)
                out, errors = process.communicate()
                assert process.returncode == 0, errors
                status = 0
            else:
                out, status = killed_during(process, data, before, rng.uniform(0.0, span))
                tally.kills[phase_at_kill(data) if status != 0 else "after exit"] += 1
            by_path = {str(folder / f"{n:02d}.dcm"): uid for n, uid in enumerate(trial.parts)}
            for line in out.splitlines():
                if line.startswith("stored "):
                    ledger.acknowledged.add(by_path[line.split()[1]])
            ledger.check(server, trial, tally)
            assert verify_clean(data) >= len(listed(server))
            tally.trials += trial_number > 0
        server.stop()
        server = ArchiveServer(data, SETTINGS).start()  # its recovery
        assert list((data / "blobs" / ".staging").iterdir()) == []
        assert phase_at_kill(data) == "between", "the dead imports' claims were released"
        assert verify_clean(data) == len(listed(server))
        assert ledger.acknowledged <= set(listed(server))
    finally:
        server.stop()
    print(tally.report())


def test_import_of_a_vendor_slide_killed(tmp_path: Path, testdata: Path) -> None:
    """`wsiarchive import` of a vendor slide killed -9 while converting or storing it: the
    slide's instances are all listed or none is (a dead import's claims stay invisible until
    the next start's recovery releases them), every one listed is intact, verify is clean,
    and the import run again stores the slide whole (each trial re-runs the import a kill left
    unfinished; a last undisturbed run completes the campaign)."""
    rng = random.Random(f"{SEED}-convert")
    tally = Tally("import slide")
    data = tmp_path / "data"
    slide = str(testdata / VENDOR_SLIDE)

    def importing(accession: int) -> subprocess.Popen[str]:
        return cli(data, *SLIDE_METADATA, "--accession", f"ACC-{accession}", slide)

    server = ArchiveServer(data, SETTINGS).start()
    try:
        process = importing(0)
        span = work_span(process, data)
        assert process.returncode == 0, process.communicate()[1]
        whole = len(slide_instances(server, 0))
        assert whole > 1
        accession, reruns = 1, 0
        for _ in range(TRIALS):
            before = staged(data)
            process = importing(accession)
            _, status = killed_during(process, data, before, rng.uniform(0.0, span))
            tally.kills[phase_at_kill(data) if status != 0 else "after exit"] += 1
            stored = slide_instances(server, accession)
            assert len(stored) in (0, whole), f"{len(stored)} of {whole} instances listed"
            if status == 0:
                assert len(stored) == whole, "an import that exited 0 stored the slide"
            check_slide(server, stored)
            tally.acknowledged += len(stored)
            assert verify_clean(data) >= len(listed(server))
            tally.trials += 1
            if stored:
                accession += 1
            else:
                reruns += 1  # the next trial runs this import again
        if not slide_instances(server, accession):
            again = importing(accession)
            _, errors = again.communicate(timeout=120)
            assert again.returncode == 0, errors
            reruns += 1
            accession += 1
        for number in range(accession):
            assert len(slide_instances(server, number)) == whole, "the re-run stored it whole"
        server.stop()
        server = ArchiveServer(data, SETTINGS).start()  # its recovery
        assert list((data / "blobs" / ".staging").iterdir()) == []
        assert phase_at_kill(data) == "between"
        assert verify_clean(data) == len(listed(server)) == whole * accession
    finally:
        server.stop()
    print(tally.report() + f", imports run again: {reruns}")


def check_slide(server: ArchiveServer, stored: list[tuple[str, str, str]]) -> None:
    """Each listed instance of a converted slide is whole: every frame it declares is there."""
    for study, series, uid in stored:
        raw = retrieved(server, study, series, uid)
        dataset = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
        assert len(frames_of(raw)) == int(dataset.get("NumberOfFrames", 1) or 1)


def slide_instances(server: ArchiveServer, trial: int) -> list[tuple[str, str, str]]:
    response = requests.get(
        server.url + "/instances", params={"AccessionNumber": f"ACC-{trial}"}, timeout=60
    )
    assert response.status_code in (200, 204), response.text
    found = response.json() if response.status_code == 200 else []
    return [
        (i["0020000D"]["Value"][0], i["0020000E"]["Value"][0], i["00080018"]["Value"][0])
        for i in found
    ]
