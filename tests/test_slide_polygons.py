"""Label images -> polygons along pixel edges: rasterised back with the centre rule by an
independent point-in-polygon test (matplotlib's Path), every polygon is one 4-connected
object (scipy's labelling), holes inside, orientation as RFC 7946 asks, any band height."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MPath
from scipy import ndimage

from segbridge.slide.polygons import _area, polygons_of
from segbridge.slide.tiles import ArrayTiles


def raster(poly: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre is inside the outer ring and outside every hole."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    pts = np.c_[xx.ravel() + 0.5, yy.ravel() + 0.5]
    inside = MPath(np.vstack([poly[0], poly[0][:1]])).contains_points(pts)
    for h in poly[1:]:
        inside &= ~MPath(np.vstack([h, h[:1]])).contains_points(pts)
    return inside.reshape(shape)


def check(labels: np.ndarray, value: int, band_rows: int) -> list:
    polys = polygons_of(ArrayTiles(labels), value, band_rows=band_rows)
    lab, n = ndimage.label(labels == value)  # 4-connected objects
    assert len(polys) == n
    total = np.zeros(labels.shape, int)
    for p in polys:
        r = raster(p, labels.shape)
        comp = np.unique(lab[r])
        assert comp.size == 1 and comp[0] > 0 and (lab == comp[0]).sum() == r.sum()
        assert _area(p[0]) > 0 and all(_area(h) < 0 for h in p[1:])
        # a vertex only where the ring turns
        for ring in p:
            d = np.diff(np.vstack([ring, ring[:1], ring[1:2]]), axis=0)
            turn = d[:-1, 0] * d[1:, 1] - d[:-1, 1] * d[1:, 0]
            assert (turn != 0).all()
        total += r
    np.testing.assert_array_equal(total, labels == value)
    return polys


@pytest.mark.parametrize("seed", range(40))
def test_random_label_images_come_back_pixel_for_pixel(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 30, 2))
    density = [0.2, 0.5, 0.8][seed % 3]
    labels = ((rng.random((h, w)) < density) * rng.integers(1, 3, (h, w))).astype(np.uint8)
    for value in (1, 2):
        check(labels, value, band_rows=int(rng.integers(1, 9)))


def test_ring_with_hole_island_in_hole_and_corner_touching_pixels():
    labels = np.zeros((12, 12), np.uint8)
    labels[1:10, 1:10] = 1
    labels[3:8, 3:8] = 0  # hole
    labels[5, 5] = 1  # island in the hole: its own polygon
    labels[10, 10] = 1  # touches the ring at a corner only: its own polygon
    polys = check(labels, 1, band_rows=4)
    assert sorted(len(p) for p in polys) == [1, 1, 2]
    ring = next(p for p in polys if len(p) == 2)
    assert sorted(map(tuple, ring[0].tolist())) == [(1, 1), (1, 10), (10, 1), (10, 10)]
    assert sorted(map(tuple, ring[1].tolist())) == [(3, 3), (3, 8), (8, 3), (8, 8)]


def test_objects_crossing_bands_are_one_polygon():
    labels = np.zeros((50, 20), np.uint8)
    labels[3:47, 5:9] = 1
    labels[20:30, 2:15] = 1
    (poly,) = check(labels, 1, band_rows=7)
    assert len(poly) == 1 and len(poly[0]) == 12


@pytest.mark.parametrize("seed", range(6))
def test_levels_sampled_while_the_base_is_read_equal_downsampled_tiles(seed):
    """LevelTee (pyramid levels filled during the base level's pass) equals DownsampledTiles
    (highdicom's nearest rule) for any band height; incomplete reads are reported."""
    from segbridge.slide.tiles import DownsampledTiles, LevelTee, read_all

    rng = np.random.default_rng(seed)
    rows, cols = (int(v) for v in rng.integers(20, 200, 2))
    src = ArrayTiles(rng.integers(0, 5, (rows, cols)).astype(np.uint8))
    shapes = [(max(1, int(rows / f)), max(1, int(cols / f))) for f in (2, 3.5, 8)]
    tee = LevelTee(src, shapes)
    band = int(rng.integers(1, 40))
    for r in range(0, rows, band):
        np.testing.assert_array_equal(tee.read(r, min(rows, r + band), 0, cols),
                                      src.read(r, min(rows, r + band), 0, cols))
    for k, shape in enumerate(shapes):
        assert tee.complete(k)
        np.testing.assert_array_equal(tee.levels[k], read_all(DownsampledTiles(src, shape=shape)))
    partial = LevelTee(src, shapes)
    partial.read(0, rows // 2, 0, cols)
    partial.read(rows // 2, rows, 0, cols - 1)  # not the full width: not sampled
    assert not any(partial.complete(k) for k in range(len(shapes)))
