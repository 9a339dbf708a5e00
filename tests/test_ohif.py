"""segbridge's SEGs in the real OHIF Viewer 3.13.2, in Debian's chromium, over DICOMweb from a
real Orthanc (issue 12): the CI sample of the browser harness in interop/ohif/.

Each case is one run of interop/ohif/harness.py (see interop/ohif/README.md): it fails on any
console error, failed request or timeout, and on any voxel that differs from segbridge's truth
(stored, drawn on every stack slice, MPR volume, centroid, OHIF's statistics; for the export
cases: OHIF's exported file read by segbridge, nibabel and dcmqi against what was painted).
The whole OHIF column of docs/interop.md: ``python interop/ohif/matrix.py`` (documented there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "interop" / "ohif"
sys.path.insert(0, str(HARNESS))

from cases import CI_CASES  # noqa: E402


@pytest.fixture(scope="module")
def ohif_app():
    """puppeteer-core (npm ci) and OHIF's built app (npm pack, integrity checked)."""
    p = subprocess.run(["bash", str(HARNESS / "run.sh"), "--setup-only"], capture_output=True,
                       text=True, timeout=900)
    assert p.returncode == 0, (p.stderr or p.stdout).strip().splitlines()[-1:]
    return HARNESS / ".ohif" / "dist"


def _harness(dist: Path, case: str, out: Path, env: dict | None = None):
    return subprocess.run([sys.executable, str(HARNESS / "harness.py"), "--dist", str(dist),
                           "--case", case, "--out", str(out), "--timeout", "240"],
                          capture_output=True, text=True, timeout=420,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("case", CI_CASES)
def test_ohif_loads_exactly(ohif_app, case, tmp_path):
    p = _harness(ohif_app, case, tmp_path)
    last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
    assert p.returncode == 0, last
    assert p.stdout.startswith(f"ohif harness: OK {case}:"), p.stdout
    print(p.stdout.strip())


def test_ohif_harness_sees_a_hidden_segment(ohif_app, tmp_path):
    """Negative control: with one segment hidden in the page, the stack check must fail on the
    voxels drawn (the stored labelmap is unchanged), naming the segment."""
    p = _harness(ohif_app, "labelmap-rle", tmp_path, {"OHIF_CHECK_HIDE_SEGMENT": "2"})
    assert p.returncode == 1
    assert "segment 2 (Spine) drawn differently on 24 stack slice(s)" in p.stderr, p.stderr[-500:]
