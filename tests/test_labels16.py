"""16-bit label maps (issue 14 point 3, first part): 300, 1,000 and 5,000 labels survive DICOM
SEG (Label Map Segmentation Storage, 16-bit RLE), NIfTI, NRRD and Slicer seg.nrrd voxel for
voxel, and highdicom (an independent reader) gets the same label values from the SEG."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import segbridge as sb
from segbridge.synthetic import demo_grid, demo_phantom, write_ct_series

SHAPE = (8, 64, 64)


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


@pytest.mark.parametrize("n", [300, 1000, 5000])
def test_many_labels_round_trip_every_format(ref, tmp_path, n):
    labels = _labels(n)
    seg = sb.from_array(labels, ref)
    assert len(seg.segments) == n
    for name, kw in (("seg.dcm", dict(profile="archive", type="labelmap", compression="rle")),
                     ("l.nii.gz", {}), ("l.nrrd", {}), ("l.seg.nrrd", {})):
        out = sb.write(seg, tmp_path / name, reference=ref, **kw)[0]
        back = sb.read(out, reference=ref)
        assert len(back.segments) == n, name
        by_label = {s.label: s.number for s in back.segments}
        rebuilt = np.zeros(SHAPE, np.uint16)
        for s in seg.segments:
            rebuilt[back.mask(by_label[s.label])] = s.number
        assert np.array_equal(rebuilt, labels), name
    ds = pydicom.dcmread(tmp_path / "seg.dcm", stop_before_pixels=True)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7" and ds.BitsAllocated == 16
    assert ds.SegmentationType == "LABELMAP"


def test_highdicom_reads_the_16_bit_label_map(ref, tmp_path):
    import highdicom as hd

    labels = _labels(1000)
    sb.write(sb.from_array(labels, ref), tmp_path / "seg.dcm", reference=ref,
             profile="archive", type="labelmap", compression="rle")
    hseg = hd.seg.segread(str(tmp_path / "seg.dcm"))
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
    assert np.array_equal(got, labels)
