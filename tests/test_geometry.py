"""Geometry: affines, LPS/RAS, slice stacks, exact re-indexing between grids."""

import numpy as np
import pytest
from conftest import rotation
from hypothesis import given, settings
from hypothesis import strategies as st

from segbridge.errors import GeometryMismatchError, Report
from segbridge.geometry import Grid, align_array, exact_index_map, flip_lps_ras

grids = st.builds(
    lambda shape, sp, ang, org: Grid(shape, org, sp, rotation(*ang)),
    st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(*[st.floats(0.3, 5.0)] * 3),
    st.tuples(*[st.floats(-np.pi, np.pi)] * 3),
    st.tuples(*[st.floats(-300, 300)] * 3),
)


def test_affine_follows_dicom_conventions():
    g = Grid((3, 4, 5), (10, 20, 30), (2.0, 0.5, 0.25), np.eye(3))
    # column index x moves along the row direction by dx; row index y by dy; slice by dz
    np.testing.assert_allclose(g.index_to_lps([1, 0, 0]), [10.25, 20, 30])
    np.testing.assert_allclose(g.index_to_lps([0, 1, 0]), [10, 20.5, 30])
    np.testing.assert_allclose(g.index_to_lps([0, 0, 1]), [10, 20, 32])
    assert g.pixel_spacing == [0.5, 0.25]
    assert g.image_orientation == [1, 0, 0, 0, 1, 0]


def test_lps_ras_flip_is_an_involution():
    a = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_array_equal(flip_lps_ras(flip_lps_ras(a)), a)
    np.testing.assert_array_equal(flip_lps_ras(np.eye(4))[:3, :3], np.diag([-1, -1, 1]))


@settings(max_examples=60, deadline=None)
@given(grids, st.lists(st.tuples(*[st.floats(-3, 10)] * 3), min_size=1, max_size=5))
def test_index_lps_round_trip(grid, pts):
    pts = np.array(pts)
    np.testing.assert_allclose(grid.lps_to_index(grid.index_to_lps(pts)), pts, atol=1e-6)


def test_from_slices_regular_uneven_and_tilted():
    iop = [1, 0, 0, 0, 1, 0]
    pos = np.array([[0, 0, z] for z in (0, 1.25, 2.5, 3.75)], float)
    g = Grid.from_slices(pos, iop, [0.5, 0.5], 8, 8)
    assert g.is_regular and g.spacing[0] == pytest.approx(1.25)
    r = Report()
    gap = np.array([[0, 0, z] for z in (-99.48, 103.02, 104.27, 105.52)], float)
    g2 = Grid.from_slices(gap, iop, [0.5, 0.5], 8, 8, report=r)
    assert not g2.is_regular and "not evenly spaced" in r.warnings[0]
    np.testing.assert_allclose(g2.slice_positions(), gap)
    r3 = Report()
    tilt = np.array([[0, 0.1 * k, k] for k in range(4)], float)
    g3 = Grid.from_slices(tilt, iop, [0.5, 0.5], 8, 8, report=r3)
    assert "gantry tilt" in r3.warnings[0]
    np.testing.assert_allclose(g3.slice_positions(), tilt, atol=1e-9)
    with pytest.raises(GeometryMismatchError):
        Grid.from_slices(np.array([[0, 0, 1], [0, 0, 1.0]]), iop, [1, 1], 2, 2)


@settings(max_examples=60, deadline=None)
@given(grids, st.tuples(st.booleans(), st.booleans(), st.booleans()),
       st.permutations([0, 1, 2]))
def test_exact_map_undoes_flips_and_permutations(grid, flips, perm):
    """The same lattice stored with axes flipped/permuted maps back voxel for voxel."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 5, grid.shape).astype(np.uint8)
    # build the other grid: flip array axes (zyx) then permute them
    a = grid.affine.copy()
    shape_xyz = list(grid.shape[::-1])
    for ax_xyz, f in enumerate(flips[::-1]):  # flips given in zyx order
        if f:
            a[:3, 3] += a[:3, ax_xyz] * (shape_xyz[ax_xyz] - 1)
            a[:3, ax_xyz] *= -1
    flipped = data[tuple(slice(None, None, -1) if f else slice(None) for f in flips)]
    perm_xyz = [2 - p for p in perm[::-1]]
    a2 = a.copy()
    for new_ax in range(3):
        a2[:3, new_ax] = a[:3, perm_xyz[new_ax]]
    other = Grid.from_affine(a2, tuple(np.transpose(flipped, perm).shape))
    moved = np.transpose(flipped, perm)
    back = align_array(moved, other, grid)
    np.testing.assert_array_equal(back, data)


def test_align_refuses_other_grid_and_resamples_when_asked():
    g = Grid((2, 4, 4), (0, 0, 0), (1, 1, 1), np.eye(3))
    shifted = g.copy(origin=np.array([0.5, 0, 0]))
    arr = np.ones(g.shape, np.uint8)
    with pytest.raises(GeometryMismatchError) as e:
        align_array(arr, shifted, g)
    assert "--resample" in str(e.value) and "origin (0.5,0,0)" in str(e.value)
    r = Report()
    out = align_array(arr, shifted, g, resample=True, report=r)
    assert out.shape == g.shape and "resampled" in r.warnings[0]


def test_cropped_grid_is_pasted_exactly_and_overflow_is_an_error():
    g = Grid((3, 6, 6), (0, 0, 0), (1, 1, 1), np.eye(3))
    crop = Grid((2, 2, 3), (2, 1, 1), (1, 1, 1), np.eye(3))  # x0=2, y0=1, z0=1
    arr = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) + 1
    out = align_array(arr, crop, g)
    np.testing.assert_array_equal(out[1:3, 1:3, 2:5], arr)
    assert out.sum() == arr.sum()
    outside = Grid((2, 2, 3), (5, 1, 1), (1, 1, 1), np.eye(3))
    with pytest.raises(GeometryMismatchError, match="outside the reference grid"):
        align_array(arr, outside, g)


def test_tolerance_accepts_float32_noise():
    g = Grid((4, 5, 6), (-804.5, 10.25, 3.5), (2.0, 0.976, 0.976), np.eye(3))
    noisy = g.copy(origin=g.origin.astype(np.float32).astype(float) + 1e-4)
    assert exact_index_map(noisy, g) is not None
    assert g.same_as(noisy)


@pytest.mark.parametrize("cols,needle", [
    (np.diag([0.7, 1e-30, 2.5]), "every axis needs at least"),  # found by the fuzzer
    (np.diag([0.7, 0.0, 2.5]), "every axis needs at least"),
    (np.array([[1.0, 1.0, 0], [0, 1e-9, 0], [0, 0, 1.0]]), "are .nearly. parallel"),
    (np.diag([0.7, np.nan, 2.5]), "NaN or infinite"),
])
def test_grid_from_a_degenerate_affine_is_refused(cols, needle):
    a = np.eye(4)
    a[:3, :3] = cols
    with pytest.raises(GeometryMismatchError, match=needle) as err:
        Grid.from_affine(a, (3, 4, 5), what="x.nii.gz: NIfTI")
    assert str(err.value).startswith("x.nii.gz: NIfTI: ")
