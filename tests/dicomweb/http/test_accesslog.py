"""The access log: one Combined Log Format line per request, the identity as its user, and
no patient data in it (query values other than paging, flags and UIDs redacted)."""

from __future__ import annotations

import logging
import re

import pytest

# %h %l %u [%t] "%r" %>s %b "%{Referer}i" "%{User-agent}i", then the time taken.
COMBINED = re.compile(
    r"(?P<host>\S+) - (?P<user>\S+) \[[^\]]+\] "
    r'"(?P<method>\S+) (?P<target>\S+) (?P<protocol>[^"]+)" '
    r'(?P<status>\d{3}) (?P<size>\S+) "-" "[^"]*" [0-9.]+ms'
)


def test_one_line_per_request_without_patient_data(
    corpus_web, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wsiarchive.access"):
        corpus_web.get("/dicomweb/studies?PatientName=Doe*&PatientID=12345&limit=5")
        corpus_web.get("/dicomweb/studies?StudyInstanceUID=1.2.3.4&includefield=00081030")
    lines = [r.getMessage() for r in caplog.records if r.name == "wsiarchive.access"]
    assert len(lines) == 2
    first, second = (COMBINED.fullmatch(line) for line in lines)
    assert first is not None and second is not None, lines
    assert first["target"] == "/dicomweb/studies?PatientName=-&PatientID=-&limit=5"
    assert "Doe" not in lines[0] and "12345" not in lines[0]
    assert second["target"] == "/dicomweb/studies?StudyInstanceUID=1.2.3.4&includefield=00081030"
    assert first["user"] == "anonymous" and first["status"] == "200"
    assert first["host"] == "127.0.0.1"
