#!/bin/sh
# Set up a fresh Debian machine for wsiarchive: system packages, a virtual environment, the
# project installed in it. `--test` adds what the test suite needs, `--bench` the benchmarks'.
set -eu
cd "$(dirname "$0")/.."

# libturbojpeg0: opentile crops and re-tiles JPEG (NDPI) losslessly with it. The browser front
# end (web/) is built with Node.js from the npm registry, so every mode needs node and npm. The tests use
# PostgreSQL, dcmtk and Orthanc as real peers, and Debian's Chromium as the real browser;
# the benchmarks add orthanc-wsi and wrk.
apt_packages="libturbojpeg0"
extras=""
node=false  # the tests' own npm servers
ohif=false  # OHIF's prebuilt viewer, for the external-viewer tests or to host it
for arg in "$@"; do
    case "$arg" in
        --test) apt_packages="$apt_packages postgresql dcmtk orthanc orthanc-dicomweb chromium"; extras="test"; node=true; ohif=true ;;
        --ohif) ohif=true ;;
        --bench) apt_packages="$apt_packages dcmtk orthanc orthanc-dicomweb orthanc-wsi wrk"; extras="test" ;;
        *) echo "usage: $0 [--test] [--bench] [--ohif]" >&2; exit 2 ;;
    esac
done

# The front end and the tests' npm servers run on Node.js: Debian's when the machine has none.
if ! command -v npm >/dev/null; then
    apt_packages="$apt_packages nodejs npm"
fi

missing=""
for package in $apt_packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $package"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages:$missing"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # Debian's service scripts must not start servers here: the tests start their own.
    $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends $missing
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
else
    .venv/bin/python -m pip install -q -c constraints.txt -e .
fi

# The tests' npm servers, each pinned by its lock file: the OpenID provider (tests/oidc,
# panva's oidc-provider) and the Azure Blob server (tests/azurite, Microsoft's Azurite);
# each skipped when its node_modules was installed from this very lock file.
if [ "$node" = true ]; then
    command -v npm >/dev/null || { echo "setup.sh: --test needs node and npm" >&2; exit 1; }
    for folder in tests/oidc tests/azurite; do
        stamp=$folder/node_modules/.installed-from-lock
        if ! cmp -s $folder/package-lock.json "$stamp"; then
            npm ci --prefix $folder --no-audit --no-fund --loglevel=error >/dev/null
            cp $folder/package-lock.json "$stamp"
        fi
    done
fi

# The browser front end: viewer code pinned by web/package-lock.json, built into web/dist
# (served at / by `wsiarchive serve`); the install is skipped when node_modules came from this
# very lock file; the build (esbuild) takes seconds.
command -v npm >/dev/null || { echo "setup.sh: the front end needs node and npm" >&2; exit 1; }
stamp=web/node_modules/.installed-from-lock
if ! cmp -s web/package-lock.json "$stamp"; then
    npm ci --prefix web --no-audit --no-fund --loglevel=error >/dev/null
    cp web/package-lock.json "$stamp"
fi
if [ -f web/build.mjs ]; then
    npm run --prefix web --silent build
fi

# OHIF 3, an external viewer: `npm install @ohif/app` fails (a dependency of it is missing from
# the registry), but its package ships the prebuilt app in dist/. The tarball is fetched with
# `npm pack`, checked against the registry's integrity recorded here, and unpacked into
# web/vendor/ohif (not in git); skipped when that very version is already unpacked.
if [ "$ohif" = true ]; then
    ohif_spec="@ohif/app@3.13.2"
    ohif_integrity="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
    ohif_dir=web/vendor/ohif
    if [ "$(cat $ohif_dir/.unpacked-from 2>/dev/null)" != "$ohif_spec $ohif_integrity" ]; then
        work=$(mktemp -d)
        tarball=$(cd "$work" && npm pack "$ohif_spec" --silent --loglevel=error)
        actual=$(.venv/bin/python -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$work/$tarball")
        if [ "$actual" != "$ohif_integrity" ]; then
            echo "setup.sh: $ohif_spec has integrity $actual, not $ohif_integrity" >&2
            rm -rf "$work"; exit 1
        fi
        rm -rf "$ohif_dir"; mkdir -p "$ohif_dir"
        tar -xzf "$work/$tarball" -C "$ohif_dir" --strip-components=1 package/dist package/LICENSE package/package.json
        rm -rf "$work"
        echo "$ohif_spec $ohif_integrity" > $ohif_dir/.unpacked-from
    fi
fi
