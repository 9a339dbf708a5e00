"""RTSTRUCT contours <-> labelmaps (issue: RTSTRUCT).

Round trips on real segmentations and random shapes must be voxel-exact; foreign structure sets
are compared with plastimatch's and rt-utils' rasterisation and with the area the contours
enclose; what we write must load in rt-utils and plastimatch to the same masks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nrrd
import numpy as np
import pydicom
import pytest
from conftest import CT3, DATA, DCMQI, TOTALSEG, dciodvfy_errors, rotation

import segbridge as sb
from segbridge.errors import InvalidInputError, Report
from segbridge.geometry import Grid
from segbridge.model import Segment, Segmentation
from segbridge.rt.contours import bands, inset, rasterize, trace
from segbridge.synthetic import write_ct_series

PPS = DATA / "pps" / "tests" / "tests_validation" / "benchmark_data" / "DVH-Analysis-Data-Etc"
PPS_CT = PPS / "CT" / "3 mm CT"
PHANTOMS = ["Sphere_30_0", "Cylinder_30_0", "Cone_30_0", "RtCone_30_0"]
RTU = DATA / "rt-utils" / "tests" / "mock_data"
PLASTIMATCH = shutil.which("plastimatch") or str(Path(sys.executable).parent / "plastimatch")


def same_masks(a: Segmentation, b: Segmentation) -> None:
    assert [s.label for s in a.segments] == [s.label for s in b.segments]
    for sa, sb_ in zip(a.segments, b.segments, strict=True):
        np.testing.assert_array_equal(a.mask(sa.number), b.mask(sb_.number), err_msg=sa.label)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# --- the contour engine ---------------------------------------------------------------------
def test_trace_then_rasterize_is_exact_on_random_masks():
    """Holes, islands, single voxels and corner-touching voxels (saddles) on every slice."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        m = rng.random((2, 17, 19)) < rng.uniform(0.1, 0.9)
        np.testing.assert_array_equal(rasterize(trace(m), m.shape), m)


def test_trace_vertices_never_sit_on_a_voxel_centre_and_straight_runs_are_merged():
    m = np.zeros((1, 20, 20), bool)
    m[0, 3:15, 4:12] = True
    (k, poly), = trace(m)
    assert len(poly) == 8  # four sides and four cut corners, whatever the size
    frac = np.abs(poly - np.round(poly))
    assert np.all((frac[:, 0] == 0.5) | (frac[:, 1] == 0.5))


def test_bands_keep_the_voxels_and_every_contour_short():
    rng = np.random.default_rng(1)
    for _ in range(30):
        m = rng.random((1, 40, 40)) < 0.6
        assert max(len(p) for _, p in trace(m)) > 40
        pieces = [(0, p) for p in bands(m[0], 40)]
        assert max(len(q) for _, q in pieces) <= 40
        np.testing.assert_array_equal(rasterize(pieces, m.shape), m)
        np.testing.assert_array_equal(rasterize([(k, inset(q)) for k, q in pieces], m.shape,
                                                rule="rt-utils"), m)


def fill_poly(polys: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """OpenCV's fillPoly on the rounded vertices, exactly as rt-utils calls it."""
    import cv2

    img = np.zeros(shape, np.uint8)
    cv2.fillPoly(img, [np.around(p).astype(np.int32) for p in polys], 1)
    return img.astype(bool)


def test_inset_contours_give_the_same_voxels_by_every_rule():
    """Moved 1/32 voxel inwards, traced contours fill back to the mask by the centre rule, by
    the rt-utils rule and by OpenCV itself (which rounds vertices and fills the outline)."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        ny, nx = rng.integers(3, 40, 2)
        m = rng.random((1, ny, nx)) < rng.uniform(0.1, 0.9)
        polys = [(k, inset(p)) for k, p in trace(m)]
        np.testing.assert_array_equal(rasterize(polys, m.shape), m)
        np.testing.assert_array_equal(rasterize(polys, m.shape, rule="rt-utils"), m)
        np.testing.assert_array_equal(fill_poly([p for _, p in polys], (ny, nx)), m[0])
    for _, p in trace(rng.random((1, 30, 30)) < 0.5):
        moved = np.abs(inset(p) - p).max(axis=1)
        assert moved.min() >= 1 / 32 - 1e-12 and moved.max() <= np.sqrt(2) / 32 + 1e-12


def test_point_and_flat_contours_alone_keep_their_voxels():
    """rt-utils writes a one-voxel slice as a 1-point contour and a one-row run as a 2-point
    one: with nothing else on the slice, their voxels are still kept (found on the benchmark's
    one-voxel structure, which the centre rule used to drop)."""
    for rule in ("centre", "rt-utils"):
        m = rasterize([(0, np.array([[3.0, 4.0]])), (1, np.array([[1.0, 2.0], [5.0, 2.0]]))],
                      (2, 6, 7), rule=rule)
        assert m[0].sum() == 1 and m[0, 4, 3]
        assert m[1].sum() == 5 and m[1, 2, 1:6].all()


def test_rt_utils_rule_equals_opencv_on_arbitrary_polygons():
    """Self-intersecting, degenerate (1-2 points), several per slice, vertices on exact halves
    (rounded half to even like numpy), edges leaving the image (OpenCV clips them its own way),
    images of 1 to 24 pixels a side: the same pixels as OpenCV's fillPoly."""
    rng = np.random.default_rng(5)
    for i in range(3000):
        h, w = (int(v) for v in rng.integers(1, 25, 2))
        lo, hi = (-8, max(h, w) + 8) if i % 3 else (0, min(h, w) - 1)
        polys = [rng.uniform(lo, hi, (rng.integers(1, 9), 2)) for _ in range(rng.integers(1, 4))]
        if i % 2:
            polys = [np.round(p * 2) / 2 for p in polys]
        ours = rasterize([(0, p) for p in polys], (1, h, w), rule="rt-utils")[0]
        np.testing.assert_array_equal(ours, fill_poly(polys, (h, w)), err_msg=str(polys))
    with pytest.raises(ValueError, match="unknown contour fill rule"):
        rasterize([], (1, 2, 2), rule="nearest")


def test_rt_utils_rule_equals_opencv_on_long_edges_and_far_vertices():
    """Edges over hundreds of rows (OpenCV steps them with a truncated 16.16 slope), and a
    vertex 10^8 pixels away, which neither rule may turn into 10^8 pixels of work."""
    rng = np.random.default_rng(6)
    for _ in range(100):
        polys = [rng.uniform(0, 1500, (rng.integers(3, 7), 2))]
        ours = rasterize([(0, p) for p in polys], (1, 1500, 1500), rule="rt-utils")[0]
        np.testing.assert_array_equal(ours, fill_poly(polys, (1500, 1500)))
    far = np.array([[2.0, 2.0], [1e8, 3.0], [1e8, 0.0], [0.0, 0.0], [3.0, 5.0]])
    np.testing.assert_array_equal(rasterize([(0, far)], (1, 20, 20), rule="rt-utils")[0],
                                  fill_poly([far], (20, 20)))
    assert rasterize([(0, far)], (1, 20, 20))[0].sum() > 20


def test_rasterize_even_odd_and_centre_rule():
    square = np.array([[0.5, 0.5], [6.5, 0.5], [6.5, 6.5], [0.5, 6.5]])
    hole = np.array([[2.5, 2.5], [4.5, 2.5], [4.5, 4.5], [2.5, 4.5]])
    m = rasterize([(0, square), (0, hole)], (1, 8, 8))[0]
    expected = np.zeros((8, 8), bool)
    expected[1:7, 1:7] = True
    expected[3:5, 3:5] = False
    np.testing.assert_array_equal(m, expected)


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("nrrd_file", ["liver_seg.nrrd", "spine_seg.nrrd", "heart_seg.nrrd"])
def test_round_trip_exact_on_dcmqi_ct(tmp_path, nrrd_file):
    ref = sb.read_series(CT3)
    seg = sb.read(DCMQI / nrrd_file, reference=ref)
    out = tmp_path / "rt.dcm"
    sb.write(seg, out, to="rtstruct")
    back = sb.read(out, reference=ref)
    same_masks(seg, back)
    assert not back.report.warnings


def test_round_trip_exact_on_totalsegmentator_31_labels(tmp_path):
    ref = sb.read_series(TOTALSEG / "example_ct_dicom", assign_uids=True)
    seg = sb.read(TOTALSEG / "example_seg_dicom.nii.gz", reference=ref)
    assert len(seg.segments) == 31
    out = tmp_path / "rt.dcm"
    sb.write(seg, out, to="rtstruct")
    same_masks(seg, sb.read(out, reference=ref))


def random_shapes(shape, rng) -> list[np.ndarray]:
    """Blobs with holes and several islands per slice, plus single-voxel structures."""
    nz, ny, nx = shape
    zz, yy, xx = np.indices(shape)
    blob = np.zeros(shape, bool)
    for _ in range(4):
        c = rng.uniform([0, 3, 3], [nz, ny - 3, nx - 3])
        r = rng.uniform(2, min(ny, nx) / 4)
        blob |= ((yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r) & (abs(zz - c[0]) < 3)
    ring = ((yy - ny / 2) ** 2 + (xx - nx / 2) ** 2 <= (ny / 3) ** 2) & \
        ((yy - ny / 2) ** 2 + (xx - nx / 2) ** 2 > (ny / 6) ** 2)
    noise = rng.random(shape) < 0.3
    dots = np.zeros(shape, bool)
    dots[tuple(rng.integers(0, s, 5) for s in shape)] = True
    return [blob, ring, noise, dots]


@pytest.mark.parametrize("kind", ["axial", "oblique", "anisotropic"])
def test_round_trip_exact_on_random_shapes(tmp_path, kind):
    rng = np.random.default_rng({"axial": 1, "oblique": 2, "anisotropic": 3}[kind])
    shape = (6, 32, 32)  # rt-utils sizes its masks Columns x Rows: square images only
    direction = rotation(0.4, -0.3, 0.9) if kind == "oblique" else np.eye(3)
    spacing = (2.0, 0.7, 1.3) if kind == "anisotropic" else (1.5, 1.0, 1.0)
    grid = Grid(shape, (-20.0, 13.0, 40.0), spacing, direction, frame_of_reference_uid="1.2.3.9")
    write_ct_series(tmp_path / "ct", np.zeros(shape), grid, uid_seed=kind)
    ref = sb.read_series(tmp_path / "ct")
    masks = random_shapes(shape, rng)
    seg = Segmentation.from_masks(ref.grid, [(Segment(i + 1, f"s{i + 1}"), m)
                                             for i, m in enumerate(masks)], source=ref.source)
    assert len(seg.layers) > 1  # the shapes overlap
    out = tmp_path / "rt.dcm"
    sb.write(seg, out, to="rtstruct")
    back = sb.read(out, reference=ref)
    same_masks(seg, back)
    same_masks(seg, sb.read(out, reference=ref, contour_fill="rt-utils"))
    if kind == "anisotropic":
        return  # rt-utils scales x by PixelSpacing[0] (the row spacing): square pixels only
    theirs = rt_utils_masks(ref, out)
    for s in seg.segments:
        np.testing.assert_array_equal(theirs[s.label], seg.mask(s.number), err_msg=s.label)


def test_rt_utils_rule_on_contours_half_way_between_centres(tmp_path, monkeypatch):
    """Contours from another writer with every vertex exactly half-way between two voxel
    centres (marching squares without our inset, 0.7 mm pixels, shapes touching the last row
    and column): rt-utils decides each half by its float32 matrix and clips at the border; the
    rt-utils fill decides the same way, voxel for voxel."""
    import segbridge.rt.writer as writer

    shape = (3, 40, 40)
    grid = Grid(shape, (-20.0, 13.3, 40.7), (1.5, 0.7, 0.7), np.eye(3),
                frame_of_reference_uid="1.2.3.11")
    write_ct_series(tmp_path / "ct", np.zeros(shape), grid, uid_seed="halves")
    ref = sb.read_series(tmp_path / "ct")
    masks = random_shapes(shape, np.random.default_rng(4))
    edge = np.zeros(shape, bool)
    edge[:, 30:, 25:] = True  # touches the last row and column
    seg = Segmentation.from_masks(ref.grid, [(Segment(i + 1, f"s{i + 1}"), m)
                                             for i, m in enumerate(masks + [edge])],
                                  source=ref.source)
    monkeypatch.setattr(writer, "inset", lambda poly: np.asarray(poly, float))
    out = tmp_path / "halves.dcm"
    sb.write(seg, out, to="rtstruct")
    same_masks(seg, sb.read(out, reference=ref))  # the centre rule: exact, as before
    ours = sb.read(out, reference=ref, contour_fill="rt-utils")
    theirs = rt_utils_masks(ref, out)
    grown = 0
    for s in ours.segments:
        np.testing.assert_array_equal(ours.mask(s.number), theirs[s.label], err_msg=s.label)
        grown += int((theirs[s.label] & ~seg.mask(s.number)).sum())
    assert grown > 100  # rt-utils' rim on these contours: the comparison is not trivial


def test_long_contours_are_split_under_the_64k_limit(tmp_path):
    """Ragged rows give a contour of thousands of vertices; the slice is traced in bands."""
    shape = (1, 500, 300)
    grid = Grid(shape, (-100.0, -100.0, 0.0), (1.0, 0.5, 0.5), np.eye(3),
                frame_of_reference_uid="1.2.3.10")
    write_ct_series(tmp_path / "ct", np.zeros(shape), grid, uid_seed="long")
    ref = sb.read_series(tmp_path / "ct")
    rng = np.random.default_rng(0)
    m = np.zeros(shape, bool)
    for y in range(10, 490):
        a, b = rng.integers(5, 60), rng.integers(240, 295)
        m[0, y, a:b] = True
    seg = Segmentation.from_masks(ref.grid, [(Segment(1, "ragged"), m)], source=ref.source)
    out = tmp_path / "rt.dcm"
    sb.write(seg, out, to="rtstruct")
    ds = pydicom.dcmread(out)
    contours = ds.ROIContourSequence[0].ContourSequence
    assert len(contours) > 1
    raw = pydicom.dcmread(out, defer_size=None)
    for c in raw.ROIContourSequence[0].ContourSequence:
        length = len("\\".join(str(v) for v in c.ContourData))
        assert length <= 65534
    np.testing.assert_array_equal(sb.read(out, reference=ref).mask(1), m)


# --- foreign structure sets: the DVH phantom and rt-utils data --------------------------------
def contour_volume(path: Path, roi_name: str) -> float:
    """Polygon areas (shoelace, in the axial plane) times the slice spacing, even-odd."""
    ds = pydicom.dcmread(path)
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == roi_name)
    item = next(i for i in ds.ROIContourSequence if i.ReferencedROINumber == number)
    area = 0.0
    for c in item.ContourSequence:
        p = np.array(c.ContourData, float).reshape(-1, 3)
        x, y = p[:, 0], p[:, 1]
        area += 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return area * 3.0


def plastimatch_masks(rt: Path, ct: Path, out: Path, xor: bool = False) -> dict[str, np.ndarray]:
    """{ROI name: mask [z, y, x]} rasterised by plastimatch on the CT's grid (``xor``: inner
    contours cut holes, which plastimatch does only when asked)."""
    res = subprocess.run([PLASTIMATCH, "convert", "--input", str(rt), "--referenced-ct",
                          str(ct), "--output-prefix", str(out), "--prefix-format", "nrrd"] +
                         (["--xor-contours"] if xor else []),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    masks = {}
    for f in out.glob("*.nrrd"):
        arr, hdr = nrrd.read(str(f))
        assert np.allclose(np.diag(hdr["space directions"]) > 0, True)  # axial, no flips here
        masks[f.stem] = np.transpose(arr, (2, 1, 0)) > 0
    return masks


@pytest.fixture(scope="module")
def pps_ref():
    return sb.read_series(PPS_CT)


@pytest.mark.parametrize("phantom", PHANTOMS)
def test_dvh_phantom_volume_and_plastimatch_agreement(tmp_path, pps_ref, phantom):
    rt = PPS / "STRUCTURES" / f"{phantom}.dcm"
    report = Report()
    seg = sb.read(rt, reference=pps_ref, report=report)
    s = next(x for x in seg.segments if x.label.replace("RtCone30", "RtCone_30") == phantom)
    ours = seg.mask(s.number)
    voxel = float(np.prod(pps_ref.grid.spacing))
    enclosed = contour_volume(rt, s.label)
    assert abs(ours.sum() * voxel - enclosed) / enclosed < 0.03
    theirs = plastimatch_masks(rt, PPS_CT, tmp_path / "pm")[s.label]
    assert abs(int(ours.sum()) - int(theirs.sum())) / theirs.sum() < 0.01
    assert dice(ours, theirs) >= 0.98


def rt_utils_masks(ref, rt_path: Path) -> dict[str, np.ndarray]:
    """{ROI name: mask [z, y, x]} as rt-utils rasterises them (slices matched by SOP UID)."""
    from rt_utils import RTStructBuilder

    rts = RTStructBuilder.create_from(str(ref.paths[0].parent), str(rt_path), warn_only=True)
    order = [str(d.SOPInstanceUID) for d in rts.series_data]
    uids = [i.sop_instance_uid for i in ref.source.instances]
    out = {}
    for name in rts.get_roi_names():
        rck = rts.get_roi_mask_by_name(name)
        m = np.zeros(ref.grid.shape, bool)
        for j, uid in enumerate(order):
            m[uids.index(uid)] = rck[:, :, j]
        out[name] = m
    return out


def dilate(m: np.ndarray) -> np.ndarray:
    """One voxel in the slice plane (8-neighbourhood)."""
    p = np.pad(m, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(m)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= p[:, 1 + dy:p.shape[1] - 1 + dy, 1 + dx:p.shape[2] - 1 + dx]
    return out


@pytest.mark.parametrize("rt_file", ["rt.dcm", "non_existent_reference_rt.dcm"])
def test_rt_utils_rule_gives_rt_utils_masks_on_its_test_data(rt_file):
    """--contour-fill rt-utils: voxel for voxel the masks rt-utils itself makes (Dice 1)."""
    ref = sb.read_series(RTU)
    seg = sb.read(RTU / rt_file, reference=ref, contour_fill="rt-utils")
    theirs = rt_utils_masks(ref, RTU / rt_file)
    assert sorted(theirs) == sorted(s.label for s in seg.segments)
    for s in seg.segments:
        assert seg.mask(s.number).sum() > 1000
        np.testing.assert_array_equal(seg.mask(s.number), theirs[s.label], err_msg=s.label)


@pytest.mark.parametrize("rt_file", ["rt.dcm", "non_existent_reference_rt.dcm"])
def test_rt_utils_data_against_rt_utils_and_the_contour_areas(rt_file):
    """By the centre rule (the default): rt-utils rounds vertices to whole pixels and fills the
    pixels on the outline too (cv2.fillPoly), so its masks are ours plus a rim of at most one
    voxel, 4-13 % larger than the area the contours enclose. Ours are within 0.1 % of that area
    (2 % for the 2-contour ring of rt.dcm, whose hole is small); the Dice between the two is
    0.976-0.982 on the four 20-40 mm structures and 0.93 on the small ring."""
    ref = sb.read_series(RTU)
    report = Report()
    seg = sb.read(RTU / rt_file, reference=ref, report=report)
    theirs = rt_utils_masks(ref, RTU / rt_file)
    ds = pydicom.dcmread(RTU / rt_file)
    zs = {round(float(p[2]), 2) for p in ref.grid.slice_positions()}
    px = float(ref.grid.spacing[1] * ref.grid.spacing[2])
    for s in seg.segments:
        ours = seg.mask(s.number)
        other = theirs[s.label]
        assert not (ours & ~other).any()  # nothing of ours outside theirs
        assert not (other & ~dilate(ours)).any()  # theirs = ours + a rim of one voxel at most
        d = dice(ours, other)
        assert d >= (0.92 if rt_file == "rt.dcm" else 0.975), (s.label, d)
        item = next(i for i in ds.ROIContourSequence if i.ReferencedROINumber == s.number)
        areas: dict[float, list[float]] = {}
        for c in item.ContourSequence:
            p = np.array(c.ContourData, float).reshape(-1, 3)
            a = 0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) -
                          np.dot(p[:, 1], np.roll(p[:, 0], -1)))
            if round(float(p[0, 2]), 2) in zs:
                areas.setdefault(round(float(p[0, 2]), 2), []).append(a)
        enclosed = sum(max(v) - (sum(v) - max(v)) for v in areas.values()) / px
        tol = 0.03 if rt_file == "rt.dcm" else 0.001
        assert abs(ours.sum() - enclosed) / enclosed <= tol, (s.label, ours.sum(), enclosed)
        assert other.sum() > ours.sum()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """An RTSTRUCT we write from the dcmqi NRRDs (three organs) on the dcmqi CT."""
    out = tmp_path_factory.mktemp("written")
    ref = sb.read_series(CT3)
    seg = sb.read([DCMQI / "liver_seg.nrrd", DCMQI / "spine_seg.nrrd", DCMQI / "heart_seg.nrrd"],
                  reference=ref)
    path = out / "rt.dcm"
    sb.write(seg, path, to="rtstruct")
    return path, ref, seg


def test_rt_utils_loads_what_we_write(written):
    """rt-utils reads our contours without error, to our masks voxel for voxel: the vertices
    sit 1/32 voxel inside, so its rounding lands on the boundary voxels themselves."""
    path, ref, seg = written
    theirs = rt_utils_masks(ref, path)
    assert sorted(theirs) == sorted(s.label for s in seg.segments)
    for s in seg.segments:
        np.testing.assert_array_equal(theirs[s.label], seg.mask(s.number), err_msg=s.label)
    back = sb.read(path, reference=ref, contour_fill="rt-utils")
    same_masks(seg, back)


def test_plastimatch_loads_what_we_write(written, tmp_path):
    """Voxel for voxel when plastimatch is told inner contours are holes (--xor-contours);
    without it plastimatch fills the liver's one hole (13 voxels), nothing else."""
    path, ref, seg = written
    theirs = plastimatch_masks(path, CT3, tmp_path / "xor", xor=True)
    union = plastimatch_masks(path, CT3, tmp_path / "or")
    for s in seg.segments:
        ours = seg.mask(s.number)
        np.testing.assert_array_equal(theirs[s.label], ours, err_msg=s.label)
        assert (union[s.label] & ~ours).sum() == (13 if s.number == 1 else 0)
        assert not (ours & ~union[s.label]).any()


def test_an_empty_segment_is_an_roi_without_contours(tmp_path):
    """Valid DICOM (Contour Sequence left out: present, it needs 1-n items), read back empty
    with a warning. rt-utils cannot read such an ROI (it expects a Contour Sequence); the
    other ROI of the file still loads in it."""
    from rt_utils import RTStructBuilder

    shape = (3, 20, 20)
    grid = Grid(shape, (-20.0, 13.0, 40.0), (2.5, 1.0, 1.0), np.eye(3),
                frame_of_reference_uid="1.2.3.12")
    write_ct_series(tmp_path / "ct", np.zeros(shape), grid, uid_seed="empty")
    ref = sb.read_series(tmp_path / "ct")
    box = np.zeros(shape, bool)
    box[1, 5:9, 5:9] = True
    seg = Segmentation.from_masks(ref.grid, [(Segment(1, "box"), box),
                                             (Segment(2, "nothing"), np.zeros(shape, bool))],
                                  source=ref.source)
    out = tmp_path / "rt.dcm"
    sb.write(seg, out, to="rtstruct")
    assert "ContourSequence" not in pydicom.dcmread(out).ROIContourSequence[1]
    assert dciodvfy_errors(out) == []
    report = Report()
    back = sb.read(out, reference=ref, report=report)
    assert back.voxel_counts().get(2, 0) == 0 and any("it is empty" in w for w in report.warnings)
    rts = RTStructBuilder.create_from(str(tmp_path / "ct"), str(out))
    assert rts.get_roi_mask_by_name("box").sum() == 16
    with pytest.raises(AttributeError, match="ContourSequence"):
        rts.get_roi_mask_by_name("nothing")


def test_dciodvfy_reports_no_errors(written):
    errors = dciodvfy_errors(written[0])
    assert errors == [], "\n".join(errors)


def test_rtstruct_to_seg_to_rtstruct_keeps_every_roi_name_and_colour(tmp_path, pps_ref):
    rt = PPS / "STRUCTURES" / "Cylinder_30_0.dcm"
    first = sb.read(rt, reference=pps_ref)
    seg_path = tmp_path / "seg.dcm"
    sb.write(first, seg_path, profile="slicer")
    again = sb.read(seg_path, reference=pps_ref)
    rt2 = tmp_path / "rt2.dcm"
    sb.write(again, rt2, to="rtstruct")
    ds = pydicom.dcmread(rt2)
    src = pydicom.dcmread(rt)
    names = [r.ROIName for r in src.StructureSetROISequence]
    assert [r.ROIName for r in ds.StructureSetROISequence] == names
    colours = {i.ReferencedROINumber: list(i.ROIDisplayColor) for i in src.ROIContourSequence
               if "ROIDisplayColor" in i}
    by_name = {r.ROINumber: r.ROIName for r in src.StructureSetROISequence}
    ours = {r.ROINumber: r.ROIName for r in ds.StructureSetROISequence}
    for item in ds.ROIContourSequence:
        name = ours[item.ReferencedROINumber]
        want = next((c for n, c in colours.items() if by_name[n] == name), None)
        if want is not None:
            assert list(item.ROIDisplayColor) == want, name
    same_masks(first, sb.read(rt2, reference=pps_ref))


# --- bad input: warnings or one clear message, never a crash ----------------------------------
@pytest.mark.parametrize("name, expected", [
    ("invalid_reference_rt.dcm", "lies on no slice"),
    ("non_existent_reference_rt.dcm", "names no referenced series"),
])
def test_rt_utils_broken_reference_files(name, expected):
    report = Report()
    seg = sb.read(RTU / name, reference=sb.read_series(RTU), report=report)
    assert any(expected in w for w in report.warnings), report.warnings
    assert len(seg.segments) == 4


def _edited(tmp_path: Path, edit) -> Path:
    ds = pydicom.dcmread(PPS / "STRUCTURES" / "Sphere_30_0.dcm")
    edit(ds)
    out = tmp_path / "edited.dcm"
    ds.save_as(out)
    return out


def test_wrong_point_count_few_points_and_off_slice_contours_are_warnings(tmp_path, pps_ref):
    def edit(ds):
        cs = ds.ROIContourSequence[0].ContourSequence  # the sphere (POI_1 has none)
        cs[3].NumberOfContourPoints = int(cs[3].NumberOfContourPoints) + 5
        cs[4].ContourData = list(cs[4].ContourData)[:6]
        cs[4].NumberOfContourPoints = 2
        pts = np.array(cs[5].ContourData, float).reshape(-1, 3)
        pts[:, 2] += 200.0  # far outside the series
        cs[5].ContourData = [float(v) for v in pts.ravel()]
        point = pydicom.Dataset()
        point.ContourGeometricType = "POINT"
        point.NumberOfContourPoints = 1
        point.ContourData = [1.0, 2.0, 3.0]
        cs.append(point)

    report = Report()
    seg = sb.read(_edited(tmp_path, edit), reference=pps_ref, report=report)
    text = "\n".join(report.warnings)
    for expected in ("NumberOfContourPoints disagrees", "fewer than 3 points (only the voxels",
                     "lies on no slice", "POINT contour(s): kept as metadata"):
        assert expected in text, text
    s = seg.segment(2)
    assert s.extras["rt_other_contours"] == [{"type": "POINT", "points": [[1.0, 2.0, 3.0]]}]
    assert seg.voxel_counts()[2] > 0


def test_structure_set_without_referenced_series_is_a_warning(tmp_path, pps_ref):
    path = _edited(tmp_path, lambda ds: delattr(ds, "ReferencedFrameOfReferenceSequence"))
    report = Report()
    seg = sb.read(path, reference=pps_ref, report=report)
    assert any("names no referenced series" in w for w in report.warnings)
    assert seg.voxel_counts()[2] == 6584


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_needs_reference_for_rtstruct(tmp_path):
    res = _cli("convert", PPS / "STRUCTURES" / "Sphere_30_0.dcm", "-o", tmp_path / "x.nii.gz")
    assert res.returncode == 1 and "--reference" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    with pytest.raises(InvalidInputError, match="--reference"):
        sb.read(PPS / "STRUCTURES" / "Sphere_30_0.dcm")


def test_cli_convert_and_info(tmp_path):
    rt = PPS / "STRUCTURES" / "Cone_30_0.dcm"
    res = _cli("info", rt, "--json")
    assert res.returncode == 0, res.stderr
    import json

    info = json.loads(res.stdout)
    cone = next(r for r in info["rois"] if r["name"] == "Cone_30_0")
    assert info["format"] == "rtstruct" and cone["contours"] == 9 and cone["slices"] == 9
    assert info["referenced_series"] == "1.3.6.1.4.1.22213.2.6291.2.1.1"
    nii = tmp_path / "cone.nii.gz"
    assert _cli("convert", rt, "-r", PPS_CT, "-o", nii).returncode == 0
    back = tmp_path / "cone_rt.dcm"
    res = _cli("convert", nii, "-r", PPS_CT, "--to", back)
    assert res.returncode == 0, res.stderr
    res = _cli("convert", nii, "-r", PPS_CT, "-o", tmp_path / "b.dcm", "--to", "rtstruct")
    assert res.returncode == 0, res.stderr
    for p in (back, tmp_path / "b.dcm"):
        assert pydicom.dcmread(p).Modality == "RTSTRUCT"
    ref = sb.read_series(PPS_CT)
    same_masks(sb.read(rt, reference=ref).subset([2]),
               sb.read(back, reference=ref).subset([2]))


def test_cli_contour_fill_rt_utils(tmp_path):
    """convert --contour-fill rt-utils writes rt-utils' masks; a bad rule is a usage error."""
    ref = sb.read_series(RTU)
    out = tmp_path / "rt.nii.gz"
    res = _cli("convert", RTU / "rt.dcm", "-r", RTU, "--contour-fill", "rt-utils", "-o", out)
    assert res.returncode == 0, res.stderr
    ring = sb.read(out, reference=ref).mask(1)
    np.testing.assert_array_equal(ring, rt_utils_masks(ref, RTU / "rt.dcm")["ROI-1"])
    centre = tmp_path / "centre.nii.gz"
    assert _cli("convert", RTU / "rt.dcm", "-r", RTU, "-o", centre).returncode == 0
    assert sb.read(centre, reference=ref).mask(1).sum() < ring.sum()
    res = _cli("convert", RTU / "rt.dcm", "-r", RTU, "--contour-fill", "round", "-o",
               tmp_path / "x.nii.gz")
    assert res.returncode == 2 and res.stderr.strip() == (
        "segbridge convert: error: Invalid value for '--contour-fill': 'round' is not one of "
        "'centre', 'rt-utils'. (see --help)")
    assert not (tmp_path / "x.nii.gz").exists()
    with pytest.raises(InvalidInputError, match="contour fill must be one of centre, rt-utils"):
        sb.read(DCMQI / "liver_seg.nrrd", contour_fill="round")


def test_batch_contour_fill_column(tmp_path):
    """A manifest's contour_fill column reaches the reader; a bad rule fails only its case."""
    from segbridge.batch import run_batch

    m = tmp_path / "m.csv"
    m.write_text(f"case,inputs,reference,output,contour_fill\n"
                 f"ring,{RTU / 'rt.dcm'},{RTU},ring.nii.gz,rt-utils\n"
                 f"bad,{RTU / 'rt.dcm'},{RTU},bad.nii.gz,round\n")
    rows = {r["case"]: r for r in run_batch(m, tmp_path / "out").rows}
    assert rows["ring"]["status"] == "ok", rows["ring"]
    assert rows["bad"]["status"] == "error" and "round" in rows["bad"]["message"]
    assert "\n" not in rows["bad"]["message"] and not (tmp_path / "out" / "bad.nii.gz").exists()
    ref = sb.read_series(RTU)
    np.testing.assert_array_equal(sb.read(tmp_path / "out" / "ring.nii.gz", reference=ref).mask(1),
                                  rt_utils_masks(ref, RTU / "rt.dcm")["ROI-1"])


def test_contours_through_voxel_centres_read_back_exactly(tmp_path):
    """rt-utils draws its contours through the centres of the boundary voxels (OpenCV chains):
    with the 'on the contour counts' half of the rule, its RTSTRUCT gives the mask back."""
    from rt_utils import RTStructBuilder

    ref = sb.read_series(CT3)
    seg = sb.read([DCMQI / "liver_seg.nrrd", DCMQI / "spine_seg.nrrd"], reference=ref)
    rts = RTStructBuilder.create_new(dicom_series_path=str(CT3))
    order = [str(d.SOPInstanceUID) for d in rts.series_data]
    uids = [i.sop_instance_uid for i in ref.source.instances]
    for s in seg.segments:
        m = seg.mask(s.number)
        rts.add_roi(mask=np.stack([m[uids.index(u)] for u in order], axis=2), name=s.label)
    out = tmp_path / "rtutils.dcm"
    rts.save(str(out))
    back = sb.read(out, reference=ref)
    same_masks(seg, back)
    same_masks(seg, sb.read(out, reference=ref, contour_fill="rt-utils"))


# --- hostile contour data (issue 11, class 5): warnings naming the ROI, never a crash -------
def _contour_data(i, values, replace=None):
    def edit(ds):
        ds.ROIContourSequence[0].ContourSequence[i].ContourData = values
    return edit, replace


HOSTILE_CONTOURS = {
    # pydicom cannot write a non-number: a unique number is written, then its bytes replaced
    "not-numeric": (_contour_data(3, ["1.2345678", *map(str, range(2, 10))],
                                  (b"1.2345678", b"1.2x45678")),
                    "ContourData holds values that are not numbers (skipped)"),
    "nan": (_contour_data(3, ["nan", "2", "3"] * 3), "NaN or infinite coordinates"),
    "inf": (_contour_data(3, ["-inf", "2", "3"] * 3), "NaN or infinite coordinates"),
    "overflow": (_contour_data(3, ["1e308", "1e308", "-1e308"] * 3), "lies on no slice"),
    "odd-count": (_contour_data(3, ["1", "2", "3", "4"]), "not a list of x, y, z triplets"),
    "no-data": ((lambda ds: delattr(ds.ROIContourSequence[0].ContourSequence[2],
                                    "ContourData"), None), "a contour has no ContourData"),
    "missing-roi": ((lambda ds: setattr(ds.ROIContourSequence[0], "ReferencedROINumber", 99),
                     None), "references ROI 99, which is not defined"),
    "duplicate-roi": ((lambda ds: setattr(ds.StructureSetROISequence[1], "ROINumber",
                                          ds.StructureSetROISequence[0].ROINumber), None),
                      "defined twice"),
}


@pytest.mark.parametrize("name", list(HOSTILE_CONTOURS))
def test_hostile_contour_data_is_a_warning_naming_the_roi(tmp_path, pps_ref, name):
    import warnings

    (edit, replace), expected = HOSTILE_CONTOURS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the very values written
        path = _edited(tmp_path, edit)
    if replace is not None:
        raw = path.read_bytes()
        assert raw.count(replace[0]) == 1
        path.write_bytes(raw.replace(*replace))
    report = Report()
    sb.read(path, reference=pps_ref, report=report)
    text = "\n".join(report.warnings)
    assert expected in text, text
    if name not in ("missing-roi", "duplicate-roi"):
        assert "ROI 2 contour" in text, text
    with pytest.raises(InvalidInputError, match="strict mode"):
        sb.read(path, reference=pps_ref, strict=True)
    info = _cli("info", path, "--json")
    assert info.returncode == 0 and "internal error" not in info.stderr, info.stderr


def test_cli_non_numeric_contour_data(tmp_path, pps_ref):
    (edit, replace), _ = HOSTILE_CONTOURS["not-numeric"]
    path = _edited(tmp_path, edit)
    path.write_bytes(path.read_bytes().replace(*replace))
    out = tmp_path / "out"
    out.mkdir()
    res = _cli("convert", path, "-r", PPS_CT, "-o", out / "x.nii.gz")
    assert res.returncode == 0, res.stderr
    assert "edited.dcm: ContourData holds values that are not numbers (skipped): 1 " \
           "contour(s), ROI 2 contour 4" in res.stderr
    res = _cli("convert", path, "-r", PPS_CT, "-o", out / "y.nii.gz", "--strict")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr and not (out / "y.nii.gz").exists()


def test_unknown_contour_geometric_type_is_refused(tmp_path):
    """Found by the fuzzer: one flipped byte made CLOSED_PLANAR 'C\\x0eOSED_PLANAR' and the
    contour (the ring's hole) was dropped silently, filling the ring. Not a defined term:
    refused with one line, since dropping or guessing both change voxels."""
    src = RTU / "rt.dcm"
    raw = bytearray(src.read_bytes())
    at = raw.index(b"CLOSED_PLANAR")
    raw[at + 1] ^= 0x42
    bad = tmp_path / "rt.dcm"
    bad.write_bytes(bytes(raw))
    ref = sb.read_series([RTU / "ct_1.dcm", RTU / "ct_2.dcm"])
    with pytest.raises(sb.InvalidInputError, match=r"ROI 1 contour 1 has ContourGeometricType"):
        sb.read(bad, reference=ref)


def test_contour_naming_an_image_outside_the_series_is_placed_by_its_plane(tmp_path):
    """Found by the fuzzer: a damaged ReferencedSOPInstanceUID. rt-utils drops the contour;
    by the standard its coordinates place it. Same voxels as the intact file, and a warning."""
    import pydicom

    ds = pydicom.dcmread(RTU / "rt.dcm")
    ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0] \
        .ReferencedSOPInstanceUID = "1.2.3.4.5"
    bad = tmp_path / "rt.dcm"
    ds.save_as(bad)
    ref = sb.read_series([RTU / "ct_1.dcm", RTU / "ct_2.dcm"])
    want = sb.read(RTU / "rt.dcm", reference=ref)
    got = sb.read(bad, reference=ref)
    np.testing.assert_array_equal(got.labelmap(), want.labelmap())
    assert any("names an image that is not in the reference series" in w
               for w in got.report.warnings), got.report.warnings
