#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (Debian: dicom3tools,
# orthanc + orthanc-dicomweb, libGL for rt-utils' OpenCV, Node + npm, chromium; npm: the
# Cornerstone adapters, puppeteer-core and OHIF's built app; pip: the project with its test
# extras, in .venv), starts Orthanc on a loopback port, runs pytest, and stops Orthanc again. README.md's "# run the tests" line; .ci/run calls it.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/test_x.py -k name   # arguments go to pytest
# The fast tier needs nothing but pip: python -m pytest -q -m unit
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# dciodvfy (dicom3tools) is an independent checker used by the tests
if ! command -v dciodvfy >/dev/null; then
  $SUDO apt-get install -y -qq dicom3tools >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dicom3tools; }
fi

# Orthanc with its DICOMweb plugin: the real PACS of the DICOMweb tests
have_orthanc() {
  { command -v Orthanc >/dev/null || [ -x /usr/sbin/Orthanc ]; } &&
    ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so* >/dev/null 2>&1
}
if ! have_orthanc; then
  # the package's own service may fail to start in a container: what matters is the binaries
  $SUDO env RUNLEVEL=1 apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq &&
      $SUDO env RUNLEVEL=1 apt-get install -y -qq orthanc orthanc-dicomweb; } || true
  have_orthanc || { echo "could not install orthanc + orthanc-dicomweb" >&2; exit 1; }
fi

# rt-utils (a test oracle for RTSTRUCT) imports OpenCV, which needs libGL and GLib
if ! ldconfig -p | grep -q 'libGL.so.1' || ! ldconfig -p | grep -q 'libgthread-2.0.so.0'; then
  $SUDO apt-get install -y -qq libgl1 libglib2.0-0 >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libgl1 libglib2.0-0; }
fi

# Node.js and the real @cornerstonejs/adapters + dcmjs (the OHIF consumer in the interop tests)
if ! command -v node >/dev/null; then
  $SUDO apt-get install -y -qq nodejs npm >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm; }
fi
(cd interop/node && npm ci --no-audit --no-fund --loglevel=error)

# Debian's chromium: the real OHIF Viewer runs in it (tests/test_ohif.py, driven by
# puppeteer-core, which downloads no browser); interop/ohif/run.sh --setup-only (called by the
# tests) fetches puppeteer-core and OHIF's built app from npm
if ! command -v chromium >/dev/null; then
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium; }
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"

# start Orthanc on a loopback port with a temporary storage folder (and a registered user);
# the tests find it through these variables; it is stopped when this script ends
ORTHANC_DIR=$(mktemp -d)
export SEGBRIDGE_TEST_ORTHANC_USER="ci:$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
read -r ORTHANC_PORT ORTHANC_PID < <(python3 tests/orthanc.py "$ORTHANC_DIR" "$SEGBRIDGE_TEST_ORTHANC_USER")
export SEGBRIDGE_TEST_ORTHANC_PORT="$ORTHANC_PORT"
stop_orthanc() {
  kill "$ORTHANC_PID" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$ORTHANC_PID" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$ORTHANC_PID" 2>/dev/null || true
  rm -rf "$ORTHANC_DIR"
}
trap stop_orthanc EXIT
echo "+ Orthanc (DICOMweb) on 127.0.0.1:$ORTHANC_PORT, pid $ORTHANC_PID"

echo "+ python -m pytest -q $*"
python -m pytest -q "$@"
