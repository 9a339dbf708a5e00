#!/usr/bin/env bash
# Load segbridge's ohif-profile LABELMAP SEG in the real OHIF Viewer 3.13 (headless chromium)
# over DICOMweb from a real Orthanc, and compare every segment's voxels with segbridge's.
#
#   bash interop/ohif/run.sh [--case NAME] [--timeout S] [--out DIR] [--keep] [--mpr]
#   bash interop/ohif/run.sh --setup-only     # npm ci + the OHIF dist, nothing else
#
# --case: what to load (interop/ohif/cases.py: labelmap-rle by default; `overlap` loads both
# split SEG series into one viewport and then checks OHIF's MPR); --mpr: also switch to OHIF's
# MPR layout and check the labelmap volumes and actors of the MPR viewports (README.md).
#
# Needs: node + npm, Debian's chromium, orthanc + orthanc-dicomweb, segbridge installed in
# $PYTHON (default: the repo's .venv, else python3). Installs puppeteer-core with `npm ci` and
# OHIF's built app (`npm pack @ohif/app`, integrity checked) into interop/ohif/ (git-ignored).
# Network: the npm registry for those two (cached by npm afterwards), loopback otherwise.
# Exit 0 with one "OK" line, or 1 with one "FAIL ..." line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$HERE"

fail() { echo "ohif harness: FAIL $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed"
command -v npm >/dev/null || fail "npm is not installed"
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
[ -n "$CHROMIUM" ] || fail "Debian's chromium is not installed (apt-get install -y chromium)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c "import segbridge" 2>/dev/null || fail "segbridge is not importable by $PYTHON"
export PATH="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')"):$PATH"

TMP="$(mktemp -d -t segbridge-ohif-npm-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

# 1. puppeteer-core (drives the system chromium; downloads no browser of its own).
if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >"$TMP/npm-ci.log" 2>&1; then
  fail "npm ci: $(tail -n 1 "$TMP/npm-ci.log")"
fi

# 2. OHIF's built app: @ohif/app's tarball carries dist/. Installing it as a dependency does
# not work (its dependency @ohif/i18n@3.13.2 is not on npm), so the tarball is fetched with
# `npm pack`, checked against the integrity pinned in package.json and unpacked.
SPEC="$(node -p "require('./package.json').ohifApp.spec")"
WANT="$(node -p "require('./package.json').ohifApp.integrity")"
if [ "$(cat .ohif/integrity 2>/dev/null || true)" != "$WANT" ] || [ ! -f .ohif/dist/index.html ]; then
  (cd "$TMP" && npm pack "$SPEC" --silent >pack.out 2>pack.err) \
    || fail "npm pack $SPEC: $(tail -n 1 "$TMP/pack.err")"
  TGZ="$TMP/$(tail -n 1 "$TMP/pack.out")"
  GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
  [ "$GOT" = "$WANT" ] || fail "$SPEC integrity $GOT, expected $WANT"
  rm -rf .ohif.new && mkdir .ohif.new
  tar xzf "$TGZ" -C .ohif.new --strip-components=1 package/dist package/package.json
  echo "$WANT" > .ohif.new/integrity
  rm -rf .ohif && mv .ohif.new .ohif
fi

[ "${1:-}" = "--setup-only" ] && exit 0

# 3. The check: demo data, Orthanc, push, OHIF in chromium, compare.
# harness.py stops Orthanc, the server and chromium on SIGTERM / SIGINT; pass them on.
"$PYTHON" "$HERE/harness.py" --dist "$HERE/.ohif/dist" --chromium "$CHROMIUM" "$@" &
CHILD=$!
trap 'kill -TERM "$CHILD" 2>/dev/null || true' TERM INT
status=0
wait "$CHILD" || status=$?
if kill -0 "$CHILD" 2>/dev/null; then wait "$CHILD" || status=$?; fi
exit "$status"
