"""Shared fixtures: the real files in ../shared/data and small builders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGBRIDGE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"

DCMQI = DATA / "dcmqi" / "data" / "segmentations"
CT3 = DCMQI / "ct-3slice"
PYD = DATA / "pydicom-data" / "data_store" / "data"
HD = DATA / "highdicom" / "data" / "test_files"
WHEEL = DATA / "pydicom-wheel" / "pydicom" / "data" / "test_files"
CT2 = WHEEL / "dicomdirtests" / "77654033" / "CT2"
TOTALSEG = DATA / "totalsegmentator" / "tests" / "reference_files"
SLICERIO = DATA / "slicerio" / "slicerio" / "data"


#: the fast tier: no ../shared/data, no dciodvfy / Node / Orthanc, nothing but pip
#: (`python -m pytest -q -m unit`); every other module is the `data` tier
UNIT_MODULES = {"test_codecs", "test_colors", "test_geometry", "test_tags", "test_imports",
                "test_model", "test_module_shape", "test_resample_loss", "test_pgzip",
                "test_relabel_rules", "test_interpolate", "test_dataset_rules",
                "test_slide_measure", "test_slide_geojson", "test_slide_polygons"}


def _unit_only(config) -> bool:
    return (config.getoption("markexpr") or "").strip() == "unit"


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: runs with nothing but pip (no shared data, no "
                                       "external tools)")
    config.addinivalue_line("markers", "data: needs ../shared/data and the tools .ci/run "
                                       "installs (dciodvfy, Node, Orthanc)")
    if not _unit_only(config) and not DATA.is_dir():
        raise pytest.UsageError(f"test data not found at {DATA}: clone the project next to "
                                "'shared' or set SEGBRIDGE_SHARED (or run the fast tier: "
                                "python -m pytest -q -m unit)")


def pytest_ignore_collect(collection_path, config):
    """With ``-m unit``, do not even import the other modules (some need servers at import)."""
    if _unit_only(config) and collection_path.suffix == ".py" and \
            collection_path.name.startswith("test_"):
        return collection_path.stem not in UNIT_MODULES
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        unit = item.path.stem in UNIT_MODULES
        item.add_marker(pytest.mark.unit if unit else pytest.mark.data)


@pytest.fixture(scope="session")
def ct3():
    import segbridge as sb

    return sb.read_series(CT3)


@pytest.fixture(scope="session")
def ct2():
    import segbridge as sb

    return sb.read_series(CT2)


def masks_by_label(seg) -> dict[str, np.ndarray]:
    return {s.label: seg.mask(s.number) for s in seg.segments}


def assert_same_segments(a, b, *, fractions: bool = False) -> None:
    """Same segment labels and the same voxels for each (fractions as stored values)."""
    ma, mb = {s.label: s.number for s in a.segments}, {s.label: s.number for s in b.segments}
    assert sorted(ma) == sorted(mb)
    for label, n in ma.items():
        if fractions:
            np.testing.assert_array_equal(a.fraction(n), b.fraction(mb[label]), err_msg=label)
        else:
            np.testing.assert_array_equal(a.mask(n), b.mask(mb[label]), err_msg=label)


def rotation(a: float, b: float, c: float) -> np.ndarray:
    """Rotation matrix from three angles (x, then y, then z)."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def dciodvfy_errors(path) -> list[str]:
    """The "Error" lines dciodvfy (dicom3tools, an independent checker) prints for a file.

    dciodvfy is required, not optional: .ci/run installs it (apt-get install dicom3tools).
    """
    import shutil
    import subprocess

    exe = shutil.which("dciodvfy")
    assert exe, "dciodvfy is not installed (apt-get install dicom3tools)"
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
