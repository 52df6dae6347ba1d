#!/bin/sh
# Set up everything and serve the archive on the embedded defaults: SQLite and the filesystem
# under ./data, DICOMweb at http://127.0.0.1:8080/dicomweb. Clients on this machine may read
# and store without a token (anonymous_access = loopback, said explicitly here and warned
# about at start-up); everyone else needs one (`wsiarchive token create`). An empty archive
# gets the demo study (a slide next to a CR X-ray of one demo patient, made from the shared
# test data; demo_study): turn it off with --no-demo-study or WSIARCHIVE_DEMO_STUDY=off.
# Extra arguments go to `wsiarchive serve` (e.g. --anonymous-access off --port 8042
# --data-dir /srv/archive).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
WSIARCHIVE_DEMO_STUDY="${WSIARCHIVE_DEMO_STUDY:-on}"
export WSIARCHIVE_DEMO_STUDY
exec .venv/bin/wsiarchive serve --anonymous-access loopback "$@"
