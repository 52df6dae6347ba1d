"""Accept negotiation (PS3.18 §8.7): what each viewer's Accept header gets."""

from __future__ import annotations

import pytest

from dicomweb.http.errors import HTTPError
from dicomweb.http.mediatypes import Choice, Parts, negotiate, parse_accept, requested_ranges

JPEG = ("image/jpeg", "1.2.840.10008.1.2.4.50")
OCTETS = ("application/octet-stream", "1.2.840.10008.1.2.1")
J2K = ("image/jp2", "1.2.840.10008.1.2.4.90")
STORED_JPEG = (JPEG, OCTETS, J2K)


def choose(accept: str, offered=STORED_JPEG, parts: Parts = Parts.REQUIRED) -> Choice | None:  # type: ignore[no-untyped-def]
    return negotiate(requested_ranges(accept, []), offered, parts)


def test_ohif_any_transfer_syntax_gets_the_stored_bytes() -> None:
    choice = choose('multipart/related; type="application/octet-stream"; transfer-syntax=*')
    assert choice == Choice("application/octet-stream", JPEG[1], True)


def test_a_named_transfer_syntax_is_transcoded_to() -> None:
    choice = choose("multipart/related; type=image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90")
    assert choice == Choice("image/jp2", J2K[1], True)


def test_lossy_stored_form_satisfies_its_media_type_default() -> None:
    # §8.7.3: the default of image/jpeg is lossless, but only the lossy form exists.
    assert choose("multipart/related; type=image/jpeg") == Choice("image/jpeg", JPEG[1], True)


def test_weights_and_equal_weights_prefer_the_stored_form() -> None:
    accept = 'multipart/related; type="image/jp2"; q=0.9, multipart/related; type="image/jpeg"'
    assert choose(accept).media_type == "image/jpeg"  # type: ignore[union-attr]
    equal = "multipart/related; type=image/jp2, multipart/related; type=image/jpeg"
    assert choose(equal).media_type == "image/jpeg"  # type: ignore[union-attr]


def test_single_part_only_when_asked_for_and_allowed() -> None:
    assert choose("image/jpeg", parts=Parts.OPTIONAL) == Choice("image/jpeg", JPEG[1], False)
    assert choose("image/jpeg", parts=Parts.REQUIRED) is None
    assert choose("*/*", parts=Parts.REQUIRED).multipart is True  # type: ignore[union-attr]
    assert choose("multipart/related; type=image/jpeg", parts=Parts.FORBIDDEN) is None


def test_the_accept_parameter_wins_and_bad_headers_are_400() -> None:
    ranges = requested_ranges("image/png", ["image/jpeg"])
    assert [r.media_type for r in ranges] == ["image/jpeg"]
    assert requested_ranges(None, [])[0].media_type == "*/*"
    assert [r.q for r in parse_accept("a/b;q=0.5, c/d, e/f;q=0")] == [1.0, 0.5]
    with pytest.raises(HTTPError):
        parse_accept("nonsense")
    with pytest.raises(HTTPError):
        parse_accept("a/b;q=high")
