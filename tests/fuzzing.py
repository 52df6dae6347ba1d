"""Hypothesis settings of the fuzz tests: a few hundred cases each in the default suite, and
WSIARCHIVE_FUZZ_EXAMPLES cases each for a longer campaign."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# A longer campaign: WSIARCHIVE_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests -k fuzz
CAMPAIGN = int(os.environ.get("WSIARCHIVE_FUZZ_EXAMPLES", "0") or 0)


def fuzz(examples: int) -> settings:
    """*examples* cases (or the campaign's), each within a deadline, no shrinking database."""
    return settings(
        max_examples=CAMPAIGN or examples,
        deadline=2000,  # ms per case: a hang fails the test
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
