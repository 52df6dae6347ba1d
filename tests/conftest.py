"""Shared fixtures: the real test data in place, real servers over real HTTP."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.servers import ArchiveServer, ObjectServer, PostgresCluster

PROJECT = Path(__file__).resolve().parent.parent
# The real slides and DICOM objects beside the project; never copied into it.
TESTDATA = Path(os.environ.get("WSIARCHIVE_TESTDATA", PROJECT.parent / "shared" / "testdata"))


def is_dicom_file(path: Path) -> bool:
    """A Part-10 file: 'DICM' after the 128-byte preamble."""
    try:
        with open(path, "rb") as fp:
            fp.seek(128)
            return fp.read(4) == b"DICM"
    except OSError:
        return False


def dicom_files() -> list[Path]:
    """Every DICOM object in testdata/dicom and testdata/tiny-synthetic."""
    files = [
        path
        for folder in ("dicom", "tiny-synthetic")
        for path in sorted((TESTDATA / folder).rglob("*"))
        if path.is_file() and is_dicom_file(path)
    ]
    return files


def data_id(path: Path) -> str:
    return str(path.relative_to(TESTDATA))


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"test data not found at {TESTDATA} (set WSIARCHIVE_TESTDATA)")
    return TESTDATA


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One archive server for the session (SQLite + filesystem defaults)."""
    instance = ArchiveServer(tmp_path_factory.mktemp("archive") / "data").start()
    yield instance
    instance.stop()


class _Servers:
    """Starts archive servers of their own under *root*, and stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ArchiveServer] = []

    def __call__(self, **settings: str) -> ArchiveServer:
        instance = ArchiveServer(self.root / f"data{len(self.started)}", dict(settings)).start()
        self.started.append(instance)
        return instance

    def stop(self) -> None:
        for instance in self.started:
            instance.stop()


@pytest.fixture
def fresh_server(tmp_path: Path):
    """A server of its own for tests that need an empty archive or special settings."""
    servers = _Servers(tmp_path)
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def fresh_server_module(tmp_path_factory: pytest.TempPathFactory):
    """Like fresh_server, shared by the tests of one module."""
    servers = _Servers(tmp_path_factory.mktemp("module-archive"))
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    if not PostgresCluster.available():
        pytest.fail("PostgreSQL server binaries are missing (apt-get install postgresql)")
    # Not under pytest's temporary root: PostgreSQL refuses to run as root, and the user it
    # runs as must be able to reach its directory.
    directory = Path(tempfile.mkdtemp(prefix="wsiarchive-pg-"))
    cluster = PostgresCluster(directory).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


# -- object storage: moto (S3) and Azurite (Azure Blob), one server each per session ----------
@pytest.fixture(scope="session")
def moto_server():
    instance = ObjectServer("s3").start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def azurite_server():
    instance = ObjectServer("azure").start()
    yield instance
    instance.stop()


_buckets = iter(range(1_000_000))


@pytest.fixture
def s3_bucket(moto_server):
    """A new S3 bucket on moto: blob_url, blob_options and an independent (boto3) reader."""
    return moto_server.bucket(f"wsiarchive-{next(_buckets)}")


@pytest.fixture
def azure_container(azurite_server):
    """A new container on Azurite: blob_url, blob_options, an azure-storage-blob reader."""
    return azurite_server.bucket(f"wsiarchive-{next(_buckets)}")


@pytest.fixture(params=["s3", "azure"])
def object_bucket(request):
    """A new bucket on each object store in turn (S3 on moto, Azure Blob on Azurite)."""
    fixture = "s3_bucket" if request.param == "s3" else "azure_container"
    return request.getfixturevalue(fixture)


# -- the in-process layer: no server process, the index on a temporary SQLite file ------------
@pytest.fixture
def empty_archive(tmp_path: Path):
    """An empty archive of this test's own."""
    from tests.inprocess import open_at

    opened, _ = open_at(tmp_path / "archive")
    yield opened
    opened.close()


@pytest.fixture
def empty_web(tmp_path: Path):
    """(archive, Flask test client) over an empty archive of this test's own."""
    from tests.inprocess import client, open_at

    opened, settings = open_at(tmp_path / "archive")
    yield opened, client(opened, settings)
    opened.close()


@pytest.fixture(scope="session")
def corpus_archive(tmp_path_factory: pytest.TempPathFactory, testdata: Path):
    """An archive holding the search corpus (tests/corpus.py) and a real WSI instance, shared
    by the in-process tests that only read; with its settings."""
    from tests import corpus
    from tests.inprocess import open_at, store

    opened, settings = open_at(tmp_path_factory.mktemp("corpus") / "archive")
    for dataset in corpus.instances():
        store(opened, dataset)
    store(opened, (testdata / "dicom" / "wsi2dcm_jpeg.dcm").read_bytes())
    yield opened, settings
    opened.close()


@pytest.fixture(scope="session")
def corpus_web(corpus_archive):
    """Flask's test client over the corpus archive."""
    from tests.inprocess import client

    opened, settings = corpus_archive
    return client(opened, settings)
