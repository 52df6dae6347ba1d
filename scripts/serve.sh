#!/bin/sh
# Set up everything and serve the archive on the embedded defaults: SQLite and the filesystem
# under ./data, DICOMweb at http://127.0.0.1:8080/dicomweb. Extra arguments go to
# `wsiarchive serve` (e.g. --host 0.0.0.0 --port 8042 --data-dir /srv/archive).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/wsiarchive serve "$@"
