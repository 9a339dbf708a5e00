"""Baseline for the bidirectional benchmark: Cornerstone3D's search, ported to Python.

A line-by-line port of ``createBidirectionalForSlice`` / ``findLargestBidirectional`` /
``isLineInSegment`` from @cornerstonejs/tools 5.14 (dist/esm/utilities/segmentation): on every
slice of every segment, all pairs of contour vertices are tried in order; a pair can become the
long axis if it is longer than the best so far, its midpoint voxel has the label and the
samples along it (rounded to voxels) all have the label; the short axis is the longest pair
within |cos| <= 0.01 of perpendicular passing the same tests. The contour vertices are the
centres of the boundary voxels, which is what vtk's marching squares at iso value 1 returns for
a 0/1 mask. The inner loop over the second vertex is vectorised with numpy (distances only);
every test Cornerstone makes is made, in the same order.

usage: python cornerstone_bidirectional.py LABELS.nii.gz OUT.json
"""

from __future__ import annotations

import json
import math
import sys

import nibabel as nib
import numpy as np

EPSILON = 1e-2


def boundary_vertices(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return np.argwhere(mask & ~interior)[:, ::-1].astype(np.float64)  # (x, y) index


class InSegment:
    def __init__(self, mask: np.ndarray, sx: float, sy: float) -> None:
        self.mask, self.sx, self.sy = mask, sx, sy
        self.h, self.w = mask.shape

    def _at(self, i: float, j: float) -> bool:
        x, y = int(math.floor(i + 0.5)), int(math.floor(j + 0.5))  # Math.round
        return 0 <= x < self.w and 0 <= y < self.h and bool(self.mask[y, x])

    def test_center(self, p1, p2) -> bool:
        return self._at((p1[0] + p2[0]) / 2 / self.sx, (p1[1] + p2[1]) / 2 / self.sy)

    def line_inside(self, p1, p2) -> bool:
        i1, j1 = p1[0] / self.sx, p1[1] / self.sy
        i2, j2 = p2[0] / self.sx, p2[1] / self.sy
        di, dj = i1 - i2, j1 - j2
        size = int(math.floor(max(abs(di), abs(dj)) + 0.5))
        if size < 2:
            return True
        ui, uj = di / size, dj / size
        return all(self._at(i2 + ui * k, j2 + uj * k) for k in range(1, size))


def bidirectional_for_slice(points: np.ndarray, seg: InSegment, current: dict | None):
    max_major = (current["maxMajor"] ** 2) if current else 0.0
    max_minor = (current["maxMinor"] ** 2) if current else 0.0
    major_pts = None
    n = len(points)
    for i1 in range(n):
        rest = points[i1 + 1:]
        d2 = ((rest - points[i1]) ** 2).sum(axis=1)
        for off in np.flatnonzero(d2 >= max_major):
            dist2 = float(d2[off])
            if dist2 < max_major:
                continue
            if dist2 - EPSILON < max_major + EPSILON and major_pts is not None:
                continue
            p1, p2 = points[i1], rest[off]
            if not seg.test_center(p1, p2) or not seg.line_inside(p1, p2):
                continue
            max_major = dist2 - EPSILON
            major_pts = (i1, i1 + 1 + int(off))
            max_minor = 0.0
    if major_pts is None:
        return None
    max_major = math.sqrt(max_major + EPSILON)
    h0, h1 = points[major_pts[0]], points[major_pts[1]]
    unit = (h0 - h1) / max_major
    minor_pts = None
    for i1 in range(n):
        rest = points[i1 + 1:]
        delta = points[i1] - rest
        d2 = (delta ** 2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dot = np.abs(delta @ unit) / np.sqrt(d2)
        for off in np.flatnonzero((d2 > max_minor) & (dot <= EPSILON)):
            dist2 = float(d2[off])
            if dist2 <= max_minor:
                continue
            p1, p2 = points[i1], rest[off]
            if not seg.test_center(p1, p2) or not seg.line_inside(p1, p2):
                continue
            max_minor = dist2
            minor_pts = (i1, i1 + 1 + int(off))
    if minor_pts is None:
        return None
    return {"maxMajor": max_major, "maxMinor": math.sqrt(max_minor)}


def search_all(labels: np.ndarray, sx: float, sy: float) -> dict:
    """``labels`` indexed [x, y, z] (NIfTI order); the best result per label value."""
    out = {}
    for value in [int(v) for v in np.unique(labels) if v]:
        best = None
        ks = np.flatnonzero((labels == value).any(axis=(0, 1)))
        for k in ks:  # every slice, in order, as findLargestBidirectional does
            mask = (labels[:, :, k] == value).T  # [y, x]
            pts = boundary_vertices(mask) * np.array([sx, sy])
            res = bidirectional_for_slice(pts, InSegment(mask, sx, sy), best)
            if res is not None:
                best = res
        out[value] = best
    return out


def main() -> None:
    img = nib.load(sys.argv[1])
    labels = np.asarray(img.dataobj)
    sx, sy = (float(v) for v in img.header.get_zooms()[:2])
    with open(sys.argv[2], "w") as fp:
        json.dump(search_all(labels, sx, sy), fp)


if __name__ == "__main__":
    main()
