#!/bin/sh
# Set up everything (Debian packages, virtual environment) and run the whole test suite:
# lint, format check, types (mypy), layers (import-linter), then pytest: the in-process layer
# and the system layer against real servers. Extra arguments go to pytest.
# The shared test data is expected at ../shared/testdata (or $WSIARCHIVE_TESTDATA).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
