"""What the SEG writer puts in the file: profiles, numbering, references, encapsulation."""

import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI
from pydicom.encaps import parse_basic_offsets

import segbridge as sb
from segbridge.errors import InvalidInputError, UnsupportedError


@pytest.fixture(scope="module")
def overlap(ct3):
    return sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)


def test_header_copies_source_and_references_every_frame(ct3, overlap, tmp_path):
    path = sb.write(overlap, tmp_path / "x.dcm", type="binary", profile="slicer",
                    series_description="My seg", series_number=42)[0]
    ds = pydicom.dcmread(path)
    src = pydicom.dcmread(sorted(CT3.iterdir())[0])
    for kw in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "AccessionNumber"):
        assert ds.get(kw) == src.get(kw), kw
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.Modality == "SEG"
    assert (ds.SeriesDescription, ds.SeriesNumber) == ("My seg", 42)
    assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    # orientation copied character for character from the source (viewers compare at 1e-3)
    iop = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    assert [str(v) for v in iop.ImageOrientationPatient] == \
        [str(v) for v in src.ImageOrientationPatient]
    uids = {str(p.SOPInstanceUID): p for p in map(pydicom.dcmread, sorted(CT3.iterdir()))}
    for fg in ds.PerFrameFunctionalGroupsSequence:
        ref = fg.DerivationImageSequence[0].SourceImageSequence[0]
        ipp = fg.PlanePositionSequence[0].ImagePositionPatient
        assert str(ref.ReferencedSOPInstanceUID) in uids
        assert [str(v) for v in ipp] == \
            [str(v) for v in uids[str(ref.ReferencedSOPInstanceUID)].ImagePositionPatient]
    for item in ds.SegmentSequence:
        assert len(item.RecommendedDisplayCIELabValue) == 3
        assert item.SegmentedPropertyCategoryCodeSequence and item.SegmentedPropertyTypeCodeSequence
    assert ds.SegmentsOverlap == "YES"


def test_ohif_profile_splits_overlaps_into_labelmaps(overlap, tmp_path):
    r = sb.Report()
    files = sb.write(overlap, tmp_path / "x.dcm", report=r)
    assert [f.name for f in files] == ["x.dcm", "x-2.dcm", "x-3.dcm"][: len(files)]
    assert len(files) >= 2 and any("split into" in n for n in r.notes)
    series = set()
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        assert [s.SegmentNumber for s in ds.SegmentSequence] == \
            list(range(1, len(ds.SegmentSequence) + 1))  # no segment 0 item for Cornerstone
        assert ds.PixelPaddingValue == 0
        series.add(ds.SeriesInstanceUID)
    assert len(series) == len(files)


def test_more_segments_than_a_viewer_shows_are_split(tmp_path, ct3):
    labels = np.zeros(ct3.grid.shape, np.uint16)
    flat = labels.reshape(-1)
    flat[: 300 * 50] = np.repeat(np.arange(1, 301), 50)
    seg = sb.from_array(labels, ct3)
    files = sb.write(seg, tmp_path / "many.dcm", profile="ohif")
    assert len(files) == 2
    n = [len(pydicom.dcmread(f).SegmentSequence) for f in files]
    assert n == [255, 45]
    one = sb.write(seg, tmp_path / "archive.dcm", profile="archive")
    ds = pydicom.dcmread(one[0])
    assert len(one) == 1 and ds.BitsAllocated == 16  # 16-bit label map keeps all 300


def test_binary_renumbering_is_reported(tmp_path, ct3):
    seg = sb.read(DCMQI / "spine_seg_label5.nrrd", reference=ct3)
    r = sb.Report()
    path = sb.write(seg, tmp_path / "x.dcm", type="binary", profile="slicer", report=r)[0]
    assert any("renumbered" in n and "5->1" in n for n in r.notes)
    assert pydicom.dcmread(path).SegmentSequence[0].SegmentNumber == 1
    lm = sb.write(seg, tmp_path / "lm.dcm", type="labelmap", profile="archive")[0]
    numbers = [s.SegmentNumber for s in pydicom.dcmread(lm).SegmentSequence]
    assert numbers == [0, 5]  # background item + the label kept as segment number


def test_encapsulated_one_fragment_per_frame_with_offset_table(overlap, tmp_path):
    path = sb.write(overlap, tmp_path / "x.dcm", type="binary", compression="rle",
                    profile="archive")[0]
    ds = pydicom.dcmread(path)
    from pydicom.encaps import generate_fragments

    frags = list(generate_fragments(ds.PixelData))[1:]  # the first item is the offset table
    assert len(frags) == int(ds.NumberOfFrames)
    offsets = parse_basic_offsets(ds.PixelData)
    assert len(offsets) == int(ds.NumberOfFrames) and offsets[0] == 0
    assert all(len(f) % 2 == 0 for f in frags)


def test_dense_profile_gives_every_slice_a_frame(overlap, tmp_path):
    path = sb.write(overlap, tmp_path / "x.dcm", profile="dense")[0]
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) == len(overlap.segments) * overlap.grid.shape[0]


def test_empty_segments_and_empty_segmentation(tmp_path, ct3):
    seg = sb.from_array(np.zeros((2, *ct3.grid.shape), np.uint8), ct3)
    r = sb.Report()
    path = sb.write(seg, tmp_path / "x.dcm", type="binary", profile="slicer", report=r)[0]
    ds = pydicom.dcmread(path)
    assert int(ds.NumberOfFrames) == 1 and len(ds.SegmentSequence) == 2
    assert any("empty" in w for w in r.warnings)
    back = sb.read(path, reference=ct3)
    assert back.voxel_counts() == {1: 0, 2: 0}


def test_jpegls_cannot_hold_binary(overlap, tmp_path):
    with pytest.raises(UnsupportedError, match="JPEG-LS cannot hold 1-bit"):
        sb.write(overlap, tmp_path / "x.dcm", type="binary", compression="jpegls")
    assert not list(tmp_path.iterdir())


def test_archive_picks_a_small_encoding(overlap, tmp_path, ct3):
    subset = overlap.subset([1, 4, 5])
    archive = sb.write(subset, tmp_path / "a.dcm", profile="archive")[0]
    native = sb.write(subset, tmp_path / "n.dcm", type="labelmap", compression="none",
                      profile="archive")[0]
    assert archive.stat().st_size < native.stat().st_size / 10


def test_ohif_binary_needs_aligned_columns(tmp_path):
    """Native 1-bit frames with 23 columns fail per-frame retrieval, 1-bit RLE loads empty in
    Cornerstone: there is no BINARY encoding OHIF loads here, so the ohif profile refuses."""
    ref = sb.read_series(DCMQI / "23x38x3" / "image")
    seg = sb.read(DCMQI / "23x38x3" / "seg" / "label.seg", reference=ref)
    for comp in (None, "rle"):
        with pytest.raises(sb.errors.ValidationFailed, match="OHIF-(NATIVE-1BIT-COLUMNS|RLE-1BIT)"):
            sb.write(seg, tmp_path / "x.dcm", type="binary", profile="ohif", compression=comp)
        assert not list(tmp_path.iterdir())
    path = sb.write(seg, tmp_path / "x.dcm", profile="ohif")[0]  # auto: a label map
    assert pydicom.dcmread(path).SegmentationType == "LABELMAP"


def test_needs_a_reference(tmp_path):
    seg = sb.read(DCMQI / "liver_seg.nrrd")
    with pytest.raises(InvalidInputError, match="--reference"):
        sb.write(seg, tmp_path / "x.dcm")


def test_demo_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "segbridge"
    res = subprocess.run([str(exe), "demo", str(tmp_path / "demo")], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all round trips voxel-exact" in res.stdout
    assert (tmp_path / "demo" / "seg_labelmap_ohif-2.dcm").exists()


def test_text_is_fitted_to_its_vr_and_reported(tmp_path, ct3):
    """Issue 11 class 3: no NUL, newline or backslash in LO values, LO cut to 64 characters,
    ContentLabel a valid CS; each change is reported naming the segment."""
    grid = ct3.grid
    labels = np.zeros(grid.shape, np.uint8)
    labels[1, 100:120, 100:120] = 1
    labels[2, 200:220, 200:220] = 2
    segs = [sb.Segment(1, "Liver\ndata file: /etc/passwd\n\n", description="a\x00b\nc"),
            sb.Segment(2, "L" * 70 + "\\x", algorithm_type="AUTOMATIC",
                       algorithm_name="net\x00work")]
    seg = sb.Segmentation.from_labelmap(grid, labels, segs, source=ct3.source,
                                        content_label="my label!", content_creator="A\nB",
                                        content_description="desc\r\n")
    r = sb.Report()
    path = sb.write(seg, tmp_path / "x.dcm", type="binary", profile="slicer",
                    series_description="CT\x00 seg\n", report=r)[0]
    ds = pydicom.dcmread(path)
    texts = [str(e.value) for e in ds.iterall()
             if e.VR in ("LO", "SH", "ST", "PN", "CS", "UT")]
    assert texts and not [t for t in texts if any(ord(c) < 32 for c in t)]
    one, two = ds.SegmentSequence
    assert one.SegmentLabel == "Liver data file: /etc/passwd"
    assert one.SegmentDescription == "a b c"
    assert two.SegmentLabel == "L" * 64 and len(two.SegmentLabel) <= 64
    assert two.SegmentAlgorithmName == "net work"
    assert ds.SeriesDescription == "CT  seg"
    assert ds.ContentLabel == "MY LABEL_" and ds.ContentDescription == "desc"
    assert str(ds.ContentCreatorName) == "A B"
    said = " ".join(r.warnings + r.notes)
    for what in ("segment 1: SegmentLabel", "segment 1: SegmentDescription",
                 "segment 2: SegmentLabel", "segment 2: SegmentAlgorithmName",
                 "SeriesDescription", "ContentLabel", "ContentCreatorName"):
        assert what in said, what
    assert all("\n" not in m for m in r.warnings + r.notes)
    # segbridge reads its own file back
    back = sb.read(path, reference=ct3)
    assert [s.label for s in back.segments] == ["Liver data file: /etc/passwd", "L" * 64]


def test_write_hands_back_its_validation_findings(overlap, tmp_path):
    """write(findings=[...]) collects what its own validation found, per written file, so a
    caller (segbridge serve) need not validate the files again."""
    findings: list = []
    files = sb.write(overlap, tmp_path / "seg.dcm", profile="ohif", type="labelmap",
                     compression="jpegls", findings=findings)
    assert len(files) > 1  # the overlap is split into several series
    rules = {(k, f.rule) for k, f in findings}
    for k in range(len(files)):  # every file was checked, each names its index
        assert (k, "OHIF-TRANSFER-SYNTAX-PATH") in rules, rules
    assert all(k is None or 0 <= k < len(files) for k, _ in findings)


def test_names_outside_ascii_make_a_utf8_seg(tmp_path, ct3):
    """The CT has no Specific Character Set (ASCII): names that need more give a SEG in
    ISO_IR 192 with the names exact, not raw latin-1 bytes in the default repertoire."""
    first = pydicom.dcmread(sorted(CT3.iterdir())[0])
    assert not first.get("SpecificCharacterSet")  # empty: the default repertoire
    labels = np.zeros(ct3.grid.shape, np.uint8)
    labels[1, 100:120, 100:120] = 1
    name = "Leber_Ünter ß 肝臓"
    seg = sb.Segmentation.from_labelmap(ct3.grid, labels, [sb.Segment(1, name)],
                                        source=ct3.source)
    r = sb.Report()
    path = sb.write(seg, tmp_path / "x.dcm", type="binary", profile="slicer", report=r)[0]
    ds = pydicom.dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.SegmentSequence[0].SegmentLabel == name
    assert str(ds.PatientName) == str(first.PatientName)
    assert not [w for w in r.warnings if "character set" in w]
    assert sb.read(path, reference=ct3).segments[0].label == name


def test_utf8_also_when_the_source_copies_sequences_and_for_code_meanings(tmp_path):
    """A de-identified CT copies sequences (DeidentificationMethodCodeSequence): their item
    tags are not text, so they do not keep the SEG in ASCII; non-ASCII code meanings count as
    new text too. A source whose copied text is latin-1 without a character set keeps its
    bytes and the new text becomes '?' with a warning."""
    import shutil

    ct = tmp_path / "ct"
    shutil.copytree(CT3, ct)
    for f in ct.iterdir():
        ds = pydicom.dcmread(f)
        item = pydicom.Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113100", "DCM", \
            "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = pydicom.Sequence([item])
        ds.save_as(f)
    ref = sb.read_series(ct)
    labels = np.zeros(ref.grid.shape, np.uint8)
    labels[1, 100:120, 100:120] = 1
    kind = sb.Code("10200004", "SCT", "Leber Läsion")
    seg = sb.Segmentation.from_labelmap(ref.grid, labels, [sb.Segment(
        1, "liver", category=sb.Code("123037004", "SCT", "Anatomical Structure"), type=kind)],
        source=ref.source)
    path = sb.write(seg, tmp_path / "x.dcm", type="binary", profile="slicer")[0]
    ds = pydicom.dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == \
        "Leber Läsion"
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    for f in ct.iterdir():  # latin-1 text copied from a source without a character set
        d = pydicom.dcmread(f)
        d.PatientName = "M\xfcller"
        d.save_as(f)
    ref = sb.read_series(ct)
    r = sb.Report()
    path = sb.write(seg.copy_meta(source=ref.source), tmp_path / "y.dcm", type="binary",
                    profile="slicer", report=r)[0]
    ds = pydicom.dcmread(path)
    assert not ds.get("SpecificCharacterSet")
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == \
        "Leber L?sion"
    assert any("written as '?'" in w for w in r.warnings)


def test_rtstruct_names_its_source_charset_cannot_hold_are_said(tmp_path):
    import shutil

    ct = tmp_path / "ct"
    shutil.copytree(CT3, ct)
    for f in ct.iterdir():
        ds = pydicom.dcmread(f)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.save_as(f)
    ref = sb.read_series(ct)
    labels = np.zeros(ref.grid.shape, np.uint8)
    labels[1, 100:120, 100:120] = 1
    labels[1, 200:220, 200:220] = 2
    seg = sb.Segmentation.from_labelmap(ref.grid, labels, [sb.Segment(1, "Läsion"),
                                                           sb.Segment(2, "脊椎")],
                                        source=ref.source)
    r = sb.Report()
    path = sb.write(seg, tmp_path / "rt.dcm", to="rtstruct", report=r)[0]
    names = [str(i.ROIName) for i in pydicom.dcmread(path).StructureSetROISequence]
    assert names == ["Läsion", "??"]
    assert [w for w in r.warnings if "'脊椎'" in w and "ISO_IR 100" in w]
    assert not [w for w in r.warnings if "Läsion" in w]
