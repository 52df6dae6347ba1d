"""The object-storage blob store against real servers on loopback (moto's S3, Azurite):
every BlobStore method, checked with an independent client of the bucket."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storage.blobs import open_blob_store
from storage.blobs.objectstore import ObjectBlobStore, store_options
from storage.errors import BlobMissing, StorageUnavailable
from tests.inprocess import settings_for
from tests.servers import ObjectServer


def _store(tmp_path: Path, bucket, **values) -> ObjectBlobStore:
    store = open_blob_store(settings_for(tmp_path, **{**bucket.settings, **values}))
    assert isinstance(store, ObjectBlobStore)
    return store


def _placed(store: ObjectBlobStore, key: str, data: bytes) -> None:
    staged = store.stage()
    staged.write(data)
    store.place(staged, key)


def test_a_placed_blob_is_the_staged_bytes_in_the_bucket(tmp_path, object_bucket) -> None:
    store = _store(tmp_path, object_bucket)
    data = os.urandom(19 << 20)  # three parts of a multipart upload
    staged = store.stage()
    for start in range(0, len(data), 1 << 20):
        staged.write(data[start : start + (1 << 20)])
    store.place(staged, "1.2/3.4/5.6.abc.dcm")
    assert not staged.path.exists()  # the staging file is gone once the upload completed
    assert object_bucket.keys() == ["1.2/3.4/5.6.abc.dcm"]
    assert object_bucket.read("1.2/3.4/5.6.abc.dcm") == data
    assert store.size("1.2/3.4/5.6.abc.dcm") == len(data)
    with store.open("1.2/3.4/5.6.abc.dcm") as fp:
        assert fp.read(100) == data[:100]
        fp.seek(5 << 20)
        assert fp.read(10) == data[5 << 20 : (5 << 20) + 10]
        fp.seek(0)
        assert fp.read() == data
    ranges = [(0, 132), (7 << 20, 4096), (7 << 20, 10), (len(data) - 5, 5)]
    assert list(store.read_ranges("1.2/3.4/5.6.abc.dcm", ranges)) == [
        data[o : o + n] for o, n in ranges
    ]
    with store.local_file("1.2/3.4/5.6.abc.dcm") as path:
        assert path.read_bytes() == data
    assert not path.exists()


def test_missing_objects_are_blob_missing(tmp_path, object_bucket) -> None:
    store = _store(tmp_path, object_bucket)
    with pytest.raises(BlobMissing):
        store.size("no/such.dcm")
    with pytest.raises(BlobMissing):
        store.open("no/such.dcm")
    with pytest.raises(BlobMissing):
        list(store.read_ranges("no/such.dcm", [(0, 10)]))
    with pytest.raises(BlobMissing), store.local_file("no/such.dcm"):
        pass
    store.delete("no/such.dcm")  # deleting what is not there is no error


def test_listing_delete_and_quarantine(tmp_path, object_bucket) -> None:
    store = _store(tmp_path, object_bucket)
    before = time.time() - 60
    for name in ("a/1.dcm", "a/2.dcm", "b/3.dcm"):
        _placed(store, name, name.encode() * 100)
    listed = dict(store.blob_keys())
    assert sorted(listed) == ["a/1.dcm", "a/2.dcm", "b/3.dcm"]
    assert all(before < mtime < time.time() + 60 for mtime in listed.values())
    assert list(store.read_ranges("a/1.dcm", [(0, 7)])) == [b"a/1.dcm"]  # now cached
    store.delete("a/1.dcm")
    with pytest.raises(BlobMissing):
        list(store.read_ranges("a/1.dcm", [(0, 7)]))  # the cache forgot it
    where = store.quarantine("b/3.dcm")
    assert where.endswith("/.quarantine/b/3.dcm")
    assert sorted(k for k, _ in store.blob_keys()) == ["a/2.dcm"]
    assert object_bucket.keys() == [".quarantine/b/3.dcm", "a/2.dcm"]
    assert object_bucket.read(".quarantine/b/3.dcm") == b"b/3.dcm" * 100


def test_neighbouring_ranges_are_fetched_by_one_request(tmp_path, s3_bucket) -> None:
    store = _store(tmp_path, s3_bucket, blob_coalesce_kb=4)
    data = os.urandom(1 << 20)
    _placed(store, "t.dcm", data)
    tiles = [(i * 10_000, 9_000) for i in range(10)]  # 1,000-byte holes
    assert list(store.read_ranges("t.dcm", tiles)) == [data[o : o + n] for o, n in tiles]
    assert store.cache.requests == 1
    far = [(0, 10), (500_000, 10)]
    store.cache.forget("t.dcm")
    list(store.read_ranges("t.dcm", far))
    assert store.cache.requests == 3


def test_the_staging_area_is_local_and_purged(tmp_path, s3_bucket) -> None:
    store = _store(tmp_path, s3_bucket)
    staged = store.stage()
    staged.write(b"half an upload")
    workspace = store.workspace()
    assert store.staging_area() in staged.path.parents and workspace.parent == store.staging
    assert store.purge_staging() == 2
    assert s3_bucket.keys() == []


def test_an_unreachable_store_is_storage_unavailable(tmp_path) -> None:
    server = ObjectServer("s3").start()
    try:
        bucket = server.bucket("gone-soon")
        store = _store(tmp_path, bucket, blob_options=_quick(bucket.options))
        _placed(store, "x.dcm", b"x" * 100)
    finally:
        server.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.size("x.dcm")
    staged = store.stage()
    staged.write(b"y" * 100)
    with pytest.raises(StorageUnavailable):
        store.place(staged, "y.dcm")
    assert time.monotonic() - started < 20


def _quick(options: dict) -> str:
    import json

    return json.dumps({**options, "retry_config": {"max_retries": 1, "retry_timeout": 2}})


def test_options_split_into_store_client_and_retry_keys() -> None:
    split = store_options('{"endpoint": "http://x", "allow_http": true, "timeout": "60s"}')
    assert split["config"] == {"endpoint": "http://x"}
    assert split["client_options"] == {"allow_http": True, "timeout": "60s"}
    assert split["retry_config"]["max_retries"] == 3
    with pytest.raises(ValueError):
        store_options("[]")


def test_the_frames_of_one_request_cost_one_get(tmp_path, s3_bucket, testdata) -> None:
    from tests.dicomfiles import frames, parse_multipart
    from tests.inprocess import client, open_at, store

    path = testdata / "dicom" / "wsi2dcm_jpeg.dcm"
    archive, settings = open_at(tmp_path / "archive", **s3_bucket.settings)
    try:
        stored = store(archive, path.read_bytes())
        blobs = archive._blobs
        assert isinstance(blobs, ObjectBlobStore)
        expected = frames(path)
        numbers = ",".join(str(n) for n in range(1, len(expected) + 1))
        url = (
            f"/dicomweb/studies/{stored.study}/series/{stored.series}/instances/"
            f"{stored.instance}/frames/{numbers}"
        )
        accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
        before = blobs.cache.requests
        response = client(archive, settings).get(url, headers={"Accept": accept})
        assert response.status_code == 200
        parts = parse_multipart(response.headers["Content-Type"], response.data)
        assert [body for _, body in parts] == expected
        assert blobs.cache.requests - before == 1  # every tile in one coalesced GET
        again = client(archive, settings).get(url, headers={"Accept": accept})
        assert again.data == response.data and blobs.cache.requests - before == 1  # cached
    finally:
        archive.close()


def test_the_azure_scheme_names_the_same_container(tmp_path, azure_container) -> None:
    url = azure_container.url.replace("az://", "azure://")
    store = _store(tmp_path, azure_container, blob_url=url)
    _placed(store, "a/b.dcm", b"azure")
    assert azure_container.keys() == ["a/b.dcm"]


def test_options_that_cannot_open_a_store_are_a_readable_error(tmp_path) -> None:
    settings = settings_for(tmp_path, blob_url="s3://b/p", blob_options='{"no_such_key": 1}')
    with pytest.raises(ValueError, match="cannot be opened"):
        open_blob_store(settings)
