"""Planar contours <-> voxel masks, exactly, in a slice's index coordinates.

The rule, in both directions: **a voxel belongs to a structure when its centre lies inside an odd
number of the structure's contours on that slice** (even-odd, so a contour inside another cuts a
hole) **or on one of its contours**. Index coordinates put voxel centres at integers: x = column,
y = row. The second half matters only for contours drawn through voxel centres (rt-utils,
Cornerstone's labelmap-to-contour): their boundary voxels are kept instead of half of them lost.

- :func:`rasterize` fills contours by that rule with a scan line through every row of voxel
  centres (edges counted half-open, so a vertex on a scan line is neither lost nor doubled).
- :func:`trace` goes the other way: marching squares at iso 0.5 puts every contour vertex
  half-way between an inside and an outside voxel centre, so no centre is ever on a contour and
  :func:`rasterize` gives the mask back voxel for voxel. Vertices in the middle of a straight
  run (horizontal, vertical or 45 degrees) are dropped, which does not change the polygon at
  all. Where two voxels touch only at a corner they are traced as two contours (4-connected).
  Segments are linked into loops for all slices at once with pointer jumping, no Python loop
  per vertex.
- :func:`inset` moves a traced contour :data:`INSET` of a voxel towards its inside. The voxels
  are unchanged (centres stay at least a quarter voxel from every edge), but every vertex now
  lies nearer an inside centre than an outside one, so readers that round vertices to whole
  pixels and fill the outline pixels too (rt-utils, anything built on OpenCV's ``fillPoly``)
  get the same voxels as the centre rule; an unshifted vertex half-way between two centres
  would round either way.
- :func:`bands` re-traces a slice in bands of rows when one of its contours is too long for
  one ContourData value (64 KiB, the length field of an explicit-VR DS): each band is traced on
  its own, so the pieces are ordinary contours of disjoint sets of voxels.
- ``rule="rt-utils"`` in :func:`rasterize` reproduces rt-utils' masks instead of the centre
  rule, for datasets made with it: vertices rounded to the nearest voxel centre (half to
  even, as ``numpy.around``), even-odd fill of the rounded polygons, plus every voxel on their
  8-connected outline as OpenCV draws it (:mod:`.rtutils`).
"""

from __future__ import annotations

import numpy as np

from .rtutils import fill_poly

# corners of a marching-squares cell, (dx, dy) from the cell's top-left pixel centre
_CORNERS = {"TL": (0, 0), "TR": (1, 0), "BR": (1, 1), "BL": (0, 1)}
# edge midpoints: (x, y) offsets and the two corners each edge joins
_EDGES = {"T": ((0.5, 0.0), ("TL", "TR")), "R": ((1.0, 0.5), ("TR", "BR")),
          "B": ((0.5, 1.0), ("BL", "BR")), "L": ((0.0, 0.5), ("TL", "BL"))}
_EDGE_CODE = {"T": 0, "R": 1, "B": 2, "L": 3}


def _case_table() -> tuple[np.ndarray, np.ndarray]:
    """For each of 16 corner patterns: up to two directed segments (start edge, end edge).

    Segments keep the inside on the left of their direction (cross product > 0); a saddle
    (two diagonal corners inside) cuts each inside corner off on its own.
    """
    starts = np.full((16, 2), -1, np.int64)
    ends = np.full((16, 2), -1, np.int64)
    order = ("TL", "TR", "BR", "BL")
    for case in range(16):
        inside = {c for i, c in enumerate(order) if case >> (3 - i) & 1}
        crossing = [e for e, (_, (a, b)) in _EDGES.items() if (a in inside) != (b in inside)]
        if not crossing:
            continue
        if len(crossing) == 2:
            pairs = [(crossing, next(iter(inside)))]
        else:  # saddle: one segment around each inside corner
            pairs = [([e for e in crossing if corner in _EDGES[e][1]], corner)
                     for corner in sorted(inside)]
        for s, (edges, corner) in enumerate(pairs):
            p, q = (np.array(_EDGES[e][0]) for e in edges)
            x = np.array(_CORNERS[corner], float)
            u, v = q - p, x - p
            if u[0] * v[1] - u[1] * v[0] < 0:
                edges = edges[::-1]
            starts[case, s] = _EDGE_CODE[edges[0]]
            ends[case, s] = _EDGE_CODE[edges[1]]
    return starts, ends


_SEG_START, _SEG_END = _case_table()


#: contour fill rules :func:`rasterize` knows
RULES = ("centre", "rt-utils")
#: how far :func:`inset` moves a contour towards its inside, in voxels
INSET = 1 / 32


def rasterize(contours: list[tuple[int, np.ndarray]], shape: tuple[int, int, int], *,
              rule: str = "centre") -> np.ndarray:
    """Voxels of ``shape`` ([z, y, x]) inside the contours, each ``(slice, (m, 2) xy array)``.

    ``rule``: ``"centre"`` (the module's rule) or ``"rt-utils"`` (rt-utils' rasterisation).
    """
    if rule not in RULES:
        raise ValueError(f"unknown contour fill rule {rule!r} (one of {', '.join(RULES)})")
    nz, ny, nx = shape
    out = np.zeros(shape, bool)
    by_slice: dict[int, list[np.ndarray]] = {}
    for k, poly in contours:
        if 0 <= k < nz and len(poly) >= 1:  # 1-2 points: only the centres on them
            poly = np.asarray(poly, np.float64)
            if rule == "rt-utils":
                poly = np.around(poly)
            by_slice.setdefault(int(k), []).append(poly)
    if not by_slice or ny == 0 or nx == 0:
        return out
    if rule == "rt-utils":
        for k, polys in by_slice.items():
            out[k] = fill_poly(polys, ny, nx)
        return out
    step = max(1, (1 << 24) // (ny * (nx + 1)))  # bounded scratch memory
    ks = sorted(by_slice)
    for i in range(0, len(ks), step):
        chunk = ks[i:i + step]
        out[chunk] = _fill([by_slice[k] for k in chunk], ny, nx)
    return out


def inset(poly: np.ndarray, amount: float = INSET) -> np.ndarray:
    """A traced contour (inside on the left) moved ``amount`` voxels inwards, corners mitred.

    Traced contours turn by 45 or 90 degrees, so no vertex moves more than sqrt(2) ``amount``.
    """
    p = np.asarray(poly, np.float64)
    if len(p) < 3:
        return p
    d = np.roll(p, -1, axis=0) - p  # edge i runs from vertex i to i + 1
    d /= np.linalg.norm(d, axis=1)[:, None]
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)  # towards the inside
    before = np.roll(normal, 1, axis=0)  # the edge arriving at each vertex
    mitre = (before + normal) / (1.0 + np.sum(before * normal, axis=1))[:, None]
    return p + amount * mitre


def fill_region(polygons: list[list[np.ndarray]], r0: int, r1: int, c0: int,
                c1: int) -> np.ndarray:
    """The centre rule on one slice's region rows [r0, r1) x columns [c0, c1) only.

    ``polygons``: each a list of rings ((m, 2) xy arrays in the whole slice's index
    coordinates, centres at integers) filled even-odd; the polygons are united. For one polygon
    the result equals :func:`rasterize` of its rings on the whole slice cut to the region, pixel
    for pixel, whatever the region (the arithmetic is done in whole-slice coordinates).
    """
    polys = [[np.asarray(r, np.float64) for r in p if len(r) >= 1] for p in polygons]
    polys = [p for p in polys if p]
    if not polys or r1 <= r0 or c1 <= c0:
        return np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), bool)
    return _fill(polys, r1 - r0, c1 - c0, r0, c0, region_edges=True).any(axis=0)


def _fill(slices: list[list[np.ndarray]], ny: int, nx: int, row0: int = 0,
          col0: int = 0, *, region_edges: bool = False) -> np.ndarray:
    """Even-odd scan-line fill of several slices' polygons -> [len(slices), ny, nx], for rows
    ``row0 .. row0 + ny`` and columns ``col0 .. col0 + nx`` of the slices.

    ``region_edges``: first drop the edges that cannot change the region (no scan row of the
    region between their ends, or wholly right of it): the same pixels, less work for a small
    region of a long contour.
    """
    ks, xa, ya, xb, yb = [], [], [], [], []
    for i, polys in enumerate(slices):
        for p in polys:
            q = np.roll(p, -1, axis=0)
            ks.append(np.full(len(p), i, np.int64))
            xa.append(p[:, 0])
            ya.append(p[:, 1])
            xb.append(q[:, 0])
            yb.append(q[:, 1])
    k = np.concatenate(ks)
    xa, ya, xb, yb = (np.concatenate(a) for a in (xa, ya, xb, yb))
    lo, hi = np.minimum(ya, yb), np.maximum(ya, yb)
    if region_edges:
        near = (hi > row0 - 1) & (lo < row0 + ny) & (np.minimum(xa, xb) < col0 + nx)
        k, xa, ya, xb, yb, lo, hi = (a[near] for a in (k, xa, ya, xb, yb, lo, hi))
    j0 = np.clip(np.ceil(lo), row0, row0 + ny).astype(np.int64)  # rows with lo <= j < hi
    j1 = np.clip(np.ceil(hi), row0, row0 + ny).astype(np.int64)
    n = np.maximum(j1 - j0, 0)
    total = int(n.sum())  # 0 when every contour is a point or a flat line: no row crossed
    edge = np.repeat(np.arange(len(n)), n)
    first = np.cumsum(n) - n
    j = j0[edge] + (np.arange(total) - first[edge])
    t = (j - ya[edge]) / (yb[edge] - ya[edge])
    x = xa[edge] + t * (xb[edge] - xa[edge])
    # toggles every centre right of x
    col = np.clip(np.floor(x).astype(np.int64) + 1 - col0, 0, nx)
    flat = (k[edge] * ny + (j - row0)) * (nx + 1) + col
    counts = np.bincount(flat, minlength=len(slices) * ny * (nx + 1)).astype(np.uint8) & 1
    parity = np.bitwise_xor.accumulate(counts.reshape(len(slices), ny, nx + 1), axis=2)
    out = parity[:, :, :nx].astype(bool)
    kk, jj, ii = _centres_on_edges(k, xa, ya, xb, yb, ny, nx, row0=row0, col0=col0)
    ok = (jj >= 0) & (jj < ny) & (ii >= 0) & (ii < nx)
    out[kk[ok], jj[ok], ii[ok]] = True
    return out


def _centres_on_edges(k, xa, ya, xb, yb, ny: int, nx: int, eps: float = 1e-3, *,
                      row0: int = 0, col0: int = 0):
    """Voxel centres lying on a contour edge (within ``eps`` voxel): they count as inside.

    Contours drawn through voxel centres (rt-utils' OpenCV chains, Cornerstone's marching
    squares at iso value 1) would otherwise lose about half of their boundary voxels; traced
    contours from :func:`trace` never touch a centre. Edges between two lattice points give every
    lattice point on them; other edges only when horizontal or vertical on a row or column.
    """
    rx, ry, sx, sy = (np.round(v) for v in (xa, ya, xb, yb))
    on_lattice = (np.abs(xa - rx) < eps) & (np.abs(ya - ry) < eps) & \
        (np.abs(xb - sx) < eps) & (np.abs(yb - sy) < eps)
    dx, dy = (sx - rx).astype(np.int64), (sy - ry).astype(np.int64)
    g = np.gcd(np.abs(dx), np.abs(dy))
    ux, uy = dx // np.maximum(g, 1), dy // np.maximum(g, 1)  # lattice step along the edge
    # only the part inside the region: t in [t0, t1] keeps rx + t ux in [col0, col0 + nx - 1],
    # same for y (returned relative to the region)
    t0, t1 = np.zeros(len(g)), g.astype(np.float64)
    for r, u, size, first in ((rx, ux, nx, col0), (ry, uy, ny, row0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = (first - r) / u, (first + size - 1 - r) / u
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        moving = u != 0
        t0 = np.where(moving, np.maximum(t0, np.ceil(lo)), t0)
        t1 = np.where(moving, np.minimum(t1, np.floor(hi)), t1)
        t1 = np.where(~moving & ((r < first) | (r > first + size - 1)), -1, t1)
    n = np.where(on_lattice, np.maximum(t1 - t0 + 1, 0), 0).astype(np.int64)
    x0 = np.where(on_lattice, rx + t0 * ux, 0)
    y0 = np.where(on_lattice, ry + t0 * uy, 0)
    # horizontal / vertical edges on a row / column of centres, ends anywhere
    horiz = ~on_lattice & (np.abs(ya - yb) < eps) & (np.abs(ya - ry) < eps) & \
        (ry >= row0) & (ry < row0 + ny)
    vert = ~on_lattice & (np.abs(xa - xb) < eps) & (np.abs(xa - rx) < eps) & \
        (rx >= col0) & (rx < col0 + nx)
    lo_h = np.maximum(np.ceil(np.minimum(xa, xb) - eps), col0)
    hi_h = np.minimum(np.floor(np.maximum(xa, xb) + eps), col0 + nx - 1)
    lo_v = np.maximum(np.ceil(np.minimum(ya, yb) - eps), row0)
    hi_v = np.minimum(np.floor(np.maximum(ya, yb) + eps), row0 + ny - 1)
    n = n + np.where(horiz, np.maximum(hi_h - lo_h + 1, 0), 0).astype(np.int64)
    n = n + np.where(vert, np.maximum(hi_v - lo_v + 1, 0), 0).astype(np.int64)
    x0 = np.where(horiz, lo_h, np.where(vert, rx, x0))
    y0 = np.where(horiz, ry, np.where(vert, lo_v, y0))
    ux = np.where(horiz, 1, np.where(vert, 0, ux))
    uy = np.where(horiz, 0, np.where(vert, 1, uy))
    total = int(n.sum())
    edge = np.repeat(np.arange(len(n)), n)
    t = np.arange(total) - (np.cumsum(n) - n)[edge]
    i = (x0[edge] + t * ux[edge]).astype(np.int64) - col0
    j = (y0[edge] + t * uy[edge]).astype(np.int64) - row0
    return k[edge], j, i


def trace(mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Closed polygons (``(slice, (m, 2) xy vertices)``) whose even-odd fill is ``mask``."""
    mask = np.asarray(mask, bool)
    nz, ny, nx = mask.shape
    p = np.zeros((nz, ny + 2, nx + 2), np.uint8)
    p[:, 1:-1, 1:-1] = mask
    h, w = ny + 2, nx + 2
    case = (p[:, :-1, :-1] << 3) | (p[:, :-1, 1:] << 2) | (p[:, 1:, 1:] << 1) | p[:, 1:, :-1]
    kk, rr, cc = np.nonzero((case != 0) & (case != 15))
    if kk.size == 0:
        return []
    cs = case[kk, rr, cc]
    n_h, n_v = h * (w - 1), (h - 1) * w
    per_slice = n_h + n_v

    def node(code: np.ndarray, k, r, c) -> np.ndarray:
        """Id of the midpoint of edge ``code`` (T, R, B, L) of cell (r, c)."""
        base = k * per_slice
        return np.select(
            [code == 0, code == 1, code == 2],
            [base + r * (w - 1) + c, base + n_h + r * w + c + 1, base + (r + 1) * (w - 1) + c],
            base + n_h + r * w + c)

    starts, ends = [], []
    for s in (0, 1):
        a, b = _SEG_START[cs, s], _SEG_END[cs, s]
        ok = a >= 0
        starts.append(node(a[ok], kk[ok], rr[ok], cc[ok]))
        ends.append(node(b[ok], kk[ok], rr[ok], cc[ok]))
    start, end = np.concatenate(starts), np.concatenate(ends)
    order = np.argsort(start)
    nxt = order[np.searchsorted(start, end, sorter=order)]  # segment that continues each one
    loops = _loops(nxt)
    return _polygons(start, nxt, loops, per_slice, n_h, w)


def _loops(nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loop label (smallest member) and steps to the loop's last member, by pointer jumping."""
    n = len(nxt)
    rounds = max(1, int(np.ceil(np.log2(n))) + 1)
    label = np.arange(n)
    jump = nxt.copy()
    for _ in range(rounds):
        label = np.minimum(label, label[jump])
        jump = jump[jump]
    tail = nxt == label  # the member just before the loop's first one
    succ = np.where(tail, np.arange(n), nxt)
    dist = (~tail).astype(np.int64)
    for _ in range(rounds):
        dist = dist + dist[succ]
        succ = succ[succ]
    return label, dist


def _polygons(start: np.ndarray, nxt: np.ndarray, loops, per_slice: int, n_h: int,
              w: int) -> list[tuple[int, np.ndarray]]:
    label, dist = loops
    order = np.lexsort((-dist, label))  # each loop from its first member to its last
    ids = start[order]
    k, rem = ids // per_slice, ids % per_slice
    horizontal = rem < n_h
    r = np.where(horizontal, rem // (w - 1), (rem - n_h) // w)
    c = np.where(horizontal, rem % (w - 1), (rem - n_h) % w)
    x2 = np.where(horizontal, 2 * c + 1, 2 * c) - 2  # doubled coordinates, padding removed
    y2 = np.where(horizontal, 2 * r, 2 * r + 1) - 2
    lab = label[order]
    bounds = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1], True])
    # drop vertices in the middle of a straight run: same step in and out
    pos = np.arange(len(ids))
    first = np.repeat(bounds[:-1], np.diff(bounds))
    last = np.repeat(bounds[1:] - 1, np.diff(bounds))
    prev = np.where(pos == first, last, pos - 1)
    after = np.where(pos == last, first, pos + 1)
    keep = ~((x2 - x2[prev] == x2[after] - x2) & (y2 - y2[prev] == y2[after] - y2))
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        sel = keep[a:b]
        out.append((int(k[a]), np.stack([x2[a:b][sel], y2[a:b][sel]], axis=1) / 2.0))
    return out


def bands(mask: np.ndarray, max_vertices: int) -> list[np.ndarray]:
    """Contours of one slice's ``mask`` ([y, x]), each of at most ``max_vertices`` vertices
    where possible: the rows are halved until every band's contours fit, and each band is traced
    on its own (the contours of a single row, runs of voxels, always fit)."""
    mask = np.asarray(mask, bool)
    polys = [p for _, p in trace(mask[None])]
    rows = np.flatnonzero(mask.any(axis=1))
    if not polys or max(len(p) for p in polys) <= max_vertices or len(rows) < 2:
        return polys
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    mid = (lo + hi) // 2
    out = []
    for a, b in ((lo, mid), (mid, hi)):
        part = np.zeros_like(mask)
        part[a:b] = mask[a:b]
        out += bands(part, max_vertices)
    return out
