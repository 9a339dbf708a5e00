"""GeoJSON polygons (QuPath's export) -> a slide label image, rasterised tile by tile.

What is read: a FeatureCollection (or a bare list of Features, or one Feature, as older QuPath
versions write) whose features have a Polygon, MultiPolygon (holes allowed) or a
GeometryCollection of those as ``geometry``. ``properties.classification`` gives the class:
``{"name": ..., "color": [r, g, b]}`` (QuPath >= 0.3) or ``{"name": ..., "colorRGB": int}``
(packed (A)RGB, earlier versions); features without one are the class ``Unclassified``.
``properties.name`` and ``objectType`` (annotation, detection, cell) are kept per feature; for
cells the cell ``geometry`` is used, not ``nucleusGeometry``. Point and line geometries cannot be
filled: they are skipped with a warning.

Coordinates: QuPath writes pixels of the full-resolution image with the origin (0, 0) at the
top left CORNER of the top left pixel (x = column, y = row; qupath-docs "Exporting annotations",
"Units and origin"), so the centre of pixel (row r, column c) is (x, y) = (c + 0.5, r + 0.5).
Rasterising uses the RTSTRUCT contour rule (``rt/contours.py``, its scan-line fill on the
tile's region): a pixel is inside when its CENTRE lies inside an odd number of a polygon's rings
(even-odd, so holes are cut out). Centres exactly on an edge: inside on horizontal / vertical
edges and on edges between two pixel centres; on other slanted edges the scan line counts them
half-open (inside on the polygon's right side, outside on its left), as for RTSTRUCT contours.
The polygons of a MultiPolygon are filled each on its own and united.

Segments: one per classification name, numbered 1, 2, ... in order of first appearance, with the
classification's colour. In the label image (:class:`GeoJSONTiles`) overlapping features are
painted in file order: the LATER feature wins. :meth:`GeoJSONLabels.mask` gives one class as a
binary source, so overlapping classes can be kept apart (BINARY segmentation).

Tiles are filled from a bucket index of the features' bounding boxes, so a tile only touches the
polygons that overlap it. Polygons partly outside the image are clipped; a polygon wholly
outside it, a ring of fewer than 3 points, a coordinate that is not a finite number, text that
is not JSON or has no polygon is a :class:`GeoJSONError` naming the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, Report

#: the class of features without a classification
UNCLASSIFIED = "Unclassified"
#: side of the square buckets of the feature index, in pixels
BUCKET = 512


class GeoJSONError(InvalidInputError):
    """A GeoJSON file that cannot be read as polygons on the image."""


@dataclass
class GeoSegment:
    """One class: its value in the label image, name and display colour (or None)."""

    value: int
    name: str
    color: tuple[int, int, int] | None = None
    features: int = 0


@dataclass
class GeoFeature:
    """One feature's polygons (each a list of rings, (m, 2) xy arrays in index coordinates:
    pixel centres at integers) and its pixel bounding box [r0, r1) x [c0, c1) in the image."""

    value: int
    polygons: list[list[np.ndarray]]
    box: tuple[int, int, int, int]
    name: str | None = None
    object_type: str | None = None


@dataclass
class GeoJSONLabels:
    """The features of a GeoJSON file on an image of ``shape`` (rows, columns)."""

    path: str
    shape: tuple[int, int]
    segments: list[GeoSegment]
    features: list[GeoFeature]
    report: Report = field(default_factory=Report)

    def tiles(self) -> GeoJSONTiles:
        """The label image (later features win where they overlap)."""
        return GeoJSONTiles(self)

    def mask(self, segment: int | str) -> GeoJSONTiles:
        """One class as a 0/1 uint8 source (by value or name): overlaps with others kept."""
        for s in self.segments:
            if segment in (s.value, s.name):
                return GeoJSONTiles(self, only=s.value)
        raise GeoJSONError(f"{self.path}: no class {segment!r}")


class GeoJSONTiles:
    """The rasterised features as a tile source: ``shape``, ``dtype``, ``read(r0, r1, c0, c1)``."""

    def __init__(self, labels: GeoJSONLabels, only: int | None = None) -> None:
        self.labels = labels
        self.only = only
        self.shape = labels.shape
        if only is not None:
            self.dtype = np.dtype(np.uint8)
        else:
            self.dtype = np.dtype(np.uint8 if len(labels.segments) < 256 else np.uint16)
        feats = [i for i, f in enumerate(labels.features) if only is None or f.value == only]
        self._index = _BucketIndex([labels.features[i].box for i in feats], np.array(feats))

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        from ..rt.contours import fill_region

        rows, cols = self.shape
        r0, r1, c0, c1 = max(r0, 0), min(r1, rows), max(c0, 0), min(c1, cols)
        out = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), self.dtype)
        if out.size == 0:
            return out
        for i in self._index.overlapping(r0, r1, c0, c1):
            f = self.labels.features[i]
            a, b = max(f.box[0], r0), min(f.box[1], r1)
            c, d = max(f.box[2], c0), min(f.box[3], c1)
            if a >= b or c >= d:
                continue
            inside = fill_region(f.polygons, a, b, c, d)
            out[a - r0:b - r0, c - c0:d - c0][inside] = 1 if self.only is not None else f.value
        return out


class _BucketIndex:
    """Bounding boxes bucketed on a grid of :data:`BUCKET` pixels; queries keep file order."""

    def __init__(self, boxes: list[tuple[int, int, int, int]], ids: np.ndarray) -> None:
        self.ids = ids.astype(np.int64)
        if not boxes:
            self.box = np.zeros((0, 4), np.int64)
            self.key = self.member = np.zeros(0, np.int64)
            return
        self.box = np.array(boxes, np.int64)
        br0, br1 = self.box[:, 0] // BUCKET, (self.box[:, 1] - 1) // BUCKET
        bc0, bc1 = self.box[:, 2] // BUCKET, (self.box[:, 3] - 1) // BUCKET
        nr, nc = br1 - br0 + 1, bc1 - bc0 + 1
        n = nr * nc
        member = np.repeat(np.arange(len(boxes)), n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        rr = br0[member] + k // nc[member]
        cc = bc0[member] + k % nc[member]
        key = (rr << 32) | cc
        order = np.argsort(key, kind="stable")
        self.key, self.member = key[order], member[order]

    def overlapping(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Feature ids whose box meets the region, in file order."""
        if len(self.key) == 0:
            return self.ids[:0]
        found = []
        for br in range(r0 // BUCKET, (r1 - 1) // BUCKET + 1):
            lo = np.searchsorted(self.key, (br << 32) | (c0 // BUCKET))
            hi = np.searchsorted(self.key, (br << 32) | ((c1 - 1) // BUCKET), side="right")
            found.append(self.member[lo:hi])
        m = np.unique(np.concatenate(found))
        b = self.box[m]
        m = m[(b[:, 0] < r1) & (b[:, 1] > r0) & (b[:, 2] < c1) & (b[:, 3] > c0)]
        return self.ids[m]


def read_geojson(path, shape: tuple[int, int], report: Report | None = None) -> GeoJSONLabels:
    """Read a GeoJSON file for an image of ``shape`` (rows, columns) at full resolution."""
    path = str(path)
    report = report or Report()
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise GeoJSONError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise GeoJSONError(f"{path}: not JSON ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise GeoJSONError(f"{path}: nested too deeply to read") from None
    return parse_geojson(doc, shape, path, report)


#: the largest pixel coordinate taken (slides are < 10^6 pixels across; doubles stay exact to
#: far below a pixel here, while past ~10^15 a polygon's edges move by whole pixels)
MAX_COORDINATE = 1e9


def parse_geojson(doc, shape: tuple[int, int], path: str = "GeoJSON",
                  report: Report | None = None) -> GeoJSONLabels:
    """:func:`read_geojson` on an already decoded document (``path`` names it in errors)."""
    report = report or Report()
    rows, cols = (int(x) for x in shape)
    feats = _features(doc, path)
    segments: dict[str, GeoSegment] = {}
    out: list[GeoFeature] = []
    clipped = 0
    tiny: list[int] = []
    skipped: dict[str, list[str]] = {}
    for n, feat in enumerate(feats, 1):
        where = f"{path}: feature {n}"
        if not isinstance(feat, dict):
            raise GeoJSONError(f"{where} is not an object")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise GeoJSONError(f"{where}: properties is not an object")
        polys = _polygons(feat.get("geometry"), where, skipped)
        if not polys:
            continue
        cname, color = _classification(props.get("classification"), where)
        polys = [q for q in polys if _may_cover_a_centre(q[0])]  # by each outer ring
        if not polys:  # zero area or between pixel centres: no pixel is inside
            tiny.append(n)
            continue
        xy = np.concatenate([r for p in polys for r in p])
        # pixels whose centre (index coordinates) may be inside: ceil(min) .. floor(max)
        r0, r1 = math.ceil(xy[:, 1].min()), math.floor(xy[:, 1].max()) + 1
        c0, c1 = math.ceil(xy[:, 0].min()), math.floor(xy[:, 0].max()) + 1
        box = (max(r0, 0), min(r1, rows), max(c0, 0), min(c1, cols))
        clipped += box != (r0, r1, c0, c1)
        if box[0] >= box[1] or box[2] >= box[3]:
            x, y = xy[:, 0] + 0.5, xy[:, 1] + 0.5
            raise GeoJSONError(f"{where} lies outside the {rows} x {cols} image (x "
                               f"{x.min():g}..{x.max():g}, y {y.min():g}..{y.max():g} pixels)")
        seg = segments.get(cname)
        if seg is None:
            seg = segments[cname] = GeoSegment(len(segments) + 1, cname, color)
        seg.features += 1
        name = props.get("name")
        otype = props.get("objectType")
        out.append(GeoFeature(seg.value, polys, box, name if isinstance(name, str) else None,
                              otype if isinstance(otype, str) else None))
    for kind, wheres in skipped.items():  # one line per kind, not one per feature
        report.warn(f"{path}: {len(wheres)} {kind} feature(s) have no area and are skipped "
                    f"({', '.join(w.removeprefix(path + ': ') for w in wheres[:3])}"
                    f"{', ...' if len(wheres) > 3 else ''})")
    if tiny:
        report.warn(f"{path}: {len(tiny)} feature(s) cover no pixel centre (zero area, or "
                    f"smaller than a pixel) and are left out (feature {', '.join(map(str, tiny[:5]))}"
                    f"{', ...' if len(tiny) > 5 else ''})")
    if not out:
        raise GeoJSONError(f"{path}: no polygon features" + (" that cover a pixel centre"
                                                              if tiny else ""))
    if clipped:
        report.warn(f"{path}: {clipped} of {len(out)} features reach beyond the {rows} x {cols} "
                    "image and are cut at its edge (QuPath's coordinates are pixels of the "
                    "full-resolution level: is --reference that level?)")
    if len(segments) > 65535:
        raise GeoJSONError(f"{path}: more than 65535 classes")
    return GeoJSONLabels(path, (rows, cols), list(segments.values()), out, report)


def _may_cover_a_centre(ring: np.ndarray) -> bool:
    """Whether a ring's box holds a pixel centre (index coordinates: centres are integers)."""
    return math.ceil(ring[:, 1].min()) <= math.floor(ring[:, 1].max()) and \
        math.ceil(ring[:, 0].min()) <= math.floor(ring[:, 0].max())


def _features(doc, path: str) -> list:
    if isinstance(doc, list):
        feats = doc
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise GeoJSONError(f"{path}: FeatureCollection without a features list")
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    else:
        raise GeoJSONError(f"{path}: not a GeoJSON FeatureCollection, Feature or list of "
                           "features")
    if not feats:
        raise GeoJSONError(f"{path}: no features")
    return feats


def _polygons(geom, where: str, skipped: dict[str, list[str]]) -> list[list[np.ndarray]]:
    """The polygons of a geometry, each a list of rings in index coordinates; geometries
    without area are listed in ``skipped`` (kind -> where) to be reported once."""
    if geom is None:  # an unlocated feature (RFC 7946 3.2): nothing to draw
        skipped.setdefault("null geometry", []).append(where)
        return []
    if not isinstance(geom, dict):
        raise GeoJSONError(f"{where}: no geometry")
    kind = geom.get("type")
    if kind == "GeometryCollection":
        subs = geom.get("geometries")
        if not isinstance(subs, list):
            raise GeoJSONError(f"{where}: GeometryCollection without geometries")
        try:
            return [p for g in subs for p in _polygons(g, where, skipped)]
        except RecursionError:
            raise GeoJSONError(f"{where}: GeometryCollections nested too deeply") from None
    coords = geom.get("coordinates")
    if kind == "Polygon":
        return [_polygon(coords, where)]
    if kind == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise GeoJSONError(f"{where}: MultiPolygon without polygons")
        return [_polygon(c, where) for c in coords]
    if kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        skipped.setdefault(kind, []).append(where)
        return []
    raise GeoJSONError(f"{where}: unknown geometry type {kind!r}")


def _polygon(coords, where: str) -> list[np.ndarray]:
    if not isinstance(coords, list) or not coords:
        raise GeoJSONError(f"{where}: a polygon without rings")
    rings = []
    for ring in coords:
        if not isinstance(ring, list) or not all(
                isinstance(p, list) and len(p) in (2, 3) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
                for p in ring):
            raise GeoJSONError(f"{where}: coordinates are not lists of numbers (positions "
                               "of 2 or 3 numbers, RFC 7946 3.1.1)")
        xy = np.array([p[:2] for p in ring], np.float64)
        if not np.isfinite(xy).all():
            raise GeoJSONError(f"{where}: coordinates are not finite numbers")
        if np.abs(xy).max(initial=0) > MAX_COORDINATE:  # beyond any slide; floats lose pixels
            raise GeoJSONError(f"{where}: coordinate {np.abs(xy).max():g} is beyond "
                               f"+-{MAX_COORDINATE:g} pixels, not a position on a slide")
        if len(xy) > 1 and (xy[0] == xy[-1]).all():
            xy = xy[:-1]  # GeoJSON closes rings by repeating the first position
        if len(np.unique(xy, axis=0)) < 3:
            raise GeoJSONError(f"{where}: a polygon ring with fewer than 3 points")
        rings.append(xy - 0.5)  # QuPath's pixel corners -> index coordinates (centres)
    return rings


def _classification(c, where: str) -> tuple[str, tuple[int, int, int] | None]:
    if c is None:
        return UNCLASSIFIED, None
    if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
        raise GeoJSONError(f"{where}: classification without a name")
    color = None
    if isinstance(c.get("color"), list):
        rgb = c["color"]
        if len(rgb) < 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in rgb[:3]):
            raise GeoJSONError(f"{where}: classification colour {rgb!r} is not [r, g, b]")
        color = (rgb[0], rgb[1], rgb[2])
    elif isinstance(c.get("colorRGB"), int) and not isinstance(c.get("colorRGB"), bool):
        v = c["colorRGB"] & 0xFFFFFF  # packed (A)RGB, often negative (alpha 255, signed)
        color = ((v >> 16) & 255, (v >> 8) & 255, v & 255)
    return c["name"], color
