"""Many servers, one archive: two `serve` processes (each with its DICOM listener) and two
`wsiarchive worker`s on one PostgreSQL index and one S3 bucket (moto's server). Instances come
in through both servers (STOW-RS to one, C-STORE to the other, conversion jobs submitted to
both), are read back through the other server byte for byte, studies are deleted through the
server that did not store them, and the change feed, read through either server, has every
create and delete exactly once, in commit order."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import uuid
from pathlib import Path

import pydicom
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.dicomfiles import frames, multipart_body, read
from tests.workers import METADATA, WorkerProcess, queue_env, wait_for

STOWED = [  # through server A
    "dicom/wsi2dcm_jpeg.dcm",
    "dicom/pathml_small_dicom.dcm",
    "dicom/wsi2dcm_raw.dcm",
]
C_STORED = [  # through server B's DICOM listener, by dcmtk's storescu (-xs: JPEG Lossless SV1)
    "radiology/fodicom_CR-ModalitySequenceLUT.dcm",
    "radiology/pydicom_CT_small.dcm",
    "radiology/pydicom_MR_small.dcm",
]
SLIDES = ["svs/CMU-1-Small-Region.svs", "tiny-synthetic/openslide-python/small.svs"]
PEERS = json.dumps([{"ae_title": "STORESCU", "host": "127.0.0.1"}])
TRAILING_PADDING = 0xFFFCFFFC
ANY = {"Accept": "application/dicom; transfer-syntax=*"}


def _uids(path: Path) -> tuple[str, str, str]:
    dataset = read(path)
    return dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID


def _instance_url(server, uids: tuple[str, str, str]) -> str:  # noqa: ANN001
    study, series, instance = uids
    return f"{server.url}/studies/{study}/series/{series}/instances/{instance}"


def _feed(server) -> list[dict]:  # noqa: ANN001
    """The whole change feed, page by page, as a follower reads it."""
    events: list[dict] = []
    while page := requests.get(
        f"{server.url}/changefeed",
        params={"offset": len(events), "limit": 7, "includeMetadata": "false"},
        timeout=30,
    ).json():
        events += page
    return events


def _wait_port(port: int) -> None:
    """Until the DICOM listener (started after the HTTP server) accepts connections."""

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 30, 0.1, f"the DICOM listener on {port}")


def _job_done(server, job_id: str) -> dict:  # noqa: ANN001
    api = server.url.removesuffix("/dicomweb") + "/api/jobs/" + job_id
    return wait_for(
        lambda: (
            (job := requests.get(api, timeout=10).json())["state"] in ("done", "failed") and job
        ),
        300,
        0.3,
        f"job {job_id}",
    )


def test_two_servers_and_two_workers_on_one_index_and_bucket(
    fresh_server, postgres, s3_bucket, testdata: Path, tmp_path: Path
) -> None:
    database = postgres.database(f"cluster_{uuid.uuid4().hex[:10]}")
    shared = {
        "database_url": database,
        **s3_bucket.settings,
        "job_queue": "postgresql",
        "anonymous_scopes": "read write delete",
        "dimse_peers": PEERS,
        "max_uploads": "-1",
    }
    a, b = fresh_server(**shared), fresh_server(**shared)
    workers = [
        WorkerProcess(
            tmp_path / f"worker{n}",
            queue_env(database, tmp_path / f"w{n}-blobs", **s3_bucket.settings),
        ).start()
        for n in (1, 2)
    ]
    try:
        for server in (a, b):
            assert requests.get(server.url.removesuffix("/dicomweb") + "/readyz").status_code == 200

        # In through both servers: STOW-RS to A, C-STORE to B, a conversion job to each.
        stowed = [testdata / name for name in STOWED]
        body, content_type = multipart_body([p.read_bytes() for p in stowed])
        response = requests.post(
            a.url + "/studies", data=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == 200, response.text
        c_stored = [testdata / name for name in C_STORED]
        _wait_port(b.dimse_port)
        pushed = subprocess.run(
            ["storescu", "-aec", "WSIARCHIVE", "-R", "-xs", "127.0.0.1", str(b.dimse_port)]
            + [str(p) for p in c_stored],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pushed.returncode == 0, pushed.stderr
        submitted = []
        for server, slide in zip((a, b), SLIDES, strict=True):
            api = server.url.removesuffix("/dicomweb") + "/api/jobs"
            made = requests.post(api, json={"path": str(testdata / slide), "metadata": METADATA})
            assert made.status_code == 202, made.text
            submitted.append((server, made.json()["id"]))
        jobs = [_job_done(server, job_id) for server, job_id in submitted]
        assert [job["state"] for job in jobs] == ["done", "done"], [j.get("reason") for j in jobs]
        converted = [uid for job in jobs for uid in job["sop_instance_uids"]]

        # Read through the other server, byte for byte.
        for path in stowed:
            uids = _uids(path)
            got = requests.get(_instance_url(b, uids) + "/frames/1")
            assert got.status_code == 200
            assert got.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0] == frames(path)[0]
        for path in c_stored:
            got = requests.get(_instance_url(a, _uids(path)), headers=ANY)
            assert got.status_code == 200
            # Attribute by attribute: storescu sends in the transfer syntax it negotiated, with
            # sequences of explicit length and no Data Set Trailing Padding (FFFC,FFFC), so the
            # bytes may differ from the file's; the values may not.
            stored, source = pydicom.dcmread(io.BytesIO(got.content)), read(path)
            tags = (set(stored.keys()) | set(source.keys())) - {TRAILING_PADDING}
            assert [tag for tag in tags if stored.get(tag) != source.get(tag)] == [], path.name
        for server, job in zip((b, a), jobs, strict=True):  # each job read where not submitted
            found = requests.get(
                f"{server.url}/studies/{job['study_instance_uid']}/instances"
            ).json()
            assert sorted(i["00080018"]["Value"][0] for i in found) == sorted(
                job["sop_instance_uids"]
            )
        every = [_uids(p)[2] for p in stowed + c_stored] + converted
        assert len(every) == len(set(every))
        assert len(s3_bucket.keys()) == len(every)  # one object per instance, nothing else

        # Delete through the server that did not store: gone everywhere at once.
        first_study = _uids(stowed[0])[0]
        gone = {_uids(p)[2] for p in stowed if _uids(p)[0] == first_study}
        assert requests.delete(f"{b.url}/studies/{first_study}").status_code == 204
        job_study = jobs[1]["study_instance_uid"]
        gone |= set(jobs[1]["sop_instance_uids"])
        assert requests.delete(f"{a.url}/studies/{job_study}").status_code == 204
        for server in (a, b):
            for study in (first_study, job_study):
                assert requests.get(f"{server.url}/studies/{study}/metadata").status_code == 404
        assert requests.delete(f"{a.url}/studies/{first_study}").status_code == 404
        assert len(s3_bucket.keys()) == len(every) - len(gone)

        # The change feed: every event once, in order, the same through either server.
        events = _feed(a)
        assert events == _feed(b)
        assert [e["Sequence"] for e in events] == list(range(1, len(events) + 1))
        creates = [e["SopInstanceUid"] for e in events if e["Action"] == "create"]
        deletes = [e["SopInstanceUid"] for e in events if e["Action"] == "delete"]
        assert sorted(creates) == sorted(every)  # each stored instance created once
        assert sorted(deletes) == sorted(gone)  # each deleted instance deleted once
        assert len(events) == len(every) + len(gone)  # nothing else (no update: none stored twice)
        position = {(e["SopInstanceUid"], e["Action"]): e["Sequence"] for e in events}
        assert all(position[(uid, "create")] < position[(uid, "delete")] for uid in gone)
        states = {e["SopInstanceUid"]: e["State"] for e in events}
        assert {uid for uid, state in states.items() if state == "deleted"} == gone
        assert {uid for uid, state in states.items() if state == "current"} == set(every) - gone

        # The live gauges, read from the shared index by whichever server is scraped.
        scraped = requests.get(b.url.removesuffix("/dicomweb") + "/metrics").text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
        }
        assert samples[("wsiarchive_conversion_jobs", (("state", "done"),))] == 2
        stored_bytes = sum(len(s3_bucket.read(key)) for key in s3_bucket.keys())  # noqa: SIM118 (a bucket, not a dict)
        tier_bytes = [v for (name, _), v in samples.items() if name == "wsiarchive_tier_bytes"]
        assert tier_bytes == [stored_bytes]
    finally:
        for worker in workers:
            worker.stop()
