"""The command line: settings resolution and documentation, `import` into the archive."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import requests

from tests.conftest import PROJECT
from tests.dicomfiles import read
from tests.servers import ArchiveServer
from wsiarchive import settings


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "wsiarchive", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    config = tmp_path / "archive.toml"
    config.write_text('port = 9001\nduplicate_policy = "overwrite"\nhost = "0.0.0.0"\n')
    resolved = settings.load(
        config,
        environ={"WSIARCHIVE_PORT": "9002", "WSIARCHIVE_FSYNC": "no"},
        overrides={"port": 9003},
    )
    assert resolved.port == 9003  # flag beats environment
    assert resolved.fsync is False  # environment beats default
    assert resolved.duplicate_policy == "overwrite"  # file beats default
    assert resolved.host == "0.0.0.0"
    assert resolved.threads == 4  # default
    assert settings.load(config, environ={"WSIARCHIVE_PORT": "9002"}).port == 9002


def test_bad_settings_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WSIARCHIVE_PORT: port must be int"):
        settings.load(environ={"WSIARCHIVE_PORT": "eighty"})
    with pytest.raises(ValueError, match="duplicate_policy must be one of"):
        settings.load(environ={"WSIARCHIVE_DUPLICATE_POLICY": "merge"})
    config = tmp_path / "bad.toml"
    config.write_text("colour = 3\n")
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        settings.load(config, environ={})
    result = run("settings", "--port", "x")
    assert result.returncode == 2


def test_documentation_is_generated_from_the_declarations() -> None:
    assert (PROJECT / "docs" / "settings.md").read_text() == settings.markdown_document()
    assert (PROJECT / "conf" / "wsiarchive.toml").read_text() == settings.toml_document()
    # The default configuration file is valid and changes nothing.
    assert settings.load(PROJECT / "conf" / "wsiarchive.toml", environ={}) == settings.Settings()
    # Every setting is a flag of the commands that use it, and only of those (`convert` has
    # no --dimse-port); `settings` offers all of them.
    for command in settings.COMMANDS:
        flags = set(re.findall(r"--[a-z-]+", run(command, "--help").stdout))
        used = {d.name for d in settings.declarations(command)}
        for declaration in settings.declarations():
            flag = "--" + declaration.name.replace("_", "-")
            assert (flag in flags) == (declaration.name in used), (command, flag)
    assert {d.name for d in settings.declarations("settings")} == {
        d.name for d in settings.declarations()
    }


def _import_with_a_slide(folder: Path, data: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """`import` of *folder*, which holds slide.svs, into *data*: the finished command and how
    many instances the slide became."""
    from tests.workers import SLIDE_FLAGS

    result = run("import", str(folder), "--data-dir", str(data), *SLIDE_FLAGS)
    assert result.returncode == 0, result.stderr
    converted = re.search(r"converted .*slide.svs into (\d+) instances", result.stdout)
    assert converted is not None, result.stdout
    return result, int(converted.group(1))


def test_a_folder_of_slides_dicom_and_notes_reports_each_kind(
    tmp_path: Path, testdata: Path
) -> None:
    folder = tmp_path / "scanner-output"
    folder.mkdir()
    (folder / "slide.svs").symlink_to(testdata / "svs" / "CMU-1-Small-Region.svs")
    (folder / "label.dcm").symlink_to(testdata / "dicom" / "wsi2dcm_jpeg.dcm")
    (folder / "readme.txt").write_text("scanned on Tuesday\n")
    data = tmp_path / "data"
    result, made = _import_with_a_slide(folder, data)
    assert made >= 1
    assert (
        f"1 DICOM instances stored, 1 slides converted into {made} instances, "
        "1 files skipped, 0 failed"
    ) in result.stdout
    server = ArchiveServer(data).start()
    try:
        instances = requests.get(server.url + "/instances").json()
        assert len(instances) == made + 1
    finally:
        server.stop()


def test_a_damaged_slide_in_a_folder_is_a_failure_not_a_skip(
    tmp_path: Path, testdata: Path
) -> None:
    """A file named like a slide that no reader opens is reported failed (and the import exits
    1), never skipped as 'neither' beside the notes: it would be lost unseen."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "case-12.svs").symlink_to(testdata / "svs" / "histolab_broken.svs")
    (folder / "readme.txt").write_text("one slide\n")
    result = run("import", str(folder), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "case-12.svs" in result.stderr and "case-12.svs" not in result.stdout.split("note:")[-1]
    assert (
        "0 DICOM instances stored, 0 slides converted into 0 instances, 1 files skipped, 1 failed"
        in result.stdout
    )


def test_import_files_and_folders(tmp_path: Path, testdata: Path) -> None:
    data = tmp_path / "data"
    folder = testdata / "dicom" / "3dhistech-wg26-BPAEC"
    result = run(
        "import",
        str(folder),
        str(testdata / "dicom" / "wsi2dcm_jpeg.dcm"),
        str(testdata / "svs" / "histolab_broken.svs"),
        "--data-dir",
        str(data),
    )
    # The folder's readme.txt is skipped with a note; the broken file, named on its own, is an
    # error; the DICOM files are stored.
    assert result.returncode == 1
    assert "histolab_broken.svs: not a slide format any reader here recognises" in result.stderr
    assert "readme.txt" not in result.stderr
    assert f"note: skipped {folder / 'readme.txt'}: neither DICOM nor a slide" in result.stdout
    assert (
        "11 DICOM instances stored, 0 slides converted into 0 instances, 1 files skipped, 1 failed"
    ) in result.stdout
    server = ArchiveServer(data).start()
    try:
        instances = requests.get(server.url + "/instances").json()
        assert len(instances) == 11
        sample = folder / "5_0"
        dataset = read(sample)
        url = (
            f"{server.url}/studies/{dataset.StudyInstanceUID}/series/"
            f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
        )
        got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
        assert got.content == sample.read_bytes()
    finally:
        server.stop()
    # Importing again: duplicates are refused, nothing changes.
    again = run("import", str(folder / "5_0"), "--data-dir", str(data))
    assert again.returncode == 1
    assert "stored already" in again.stderr


def test_a_folder_of_radiology_and_slides(tmp_path: Path, testdata: Path) -> None:
    """Every radiology file of the test data beside a slide and a note, in nested folders:
    each Part-10 file is stored as it is (byte for byte), the raw data set without File Meta
    Information stored with the File Meta its encoding tells (its own bytes after it), the
    slide converted and the note skipped with a note; the last line counts each kind, and
    the archive serves them all."""
    folder = tmp_path / "mixed"
    (folder / "radiology" / "nested").mkdir(parents=True)
    radiology = sorted((testdata / "radiology").iterdir())
    part10 = [path for path in radiology if path.suffix == ".dcm"]
    for number, path in enumerate(radiology):
        where = folder / "radiology" / ("nested" if number % 2 else "")
        (where / path.name).symlink_to(path)
    (folder / "slide.svs").symlink_to(testdata / "svs" / "CMU-1-Small-Region.svs")
    (folder / "readme.txt").write_text("CT and slides of one case\n")
    data = tmp_path / "data"
    result, made = _import_with_a_slide(folder, data)
    bare = [path for path in radiology if path.suffix != ".dcm"]
    assert (
        f"{len(radiology)} DICOM instances stored, 1 slides converted into {made} instances, "
        "1 files skipped, 0 failed"
    ) in result.stdout
    assert "(a data set without File Meta)" in result.stdout
    assert "note: skipped" in result.stdout and "readme.txt" in result.stdout
    server = ArchiveServer(data).start()
    try:
        instances = requests.get(server.url + "/instances", params={"limit": "1000"}).json()
        assert len(instances) == len(radiology) + made
        modalities = {item["00080060"]["Value"][0] for item in instances}
        assert "SM" in modalities and {"CT", "MR"} <= modalities
        for path in part10:
            dataset = read(path)
            url = (
                f"{server.url}/studies/{dataset.StudyInstanceUID}/series/"
                f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
            )
            got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
            assert got.status_code == 200 and got.content == path.read_bytes(), path.name
        for path in bare:
            dataset = pydicom.dcmread(path, force=True)
            url = (
                f"{server.url}/studies/{dataset.StudyInstanceUID}/series/"
                f"{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}"
            )
            got = requests.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
            assert got.status_code == 200 and got.content.endswith(path.read_bytes()), path.name
            stored = pydicom.dcmread(io.BytesIO(got.content))
            assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"  # implicit VR LE
            assert stored.PixelData == dataset.PixelData
    finally:
        server.stop()
