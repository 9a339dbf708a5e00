"""The command line: bad input gets one clear line and a non-zero exit, never a traceback and
never a partial output file; good input gets the files and a short summary."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import CT2, CT3, DCMQI

SEGBRIDGE = str(Path(sys.executable).parent / "segbridge")


def run(*args, cwd=None):
    return subprocess.run([SEGBRIDGE, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def assert_clean_failure(res, out_dir: Path, *needles: str):
    assert res.returncode != 0
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert len(err.splitlines()) == 1, err
    assert err.startswith("segbridge: error: "), err
    for n in needles:
        assert n in err, err
    leftovers = [p.name for p in out_dir.iterdir()] if out_dir.exists() else []
    assert not [n for n in leftovers if n.endswith((".dcm", ".nii.gz", ".json", ".nrrd", ".tmp"))
                or ".tmp" in n], leftovers


def nifti(path, arr_zyx, grid):
    from segbridge.geometry import flip_lps_ras

    aff = flip_lps_ras(grid.affine)
    nib.save(nib.Nifti1Image(np.transpose(arr_zyx, (2, 1, 0)), aff), str(path))


def test_convert_nifti_to_seg_and_back(tmp_path, ct3):
    labels = np.zeros(ct3.grid.shape, np.uint8)
    labels[1, 100:200, 150:300] = 7
    src = tmp_path / "in.nii.gz"
    nifti(src, labels, ct3.grid)
    res = run("convert", src, "-o", tmp_path / "x.dcm", "-r", CT3, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["written"] == [str(tmp_path / "x.dcm")]
    res = run("convert", tmp_path / "x.dcm", "-o", tmp_path / "back.nii.gz", "-r", CT3)
    assert res.returncode == 0, res.stderr
    back = np.transpose(np.asanyarray(nib.load(tmp_path / "back.nii.gz").dataobj), (2, 1, 0))
    np.testing.assert_array_equal(back != 0, labels != 0)
    side = json.loads((tmp_path / "back.json").read_text())
    assert side["segmentAttributes"][0][0]["labelID"] == int(back.max())
    info = run("info", tmp_path / "x.dcm", "-r", CT3, "--json")
    data = json.loads(info.stdout)
    assert data["segmentation_type"] == "LABELMAP" and data["segments"][0]["voxels"] == 15000


def test_truncated_pixel_data(tmp_path):
    bad = tmp_path / "truncated.dcm"
    raw = (DCMQI / "liver.dcm").read_bytes()
    bad.write_bytes(raw[: len(raw) - 5000])
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", bad, "-o", out / "x.nii.gz", "-r", CT3)
    assert_clean_failure(res, out, "truncated.dcm", "truncated")


def test_number_of_frames_disagrees(tmp_path):
    ds = pydicom.dcmread(DCMQI / "liver.dcm")
    ds.NumberOfFrames = 5
    bad = tmp_path / "frames.dcm"
    ds.save_as(bad)
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", bad, "-o", out / "x.nii.gz", "-r", CT3)
    assert_clean_failure(res, out, "frames.dcm", "NumberOfFrames is 5",
                         "3 per-frame functional group items")


def test_references_not_in_the_series(tmp_path):
    res = run("convert", DCMQI / "liver.dcm", "-o", tmp_path / "x.nii.gz", "-r", CT2)
    assert_clean_failure(res, tmp_path, "liver.dcm", "none of its 3 referenced images are in "
                         "the given series", "another Frame of Reference")


def test_labelmap_on_another_grid(tmp_path, ct3):
    from segbridge.geometry import Grid

    other = Grid((3, 64, 64), (0, 0, 0), (2, 2, 2), np.eye(3))
    src = tmp_path / "other.nii.gz"
    nifti(src, np.ones(other.shape, np.uint8), other)
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", src, "-o", out / "x.dcm", "-r", CT3)
    assert_clean_failure(res, out, "other.nii.gz", "does not match the reference grid",
                         "64x64x3 voxels", "512x512x3 voxels", "--resample")


def test_overlap_forced_into_labelmap(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", DCMQI / "partial_overlaps.dcm", "-o", out / "x.dcm", "-r", CT3,
              "--type", "labelmap", "--profile", "slicer")
    assert_clean_failure(res, out, "segments overlap", "--split-overlaps")
    ok = run("convert", DCMQI / "partial_overlaps.dcm", "-o", out / "x.dcm", "-r", CT3,
             "--type", "labelmap", "--split-overlaps")
    assert ok.returncode == 0 and len(list(out.glob("x*.dcm"))) >= 2


@pytest.mark.parametrize(("values", "needle"), [(2.5, "non-integer label values"),
                                                (np.nan, "NaN")])
def test_bad_nifti_labels(tmp_path, ct3, values, needle):
    arr = np.zeros(ct3.grid.shape, np.float32)
    arr[1, 10:20, 10:20] = values
    src = tmp_path / "bad.nii.gz"
    nifti(src, arr, ct3.grid)
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", src, "-o", out / "x.dcm", "-r", CT3)
    assert_clean_failure(res, out, "bad.nii.gz", needle)


def test_folder_with_two_series(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    for src in (CT3, CT2):
        for f in src.iterdir():
            shutil.copy(f, ref / f"{src.name}-{f.name}")
    res = run("convert", DCMQI / "liver.dcm", "-o", tmp_path / "x.nii.gz", "-r", ref)
    assert_clean_failure(res, tmp_path, "2 series found, choose one with --series")


def test_unreadable_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    junk = src / "junk.dcm"
    junk.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage" * 10)
    res = run("convert", junk, "-o", tmp_path / "x.nii.gz")
    assert_clean_failure(res, tmp_path, "junk.dcm", "runs past the end of the file")
    text = src / "notes.nii.gz"
    text.write_text("not an image")
    res = run("convert", text, "-o", tmp_path / "y.dcm", "-r", CT3)
    assert_clean_failure(res, tmp_path, "notes.nii.gz", "not a NIfTI file")


def test_output_in_a_missing_folder(tmp_path):
    res = run("convert", DCMQI / "liver.dcm", "-o", tmp_path / "nope" / "x.nii.gz", "-r", CT3)
    assert_clean_failure(res, tmp_path, "output folder", "does not exist")
    assert not (tmp_path / "nope").exists()


def test_strict_turns_warnings_into_errors(tmp_path):
    mf = DCMQI / "24x38x3" / "multiframe" / "mf.dcm"
    seg = DCMQI / "24x38x3" / "seg" / "label.seg"
    ok = run("convert", seg, "-o", tmp_path / "x.nii.gz", "-r", mf)
    assert ok.returncode == 0 and "placed by position" in ok.stderr
    res = run("convert", seg, "-o", tmp_path / "y.nii.gz", "-r", mf, "--strict")
    assert_clean_failure(res, tmp_path / "sub-none", "placed by position", "strict mode")
    assert not (tmp_path / "y.nii.gz").exists()


def test_usage_errors_are_one_line():
    for args, line in [
        (("convert", "--no-such-option"), "segbridge convert: error: No such option: "
                                          "--no-such-option (see --help)"),
        (("convertt",), "segbridge: error: No such command 'convertt'. Did you mean "
                        "'convert'? (see --help)"),
        (("info",), "segbridge info: error: Missing argument 'file'. (see --help)"),
        (("convert", "a.nii.gz", "--type", "round"),
         "segbridge convert: error: Invalid value for '--type': 'round' is not one of 'auto', "
         "'binary', 'fractional', 'labelmap'. (see --help)"),
    ]:
        res = run(*args)
        assert res.returncode == 2 and res.stderr.strip() == line, res.stderr


def test_irregular_reference_needs_resample_for_nifti(tmp_path):
    from conftest import HD

    seg = HD / "seg_image_ct_binary.dcm"
    res = run("convert", seg, "-o", tmp_path / "x.nii.gz", "-r", CT2)
    assert_clean_failure(res, tmp_path, "evenly spaced slices", "--resample")
    ok = run("convert", seg, "-o", tmp_path / "x.nii.gz", "-r", CT2, "--resample")
    assert ok.returncode == 0, ok.stderr
    assert "resampled with nearest neighbour" in ok.stderr


def test_type_fractional_reads_integer_labels_as_labels(tmp_path):
    """--type fractional on a label image: one FRACTIONAL segment per label, each 0 / max
    (not one segment of 1/255, 2/255); float volumes stay probabilities."""
    import highdicom as hd

    src = DCMQI / "liver_spine_seg.nrrd"
    out = tmp_path / "frac.dcm"
    res = run("convert", src, "-r", CT3, "-o", out, "--type", "fractional", "--profile",
              "slicer")
    assert res.returncode == 0, res.stderr
    assert "read as labels" in res.stderr and "pass --fractional" in res.stderr  # not silent
    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "FRACTIONAL" and len(seg.SegmentSequence) == 2
    labels = _labels_of(src)
    for n in (1, 2):
        got = seg.get_volume(segment_numbers=[n], rescale_fractional=False).array[..., 0]
        assert set(np.unique(got)) <= {0, 255}
        assert int(np.count_nonzero(got)) == int(np.count_nonzero(labels == n))
    probs = tmp_path / "p.nii.gz"
    vol = (labels == 1).astype(np.float32) * 0.5
    import segbridge as sb

    grid = sb.read(src).grid
    sb.write(sb.Segmentation(grid, [sb.Segment(1, "p")],
                             fractional={1: np.round(vol * 255).astype(np.uint8)}), probs)
    out2 = tmp_path / "p.dcm"
    res = run("convert", probs, "-r", CT3, "-o", out2, "--type", "fractional", "--profile",
              "slicer")
    assert res.returncode == 0, res.stderr
    got = hd.seg.segread(out2).get_volume(rescale_fractional=False).array[..., 0]
    assert set(np.unique(got)) == {0, 128}


def _labels_of(path):
    """The single label layer of a segmentation file (values = segment numbers)."""
    import segbridge as sb

    (layer,) = sb.read(path).layers
    return layer
