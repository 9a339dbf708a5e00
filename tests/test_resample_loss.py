"""Resampling onto the reference grid never empties a segmentation silently (geometry is
sacred): voxels dropped outside the grid and labels that vanish are reported, and a label
volume wholly outside the image is an error naming both grids."""

from __future__ import annotations

import numpy as np
import pytest

from segbridge.errors import GeometryMismatchError, Report
from segbridge.geometry import Grid, align_array

DST = Grid((4, 20, 20), np.array([0.0, 0.0, 0.0]), (2.0, 1.0, 1.0), np.eye(3), "1.2.3")


def shifted(dx: float, spacing=(2.0, 0.9, 0.9)) -> Grid:
    return Grid((4, 20, 20), np.array([dx, 0.0, 0.0]), spacing, np.eye(3), "1.2.3")


def test_wholly_outside_is_an_error():
    src = shifted(5000.0)
    labels = np.zeros(src.shape, np.uint8)
    labels[1:3, 5:10, 5:10] = 1
    with pytest.raises(GeometryMismatchError, match="all 50 labelled voxels lie outside"):
        align_array(labels, src, DST, resample=True, what="x.nii.gz", report=Report())


def test_partly_outside_is_reported_with_counts():
    src = shifted(10.0)
    labels = np.zeros(src.shape, np.uint8)
    labels[1, 2:4, 5:15] = 1   # x from 14.5 to 22.6 mm: partly beyond the 19.5 mm edge
    labels[2, 2:4, 0:2] = 2    # inside
    report = Report()
    out = align_array(labels, src, DST, resample=True, what="x.nii.gz", report=report)
    assert set(np.unique(out)) == {0, 1, 2}
    dropped = [w for w in report.warnings if "lie outside the reference grid" in w]
    assert len(dropped) == 1 and "of 24 labelled voxels" in dropped[0], report.warnings


def test_a_label_that_vanishes_is_named():
    src = Grid((4, 20, 20), np.array([0.0, 0.0, 0.0]), (2.0, 0.3, 0.3), np.eye(3), "1.2.3")
    labels = np.zeros(src.shape, np.uint8)
    labels[1, 10:12, 10:12] = 1
    labels[1, 1, 1] = 7        # one 0.3 mm voxel at 0.3 mm: not the nearest to any centre
    report = Report()
    out = align_array(labels, src, DST, resample=True, what="x.nii.gz", report=report)
    assert 7 not in out
    assert any("label value(s) 7 vanished" in w for w in report.warnings), report.warnings
