"""Mutated real Part-10 files (cut, bytes flipped, lengths lied about): the reader either
refuses them with InvalidInstance or reads them, never another exception, never a hang."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.dicom.part10 import read_part10
from storage.errors import InvalidInstance
from tests.conftest import TESTDATA

SOURCES = [
    TESTDATA / "dicom" / "ezwsi_label_test.dcm",  # encapsulated JPEG, one frame
    TESTDATA / "dicom" / "ezwsi_multiframe_camelyon_challenge_image.dcm",  # 15 frames
    TESTDATA / "dicom" / "wsi2dcm_jpeg.dcm",  # 12 frames, with a Basic Offset Table
]
DATA = [path.read_bytes() for path in SOURCES if path.is_file()]
# A few seconds by default; WSIARCHIVE_FUZZ_EXAMPLES=5000 for a long run.
EXAMPLES = int(os.environ.get("WSIARCHIVE_FUZZ_EXAMPLES", "60"))

mutation = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(
        st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=8)
    ),
    st.tuples(st.just("length"), st.floats(0, 1), st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 7])),
)


def mutate(data: bytes, change: tuple) -> bytes:
    out = bytearray(data)
    if change[0] == "cut":
        return bytes(out[: int(change[1] * len(out))])
    if change[0] == "flip":
        for where, mask in change[1]:
            out[min(int(where * len(out)), len(out) - 1)] ^= mask
        return bytes(out)
    # Lie about a length: overwrite 4 bytes just after some element tag of group 0x0008..7FE0.
    at = 132 + int(change[1] * (len(out) - 140))
    out[at : at + 4] = struct.pack("<I", change[2])
    return bytes(out)


@settings(
    max_examples=EXAMPLES,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(source=st.sampled_from(range(len(DATA))), change=mutation)
def test_mutated_files_are_read_or_refused(tmp_path: Path, source: int, change: tuple) -> None:
    path = tmp_path / "mutated.dcm"
    path.write_bytes(mutate(DATA[source], change))
    try:
        parsed = read_part10(path)
    except InvalidInstance as exc:
        assert exc.reason
        return
    # Read: every frame range lies inside the file.
    if parsed.frames is not None and not parsed.frames.bit_packed:
        size = path.stat().st_size
        for index in range(len(parsed.frames)):
            for offset, length in parsed.frames.ranges(index):
                assert offset + length <= size
