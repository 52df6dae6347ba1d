#!/bin/sh
# Set up everything and serve the archive on the embedded defaults: SQLite and the filesystem
# under ./data, DICOMweb at http://127.0.0.1:8080/dicomweb. Clients on this machine may read
# and store without a token (anonymous_access = loopback, said explicitly here and warned
# about at start-up); everyone else needs one (`wsiarchive token create`). Extra arguments go
# to `wsiarchive serve` (e.g. --anonymous-access off --port 8042 --data-dir /srv/archive).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/wsiarchive serve --anonymous-access loopback "$@"
