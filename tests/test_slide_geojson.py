"""GeoJSON polygons (QuPath export) rasterised tile by tile (slide/geojson.py).

The oracle is matplotlib's Path.contains_points on pixel centres (x = column + 0.5,
y = row + 0.5 in QuPath's pixel-corner coordinates), independent of segbridge's scan-line fill.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from segbridge.errors import SegbridgeError
from segbridge.slide.geojson import GeoJSONError, parse_geojson, read_geojson
from segbridge.slide.measure import measure_slide_labels

SHAPE = (150, 170)


def centres(shape):
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    return np.stack([cc.ravel() + 0.5, rr.ravel() + 0.5], axis=1)


def oracle_polygon(rings, shape) -> np.ndarray:
    """Inside the exterior ring and outside every hole, by matplotlib."""
    pts = centres(shape)
    inside = MplPath(np.asarray(rings[0], float)).contains_points(pts)
    for hole in rings[1:]:
        inside &= ~MplPath(np.asarray(hole, float)).contains_points(pts)
    return inside.reshape(shape)


def star(rng, cx, cy, r_lo, r_hi, n=None) -> list[list[float]]:
    """A random simple (star-shaped, usually concave) polygon, closed as GeoJSON closes it."""
    n = n or int(rng.integers(5, 14))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(r_lo, r_hi, n)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1).tolist()
    return pts + [pts[0]]


def feature(rings_or_polys, name="Tumor", color=(200, 0, 0), multi=False, **props):
    geom = {"type": "MultiPolygon" if multi else "Polygon", "coordinates": rings_or_polys}
    p = {"objectType": "annotation", "classification": {"name": name, "color": list(color)}}
    p.update(props)
    return {"type": "Feature", "id": "x", "geometry": geom, "properties": p}


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def stitched(src, tile):
    rows, cols = src.shape
    out = np.zeros(src.shape, src.dtype)
    for r in range(0, rows, tile[0]):
        for c in range(0, cols, tile[1]):
            out[r:r + tile[0], c:c + tile[1]] = src.read(r, r + tile[0], c, c + tile[1])
    return out


def whole(src):
    return src.read(0, src.shape[0], 0, src.shape[1])


@pytest.mark.parametrize("seed", range(6))
def test_random_concave_polygons_equal_oracle_and_tiles(seed):
    rng = np.random.default_rng(seed)
    polys = [star(rng, rng.uniform(-10, 180), rng.uniform(-10, 160), 3, 45) for _ in range(8)]
    # keep only polygons that reach into the image (others are an error, tested below)
    polys = [p for p in polys if oracle_polygon([p], SHAPE).any()]
    labels = parse_geojson(collection(*[feature([p], name=f"c{i % 3}") for i, p in
                                        enumerate(polys)]), SHAPE)
    src = labels.tiles()
    want = np.zeros(SHAPE, np.uint8)
    for i, p in enumerate(polys):  # later features win
        want[oracle_polygon([p], SHAPE)] = i % 3 + 1
    got = whole(src)
    np.testing.assert_array_equal(got, want)
    for tile in ((7, 11), (32, 32), (64, 100), (150, 1)):
        np.testing.assert_array_equal(stitched(src, tile), got)
    for s in labels.segments:  # binary per-class sources: overlaps kept
        m = np.zeros(SHAPE, bool)
        for i, p in enumerate(polys):
            if i % 3 + 1 == s.value:
                m |= oracle_polygon([p], SHAPE)
        np.testing.assert_array_equal(whole(labels.mask(s.name)), m.astype(np.uint8))
        np.testing.assert_array_equal(stitched(labels.mask(s.value), (33, 40)),
                                      m.astype(np.uint8))


def test_square_by_hand_pixel_corners():
    sq = [[10, 20], [30, 20], [30, 25], [10, 25], [10, 20]]  # x 10..30, y 20..25 (corners)
    got = whole(parse_geojson(collection(feature([sq])), SHAPE).tiles())
    want = np.zeros(SHAPE, np.uint8)
    want[20:25, 10:30] = 1  # rows 20..24, columns 10..29: centres 20.5..24.5, 10.5..29.5
    np.testing.assert_array_equal(got, want)


def test_triangle_hole_and_multipolygon():
    tri = [[5.3, 5.1], [80.7, 12.2], [20.1, 90.4], [5.3, 5.1]]
    outer = [[60.2, 60.3], [140.6, 60.9], [141.1, 140.2], [59.8, 139.7], [60.2, 60.3]]
    hole = [[80.4, 80.2], [120.3, 80.9], [100.1, 120.6], [80.4, 80.2]]
    a = [[150.2, 2.2], [168.9, 2.9], [160.1, 30.3], [150.2, 2.2]]
    b = [[150.3, 100.1], [169.9, 149.9], [145.5, 149.2], [150.3, 100.1]]
    feats = collection(feature([tri], name="A"), feature([outer, hole], name="B"),
                       feature([[a], [b]], name="C", multi=True))
    labels = parse_geojson(feats, SHAPE)
    got = whole(labels.tiles())
    want = np.zeros(SHAPE, np.uint8)
    want[oracle_polygon([tri], SHAPE)] = 1
    want[oracle_polygon([outer, hole], SHAPE)] = 2
    want[oracle_polygon([a], SHAPE) | oracle_polygon([b], SHAPE)] = 3
    np.testing.assert_array_equal(got, want)
    assert (got[100, 100] == 0) and (got[70, 70] == 2)  # the hole is cut out
    np.testing.assert_array_equal(stitched(labels.tiles(), (16, 16)), got)
    assert [(s.value, s.name, s.color) for s in labels.segments] == [
        (1, "A", (200, 0, 0)), (2, "B", (200, 0, 0)), (3, "C", (200, 0, 0))]


def test_later_feature_wins_in_the_label_image():
    big = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
    small = [[20, 20], [40, 20], [40, 40], [20, 40], [20, 20]]
    labels = parse_geojson(collection(feature([small], name="S"), feature([big], name="B")),
                           SHAPE)
    assert (whole(labels.tiles())[:100, :100] == 2).all()  # B, later, covers S
    labels = parse_geojson(collection(feature([big], name="B"), feature([small], name="S")),
                           SHAPE)
    img = whole(labels.tiles())
    assert (img[20:40, 20:40] == 2).all() and img[10, 10] == 1
    assert whole(labels.mask("B"))[:100, :100].all()  # the binary source keeps B whole


def test_qupath_shapes(tmp_path):
    cell = {
        "type": "Feature", "id": "5f0c7c43-ffee-4b7e-9f5e-8d3a3e0f1b0a",
        "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [20, 10], [20, 20],
                                                         [10, 20], [10, 10]]]},
        "nucleusGeometry": {"type": "Polygon", "coordinates": [[[12, 12], [18, 12], [18, 18],
                                                                [12, 12]]]},
        "properties": {"objectType": "cell", "isLocked": False,
                       "classification": {"name": "Tumor", "colorRGB": -3670016},
                       "measurements": {"Nucleus: Area": 30.5}},
    }
    ann = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[50, 50], [90, 50], [90, 90], [50, 90], [50, 50]]]},
        "properties": {"objectType": "annotation", "name": "region 1",
                       "classification": {"name": "Stroma", "color": [150, 200, 150]}}}
    unclassified = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[100.2, 100], [110, 100], [110, 110], [100.2, 100]]]},
        "properties": {"objectType": "annotation"}}
    point = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]},
             "properties": {"objectType": "annotation"}}
    path = tmp_path / "export.geojson"
    path.write_text(json.dumps([cell, ann, unclassified, point]))  # bare list (QuPath 0.2)
    labels = read_geojson(path, SHAPE)
    assert [(s.name, s.color) for s in labels.segments] == [
        ("Tumor", (200, 0, 0)), ("Stroma", (150, 200, 150)), ("Unclassified", None)]
    assert labels.features[1].name == "region 1" and labels.features[0].object_type == "cell"
    assert any("Point" in w for w in labels.report.warnings)
    img = whole(labels.tiles())
    assert (img[10:20, 10:20] == 1).all() and img[9, 10] == 0 and img[20, 10] == 0
    assert (img[50:90, 50:90] == 2).all()
    # measurements of the rasterised classes: one object each, areas as drawn
    summary, objs = measure_slide_labels(labels.tiles(), strip_rows=13)
    assert [(s["segment"], s["objects"], s["area_px"]) for s in summary] == [
        (1, 1, 100), (2, 1, 1600), (3, 1, int(oracle_polygon(
            [[[100.2, 100], [110, 100], [110, 110]]], SHAPE).sum()))]


def test_centres_on_edges_follow_the_rtstruct_rule():
    # horizontal / vertical edges on a row / column of centres: those centres are inside
    rect = [[2.5, 3.5], [8.5, 3.5], [8.5, 6.5], [2.5, 6.5], [2.5, 3.5]]
    img = whole(parse_geojson(collection(feature([rect])), SHAPE).tiles())
    want = np.zeros(SHAPE, np.uint8)
    want[3:7, 2:9] = 1
    np.testing.assert_array_equal(img, want)
    # a slanted edge from corner (0, 0) to (10, 10) passes through the centres (i+.5, i+.5):
    # the scan line counts them half-open, inside on the polygon's right side ...
    tri = [[0, 0], [10, 10], [0, 10], [0, 0]]
    img = whole(parse_geojson(collection(feature([tri])), SHAPE).tiles())
    rr, cc = np.mgrid[0:10, 0:10]
    want[:] = 0
    want[:10, :10] = cc <= rr
    np.testing.assert_array_equal(img, want)
    # ... and outside on its left side (as rt.contours.rasterize does for RTSTRUCT)
    tri = [[0, 0], [10, 0], [10, 10], [0, 0]]
    img = whole(parse_geojson(collection(feature([tri])), SHAPE).tiles())
    want[:] = 0
    want[:10, :10] = cc > rr
    np.testing.assert_array_equal(img, want)
    from segbridge.rt.contours import rasterize
    idx = np.asarray(tri[:-1], float) - 0.5
    np.testing.assert_array_equal(rasterize([(0, idx)], (1, *SHAPE))[0], img.astype(bool))


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ('{"type": "FeatureCollection", "features": []}', "no features"),
    ('{"type": "Topology"}', "not a GeoJSON"),
    (json.dumps(collection(feature([[[1, 1], [5, 5], [1, 1]]]))), "fewer than 3 points"),
    (json.dumps(collection(feature([[[1, 1], ["a", 5], [9, 1], [1, 1]]]))),
     "not lists of numbers"),
    (json.dumps(collection(feature([[[1, 1], [True, 5], [9, 1], [1, 1]]]))),
     "not lists of numbers"),
    (json.dumps(collection(feature([[[1000, 1000], [1100, 1000], [1050, 1100],
                                     [1000, 1000]]]))), "outside the 150 x 170 image"),
    (json.dumps(collection({"type": "Feature", "geometry": {"type": "Point",
                                                             "coordinates": [1, 2]}})),
     "no polygon features"),
    (json.dumps(collection(feature([[[1, 1], [5, 1], [5, 5], [1, 1]]], color=(300, 0, 0)))),
     "colour"),
])
def test_bad_geojson_one_line_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.geojson"
    path.write_text(text)
    with pytest.raises(GeoJSONError) as e:
        read_geojson(path, SHAPE)
    msg = str(e.value)
    assert isinstance(e.value, SegbridgeError)
    assert message in msg and str(path) in msg and "\n" not in msg


def test_tiles_touch_only_overlapping_features(monkeypatch):
    rng = np.random.default_rng(9)
    shape = (3000, 3000)
    polys = [star(rng, x, y, 2, 9) for x in range(20, 2980, 60) for y in range(20, 2980, 60)]
    labels = parse_geojson(collection(*[feature([p]) for p in polys]), shape)
    src = labels.tiles()
    import segbridge.rt.contours as contours
    calls = []
    real = contours.fill_region

    def counting(polygons, *a):
        calls.append(a)
        return real(polygons, *a)

    monkeypatch.setattr(contours, "fill_region", counting)
    tile = src.read(0, 256, 0, 256)
    assert 0 < len(calls) <= 36  # at most the ~5 x 5 cells meeting the tile, not 2,500
    want = np.zeros((256, 256), np.uint8)
    pts = centres((256, 256))
    for p in polys:
        q = np.asarray(p)
        if q[:, 0].min() < 257 and q[:, 1].min() < 257:
            want[MplPath(q).contains_points(pts).reshape(256, 256)] = 1
    np.testing.assert_array_equal(tile, want)


@pytest.mark.parametrize("seed", range(4))
def test_fill_region_equals_rasterize_cut_to_the_region(seed):
    """The offset fill (rt.contours.fill_region) is the RTSTRUCT rule on any region, pixel for
    pixel, including centres on edges (polygons with vertices on the lattice of centres)."""
    from segbridge.rt.contours import fill_region, rasterize

    rng = np.random.default_rng(seed)
    shape = (60, 70)
    for lattice in (False, True):
        p = np.asarray(star(rng, 35, 30, 5, 40)[:-1])
        if lattice:
            p = np.round(p)
        full = rasterize([(0, p)], (1, *shape))[0]
        for _ in range(10):
            r0, c0 = int(rng.integers(-5, 60)), int(rng.integers(-5, 70))
            r1, c1 = r0 + int(rng.integers(1, 40)), c0 + int(rng.integers(1, 40))
            a, b, c, d = max(r0, 0), min(r1, 60), max(c0, 0), min(c1, 70)
            if a >= b or c >= d:
                continue
            np.testing.assert_array_equal(fill_region([[p]], a, b, c, d), full[a:b, c:d])


def test_fill_region_inside_outside_and_beside_a_long_contour():
    """Regions wholly inside, outside, left and right of a many-vertex polygon (the edges that
    cannot change a region are dropped before filling)."""
    from segbridge.rt.contours import fill_region, rasterize

    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    p = np.stack([100 + 80 * np.cos(t) + 3 * np.sin(17 * t),
                  90 + 70 * np.sin(t) + 2 * np.cos(23 * t)], axis=1)
    square = np.array([[10.0, 10.0], [190.0, 10.0], [190.0, 170.0], [10.0, 170.0]])
    for poly in (p, square, np.round(p)):
        full = rasterize([(0, poly)], (1, 180, 200))[0]
        for a, b, c, d in ((80, 100, 90, 110), (0, 5, 0, 200), (85, 95, 0, 30),
                           (85, 95, 170, 200), (175, 180, 0, 200), (0, 180, 0, 200),
                           (20, 21, 5, 195), (60, 120, 15, 16)):
            np.testing.assert_array_equal(fill_region([[poly]], a, b, c, d), full[a:b, c:d])
    assert fill_region([[square]], 80, 100, 90, 110).all()


def test_features_that_cover_no_pixel_centre_are_left_out_with_a_warning():
    from segbridge.errors import Report

    def feat(ring):
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"classification": {"name": "Tumor"}}}

    square = [[30, 30], [40, 30], [40, 40], [30, 40], [30, 30]]
    flat = [[5, 5], [30, 5], [60, 5], [5, 5]]  # zero area
    tiny = [[5.1, 5.1], [5.4, 5.1], [5.4, 5.4], [5.1, 5.4], [5.1, 5.1]]  # between centres
    r = Report()
    got = parse_geojson({"type": "FeatureCollection",
                         "features": [feat(square), feat(flat), feat(tiny)]}, (40, 50), "g",
                        report=r)
    assert len(got.features) == 1 and [s.features for s in got.segments] == [1]
    assert any("2 feature(s) cover no pixel centre" in w and "feature 2, 3" in w
               for w in r.warnings)
    r = Report()  # a MultiPolygon of two sub-pixel parts far apart covers nothing either
    multi = {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [
        [[[5.1, 5.1], [5.4, 5.1], [5.4, 5.4], [5.1, 5.1]]],
        [[[35.1, 5.1], [35.4, 5.1], [35.4, 5.4], [35.1, 5.1]]]]},
        "properties": {"classification": {"name": "Dots"}}}
    got = parse_geojson([feat(square), multi], (40, 50), "g", report=r)
    assert [s.name for s in got.segments] == ["Tumor"] and len(got.features) == 1
    assert any("1 feature(s) cover no pixel centre" in w for w in r.warnings)
    r = Report()
    points = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}] * 5
    nulls = [{"type": "Feature", "geometry": None, "properties": {}}] * 4
    parse_geojson([feat(square), *points, *nulls], (40, 50), "g", report=r)
    assert len(r.warnings) == 2  # one line per kind, not one per feature
    assert any(w.startswith("g: 5 Point feature(s) have no area") for w in r.warnings)
    assert any(w.startswith("g: 4 null geometry feature(s)") for w in r.warnings)
    with pytest.raises(GeoJSONError, match="no polygon features that cover a pixel centre"):
        parse_geojson([feat(flat)], (40, 50), "g")
    with pytest.raises(GeoJSONError, match="beyond"):
        parse_geojson([feat([[5, 5], [1e18, 5], [1e18, 1e18], [5, 5]])], (40, 50), "g")
