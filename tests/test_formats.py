"""Volume formats: NIfTI (3-D, 4-D layers, fractions), NRRD, Slicer .seg.nrrd (read by slicerio
as an independent reader), dcmqi JSON metadata and sidecars."""

import json

import nibabel as nib
import numpy as np
import pytest
import slicerio
from conftest import DATA, DCMQI, SLICERIO, assert_same_segments, rotation

import segbridge as sb
from segbridge.errors import InvalidInputError

EXAMPLES = DCMQI.parent.parent / "doc" / "examples"


def test_dcmqi_json_with_gapped_labels_keeps_numbers(ct3):
    seg = sb.read(DCMQI / "liver_spine_gapped_seg.nrrd", reference=ct3,
                  meta=EXAMPLES / "seg-example_liver_spine_gapped_merged.json")
    assert seg.numbers == [1, 5]
    assert [s.label for s in seg.segments] == ["Liver", "Thoracic spine"] or \
        seg.segment(1).type.meaning == "Liver"
    spine = sb.read(DCMQI / "spine_seg_label5.nrrd", reference=ct3)
    np.testing.assert_array_equal(seg.mask(5), spine.mask(5))


def test_several_files_overlap_into_layers(ct3):
    seg = sb.read([DCMQI / "liver_seg.nrrd", DCMQI / "heart_seg.nrrd"], reference=ct3)
    assert len(seg.layers) == 2 and seg.has_overlap()
    both = seg.mask(1) & seg.mask(3)
    assert both.sum() == 522  # heart overlaps liver by 522 voxels (MANIFEST)


def test_metadata_count_must_match_inputs(ct3):
    with pytest.raises(InvalidInputError, match="describes 3 input volume"):
        sb.read([DCMQI / "liver_seg.nrrd"], reference=ct3,
                meta=EXAMPLES / "seg-example_multiple_segments.json")



def test_malformed_metadata(tmp_path, ct3):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"segmentAttributes": {"labelID": 1}}))
    with pytest.raises(InvalidInputError, match="list of lists"):
        sb.read(DCMQI / "liver_seg.nrrd", reference=ct3, meta=bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidInputError, match="broken.json: not valid JSON"):
        sb.read(DCMQI / "liver_seg.nrrd", reference=ct3, meta=broken)


def test_seg_nrrd_metadata_read(tmp_path):
    seg = sb.read(SLICERIO / "Segmentation.seg.nrrd")
    assert [s.label for s in seg.segments][:2] == ["ribs", "cervical vertebral column"]
    ribs = seg.segment(1)
    assert ribs.type.value == "113197003" and ribs.category.value == "123037004"
    assert ribs.color == (253, 232, 158)
    lung = seg.segment(5)
    assert lung.type_modifier is not None and lung.type_modifier.meaning == "Right"


def test_seg_nrrd_we_write_reads_back_in_slicerio(tmp_path):
    """slicerio (the reference Python reader of Slicer's format) sees our layers and keys."""
    seg = sb.read(SLICERIO / "SegmentationOverlapping.seg.nrrd")
    out = sb.write(seg, tmp_path / "x.seg.nrrd")[0]
    theirs = slicerio.read_segmentation(str(out))
    ours = slicerio.read_segmentation(str(SLICERIO / "SegmentationOverlapping.seg.nrrd"))
    np.testing.assert_allclose(theirs["ijkToLPS"], ours["ijkToLPS"], atol=1e-5)
    assert theirs["voxels"].shape == ours["voxels"].shape  # 4-D: 2 layers kept
    by_name = {s["name"]: s for s in theirs["segments"]}
    for s in ours["segments"]:
        t = by_name[s["name"]]
        assert t["terminology"]["type"] == s["terminology"]["type"]
        np.testing.assert_allclose(t["color"], s["color"], atol=1 / 255)
        mine = theirs["voxels"][t["layer"]] == t["labelValue"]
        orig = ours["voxels"][s["layer"]] == s["labelValue"]
        np.testing.assert_array_equal(mine, orig)


def test_old_style_slicer_file():
    seg = sb.read(DATA / "slicerrt/Testing/Data/EclipseProstate_Bladder_Union_PTV.seg.nrrd")
    assert [s.label for s in seg.segments] == ["Bladder_Union_PTV"]
    assert seg.voxel_counts()[1] > 0


def test_nifti_4d_layers_and_sidecar(tmp_path, ct3):
    seg = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    out, side = sb.write(seg, tmp_path / "layers.nii.gz")
    img = nib.load(out)
    assert img.ndim == 4 and img.shape[3] == len(seg.layers)
    meta = json.loads(side.read_text())
    assert len(meta["segmentAttributes"]) == len(seg.layers)
    back = sb.read(out, reference=ct3)
    assert_same_segments(seg, back)
    assert [(s.label, s.color, s.type) for s in back.segments] == \
        [(s.label, s.color, s.type) for s in seg.segments]


def test_fractional_nifti_round_trip(tmp_path, ct3):
    rng = np.random.default_rng(3)
    probs = rng.random((2, *ct3.grid.shape)).astype(np.float32)
    probs[probs < 0.7] = 0
    seg = sb.from_array(probs, ct3, fractional=True)
    out = sb.write(seg, tmp_path / "p.nii.gz")[0]
    back = sb.read(out, reference=ct3)
    assert back.is_fractional and back.fractional_type == "PROBABILITY"
    assert_same_segments(seg, back, fractions=True)
    np.testing.assert_allclose(back.fraction(1) / 255, probs[0], atol=0.5 / 255 + 1e-6)


def test_prostate_labels_keep_their_numbers_in_a_labelmap(tmp_path):
    seg = sb.read(DATA / "pyradiomics/data/prostate_phantom_subvolume-label.nrrd")
    assert seg.numbers == [1, 7, 8, 9]
    out = sb.write(seg, tmp_path / "p.nrrd")[0]
    again = sb.read(out)
    assert again.numbers == [1, 7, 8, 9]
    assert_same_segments(seg, again)


def test_nrrd_ras_space_is_converted(tmp_path):
    import nrrd

    data = np.zeros((4, 5, 6), np.uint8)
    data[1, 2, 3] = 1
    nrrd.write(str(tmp_path / "ras.nrrd"), data, {
        "space": "right-anterior-superior", "space directions": np.diag([1.0, 2.0, 3.0]),
        "space origin": np.array([10.0, 20.0, 30.0])})
    seg = sb.read(tmp_path / "ras.nrrd")
    zyx = np.argwhere(seg.mask(1))[0]
    lps = seg.grid.index_to_lps(zyx[::-1])
    np.testing.assert_allclose(lps, [-(10 + 1 * 1), -(20 + 2 * 2), 30 + 3 * 3])


def test_irregular_grid_refused_by_nifti(tmp_path, ct2):
    from conftest import HD

    seg = sb.read(HD / "seg_image_ct_binary.dcm", reference=ct2)
    with pytest.raises(InvalidInputError, match="evenly spaced"):
        sb.write(seg, tmp_path / "x.nii.gz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_our_nifti_writer_read_by_nibabel(tmp_path, seed, suffix):
    """Oblique, mirrored (left-handed) and anisotropic grids: nibabel sees the same voxels,
    the same sform, and a qform that matches it."""
    from segbridge.geometry import Grid, flip_lps_ras
    from segbridge.model import Segmentation

    rng = np.random.default_rng(seed)
    direction = rotation(*rng.uniform(-np.pi, np.pi, 3))
    if seed % 2:
        direction[:, 1] *= -1  # left-handed
    grid = Grid(tuple(rng.integers(1, 9, 3)), rng.uniform(-300, 300, 3),
                rng.uniform(0.3, 4, 3), direction)
    labels = rng.integers(0, 4, grid.shape).astype(np.uint8)
    seg = Segmentation.from_labelmap(grid, labels)
    out = sb.write(seg, tmp_path / f"x{suffix}")[0]
    img = nib.load(out)
    np.testing.assert_allclose(img.get_sform(), flip_lps_ras(grid.affine), atol=1e-4)
    np.testing.assert_allclose(img.get_qform(), flip_lps_ras(grid.affine), atol=1e-4)
    np.testing.assert_array_equal(np.transpose(np.asanyarray(img.dataobj), (2, 1, 0)), labels)
    back = sb.read(out)
    assert back.grid.same_as(grid)
    np.testing.assert_array_equal(back.labelmap(), labels)


def test_a_nifti_of_several_gzip_blocks_reads_in_itk(tmp_path):
    """The .nii.gz writer deflates 4 MiB blocks in parallel into one gzip member
    (formats/pgzip.py): ITK's NIfTI reader (through dcmqi's itkimage2segimage, with the
    sidecar segbridge writes beside it) gets every voxel of a 10 MiB volume."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from segbridge.formats.pgzip import BLOCK
    from segbridge.geometry import Grid
    from segbridge.model import Segmentation
    from segbridge.synthetic import write_ct_series

    grid = Grid((40, 512, 512), origin=(-200.0, -200.0, -30.0), spacing=(2.5, 0.8, 0.8),
                direction=np.eye(3))
    assert np.prod(grid.shape) > 1.5 * BLOCK
    z, y, x = np.ogrid[:40, :512, :512]
    labels = np.zeros(grid.shape, np.uint8)
    labels[(y - 256) ** 2 + (x - 256) ** 2 < (60 + 5 * z) ** 2] = 1
    labels[((y // 7 + x // 5 + z) % 3 == 0) & (labels == 0) & (y < 300)] = 2
    rng = np.random.default_rng(3)
    labels[rng.random(grid.shape) < 0.001] = 3  # scattered voxels: blocks differ
    write_ct_series(tmp_path / "ct", np.where(labels > 0, 40.0, -100.0), grid,
                    uid_seed="pgzip-itk")
    ref = sb.read_series(tmp_path / "ct")
    seg = Segmentation.from_labelmap(grid, labels)
    nii = sb.write(seg, tmp_path / "labels.nii.gz")[0]
    exe = shutil.which("itkimage2segimage", path=str(Path(sys.executable).parent)) or \
        shutil.which("itkimage2segimage")
    assert exe, "dcmqi's itkimage2segimage is needed (pip install dcmqi)"
    subprocess.run([exe, "--inputImageList", str(nii), "--inputDICOMDirectory",
                    str(tmp_path / "ct"), "--outputDICOM", str(tmp_path / "itk.dcm"),
                    "--inputMetadata", str(tmp_path / "labels.json")],
                   check=True, capture_output=True, timeout=300)
    back = sb.read(tmp_path / "itk.dcm", reference=ref)
    for value in (1, 2, 3):
        got = next(s for s in back.segments if s.number == value)
        np.testing.assert_array_equal(back.mask(got.number), labels == value)
