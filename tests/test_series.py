"""Reference series reader on real files: sorting, gaps, blank UIDs, multi-frame, errors."""

import shutil

import numpy as np
import pytest
from conftest import CT2, CT3, DATA, TOTALSEG, WHEEL

import segbridge as sb
from segbridge.errors import GeometryMismatchError, InvalidInputError, Report

TS_CT = TOTALSEG / "example_ct_dicom"


def test_ct3_sorted_along_normal(ct3):
    g = ct3.grid
    assert g.shape == (3, 512, 512) and g.is_regular
    z = g.slice_positions()[:, 2]
    assert np.all(np.diff(z) > 0)
    np.testing.assert_allclose(g.spacing, [1.0, 0.810547, 0.810547], atol=1e-6)
    assert len({i.sop_instance_uid for i in ct3.source.instances}) == 3
    assert ct3.source.position_strings[0] == ["-235.199997", "-226.800003", "-128.690002"]


def test_gap_is_reported_and_positions_kept():
    r = Report()
    ref = sb.read_series(CT2, report=r)
    assert not ref.grid.is_regular
    assert any("not evenly spaced" in w for w in r.warnings)
    np.testing.assert_allclose(ref.grid.slice_positions()[:, 2],
                               [-99.48, 103.02, 104.27, 105.52], atol=1e-3)


def test_blank_uids_need_assign_uids():
    with pytest.raises(InvalidInputError, match="blank StudyInstanceUID and SeriesInstanceUID"):
        sb.read_series(TS_CT)
    r = Report()
    ref = sb.read_series(TS_CT, assign_uids=True, report=r)
    again = sb.read_series(TS_CT, assign_uids=True)
    assert ref.assigned_uids == again.assigned_uids  # rerun gives the same UIDs
    assert ref.source.series_instance_uid == ref.assigned_uids["SeriesInstanceUID"]
    assert any("blank SOP Instance UID" in w for w in r.warnings)
    assert ref.grid.shape == (20, 512, 512)


def test_jpeg2000_pixels_decode():
    ref = sb.read_series(TS_CT, assign_uids=True)
    px = ref.pixels()
    assert px.shape == (20, 512, 512)
    assert -1100 < px.min() < -900 and px.max() > 500  # air and bone in HU


def test_two_series_in_one_folder_are_listed(tmp_path):
    for src in (CT3, WHEEL / "dicomdirtests" / "77654033" / "CT2"):
        for f in src.iterdir():
            shutil.copy(f, tmp_path / f"{src.name}_{f.name}")
    with pytest.raises(InvalidInputError, match="2 series found, choose one with --series") as e:
        sb.read_series(tmp_path)
    assert "CT" in str(e.value)
    uid = sb.read_series(CT3).source.series_instance_uid
    assert sb.read_series(tmp_path, series_uid=uid).grid.shape == (3, 512, 512)


def test_multiframe_enhanced_and_legacy_converted():
    mf = sb.read_series(DATA / "dcmqi/data/segmentations/24x38x3/multiframe/mf.dcm")
    single = sb.read_series(DATA / "dcmqi/data/segmentations/24x38x3/image")
    assert mf.grid.same_as(single.grid)
    assert [i.frame_number for i in mf.source.instances] == [1, 2, 3]
    ect = sb.read_series(DATA / "pydicom-data/data_store/data/eCT_Supplemental.dcm")
    assert ect.grid.shape == (2, 512, 512)
    with pytest.raises(InvalidInputError, match="without per-frame functional groups"):
        sb.read_series(DATA / "pydicom-data/data_store/data/emri_small.dcm")


def test_mixed_orientation_is_an_error(tmp_path):
    import pydicom

    for i, f in enumerate(sorted(CT3.iterdir())):
        ds = pydicom.dcmread(f)
        if i == 1:
            ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.save_as(tmp_path / f.name)
    with pytest.raises(GeometryMismatchError, match="mixed image orientations"):
        sb.read_series(tmp_path)


def test_no_images(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match="no DICOM images found"):
        sb.read_series(tmp_path)
