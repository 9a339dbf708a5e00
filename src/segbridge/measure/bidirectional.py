"""Largest bidirectional measurement (long and short axis) of a segment, as Cornerstone3D defines it.

On every acquisition-plane slice the long axis is the longest chord between two boundary voxel
centres that stays inside the segment; the short axis is the longest such chord within
``PERPENDICULAR_TOLERANCE`` (|cos| <= 0.01, about 0.57 degrees) of perpendicular to it. The slice
with the longest long axis that also has a short axis wins; ties go to the later slice, as in
Cornerstone's loop.

Definitions, written down because peers differ:

- *Boundary voxels* are segment voxels with a 4-neighbour outside the segment (or outside the
  slice). Their centres are the vertices Cornerstone's marching squares (iso value 1 on a 0/1
  mask) produce, so lengths are centre-to-centre.
- A chord *stays inside* when it lies in the union of the segment's closed pixel squares; it may
  pass exactly through a corner shared by two diagonal segment pixels. This is an exact test
  (integer arithmetic on where the chord crosses pixel edges), stricter than Cornerstone's
  rounding of sample points, so chords never cut across a concave corner or a hole.

Speed: Cornerstone tries all O(n^2) vertex pairs on every slice. Here slices are visited in order
of an upper bound (their bounding-box diagonal) and skipped once the bound is below the best long
axis found; within a slice, pairs are tested longest first, in vectorised batches, so the first
chord that stays inside ends the search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import Report
from ..model import Segmentation

PERPENDICULAR_TOLERANCE = 0.01
_TIE = 1e-9
_MAX_BATCH_CELLS = 1 << 21


@dataclass
class Bidirectional:
    """The largest bidirectional measurement of one segment."""

    number: int
    label: str
    long_mm: float | None = None
    short_mm: float | None = None
    long_lps: list[list[float]] | None = None
    short_lps: list[list[float]] | None = None
    slice_index: int | None = None
    long_index: list[list[int]] | None = None  # [[x, y], [x, y]] on slice_index
    short_index: list[list[int]] | None = None
    sop_instance_uid: str | None = None
    frame_number: int | None = None
    note: str | None = None

    @property
    def found(self) -> bool:
        return self.long_mm is not None

    def as_dict(self) -> dict:
        return {"segment": self.number, "label": self.label, "long_axis_mm": self.long_mm,
                "short_axis_mm": self.short_mm, "long_axis_lps": self.long_lps,
                "short_axis_lps": self.short_lps, "slice_index": self.slice_index,
                "sop_instance_uid": self.sop_instance_uid, "frame_number": self.frame_number,
                "note": self.note}


def boundary_points(mask: np.ndarray) -> np.ndarray:
    """(n, 2) integer (x, y) of the voxels of a 2-D mask with a 4-neighbour outside it."""
    p = np.pad(mask, 1)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    yx = np.argwhere(mask & ~interior)
    return yx[:, ::-1].astype(np.int64)


def chords_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """For chords p[i] -> q[i] between pixel centres ((x, y) integers): inside the mask?

    The chord visits a sequence of pixels; it crosses the vertical pixel edges x = m + 1/2 and
    the horizontal ones y = m + 1/2 at parameters that are exact integers once scaled by
    2 * |dx| * |dy|. Between two consecutive distinct crossings it is inside one pixel, found
    from the interval's midpoint; a crossing of both kinds at once is a corner, which touches
    no other pixel. Every visited pixel must be in the mask.
    """
    p = np.asarray(p, np.int64).reshape(-1, 2)
    q = np.asarray(q, np.int64).reshape(-1, 2)
    out = np.ones(len(p), bool)
    if len(p) == 0:
        return out
    out &= ~_quick_reject(mask, p, q)
    todo = np.flatnonzero(out)
    if todo.size:
        out[todo] = _exact_inside(mask, p[todo], q[todo])
    return out


def _quick_reject(mask: np.ndarray, p: np.ndarray, q: np.ndarray, samples: int = 16
                  ) -> np.ndarray:
    """Chords that certainly leave the mask: a sample point strictly inside an outside pixel.

    Points at t = k / samples are computed in integers; a point on a pixel edge (a coordinate
    at exactly m + 1/2) is ambiguous and not used.
    """
    k = np.arange(1, samples)[None, :]
    h, w = mask.shape
    scaled = []
    for c, size in ((0, w), (1, h)):
        num = samples * p[:, c:c + 1] + k * (q - p)[:, c:c + 1]  # samples * coordinate
        edge = (num % samples) * 2 == samples
        idx = np.clip((num + samples // 2) // samples, 0, size - 1)
        scaled.append((idx, edge))
    (xi, xe), (yi, ye) = scaled
    usable = ~(xe | ye)
    return np.any(usable & ~mask[yi, xi], axis=1)


def _exact_inside(mask: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = np.ones(len(p), bool)
    length = np.abs(q - p).sum(axis=1) + 2
    order = np.argsort(length, kind="stable")
    start = 0
    while start < len(order):  # batches of similar length keep the padding small
        stop = min(len(order), start + max(1, _MAX_BATCH_CELLS // int(length[order[start]])))
        while stop - start > 1 and int(length[order[stop - 1]]) * (stop - start) > \
                _MAX_BATCH_CELLS:
            stop = start + (stop - start) // 2
        sel = order[start:stop]
        out[sel] = _inside_batch(mask, p[sel], q[sel])
        start = stop
    return out


def _inside_batch(mask: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    d = q - p
    ad = np.abs(d)
    sx = np.maximum(ad[:, 0], 1)
    sy = np.maximum(ad[:, 1], 1)
    total = 2 * sx * sy  # the chord's parameter, scaled to integers
    wx, wy = int(ad[:, 0].max()), int(ad[:, 1].max())
    big = np.iinfo(np.int64).max // 4
    mx = np.arange(wx)[None, :]
    my = np.arange(wy)[None, :]
    tx = np.where(mx < ad[:, 0:1], (2 * mx + 1) * sy[:, None], big)
    ty = np.where(my < ad[:, 1:2], (2 * my + 1) * sx[:, None], big)
    t = np.concatenate([np.zeros((len(p), 1), np.int64), tx, ty, total[:, None]], axis=1)
    t.sort(axis=1)
    a, b = t[:, :-1], t[:, 1:]
    valid = (b > a) & (b <= total[:, None])
    mid = (a + b).astype(np.float64) / (2.0 * total[:, None])  # parameter in (0, 1)
    x = np.floor(p[:, 0:1] + d[:, 0:1] * mid + 0.5).astype(np.int64)
    y = np.floor(p[:, 1:2] + d[:, 1:2] * mid + 0.5).astype(np.int64)
    h, w = mask.shape
    inb = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    hit = np.zeros(x.shape, bool)
    ok = valid & inb
    hit[ok] = mask[y[ok], x[ok]]
    return np.all(hit | ~valid, axis=1) & np.all(inb | ~valid, axis=1)


class _SlicePairs:
    """All pairs of boundary points of one slice, longest first on demand.

    Pairs live in the upper triangle of an n x n matrix (flat index i * n + j, i < j); the
    dense matrix costs twice the memory of a pair list but no index arrays to build.
    """

    def __init__(self, mask: np.ndarray, pts: np.ndarray, sx: float, sy: float) -> None:
        self.mask = mask
        self.pts = pts
        self.n = n = len(pts)
        xs, ys = pts[:, 0] * sx, pts[:, 1] * sy
        self.dx = (xs[None, :] - xs[:, None]).ravel()
        self.dy = (ys[None, :] - ys[:, None]).ravel()
        d2 = self.dx * self.dx + self.dy * self.dy
        d2.reshape(n, n)[np.tril_indices(n)] = -1.0  # each pair once, no self pairs
        self.d2 = d2

    def ends(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.pts[pairs // self.n], self.pts[pairs % self.n]

    def longest_inside(self, floor2: float, keep: np.ndarray | None = None) -> int | None:
        """Index of the longest pair above ``floor2`` (squared mm) whose chord stays inside."""
        floor2 = max(floor2, 1e-12)  # never the excluded (negative) entries
        cand = np.flatnonzero(self.d2 >= floor2) if keep is None else \
            keep[self.d2[keep] >= floor2]
        batch = 32
        d2 = self.d2[cand]
        while cand.size:
            k = min(batch, cand.size)
            top = np.argpartition(-d2, k - 1)[:k] if k < cand.size else np.arange(cand.size)
            top = top[np.argsort(-d2[top], kind="stable")]
            pairs = cand[top]
            p, q = self.ends(pairs)
            alive = np.flatnonzero(~_quick_reject(self.mask, p, q))
            for start in range(0, alive.size, 16):  # exact test, longest first
                chunk = alive[start:start + 16]
                ok = _exact_inside(self.mask, p[chunk], q[chunk])
                if ok.any():
                    return int(pairs[chunk[int(np.argmax(ok))]])
            rest = np.ones(cand.size, bool)
            rest[top] = False
            cand, d2 = cand[rest], d2[rest]
            batch *= 4
        return None

    def perpendicular(self, pair: int) -> np.ndarray:
        """Pairs within the perpendicularity tolerance of ``pair``'s direction (in mm)."""
        length = np.sqrt(self.d2[pair])
        ux, uy = self.dx[pair] / length, self.dy[pair] / length
        dot = np.abs(self.dx * ux + self.dy * uy)
        ok = (self.d2 > 0) & (dot * dot <= PERPENDICULAR_TOLERANCE ** 2 * self.d2)
        return np.flatnonzero(ok)


_DIRECTIONS = 32
_ANGLES = np.arange(_DIRECTIONS) * np.pi / _DIRECTIONS
_UNITS = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)


def largest_bidirectional(seg: Segmentation, number: int,
                          box: tuple[slice, slice, slice] | None = None) -> Bidirectional:
    """Largest bidirectional measurement of one segment on its acquisition-plane slices."""
    label = seg.segment(number).label
    out = Bidirectional(number, label)
    box = box if box is not None else seg.bounding_boxes()[number]
    if box is None:
        out.note = "segment is empty"
        return out
    grid = seg.grid
    sx, sy = float(grid.spacing[2]), float(grid.spacing[1])
    sub = seg.mask_in(number, box)
    z0, y0, x0 = box[0].start, box[1].start, box[2].start
    # boundary voxels of every slice at once (4-neighbours in the slice plane)
    p = np.pad(sub, ((0, 0), (1, 1), (1, 1)))
    interior = p[:, 1:-1, 1:-1] & p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & \
        p[:, 1:-1, 2:]
    kk, yy, xx = np.nonzero(sub & ~interior)
    pts_all = np.stack([xx, yy], axis=1).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, kk[1:] != kk[:-1]])
    stops = np.r_[starts[1:], len(kk)]
    proj = (pts_all * np.array([sx, sy])) @ _UNITS.T
    widths = (np.maximum.reduceat(proj, starts, axis=0) -
              np.minimum.reduceat(proj, starts, axis=0)).max(axis=1)
    bounds = widths / np.cos(np.pi / (2 * _DIRECTIONS))
    slices = sorted(zip(bounds.tolist(), kk[starts].tolist(), starts.tolist(), stops.tolist(),
                        strict=True), key=lambda t: (-t[0], -t[1]))
    best = None  # (long, short, k, long pair points, short pair points)
    fallback = None  # longest chord of a slice with no perpendicular chord
    for bound, kk, a, b in slices:
        if best is not None and bound < best[0] - _TIE:
            break
        if b - a < 2:
            continue
        pairs = _SlicePairs(sub[kk], pts_all[a:b], sx, sy)
        floor = best[0] - _TIE if best is not None else 0.0
        major = pairs.longest_inside(floor * floor)
        if major is None:
            continue
        long_mm = float(np.sqrt(pairs.d2[major]))
        if best is not None and (long_mm < best[0] - _TIE or
                                 (abs(long_mm - best[0]) <= _TIE and kk < best[2])):
            continue
        offset = np.array([x0, y0])
        long_pts = tuple(e[0] + offset for e in pairs.ends(np.array([major])))
        minor = pairs.longest_inside(0.0, pairs.perpendicular(major))
        if minor is None:
            if fallback is None or long_mm > fallback[0] + _TIE:
                fallback = (long_mm, None, kk, long_pts, None)
            continue
        short_pts = tuple(e[0] + offset for e in pairs.ends(np.array([minor])))
        best = (long_mm, float(np.sqrt(pairs.d2[minor])), kk, long_pts, short_pts)
    chosen = best or fallback
    if chosen is None:
        out.note = "no chord: the segment is a single voxel on every slice"
        return out
    long_mm, short_mm, kk, long_pts, short_pts = chosen
    k = z0 + kk
    out.long_mm, out.short_mm, out.slice_index = long_mm, short_mm, k
    out.long_index = [[int(v) for v in pt] for pt in long_pts]
    out.long_lps = _to_lps(seg, long_pts, k)
    if short_pts is not None:
        out.short_index = [[int(v) for v in pt] for pt in short_pts]
        out.short_lps = _to_lps(seg, short_pts, k)
    else:
        out.note = "no chord perpendicular to the long axis stays inside (a line-like segment)"
    src = seg.source
    if src is not None and len(src.instances) == grid.shape[0]:
        out.sop_instance_uid = src.instances[k].sop_instance_uid
        out.frame_number = src.instances[k].frame_number
    return out


def _to_lps(seg: Segmentation, pts, k: int) -> list[list[float]]:
    idx = np.array([[pt[0], pt[1], k] for pt in pts], float)
    return seg.grid.index_to_lps(idx).tolist()


def measure_all(seg: Segmentation, numbers: list[int] | None = None,
                report: Report | None = None) -> list[Bidirectional]:
    """Largest bidirectional of each segment (each on its own mask; overlap does not matter)."""
    numbers = list(seg.numbers) if numbers is None else numbers
    boxes = seg.bounding_boxes()
    out = []
    for n in numbers:
        b = largest_bidirectional(seg, n, boxes[n])
        if report is not None and b.note and not b.found:
            report.warn(f"segment {n} ({b.label}): {b.note}")
        out.append(b)
    return out
