"""Label images -> exact polygons along pixel edges (for GeoJSON output).

Every ring runs along the edges between a segment's pixels and the others, corner to corner in
pixel coordinates (x = column, y = row, the top left corner of pixel (0, 0) at (0, 0), as
QuPath's GeoJSON): a pixel is inside exactly when its centre is, so rasterising the polygons
with the centre rule (:mod:`segbridge.slide.geojson`, the RTSTRUCT rule) gives back the same
pixels. Objects are 4-connected: pixels that touch at a corner only become separate polygons
(at such a corner the trace turns so as to keep them apart). Holes are rings of the polygon
they are in; rings go counter-clockwise outside and clockwise around holes, as RFC 7946 7.1.6
asks (in the x-right, y-down plane of the image the signed area of an outer ring is
positive). Consecutive collinear edges are merged, so a ring has a vertex only where it turns.

The image is read a band of rows at a time (only the edges are kept, not the pixels); the
edges of all bands are chained at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# directions of a unit edge in (x, y): right, down, left, up
_DX = np.array([1, 0, -1, 0])
_DY = np.array([0, 1, 0, -1])


def _band_edges(band: np.ndarray, above: np.ndarray, value: int, r0: int,
                width: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed unit edges of ``band == value`` whose rows start at ``r0`` (``above``: the
    row before the band, or zeros): (start vertex ids, direction codes), inside on the left
    (in the y-down plane: left of direction (dx, dy) is (dy, -dx))."""
    m = band == value
    prev = np.concatenate([(above == value)[None], m[:-1]], axis=0)
    out_v, out_d = [], []
    w1 = width + 1
    # horizontal edges on the line y = r0 + i, between rows i - 1 (prev) and i (m)
    rr, cc = np.nonzero(m & ~prev)  # inside below: the edge runs left, (c+1, y) -> (c, y)
    out_v.append((r0 + rr) * w1 + cc + 1)
    out_d.append(np.full(rr.size, 2))
    rr, cc = np.nonzero(prev & ~m)  # inside above: runs right, (c, y) -> (c+1, y)
    out_v.append((r0 + rr) * w1 + cc)
    out_d.append(np.full(rr.size, 0))
    # vertical edges on the line x = c, between columns c - 1 and c, rows r .. r+1
    left = np.zeros((m.shape[0], m.shape[1] + 1), bool)
    right = np.zeros_like(left)
    right[:, :-1] = m  # pixel right of line x
    left[:, 1:] = m  # pixel left of line x
    rr, cc = np.nonzero(right & ~left)  # inside right: runs down, (x, r) -> (x, r+1)
    out_v.append((r0 + rr) * w1 + cc)
    out_d.append(np.full(rr.size, 1))
    rr, cc = np.nonzero(left & ~right)  # inside left: runs up, (x, r+1) -> (x, r)
    out_v.append((r0 + rr + 1) * w1 + cc)
    out_d.append(np.full(rr.size, 3))
    return np.concatenate(out_v).astype(np.int64), np.concatenate(out_d).astype(np.int8)


def _closing_edges(last: np.ndarray, value: int, rows: int, width: int):
    """Edges on the bottom line y = rows under the last row."""
    cc = np.flatnonzero(last == value)
    return ((rows * (width + 1) + cc).astype(np.int64), np.full(cc.size, 0, np.int8))


def edges_of(source, value: int, band_rows: int = 2048) -> tuple[np.ndarray, np.ndarray, int]:
    """All directed boundary edges of one label value in a tile source (``read``, ``shape``)."""
    rows, cols = source.shape
    above = np.zeros(cols, np.int64)
    vs, ds = [], []
    last = above
    for r0 in range(0, rows, band_rows):
        band = source.read(r0, min(rows, r0 + band_rows), 0, cols)
        v, d = _band_edges(band, above, value, r0, cols)
        vs.append(v)
        ds.append(d)
        above = last = band[-1]
    v, d = _closing_edges(last, value, rows, cols)
    vs.append(v)
    ds.append(d)
    return np.concatenate(vs), np.concatenate(ds), cols


def _rings(starts: np.ndarray, dirs: np.ndarray, width: int) -> Iterator[np.ndarray]:
    """Chain unit edges into closed rings of turning points ((k, 2) float arrays of x, y)."""
    w1 = width + 1
    ends = starts + _DX[dirs] + _DY[dirs] * w1
    order = np.argsort(starts, kind="stable")
    s_sorted = starts[order]
    used = np.zeros(starts.size, bool)
    # a vertex has one outgoing edge, or two where pixels touch at a corner only
    first = np.searchsorted(s_sorted, starts, side="left")
    count = np.searchsorted(s_sorted, starts, side="right") - first
    ends_l = ends.tolist()
    dirs_l = dirs.tolist()
    order_l = order.tolist()
    first_by_vertex = {}
    for k in np.flatnonzero(count == 2).tolist():
        first_by_vertex[int(starts[k])] = int(first[k])
    single_next = {}
    simple = np.flatnonzero(count == 1)
    single_next = dict(zip(starts[simple].tolist(), simple.tolist(), strict=True))
    used_l = used
    for e0 in range(starts.size):
        if used_l[e0]:
            continue
        pts = []
        e = e0
        d_prev = -1
        while True:
            used_l[e] = True
            d = dirs_l[e]
            if d != d_prev:
                v = int(starts[e])
                pts.append((v % w1, v // w1))
                d_prev = d
            v_end = ends_l[e]
            nxt = single_next.get(v_end)
            if nxt is None or used_l[nxt]:
                f = first_by_vertex.get(v_end)
                if f is None:
                    nxt = None
                else:  # two ways on: turn left (keeps corner-touching pixels apart)
                    a, b = order_l[f], order_l[f + 1]
                    want = (d + 3) % 4  # left of d in the y-down plane
                    nxt = a if dirs_l[a] == want else b
                    if used_l[nxt]:
                        nxt = b if nxt == a else a
                        if used_l[nxt]:
                            nxt = None
            if nxt is None or nxt == e0:
                break
            e = nxt
        if len(pts) >= 2 and dirs_l[e0] == d_prev:
            pts = pts[1:] if len(pts) > 3 else pts  # the start lies inside a straight run
        yield np.array(pts, float)


def _area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _inside(x: float, y: float, ring: np.ndarray) -> bool:
    """Even-odd point in polygon (the point is never on the ring: a pixel centre)."""
    xs, ys = ring[:, 0], ring[:, 1]
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    cross = (ys > y) != (yn > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = xs + (y - ys) * (xn - xs) / (yn - ys)
    return bool(np.count_nonzero(cross & (x < xi)) % 2)


def polygons_of(source, value: int, band_rows: int = 2048) -> list[list[np.ndarray]]:
    """The polygons (outer ring, then holes; rings as (k, 2) x, y arrays, not closed) of one
    label value, 4-connected objects, exact along pixel edges."""
    starts, dirs, width = edges_of(source, value, band_rows)
    if starts.size == 0:
        return []
    outers, holes = [], []
    for ring in _rings(starts, dirs, width):
        # inside on the left in y-down = clockwise on screen for outer rings = negative area
        a = _area(ring)
        (outers if a < 0 else holes).append((ring, a))
    polys = [[o[::-1]] for o, _ in outers]  # reversed: positive area, RFC 7946 CCW
    if holes:
        boxes = np.array([[o[:, 0].min(), o[:, 1].min(), o[:, 0].max(), o[:, 1].max()]
                          for o, _ in outers])
        areas = np.array([-a for _, a in outers])
        for ring, _ in holes:
            # a pixel centre of the object just outside the hole: left of the first edge
            (x0, y0), (x1, y1) = ring[0], ring[1]
            dx, dy = np.sign(x1 - x0), np.sign(y1 - y0)
            px, py = x0 + 0.5 * dx + 0.5 * dy, y0 + 0.5 * dy - 0.5 * dx
            cand = np.flatnonzero((boxes[:, 0] < px) & (boxes[:, 2] > px) &
                                  (boxes[:, 1] < py) & (boxes[:, 3] > py))
            best = None
            for k in cand[np.argsort(areas[cand])]:
                if _inside(px, py, outers[k][0]):
                    best = int(k)
                    break
            if best is None:  # cannot happen for a closed boundary; keep the ring visible
                polys.append([ring[::-1]])
            else:
                polys[best].append(ring[::-1])
    return polys


def write_geojson(sseg, path, *, object_type: str = "annotation") -> int:
    """Write a slide segmentation as a GeoJSON FeatureCollection the way QuPath exports one:
    one Feature per object (4-connected, exact along pixel edges), ``properties`` with
    ``objectType``, ``classification`` {name, color} from the segment and ``name``; pixel
    coordinates of this level. Written through a temporary name; returns the feature count.
    Fractional segments are refused (a polygon is all or nothing)."""
    import json

    from ..colors import default_color
    from ..errors import InvalidInputError
    from ..outputs import written

    if sseg.seg_type == "FRACTIONAL":
        raise InvalidInputError(f"{path}: a FRACTIONAL segmentation has no polygons; threshold "
                                "it first")
    count = 0
    with written(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write('{"type": "FeatureCollection", "features": [')
            for k, s in enumerate(sseg.segments):
                if sseg.labels is not None:
                    source, value = sseg.labels, s.number
                else:
                    source, value = sseg.masks[s.number], 1
                color = [int(c) for c in (s.color or default_color(k))]
                for poly in polygons_of(source, value, band_rows=1024):
                    rings = [np.vstack([r, r[:1]]).astype(int).tolist() for r in poly]
                    feature = {"type": "Feature",
                               "geometry": {"type": "Polygon", "coordinates": rings},
                               "properties": {"objectType": object_type, "name": s.label,
                                              "classification": {"name": s.label,
                                                                 "color": color}}}
                    fh.write((",\n" if count else "\n") + json.dumps(feature))
                    count += 1
            fh.write("\n]}\n")
    return count
