"""Measurements on huge slide label images, one horizontal strip at a time.

Per segment value: area (mm^2) and object count; per object (a connected component of one
value): area in pixels and mm^2, centroid (row, col) and in slide coordinates (mm), bounding box.

The image is read through any object with ``shape`` (rows, cols), ``dtype`` and
``read(r0, r1, c0, c1)`` (:class:`TileSource`): a strip of ``strip_rows`` rows x the full width at
a time, never the whole image. Connected components are streamed:

- each strip's foreground (any non-zero value) is labelled once with ``scipy.ndimage.label``
  (``connectivity`` 8: a pixel touches its 8 neighbours, skimage's default for 2-D and what
  cell segmentations mean by an object; 4: edge neighbours only, scipy's default); the rare
  components holding several values (objects of different classes touching) are labelled
  again per value on their bounding box, so every object has one value;
- per strip component: pixel count, sums of rows and of columns (``bincount``, exact integers
  in float64 below 2**53), bounding box and value range (``ufunc.at`` over the foreground
  pixels only) and its first pixel in raster order;
- components of the last row of the previous strip and the first row of this one that touch
  (same value, below or diagonally below for 8-connectivity) are pairs of a union-find, solved
  at the end as the connected components of that graph (``scipy.sparse.csgraph``), and the
  accumulators are merged through it.

Objects are numbered 1..n per segment value in the raster order of their first pixel, which is
how ``scipy.ndimage.label`` numbers the components of the segment's mask on the whole image.

Slide coordinates (PS3.3 C.8.12.2.1.1 Total Pixel Matrix Origin Sequence, C.8.12.9 Image
Orientation (Slide)): the origin (X, Y offsets in mm) is the centre of the first pixel of the
total pixel matrix; ImageOrientationSlide's first triplet is the direction of increasing column
index, its second of increasing row index; PixelSpacing is (between rows, between columns). So
pixel (r, c) is at ``origin + c * spacing[1] * orientation[:3] + r * spacing[0] * orientation[3:]``
(the same mapping as highdicom's ``PixelToReferenceTransformer``). Z is not reported: the total
pixel matrix origin has no Z offset.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .tiles import ArrayTiles

#: connectivities :func:`measure_slide_labels` knows
CONNECTIVITIES = (4, 8)
#: pixels per strip when the strip height is not given (~32 MB of uint8, 128 MB of labels)
STRIP_PIXELS = 1 << 25
#: foreground pixels accumulated at a time inside a strip (bounds the index arrays)
CHUNK_PIXELS = 1 << 22


@dataclass(frozen=True)
class SlideGeometry:
    """Where the total pixel matrix lies on the slide (PS3.3 C.8.12.2.1.1, C.8.12.9).

    ``spacing``: PixelSpacing (between rows, between columns) in mm; ``origin``: X and Y offsets
    in the slide coordinate system (mm) of the centre of pixel (0, 0); ``orientation``:
    ImageOrientationSlide (row direction = increasing column, then column direction).
    """

    spacing: tuple[float, float] = (1.0, 1.0)
    origin: tuple[float, float] = (0.0, 0.0)
    orientation: tuple[float, ...] = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if len(self.spacing) != 2 or min(self.spacing) <= 0:
            raise InvalidInputError(f"pixel spacing must be two positive numbers, got "
                                    f"{self.spacing}")
        if len(self.origin) != 2 or len(self.orientation) != 6:
            raise InvalidInputError("origin needs 2 values (X, Y mm) and orientation 6")
        o = np.asarray(self.orientation, float)
        if not np.allclose([np.linalg.norm(o[:3]), np.linalg.norm(o[3:])], 1, atol=1e-4) or \
                abs(float(o[:3] @ o[3:])) > 1e-4:
            raise InvalidInputError(f"ImageOrientationSlide {self.orientation} is not two "
                                    "orthogonal unit vectors")

    @property
    def pixel_area_mm2(self) -> float:
        return float(self.spacing[0]) * float(self.spacing[1])

    def to_slide(self, rows, cols) -> np.ndarray:
        """Slide coordinates (x, y, z) in mm of pixel positions (fractional allowed): (n, 3)."""
        o = np.asarray(self.orientation, float)
        r = np.asarray(rows, float)[:, None]
        c = np.asarray(cols, float)[:, None]
        origin = np.array([self.origin[0], self.origin[1], 0.0])
        return origin + c * (self.spacing[1] * o[:3]) + r * (self.spacing[0] * o[3:])


@dataclass
class SlideObjects:
    """One entry per object, as columns (all of length n). Bounding boxes are half-open:
    rows ``[row_min, row_max)``, columns ``[col_min, col_max)``."""

    segment: np.ndarray
    object: np.ndarray
    area_px: np.ndarray
    area_mm2: np.ndarray
    centroid_row: np.ndarray
    centroid_col: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray
    row_min: np.ndarray
    row_max: np.ndarray
    col_min: np.ndarray
    col_max: np.ndarray

    COLUMNS = ("segment", "object", "area_px", "area_mm2", "centroid_row", "centroid_col",
               "x_mm", "y_mm", "row_min", "row_max", "col_min", "col_max")

    def __len__(self) -> int:
        return len(self.segment)

    def rows(self) -> list[dict]:
        cols = [getattr(self, k).tolist() for k in self.COLUMNS]
        return [dict(zip(self.COLUMNS, vals, strict=True)) for vals in zip(*cols, strict=True)]


@dataclass
class _Parts:
    """Accumulators of the strip components found so far (lists of per-strip arrays)."""

    value: list
    count: list
    sum_r: list
    sum_c: list
    r0: list
    r1: list
    c0: list
    c1: list
    first: list


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in CONNECTIVITIES:
        raise InvalidInputError(f"connectivity must be 4 or 8, got {connectivity}")
    return np.ones((3, 3), bool) if connectivity == 8 else \
        np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def _pixels(lab: np.ndarray, rr: np.ndarray, cc: np.ndarray, vals: np.ndarray, n: int,
            acc: dict) -> None:
    """Add foreground pixels (labels ``lab`` in raster order, rows, columns, values) to the
    per-label accumulators ``acc`` (arrays of n + 1)."""
    acc["count"] += np.bincount(lab, minlength=n + 1)
    acc["sum_r"] += np.bincount(lab, weights=rr, minlength=n + 1)
    acc["sum_c"] += np.bincount(lab, weights=cc, minlength=n + 1)
    np.maximum.at(acc["r1"], lab, rr)
    np.minimum.at(acc["c0"], lab, cc)
    np.maximum.at(acc["c1"], lab, cc)
    np.minimum.at(acc["vmin"], lab, vals)
    np.maximum.at(acc["vmax"], lab, vals)
    # labels appear in raster order of their first pixel (ndimage.label's numbering)
    seen = acc["seen"]
    run = np.maximum(np.maximum.accumulate(lab), seen)
    new = np.flatnonzero(np.r_[run[0] > seen, run[1:] > run[:-1]])
    acc["r0"][lab[new]] = rr[new]
    acc["first_c"][lab[new]] = cc[new]
    acc["seen"] = int(run[-1])


def _accumulators(n: int) -> dict:
    big = np.iinfo(np.int64).max
    return {"count": np.zeros(n + 1, np.int64), "sum_r": np.zeros(n + 1, np.float64),
            "sum_c": np.zeros(n + 1, np.float64), "r0": np.full(n + 1, -1, np.int64),
            "first_c": np.full(n + 1, -1, np.int64), "r1": np.full(n + 1, -1, np.int64),
            "c0": np.full(n + 1, big, np.int64), "c1": np.full(n + 1, -1, np.int64),
            "vmin": np.full(n + 1, big, np.int64), "vmax": np.full(n + 1, -1, np.int64),
            "seen": 0}


def _label_strip(strip: np.ndarray, structure, row0: int, ids: dict, next_id: int,
                 parts: _Parts) -> int:
    """Components of one strip, per value: their accumulators go to ``parts``, their global ids
    into the boundary rows of ``ids``. Returns the next free id.

    The foreground (any non-zero value) is labelled once; the rare components holding several
    values (objects of different classes touching) are labelled again per value on their
    bounding box alone.
    """
    from scipy import ndimage

    fg = strip != 0
    lab, n = ndimage.label(fg, structure=structure, output=np.int32)
    if n == 0:
        return next_id
    h, w = lab.shape
    acc = _accumulators(n)
    step = max(1, CHUNK_PIXELS // max(w, 1))
    for a in range(0, h, step):
        idx = np.flatnonzero(fg[a:a + step])
        if idx.size:
            _pixels(lab[a:a + step].ravel()[idx], idx // w + a, idx % w,
                    strip[a:a + step].ravel()[idx].astype(np.int64), n, acc)
    del fg
    keep = acc["vmin"] == acc["vmax"]
    keep[0] = False
    good = np.flatnonzero(keep)
    gmap = np.zeros(n + 1, np.int64)
    gmap[good] = np.arange(next_id, next_id + len(good))
    next_id += len(good)
    for r, row in ids.items():
        row[:] = gmap[lab[r]]
    _store(parts, {k: v[good] for k, v in acc.items() if k != "seen"}, acc["vmin"][good],
           row0, w)
    for k in np.flatnonzero(~keep[1:]) + 1:  # mixed components: split per value
        a, b = int(acc["r0"][k]), int(acc["r1"][k]) + 1
        c, d = int(acc["c0"][k]), int(acc["c1"][k]) + 1
        inside = lab[a:b, c:d] == k
        crop = strip[a:b, c:d]
        for v in np.unique(crop[inside]):
            sub, m = ndimage.label(inside & (crop == v), structure=structure, output=np.int32)
            sacc = _accumulators(m)
            rr, cc = np.nonzero(sub)  # raster order within the box = strip raster order
            _pixels(sub[rr, cc], rr + a, cc + c, np.full(len(rr), v, np.int64), m, sacc)
            _store(parts, {k2: v2[1:] for k2, v2 in sacc.items() if k2 != "seen"},
                   np.full(m, v, np.int64), row0, w)
            sgid = np.r_[0, np.arange(next_id, next_id + m)]
            for r, row in ids.items():
                if a <= r < b:
                    hit = sub[r - a] > 0
                    row[c:d][hit] = sgid[sub[r - a][hit]]
            next_id += m
    return next_id


def _store(parts: _Parts, acc: dict, value: np.ndarray, row0: int, w: int) -> None:
    """Strip components' accumulators (strip rows) -> ``parts`` (image rows)."""
    count = acc["count"]
    parts.value.append(value.astype(np.int64))
    parts.count.append(count)
    parts.sum_r.append(acc["sum_r"] + row0 * count)
    parts.sum_c.append(acc["sum_c"])
    parts.r0.append(acc["r0"] + row0)
    parts.r1.append(acc["r1"] + 1 + row0)
    parts.c0.append(acc["c0"])
    parts.c1.append(acc["c1"] + 1)
    parts.first.append((acc["r0"] + row0) * w + acc["first_c"])


def _touching(prev_ids: np.ndarray, prev_val: np.ndarray, cur_ids: np.ndarray,
              cur_val: np.ndarray, connectivity: int) -> np.ndarray:
    """Pairs (global id above, global id below) of same-value pixels touching across a strip
    boundary: straight below, and diagonally below for 8-connectivity."""
    pairs = []
    w = len(cur_ids)
    shifts = (0,) if connectivity == 4 else (-1, 0, 1)
    for d in shifts:  # above pixel at column c + d, below at column c
        c = np.arange(max(0, -d), min(w, w - d))
        a, b = prev_ids[c + d], cur_ids[c]
        ok = (a > 0) & (b > 0) & (prev_val[c + d] == cur_val[c])
        pairs.append(np.stack([a[ok], b[ok]], axis=1))
    p = np.concatenate(pairs)
    return np.unique(p, axis=0) if len(p) else p


def measure_slide_labels(source, geometry: SlideGeometry | None = None, *,
                         connectivity: int = 8, strip_rows: int | None = None,
                         name: str = "label image") -> tuple[list[dict], SlideObjects]:
    """Per-segment summary and per-object measurements of a slide label image.

    ``source``: a :class:`TileSource` (or a 2-D NumPy array); ``geometry``: pixel spacing,
    origin and orientation (default 1 mm pixels at the origin, the usual slide orientation);
    ``strip_rows``: rows read at a time (default: ~32 M pixels a strip); ``name`` names the
    input in error messages. Returns (summary rows per segment value, objects).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if isinstance(source, np.ndarray):
        source = ArrayTiles(source)
    geometry = geometry or SlideGeometry()
    structure = _structure(connectivity)
    dtype = np.dtype(source.dtype)
    if dtype.kind not in "uib":
        raise InvalidInputError(f"{name}: a label image needs integer pixels, got {dtype}")
    nrows, ncols = (int(x) for x in source.shape)
    if strip_rows is None:
        strip_rows = max(1, STRIP_PIXELS // max(ncols, 1))
    if strip_rows < 1:
        raise InvalidInputError(f"strip height must be at least 1 row, got {strip_rows}")
    parts = _Parts(*([] for _ in range(9)))
    pairs = []
    next_id = 1  # 0: no component
    prev_ids = prev_val = None
    for r0 in range(0, nrows, strip_rows):
        r1 = min(nrows, r0 + strip_rows)
        strip = np.asarray(source.read(r0, r1, 0, ncols))
        if strip.shape != (r1 - r0, ncols):
            raise InvalidInputError(f"{name}: rows {r0}-{r1} read as shape {strip.shape}")
        if dtype.kind == "i" and strip.min(initial=0) < 0:
            raise InvalidInputError(f"{name}: negative label values in rows {r0}-{r1}")
        ids = {0: np.zeros(ncols, np.int64), r1 - r0 - 1: np.zeros(ncols, np.int64)}
        next_id = _label_strip(strip, structure, r0, ids, next_id, parts)
        if prev_ids is not None:
            pairs.append(_touching(prev_ids, prev_val, ids[0], strip[0], connectivity))
        prev_ids, prev_val = ids[r1 - r0 - 1], strip[-1].copy()
        del strip
    n = next_id - 1
    if n == 0:
        return [], _empty_objects()
    cat = {k: np.concatenate(getattr(parts, k)) for k in
           ("value", "count", "sum_r", "sum_c", "r0", "r1", "c0", "c1", "first")}
    edges = np.concatenate(pairs) - 1 if pairs else np.zeros((0, 2), np.int64)
    if len(edges):
        graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])),
                           shape=(n, n))
        m, root = connected_components(graph, directed=False)
    else:
        m, root = n, np.arange(n)
    count = np.bincount(root, weights=cat["count"], minlength=m).astype(np.int64)
    sum_r = np.bincount(root, weights=cat["sum_r"], minlength=m)
    sum_c = np.bincount(root, weights=cat["sum_c"], minlength=m)
    value = np.zeros(m, np.int64)
    value[root] = cat["value"]
    big = np.iinfo(np.int64).max
    boxes = {}
    for k, fill, op in (("r0", big, np.minimum), ("c0", big, np.minimum), ("r1", -1, np.maximum),
                        ("c1", -1, np.maximum), ("first", big, np.minimum)):
        acc = np.full(m, fill, np.int64)
        op.at(acc, root, cat[k])
        boxes[k] = acc
    order = np.lexsort((boxes["first"], value))
    value, count, sum_r, sum_c = value[order], count[order], sum_r[order], sum_c[order]
    bounds = np.flatnonzero(np.r_[True, value[1:] != value[:-1]])
    number = np.arange(m) - np.repeat(bounds, np.diff(np.r_[bounds, m])) + 1
    cr, cc = sum_r / count, sum_c / count
    xyz = geometry.to_slide(cr, cc)
    area = geometry.pixel_area_mm2
    objects = SlideObjects(
        segment=value, object=number.astype(np.int64), area_px=count, area_mm2=count * area,
        centroid_row=cr, centroid_col=cc, x_mm=xyz[:, 0], y_mm=xyz[:, 1],
        row_min=boxes["r0"][order], row_max=boxes["r1"][order],
        col_min=boxes["c0"][order], col_max=boxes["c1"][order])
    summary = []
    for a, b in zip(bounds, np.r_[bounds[1:], m], strict=True):
        px = int(count[a:b].sum())
        summary.append({"segment": int(value[a]), "objects": int(b - a), "area_px": px,
                        "area_mm2": px * area})
    return summary, objects


def _empty_objects() -> SlideObjects:
    i, f = np.zeros(0, np.int64), np.zeros(0, np.float64)
    return SlideObjects(i, i, i, f, f, f, f, f, i, i, i, i)


def objects_csv(objects: SlideObjects, labels: dict[int, str] | None = None) -> str:
    """One row per object (the columns of :class:`SlideObjects`, plus ``label`` when given)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(SlideObjects.COLUMNS)
    data = [getattr(objects, k).tolist() for k in cols]
    if labels is not None:
        cols.insert(1, "label")
        data.insert(1, [labels.get(int(v), "") for v in objects.segment])
    w.writerow(cols)
    w.writerows(zip(*data, strict=True))
    return buf.getvalue()


def measurements_json(summary: list[dict], objects: SlideObjects, geometry: SlideGeometry,
                      *, connectivity: int, labels: dict[int, str] | None = None) -> str:
    """Per-segment summary and objects as one JSON document."""
    seg = [{**s, **({"label": labels.get(s["segment"], "")} if labels else {})}
           for s in summary]
    doc = {"pixel_spacing_mm": list(geometry.spacing), "origin_mm": list(geometry.origin),
           "image_orientation_slide": list(geometry.orientation),
           "connectivity": connectivity, "segments": seg, "objects": objects.rows()}
    return json.dumps(doc, indent=1)


def write_text(path, text: str) -> None:
    """Write ``text`` under a temporary name and rename it into place (outputs.py's rule)."""
    from ..outputs import written

    with written(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_measurements(summary: list[dict], objects: SlideObjects, geometry: SlideGeometry, *,
                       connectivity: int, csv_path=None, json_path=None,
                       labels: dict[int, str] | None = None, inputs=()) -> None:
    """Write the objects CSV and / or the JSON document, each under a temporary name renamed
    into place; an output that is one of ``inputs`` is refused before anything is written."""
    from ..outputs import check_target, refuse_overwrite

    targets = [p for p in (csv_path, json_path) if p is not None]
    refuse_overwrite(targets, inputs)
    for t in targets:  # both checked before either is written: no half of the outputs
        check_target(Path(t))
    if csv_path is not None:
        write_text(csv_path, objects_csv(objects, labels))
    if json_path is not None:
        write_text(json_path, measurements_json(summary, objects, geometry,
                                                connectivity=connectivity, labels=labels))


def parse_geometry(spacing: Sequence[float], origin: Sequence[float] = (0.0, 0.0),
                   orientation: Sequence[float] = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0)
                   ) -> SlideGeometry:
    """A :class:`SlideGeometry` from plain sequences (as read from a DICOM header)."""
    return SlideGeometry(tuple(float(x) for x in spacing), tuple(float(x) for x in origin),
                         tuple(float(x) for x in orientation))


class _Valued:
    """A 0/1 (or fractional) mask source read as label ``value`` where it is above 0."""

    def __init__(self, src, value: int) -> None:
        self.src, self.value = src, value
        self.shape = src.shape
        self.dtype = np.dtype(np.uint8 if value < 256 else np.uint16)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return (np.asarray(self.src.read(r0, r1, c0, c1)) > 0).astype(self.dtype) * self.value


def measure_slide(sseg, *, connectivity: int = 8, name: str = "segmentation", report=None
                  ) -> tuple[list[dict], SlideObjects, SlideGeometry]:
    """Measure a :class:`~segbridge.slide.model.SlideSegmentation`: its label source in one
    pass, or each segment's mask (overlapping BINARY, FRACTIONAL above 0) on its own. Every
    segment gets a summary row (0 objects when empty), with its label."""
    g = sseg.grid
    geometry = SlideGeometry(tuple(g.pixel_spacing), tuple(g.origin), tuple(g.orientation))
    if sseg.labels is not None:
        summary, objects = measure_slide_labels(sseg.labels, geometry,
                                                connectivity=connectivity, name=name)
    else:
        parts = [measure_slide_labels(_Valued(src, n), geometry, connectivity=connectivity,
                                      name=name) for n, src in sorted(sseg.masks.items())]
        summary = [row for s, _ in parts for row in s]
        objects = SlideObjects(*(np.concatenate([getattr(o, k) for _, o in parts] or
                                                [getattr(_empty_objects(), k)])
                                 for k in SlideObjects.COLUMNS))
    keep = np.isin(objects.segment, sseg.numbers)
    if not keep.all():  # label values no segment describes (a LABELMAP may hold them)
        stray = sorted({int(v) for v in objects.segment[~keep]})
        if report is not None:
            report.warn(f"{name}: pixel values {', '.join(map(str, stray[:8]))} are described "
                        "by no segment (left out of the measurements)")
        objects = SlideObjects(*(getattr(objects, k)[keep] for k in SlideObjects.COLUMNS))
    have = {row["segment"]: row for row in summary}
    summary = [have.get(s.number, {"segment": s.number, "objects": 0, "area_px": 0,
                                   "area_mm2": 0.0}) | {"label": s.label}
               for s in sseg.segments]
    return summary, objects, geometry


def measure_slide_file(path, *, reference=None, connectivity: int = 8, csv_path=None,
                       json_path=None, report=None, segments: str | None = None
                       ) -> tuple[list[dict], SlideObjects]:
    """``segbridge measure`` for slides: a slide SEG, or a label image / GeoJSON with the
    slide it was drawn on (``reference``: a file, folder or DICOMweb series); writes the
    objects CSV and / or the JSON document when asked. ``segments`` ("1,3", "2-5") keeps
    those segments only."""
    from ..errors import Report
    from ..measure.stats import parse_segment_list
    from ..web.client import is_url
    from .convert import read_slide, slide_reference

    report = report if report is not None else Report()
    p = Path(path)
    if csv_path is not None and json_path is not None and \
            Path(csv_path).resolve() == Path(json_path).resolve():
        raise InvalidInputError(f"{csv_path}: named for both the CSV and the JSON output")
    from .detect import is_slide_path

    if reference is None and is_slide_path(p):
        raise InvalidInputError(f"{p}: measuring a label image or polygons needs --image with "
                                "the VL Whole Slide Microscopy image they were drawn on")
    ref = slide_reference(reference, p) if reference is not None else None
    sseg = read_slide(p, ref, None, report)
    numbers = parse_segment_list(segments, sseg, str(p))
    summary, objects, geometry = measure_slide(sseg, connectivity=connectivity, name=str(p),
                                               report=report)
    if segments:
        keep = np.isin(objects.segment, numbers)
        objects = SlideObjects(*(getattr(objects, k)[keep] for k in SlideObjects.COLUMNS))
        summary = [row for row in summary if row["segment"] in set(numbers)]

    labels = {s.number: s.label for s in sseg.segments}
    inputs = [p] + ([Path(reference)] if reference is not None and not is_url(str(reference))
                    else [])
    write_measurements(summary, objects, geometry, connectivity=connectivity, csv_path=csv_path,
                       json_path=json_path, labels=labels, inputs=inputs)
    return summary, objects

