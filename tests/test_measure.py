"""Statistics, bidirectional axes, SR export and previews (issue: measurements).

References are written here with plain numpy and read the inputs with other libraries
(pydicom for images, highdicom for SEG masks, nibabel for NIfTI), so a shared bug cannot hide.
Cornerstone3D's own calculator and bidirectional search run in Node for the "same numbers as
OHIF" checks.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI, TOTALSEG, dciodvfy_errors, rotation
from interop_node import available as node_unavailable
from interop_node import cornerstone_measure

import segbridge as sb
from segbridge.errors import GeometryMismatchError, InvalidInputError, Report
from segbridge.geometry import Grid
from segbridge.measure import job
from segbridge.measure.bidirectional import boundary_points, largest_bidirectional, measure_all
from segbridge.measure.stats import compute_stats, parse_segment_list
from segbridge.model import Segment, Segmentation
from segbridge.synthetic import ellipsoid, write_ct_series, write_pet_series


@pytest.fixture
def cornerstone_harness():
    """The Node harness is a required oracle (scripts/test.sh installs it): missing fails."""
    why = node_unavailable()
    assert why is None, f"Cornerstone harness: {why} (bash scripts/test.sh installs it)"


needs_node = pytest.mark.usefixtures("cornerstone_harness")


# --- independent readers -------------------------------------------------------------------
def read_images(folder):
    """pydicom only: real-world values [z, y, x] (float64), LPS of every voxel, datasets."""
    dss = [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if p.is_file()]
    dss = [d for d in dss if "PixelData" in d and d.get("Modality") in ("CT", "PT", "MR")]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    vals = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
                     for d in dss]).astype(np.float64)
    rows, cols = vals.shape[1:]
    dr, dc = (float(v) for v in dss[0].PixelSpacing)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    lps = np.stack([np.array(d.ImagePositionPatient, float)[None, None, :]
                    + c[..., None] * dc * iop[:3] + r[..., None] * dr * iop[3:]
                    for d in dss])
    gap = abs(np.dot(np.subtract(dss[1].ImagePositionPatient, dss[0].ImagePositionPatient),
                     normal)) if len(dss) > 1 else float(dss[0].SliceThickness)
    return vals, lps, dss, dr * dc * gap


def highdicom_masks(seg_path, dss):
    """{segment number: mask [z, y, x]} read by highdicom, in the image order of ``dss``."""
    seg = hd.seg.segread(str(seg_path))
    uids = [str(d.SOPInstanceUID) for d in dss]
    referenced = {str(r.ReferencedSOPInstanceUID) for r in
                  seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    keep = [u for u in uids if u in referenced]
    numbers = [int(s.SegmentNumber) for s in seg.SegmentSequence]
    arr = seg.get_pixels_by_source_instance(keep, segment_numbers=numbers,
                                            skip_overlap_checks=True,
                                            ignore_spatial_locations=True)
    out = {}
    for j, n in enumerate(numbers):
        m = np.zeros((len(dss), *arr.shape[1:3]), bool)
        for i, u in enumerate(keep):
            m[uids.index(u)] = arr[i, ..., j] > 0
        out[n] = m
    return out


def reference_stats(values: np.ndarray, lps: np.ndarray) -> dict:
    """Straightforward definitions (population moments, numpy percentiles)."""
    v = np.asarray(values, np.float64)
    mean = v.mean()
    var = ((v - mean) ** 2).mean()
    return {
        "count": v.size, "mean": mean, "std": math.sqrt(var), "min": v.min(), "max": v.max(),
        "median": np.median(v), "p05": np.percentile(v, 5), "p25": np.percentile(v, 25),
        "p75": np.percentile(v, 75), "p95": np.percentile(v, 95),
        "skewness": ((v - mean) ** 3).mean() / var ** 1.5 if var else 0.0,
        "kurtosis": ((v - mean) ** 4).mean() / var ** 2 - 3 if var else 0.0,
        "center": lps.mean(axis=0), "min_lps": lps[np.argmin(v)], "max_lps": lps[np.argmax(v)],
    }


def assert_stats_equal(st, ref: dict, voxel_mm3: float, rtol: float = 1e-9) -> None:
    assert st.count == ref["count"]
    assert st.volume_mm3 == pytest.approx(ref["count"] * voxel_mm3, rel=1e-6)
    for key in ("mean", "std", "min", "max", "median", "skewness", "kurtosis"):
        assert getattr(st, key) == pytest.approx(ref[key], rel=rtol, abs=1e-9), key
    for p in (5, 25, 75, 95):
        assert st.percentiles[p] == pytest.approx(ref[f"p{p:02d}"], rel=rtol, abs=1e-9)
    np.testing.assert_allclose(st.center_lps, ref["center"], atol=1e-6)
    np.testing.assert_allclose(st.min_lps, ref["min_lps"], atol=1e-6)
    np.testing.assert_allclose(st.max_lps, ref["max_lps"], atol=1e-6)


# --- statistics on real data ---------------------------------------------------------------
@pytest.mark.parametrize("seg_file", ["liver.dcm", "partial_overlaps.dcm"])
def test_stats_equal_numpy_reference_on_dcmqi_ct(seg_file):
    hu, lps, dss, voxel = read_images(CT3)
    masks = highdicom_masks(DCMQI / seg_file, dss)
    loaded = job.load([DCMQI / seg_file], CT3)
    stats = {s.number: s for s in compute_stats(loaded.seg, loaded.image)}
    assert set(stats) == set(masks)
    for n, m in masks.items():
        assert stats[n].unit.label == "HU"
        assert_stats_equal(stats[n], reference_stats(hu[m], lps[m]), voxel)
    if seg_file == "partial_overlaps.dcm":  # overlapping voxels count in every segment
        union = np.any(list(masks.values()), axis=0).sum()
        assert sum(s.count for s in stats.values()) > union
        (both,) = compute_stats(loaded.seg, loaded.image, mode="collective")
        assert both.count == union


def test_stats_equal_numpy_reference_on_totalsegmentator():
    """31 labels of a NIfTI on a JPEG 2000 CT; the NIfTI is mapped through world coordinates
    here (RAS affine), independently of segbridge's re-indexing."""
    folder = TOTALSEG / "example_ct_dicom"
    hu, lps, _, voxel = read_images(folder)
    img = nib.load(TOTALSEG / "example_seg_dicom.nii.gz")
    labels = np.asarray(img.dataobj)
    ras = lps * np.array([-1, -1, 1])
    ijk = np.rint(np.c_[ras.reshape(-1, 3), np.ones(ras[..., 0].size)] @
                  np.linalg.inv(img.affine).T)[:, :3].astype(int)
    on_ct = labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]].reshape(hu.shape)
    loaded = job.load([TOTALSEG / "example_seg_dicom.nii.gz"], folder, assign_uids=True)
    stats = {s.number: s for s in compute_stats(loaded.seg, loaded.image)}
    values = [int(v) for v in np.unique(on_ct) if v]
    assert sorted(stats) == values and len(values) == 31
    for v in values:
        m = on_ct == v
        assert_stats_equal(stats[v], reference_stats(hu[m], lps[m]), voxel)


@needs_node
def test_stats_equal_cornerstone_calculator():
    """Cornerstone3D's VolumetricCalculator (what OHIF's segment statistics show), fed the same
    voxels, gives the same numbers."""
    hu, lps, dss, _ = read_images(CT3)
    m = highdicom_masks(DCMQI / "liver.dcm", dss)[1]
    loaded = job.load([DCMQI / "liver.dcm"], CT3)
    (st,) = compute_stats(loaded.seg, loaded.image)
    g = loaded.seg.grid
    spacing = [float(g.spacing[2]), float(g.spacing[1]), float(g.spacing[0])]
    cs = cornerstone_measure({"stats": {"values": hu[m].tolist(), "points": lps[m].tolist(),
                                        "spacing": spacing}})["stats"]
    assert cs["count"] == st.count
    assert cs["volume"] == pytest.approx(st.volume_mm3, rel=1e-9)
    for ours, theirs in (("mean", "mean"), ("std", "stdDev"), ("min", "min"), ("max", "max"),
                         ("median", "median"), ("skewness", "skewness"),
                         ("kurtosis", "kurtosis")):
        assert getattr(st, ours) == pytest.approx(cs[theirs], rel=1e-9, abs=1e-9), ours
    np.testing.assert_allclose(st.center_lps, cs["center"], atol=1e-6)
    np.testing.assert_allclose(st.max_lps, cs["maxLPS"], atol=1e-6)
    np.testing.assert_allclose(st.min_lps, cs["minLPS"], atol=1e-6)


# --- statistics on synthetic volumes with known answers -------------------------------------
@pytest.fixture(scope="module")
def ramp(tmp_path_factory):
    """CT with HU = 10 * x on an anisotropic axial grid, and two overlapping boxes."""
    folder = tmp_path_factory.mktemp("ramp")
    grid = Grid((6, 20, 24), (-30.0, -40.0, 100.0), (2.5, 0.8, 0.6), np.eye(3),
                frame_of_reference_uid="1.2.3.4.5")
    hu = np.broadcast_to(10.0 * np.arange(24), grid.shape).copy()
    write_ct_series(folder, hu, grid, uid_seed="ramp")
    ref = sb.read_series(folder)
    a = np.zeros(grid.shape, bool)
    a[1:4, 5:9, 2:7] = True  # x = 2..6
    b = np.zeros(grid.shape, bool)
    b[2:5, 6:10, 5:10] = True  # x = 5..9, overlaps a
    seg = Segmentation.from_masks(ref.grid, [(Segment(1, "A"), a), (Segment(2, "B"), b)],
                                  source=ref.source)
    return folder, ref, seg, a, b


def test_stats_known_values_and_overlap(ramp):
    _, ref, seg, a, b = ramp
    assert len(seg.layers) == 2
    sa, sb_ = compute_stats(seg, ref)
    x = 10.0 * np.arange(2, 7)  # A holds each x value 3 * 4 times
    assert sa.count == 60 and sa.volume_mm3 == pytest.approx(60 * 2.5 * 0.8 * 0.6)
    assert sa.volume_ml == pytest.approx(sa.volume_mm3 / 1000)
    assert sa.mean == pytest.approx(40.0) and sa.median == pytest.approx(40.0)
    assert sa.std == pytest.approx(math.sqrt(((x - 40) ** 2).mean()))
    assert sa.skewness == pytest.approx(0.0, abs=1e-12)
    assert sa.kurtosis == pytest.approx(((x - 40) ** 4).mean() / ((x - 40) ** 2).mean() ** 2 - 3)
    # min at its first voxel in [z, y, x] order: z=1, y=5, x=2
    np.testing.assert_allclose(sa.min_lps, [-30 + 2 * 0.6, -40 + 5 * 0.8, 100 + 1 * 2.5])
    assert sa.bbox_index == [[2, 5, 1], [6, 8, 3]]
    assert sb_.count == int(b.sum()) and sb_.mean == pytest.approx(70.0)
    (union,) = compute_stats(seg, ref, mode="collective")
    assert union.count == int((a | b).sum()) < sa.count + sb_.count
    assert union.mean == pytest.approx(hu_mean := (10.0 * np.nonzero(a | b)[2]).mean())
    assert hu_mean != pytest.approx(sa.mean)


def test_stats_segmentation_on_another_grid_is_sampled_through_world_coordinates(ramp):
    """A NIfTI-like segmentation on a coarser, shifted grid: nearest-neighbour lookup of the
    image at each segmentation voxel centre, and a warning that says so."""
    _, ref, _, _, _ = ramp
    g = Grid((4, 10, 12), (-29.7, -39.5, 101.0), (3.3, 1.7, 1.3), np.eye(3))
    m = np.zeros(g.shape, bool)
    m[1:3, 2:7, 3:9] = True
    seg = Segmentation.from_masks(g, [(Segment(1, "coarse"), m)])
    report = Report()
    (st,) = compute_stats(seg, ref, report=report)
    assert any("resampled" in w for w in report.warnings)
    zyx = np.argwhere(m)
    centres = np.array([-29.7, -39.5, 101.0]) + zyx[:, ::-1] * np.array([1.3, 1.7, 3.3])
    img_x = np.rint((centres[:, 0] - -30.0) / 0.6).astype(int)
    expected = 10.0 * img_x
    assert st.count == len(zyx) and st.volume_mm3 == pytest.approx(len(zyx) * 3.3 * 1.7 * 1.3)
    assert st.mean == pytest.approx(expected.mean())
    assert st.median == pytest.approx(np.median(expected))


def test_stats_seg_covering_some_slices_maps_exactly(tmp_path, ramp):
    """A SEG with frames on 3 of 6 slices is placed by reference: no resampling."""
    folder, ref, seg, a, _ = ramp
    path = tmp_path / "a.dcm"
    sb.write(seg.subset([1]), path, profile="slicer")
    report = Report()
    loaded = job.load([path], folder, report=report)
    (st,) = compute_stats(loaded.seg, loaded.image, report=report)
    assert not any("resampled" in w for w in report.warnings)
    assert st.count == int(a.sum()) and st.mean == pytest.approx(40.0)


# --- PET: SUVbw, peak, lesion glycolysis ---------------------------------------------------
@pytest.fixture(scope="module")
def pet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pet")
    grid = Grid((12, 40, 40), (-80.0, -80.0, -30.0), (3.0, 4.0, 4.0), np.eye(3),
                frame_of_reference_uid="1.2.3.4.6")
    rng = np.random.default_rng(3)
    act = rng.uniform(2000, 4000, grid.shape)
    lesion = ellipsoid(grid.shape, (6, 20, 20), (2.5, 5, 5))
    act[lesion] += rng.uniform(15000, 30000, int(lesion.sum()))
    write_pet_series(folder, act, grid, acquisition_times=["103500"] * 12)
    ref = sb.read_series(folder)
    seg = Segmentation.from_masks(ref.grid, [(Segment(1, "lesion"), lesion)], source=ref.source)
    return folder, ref, seg, lesion


def _pet_values(folder):
    vals, lps, dss, voxel = read_images(folder)
    # SUVbw by hand: weight (g) / (dose decayed from injection 09:30 to series start 10:30)
    factor = 75.0 * 1000 / (3.7e8 * 2 ** (-3600 / 6586.2))
    return vals * factor, lps, dss, voxel, factor


def test_pet_stats_in_suvbw_with_peak_and_glycolysis(pet):
    folder, ref, seg, lesion = pet
    suv, lps, _, voxel, _ = _pet_values(folder)
    (st,) = compute_stats(seg, ref)
    assert st.unit.label == "SUVbw"
    assert_stats_equal(st, reference_stats(suv[lesion], lps[lesion]), voxel, rtol=1e-6)
    assert st.lesion_glycolysis == pytest.approx(st.volume_ml * st.mean)
    # peak: the ten hottest lesion voxels, mean of all voxels in an index ellipsoid of radius
    # max(1, round(1.1 * 6.2035 mm / spacing)) around each, the best of those means
    radius = [max(1, math.floor(1.1 * (3000 / (4 * math.pi)) ** (1 / 3) / s + 0.5))
              for s in (3.0, 4.0, 4.0)]
    zz, yy, xx = np.indices(suv.shape)
    hottest = np.argsort(np.where(lesion, suv, -np.inf), axis=None)[-10:]
    means = []
    for flat in hottest:
        c = np.unravel_index(flat, suv.shape)
        ball = (((zz - c[0]) / radius[0]) ** 2 + ((yy - c[1]) / radius[1]) ** 2
                + ((xx - c[2]) / radius[2]) ** 2) <= 1
        means.append(suv[ball].mean())
    assert st.peak == pytest.approx(max(means), rel=1e-6)


@needs_node
def test_suv_factor_equals_cornerstone_calculate_suv(pet):
    folder, ref, _, _ = pet
    from segbridge.measure.units import suv_bw_factor

    h = ref.headers[0]
    info = h.RadiopharmaceuticalInformationSequence[0]
    instances = [{
        "CorrectedImage": list(x.CorrectedImage), "Units": str(x.Units),
        "PatientWeight": float(x.PatientWeight), "SeriesDate": str(x.SeriesDate),
        "SeriesTime": str(x.SeriesTime), "AcquisitionDate": str(x.AcquisitionDate),
        "AcquisitionTime": str(x.AcquisitionTime), "DecayCorrection": str(x.DecayCorrection),
        "RadionuclideTotalDose": float(info.RadionuclideTotalDose),
        "RadionuclideHalfLife": float(info.RadionuclideHalfLife),
        "RadiopharmaceuticalStartTime": str(info.RadiopharmaceuticalStartTime),
    } for x in ref.headers]
    theirs = cornerstone_measure({"suv": instances})["suv"]
    assert suv_bw_factor(ref.headers) == pytest.approx(theirs[0], rel=1e-12)
    assert _pet_values(folder)[4] == pytest.approx(theirs[0], rel=1e-12)


@pytest.mark.parametrize("missing, named", [
    (dict(weight_kg=None), "PatientWeight (0010,1030)"),
    (dict(decay_correction=""), "DecayCorrection (0054,1102)"),
    (dict(units="CNTS"), "Units (0054,1001) is CNTS"),
])
def test_pet_without_suv_attributes_falls_back_and_names_it(tmp_path, missing, named):
    grid = Grid((3, 8, 8), (0, 0, 0), (2, 2, 2), np.eye(3))
    act = np.full(grid.shape, 1000.0)
    write_pet_series(tmp_path, act, grid, **missing)
    ref = sb.read_series(tmp_path)
    seg = Segmentation.from_masks(ref.grid, [(Segment(1), np.ones(grid.shape, bool))],
                                  source=ref.source)
    report = Report()
    (st,) = compute_stats(seg, ref, report=report)
    assert st.unit.label in ("Bq/ml", "stored value") and st.peak is None
    assert st.mean == pytest.approx(1000.0, rel=1e-3)
    assert any(named in w and "SUVbw not computed" in w for w in report.warnings), \
        report.warnings


# --- bad input -----------------------------------------------------------------------------
def test_segment_that_does_not_exist_is_named(ramp):
    _, _, seg, _, _ = ramp
    with pytest.raises(InvalidInputError, match=r"segment 7 does not exist.*segments 1-2"):
        parse_segment_list("1,7", seg)
    assert parse_segment_list("2-2", seg) == [2]


def test_empty_segment_is_reported_empty_not_nan(tmp_path, ramp):
    folder, ref, seg, a, _ = ramp
    empty = Segmentation.from_masks(ref.grid, [(Segment(1, "A"), a),
                                               (Segment(2, "nothing"),
                                                np.zeros(ref.grid.shape, bool))],
                                    source=ref.source)
    path = tmp_path / "with-empty.dcm"
    sb.write(empty, path, profile="slicer")
    out = tmp_path / "stats.json"
    res = _cli("stats", path, "--image", folder, "--format", "json", "-o", out)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "NaN" not in text
    rows = {r["segment"]: r for r in json.loads(text)["segments"]}
    assert rows[2]["empty"] is True and rows[2]["voxel_count"] == 0
    assert rows[2]["mean"] is None and rows[2]["volume_ml"] == 0
    assert "segment 2 (nothing) is empty" in res.stderr


def test_image_from_another_frame_of_reference_is_refused(tmp_path, ramp):
    folder, ref, seg, _, _ = ramp
    other = tmp_path / "other"
    write_ct_series(other, np.zeros(ref.grid.shape), ref.grid.copy(
        frame_of_reference_uid="9.8.7.6"), uid_seed="other")
    path = tmp_path / "a.dcm"
    sb.write(seg.subset([1]), path, profile="slicer")
    res = _cli("stats", path, "--image", other)
    assert res.returncode == 1
    assert "Frame of Reference" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    with pytest.raises(GeometryMismatchError, match="Frame of Reference"):
        g = ref.grid.copy(frame_of_reference_uid="1.1.1")
        compute_stats(Segmentation.from_masks(g, [(Segment(1), np.ones(g.shape, bool))]), ref)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


# --- bidirectional -------------------------------------------------------------------------
def one_slice(mask2d, spacing=(1.0, 1.0), direction=None) -> Segmentation:
    """A 1-slice segmentation; spacing is (row, column) in mm."""
    g = Grid((1, *mask2d.shape), (10.0, -5.0, 3.0), (2.0, *spacing),
             np.eye(3) if direction is None else direction)
    return Segmentation.from_labelmap(g, mask2d[None].astype(np.uint8))


def disk(n, cx, cy, r, sx=1.0, sy=1.0):
    """Voxels whose centres are within r mm of (cx, cy) mm."""
    yy, xx = np.mgrid[:n, :n]
    return (xx * sx - cx) ** 2 + (yy * sy - cy) ** 2 <= r * r


@pytest.mark.parametrize("spacing, direction", [
    ((1.0, 1.0), None),
    ((0.7, 1.3), None),  # anisotropic pixels
    ((0.9, 0.6), rotation(0.3, -0.5, 0.8)),  # oblique plane
])
def test_disk_gives_its_diameter_on_both_axes(spacing, direction):
    sy, sx = spacing
    r = 18.0
    seg = one_slice(disk(80, 40 * sx, 40 * sy, r, sx, sy), spacing, direction)
    b = largest_bidirectional(seg, 1)
    diag = math.hypot(sx, sy)
    assert 2 * r - diag <= b.long_mm <= 2 * r + 1e-9
    assert 2 * r - diag <= b.short_mm <= b.long_mm
    # the LPS end points are consistent with the lengths and lie in the slice plane
    for length, pts in ((b.long_mm, b.long_lps), (b.short_mm, b.short_lps)):
        p, q = np.array(pts)
        assert np.linalg.norm(q - p) == pytest.approx(length)
        normal = seg.grid.normal
        assert np.dot(q - p, normal) == pytest.approx(0, abs=1e-9)
    u = np.subtract(*b.long_lps) / b.long_mm
    w = np.subtract(*b.short_lps) / b.short_mm
    assert abs(np.dot(u, w)) <= 0.01


def test_ellipse_gives_its_two_diameters():
    sx, sy = 0.6, 0.9
    a, c = 30.0, 12.0
    yy, xx = np.mgrid[:120, :120]
    m = ((xx * sx - 36) / a) ** 2 + ((yy * sy - 54) / c) ** 2 <= 1
    b = largest_bidirectional(one_slice(m, (sy, sx)), 1)
    diag = math.hypot(sx, sy)
    assert 2 * a - diag <= b.long_mm <= 2 * a + 1e-9
    assert 2 * c - diag <= b.short_mm <= 2 * c + 1e-9


def chord_stays_inside(mask, p, q, samples=4000) -> bool:
    """Dense sampling: every sample point not on a pixel edge is in a mask pixel."""
    t = (np.arange(samples) + 0.5) / samples
    pts = np.asarray(p, float)[None] + t[:, None] * (np.subtract(q, p))[None]
    frac = np.abs(pts - np.floor(pts) - 0.5)
    ok = np.all(frac > 1e-9, axis=1)
    idx = np.floor(pts[ok] + 0.5).astype(int)
    return bool(mask[idx[:, 1], idx[:, 0]].all())


def test_l_shape_and_ring_chords_stay_inside():
    L = np.zeros((60, 60), bool)
    L[5:55, 5:15] = True
    L[45:55, 5:55] = True
    ring = disk(70, 35, 35, 30) & ~disk(70, 35, 35, 16)
    for mask in (L, ring):
        b = largest_bidirectional(one_slice(mask), 1)
        assert chord_stays_inside(mask, *b.long_index)
        assert chord_stays_inside(mask, *b.short_index)
    # the ring's long axis cannot cross the hole: at most the tangent chord
    b = largest_bidirectional(one_slice(ring), 1)
    assert b.long_mm <= 2 * math.sqrt(30 ** 2 - 16 ** 2) + math.sqrt(2)
    # the L's long axis runs from the top of the bar into the foot, not across the notch
    bl = largest_bidirectional(one_slice(L), 1)
    assert bl.long_mm > 50


def _open_square_hit(p, q, cx, cy) -> bool:
    """Does segment p-q pass through the interior of the pixel square centred at (cx, cy)?"""
    t0, t1 = 0.0, 1.0
    for pc, dc, lo, hi in ((p[0], q[0] - p[0], cx - 0.5, cx + 0.5),
                           (p[1], q[1] - p[1], cy - 0.5, cy + 0.5)):
        if dc == 0:
            if not lo < pc < hi:
                return False
        else:
            a, b = sorted(((lo - pc) / dc, (hi - pc) / dc))
            t0, t1 = max(t0, a), min(t1, b)
    return t1 - t0 > 1e-9


def brute_force(mask, sx, sy):
    """All pairs of boundary voxel centres, longest first; the inside test checks every
    outside pixel against the chord (Liang-Barsky clipping), nothing shared with segbridge."""
    pad = np.pad(mask, 1)
    inner = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    pts = np.argwhere(mask & ~inner)[:, ::-1].astype(float)
    outside = np.argwhere(~np.pad(mask, 1))[:, ::-1] - 1

    def inside(p, q):
        lo, hi = np.minimum(p, q) - 1, np.maximum(p, q) + 1
        near = outside[np.all((outside >= lo) & (outside <= hi), axis=1)]
        return not any(_open_square_hit(p, q, x, y) for x, y in near)

    pairs = sorted(((math.hypot((b[0] - a[0]) * sx, (b[1] - a[1]) * sy), a, b)
                    for a, b in itertools.combinations(pts, 2)), key=lambda t: -t[0])
    major = next(((d, a, b) for d, a, b in pairs if inside(a, b)), None)
    if major is None:
        return None, None
    u = np.array([(major[2][0] - major[1][0]) * sx, (major[2][1] - major[1][1]) * sy]) / major[0]
    minor = next((d for d, a, b in pairs if
                  abs(np.dot([(b[0] - a[0]) * sx, (b[1] - a[1]) * sy], u)) / d <= 0.01
                  and inside(a, b)), None)
    return major[0], minor


def random_blob(rng, n=16):
    m = rng.random((n, n)) < 0.5
    for _ in range(2):
        p = np.pad(m, 1)
        m = (p[1:-1, 1:-1].astype(int) + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2]
             + p[1:-1, 2:]) >= 3
    return m


@pytest.mark.parametrize("seed", range(12))
def test_bidirectional_equals_brute_force_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    mask = random_blob(rng)
    sx, sy = ((1.0, 1.0), (0.7, 1.3), (1.1, 0.5))[seed % 3]
    b = largest_bidirectional(one_slice(mask, (sy, sx)), 1)
    long_mm, short_mm = brute_force(mask, sx, sy)
    assert b.long_mm == pytest.approx(long_mm, rel=1e-12)
    if short_mm is None:
        assert b.short_mm is None
    else:
        assert b.short_mm == pytest.approx(short_mm, rel=1e-12)


def test_best_slice_wins_and_each_overlapping_segment_uses_its_own_mask():
    g = Grid((5, 60, 60), (0, 0, 0), (2.0, 1.0, 1.0), np.eye(3))
    a = np.zeros(g.shape, bool)
    for k, r in enumerate((5, 9, 14, 9, 5)):
        a[k] = disk(60, 25, 30, r)
    b = np.zeros(g.shape, bool)
    b[1:4] = disk(60, 38, 30, 12)  # overlaps a
    seg = Segmentation.from_masks(g, [(Segment(1, "a"), a), (Segment(2, "b"), b)])
    assert len(seg.layers) == 2
    ra, rb = measure_all(seg)
    assert ra.slice_index == 2 and 28 - math.sqrt(2) <= ra.long_mm <= 28
    assert 24 - math.sqrt(2) <= rb.long_mm <= 24 and rb.slice_index == 3  # ties: later slice


@needs_node
@pytest.mark.parametrize("shape", ["disk", "ellipse", "tilted", "blob"])
def test_bidirectional_matches_cornerstone_on_convex_shapes(shape):
    """Cornerstone's createBidirectionalForSlice, given the same contour vertices (boundary
    voxel centres), finds the same long and short axis lengths."""
    sx, sy = (0.8, 1.1) if shape != "disk" else (1.0, 1.0)
    yy, xx = np.mgrid[:70, :70]
    x, y = xx * sx, yy * sy
    if shape == "disk":
        m = disk(70, 35, 35, 21)
    elif shape == "ellipse":
        m = ((x - 28) / 22) ** 2 + ((y - 38) / 13) ** 2 <= 1
    elif shape == "tilted":
        u, v = (x - 28) * 0.8 + (y - 38) * 0.6, -(x - 28) * 0.6 + (y - 38) * 0.8
        m = (u / 20) ** 2 + (v / 9) ** 2 <= 1
    else:
        m = (np.abs(x - 27) + np.abs(y - 36) <= 18) & (x > 14)
    ours = largest_bidirectional(one_slice(m, (sy, sx)), 1)
    pts = boundary_points(m)
    cs = cornerstone_measure({"bidirectional": {
        "dims": [m.shape[1], m.shape[0]], "spacing": [sx, sy],
        "mask": m.astype(int).ravel().tolist(), "points": pts.tolist()}})["bidirectional"]
    assert cs is not None
    assert ours.long_mm == pytest.approx(cs["maxMajor"], abs=1e-6)
    assert ours.short_mm == pytest.approx(cs["maxMinor"], abs=1e-6)


def test_segment_without_chords_says_why():
    m = np.zeros((10, 10), bool)
    m[4, 4] = True
    b = largest_bidirectional(one_slice(m), 1)
    assert not b.found and "single voxel" in b.note
    line = np.zeros((10, 10), bool)
    line[4, 2:8] = True
    b = largest_bidirectional(one_slice(line), 1)
    assert b.long_mm == pytest.approx(5.0) and b.short_mm is None and "perpendicular" in b.note


# --- SR TID 1500 ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sr_case(tmp_path_factory):
    """SR from the dcmqi partial-overlap SEG on its CT: stats + axes per segment."""
    out = tmp_path_factory.mktemp("sr") / "report.dcm"
    res = _cli("measure", DCMQI / "partial_overlaps.dcm", "--image", CT3, "--sr", out)
    assert res.returncode == 0, res.stderr
    loaded = job.load([DCMQI / "partial_overlaps.dcm"], CT3)
    stats = {s.number: s for s in compute_stats(loaded.seg, loaded.image)}
    axes = {a.number: a for a in measure_all(loaded.seg)}
    return out, stats, axes, loaded


def _values(group) -> dict:
    out = {}
    for m in group.get_measurements():
        key = (m.name.meaning, m.derivation.meaning if m.derivation else None)
        out[key] = m.value
    return out


def test_sr_read_back_by_highdicom(sr_case):
    path, stats, axes, loaded = sr_case
    sr = hd.sr.srread(str(path))
    seg_uid = str(pydicom.dcmread(DCMQI / "partial_overlaps.dcm",
                                  stop_before_pixels=True).SOPInstanceUID)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(stats)
    for g in groups:
        ref = g.referenced_segment[0].ReferencedSOPSequence[0]
        n = int(ref.ReferencedSegmentNumber)
        assert ref.ReferencedSOPInstanceUID == seg_uid
        v = _values(g)
        st = stats[n]
        assert v[("Volume", None)] == pytest.approx(st.volume_mm3, rel=1e-9)
        for key, meaning in (("mean", "Mean"), ("min", "Minimum"), ("max", "Maximum"),
                             ("median", "Median"), ("std", "Standard Deviation")):
            assert v[("Attenuation Coefficient", meaning)] == pytest.approx(
                getattr(st, key), rel=1e-9, abs=1e-9)
    # long / short axis: planar measurements with their end points on the measured image
    axis_items = []
    for item in sr.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue != "126010":
            continue
        for group in item.ContentSequence:
            tracking = [c.TextValue for c in group.ContentSequence
                        if c.ConceptNameCodeSequence[0].CodeValue == "112039"]
            for c in group.ContentSequence:
                if c.ValueType == "NUM" and c.ConceptNameCodeSequence[0].CodeValue in (
                        "103339001", "103340004"):
                    axis_items.append((tracking[0], c))
    by_label = {s.label: s.number for s in loaded.seg.segments}
    assert {t for t, _ in axis_items} == {s.label for s in loaded.seg.segments
                                          if axes[s.number].found}
    for tracking, c in axis_items:
        a = axes[by_label[tracking]]
        expected = a.long_mm if c.ConceptNameCodeSequence[0].CodeValue == "103339001" \
            else a.short_mm
        assert float(c.MeasuredValueSequence[0].NumericValue) == pytest.approx(expected,
                                                                                 rel=1e-9)
        (scoord,) = c.ContentSequence
        assert scoord.ValueType == "SCOORD" and scoord.GraphicType == "POLYLINE"
        assert len(scoord.GraphicData) == 4
        image = scoord.ContentSequence[0].ReferencedSOPSequence[0]
        assert image.ReferencedSOPInstanceUID == a.sop_instance_uid


def test_sr_read_back_by_dcmqi(sr_case, tmp_path):
    path, stats, _, _ = sr_case
    reader = shutil.which("tid1500reader") or str(
        __import__("pathlib").Path(sys.executable).parent / "tid1500reader")
    out = tmp_path / "sr.json"
    res = subprocess.run([reader, "--inputDICOM", str(path), "--outputMetadata", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    seen = 0
    for group in doc["Measurements"]:
        n = group.get("ReferencedSegment")
        if n is None:
            continue
        items = {(i["quantity"]["CodeMeaning"],
                  i.get("derivationModifier", {}).get("CodeMeaning")): float(i["value"])
                 for i in group["measurementItems"]}
        assert items[("Volume", None)] == pytest.approx(stats[n].volume_mm3, rel=1e-9)
        assert items[("Attenuation Coefficient", "Mean")] == pytest.approx(stats[n].mean,
                                                                             rel=1e-9)
        seen += 1
    assert seen == len(stats)


def test_sr_has_no_dciodvfy_errors(sr_case):
    errors = dciodvfy_errors(sr_case[0])
    assert errors == [], "\n".join(errors)


def test_sr_from_nifti_writes_the_seg_it_references(tmp_path):
    """A NIfTI has no SOP Instance UID to reference: the SEG is written beside the SR."""
    folder = TOTALSEG / "example_ct_dicom"
    out = tmp_path / "ts.dcm"
    res = _cli("stats", TOTALSEG / "example_seg_dicom.nii.gz", "--image", folder,
               "--assign-uids", "--segments", "5,6", "--format", "csv", "--sr", out)
    assert res.returncode == 0, res.stderr
    seg_path = tmp_path / "ts-seg.dcm"
    seg_ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
    sr = hd.sr.srread(str(out))
    refs = [g.referenced_segment[0].ReferencedSOPSequence[0]
            for g in sr.content.get_volumetric_roi_measurement_groups()]
    assert {r.ReferencedSOPInstanceUID for r in refs} == {seg_ds.SOPInstanceUID}
    assert sorted(int(r.ReferencedSegmentNumber) for r in refs) == [1, 2]
    assert [s.SegmentNumber for s in seg_ds.SegmentSequence] == [1, 2]


def test_sr_needs_an_image_for_a_nifti(tmp_path):
    res = _cli("measure", TOTALSEG / "example_seg_dicom.nii.gz", "--segments", "5",
               "--sr", tmp_path / "x.dcm")
    assert res.returncode == 1 and "--image" in res.stderr
    assert not list(tmp_path.iterdir())


# --- render --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    from segbridge.demo import demo_grid, demo_phantom

    grid = demo_grid()
    hu, labels, tumor = demo_phantom(grid.shape)
    write_ct_series(out / "ct", hu, grid, uid_seed="render")
    ref = sb.read_series(out / "ct")
    segs = [(Segment(1, "Liver", color=(221, 130, 101)), labels == 1),
            (Segment(2, "Spine", color=(241, 214, 145)), labels == 2),
            (Segment(3, "Kidney", color=(185, 102, 83)), labels == 3),
            (Segment(4, "Tumor", color=(60, 200, 60)), tumor > 0)]
    seg = Segmentation.from_masks(ref.grid, segs, source=ref.source)
    sb.write(seg, out / "seg.dcm", profile="slicer")
    return out, seg


def test_render_draws_every_segment_overlaps_and_axes(demo_dir, tmp_path):
    from PIL import Image

    out, seg = demo_dir
    png = tmp_path / "preview.png"
    res = _cli("render", out / "seg.dcm", "--image", out / "ct", "-o", png)
    assert res.returncode == 0, res.stderr
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] >= 300 and img.shape[1] >= 900
    colours = {tuple(c) for c in img.reshape(-1, 3)[::1]}
    for s in seg.segments:  # outline pixels carry the exact colour (tumor overlaps the liver)
        assert s.color in colours, s.label
    yellow = np.all(img == (255, 255, 0), axis=2)
    cyan = np.all(img == (0, 255, 255), axis=2)
    liver_axes = largest_bidirectional(seg, 1)
    assert yellow.sum() > 2 * liver_axes.long_mm and cyan.sum() > 2 * liver_axes.short_mm
    # the axes are drawn on the axial (first) panel, over the liver
    assert np.flatnonzero(yellow.any(axis=0)).max() < img.shape[1] / 3


def test_render_bad_slice_and_focus(demo_dir, tmp_path):
    out, _ = demo_dir
    for args, msg in ((["--slice", "99"], "outside"), (["--focus", "9"], "focus 9"),
                      (["--slice", "middle"], "--slice")):
        res = _cli("render", out / "seg.dcm", "--image", out / "ct", "-o",
                   tmp_path / "x.png", *args)
        assert res.returncode == 1 and msg in res.stderr, res.stderr
    assert not (tmp_path / "x.png").exists()


def test_render_one_plane_and_its_slice(demo_dir, tmp_path):
    """--plane draws one view; --slice then moves that view (the coronal index runs along the
    grid's rows), and a slice beyond that axis is refused."""
    from PIL import Image

    out, seg = demo_dir
    sizes, pixels = {}, {}
    for plane, sl in (("all", None), ("coronal", 20), ("coronal", 35), ("sagittal", None)):
        png = tmp_path / f"{plane}-{sl}.png"
        res = _cli("render", out / "seg.dcm", "--image", out / "ct", "-o", png, "--plane",
                   plane, *(["--slice", str(sl)] if sl is not None else []))
        assert res.returncode == 0, res.stderr
        img = Image.open(png)
        sizes[plane] = img.size[0]
        pixels[(plane, sl)] = np.asarray(img.convert("RGB"))
    assert sizes["coronal"] < sizes["all"] and sizes["sagittal"] < sizes["all"]
    assert not np.array_equal(pixels[("coronal", 20)], pixels[("coronal", 35)])
    rows = seg.grid.shape[1]
    res = _cli("render", out / "seg.dcm", "--image", out / "ct", "-o", tmp_path / "x.png",
               "--plane", "coronal", "--slice", str(rows))
    assert res.returncode == 1 and f"outside 0..{rows - 1}" in res.stderr, res.stderr
    assert not (tmp_path / "x.png").exists()


# --- hostile inputs (issue 11, class 5): one line naming the file, or a clear warning -------
def _nifti_on(path, labels, grid):
    from segbridge.geometry import flip_lps_ras

    nib.save(nib.Nifti1Image(np.transpose(labels, (2, 1, 0)), flip_lps_ras(grid.affine)),
             str(path))
    return path


@pytest.fixture(scope="module")
def hostile_niftis(tmp_path_factory, ct3):
    d = tmp_path_factory.mktemp("hostile")
    g = ct3.grid
    box = np.zeros(g.shape, np.uint8)
    box[1, 100:120, 100:130] = 1
    far = Grid(g.shape, np.asarray(g.origin) + [5000.0, 0, 0], g.spacing, g.direction)
    one = np.zeros(g.shape, np.uint8)
    one[1, 200, 200] = 3
    return {"outside": _nifti_on(d / "outside.nii.gz", box, far),
            "empty": _nifti_on(d / "empty.nii.gz", np.zeros(g.shape, np.uint8), g),
            "single": _nifti_on(d / "single.nii.gz", one, g),
            "box": _nifti_on(d / "box.nii.gz", box, g)}


def _one_line_failure(res, *needles):
    err = res.stderr.strip()
    assert res.returncode == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert len(err.splitlines()) == 1 and err.startswith("segbridge: error: "), err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("name", ["outside", "empty"])
def test_render_of_nothing_on_the_image_is_one_line(hostile_niftis, tmp_path, name):
    png = tmp_path / "x.png"
    res = _cli("render", hostile_niftis[name], "--image", CT3, "-o", png)
    # outside: resampling onto the image refuses to empty it; empty: nothing to draw
    why = "all 600 labelled voxels lie outside" if name == "outside" else "nothing to render"
    _one_line_failure(res, f"{name}.nii.gz", why)
    assert not list(tmp_path.iterdir())


def test_stats_and_measure_of_a_segmentation_outside_the_image_warn(hostile_niftis):
    res = _cli("stats", hostile_niftis["outside"], "--image", CT3, "--format", "json")
    assert res.returncode == 0, res.stderr
    assert "internal error" not in res.stderr
    assert "600 of 600 voxels lie outside the image" in res.stderr
    res = _cli("measure", hostile_niftis["outside"], "--image", CT3, "--json")
    assert res.returncode == 0 and "internal error" not in res.stderr, res.stderr


def test_single_voxel_and_empty_segmentations_measure_and_render(hostile_niftis, tmp_path):
    res = _cli("render", hostile_niftis["single"], "--image", CT3, "-o", tmp_path / "one.png")
    assert res.returncode == 0 and (tmp_path / "one.png").is_file(), res.stderr
    res = _cli("measure", hostile_niftis["single"], "--image", CT3, "--json")
    assert res.returncode == 0, res.stderr
    assert "single voxel" in res.stderr
    for cmd in (["stats", "--format", "json"], ["measure", "--json"]):
        res = _cli(cmd[0], hostile_niftis["empty"], "--image", CT3, *cmd[1:])
        assert res.returncode == 0 and "internal error" not in res.stderr, res.stderr


def test_render_slice_and_segments_that_do_not_exist(hostile_niftis, tmp_path):
    png = tmp_path / "x.png"
    for args, needles in ((["--slice", "99"], ["box.nii.gz", "--slice 99 is outside 0..2"]),
                          (["--slice", "-5"], ["--slice -5"]),
                          (["--segments", "99"], ["segment 99 does not exist"]),
                          (["--segments", "1,x"], ["'x' is not a segment number"])):
        res = _cli("render", hostile_niftis["box"], "--image", CT3, "-o", png, *args)
        _one_line_failure(res, *needles)
    assert not png.exists()
    res = _cli("render", hostile_niftis["box"], "--image", CT3, "-o", tmp_path)
    _one_line_failure(res, "is a folder")


def test_labels_with_markup_are_printed_as_text(tmp_path):
    """A segment label such as "Liver[/]" is rich markup: printed raw it crashed `info`."""
    ds = pydicom.dcmread(DCMQI / "liver.dcm")
    ds.SegmentSequence[0].SegmentLabel = "Liver[/]"
    bad = tmp_path / "markup.dcm"
    ds.save_as(bad)
    res = _cli("info", bad, "-r", CT3)
    assert res.returncode == 0, res.stderr
    assert "Liver[/]" in res.stdout
    res = _cli("stats", bad, "--image", CT3)
    assert res.returncode == 0 and "Liver[/]" in res.stdout, res.stderr
    res = _cli("measure", bad, "--image", CT3)
    assert res.returncode == 0 and "Liver[/]" in res.stdout, res.stderr


def test_segment_ranges_are_bounded_by_the_segments_there_are():
    g = Grid((1, 4, 4), (0, 0, 0), (1, 1, 1), np.eye(3))
    lab = np.zeros(g.shape, np.uint8)
    lab[0, 0, 0], lab[0, 1, 1] = 1, 2
    seg = Segmentation.from_labelmap(g, lab)
    assert parse_segment_list("1-2", seg) == [1, 2]
    # a huge range is refused before it is listed (it used to build the whole list, and the
    # message named every missing number)
    with pytest.raises(InvalidInputError) as exc:
        parse_segment_list("1-1000000000", seg, "a.nii.gz")
    assert str(exc.value) == ("a.nii.gz: --segments 1-1000000000: 1000000000 segments asked, "
                              "the segmentation has 2 (1-2)")
    with pytest.raises(InvalidInputError, match="runs backwards"):
        parse_segment_list("2-1", seg)
    with pytest.raises(InvalidInputError) as exc:
        parse_segment_list(",".join(map(str, range(3, 40))), seg)
    assert len(str(exc.value)) < 120 and "..." in str(exc.value)


def test_statistics_read_the_image_slice_by_slice():
    """Statistics of segments on the image's grid take their values from one pass over the
    slices (never the whole image in memory): the same values, bit for bit, as the lookup
    through the stored volume, for overlapping layers and a subset of the segments."""
    from segbridge.measure.stats import compute_stats, segment_voxels, streamed_values

    ref = sb.read_series(CT3)
    seg = sb.read(DCMQI / "partial_overlaps.dcm", reference=ref)
    assert len(seg.layers) > 1  # overlapping segments: several layers
    numbers = [n for n in seg.numbers][::-1][:3]
    streamed = streamed_values(seg, ref, numbers)
    assert ref._stored is None and ref._pixels is None  # nothing of the image kept
    for n in numbers:
        np.testing.assert_array_equal(streamed[n], ref.values_at(segment_voxels(seg, [n])))
    fresh = sb.read_series(CT3)
    stats = compute_stats(seg, fresh, numbers=numbers)
    assert fresh._stored is None and fresh._pixels is None
    looked_up = [compute_stats(seg, ref, numbers=[n], mode="collective")[0] for n in numbers]
    for a, b in zip(stats, looked_up, strict=True):
        assert (a.mean, a.std, a.min, a.max, a.median, a.percentiles, a.min_lps, a.max_lps) == \
            (b.mean, b.std, b.min, b.max, b.median, b.percentiles, b.min_lps, b.max_lps)
