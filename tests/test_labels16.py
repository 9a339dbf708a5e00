"""16-bit label maps (issue 14 point 3, first part): 300, 1,000 and 5,000 labels survive DICOM
SEG (Label Map Segmentation Storage, 16-bit RLE), NIfTI, NRRD and Slicer seg.nrrd voxel for
voxel, and highdicom (an independent reader) gets the same label values from the SEG.

SOP class 66.4 may not hold a LABELMAP (PS3.3 C.8.20.2, Sup 243; validator rule SEG-TYPE): its
route for more than 255 segments is BINARY, one 1-bit frame per segment and plane with 16-bit
(US) Segment Numbers. The same counts round trip that way too. A pre-final Sup 243 style file
(LABELMAP, 16-bit, in 66.4) is flagged by the validator (SEG-TYPE) and read to the same labels
by highdicom and, with a warning, by segbridge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

import segbridge as sb
from segbridge.synthetic import demo_grid, demo_phantom, write_ct_series

SHAPE = (8, 64, 64)
SEG_SOP, LABELMAP_SOP = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    d = tmp_path_factory.mktemp("ct16")
    grid = demo_grid(SHAPE)
    write_ct_series(d / "ct", demo_phantom(SHAPE)[0], grid, uid_seed="labels16")
    return sb.read_series(d / "ct")


def _labels(n: int) -> np.ndarray:
    """n labels, three scattered voxels each (cell-like specks)."""
    rng = np.random.default_rng(n)
    labels = np.zeros(SHAPE, np.uint16)
    flat = labels.reshape(-1)
    idx = rng.choice(flat.size, size=3 * n, replace=False)
    flat[idx] = np.arange(3 * n) % n + 1
    return labels


def _planar_labels(n: int) -> np.ndarray:
    """n labels of three voxels each, a label's voxels in one plane as far as possible (so a
    BINARY SEG has about one frame per segment: 5,000 segments stay a few thousand frames)."""
    rng = np.random.default_rng(n + 1)
    labels = np.zeros(SHAPE, np.uint16)
    flat = labels.reshape(-1)
    idx = np.sort(rng.choice(flat.size, size=3 * n, replace=False))
    flat[idx] = (rng.permutation(n) + 1)[np.arange(3 * n) // 3]
    return labels


def rebuilt(path, seg, ref) -> np.ndarray:
    """Read ``path`` with segbridge; the label map of ``seg``'s numbers, matched by label."""
    back = sb.read(path, reference=ref)
    assert len(back.segments) == len(seg.segments), path
    by_label = {s.label: s.number for s in back.segments}
    out = np.zeros(SHAPE, np.uint16)
    for s in seg.segments:
        out[back.mask(by_label[s.label])] = s.number
    return out


def highdicom_labels(path, ref) -> np.ndarray:
    """highdicom's combined label map of a SEG on the reference slices (value = segment
    number); any SOP class and segmentation type highdicom reads."""
    import highdicom as hd

    hseg = hd.seg.segread(str(path))
    uids = [i.sop_instance_uid for i in ref.source.instances]
    present = {str(r.ReferencedSOPInstanceUID) for r in
               hseg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    keep = [u for u in uids if u in present]
    arr = hseg.get_pixels_by_source_instance(keep, combine_segments=True,
                                             skip_overlap_checks=True,
                                             ignore_spatial_locations=True)
    got = np.zeros(SHAPE, np.uint16)
    for i, u in enumerate(keep):
        got[uids.index(u)] = arr[i]
    return got


@pytest.mark.parametrize("n", [300, 1000, 5000])
def test_many_labels_round_trip_every_format(ref, tmp_path, n):
    labels = _labels(n)
    seg = sb.from_array(labels, ref)
    assert len(seg.segments) == n
    for name, kw in (("seg.dcm", dict(profile="archive", type="labelmap", compression="rle")),
                     ("l.nii.gz", {}), ("l.nrrd", {}), ("l.seg.nrrd", {})):
        out = sb.write(seg, tmp_path / name, reference=ref, **kw)[0]
        assert np.array_equal(rebuilt(out, seg, ref), labels), name
    ds = pydicom.dcmread(tmp_path / "seg.dcm", stop_before_pixels=True)
    assert ds.SOPClassUID == LABELMAP_SOP and ds.BitsAllocated == 16
    assert ds.SegmentationType == "LABELMAP"


def test_highdicom_reads_the_16_bit_label_map(ref, tmp_path):
    labels = _labels(1000)
    sb.write(sb.from_array(labels, ref), tmp_path / "seg.dcm", reference=ref,
             profile="archive", type="labelmap", compression="rle")
    assert np.array_equal(highdicom_labels(tmp_path / "seg.dcm", ref), labels)


@pytest.mark.parametrize("n", [300, 1000, 5000])
def test_many_labels_round_trip_binary_66_4(ref, tmp_path, n):
    """BINARY in SOP class 66.4: one frame per segment and plane, Segment Number up to n (US),
    voxel-exact in segbridge and in highdicom. 300 and 1,000 labels have their three voxels
    scattered over the volume (frames on several planes per segment); 5,000 keep theirs in one
    plane so the file stays about 5,000 frames (the tiny-grid case)."""
    labels = _labels(n) if n < 5000 else _planar_labels(n)
    seg = sb.from_array(labels, ref)
    out = sb.write(seg, tmp_path / "bin.dcm", reference=ref, profile="slicer", type="binary",
                   compression="none")
    assert out == [tmp_path / "bin.dcm"]
    ds = pydicom.dcmread(out[0], stop_before_pixels=True)
    assert ds.SOPClassUID == SEG_SOP and ds.SegmentationType == "BINARY"
    assert ds.BitsAllocated == 1
    assert [int(s.SegmentNumber) for s in ds.SegmentSequence] == list(range(1, n + 1))
    # one frame per (segment, plane) the segment is on, and no other frames
    uids = [i.sop_instance_uid for i in ref.source.instances]
    frames = [(int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
               uids.index(str(f.DerivationImageSequence[0].SourceImageSequence[0]
                              .ReferencedSOPInstanceUID)))
              for f in ds.PerFrameFunctionalGroupsSequence]
    z = np.nonzero(labels)[0]
    expected = set(zip(labels[labels != 0].tolist(), z.tolist(), strict=True))
    assert len(frames) == int(ds.NumberOfFrames) == len(set(frames))
    assert set(frames) == expected
    assert np.array_equal(rebuilt(out[0], seg, ref), labels)
    assert np.array_equal(highdicom_labels(out[0], ref), labels)


def _labelmap_in_66_4(ref, tmp_path, labels) -> Path:
    """A 16-bit LABELMAP SEG (66.7, RLE) relabelled as SOP class 66.4, the pre-final Sup 243
    style; returns the path."""
    path = sb.write(sb.from_array(labels, ref), tmp_path / "lm67.dcm", reference=ref,
                    profile="archive", type="labelmap", compression="rle")[0]
    ds = pydicom.dcmread(path)
    assert ds.BitsAllocated == 16 and ds.SegmentationType == "LABELMAP"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SEG_SOP
    ds.save_as(tmp_path / "lm64.dcm", enforce_file_format=True)
    return tmp_path / "lm64.dcm"


def test_labelmap_in_66_4_is_flagged_and_read_with_a_warning(ref, tmp_path):
    """LABELMAP in 66.4 is not valid: the validator says SEG-TYPE; segbridge reads it by its
    type with a warning (as highdicom 0.28 does) to the same labels, and `convert` turns it
    into a NIfTI that nibabel reads to them too."""
    import nibabel as nib

    from segbridge.validate import validate

    labels = _labels(1000)
    path = _labelmap_in_66_4(ref, tmp_path, labels)
    assert "SEG-TYPE" in validate(path, reference=ref).rule_ids()
    assert np.array_equal(highdicom_labels(path, ref), labels)
    back = sb.read(path, reference=ref)
    assert any("does not fit SOP class" in w for w in back.report.warnings)
    assert np.array_equal(rebuilt(path, sb.from_array(labels, ref), ref), labels)
    exe = Path(sys.executable).parent / "segbridge"
    out = tmp_path / "x.nii.gz"
    run = subprocess.run([str(exe), "convert", str(path), "-r", str(ref.paths[0].parent), "-o",
                          str(out)], capture_output=True, text=True)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "does not fit SOP class" in run.stderr
    got = np.transpose(np.asarray(nib.load(out).dataobj), (2, 1, 0))
    assert np.array_equal(got, labels)  # the writer keeps LPS axes flipped to RAS in the affine
