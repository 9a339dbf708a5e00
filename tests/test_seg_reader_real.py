"""Every SEG in ../shared/data whose source is present reads to the same voxels as highdicom
and as the NRRD files shipped next to it; variants highdicom refuses read like liver.dcm."""

import highdicom as hd
import nrrd
import numpy as np
import pydicom
import pytest
from conftest import CT2, CT3, DATA, DCMQI, HD, PYD, WHEEL

import segbridge as sb
from segbridge.errors import UnsupportedError


def nrrd_zyx(path):
    data, _ = nrrd.read(str(path), index_order="C")
    return data


def highdicom_masks(path, ref, *, fractional=False):
    """Per segment number, highdicom's voxels on the reference slices ([z, y, x])."""
    seg = hd.seg.segread(str(path))
    uids = [i.sop_instance_uid for i in ref.source.instances]
    numbers = [int(s.SegmentNumber) for s in seg.SegmentSequence if int(s.SegmentNumber) > 0]
    present = {str(r.ReferencedSOPInstanceUID) for r in
               seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    keep = [u for u in uids if u in present]
    arr = seg.get_pixels_by_source_instance(keep, segment_numbers=numbers,
                                            rescale_fractional=not fractional,
                                            skip_overlap_checks=True,
                                            ignore_spatial_locations=True)
    out = {}
    for j, n in enumerate(numbers):
        vol = np.zeros((len(uids), *arr.shape[1:3]), arr.dtype)
        for i, u in enumerate(keep):
            vol[uids.index(u)] = arr[i, ..., j]
        out[n] = vol
    return out


def test_liver_matches_nrrd_and_highdicom(ct3):
    seg = sb.read(DCMQI / "liver.dcm", reference=ct3)
    expected = nrrd_zyx(DCMQI / "liver_seg.nrrd") != 0
    np.testing.assert_array_equal(seg.mask(1), expected)
    np.testing.assert_array_equal(seg.mask(1), highdicom_masks(DCMQI / "liver.dcm", ct3)[1] != 0)
    assert seg.segment(1).type.value == "10200004"  # SRT T-62000 mapped to SCT


def test_partial_overlaps_matches_nrrds_and_highdicom(ct3):
    seg = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    assert seg.has_overlap() and len(seg.layers) >= 2
    one = nrrd_zyx(DCMQI / "partial_overlaps-1.nrrd")
    expected = {1: one == 1, 4: one == 4, 5: one == 5,
                2: nrrd_zyx(DCMQI / "partial_overlaps-2.nrrd") != 0,
                3: nrrd_zyx(DCMQI / "partial_overlaps-3.nrrd") != 0}
    theirs = highdicom_masks(DCMQI / "partial_overlaps.dcm", ct3)
    for n, m in expected.items():
        np.testing.assert_array_equal(seg.mask(n), m, err_msg=f"segment {n} vs NRRD")
        np.testing.assert_array_equal(seg.mask(n), theirs[n] != 0, err_msg=f"segment {n}")
    both = sum(seg.mask(n).astype(int) for n in seg.numbers) > 1
    assert both.sum() == 3106  # overlapping voxels counted in every segment (MANIFEST)


@pytest.mark.parametrize("size", ["24x38x3", "23x38x3"])
def test_tiny_binary_including_odd_columns(size):
    base = DCMQI / size
    ref = sb.read_series(base / "image")
    seg = sb.read(base / "seg" / "label.seg", reference=ref)
    np.testing.assert_array_equal(seg.mask(1), nrrd_zyx(base / "nrrd" / "label.nrrd") != 0)
    np.testing.assert_array_equal(seg.mask(1),
                                  highdicom_masks(base / "seg" / "label.seg", ref)[1] != 0)
    # the legacy-converted multi-frame version of the same images: placed by position
    mf = sb.read_series(base / "multiframe" / "mf.dcm")
    r = sb.Report()
    on_mf = sb.read(base / "seg" / "label.seg", reference=mf, report=r)
    np.testing.assert_array_equal(on_mf.mask(1), seg.mask(1))
    assert any("placed by position" in w for w in r.warnings)


@pytest.mark.parametrize(("name", "padding"), [("ppv5", 5), ("noppv", 0)])
def test_sparse_labelmaps(name, padding):
    ref = sb.read_series(DCMQI / "24x38x3" / "image")
    seg = sb.read(DCMQI / f"sparse-labelmap-{name}.dcm", reference=ref)
    expected = nrrd_zyx(DCMQI / f"sparse_labelmap_{name}_seg.nrrd")
    assert [s.label for s in seg.segments] == ["Liver"]  # segment 0 "Background" is background
    np.testing.assert_array_equal(seg.mask(1), expected == 1)
    assert np.all(expected[1] == padding)  # the missing middle slice
    assert not seg.mask(1)[1].any()
    np.testing.assert_array_equal(
        seg.mask(1), highdicom_masks(DCMQI / f"sparse-labelmap-{name}.dcm", ref)[1] != 0)


@pytest.mark.parametrize("variant", ["liver_expb.dcm", "liver_rle.dcm", "liver_j2k.dcm",
                                     "liver_deflate.dcm"])
def test_liver_variants_read_like_liver(ct3, variant):
    """Big endian, 1-bit RLE, JPEG 2000 and Deflated Image Frame (highdicom refuses some)."""
    base = sb.read(PYD / "liver.dcm", reference=ct3)
    seg = sb.read(PYD / variant, reference=ct3)
    np.testing.assert_array_equal(seg.mask(1), base.mask(1))
    assert seg.mask(1).sum() == 107098


@pytest.mark.parametrize("variant", ["liver_nonbyte_aligned_rle.dcm",
                                     "liver_nonbyte_aligned_j2k.dcm",
                                     "liver_nonbyte_aligned_deflate.dcm"])
def test_nonbyte_aligned_variants(variant):
    """510x510 frames: native 1-bit runs across byte boundaries; compressed ones do not."""
    expected = pydicom.dcmread(PYD / "liver_nonbyte_aligned.dcm").pixel_array != 0
    base = sb.read(PYD / "liver_nonbyte_aligned.dcm")
    np.testing.assert_array_equal(base.mask(1), expected)
    np.testing.assert_array_equal(sb.read(PYD / variant).mask(1), expected)


def test_nonbyte_aligned_crop_lands_on_the_ct_grid(ct3):
    seg = sb.read(PYD / "liver_nonbyte_aligned.dcm", reference=ct3)
    full = sb.read(PYD / "liver.dcm", reference=ct3).mask(1)
    np.testing.assert_array_equal(seg.mask(1)[:, :510, :510], full[:, :510, :510])


@pytest.mark.parametrize("name", ["seg_image_ct_binary.dcm", "seg_image_ct_binary_overlap.dcm",
                                  "seg_image_ct_binary_fractional.dcm",
                                  "seg_image_ct_true_fractional.dcm"])
def test_highdicom_ct_segs_on_a_series_with_a_gap(ct2, name):
    fractional = "fractional" in name
    seg = sb.read(HD / name, reference=ct2)
    assert seg.is_fractional == fractional
    theirs = highdicom_masks(HD / name, ct2, fractional=fractional)
    for n, arr in theirs.items():
        if fractional:
            np.testing.assert_array_equal(seg.fraction(n), arr)
        else:
            np.testing.assert_array_equal(seg.mask(n), arr != 0)


def test_single_frame_seg_and_projection_image():
    ct = sb.read_series(HD / "ct_image.dcm")
    seg = sb.read(HD / "seg_image_ct_binary_single_frame.dcm", reference=ct)
    np.testing.assert_array_equal(
        seg.mask(1), highdicom_masks(HD / "seg_image_ct_binary_single_frame.dcm", ct)[1] != 0)
    cr = sb.read_series(WHEEL / "dicomdirtests" / "77654033" / "CR1")
    crseg = sb.read(HD / "seg_image_cr_binary.dcm", reference=cr)
    np.testing.assert_array_equal(crseg.mask(1),
                                  highdicom_masks(HD / "seg_image_cr_binary.dcm", cr)[1] != 0)


@pytest.mark.parametrize("path", [DATA / "dcmqi/data/sr-example/seg.dcm",
                                  DATA / "dcmjs/examples/data/QIICR_Test3/"
                                         "tumor_User1_Manual_Trial1.dcm"])
def test_orphan_segs_read_on_their_own_grid(path):
    ds = pydicom.dcmread(path)
    px = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    seg = sb.read(path)
    counts = seg.voxel_counts()
    for s in seg.segments:
        frames = [i for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence)
                  if fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber == s.number]
        assert counts[s.number] == int(px[frames].astype(bool).sum())


def test_slide_microscopy_is_refused_clearly():
    with pytest.raises(UnsupportedError, match="slide-microscopy segmentations are not supported"):
        sb.read(HD / "seg_image_sm_dots_tiled_full.dcm")
    with pytest.raises(UnsupportedError, match="not supported yet"):
        sb.read(HD / "seg_image_sm_control_labelmap.dcm")


def test_nonconformant_mammography_seg_is_read_in_frame_space():
    r = sb.Report()
    seg = sb.read(DATA / "dcmjs/examples/data/seg-test-SEG.dcm", report=r)
    assert seg.frame_space and seg.grid.shape == (1, 3328, 2560)
    assert any("frame space" in n for n in r.notes)
    ds = pydicom.dcmread(DATA / "dcmjs/examples/data/seg-test-SEG.dcm")
    px = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        n = fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        np.testing.assert_array_equal(seg.mask(n)[0], px[i] != 0)


def test_ct2_reference_gap_is_kept_in_the_grid(ct2):
    seg = sb.read(HD / "seg_image_ct_binary.dcm", reference=ct2)
    assert seg.grid.shape[0] == 4 and not seg.grid.is_regular
    assert CT2.exists() and CT3.exists()


def _mutated(tmp_path, name, change):
    ds = pydicom.dcmread(DCMQI / name)
    change(ds)
    out = tmp_path / f"mutated-{name}"
    ds.save_as(out)
    return out


def test_reference_and_position_disagree_is_reported(ct3, tmp_path):
    def move(ds):  # frame 1 keeps its SOP reference but claims the position of another slice
        other = ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0]
        ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient = \
            other.ImagePositionPatient
    path = _mutated(tmp_path, "liver.dcm", move)
    r = sb.Report()
    seg = sb.read(path, reference=ct3, report=r)
    assert any("frame 1 references slice" in w and "placed by the reference" in w
               for w in r.warnings)
    np.testing.assert_array_equal(seg.mask(1), sb.read(DCMQI / "liver.dcm", reference=ct3).mask(1))
    with pytest.raises(sb.InvalidInputError, match="strict mode"):
        sb.read(path, reference=ct3, strict=True)


def test_tolerated_oddities_are_warnings(ct3, tmp_path):
    def odd(ds):
        for fg in ds.PerFrameFunctionalGroupsSequence:
            del fg.FrameContentSequence[0].DimensionIndexValues
        ds.SegmentSequence[0].SegmentNumber = 3  # a gap: 1..N required for BINARY
        for fg in ds.PerFrameFunctionalGroupsSequence:
            fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 3
    r = sb.Report()
    seg = sb.read(_mutated(tmp_path, "liver.dcm", odd), reference=ct3, report=r)
    assert seg.numbers == [3] and seg.voxel_counts()[3] == 107098
    assert any("not 1..N" in w for w in r.warnings)
    assert any("no DimensionIndexValues" in w for w in r.warnings)


def test_seg_to_volume_on_the_full_reference_grid(ct3, tmp_path):
    """The most-reported dcmqi/pyradiomics pain: outputs that skip empty slices."""
    import nibabel as nib

    from segbridge.geometry import flip_lps_ras

    def drop_frames(ds):  # keep only the middle frame: a sparse SEG
        keep = [1]
        seq = ds.PerFrameFunctionalGroupsSequence
        ds.PerFrameFunctionalGroupsSequence = [seq[i] for i in keep]
        px = ds.pixel_array
        ds.PixelData = np.packbits(px[keep].reshape(-1), bitorder="little").tobytes()
        ds.NumberOfFrames = 1
    path = _mutated(tmp_path, "liver.dcm", drop_frames)
    out = sb.write(sb.read(path, reference=ct3), tmp_path / "sparse.nii.gz")[0]
    img = nib.load(out)
    assert img.shape == (512, 512, 3)
    np.testing.assert_allclose(img.affine, flip_lps_ras(ct3.grid.affine), atol=1e-4)
    data = np.transpose(np.asanyarray(img.dataobj), (2, 1, 0))
    assert data[0].sum() == 0 and data[2].sum() == 0 and data[1].sum() > 0


def test_occupancy_fractional_round_trip(ct3, tmp_path):
    rng = np.random.default_rng(5)
    frac = (rng.random((1, *ct3.grid.shape)) * 1.2).clip(0, 1).astype(np.float32)
    seg = sb.from_array(frac, ct3, fractional=True)
    seg.fractional_type = "OCCUPANCY"
    path = sb.write(seg, tmp_path / "occ.dcm", type="fractional", profile="archive")[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert ds.SegmentationFractionalType == "OCCUPANCY" and ds.MaximumFractionalValue == 255
    back = sb.read(path, reference=ct3)
    assert back.fractional_type == "OCCUPANCY"
    np.testing.assert_array_equal(back.fraction(1), seg.fraction(1))
