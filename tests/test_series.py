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


# ---------------------------------------------------------------------------------------------
# hostile geometry values (issue 11, class 5): one line naming the file, never a crash
# ---------------------------------------------------------------------------------------------
def _ct3_with(tmp_path, keyword: str, value: str, which: str = "02.dcm"):
    """A copy of ct-3slice whose file ``which`` has ``keyword`` set to the raw DS ``value``."""
    import pydicom
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    folder = tmp_path / "ct"
    shutil.copytree(CT3, folder)
    ds = pydicom.dcmread(folder / which)
    tag = tag_for_keyword(keyword)
    raw = value.encode() + (b" " if len(value) % 2 else b"")
    ds[tag] = pydicom.dataelem.convert_raw_data_element(
        RawDataElement(tag, "DS", len(raw), raw, 0, False, True))
    ds.save_as(folder / which)
    return folder, folder / which


@pytest.mark.parametrize("keyword, value, says", [
    ("ImagePositionPatient", "inf\\0\\0", "not finite"),
    ("ImagePositionPatient", "-235.2\\nan\\-127.69", "not finite"),
    ("ImagePositionPatient", "-235.2\\abc\\-127.69", "not numeric"),
    ("ImagePositionPatient", "1\\2", "not 3"),
    ("ImageOrientationPatient", "1\\0\\0\\1\\0\\0", "independent directions"),
    ("ImageOrientationPatient", "0\\0\\0\\0\\1\\0", "independent directions"),
    ("ImageOrientationPatient", "1\\0\\0\\0\\x\\0", "not numeric"),
    ("PixelSpacing", "0\\0.81", "not positive"),
    ("PixelSpacing", "-0.8\\0.81", "not positive"),
    ("PixelSpacing", "0.8\\", "not numeric"),
    ("PixelSpacing", "0.8\\0.8\\1", "not 2"),
    ("PixelSpacing", "inf\\0.8", "not finite"),
])
def test_hostile_geometry_is_one_line_naming_the_file(tmp_path, keyword, value, says):
    folder, bad = _ct3_with(tmp_path, keyword, value)
    with pytest.raises(InvalidInputError) as exc:
        sb.read_series(folder)
    msg = str(exc.value)
    assert str(bad) in msg and keyword in msg and says in msg and "\n" not in msg


def test_zero_slice_spacing_is_one_line(tmp_path):
    """Two slices at one position (a zero gap) name both files."""
    import pydicom

    folder = tmp_path / "ct"
    shutil.copytree(CT3, folder)
    a = pydicom.dcmread(folder / "01.dcm")
    b = pydicom.dcmread(folder / "02.dcm")
    b.ImagePositionPatient = a.ImagePositionPatient
    b.save_as(folder / "02.dcm")
    with pytest.raises(GeometryMismatchError, match="same position") as exc:
        sb.read_series(folder)
    assert "01.dcm" in str(exc.value) and "02.dcm" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_raw_reader_matches_pydicom_on_every_series_file(tmp_path):
    """What the raw header reader reports equals pydicom's reading of the same files,
    including files it has to read past its first 32 KiB for, and an implicit VR copy."""
    import pydicom

    from segbridge.series import RawHeader, _pydicom_header, read_header

    folder = tmp_path / "ct"
    shutil.copytree(CT3, folder)
    ds = pydicom.dcmread(folder / "03.dcm")
    ds.add_new(0x00091010, "OB", b"\x01" * 40000)  # a private element: header > 32 KiB
    ds.save_as(folder / "03.dcm")
    ds = pydicom.dcmread(folder / "02.dcm")
    ds.save_as(folder / "02.dcm", implicit_vr=True, little_endian=True,
               enforce_file_format=True)
    for path in sorted(folder.iterdir()):
        mine, theirs = read_header(path), _pydicom_header(path)
        assert isinstance(mine, RawHeader)
        for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                   "FrameOfReferenceUID", "Rows", "Columns", "Modality", "PatientID"):
            assert str(mine.get(kw)) == str(theirs.get(kw)), (path.name, kw)
    ref = sb.read_series(folder)
    assert ref.source.position_strings == sb.read_series(CT3).source.position_strings
    assert ref.headers[0].PatientName == pydicom.dcmread(CT3 / "01.dcm").PatientName
