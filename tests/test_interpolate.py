"""segbridge interpolate: agreement with ITK's MorphologicalContourInterpolator (the real
filter from PyPI, never skipped), analytic shapes, annotated slices unchanged bit for bit,
overlap kept, and the command line (NIfTI in and out; bad input -> one line, no output)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interp_shapes import SHAPE, cases, cone, dice, disc, itk_many, sphere

import segbridge as sb
from segbridge.errors import InvalidInputError, UnsupportedError
from segbridge.interpolation import choose_axis, interpolate_mask

SEGBRIDGE = str(Path(sys.executable).parent / "segbridge")
CASES = cases()


@pytest.fixture(scope="module")
def itk():
    """ITK's output for every job the tests compare with, computed in one child process."""
    jobs = {f"{name}/{n}": (m, 0, True) for name, segs in CASES.items() for n, m in segs.items()}
    for axis in (1, 2):
        jobs[f"islands axis {axis}"] = (np.moveaxis(CASES["three islands"][1], 0, axis), axis,
                                        True)
    jobs["split, ITK's own slices"] = (CASES["split"][1], 0, False)
    return itk_many(jobs)


def grid(shape=SHAPE, spacing=(1.0, 1.0, 1.0)):
    return sb.Grid(shape, (0.0, 0.0, 0.0), spacing, np.eye(3))


@pytest.mark.parametrize("name", list(CASES))
def test_morphological_agrees_with_itk(name, itk):
    """Dice >= 0.99 per segment against ITK's filter, each segment on its own (ITK given the
    same annotated slices; its defaults otherwise)."""
    for n, mask in CASES[name].items():
        ours = interpolate_mask(mask, 0)
        ref = itk[f"{name}/{n}"]
        assert ref.sum() > mask.sum()  # ITK did fill something
        assert dice(ours, ref) >= 0.99, (name, n, dice(ours, ref))


def test_agrees_with_itk_along_rows_and_columns(itk):
    """The same shapes stacked along y and along x (ITK's axes 1 and 0)."""
    mask = CASES["three islands"][1]
    for axis in (1, 2):
        m = np.moveaxis(mask, 0, axis)
        ours = interpolate_mask(m, axis)
        assert dice(ours, itk[f"islands axis {axis}"]) >= 0.99
        assert choose_axis(m) == axis


def test_itk_own_slice_detection_on_isolated_discs(itk):
    """Without custom slice positions ITK finds the same annotated slices when every one is a
    real disc and no two touch: the results agree too."""
    mask = CASES["split"][1]
    assert dice(interpolate_mask(mask, 0), itk["split, ITK's own slices"]) >= 0.99


@pytest.mark.parametrize("method", ["morphological", "linear-sdf"])
def test_annotated_slices_unchanged_and_gaps_filled(method):
    for name, segs in CASES.items():
        for mask in segs.values():
            out = interpolate_mask(mask, 0, method)
            slices = np.flatnonzero(mask.any(axis=(1, 2)))
            np.testing.assert_array_equal(out[slices], mask[slices], err_msg=name)
            outside = np.ones(mask.shape[0], bool)
            outside[slices[0]:slices[-1] + 1] = False
            assert not out[outside].any(), name  # nothing beyond the first / last slice
            gaps = [k for k in range(slices[0], slices[-1]) if k not in set(slices)]
            assert all(out[k].any() for k in gaps), name


def test_cone_and_sphere_volumes():
    """The cone from its two end discs and the sphere from every 4th slice: volume errors
    against the voxelised truth (reported by bench_interpolate.py --shapes). The linear
    signed-distance blend is the accurate one on a cone (radius linear in z); the morphological
    median, as ITK's, grows the intersection by a balanced distance and overfills it."""
    sparse, truth, analytic = cone()
    sdf = interpolate_mask(sparse, 0, "linear-sdf")
    mor = interpolate_mask(sparse, 0, "morphological")
    assert abs(sdf.sum() / truth.sum() - 1) < 0.02
    assert abs(truth.sum() / analytic - 1) < 0.06  # the voxelised cone is the cone
    assert dice(sdf, truth) > 0.98
    assert mor.sum() > truth.sum()  # ITK's behaviour, kept (it is the reference)
    sparse, truth, analytic = sphere()
    for method in ("morphological", "linear-sdf"):
        out = interpolate_mask(sparse, 0, method)
        assert abs(out.sum() / truth.sum() - 1) < 0.06, method
        assert dice(out, truth) > 0.96, method


def test_interpolate_api_keeps_overlap_and_other_segments():
    """Two overlapping segments and one left out: each is filled on its own, the overlap
    survives in two layers, the unselected segment is bit for bit the same."""
    segs = CASES["moving + growing, overlapping"]
    third = np.zeros(SHAPE, bool)
    third[10, 5:9, 5:9] = third[30, 5:9, 5:9] = True
    seg = sb.Segmentation.from_masks(grid(), [(sb.Segment(1, "moving"), segs[1]),
                                              (sb.Segment(2, "growing"), segs[2]),
                                              (sb.Segment(5, "left alone"), third)])
    out = sb.interpolate(seg, segments=[1, 2])
    assert [s.label for s in out.segments] == ["moving", "growing", "left alone"]
    for n in (1, 2):
        np.testing.assert_array_equal(out.mask(n), interpolate_mask(segs[n], 0))
    np.testing.assert_array_equal(out.mask(5), third)
    assert (out.mask(1) & out.mask(2)).sum() > (segs[1] & segs[2]).sum() > 0
    assert out.has_overlap()
    assert any("segment 1 (moving)" in n and "along z" in n for n in seg.report.notes)


def test_auto_axis_is_per_segment():
    """One segment drawn on axial slices, one on sagittal ones: each along its own axis."""
    a = np.zeros(SHAPE, bool)
    a[5] = disc(SHAPE[1:], 30, 30, 10)
    a[15] = disc(SHAPE[1:], 30, 30, 14)
    b = np.zeros(SHAPE, bool)
    plane = disc(SHAPE[:2], 20, 60, 8)
    b[:, :, 60] = plane
    b[:, :, 70] = plane
    seg = sb.Segmentation.from_masks(grid(), [(sb.Segment(1), a), (sb.Segment(2), b)])
    out = sb.interpolate(seg)
    assert out.mask(1)[6:15].any(axis=(1, 2)).all()
    assert out.mask(2)[:, :, 61:70].any(axis=(0, 1)).all()
    np.testing.assert_array_equal(out.mask(2)[:, :, 60], plane)
    with pytest.raises(InvalidInputError, match="axis"):
        sb.interpolate(seg, axis="w")
    with pytest.raises(InvalidInputError, match="method"):
        sb.interpolate(seg, method="spline")
    with pytest.raises(InvalidInputError, match="no segment number 9"):
        sb.interpolate(seg, segments=[9])


def test_fractional_refused():
    frac = {1: np.zeros(SHAPE, np.uint8)}
    frac[1][3, 4, 4] = 200
    seg = sb.Segmentation(grid(), [sb.Segment(1)], fractional=frac)
    with pytest.raises(UnsupportedError, match="fractional"):
        sb.interpolate(seg)


def test_linear_sdf_uses_pixel_spacing():
    """An ellipse on 0.5 x 2 mm pixels blends as in millimetres: half-way between a disc of
    radius 8 mm and one of 16 mm, the radius is 12 mm along both axes."""
    g = grid((21, 80, 40), (1.0, 0.5, 2.0))
    mask = np.zeros(g.shape, bool)
    yy, xx = np.mgrid[:80, :40]
    for z, r in ((0, 8.0), (20, 16.0)):
        mask[z] = ((yy - 40) * 0.5) ** 2 + ((xx - 20) * 2.0) ** 2 <= r * r
    out = interpolate_mask(mask, 0, "linear-sdf", (1.0, 0.5, 2.0))
    mid = out[10]
    rows = np.flatnonzero(mid.any(axis=1))
    cols = np.flatnonzero(mid.any(axis=0))
    assert abs((rows[-1] - rows[0]) * 0.5 / 2 - 12) <= 1.0
    assert abs((cols[-1] - cols[0]) * 2.0 / 2 - 12) <= 2.0


# -- the command line ---------------------------------------------------------------------------
def test_islands_numbered_as_scipy_numbers_them():
    """label_slices (numpy only) gives every slice's 4-connected islands the numbers
    scipy.ndimage.label gives them, restarted at 1 per slice (raster order)."""
    from scipy import ndimage

    from segbridge.interpolation.morphological import label_slices

    cross = np.zeros((3, 3, 3), bool)
    cross[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    rng = np.random.default_rng(16)
    stacks = [rng.random((int(rng.integers(1, 4)), int(rng.integers(1, 25)),
                          int(rng.integers(1, 25)))) < rng.uniform(0.2, 0.8)
              for _ in range(300)]
    stacks += [m[m.any(axis=(1, 2))] for segs in CASES.values() for m in segs.values()]
    for stack in stacks:
        ref, _ = ndimage.label(stack, structure=cross)
        for k in range(stack.shape[0]):  # scipy numbers across slices: restart at 1
            if ref[k].any():
                ref[k] = np.where(ref[k] > 0, ref[k] - (ref[k][ref[k] > 0].min() - 1), 0)
        assert np.array_equal(label_slices(stack), ref)


def test_morphological_path_does_not_import_scipy():
    """scipy's import (about 0.35 s) is left to linear-sdf."""
    code = ("import sys, numpy as np, segbridge as sb\n"
            "m = np.zeros((5, 8, 8), np.uint8); m[0, 2:6, 2:6] = m[4, 3:6, 2:5] = 1\n"
            "g = sb.Grid(m.shape, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.eye(3))\n"
            "out = sb.interpolate(sb.Segmentation.from_labelmap(g, m))\n"
            "assert out.mask(1)[1:4].any()\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] == 'scipy'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def run(*args):
    return subprocess.run([SEGBRIDGE, *map(str, args)], capture_output=True, text=True)


def write_nifti(path: Path, labels: np.ndarray) -> None:
    seg = sb.Segmentation.from_labelmap(grid(labels.shape), labels)
    sb.write(seg, path)


@pytest.mark.parametrize("method", ["morphological", "linear-sdf"])
def test_cli_nifti_in_nifti_out(tmp_path, method):
    labels = np.zeros(SHAPE, np.uint8)
    labels[CASES["three islands"][1]] = 3
    labels[CASES["holes"][1] & (labels == 0)] = 4
    src = tmp_path / "drawn.nii.gz"
    write_nifti(src, labels)
    out = tmp_path / "filled.nii.gz"
    res = run("interpolate", src, "-o", out, "--method", method, "--segments", "3")
    assert res.returncode == 0, res.stderr
    assert "segment 3" in res.stdout and f"wrote {out}" in res.stdout
    back = sb.read(out)
    want = interpolate_mask(sb.read(src).mask(3), 0, method)
    np.testing.assert_array_equal(back.mask(3), want)
    np.testing.assert_array_equal(back.mask(4), labels == 4)  # not selected: unchanged


def test_cli_bad_input_one_line_no_output(tmp_path):
    labels = np.zeros(SHAPE, np.uint8)
    labels[4, 10:20, 10:20] = labels[9, 10:20, 10:20] = 1
    src = tmp_path / "in.nii.gz"
    write_nifti(src, labels)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(src.read_bytes()[:300])
    for args, needle in (
            ([broken, "-o", out_dir / "x.nii.gz"], "broken.nii.gz"),
            ([src, "-o", out_dir / "x.nii.gz", "--segments", "7"], "7"),
            ([src, "-o", src], "is an input of this command"),
            ([tmp_path / "missing.nii.gz", "-o", out_dir / "x.nii.gz"], "missing.nii.gz")):
        res = run("interpolate", *args)
        assert res.returncode != 0, args
        err = res.stderr.strip()
        assert "Traceback" not in res.stderr and len(err.splitlines()) == 1, err
        assert needle in err, err
        assert list(out_dir.iterdir()) == [], args
    res = run("interpolate", src, "-o", out_dir / "x.nii.gz", "--axis", "w")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert sb.read(src).mask(1).sum() == 200  # the input is untouched


def test_nothing_to_interpolate_is_said():
    empty = sb.Segmentation.from_labelmap(grid(), np.zeros(SHAPE, np.uint8), [])
    r = sb.Report()
    sb.interpolate(empty, report=r)
    assert any("nothing to interpolate: the segmentation has no segments" in w
               for w in r.warnings)
    one = sb.Segmentation.from_labelmap(grid(), np.zeros(SHAPE, np.uint8), [sb.Segment(1, "a")])
    r = sb.Report()
    sb.interpolate(one, report=r)
    assert any("the segments asked for are empty" in w for w in r.warnings)
