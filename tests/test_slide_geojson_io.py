"""GeoJSON in and out of the slide path, through the CLI: polygons -> SEG -> NumPy equals the
polygons rasterised by an independent centre-inside test (matplotlib), highdicom reads the
SEG to the same pixels; a label image -> GeoJSON -> SEG -> NumPy comes back pixel for pixel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from matplotlib.path import Path as MPath

from segbridge.slide.synthetic import sm_image


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def feature(rings, name, color):
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {"objectType": "annotation",
                           "classification": {"name": name, "color": color}}}


FEATURES = [  # QuPath pixel coordinates: (0, 0) is the top left corner of the first pixel;
    # no pixel centre lies on an edge (the oracle's answer there is undefined)
    feature([[[10.3, 12.1], [180.7, 20.2], [150.2, 140.9], [30.5, 90.4], [10.3, 12.1]]],
            "Tumor", [200, 0, 0]),
    feature([[[200, 30], [290, 30], [290, 120], [200, 120], [200, 30]],
             [[220, 50], [260, 50], [260, 100], [220, 100], [220, 50]]], "Stroma", [0, 150, 0]),
    feature([[[40.3, 150.2], [260.25, 170.75], [250.3, 199.2], [60, 190], [40.3, 150.2]]],
            "Tumor", [200, 0, 0]),
]


def centre_raster(features, shape) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    pts = np.c_[xx.ravel() + 0.5, yy.ravel() + 0.5]
    out: dict[str, np.ndarray] = {}
    for f in features:
        rings = f["geometry"]["coordinates"]
        inside = MPath(rings[0]).contains_points(pts)
        for h in rings[1:]:
            inside &= ~MPath(h).contains_points(pts)
        name = f["properties"]["classification"]["name"]
        out[name] = out.get(name, np.zeros(shape, bool)) | inside.reshape(shape)
    return out


@pytest.mark.parametrize("kind", ["labelmap", "binary"])
def test_polygons_to_seg_to_numpy(tmp_path, kind):
    ref = sm_image(tmp_path / "sm.dcm", 210, 300, 64)  # not a multiple of the tile size
    gj = tmp_path / "cells.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": FEATURES}))
    r = run("convert", gj, "--reference", ref, "--type", kind, "-o", tmp_path / "s.dcm")
    assert r.returncode == 0, r.stderr
    truth = centre_raster(FEATURES, (210, 300))
    seg = hd.seg.segread(tmp_path / "s.dcm")
    names = {seg.get_segment_description(n).segment_label: n
             for n in seg.segment_numbers}
    assert set(names) == {"Tumor", "Stroma"}
    if kind == "labelmap":
        got = seg.get_total_pixel_matrix(combine_segments=True)
        for name, n in names.items():
            np.testing.assert_array_equal(got == n, truth[name])
    else:  # BINARY keeps overlaps: one plane per segment
        for name, n in names.items():
            got = seg.get_total_pixel_matrix(segment_numbers=[n])
            np.testing.assert_array_equal(got[..., 0] > 0, truth[name])
    r = run("convert", tmp_path / "s.dcm", "-o", tmp_path / "back.npy")
    assert r.returncode == 0, r.stderr
    back = np.load(tmp_path / "back.npy")
    if back.ndim == 2:
        for name, n in names.items():
            np.testing.assert_array_equal(back == n, truth[name])
    else:
        for name, n in names.items():
            np.testing.assert_array_equal(back[n - 1] > 0, truth[name])


def test_label_image_to_geojson_and_back_is_exact(tmp_path):
    ref = sm_image(tmp_path / "sm.dcm", 300, 257, 64)
    rng = np.random.default_rng(5)
    labels = np.zeros((300, 257), np.uint8)
    for _ in range(60):  # cells of 3 classes, some touching, some with holes
        r, c = rng.integers(5, 290), rng.integers(5, 247)
        h, w = rng.integers(3, 14, 2)
        labels[r:r + h, c:c + w] = rng.integers(1, 4)
        if h > 6 and w > 6:
            labels[r + 2:r + h - 2, c + 2:c + w - 2] = 0
    labels[::7, ::11] = 2  # single pixels, diagonal neighbours
    np.save(tmp_path / "l.npy", labels)
    r = run("convert", tmp_path / "l.npy", "--reference", ref, "-o", tmp_path / "s.dcm")
    assert r.returncode == 0, r.stderr
    r = run("convert", tmp_path / "s.dcm", "-o", tmp_path / "cells.geojson")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "cells.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and all(
        f["geometry"]["type"] == "Polygon" for f in doc["features"])
    r = run("convert", tmp_path / "cells.geojson", "--reference", ref, "-o", tmp_path / "t.dcm")
    assert r.returncode == 0, r.stderr
    r = run("convert", tmp_path / "t.dcm", "-o", tmp_path / "back.npy")
    assert r.returncode == 0, r.stderr
    back = np.load(tmp_path / "back.npy")
    # class numbers follow the file's classification names: map them back by name
    seg = hd.seg.segread(tmp_path / "t.dcm")
    by_name = {seg.get_segment_description(n).segment_label: n for n in seg.segment_numbers}
    first = hd.seg.segread(tmp_path / "s.dcm")
    for n in first.segment_numbers:
        name = first.get_segment_description(n).segment_label
        np.testing.assert_array_equal(back == by_name[name], labels == n)


def test_geojson_needs_a_reference_and_says_so(tmp_path):
    gj = tmp_path / "cells.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": FEATURES}))
    r = run("convert", gj, "-o", tmp_path / "s.dcm")
    assert r.returncode == 1 and "--reference" in r.stderr and "Traceback" not in r.stderr
    assert not Path(tmp_path / "s.dcm").exists()


def test_measure_a_slide_seg_and_its_polygons(tmp_path):
    """segbridge measure on a slide SEG (and on GeoJSON with --image): per segment object
    counts and areas, per object centroids, equal to scipy's labelling of the label image and
    to highdicom's pixel -> slide transform."""
    import csv

    from scipy import ndimage

    from segbridge.slide.reference import read_sm

    ref = sm_image(tmp_path / "sm.dcm", 300, 257, 64)
    rng = np.random.default_rng(9)
    labels = np.zeros((300, 257), np.uint8)
    for _ in range(40):
        r, c = rng.integers(0, 290), rng.integers(0, 247)
        labels[r:r + rng.integers(2, 12), c:c + rng.integers(2, 12)] = rng.integers(1, 3)
    np.save(tmp_path / "l.npy", labels)
    assert run("convert", tmp_path / "l.npy", "-r", ref, "-o", tmp_path / "s.dcm").returncode == 0
    r = run("measure", tmp_path / "s.dcm", "--csv", tmp_path / "o.csv", "-o", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    grid = read_sm(ref)
    sx, sy = grid.pixel_spacing
    eight = np.ones((3, 3), bool)
    for v in (1, 2):
        lab, n = ndimage.label(labels == v, structure=eight)
        seg_row = next(s for s in doc["segments"] if s["segment"] == v)
        assert seg_row["objects"] == n
        assert abs(seg_row["area_mm2"] - (labels == v).sum() * sx * sy) < 1e-12
        mine = sorted((int(o["area_px"]), round(float(o["centroid_row"]), 6),
                       round(float(o["centroid_col"]), 6)) for o in rows
                      if int(o["segment"]) == v)
        truth = []
        for k in range(1, n + 1):
            rr, cc = np.nonzero(lab == k)
            truth.append((rr.size, round(rr.mean(), 6), round(cc.mean(), 6)))
        assert mine == sorted(truth)
    # the slide position of a centroid, as highdicom transforms image coordinates (the top
    # left corner of the first pixel at (0, 0): a pixel index + 0.5)
    image = hd.seg.segread(tmp_path / "s.dcm")
    tr = hd.spatial.ImageToReferenceTransformer.for_image(image, for_total_pixel_matrix=True)
    o = rows[0]
    xyz = tr(np.array([[float(o["centroid_col"]) + 0.5, float(o["centroid_row"]) + 0.5]]))[0]
    assert abs(xyz[0] - float(o["x_mm"])) < 1e-6 and abs(xyz[1] - float(o["y_mm"])) < 1e-6
    # the same objects from the GeoJSON of the SEG (4-connected polygons, 4-connected count)
    assert run("convert", tmp_path / "s.dcm", "-o", tmp_path / "c.geojson").returncode == 0
    r = run("measure", tmp_path / "c.geojson", "--image", ref, "--connectivity", "4", "--json")
    assert r.returncode == 0, r.stderr
    got = {s["label"]: s["objects"] for s in json.loads(r.stdout)["segments"]}
    first = hd.seg.segread(tmp_path / "s.dcm")
    for n in first.segment_numbers:
        name = first.get_segment_description(n).segment_label
        assert got[name] == ndimage.label(labels == n)[1]


def test_hostile_slide_inputs(tmp_path):
    """Found by a hostile run: slide SEGs whose TotalPixelMatrixRows is past the first 64 KiB
    (a 16-bit palette LUT) or inside a deflated data set are still slide SEGs to every command;
    bool masks convert; an empty stack, GeoJSON nested too deeply and positions of 4 numbers
    are one line each; polygons reaching past the image are cut with a warning."""
    ref = sm_image(tmp_path / "sm.dcm", 200, 150, 64)
    lab = np.zeros((200, 150), np.uint16)
    lab[10:60, 10:60], lab[100:190, 20:140] = 1, 65535
    np.save(tmp_path / "m16.npy", lab)
    for name, extra in (("p16.dcm", ["--palette"]), ("defl.dcm", ["--compression", "deflate"])):
        r = run("convert", tmp_path / "m16.npy", "-r", ref, "-o", tmp_path / name, *extra)
        assert r.returncode == 0, r.stderr
        r = run("info", tmp_path / name)
        assert r.returncode == 0 and "not supported" not in r.stderr, r.stderr
        r = run("measure", tmp_path / name, "--json")
        assert r.returncode == 0, r.stderr
        assert {s["segment"]: s["objects"] for s in json.loads(r.stdout)["segments"]} == \
            {1: 1, 65535: 1}
    r = run("convert", tmp_path / "m16.npy", "-r", tmp_path / "p16.dcm", "-o", tmp_path / "x.dcm")
    assert r.returncode == 1 and "is a segmentation, not the slide image" in r.stderr
    (tmp_path / "adir.dcm").mkdir()
    for out in (tmp_path / "adir.dcm", tmp_path / "nodir" / "x.dcm"):
        r = run("convert", tmp_path / "m16.npy", "-r", ref, "-o", out)
        assert r.returncode == 1 and str(out) in r.stderr and ".tmp" not in r.stderr, r.stderr
    r = run("measure", tmp_path / "p16.dcm", "--csv", tmp_path / "nodir" / "o.csv")
    assert r.returncode == 1 and "nodir/o.csv" in r.stderr and ".tmp" not in r.stderr, r.stderr
    r = run("measure", tmp_path / "p16.dcm", "--csv", tmp_path / "o.x", "-o", tmp_path / "o.x")
    assert r.returncode == 1 and "both the CSV and the JSON" in r.stderr
    r = run("measure", tmp_path / "m16.npy")
    assert r.returncode == 1 and "--image" in r.stderr
    r = run("render", tmp_path / "p16.dcm", "--image", ref, "-o", tmp_path / "p.jpg")
    assert r.returncode == 1 and "PNG" in r.stderr and not (tmp_path / "p.jpg").exists()
    import pydicom  # a label map pixel value no segment describes: measured apart, warned

    ds = pydicom.dcmread(tmp_path / "defl.dcm")
    ds.SegmentSequence = pydicom.Sequence([it for it in ds.SegmentSequence
                                           if it.SegmentNumber != 65535])
    ds.save_as(tmp_path / "stray.dcm")
    r = run("measure", tmp_path / "stray.dcm", "--json")
    assert r.returncode == 0 and "65535" in r.stderr and "described by no segment" in r.stderr
    assert [s["segment"] for s in json.loads(r.stdout)["segments"]] == [1]
    np.save(tmp_path / "b.npy", lab > 0)
    r = run("convert", tmp_path / "b.npy", "-r", ref, "-o", tmp_path / "b.dcm")
    assert r.returncode == 0, r.stderr
    assert (hd.seg.segread(tmp_path / "b.dcm").get_total_pixel_matrix(
        combine_segments=True) > 0).sum() == (lab > 0).sum()
    np.save(tmp_path / "z.npy", np.zeros((0, 200, 150), np.uint8))
    geo = '{"type": "Polygon", "coordinates": [[[1, 1], [9, 1], [9, 9], [1, 1]]]}'
    for _ in range(3000):  # (text: json.dumps itself cannot nest that deep)
        geo = '{"type": "GeometryCollection", "geometries": [' + geo + ']}'
    (tmp_path / "deep.geojson").write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": ' + geo
        + '}]}')
    (tmp_path / "four.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature([[[1, 1, 0, 0], [9, 1, 0, 0], [9, 9, 0, 0], [1, 1, 0, 0]]], "a", [1, 2, 3])]}))
    for bad, why in (("z.npy", "no pixels"), ("deep.geojson", "nested too deeply"),
                     ("four.geojson", "2 or 3 numbers")):
        r = run("convert", tmp_path / bad, "-r", ref, "-o", tmp_path / "x.dcm")
        assert r.returncode == 1 and why in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.dcm").exists()
    (tmp_path / "edge.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature([[[100, 150], [190, 150], [190, 260], [100, 260], [100, 150]]], "a", [1, 2, 3])]}))
    r = run("convert", tmp_path / "edge.geojson", "-r", ref, "-o", tmp_path / "e.npy")
    assert r.returncode == 0 and "cut at its edge" in r.stderr, r.stderr
    assert (np.load(tmp_path / "e.npy") > 0).sum() == 50 * 50  # rows 150..199, cols 100..149


def test_measure_options_and_a_seg_off_its_image(tmp_path):
    """--segments keeps those segments; --sr is refused for slides; a bad -o leaves no --csv
    behind; a SEG whose pixel spacing is not the image's is refused with --image (areas would
    change by the square of the ratio) and by validate -r (SLIDE-REFERENCE); a moved origin is
    said (SLIDE-REFERENCE-ORIGIN, and a warning when measured on the image)."""
    import csv

    import pydicom

    from segbridge.validate import validate

    ref = sm_image(tmp_path / "sm.dcm", 200, 150, 64)
    labels = np.zeros((200, 150), np.uint8)
    labels[10:20, 10:30] = 1
    labels[50:60, 50:55] = 2
    labels[100:104, 100:104] = 2
    np.save(tmp_path / "l.npy", labels)
    seg = tmp_path / "s.dcm"
    assert run("convert", tmp_path / "l.npy", "-r", ref, "-o", seg).returncode == 0
    r = run("measure", seg, "--segments", "2", "--csv", tmp_path / "two.csv")
    assert r.returncode == 0, r.stderr
    assert {row["segment"] for row in csv.DictReader(open(tmp_path / "two.csv"))} == {"2"}
    r = run("measure", seg, "--segments", "9")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = run("measure", seg, "--sr", tmp_path / "sr.dcm")
    assert r.returncode == 1 and "--sr" in r.stderr and not (tmp_path / "sr.dcm").exists()
    r = run("measure", seg, "--csv", tmp_path / "half.csv", "-o", tmp_path / "nodir" / "x.json")
    assert r.returncode == 1 and not (tmp_path / "half.csv").exists()
    ds = pydicom.dcmread(seg)
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [0.01, 0.01]
    ds.save_as(tmp_path / "spacing.dcm")
    r = run("measure", tmp_path / "spacing.dcm", "--image", ref)
    assert r.returncode == 1 and "pixel spacing" in r.stderr and len(r.stderr.splitlines()) == 1
    assert "SLIDE-REFERENCE" in {f.rule for f in validate(tmp_path / "spacing.dcm",
                                                          reference=ref).errors}
    ds = pydicom.dcmread(seg)
    ds.TotalPixelMatrixOriginSequence[0].XOffsetInSlideCoordinateSystem += 1.0
    ds.save_as(tmp_path / "moved.dcm")
    assert "SLIDE-REFERENCE-ORIGIN" in {f.rule for f in validate(tmp_path / "moved.dcm",
                                                                 reference=ref).warnings}
    r = run("measure", tmp_path / "moved.dcm", "--image", ref)
    assert r.returncode == 0 and "origin" in r.stderr


def test_messages_name_outputs_not_their_temporary_names(tmp_path):
    from segbridge import outputs

    target = tmp_path / "x.seg.nrrd"
    tmp = outputs.tmp_name(target)
    assert tmp != target and outputs.shown_name(tmp) == target
    assert outputs.shown_name(None) == target  # a full disk names no file: the last output
    assert outputs.shown_name(tmp_path / "plain.dcm") == tmp_path / "plain.dcm"
