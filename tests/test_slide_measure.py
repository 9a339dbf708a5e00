"""Streaming slide measurements (slide/measure.py) against whole-image scipy labelling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from segbridge.errors import InvalidInputError
from segbridge.slide.measure import (
    SlideGeometry,
    measure_slide_labels,
    measurements_json,
    objects_csv,
    write_text,
)
from segbridge.slide.tiles import ArrayTiles


def reference(img: np.ndarray, connectivity: int) -> dict:
    """Whole image: scipy.ndimage.label per value + numpy regionprops-like stats."""
    structure = np.ones((3, 3)) if connectivity == 8 else None
    out = {k: [] for k in ("segment", "object", "area_px", "centroid_row", "centroid_col",
                           "row_min", "row_max", "col_min", "col_max")}
    for v in np.unique(img):
        if v == 0:
            continue
        lab, n = ndimage.label(img == v, structure=structure)
        idx = np.arange(1, n + 1)
        rr, cc = np.nonzero(lab)
        lv = lab[rr, cc]
        count = np.bincount(lv, minlength=n + 1)[1:]
        out["segment"] += [int(v)] * n
        out["object"] += idx.tolist()
        out["area_px"] += count.tolist()
        out["centroid_row"] += (np.bincount(lv, rr, n + 1)[1:] / count).tolist()
        out["centroid_col"] += (np.bincount(lv, cc, n + 1)[1:] / count).tolist()
        for s in ndimage.find_objects(lab):
            out["row_min"].append(s[0].start)
            out["row_max"].append(s[0].stop)
            out["col_min"].append(s[1].start)
            out["col_max"].append(s[1].stop)
    return {k: np.array(v) for k, v in out.items()}


def check_same(img: np.ndarray, connectivity: int, strip_rows: int) -> None:
    summary, objs = measure_slide_labels(ArrayTiles(img), connectivity=connectivity,
                                         strip_rows=strip_rows)
    ref = reference(img, connectivity)
    assert len(objs) == len(ref["segment"]) > 0
    for k, v in ref.items():
        got = getattr(objs, k)
        if k.startswith("centroid"):
            np.testing.assert_allclose(got, v, rtol=0, atol=1e-9, err_msg=k)
        else:
            np.testing.assert_array_equal(got, v, err_msg=k)
    for s in summary:
        sel = ref["segment"] == s["segment"]
        assert s["objects"] == int(sel.sum())
        assert s["area_px"] == int(ref["area_px"][sel].sum()) == int((img == s["segment"]).sum())


def random_labels(seed: int, shape=(97, 131), values=3, density=0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.uniform_filter(rng.random(shape), 3)
    fg = noise > np.quantile(noise, 1 - density)
    return np.where(fg, rng.integers(1, values + 1, shape), 0).astype(np.uint8) * \
        ndimage.binary_opening(fg) + (fg & ~ndimage.binary_opening(fg)).astype(np.uint8)


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("strip_rows", [1, 2, 7, 16, 50, 97, 200])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_images_equal_whole_image_labelling(seed, strip_rows, connectivity):
    check_same(random_labels(seed), connectivity, strip_rows)


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("strip_rows", [1, 3, 5, 8])
def test_noise_many_values(connectivity, strip_rows):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 5, (41, 37)).astype(np.uint16)
    check_same(img, connectivity, strip_rows)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_u_shapes_join_only_below_a_boundary(connectivity):
    img = np.zeros((40, 30), np.uint8)
    img[2:30, 3:6] = 1        # left arm crossing several boundaries
    img[2:30, 12:15] = 1      # right arm
    img[30:33, 3:15] = 1      # joined only at the bottom
    img[5:20, 20:22] = 2      # a second value in a stripe touching nothing
    img[20:38, 22:24] = 2     # 8-connected to it only through a diagonal
    img[0, :] = 3             # a full-width row at the top
    img[39, 0] = 3
    for strip_rows in (1, 4, 6, 10, 11, 40):
        check_same(img, connectivity, strip_rows)
    _, objs = measure_slide_labels(img, connectivity=connectivity, strip_rows=4)
    assert (objs.segment == 1).sum() == 1  # the U is one object
    assert (objs.segment == 2).sum() == (1 if connectivity == 8 else 2)


def test_diagonal_across_boundary_depends_on_connectivity():
    img = np.zeros((4, 4), np.uint8)
    img[1, 1] = img[2, 2] = 1  # touch at a corner, across the boundary between rows 1 and 2
    for c, n in ((4, 2), (8, 1)):
        _, objs = measure_slide_labels(img, connectivity=c, strip_rows=2)
        assert len(objs) == n
    img2 = np.zeros((4, 4), np.uint8)
    img2[1, 1], img2[2, 2] = 1, 2  # different values never join
    _, objs = measure_slide_labels(img2, connectivity=8, strip_rows=2)
    assert len(objs) == 2


def test_area_mm2_and_slide_coordinates_by_hand():
    img = np.zeros((10, 20), np.uint8)
    img[2:4, 5:9] = 4  # 8 pixels, centroid row 2.5, col 6.5
    geo = SlideGeometry(spacing=(0.5, 0.25), origin=(10.0, 20.0),
                        orientation=(0.0, -1.0, 0.0, -1.0, 0.0, 0.0))
    summary, objs = measure_slide_labels(img, geo, strip_rows=3)
    assert summary == [{"segment": 4, "objects": 1, "area_px": 8, "area_mm2": 8 * 0.125}]
    # column direction (0, -1): y = 20 - 6.5 * 0.25; row direction (-1, 0): x = 10 - 2.5 * 0.5
    assert objs.x_mm[0] == pytest.approx(10.0 - 2.5 * 0.5)
    assert objs.y_mm[0] == pytest.approx(20.0 - 6.5 * 0.25)
    assert objs.area_mm2[0] == pytest.approx(1.0)
    assert (objs.row_min[0], objs.row_max[0], objs.col_min[0], objs.col_max[0]) == (2, 4, 5, 9)


@pytest.mark.parametrize("orientation", [(0.0, -1.0, 0.0, -1.0, 0.0, 0.0),
                                         (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                                         (0.6, 0.8, 0.0, -0.8, 0.6, 0.0)])
def test_slide_coordinates_equal_highdicom(orientation):
    import highdicom as hd

    img = random_labels(3, (60, 80))
    geo = SlideGeometry(spacing=(0.00025, 0.0005), origin=(12.5, 33.0), orientation=orientation)
    _, objs = measure_slide_labels(img, geo, strip_rows=9)
    t = hd.spatial.PixelToReferenceTransformer(
        image_position=(12.5, 33.0, 0.0), image_orientation=orientation,
        pixel_spacing=(0.00025, 0.0005))
    # highdicom takes integer (column, row) indices: check the bounding box corners, and the
    # centroids through the transformation's linearity
    ij = np.stack([objs.col_min, objs.row_min], axis=1)
    want = t(ij)
    got = geo.to_slide(objs.row_min, objs.col_min)
    np.testing.assert_allclose(got, want, atol=1e-12)
    o = t(np.array([[0, 0]]))[0]
    dc = t(np.array([[1, 0]]))[0] - o
    dr = t(np.array([[0, 1]]))[0] - o
    cen = o + objs.centroid_col[:, None] * dc + objs.centroid_row[:, None] * dr
    np.testing.assert_allclose(np.stack([objs.x_mm, objs.y_mm], axis=1), cen[:, :2], atol=1e-12)


def test_empty_image_and_bad_input():
    summary, objs = measure_slide_labels(np.zeros((5, 5), np.uint8))
    assert summary == [] and len(objs) == 0
    with pytest.raises(InvalidInputError, match="connectivity"):
        measure_slide_labels(np.zeros((5, 5), np.uint8), connectivity=6)
    with pytest.raises(InvalidInputError, match="integer"):
        measure_slide_labels(np.zeros((5, 5), np.float32))
    with pytest.raises(InvalidInputError, match="negative"):
        measure_slide_labels(np.full((5, 5), -1, np.int16))
    with pytest.raises(InvalidInputError, match="orthogonal"):
        SlideGeometry(orientation=(1, 0, 0, 1, 0, 0))


class CountingSource:
    """Records every region read: the whole image is never asked for at once."""

    def __init__(self, img):
        self.img, self.shape, self.dtype, self.reads = img, img.shape, img.dtype, []

    def read(self, r0, r1, c0, c1):
        self.reads.append((r0, r1, c0, c1))
        return self.img[r0:r1, c0:c1].copy()


def test_reads_strips_only():
    img = random_labels(4, (100, 50))
    src = CountingSource(img)
    measure_slide_labels(src, strip_rows=16)
    assert src.reads == [(r, min(r + 16, 100), 0, 50) for r in range(0, 100, 16)]


def test_csv_and_json_outputs(tmp_path):
    img = random_labels(5, (40, 40))
    geo = SlideGeometry(spacing=(0.001, 0.001))
    summary, objs = measure_slide_labels(img, geo, strip_rows=7)
    text = objects_csv(objs, labels={1: "tumor", 2: "stroma"})
    lines = text.splitlines()
    assert lines[0].split(",")[:3] == ["segment", "label", "object"]
    assert len(lines) == len(objs) + 1
    doc = json.loads(measurements_json(summary, objs, geo, connectivity=8,
                                       labels={1: "tumor"}))
    assert doc["segments"][0]["label"] == "tumor"
    assert len(doc["objects"]) == len(objs)
    assert sum(o["area_px"] for o in doc["objects"]) == int((img > 0).sum())
    out = tmp_path / "objects.csv"
    write_text(out, text)
    assert out.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["objects.csv"]


def test_centroids_equal_highdicom_image_to_reference():
    """Fractional centroids through highdicom's ImageToReferenceTransformer, whose (0, 0) is
    the top left corner of the first pixel (so a pixel centre is at index + 0.5)."""
    import highdicom as hd

    img = random_labels(6, (70, 90))
    orientation = (0.6, 0.8, 0.0, -0.8, 0.6, 0.0)
    geo = SlideGeometry(spacing=(0.0004, 0.0003), origin=(5.0, 7.5), orientation=orientation)
    _, objs = measure_slide_labels(img, geo, strip_rows=11)
    t = hd.spatial.ImageToReferenceTransformer(
        image_position=(5.0, 7.5, 0.0), image_orientation=orientation,
        pixel_spacing=(0.0004, 0.0003))
    want = t(np.stack([objs.centroid_col + 0.5, objs.centroid_row + 0.5], axis=1))
    np.testing.assert_allclose(objs.x_mm, want[:, 0], atol=1e-12)
    np.testing.assert_allclose(objs.y_mm, want[:, 1], atol=1e-12)


def test_bench_slide_tiff_read_tilewise_and_measured(tmp_path):
    """The benchmark's synthetic slide: tiles read region by region equal tifffile's whole
    read, and every generated cell is one object of its class."""
    import sys

    import tifffile

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "bench"))
    import bench_slide

    path = tmp_path / "s.tif"
    truth = bench_slide.make_slide(path, 1500, 400, seed=3)
    src = bench_slide.TiffTiles(path)
    whole = tifffile.imread(path)
    assert src.shape == whole.shape == (1500, 1500)
    for r0, r1, c0, c1 in ((0, 1500, 0, 1500), (100, 700, 37, 1499), (255, 257, 0, 3)):
        np.testing.assert_array_equal(src.read(r0, r1, c0, c1), whole[r0:r1, c0:c1])
    summary, objs = measure_slide_labels(src, strip_rows=256)
    assert {str(s["segment"]): {"objects": s["objects"], "area_px": s["area_px"]}
            for s in summary} == truth
    check_same(whole, 8, 300)


def test_write_measurements_atomic_and_never_over_an_input(tmp_path):
    from segbridge.slide.measure import write_measurements

    img = random_labels(8, (30, 30))
    geo = SlideGeometry(spacing=(0.001, 0.002))
    summary, objs = measure_slide_labels(img, geo)
    label_file = tmp_path / "labels.tif"
    label_file.write_bytes(b"input")
    write_measurements(summary, objs, geo, connectivity=8, csv_path=tmp_path / "o.csv",
                       json_path=tmp_path / "o.json", inputs=[label_file])
    assert json.loads((tmp_path / "o.json").read_text())["segments"] == summary
    assert (tmp_path / "o.csv").read_text() == objects_csv(objs)
    with pytest.raises(InvalidInputError, match="input of this command"):
        write_measurements(summary, objs, geo, connectivity=8, csv_path=tmp_path / "x.csv",
                           json_path=label_file, inputs=[label_file])
    assert label_file.read_bytes() == b"input" and not (tmp_path / "x.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif", "o.csv", "o.json"]
