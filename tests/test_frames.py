"""Frame space (issue 15, point 4): segmentations of 2-D and cine images without patient geometry.

A synthetic US cine (64 frames, US Multi-frame Image Storage) and single-frame DX images are
read as frame space (slice k = referenced frame k); masks go to BINARY / LABELMAP / FRACTIONAL
SEGs and back, checked pixel for pixel by highdicom (its per-source-frame access), pydicom and
nibabel, and by dciodvfy; the dcmjs mammography SEG (non-conformant) is read with findings.
"""

import os
import subprocess
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import DATA, dciodvfy_errors

import segbridge as sb
from segbridge import synthetic
from segbridge.validate import validate

MG_SEG = DATA / "dcmjs/examples/data/seg-test-SEG.dcm"
FRAMES, ROWS, COLS = 64, 32, 48


@pytest.fixture(scope="module")
def two_d(tmp_path_factory):
    d = tmp_path_factory.mktemp("two-d")
    return {"us": synthetic.write_us_cine(d / "us.dcm", FRAMES, ROWS, COLS),
            "dx": synthetic.write_dx(d / "dx.dcm"),
            "dx_imager": synthetic.write_dx(d / "dx_imager.dcm", pixel_spacing=None)}


@pytest.fixture(scope="module")
def us(two_d):
    return sb.read_series(two_d["us"])


def cine_labels() -> np.ndarray:
    """Two segments on some frames of the cine; frames 0-4, 30-63 empty."""
    a = np.zeros((FRAMES, ROWS, COLS), np.uint8)
    a[5:20, 4:12, 6:20] = 1
    a[10:30, 10:20, 15:40] = 2
    a[12, 0, 0] = 1  # a corner pixel
    return a


def cine_masks() -> np.ndarray:
    """Two overlapping masks (BINARY overlap): segment 2 contains segment 1 on frames 5-19."""
    a = cine_labels()
    return np.stack([a == 1, a > 0])


def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def highdicom_frames(path, source_uid: str, n: int, labelmap: bool) -> np.ndarray:
    seg = hd.seg.segread(path)
    return seg.get_pixels_by_source_frame(source_uid, source_frame_numbers=list(range(1, n + 1)),
                                          combine_segments=labelmap,
                                          assert_missing_frames_are_empty=True,
                                          rescale_fractional=False)


# -- reading the images -------------------------------------------------------------------------
def test_us_cine_is_frame_space(us):
    assert us.grid.shape == (FRAMES, ROWS, COLS)
    assert not us.source.has_geometry and us.source.frame_space
    uid = us.source.instances[0].sop_instance_uid
    assert [(i.sop_instance_uid, i.frame_number) for i in us.source.instances] == \
        [(uid, k + 1) for k in range(FRAMES)]
    assert us.source.frame_of_reference_uid is None and us.source.pixel_spacing_strings is None
    assert us.report.warnings == [] and any("frame space" in n for n in us.report.notes)
    ds = pydicom.dcmread(us.paths[0])
    np.testing.assert_array_equal(us.stored_pixels()[0], ds.pixel_array)


def test_single_frame_dx_images_are_ordered_by_instance_number(tmp_path):
    paths = [synthetic.write_dx(tmp_path / f"dx{i}.dcm", uid_seed=f"s{i}") for i in range(3)]
    for p, number in zip(paths, (3, 1, 2), strict=True):
        ds = pydicom.dcmread(p)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
        ds.InstanceNumber = number
        ds.save_as(p)
    ref = sb.read_series(tmp_path)
    assert ref.grid.shape == (3, 40, 56) and ref.source.frame_space
    assert [ref.paths[k].name for k in range(3)] == ["dx1.dcm", "dx2.dcm", "dx0.dcm"]
    assert ref.source.pixel_spacing_strings == ["0.2", "0.25"]
    assert ref.source.patient_orientation == ["A", "F"]


def test_order_without_instance_numbers_and_odd_pixel_spacing_are_said(tmp_path):
    paths = [synthetic.write_dx(tmp_path / f"dx{i}.dcm", uid_seed=f"t{i}") for i in range(2)]
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.5"
        ds.PixelSpacing = ["0", "0.2"]
        if "InstanceNumber" in ds:
            del ds.InstanceNumber
        ds.save_as(p)
    r = sb.Report()
    ref = sb.read_series(tmp_path, report=r)
    assert any("ordered by SOP Instance UID" in w for w in r.warnings)
    assert any("PixelSpacing 0/0.2 is not two positive numbers" in w for w in r.warnings)
    # ImagerPixelSpacing is used for the grid, and no Pixel Measures are claimed
    assert ref.source.pixel_spacing_strings is None
    assert [round(float(v), 3) for v in ref.grid.spacing[1:]] == [0.18, 0.225]


def test_enhanced_2d_image_without_plane_positions_is_frame_space(two_d, tmp_path):
    """An enhanced XA-like image: functional groups, none of them placing a frame in space."""
    ds = pydicom.dcmread(two_d["us"])
    ds.Modality = "XA"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1.1"
    items = []
    for k in range(FRAMES):
        fc = pydicom.Dataset()
        fc.FrameAcquisitionNumber = k + 1
        fg = pydicom.Dataset()
        fg.FrameContentSequence = pydicom.Sequence([fc])
        items.append(fg)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence(items)
    ds.SharedFunctionalGroupsSequence = pydicom.Sequence([pydicom.Dataset()])
    path = tmp_path / "xa.dcm"
    ds.save_as(path)
    ref = sb.read_series(path)
    assert ref.source.frame_space and ref.grid.shape == (FRAMES, ROWS, COLS)
    assert [i.frame_number for i in ref.source.instances] == list(range(1, FRAMES + 1))


def test_a_2d_image_with_a_frame_of_reference_keeps_it(two_d, tmp_path):
    """A cine that has a Frame of Reference (but no plane positions): still frame space; the
    SEG carries the same FoR UID (PS3.3 A.51.1), no positions, and reads back by reference."""
    ds = pydicom.dcmread(two_d["us"])
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid(entropy_srcs=["frames-for"])
    ds.PositionReferenceIndicator = ""
    path = tmp_path / "us_for.dcm"
    ds.save_as(path)
    ref = sb.read_series(path)
    assert ref.source.frame_space and ref.source.frame_of_reference_uid == ds.FrameOfReferenceUID
    want = cine_masks()
    out = tmp_path / "seg.dcm"
    sb.write(sb.from_array(want, ref), out, type="binary", profile="archive",
             compression="none", reference=ref)
    seg = pydicom.dcmread(out)
    assert seg.FrameOfReferenceUID == ds.FrameOfReferenceUID
    assert all("PlanePositionSequence" not in fg for fg in seg.PerFrameFunctionalGroupsSequence)
    assert "PlaneOrientationSequence" not in seg.SharedFunctionalGroupsSequence[0]
    assert dciodvfy_errors(out) == []
    theirs = highdicom_frames(out, ds.SOPInstanceUID, FRAMES, False)
    for i in range(2):
        np.testing.assert_array_equal(theirs[..., i] != 0, want[i])
    back = sb.read(out, reference=ref)
    assert back.frame_space and back.grid.shape == (FRAMES, ROWS, COLS)
    for i in range(2):
        np.testing.assert_array_equal(back.mask(i + 1), want[i])
    assert validate(out, reference=ref).errors == []
    # a frame without its Derivation Image is tied to nothing: SEG-GEOMETRY
    del seg.PerFrameFunctionalGroupsSequence[3].DerivationImageSequence
    broken = tmp_path / "broken.dcm"
    seg.save_as(broken)
    assert "SEG-GEOMETRY" in {f.rule for f in validate(broken).errors}


def test_cross_sectional_multiframe_without_geometry_is_still_refused():
    with pytest.raises(sb.InvalidInputError, match="without per-frame functional groups"):
        sb.read_series(DATA / "pydicom-data/data_store/data/emri_small.dcm")


# -- writing SEGs: highdicom, dciodvfy, segbridge read back ------------------------------------
@pytest.mark.parametrize("kind", ["binary", "labelmap", "fractional"])
def test_cine_seg_round_trip(kind, us, tmp_path):
    uid = us.source.instances[0].sop_instance_uid
    if kind == "labelmap":
        want = cine_labels()
        model = sb.from_array(want, us)
    elif kind == "binary":
        want = cine_masks()
        model = sb.from_array(want, us)
    else:
        want = cine_masks()
        model = sb.from_array(want.astype(float), us, fractional=True)
    out = tmp_path / f"{kind}.dcm"
    files = sb.write(model, out, type=kind, profile="archive", compression="none",
                     reference=us)
    assert files == [out]
    ds = pydicom.dcmread(out)
    # no patient geometry invented; frames linked by SOP instance + frame number
    assert "FrameOfReferenceUID" not in ds and "PositionReferenceIndicator" not in ds
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert not {"PlaneOrientationSequence", "PixelMeasuresSequence"} & set(shared.dir())
    assert ds.PatientOrientation == ""
    referenced = set()
    for fg in ds.PerFrameFunctionalGroupsSequence:
        assert "PlanePositionSequence" not in fg
        src = fg.DerivationImageSequence[0].SourceImageSequence[0]
        assert src.ReferencedSOPInstanceUID == uid
        referenced.add(int(src.ReferencedFrameNumber))
        assert fg.FrameContentSequence[0].FrameLabel.startswith("SOURCE FRAME")
    assert referenced == set(range(6, 31)) | ({13} if kind != "labelmap" else set())
    pointers = [int(d.DimensionIndexPointer) for d in ds.DimensionIndexSequence]
    assert pointers[-1] == 0x00209453 and (pointers[0] == 0x0062000B) == (kind != "labelmap")
    if kind != "labelmap":  # dciodvfy's 2022 tables do not know Label Map Segmentation
        assert dciodvfy_errors(out) == []
    theirs = highdicom_frames(out, uid, FRAMES, kind == "labelmap")
    if kind == "labelmap":
        np.testing.assert_array_equal(theirs, want)
    else:
        for i in range(2):
            np.testing.assert_array_equal(theirs[..., i] != 0, want[i])
    for reference in (us, None):
        back = sb.read(out, reference=reference)
        assert back.frame_space
        if reference is None:  # one slice per referenced source frame, in frame order
            assert [i.frame_number for i in back.source.instances] == list(range(6, 31))
            z = slice(5, 30)
        else:
            assert back.grid.shape == (FRAMES, ROWS, COLS)
            z = slice(None)
        if kind == "labelmap":
            np.testing.assert_array_equal(back.mask(1), (want == 1)[z])
            np.testing.assert_array_equal(back.mask(2), (want == 2)[z])
        else:
            for i, n in enumerate(back.numbers):
                np.testing.assert_array_equal(back.mask(n), want[i][z])
    assert validate(out, reference=us).errors == []


@pytest.mark.parametrize("profile", ["ohif", "slicer", "archive", "dense"])
def test_every_profile_and_compression_validates_and_reads_back(profile, us, tmp_path):
    want = cine_labels()
    model = sb.from_array(want, us)
    frac = sb.from_array(cine_masks().astype(float) * 0.5, us, fractional=True)
    written = 0
    for kind in ("auto", "binary", "labelmap", "fractional"):
        for comp in (None, "rle", "jpeg2000", "deflate"):
            out = tmp_path / f"{kind}-{comp}.dcm"
            try:
                files = sb.write(frac if kind == "fractional" else model, out, type=kind,
                                 profile=profile, compression=comp, reference=us)
            except (sb.errors.ValidationFailed, sb.UnsupportedError) as exc:
                assert not list(tmp_path.glob(f"{kind}-{comp}*"))
                if profile == "slicer" and isinstance(exc, sb.errors.ValidationFailed):
                    # dcmqi places frames by Plane Position only
                    assert "SLICER-PLANE-POSITIONS" in {f.rule for f in exc.findings}, exc
                continue
            for f in files:
                assert validate(f, reference=us).errors == []
            back = sb.read(files[0], reference=us)
            if kind == "fractional":
                np.testing.assert_array_equal(back.fraction(1), (want == 1) * 128)
            else:
                np.testing.assert_array_equal(back.mask(1), want == 1)
            written += 1
    assert written == 0 if profile == "slicer" else written >= 8


def test_binary_overlap_is_kept(us, tmp_path):
    model = sb.from_array(cine_masks(), us)
    assert model.has_overlap()
    out = sb.write(model, tmp_path / "o.dcm", type="binary", profile="archive", reference=us)[0]
    assert pydicom.dcmread(out).SegmentsOverlap == "YES"
    back = sb.read(out, reference=us)
    np.testing.assert_array_equal(back.mask(1) & back.mask(2), cine_masks()[0])


def test_a_2d_nifti_is_one_frame_of_a_single_dx(two_d, tmp_path):
    """A mask of one 2-D image saved as a 2-D NIfTI (x, y) is that image's one frame."""
    dx = sb.read_series(two_d["dx"])
    a = np.zeros(dx.grid.shape[1:], np.uint8)
    a[5:20, 6:30] = 1
    nib.save(nib.Nifti1Image(a.T.copy(), np.eye(4)), tmp_path / "m.nii.gz")
    seg = sb.read(tmp_path / "m.nii.gz", reference=dx)
    assert seg.grid.shape == dx.grid.shape
    np.testing.assert_array_equal(seg.mask(1)[0], a == 1)
    wrong = np.zeros((3, 4), np.uint8)
    nib.save(nib.Nifti1Image(wrong, np.eye(4)), tmp_path / "w.nii.gz")
    with pytest.raises(sb.SegbridgeError, match="does not match the 2-D / cine reference"):
        sb.read(tmp_path / "w.nii.gz", reference=dx)


def test_dx_seg(two_d, tmp_path):
    dx = sb.read_series(two_d["dx"])
    a = np.zeros(dx.grid.shape, np.uint8)
    a[0, 5:20, 6:30] = 1
    a[0, 25:35, 10:50] = 2
    out = sb.write(sb.from_array(a, dx), tmp_path / "dx.dcm", type="binary", profile="archive",
                   reference=dx)[0]
    assert dciodvfy_errors(out) == []
    ds = pydicom.dcmread(out)
    assert "FrameOfReferenceUID" not in ds and list(ds.PatientOrientation) == ["A", "F"]
    for fg in ds.PerFrameFunctionalGroupsSequence:
        src = fg.DerivationImageSequence[0].SourceImageSequence[0]
        assert "ReferencedFrameNumber" not in src
    # Pixel Measures as highdicom writes them for this DX (PixelSpacing; no SliceThickness,
    # which the source does not have: CP 1426 requires it only with a Frame of Reference)
    src_ds = pydicom.dcmread(two_d["dx"])
    desc = hd.seg.SegmentDescription(
        1, "a", hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        hd.sr.CodedConcept("85756007", "SCT", "Tissue"), hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    theirs = hd.seg.Segmentation([src_ds], a.astype(bool), hd.seg.SegmentationTypeValues.BINARY,
                                 [desc], hd.UID(), 1, hd.UID(), 1, "x", "y", "1", "1")
    def items(seq):
        return [(e.keyword, [float(v) for v in e.value]) for e in seq[0]]
    assert items(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence) == \
        items(theirs.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence) == \
        [("PixelSpacing", [0.2, 0.25])]
    # pixels, read by pydicom frame by frame
    px = ds.pixel_array.reshape(-1, *a.shape[1:])
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        n = fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_array_equal(px[i] != 0, a[0] == n)
    back = sb.read(out, reference=dx)
    np.testing.assert_array_equal(back.layers[0], a)


@pytest.mark.parametrize("kind", ["binary", "labelmap"])
def test_dx_without_pixel_spacing_read_back_by_highdicom(kind, two_d, tmp_path):
    dx = sb.read_series(two_d["dx_imager"])
    assert dx.source.pixel_spacing_strings is None  # ImagerPixelSpacing only
    assert list(dx.grid.spacing[1:]) == [0.18, 0.225]  # used for NIfTI zooms
    a = np.zeros(dx.grid.shape, np.uint8)
    a[0, 1:9, 2:50] = 1
    a[0, 20:39, 0:3] = 2
    out = sb.write(sb.from_array(a, dx), tmp_path / "dx.dcm", type=kind, profile="archive",
                   reference=dx)[0]
    if kind == "binary":
        assert dciodvfy_errors(out) == []
    assert "PixelMeasuresSequence" not in pydicom.dcmread(out).SharedFunctionalGroupsSequence[0]
    seg = hd.seg.segread(out)
    px = seg.get_pixels_by_source_instance([dx.source.instances[0].sop_instance_uid],
                                           combine_segments=True)
    np.testing.assert_array_equal(px, a)


# -- NIfTI and arrays ---------------------------------------------------------------------------
def test_nifti_round_trip_places_by_index(us, two_d, tmp_path):
    want = cine_labels()
    seg = sb.read(sb.write(sb.from_array(want, us), tmp_path / "s.dcm", type="labelmap",
                           reference=us)[0], reference=us)
    nii = tmp_path / "s.nii.gz"
    sb.write(seg, nii)
    img = nib.load(nii)
    assert img.shape == (COLS, ROWS, FRAMES)
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 0
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), want)
    back = sb.read(nii, reference=us)
    assert back.frame_space
    np.testing.assert_array_equal(back.layers[0], want)
    np.testing.assert_array_equal(back.labelmap(), want)  # back to NumPy: (frames, rows, cols)
    # a NIfTI made elsewhere with an arbitrary affine is placed by index just the same
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(want.transpose(2, 1, 0).copy(), np.diag([-3.0, 2, 7, 1])), other)
    np.testing.assert_array_equal(sb.read(other, reference=us).layers[0], want)
    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(want.copy(), np.eye(4)), wrong)  # (frames, rows, cols) as x, y, z
    with pytest.raises(sb.GeometryMismatchError, match="placed by index and must match exactly"):
        sb.read(wrong, reference=us)
    with pytest.raises(sb.InvalidInputError, match="does not fit the grid"):
        sb.from_array(want[:10], us)


def test_nrrd_gets_the_nominal_grid_with_a_warning(us, tmp_path):
    want = cine_labels()
    r = sb.Report()
    out = tmp_path / "s.nrrd"
    sb.write(sb.from_array(want, us), out, report=r)
    assert any("frame-referenced" in w and "nrrd" in w for w in r.warnings)
    np.testing.assert_array_equal(sb.read(out, reference=us).labelmap(), want)


def test_cli_convert_both_ways(us, two_d, tmp_path):
    want = cine_labels()
    nii = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(want.transpose(2, 1, 0).copy(), np.eye(4)), nii)
    seg_path = tmp_path / "seg.dcm"
    r = _cli("convert", nii, "--reference", two_d["us"], "-o", seg_path)
    assert r.returncode == 0, r.stderr + r.stdout
    theirs = highdicom_frames(seg_path, us.source.instances[0].sop_instance_uid, FRAMES, False)
    for n in (1, 2):
        np.testing.assert_array_equal(theirs[..., n - 1] != 0, want == n)
    folder = tmp_path / "cine"  # the reference as a folder
    folder.mkdir()
    (folder / "IM0001").write_bytes(two_d["us"].read_bytes())
    back = tmp_path / "back.nii.gz"
    r = _cli("convert", seg_path, "--reference", folder, "-o", back)
    assert r.returncode == 0, r.stderr + r.stdout
    np.testing.assert_array_equal(np.asarray(nib.load(back).dataobj).transpose(2, 1, 0), want)
    alone = tmp_path / "alone.nii.gz"  # no reference: the referenced frames only
    r = _cli("convert", seg_path, "-o", alone)
    assert r.returncode == 0, r.stderr + r.stdout
    np.testing.assert_array_equal(np.asarray(nib.load(alone).dataobj).transpose(2, 1, 0),
                                  want[5:30])
    wrong = tmp_path / "wrong.nii.gz"
    nib.save(nib.Nifti1Image(want[:5].transpose(2, 1, 0).copy(), np.eye(4)), wrong)
    r = _cli("convert", wrong, "--reference", two_d["us"], "-o", tmp_path / "no.dcm")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "wrong.nii.gz" in r.stderr and not (tmp_path / "no.dcm").exists()


def test_info_and_measurements(us, two_d, tmp_path):
    out = sb.write(sb.from_array(cine_labels(), us), tmp_path / "s.dcm", type="labelmap",
                   reference=us)[0]
    r = _cli("info", out)
    assert r.returncode == 0 and "frame-referenced" in r.stdout, r.stderr
    from segbridge.describe import describe

    assert describe(out)["frame_referenced"] is True
    for cmd in ("stats", "measure"):
        r = _cli(cmd, out, "-i", two_d["us"])
        assert r.returncode == 1 and "frame-referenced" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_rtstruct_is_refused_in_one_line(us, two_d, tmp_path):
    seg_path = sb.write(sb.from_array(cine_labels(), us), tmp_path / "s.dcm", type="labelmap",
                        reference=us)[0]
    r = _cli("convert", seg_path, "-r", two_d["us"], "-o", tmp_path / "rt.dcm", "--to",
             "rtstruct")
    assert r.returncode == 1 and "frame-referenced" in r.stderr, r.stderr
    assert not (tmp_path / "rt.dcm").exists()


def test_render_draws_frames_without_patient_letters_or_mm(us, two_d, tmp_path):
    out = sb.write(sb.from_array(cine_labels(), us), tmp_path / "s.dcm", type="labelmap",
                   reference=us)[0]
    png = tmp_path / "p.png"
    r = _cli("render", out, "-i", two_d["us"], "-o", png)
    assert r.returncode == 0 and png.stat().st_size > 1000, r.stderr
    from segbridge.measure.render import _views

    views = _views(sb.read(out, reference=us), [0, 0, 0])
    assert [v.name for v in views] == ["frame index", "frames x columns", "frames x rows"]
    assert all(v.letters == ("", "", "", "") for v in views)


def test_colour_ultrasound_is_drawn_in_luma(two_d, tmp_path):
    """Real ultrasound is RGB / YBR_FULL_422: the SEG round trip keeps its pixels and render
    draws the frames in grey (BT.601 luma), not an internal error."""
    ds = pydicom.dcmread(two_d["us"])
    rgb = np.zeros((FRAMES, ROWS, COLS, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 10
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = rgb.tobytes()
    path = tmp_path / "us_rgb.dcm"
    ds.save_as(path)
    ref = sb.read_series(path)
    stored, _, _ = ref.stored_pixels()
    assert stored.shape == (FRAMES, ROWS, COLS)
    assert int(stored[0, 0, 0]) == round(200 * 0.299 + 100 * 0.587 + 10 * 0.114)
    want = cine_labels()
    out = sb.write(sb.from_array(want, ref), tmp_path / "s.dcm", type="labelmap",
                   reference=ref)[0]
    np.testing.assert_array_equal(highdicom_frames(out, ds.SOPInstanceUID, FRAMES, True), want)
    png = tmp_path / "p.png"
    r = _cli("render", out, "-i", path, "-o", png)
    assert r.returncode == 0 and png.stat().st_size > 1000, r.stderr


def test_mask_folder_on_a_cine_is_placed_by_index(us, tmp_path):
    want = cine_labels()
    folder = tmp_path / "masks"
    folder.mkdir()
    for n, name in ((1, "heart"), (2, "valve")):
        nib.save(nib.Nifti1Image((want == n).astype(np.uint8).transpose(2, 1, 0).copy(),
                                 np.diag([5.0, 5, 5, 1])), folder / f"{name}.nii.gz")
    seg = sb.read(folder, reference=us)
    assert seg.frame_space and [s.label for s in seg.segments] == ["heart", "valve"]
    np.testing.assert_array_equal(seg.mask(1), want == 1)
    np.testing.assert_array_equal(seg.mask(2), want == 2)


# -- the dcmjs mammography SEG ------------------------------------------------------------------
def test_dcmjs_mammography_seg_is_read_with_findings(tmp_path):
    r = sb.Report()
    seg = sb.read(MG_SEG, report=r)
    assert seg.frame_space and seg.grid.shape == (1, 3328, 2560)
    assert seg.source.instances[0].sop_class_uid == "1.2.840.10008.5.1.4.1.1.1.2"
    res = validate(MG_SEG)
    ids = res.rule_ids()
    assert {"SEG-PATIENT-ORIENTATION", "SEG-PIXEL-MEASURES"} <= ids and "SEG-READER" not in ids
    out = tmp_path / "mg.nii.gz"
    sb.write(seg, out)
    img = nib.load(out)
    assert img.shape == (2560, 3328, 1, 2) and int(img.header["sform_code"]) == 0  # overlap
    assert np.asarray(img.dataobj).any()
