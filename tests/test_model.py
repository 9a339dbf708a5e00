"""The model on random grids, and round trips through every writer, with nothing but pip.

Part of the fast tier (``python -m pytest -q -m unit``): synthetic series only, no
``../shared/data`` and no external tools. The independent reader is nibabel (NIfTI) and
pydicom (SEG pixel data), never segbridge's own reader alone.
"""

from __future__ import annotations

import numpy as np
import pydicom
from conftest import rotation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segbridge as sb
from segbridge.geometry import Grid
from segbridge.synthetic import write_ct_series


def grids():
    return st.builds(
        lambda nz, ny, nx, a, b, c, dz, dy, dx: Grid(
            (nz, ny, nx), np.array([-40.5, 12.25, 100.0]), (dz, dy, dx), rotation(a, b, c),
            "1.2.3.4"),
        st.integers(1, 5), st.integers(3, 21), st.integers(3, 21),
        st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3),
        st.sampled_from([0.5, 1.0, 2.5]), st.sampled_from([0.6, 1.0]),
        st.sampled_from([0.7, 1.0]))


@settings(max_examples=30, deadline=None)
@given(grid=grids(), n=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_masks_survive_layer_packing(grid, n, seed):
    """Overlapping masks go into layers; every mask comes back exactly."""
    rng = np.random.default_rng(seed)
    masks = [rng.random(grid.shape) < 0.3 for _ in range(n)]
    seg = sb.Segmentation.from_masks(grid, [(sb.Segment(i + 1, f"s{i}"), m)
                                            for i, m in enumerate(masks)])
    assert seg.numbers == list(range(1, n + 1))
    for i, m in enumerate(masks):
        np.testing.assert_array_equal(seg.mask(i + 1), m)
    assert seg.has_overlap() == any((a & b).any() for i, a in enumerate(masks)
                                    for b in masks[i + 1:])
    assert seg.voxel_counts() == {i + 1: int(m.sum()) for i, m in enumerate(masks)}



@settings(max_examples=60, deadline=None)
@given(nz=st.integers(1, 6), ny=st.integers(1, 13), nx=st.integers(1, 40),
       dtype=st.sampled_from([np.uint8, np.uint16]), density=st.sampled_from([0.02, 0.3, 0.9]),
       sparse=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_bounding_boxes_equal_each_segments_own_box(nz, ny, nx, dtype, density, sparse, seed):
    """The one-pass row-run boxes equal each mask's own extent (np.argwhere), in every layer,
    for widths that are and are not whole 8-byte words, runs touching row ends, empty rows,
    empty slices and values that no voxel holds."""
    rng = np.random.default_rng(seed)
    top = 300 if dtype == np.uint16 else 9
    layers = []
    for _ in range(2):
        a = ((rng.random((nz, ny, nx)) < density) * rng.integers(1, top, (nz, ny, nx))).astype(dtype)
        if sparse:
            a[rng.random(nz) < 0.5] = 0
            a[:, rng.random(ny) < 0.5] = 0
        layers.append(a)
    bindings = {}
    for li in range(len(layers)):
        for v in range(1, top):
            bindings[li * 1000 + v] = (li, v)
    grid = Grid((nz, ny, nx), np.zeros(3), (1.0, 1.0, 1.0), np.eye(3))
    seg = sb.Segmentation(grid, [sb.Segment(n, f"s{n}") for n in sorted(bindings)],
                          layers=layers, bindings=bindings)
    boxes = seg.bounding_boxes()
    for n, (li, v) in bindings.items():
        where = np.argwhere(layers[li] == v)
        if where.size == 0:
            assert boxes[n] is None
        else:
            lo, hi = where.min(axis=0), where.max(axis=0) + 1
            assert boxes[n] == tuple(slice(int(a), int(b))
                                     for a, b in zip(lo, hi, strict=True)), n


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grid=grids(), seed=st.integers(0, 2**31 - 1))
def test_nifti_round_trip_against_nibabel(tmp_path, grid, seed):
    """Our NIfTI writer, read back by nibabel: the same voxels at the same LPS positions."""
    import nibabel as nib

    from segbridge.geometry import flip_lps_ras

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, grid.shape).astype(np.uint8)
    seg = sb.from_array(labels, grid=grid)
    out = tmp_path / f"x{seed}.nii.gz"
    sb.write(seg, out)
    img = nib.load(out)
    np.testing.assert_allclose(img.affine, flip_lps_ras(grid.affine), atol=1e-4)
    back = np.transpose(np.asanyarray(img.dataobj), (2, 1, 0))
    np.testing.assert_array_equal(back, labels)
    again = sb.read(out)
    for n in seg.numbers:
        np.testing.assert_array_equal(again.mask(n), seg.mask(n))


def test_seg_frames_against_pydicom(tmp_path):
    """A BINARY SEG of overlapping segments on a synthetic CT: pydicom's pixel array, placed by
    the per-frame source references, equals the masks."""
    grid = Grid((4, 16, 24), np.array([0.0, 0.0, 0.0]), (2.0, 0.8, 0.8), np.eye(3), "1.2.3")
    write_ct_series(tmp_path / "ct", np.zeros(grid.shape, np.int16), grid)
    ref = sb.read_series(tmp_path / "ct")
    a = np.zeros(grid.shape, bool)
    a[1:3, 4:10, 5:15] = True
    b = np.zeros(grid.shape, bool)
    b[2:4, 8:14, 10:20] = True
    seg = sb.from_array(np.stack([a, b]), ref, segments=[sb.Segment(1, "a"), sb.Segment(2, "b")])
    out = tmp_path / "s.dcm"
    files = sb.write(seg, out, type="binary", profile="slicer", reference=ref)
    assert files == [out]
    ds = pydicom.dcmread(out)
    frames = ds.pixel_array.reshape(-1, grid.shape[1], grid.shape[2])
    uids = [i.sop_instance_uid for i in ref.source.instances]
    got = {1: np.zeros(grid.shape, bool), 2: np.zeros(grid.shape, bool)}
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        src = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        got[number][uids.index(src)] |= frames[k].astype(bool)
    np.testing.assert_array_equal(got[1], a)
    np.testing.assert_array_equal(got[2], b)


def test_label_values_no_segment_describes_are_kept_and_reported():
    """from_array / from_labelmap with a subset of segments: the other values become
    "Segment N" (never an undescribed value in a label-map SEG), with a warning."""
    import numpy as np

    import segbridge as sb

    grid = sb.Grid((2, 3, 4), origin=np.zeros(3), spacing=np.ones(3), direction=np.eye(3))
    labels = np.zeros(grid.shape, np.uint8)
    labels[0, 0, 0], labels[1, 2, 3] = 1, 7
    seg = sb.from_array(labels, grid=grid, segments=[sb.Segment(1, "liver")])
    assert [(s.number, s.label) for s in seg.segments] == [(1, "liver"), (7, "Segment 7")]
    assert int(seg.mask(7).sum()) == 1 and int(seg.mask(1).sum()) == 1
    assert any("described by no segment" in w for w in seg.report.warnings)
