"""Morphological contour interpolation (Albu et al. 2008), as ITK's filter computes it.

Between two annotated slices ``i`` and ``j`` of one segment, the 4-connected islands of both
slices are paired by overlap; every pair gets a "median" shape on the middle slice, and the
halves are filled recursively. This follows ITK's ``MorphologicalContourInterpolator``
(Zukic et al., Insight Journal 2016) with the options the PyPI package defaults to:

- ``UseDistanceTransform`` on: the median of two aligned shapes A and B is their intersection
  grown by the Euclidean distance (in pixels, in tenths) that best balances
  |median xor A| against |median xor B|;
- cross (4-neighbour) structuring element and 4-connected islands;
- heuristic alignment: a breadth-first search over translations from the centroid offset,
  keeping the one with the largest overlap (replayed exactly here, from an FFT correlation);
- islands that overlap nothing shrink to a point on the far slice (``Extrapolate``); an island
  overlapping several is split among them by competing conditional dilations (1-to-N, M-to-1
  and M-to-N cases), so splits, merges, holes and several islands are handled as ITK does.

Only slices strictly between two annotated slices are written; the caller keeps the annotated
slices as they are. Everything runs on small crops with numpy alone (no scipy import).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

_MIN_ALIGN_ITERS = 2 ** 3  # ITK: 2^ImageDimension, 3-D images
_MAX_ALIGN_ITERS = 6 ** 3  # ITK: 6^ImageDimension
_STEP = 4  # columns looked at on each side per round in _distances


@dataclass
class Shape:
    """A binary shape in a slice: a crop and the plane index (row, column) of its corner."""

    mask: np.ndarray
    r: int
    c: int

    def moved(self, t: tuple[int, int]) -> Shape:
        return Shape(self.mask, self.r + t[0], self.c + t[1])


@dataclass
class Region:
    """A rectangle of the plane (ITK's image region of a slice): corner and size."""

    r: int
    c: int
    h: int
    w: int


def fill_gaps(vol: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """Fill the slices between consecutive annotated slices of ``vol`` (slices along axis 0).

    ``vol`` is a boolean [slice, row, column] array of one segment; ``annotated`` the sorted
    indices of its non-empty slices. Returns a new array; annotated slices are unchanged.
    """
    out = vol.copy()
    if annotated.size < 2:
        return out
    rows = np.flatnonzero(vol.any(axis=(0, 2)))
    cols = np.flatnonzero(vol.any(axis=(0, 1)))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    region = Region(r0, c0, r1 - r0, c1 - c0)
    per_slice = label_slices(vol[annotated, r0:r1, c0:c1])
    jobs: list[_Median] = []
    for k in range(len(annotated) - 1):
        i, j = int(annotated[k]), int(annotated[k + 1])
        if j > i + 1:
            _between_two(jobs, i, j, per_slice[k], per_slice[k + 1], region)
    while jobs:  # the medians of one recursion level, all gaps at once
        level, jobs = jobs, []
        for job, med in zip(level, medians([(job.a2, job.b2) for job in level]), strict=True):
            _write(out[job.mid], med.mask, med.r, med.c)
            if abs(job.i - job.j) > 2:  # then between each end and the middle
                if abs(job.i - job.mid) > 1:
                    _one_to_one(jobs, job.i, job.mid, job.a, med, job.ti)
                if abs(job.j - job.mid) > 1:
                    _one_to_one(jobs, job.j, job.mid, job.b, med, job.tj)
    return out


def label_slices(stack: np.ndarray) -> np.ndarray:
    """4-connected islands of each slice of a boolean [slice, row, column] stack, numbered
    from 1 in every slice in raster order (what ``scipy.ndimage.label`` with a cross in the
    plane numbers, restarted per slice), without importing scipy: the runs of each row,
    joined with the overlapping runs of the next row by a vectorised union-find."""
    k, h, w = stack.shape
    padded = np.zeros((k * h, w + 2), np.int8)
    padded[:, 1:-1] = stack.reshape(k * h, w)
    d = np.diff(padded, axis=1)
    rr, s = np.nonzero(d == 1)  # runs [s, e) of row rr (slice rr // h), in raster order
    e = np.nonzero(d == -1)[1]
    n = rr.size
    flat = np.zeros(k * h * w + 1, np.int32)
    if n:
        stride = w + 1  # run keys row * stride + column are ordered like the runs
        below = (rr + 1) * stride
        lo = np.searchsorted(rr * stride + e, below + s, side="right")  # first run below
        hi = np.searchsorted(rr * stride + s, below + e, side="left")  # ending past s / ...
        hi[rr % h == h - 1] = 0  # ... starting before e; no row below a slice's last
        cnt = np.maximum(hi - lo, 0)
        a = np.repeat(np.arange(n), cnt)
        b = lo[a] + np.arange(a.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        root = np.arange(n)  # every run points to a smaller one of its island, or itself
        while a.size:
            ra, rb = root[a], root[b]
            apart = ra != rb
            if not apart.any():
                break
            a, b, ra, rb = a[apart], b[apart], ra[apart], rb[apart]
            np.minimum.at(root, np.maximum(ra, rb), np.minimum(ra, rb))  # hook roots
            while True:  # and point every run at its root
                up = root[root]
                if np.array_equal(up, root):
                    break
                root = up
        first = root == np.arange(n)  # an island's first run in raster order is its root
        sl = rr // h
        before = np.zeros(k, np.int64)
        before[1:] = np.cumsum(np.bincount(sl[first], minlength=k))[:-1]
        num = (np.cumsum(first)[root] - before[sl]).astype(np.int32)
        flat[rr * w + s] += num  # a run's number from its start to its end
        flat[rr * w + e] -= num
    return np.cumsum(flat[:-1], dtype=np.int32).reshape(k, h, w)


# -- pairing islands (ITK: InterpolateBetweenTwo) -------------------------------------------------
def _between_two(jobs: list[_Median], i: int, j: int, iconn: np.ndarray, jconn: np.ndarray,
                 region: Region) -> None:
    ni, nj = int(iconn.max()), int(jconn.max())
    both = (iconn > 0) & (jconn > 0)
    codes = np.unique(iconn[both].astype(np.int64) * (nj + 1) + jconn[both])
    pairs = [(int(v // (nj + 1)), int(v % (nj + 1))) for v in codes]
    matched_i = {a for a, _ in pairs}
    matched_j = {b for _, b in pairs}
    # islands that overlap nothing shrink to a point on the other slice
    for a in range(1, ni + 1):
        if a not in matched_i:
            _extrapolate(jobs, i, j, iconn, a, region)
    for b in range(1, nj + 1):
        if b not in matched_j:
            _extrapolate(jobs, j, i, jconn, b, region)
    icount: dict[int, int] = {}
    jcount: dict[int, int] = {}
    for a, b in pairs:
        icount[a] = icount.get(a, 0) + 1
        jcount[b] = jcount.get(b, 0) + 1
    rest = []
    for a, b in pairs:  # 1-to-1
        if icount[a] == 1 and jcount[b] == 1:
            ishape, jshape = _island(iconn, a, region), _island(jconn, b, region)
            t = _align(iconn, a, region, jconn, [b], region)
            _one_to_one(jobs, i, j, ishape, jshape, t)
        else:
            rest.append((a, b))
    pairs = rest
    k = 0
    while k < len(pairs):  # 1-to-N and M-to-1, in ITK's order (a sorted set of pairs)
        a, b = pairs[k]
        if icount[a] == 1:  # M-to-1: several islands of i merge into b
            ids = [x for x, y in pairs if y == b]
            t = _align(jconn, b, region, iconn, ids, region)
            _one_to_n(jobs, j, i, jconn, b, iconn, ids, t, region)
            gone = [p for p in pairs if p[1] == b]
        elif jcount[b] == 1:  # 1-to-N: island a splits into several
            ids = [y for x, y in pairs if x == a]
            t = _align(iconn, a, region, jconn, ids, region)
            _one_to_n(jobs, i, j, iconn, a, jconn, ids, t, region)
            # ITK starts erasing the others from the set's second element
            gone = [p for n, p in enumerate(pairs) if p[0] == a and (n > 0 or n == k)]
        else:
            k += 1
            continue
        for x, y in gone:
            icount[x] -= 1
            jcount[y] -= 1
        pairs = [p for p in pairs if p not in gone]
        k = bisect.bisect_right(pairs, (a, b))
    while pairs:  # M-to-N: each island of i with the islands of j it overlaps
        a = pairs[0][0]
        ids = [y for x, y in pairs if x == a]
        t = _align(iconn, a, region, jconn, ids, region)
        _one_to_n(jobs, i, j, iconn, a, jconn, ids, t, region)
        pairs = [p for p in pairs if p[0] != a]


def _island(conn: np.ndarray, ids: int | list[int], region: Region) -> Shape:
    """The pixels of one or several islands, cropped to their bounding box."""
    m = np.isin(conn, ids) if isinstance(ids, list) else conn == ids
    return _crop(m, region.r, region.c)


def _crop(m: np.ndarray, r: int, c: int) -> Shape:
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return Shape(np.zeros((0, 0), bool), r, c)
    cols = np.flatnonzero(m.any(axis=0))
    return Shape(m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], r + int(rows[0]),
                 c + int(cols[0]))


def _centroid(conn: np.ndarray, ids: list[int], region: Region) -> tuple[int, int]:
    """Integer centroid in plane indices (ITK truncates the mean)."""
    rr, cc = np.nonzero(np.isin(conn, ids))
    n = rr.size
    return (int((rr.sum() + n * region.r) // n), int((cc.sum() + n * region.c) // n))


# -- alignment (ITK: Align, a heuristic breadth-first search over translations) -----------------
def _align(iconn: np.ndarray, a: int, iregion: Region, jconn: np.ndarray, ids: list[int],
           jregion: Region) -> tuple[int, int]:
    """Translation t (rows, columns) such that island ``a`` at p best overlaps ``ids`` at p+t."""
    ia = iconn == a
    js = [jconn == b for b in ids]
    if iregion == jregion:  # no translation already gives the most overlap possible:
        counts = [int(np.count_nonzero(ia & m)) for m in js]  # the search keeps it
        if all(counts) and sum(counts) == min(int(ia.sum()), sum(int(m.sum()) for m in js)):
            return (0, 0)
    ishape = _crop(ia, iregion.r, iregion.c)
    scores = []
    for m in js:
        jshape = _crop(m, jregion.r, jregion.c)
        corr = np.rint(_correlate(jshape.mask, ishape.mask)).astype(np.int64)
        # corr[n] = sum_q i[q] * j[q + n - (i height - 1)] between the crops: index of t
        base = (ishape.r - jshape.r + ishape.mask.shape[0] - 1,
                ishape.c - jshape.c + ishape.mask.shape[1] - 1)
        scores.append((corr, base))

    def score(t: tuple[int, int]) -> int:
        total = 0
        for corr, base in scores:
            k0, k1 = t[0] + base[0], t[1] + base[1]
            if not (0 <= k0 < corr.shape[0] and 0 <= k1 < corr.shape[1]):
                return 0
            v = int(corr[k0, k1])
            if v == 0:
                return 0  # every island of j must be touched
            total += v
        return total

    ci = _centroid(iconn, [a], iregion)
    cj = _centroid(jconn, ids, jregion)
    return _search(score, (cj[0] - ci[0], cj[1] - ci[1]), iregion, jregion)


def _correlate(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """Full cross-correlation of two small binary images (FFT; exact after rounding)."""
    shape = (big.shape[0] + small.shape[0] - 1, big.shape[1] + small.shape[1] - 1)
    fa = np.fft.rfft2(big.astype(np.float64), shape)
    fb = np.fft.rfft2(small[::-1, ::-1].astype(np.float64), shape)
    return np.fft.irfft2(fa * fb, shape)


def _search(score, start: tuple[int, int], iregion: Region, jregion: Region) -> tuple[int, int]:
    """ITK's breadth-first search: from no translation and from the centroid offset, expand
    while the overlap is within 90 % of the best and the iteration budget lasts; keep the
    first strictly best translation. Neighbours are visited column first, as ITK's x axis."""
    lo = (jregion.r - iregion.r - iregion.h + 1, jregion.c - iregion.c - iregion.w + 1)
    size = (iregion.h + jregion.h - 1, iregion.w + jregion.w - 1)
    npix = size[0] * size[1]
    min_iter = min(_MIN_ALIGN_ITERS, npix)
    max_iter = max(_MAX_ALIGN_ITERS, int(np.sqrt(npix)))

    def inside(t: tuple[int, int]) -> bool:
        return lo[0] <= t[0] < lo[0] + size[0] and lo[1] <= t[1] < lo[1] + size[1]

    queue = deque([(0, 0), start])
    searched = {(0, 0), start}
    best, best_score, it = (0, 0), 0, 0
    while queue:
        t = queue.popleft()
        s = score(t)
        if s > best_score:
            best_score, best = s, t
        if best_score == 0 or it <= min_iter or (s > best_score * 0.9 and it <= max_iter):
            for n in ((t[0], t[1] - 1), (t[0], t[1] + 1), (t[0] - 1, t[1]), (t[0] + 1, t[1])):
                if inside(n) and n not in searched:
                    queue.append(n)
                    searched.add(n)
                    it += 1
    return best


# -- one island to nothing, to one, to several --------------------------------------------------
def _extrapolate(jobs: list[_Median], i: int, j: int, conn: np.ndarray, a: int,
                 region: Region) -> None:
    """An island of slice i that overlaps nothing on slice j shrinks to a point there: the
    point is its centroid, or the first island pixel the search meets from there."""
    cen = _centroid(conn, [a], region)
    m = conn == a

    def score(t: tuple[int, int]) -> int:
        r, c = cen[0] - t[0] - region.r, cen[1] - t[1] - region.c
        return int(0 <= r < m.shape[0] and 0 <= c < m.shape[1] and m[r, c])

    ph = Region(cen[0] - 1, cen[1] - 1, 3, 3)
    t = _search(score, (0, 0), region, ph)
    point = Shape(np.ones((1, 1), bool), cen[0] - t[0], cen[1] - t[1])
    _one_to_one(jobs, i, j, _crop(m, region.r, region.c), point, (0, 0))


def _one_to_n(jobs: list[_Median], i: int, j: int, iconn: np.ndarray, a: int, jconn: np.ndarray,
              ids: list[int], t: tuple[int, int], region: Region) -> None:
    """Split island ``a`` among the islands ``ids`` it overlaps (each grows from its overlap by
    conditional 4-neighbour dilations, the lowest-numbered island winning ties), then
    interpolate every part with its island."""
    mask = iconn == a
    h, w = mask.shape
    # j's labels seen from i's pixels: i pixel p meets j pixel p + t
    jseen = np.zeros_like(jconn)
    r0, r1 = max(0, -t[0]), min(h, h - t[0])
    c0, c1 = max(0, -t[1]), min(w, w - t[1])
    if r1 > r0 and c1 > c0:
        jseen[r0:r1, c0:c1] = jconn[r0 + t[0]:r1 + t[0], c0 + t[1]:c1 + t[1]]
    belongs = np.zeros(mask.shape, np.int32)
    blobs = np.zeros((len(ids), h, w), bool)
    for x, b in enumerate(ids):
        blobs[x] = mask & (jseen == b)
        belongs[blobs[x]] = x + 1
    while True:
        grown = blobs.copy()
        grown[:, 1:] |= blobs[:, :-1]
        grown[:, :-1] |= blobs[:, 1:]
        grown[:, :, 1:] |= blobs[:, :, :-1]
        grown[:, :, :-1] |= blobs[:, :, 1:]
        grown &= mask
        free = mask & (belongs == 0)
        covered = grown.any(axis=0)
        new = free & covered
        if new.any():
            belongs[new] = np.argmax(grown[:, new], axis=0) + 1
        for x in range(len(ids)):
            blobs[x] = grown[x] & (belongs == x + 1)
        if not (free & ~covered).any() or not new.any():
            break
    for x, b in enumerate(ids):
        part = _crop(belongs == x + 1, region.r, region.c)
        if part.mask.size:
            _one_to_one(jobs, i, j, part, _island(jconn, b, region), t)


# -- the median shape and the recursion (ITK: Interpolate1to1, FindMedianImageDistances) ---------
def _halves(t: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], bool]:
    """Split translation t between the two slices as ITK does (x axis first, an odd
    remainder carried to the next axis, a last one moving the middle slice)."""
    half = {}
    carry = False
    for d in (1, 0):  # ITK's slice axes: x (columns), then y (rows)
        v = t[d]
        q = int(v / 2)  # C++ division truncates toward zero
        odd = v % 2 != 0
        if not carry:
            half[d] = q
            carry = odd
        elif not odd:
            half[d] = q
        else:
            half[d] = q + 1 if v > 0 else q - 1
            carry = False
    it = (half[0], half[1])
    return it, (it[0] - t[0], it[1] - t[1]), carry


@dataclass
class _Median:
    """A median still to compute: islands a (slice i) and b (slice j), each moved half way
    (a2, b2), for the slice ``mid``; ti / tj bring a / b onto the middle for the next level."""

    i: int
    j: int
    mid: int
    a: Shape
    b: Shape
    ti: tuple[int, int]
    tj: tuple[int, int]
    a2: Shape
    b2: Shape


def _one_to_one(jobs: list[_Median], i: int, j: int, a: Shape, b: Shape,
                t: tuple[int, int]) -> None:
    """Median of island a (slice i) and b (slice j, b ~ a moved by t) on the middle slice,
    then the same between each end and the middle until no slice is left (queued: fill_gaps
    computes each level's medians together)."""
    ti, tj, carry = _halves(t)
    jobs.append(_Median(i, j, (i + j + (1 if carry else 0)) // 2, a, b, ti, tj, a.moved(ti),
                        b.moved(tj)))


def median(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ITK's distance-based median of two aligned masks: their intersection grown by the
    distance (in tenths of a pixel) that best balances the differences to ``a`` and ``b``."""
    m = medians([(Shape(a, 0, 0), Shape(b, 0, 0))])[0]
    out = np.zeros(a.shape, bool)
    _write(out, m.mask, m.r, m.c)
    return out


def medians(pairs: list[tuple[Shape, Shape]]) -> list[Shape]:
    """:func:`median` of many pairs of placed shapes at once (on the union box of each pair,
    stacked in one zero-padded array): a few numpy calls for all of them instead of a few
    dozen for each."""
    boxes = []
    for a, b in pairs:
        r, c = min(a.r, b.r), min(a.c, b.c)
        boxes.append((r, c, max(a.r + a.mask.shape[0], b.r + b.mask.shape[0]) - r,
                      max(a.c + a.mask.shape[1], b.c + b.mask.shape[1]) - c))
    hmax = max(h for _, _, h, _ in boxes)
    wmax = max(w for _, _, _, w in boxes)
    am = np.zeros((len(pairs), hmax, wmax), bool)
    bm = np.zeros_like(am)
    for k, ((a, b), (r, c, _, _)) in enumerate(zip(pairs, boxes, strict=True)):
        am[k, a.r - r:a.r - r + a.mask.shape[0], a.c - c:a.c - c + a.mask.shape[1]] = a.mask
        bm[k, b.r - r:b.r - r + b.mask.shape[0], b.c - c:b.c - c + b.mask.shape[1]] = b.mask
    inter = am & bm
    diff = am ^ bm
    grow = diff.any(axis=(1, 2)) & inter.any(axis=(1, 2))  # else the median is inter
    diff &= grow[:, None, None]
    ks, ys, xs = np.nonzero(diff)
    if ks.size:
        d = _distances(inter, ks, ys, xs)
        bins = (np.float32(10) * d).astype(np.int64)  # ITK truncates 10 * distance
        n = int(bins.max()) + 1
        in_a = am[ks, ys, xs]
        count = len(pairs) * n
        sa = np.cumsum(np.bincount(ks[in_a] * n + bins[in_a], minlength=count)
                       .reshape(-1, n), axis=1)
        sb = np.cumsum(np.bincount(ks[~in_a] * n + bins[~in_a], minlength=count)
                       .reshape(-1, n), axis=1)
        ia = np.abs(sa[:, -1:] - sa + sb)  # |median xor a| when grown to each bin
        jb = np.abs(sb[:, -1:] - sb + sa)
        # past a pair's own last bin both sums are flat: argmin keeps its first minimum
        best = np.argmin(np.abs(ia - jb), axis=1).astype(np.float32) / np.float32(10)
        inter[ks, ys, xs] = d <= best[ks]
    return [Shape(inter[k, :h, :w], r, c) for k, (r, c, h, w) in enumerate(boxes)]


def _distances(m: np.ndarray, ks: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Euclidean distance (float32, pixels) from the points (ks, ys, xs) to the nearest pixel
    of the slice ``ks`` of the stack ``m`` (every slice with a point holds a pixel): the
    nearest pixel of each column, then columns farther and farther on both sides (a few at a
    time) while they can still hold a nearer pixel (exact)."""
    _, h, w = m.shape
    rows = np.arange(h, dtype=np.int32)[None, :, None]
    far = 2 * (h + w) + 2  # an empty column: farther than any pixel of the slice
    above = np.maximum.accumulate(np.where(m, rows, -far), axis=1)
    below = np.minimum.accumulate(np.where(m, rows, far)[:, ::-1], axis=1)[:, ::-1]
    gaps = np.minimum(rows - above, below - rows).astype(np.int64).ravel()
    gaps *= gaps  # squared rows to the nearest pixel of the column
    row = (ks.astype(np.int64) * h + ys) * w  # where each point's row starts in the stack
    x = xs.astype(np.int64)
    best = gaps[row + x]
    out = np.empty(ks.size, np.int64)
    at = np.arange(ks.size)
    dx = np.arange(1, _STEP + 1)
    while at.size and dx[0] < w:
        keep = best > dx[0] * dx[0]  # a column dx away can still hold a nearer pixel
        if not keep.all():
            out[at[~keep]] = best[~keep]
            at, row, x, best = at[keep], row[keep], x[keep], best[keep]
        xl = np.maximum(x[:, None] - dx, 0)  # past the edge: an edge column seen from
        xr = np.minimum(x[:, None] + dx, w - 1)  # farther than it is, never nearer
        near = np.minimum(gaps[row[:, None] + xl], gaps[row[:, None] + xr]) + dx * dx
        best = np.minimum(best, near.min(axis=1))
        dx = dx + _STEP
    out[at] = best
    return np.sqrt(out.astype(np.float32))


def _write(plane: np.ndarray, m: np.ndarray, r: int, c: int) -> None:
    """OR a crop into a slice at (r, c), clipped to the slice."""
    h, w = plane.shape
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = min(r + m.shape[0], h), min(c + m.shape[1], w)
    if r1 > r0 and c1 > c0:
        plane[r0:r1, c0:c1] |= m[r0 - r:r1 - r, c0 - c:c1 - c]
