"""Debian's Chromium for the browser tests and benchmarks (never a downloaded browser), the
flags it runs with on these machines, and where screenshots are kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless as root, with the background connections a closed network refuses turned off.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts_folder(tmp_path_factory: pytest.TempPathFactory, name: str = "artifacts") -> Path:
    """Where screenshots go: $WSIARCHIVE_ARTIFACTS (gitignored as /artifacts), or a
    temporary folder."""
    named = os.environ.get("WSIARCHIVE_ARTIFACTS")
    folder = Path(named) if named else tmp_path_factory.mktemp(name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
