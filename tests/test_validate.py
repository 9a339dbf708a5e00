"""Every validation rule: a good file that passes it, and a mutated copy that is flagged with its
rule id. Plus: everything segbridge writes validates clean, the known-bad files in ../shared/data
get the expected findings, and repair turns repairable files into clean ones."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import CT3, DATA, DCMQI, HD, PYD
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

import segbridge as sb
from segbridge.validate import RULES, validate

RTU = DATA / "rt-utils" / "tests" / "mock_data"


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    from segbridge import synthetic

    two_d = tmp_path_factory.mktemp("frame-space")
    return {"ct3": sb.read_series(CT3), "rtu": sb.read_series([RTU / "ct_1.dcm",
                                                               RTU / "ct_2.dcm"]),
            "odd": sb.read_series(DCMQI / "23x38x3" / "image"),
            "mf": sb.read_series(DCMQI / "24x38x3" / "multiframe" / "mf.dcm"),
            "us": sb.read_series(synthetic.write_us_cine(two_d / "us.dcm", 8, 16, 24)),
            "dx": sb.read_series(synthetic.write_dx(two_d / "dx.dcm"))}


def _frame_space_seg(ref) -> sb.Segmentation:
    """Two segments on a 2-D / cine reference, the second only on some frames."""
    a = np.zeros(ref.grid.shape, np.uint8)
    a[:, 2:6, 3:9] = 1
    a[-1, 8:12, 10:16] = 2
    return sb.from_array(a, ref)


@pytest.fixture(scope="module")
def bases(refs, tmp_path_factory):
    """Good files written by segbridge (clean for the profile each is used with)."""
    out = tmp_path_factory.mktemp("bases")
    ct3 = refs["ct3"]
    overlap = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    liver = sb.read(DCMQI / "liver.dcm", reference=ct3)
    two = overlap.subset([1, 4])  # two non-overlapping segments
    frac = sb.Segmentation(two.grid, two.segments, source=two.source,
                           fractional={s.number: two.fraction(s.number) for s in two.segments})
    files = {
        "binary": sb.write(two, out / "binary.dcm", type="binary", profile="archive",
                           compression="none")[0],
        "binary-rle": sb.write(two, out / "binary-rle.dcm", type="binary", profile="archive",
                               compression="rle")[0],
        "liver": sb.write(liver, out / "liver.dcm", type="binary", profile="ohif")[0],
        "overlap": sb.write(overlap, out / "overlap.dcm", type="binary", profile="archive",
                            compression="none")[0],
        "labelmap": sb.write(two, out / "labelmap.dcm", type="labelmap", profile="ohif")[0],
        "fractional": sb.write(frac, out / "fractional.dcm", type="fractional",
                               profile="archive", compression="none")[0],
        "j2k": sb.write(two, out / "j2k.dcm", type="labelmap", profile="archive",
                        compression="jpeg2000")[0],
        "mf": sb.write(sb.read(DCMQI / "24x38x3" / "seg" / "label.seg", reference=refs["mf"]),
                       out / "mf.dcm", type="binary", profile="archive", compression="rle",
                       reference=refs["mf"])[0],
        "rt": _rt_in_the_images_frame_of_reference(out),
        "us": sb.write(_frame_space_seg(refs["us"]), out / "us.dcm", type="binary",
                       profile="archive", compression="none", reference=refs["us"])[0],
        "dx": sb.write(_frame_space_seg(refs["dx"]), out / "dx.dcm", type="binary",
                       profile="archive", compression="none", reference=refs["dx"])[0],
    }
    return files


def _rt_in_the_images_frame_of_reference(out: Path) -> Path:
    """rt-utils' rt.dcm gives its ROIs a new Frame of Reference UID (not the CT's); the good
    RTSTRUCT base uses the CT's."""
    for_uid = pydicom.dcmread(RTU / "ct_1.dcm", stop_before_pixels=True).FrameOfReferenceUID
    ds = pydicom.dcmread(RTU / "rt.dcm")
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = for_uid
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = for_uid
    path = out / "rt.dcm"
    ds.save_as(path)
    return path


def mutate(path: Path, tmp: Path, change, name="broken.dcm") -> Path:
    ds = pydicom.dcmread(path, force=True)
    change(ds)
    out = tmp / name
    ds.save_as(out, enforce_file_format=False)
    return out


def pffg(ds, i=0):
    return ds.PerFrameFunctionalGroupsSequence[i]


def _truncate(path, tmp):
    out = tmp / "broken.dcm"
    raw = Path(path).read_bytes()
    out.write_bytes(raw[:-4000])
    return out


def _renumber_second(ds):
    ds.SegmentSequence[1].SegmentNumber = 3
    for fg in ds.PerFrameFunctionalGroupsSequence:
        if fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 2:
            fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 3


def _no_geometry(ds):
    del ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    del ds.FrameOfReferenceUID
    for fg in ds.PerFrameFunctionalGroupsSequence:
        del fg.PlanePositionSequence


def _labelmap_undescribed(ds):
    ds.SegmentSequence = ds.SegmentSequence[:1]


def _duplicate_first_frame(ds):
    """Frame 2 becomes a second frame of frame 1's segment on frame 1's source image."""
    ds.PerFrameFunctionalGroupsSequence[1] = copy.deepcopy(ds.PerFrameFunctionalGroupsSequence[0])


def _palette(ds):
    ds.PhotometricInterpretation = "PALETTE COLOR"


def _extra_empty_segment(ds):
    item = copy.deepcopy(ds.SegmentSequence[-1])
    item.SegmentNumber = len(ds.SegmentSequence) + 1
    item.SegmentLabel = "empty"
    ds.SegmentSequence.append(item)


def _fragments_without_bot(ds):
    frames = list(pydicom.encaps.generate_frames(ds.PixelData,
                                                 number_of_frames=int(ds.NumberOfFrames)))
    ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=False)


def _rotate_iop(ds):
    a = np.radians(5)
    ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient = \
        [np.cos(a), np.sin(a), 0, -np.sin(a), np.cos(a), 0]


def _segment_300(ds):
    ds.SegmentSequence[-1].SegmentNumber = 300


def _drop_frame_number(ds):
    for fg in ds.PerFrameFunctionalGroupsSequence:
        del fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber


def _big_contour(ds):
    c = ds.ROIContourSequence[0].ContourSequence[0]
    t = np.linspace(0, 2 * np.pi, 7000, endpoint=False)
    z = float(c.ContourData[2])
    pts = np.column_stack([10.123456 * np.cos(t), 10.123456 * np.sin(t), np.full_like(t, z)])
    c.ContourData = [round(float(v), 6) for v in pts.ravel()]
    c.NumberOfContourPoints = len(t)


def _oblique_contour(ds):
    c = ds.ROIContourSequence[0].ContourSequence[0]
    pts = np.asarray(c.ContourData, float).reshape(-1, 3)
    pts[:, 2] += 0.2 * pts[:, 0]  # tilt the plane
    c.ContourData = [float(v) for v in pts.ravel()]


def _nonplanar_contour(ds):
    c = ds.ROIContourSequence[0].ContourSequence[0]
    pts = np.asarray(c.ContourData, float).reshape(-1, 3)
    pts[::2, 2] += 5.0
    c.ContourData = [float(v) for v in pts.ravel()]


def _shift_first_frame(ds):
    """Frame 1 moved 3.3 mm in plane: without a reference the reader cannot place it."""
    pp = pffg(ds).PlanePositionSequence[0]
    pp.ImagePositionPatient = [float(pp.ImagePositionPatient[0]) + 3.3,
                               *pp.ImagePositionPatient[1:]]


def _contour_not_numbers(path, tmp):
    """The first ContourData value replaced by letters (pydicom will not write that itself)."""
    ds = pydicom.dcmread(path)
    first = ds.ROIContourSequence[0].ContourSequence[0]
    first.ContourData = ["123456.5"] + list(first.ContourData[1:])
    out = tmp / "letters.dcm"
    ds.save_as(out)
    data = out.read_bytes()
    assert data.count(b"123456.5") == 1
    out.write_bytes(data.replace(b"123456.5", b"12abc6.5"))
    return out


def _rt_elsewhere(ds):
    """Another frame of reference and references to images not in the series."""
    uid = generate_uid()
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = uid
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = uid
    for st in ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence:
        for se in st.RTReferencedSeriesSequence:
            se.SeriesInstanceUID = generate_uid()
            for im in se.ContourImageSequence:
                im.ReferencedSOPInstanceUID = generate_uid()
    for item in ds.ROIContourSequence:
        for c in item.ContourSequence:
            for im in c.get("ContourImageSequence", []):
                im.ReferencedSOPInstanceUID = generate_uid()


def _frame_beyond_the_cine(ds):
    """Frame 1 references frame 9 of an 8-frame US cine."""
    pffg(ds).DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber = 9


def _invented_geometry(ds):
    """A Frame of Reference and plane positions the US cine does not have."""
    ds.FrameOfReferenceUID = generate_uid()
    for k, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        item = pydicom.Dataset()
        item.ImagePositionPatient = [0, 0, k]
        fg.PlanePositionSequence = pydicom.Sequence([item])


def _as_frame_space(ds):
    """The CT SEG stripped of its patient geometry, as a SEG of 2-D images would be."""
    del ds.FrameOfReferenceUID
    shared = ds.SharedFunctionalGroupsSequence[0]
    del shared.PlaneOrientationSequence
    for fg in ds.PerFrameFunctionalGroupsSequence:
        del fg.PlanePositionSequence
    ds.PatientOrientation = ""


def _pixel(change):
    def apply(ds):
        change(ds)
    return apply


# (rule, base, profile, reference, mutation) -- mutation(ds) or a (path, tmp) -> path function
CASES = [
    ("SEG-READ", "binary", "standard", None, ("file", _truncate)),
    ("SEG-FILE-META", "binary", "standard", None,
     lambda ds: setattr(ds.file_meta, "MediaStorageSOPInstanceUID", generate_uid())),
    ("SEG-SOP-CLASS", "binary", "standard", None, lambda ds: setattr(ds, "Modality", "OT")),
    ("SEG-TYPE", "labelmap", "standard", None,
     lambda ds: setattr(ds, "SegmentationType", "BINARY")),
    ("SEG-BITS", "binary", "standard", None, lambda ds: setattr(ds, "BitsStored", 8)),
    ("SEG-IMAGE-PIXEL", "binary", "standard", None,
     lambda ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME1")),
    ("SEG-IMAGE-TYPE", "binary", "standard", None,
     lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY"])),
    ("SEG-FRACTIONAL", "fractional", "standard", None,
     lambda ds: delattr(ds, "SegmentationFractionalType")),
    ("SEG-FRACTIONAL-RANGE", "fractional", "standard", None,
     lambda ds: setattr(ds, "MaximumFractionalValue", 100)),
    ("SEG-SEGMENT-NUMBERS", "binary", "standard", None, _renumber_second),
    ("SEG-SEGMENT-ITEM", "binary", "standard", None,
     lambda ds: delattr(ds.SegmentSequence[0], "SegmentLabel")),
    ("SEG-CODE-ITEM", "binary", "standard", None,
     lambda ds: delattr(ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0],
                        "CodeMeaning")),
    ("SEG-TRACKING", "binary", "standard", None,
     lambda ds: setattr(ds.SegmentSequence[0], "TrackingID", "lesion 1")),
    ("SEG-CONTENT-ID", "binary", "standard", None,
     lambda ds: setattr(ds, "ContentLabel", "bad label!")),
    ("SEG-EQUIPMENT", "binary", "standard", None,
     lambda ds: setattr(ds, "DeviceSerialNumber", "")),
    ("SEG-IDENTITY", "binary", "standard", None, lambda ds: delattr(ds, "SeriesNumber")),
    ("SEG-FRAME-COUNT", "binary-rle", "standard", None,
     lambda ds: setattr(ds, "NumberOfFrames", int(ds.NumberOfFrames) + 1)),
    ("SEG-PIXEL-LENGTH", "binary", "standard", None,
     lambda ds: setattr(ds, "PixelData", ds.PixelData + b"\0" * 100)),
    ("SEG-SEGMENT-IDENTIFICATION", "binary", "standard", None,
     lambda ds: setattr(pffg(ds).SegmentIdentificationSequence[0], "ReferencedSegmentNumber", 9)),
    ("SEG-FUNCTIONAL-GROUPS", "binary", "standard", None,
     lambda ds: setattr(pffg(ds), "PixelMeasuresSequence",
                        copy.deepcopy(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence))),
    ("SEG-GEOMETRY", "binary", "standard", None,
     lambda ds: delattr(pffg(ds), "PlanePositionSequence")),
    ("SEG-PATIENT-ORIENTATION", "binary", "standard", None, _no_geometry),
    ("SEG-PIXEL-MEASURES", "binary", "standard", None,
     lambda ds: delattr(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0],
                        "SliceThickness")),
    ("SEG-DIMENSIONS", "binary", "standard", None, lambda ds: delattr(ds,
                                                                       "DimensionIndexSequence")),
    ("SEG-FRAME-OF-REFERENCE", "binary", "standard", "ct3",
     lambda ds: setattr(ds, "FrameOfReferenceUID", generate_uid())),
    ("SEG-REFERENCES", "binary", "standard", "ct3",
     lambda ds: setattr(pffg(ds).DerivationImageSequence[0].SourceImageSequence[0],
                        "ReferencedSOPInstanceUID", generate_uid())),
    ("SEG-REFERENCE-POSITION", "binary", "standard", "ct3",
     lambda ds: setattr(pffg(ds).PlanePositionSequence[0], "ImagePositionPatient",
                        [float(v) + 0.5 for v in pffg(ds).PlanePositionSequence[0]
                         .ImagePositionPatient])),
    ("SEG-COMMON-INSTANCE-REFERENCE", "binary", "standard", None,
     lambda ds: delattr(ds, "ReferencedSeriesSequence")),
    ("SEG-LABELMAP-VALUES", "labelmap", "standard", None, _labelmap_undescribed),
    ("SEG-OVERLAP-FLAG", "overlap", "standard", None,
     lambda ds: setattr(ds, "SegmentsOverlap", "NO")),
    ("SEG-LOSSY", "binary", "standard", None,
     lambda ds: setattr(ds, "LossyImageCompression", "XX")),
    ("SEG-TRANSFER-SYNTAX", "binary-rle", "standard", None,
     lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.4.80")),
    ("SEG-TRANSFER-SYNTAX-ADVICE", "binary", "standard", None,
     ("file", lambda p, t: PYD / "liver_expb.dcm")),
    ("SEG-PALETTE", "labelmap", "standard", None, _palette),
    ("SEG-EMPTY-SEGMENT", "binary", "standard", None, _extra_empty_segment),
    ("SEG-DUPLICATE-FRAMES", "binary", "standard", None, _duplicate_first_frame),
    ("SEG-DUPLICATE-LABELS", "binary", "standard", None,
     lambda ds: setattr(ds.SegmentSequence[1], "SegmentLabel",
                        ds.SegmentSequence[0].SegmentLabel)),
    ("OHIF-REFERENCED-SERIES", "liver", "ohif", None,
     lambda ds: delattr(ds, "ReferencedSeriesSequence")),
    ("OHIF-FRAME-SOURCE", "liver", "ohif", None,
     lambda ds: delattr(pffg(ds), "DerivationImageSequence")),
    ("OHIF-SOURCE-SIZE", "liver", "ohif", "ct3",
     ("file", lambda p, t: PYD / "liver_nonbyte_aligned.dcm")),
    ("OHIF-ORIENTATION", "liver", "ohif", "ct3", _rotate_iop),
    ("OHIF-NUMBERING", "labelmap", "ohif", None,
     lambda ds: setattr(ds.SegmentSequence[1], "SegmentNumber", 3)),
    ("OHIF-SEGMENT-MAX", "labelmap", "ohif", None, _segment_300),
    ("OHIF-FRACTIONAL", "fractional", "ohif", None,
     lambda ds: setattr(ds, "PixelData", (np.frombuffer(ds.PixelData, np.uint8) // 2)
                        .astype(np.uint8).tobytes())),
    ("OHIF-OVERLAP", "liver", "ohif", None, ("file", lambda p, t: p.with_name("overlap.dcm"))),
    ("OHIF-NATIVE-1BIT-COLUMNS", "liver", "ohif", None, ("file", lambda p, t: DCMQI /
                                                        "23x38x3" / "seg" / "label.seg")),
    ("OHIF-RLE-1BIT", "liver", "ohif", None, ("file", lambda p, t: PYD / "liver_rle.dcm")),
    ("OHIF-TRANSFER-SYNTAX", "liver", "ohif", None,
     ("file", lambda p, t: PYD / "liver_deflate.dcm")),
    ("OHIF-TRANSFER-SYNTAX-PATH", "labelmap", "ohif", None, ("file", lambda p, t: p.with_name(
        "j2k.dcm"))),
    ("OHIF-FRAGMENTS", "labelmap", "ohif", None, _fragments_without_bot),
    ("OHIF-MULTIFRAME-SOURCE", "mf", "ohif", "mf", _drop_frame_number),
    ("OHIF-EMPTY-SEGMENT", "liver", "ohif", None, _extra_empty_segment),
    ("OHIF-COLOR", "liver", "ohif", None,
     lambda ds: delattr(ds.SegmentSequence[0], "RecommendedDisplayCIELabValue")),
    ("OHIF-SINGLE-FRAME", "liver", "ohif", None,
     ("file", lambda p, t: HD / "seg_image_ct_binary_single_frame.dcm")),
    ("SLICER-TRANSFER-SYNTAX", "binary", "slicer", None,
     ("file", lambda p, t: p.with_name("binary-rle.dcm"))),
    ("SLICER-LABELMAP", "binary", "slicer", None,
     ("file", lambda p, t: p.with_name("labelmap.dcm"))),
    ("SLICER-EMPTY-SEGMENT", "binary", "slicer", None, _extra_empty_segment),
    ("SLICER-PLANE-POSITIONS", "binary", "slicer", None,
     lambda ds: [delattr(fg, "PlanePositionSequence")
                 for fg in ds.PerFrameFunctionalGroupsSequence]),
    ("RT-SOP-CLASS", "rt", "standard", None, lambda ds: setattr(ds, "Modality", "OT")),
    ("RT-STRUCTURE-SET", "rt", "standard", None, lambda ds: delattr(ds, "StructureSetLabel")),
    ("RT-ROI", "rt", "standard", None,
     lambda ds: ds.StructureSetROISequence.append(copy.deepcopy(
         ds.StructureSetROISequence[0]))),
    ("RT-ROI-CONTOUR-REFERENCE", "rt", "standard", None,
     lambda ds: setattr(ds.ROIContourSequence[0], "ReferencedROINumber", 99)),
    ("RT-OBSERVATIONS", "rt", "standard", None,
     lambda ds: delattr(ds, "RTROIObservationsSequence")),
    ("RT-CONTOUR-POINTS", "rt", "standard", None,
     lambda ds: setattr(ds.ROIContourSequence[0].ContourSequence[0], "NumberOfContourPoints",
                        int(ds.ROIContourSequence[0].ContourSequence[0].NumberOfContourPoints)
                        + 1)),
    ("RT-CONTOUR-TYPE", "rt", "standard", None,
     lambda ds: setattr(ds.ROIContourSequence[0].ContourSequence[0], "ContourGeometricType",
                        "BOGUS")),
    ("RT-CONTOUR-PLANAR", "rt", "standard", None, _nonplanar_contour),
    ("RT-REFERENCED-SERIES", "rt", "ohif", None,
     ("file", lambda p, t: RTU / "non_existent_reference_rt.dcm")),
    ("RT-REFERENCES", "rt", "standard", "rtu",
     ("file", lambda p, t: RTU / "invalid_reference_rt.dcm")),
    ("RT-COLOR", "rt", "ohif", None,
     lambda ds: delattr(ds.ROIContourSequence[0], "ROIDisplayColor")),
    ("RT-OBLIQUE", "rt", "ohif", None, _oblique_contour),
    ("RT-CONTOUR-DATA-LENGTH", "rt", "standard", None, _big_contour),
    ("SEG-READER", "binary", "standard", None, _shift_first_frame),
    ("SEG-TEXT-VALUES", "binary", "standard", None,
     lambda ds: setattr(ds.SegmentSequence[0], "SegmentLabel", "Liver\ndata file: /etc/passwd")),
    ("RT-TEXT-VALUES", "rt", "standard", None,
     lambda ds: setattr(ds.StructureSetROISequence[0], "ROIName", "x" * 65)),
    ("RT-CONTOUR-DATA", "rt", "standard", None, ("file", _contour_not_numbers)),
    ("RT-READER", "rt", "standard", "rtu", _rt_elsewhere),
    ("OHIF-FRAME-SPACE", "binary", "ohif", None, _as_frame_space),
    ("SEG-FRAME-NUMBER", "us", "standard", "us", _frame_beyond_the_cine),
    ("SEG-FRAME-SPACE-GEOMETRY", "us", "standard", "us", _invented_geometry),
    ("SEG-FRAME-SPACE-PIXEL-MEASURES", "dx", "standard", "dx",
     lambda ds: delattr(ds.SharedFunctionalGroupsSequence[0], "PixelMeasuresSequence")),
]


def test_every_rule_has_a_case():
    from test_slide import SLIDE_RULES_TESTED  # the tiled rules' cases live there

    assert sorted(r.id for r in RULES) == sorted([c[0] for c in CASES] + SLIDE_RULES_TESTED)


@pytest.mark.parametrize(("rule", "base", "profile", "reference", "mutation"), CASES,
                         ids=[c[0] for c in CASES])
def test_rule(rule, base, profile, reference, mutation, bases, refs, tmp_path):
    ref = refs[reference] if reference else None
    good_path = bases[base]
    good = validate(good_path, reference=ref, profile=profile)
    assert rule not in good.rule_ids(), [f.line() for f in good.findings]
    if isinstance(mutation, tuple):
        broken_path = mutation[1](good_path, tmp_path)
    else:
        broken_path = mutate(good_path, tmp_path, mutation)
    res = validate(broken_path, reference=ref, profile=profile)
    hits = [f for f in res.findings if f.rule == rule]
    assert hits, [f.line() for f in res.findings]
    rule_obj = next(r for r in RULES if r.id == rule)
    assert all(h.severity == rule_obj.severity and h.hint and h.source and h.message
               for h in hits)


TYPES_TS = [(t, c) for t in ("binary", "fractional", "labelmap")
            for c in ("none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame")
            if not (t == "binary" and c == "jpegls")]


@pytest.mark.parametrize("profile", ["ohif", "slicer", "archive", "dense"])
def test_everything_we_write_validates_clean(profile, refs, tmp_path):
    """Zero error-level findings (all rules, pixels decoded) on every file each profile
    accepts to write; the others are refused before anything is written."""
    from segbridge.profiles import get_profile
    from segbridge.validate import PROFILE_FOR_WRITER

    prof = get_profile(profile)
    ct3 = refs["ct3"]
    model = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    written = refused = 0
    for kind, comp in TYPES_TS + [(t, None) for t in ("auto", "binary", "labelmap")]:
        m = model.subset([1, 4, 5]) if kind == "labelmap" and not prof.split_overlaps else model
        if kind == "fractional":
            m = sb.Segmentation(m.grid, m.segments, source=m.source,
                                fractional={s.number: m.fraction(s.number) for s in m.segments})
        out = tmp_path / f"{kind}-{comp}.dcm"
        try:
            files = sb.write(m, out, type=kind, compression=comp, profile=profile,
                             reference=ct3)
        except sb.errors.ValidationFailed:
            refused += 1
            assert not list(tmp_path.glob(f"{kind}-{comp}*"))
            continue
        for f in files:
            res = validate(f, reference=ct3, profile=PROFILE_FOR_WRITER[profile])
            assert res.errors == [], [e.line() for e in res.errors]
            written += 1
    assert written > refused


def test_known_bad_files(refs):
    mg = validate(DATA / "dcmjs/examples/data/seg-test-SEG.dcm", profile="ohif")
    assert {"SEG-PATIENT-ORIENTATION", "SEG-PIXEL-MEASURES", "OHIF-FRAME-SPACE"} <= \
        mg.rule_ids()
    bad = validate(RTU / "invalid_reference_rt.dcm", reference=refs["rtu"])
    assert "RT-REFERENCES" in bad.rule_ids() and not bad.ok
    none = validate(RTU / "non_existent_reference_rt.dcm", profile="ohif")
    assert "RT-REFERENCED-SERIES" in none.rule_ids()
    rt = validate(RTU / "rt.dcm", reference=refs["rtu"], profile="ohif")
    assert [f.rule for f in rt.errors] == ["RT-REFERENCES"]  # a new Frame of Reference UID
    assert "frame of reference" in rt.errors[0].message


def test_rules_doc_is_generated_from_the_code():
    from segbridge.validate.docs import rules_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "rules.md"
    assert doc.read_text() == rules_markdown(), \
        "regenerate: python -m segbridge.validate.docs > docs/rules.md"


REPAIRABLE = [
    ("SEG-SEGMENT-NUMBERS", "binary", _renumber_second),
    ("OHIF-REFERENCED-SERIES", "liver", lambda ds: delattr(ds, "ReferencedSeriesSequence")),
    ("OHIF-FRAME-SOURCE", "liver", lambda ds: [delattr(fg, "DerivationImageSequence")
                                               for fg in ds.PerFrameFunctionalGroupsSequence]),
    ("OHIF-COLOR", "liver",
     lambda ds: delattr(ds.SegmentSequence[0], "RecommendedDisplayCIELabValue")),
    ("OHIF-FRAGMENTS", "j2k", _fragments_without_bot),
    ("OHIF-SEGMENT-MAX", "labelmap", _segment_300),
    ("OHIF-NUMBERING", "labelmap", lambda ds: setattr(ds.SegmentSequence[1], "SegmentNumber", 3)),
    ("OHIF-OVERLAP", "overlap", None),
    ("SEG-PIXEL-LENGTH", "binary", None),
    ("OHIF-TRANSFER-SYNTAX", "liver", None),
]


def _per_frame_padded(path, tmp):
    """Rewrite the 23-column SEG with 1-bit frames padded one by one (Cornerstone's export)."""
    ds = pydicom.dcmread(DCMQI / "23x38x3" / "seg" / "label.seg")
    px = ds.pixel_array.reshape(-1, ds.Rows * ds.Columns)
    ds.PixelData = b"".join(np.packbits(f, bitorder="little").tobytes() for f in px)
    out = tmp / "padded.dcm"
    ds.save_as(out)
    return out


@pytest.mark.parametrize(("rule", "base", "mutation"), REPAIRABLE, ids=[r[0] for r in REPAIRABLE])
def test_repair_makes_clean_files_that_highdicom_and_cornerstone_read(rule, base, mutation, bases,
                                                                      refs, tmp_path):
    from segbridge.repair import repair

    ref = refs["ct3"]
    if rule == "SEG-PIXEL-LENGTH":
        broken, ref = _per_frame_padded(None, tmp_path), refs["odd"]
    elif rule == "OHIF-TRANSFER-SYNTAX":
        broken = PYD / "liver_deflate.dcm"
    elif mutation is None:
        broken = bases[base]
    else:
        broken = mutate(bases[base], tmp_path, mutation)
    profile = "standard" if rule.startswith("SEG-") else "ohif"
    before = validate(broken, reference=ref, profile=profile)
    assert rule in before.rule_ids()
    expected = sb.read(broken, reference=ref)
    out = tmp_path / "out"
    out.mkdir()
    res = repair(broken, out / "fixed.dcm", reference=ref,
                 profile="archive" if profile == "standard" else "ohif")
    assert res.ok, res.unfixable
    assert any(rule in c for c in res.changes)
    got = [sb.read(p, reference=ref) for p in res.written]
    by_label = {s.label: (p, s.number) for p in got for s in p.segments}
    for s in expected.segments:
        p, n = by_label[s.label]
        np.testing.assert_array_equal(p.mask(n), expected.mask(s.number), err_msg=s.label)
    for p in res.written:
        assert validate(p, reference=ref, profile=profile).ok
        assert_highdicom_reads(p, ref, by_label)
        if profile == "ohif":
            assert_cornerstone_reads(p, ref)


def assert_highdicom_reads(path, ref, by_label):
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    ours = sb.read(path, reference=ref)
    uids = [i.sop_instance_uid for i in ref.source.instances]
    present = {str(r.ReferencedSOPInstanceUID) for r in
               seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    keep = [u for u in uids if u in present]
    arr = seg.get_pixels_by_source_instance(keep, segment_numbers=ours.numbers,
                                            skip_overlap_checks=True)
    for j, s in enumerate(ours.segments):
        for i, u in enumerate(keep):
            np.testing.assert_array_equal(arr[i, ..., j] != 0, ours.mask(s.number)[uids.index(u)])


def assert_cornerstone_reads(path, ref):
    from interop_node import cornerstone_masks

    got = cornerstone_masks(path, ref)
    ours = sb.read(path, reference=ref)
    for s in ours.segments:  # empty segments have no labelmap value in Cornerstone
        mask = got.get(s.number, np.zeros(ref.grid.shape, bool))
        np.testing.assert_array_equal(mask, ours.mask(s.number), err_msg=s.label)


def test_repair_refuses_what_needs_a_guess(bases, refs, tmp_path):
    from segbridge.repair import repair

    res = repair(HD / "seg_image_ct_true_fractional.dcm", tmp_path / "x.dcm",
                 reference=sb.read_series(DATA / "pydicom-wheel/pydicom/data/test_files/"
                                                 "dicomdirtests/77654033/CT2"), profile="ohif")
    assert not res.ok and not res.written and "OHIF-FRACTIONAL" in res.unfixable[0]
    exe = Path(sys.executable).parent / "segbridge"
    run = subprocess.run([str(exe), "repair", str(HD / "seg_image_ct_true_fractional.dcm"), "-o",
                          str(tmp_path / "y.dcm")], capture_output=True, text=True)
    assert run.returncode == 1 and "cannot be repaired" in run.stderr
    assert not list(tmp_path.iterdir())


def test_guide_is_generated_from_the_measurements():
    """docs/guide.md holds no hand-typed numbers: it is exactly what make_guide.py renders."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "docs" / "make_guide.py"
    spec = importlib.util.spec_from_file_location("make_guide", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (path.parent / "guide.md").read_text() == mod.guide(*mod.load())


# ---------------------------------------------------------------------------------------------
# issue 11: rules reading UL/AT values fire, crashing rules, hints that work under the profile
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pointer", [0x00209157, 0x00280030])
def test_dimension_index_pointer_is_checked(pointer, bases, tmp_path):
    """DimensionIndexPointer (AT) read as None before, so SEG-DIMENSIONS never looked at it:
    pointing at Frame Content, or at an attribute its functional group lacks, is flagged."""
    good = validate(bases["binary"])
    assert "SEG-DIMENSIONS" not in good.rule_ids()
    broken = mutate(bases["binary"], tmp_path,
                    lambda ds: setattr(ds.DimensionIndexSequence[1], "DimensionIndexPointer",
                                       pointer))
    hits = [f for f in validate(broken).findings if f.rule == "SEG-DIMENSIONS"]
    assert hits and hits[0].severity == "error" and "DimensionIndexSequence[1]" in hits[0].where


def test_dcmqi_dimension_pointers_read_as_tags():
    from segbridge.dicom.parse import parse_file

    dims = parse_file(DCMQI / "liver.dcm").ds.DimensionIndexSequence
    assert [d.DimensionIndexPointer for d in dims] == [0x0062000B, 0x00200032]
    assert "SEG-DIMENSIONS" not in validate(DCMQI / "liver.dcm").rule_ids()


def _with_rule(monkeypatch, check):
    from segbridge.validate import findings

    extra = findings.Rule("TEST-CRASH", "SEG", "warning", "test", "hint", "test",
                          findings.ALL, check)
    monkeypatch.setattr(findings, "RULES", findings.RULES + [extra])
    import segbridge.validate as v

    monkeypatch.setattr(v, "RULES", findings.RULES)


def test_a_crashing_rule_is_a_bug_not_a_warning(bases, monkeypatch):
    def crash(ctx):
        raise ZeroDivisionError("a bug in a rule")
        yield  # pragma: no cover

    _with_rule(monkeypatch, crash)
    with pytest.raises(ZeroDivisionError):
        validate(bases["binary"])


def test_a_rule_stopped_by_the_file_is_an_error(bases, monkeypatch):
    def refuse(ctx):
        raise sb.errors.InvalidInputError(f"{ctx.path}: element (0018,0050): 'abc' is not a "
                                          "valid decimal string (DS)")
        yield  # pragma: no cover

    _with_rule(monkeypatch, refuse)
    res = validate(bases["binary"])
    hits = [f for f in res.findings if f.rule == "TEST-CRASH"]
    assert [h.severity for h in hits] == ["error"] and "'abc'" in hits[0].message
    assert not res.ok


ODD_NRRD = DCMQI / "23x38x3" / "nrrd" / "label.nrrd"


def test_binary_on_odd_columns_under_ohif_names_a_fix_ohif_accepts(refs, tmp_path):
    """Class 10: --type binary with Columns 23 under ohif said "Encode BINARY with RLE", which
    OHIF-RLE-1BIT forbids in the same profile; the hint names --type labelmap or another
    profile, and following it works."""
    seg = sb.read(ODD_NRRD, reference=refs["odd"])
    with pytest.raises(sb.errors.ValidationFailed) as exc:
        sb.write(seg, tmp_path / "b.dcm", type="binary", profile="ohif", reference=refs["odd"])
    msg = str(exc.value)
    assert "OHIF-NATIVE-1BIT-COLUMNS" in msg and "--type labelmap" in msg
    assert "with RLE" not in msg and "Encode BINARY" not in msg
    assert sb.write(seg, tmp_path / "l.dcm", type="labelmap", profile="ohif",
                    reference=refs["odd"])
    for prof in ("slicer", "archive"):
        assert sb.write(seg, tmp_path / f"{prof}.dcm", type="binary", profile=prof,
                        reference=refs["odd"])


def test_no_ohif_hint_suggests_rle_for_one_bit_frames(bases, tmp_path):
    """Every finding on 1-bit SEGs under ohif names a fix ohif accepts (no 1-bit RLE)."""
    files = [DCMQI / "23x38x3" / "seg" / "label.seg", PYD / "liver_rle.dcm",
             PYD / "liver_deflate.dcm", PYD / "liver_j2k.dcm", PYD / "liver_expb.dcm",
             bases["binary-rle"]]
    seen = set()
    for f in files:
        for finding in validate(f, profile="ohif").findings:
            seen.add(finding.rule)
            hint = finding.hint.lower()
            assert "with rle" not in hint and "rle or none" not in hint and \
                "prefer rle" not in hint, (f, finding.rule, finding.hint)
    assert {"OHIF-NATIVE-1BIT-COLUMNS", "OHIF-RLE-1BIT", "OHIF-TRANSFER-SYNTAX"} <= seen


def test_text_values_a_vr_cannot_hold_are_errors(bases, tmp_path):
    def hostile(ds):
        ds.SeriesDescription = "CT\x00hidden"
        ds.ContentLabel = "LIVER_SEG"  # a valid CS value
        ds.ContentDescription = "x" * 80
        ds.SegmentSequence[0].SegmentDescription = "line one\r\nline two"  # ST allows CR LF
        ds.SegmentSequence[1].SegmentLabel = "Tumour\x1b[31m"

    broken = mutate(bases["binary"], tmp_path, hostile)
    res = validate(broken)
    hits = {f.where: f for f in res.findings if f.rule == "SEG-TEXT-VALUES"}
    assert set(hits) == {"SeriesDescription", "ContentDescription",
                         "SegmentSequence[1].SegmentLabel"}, [f.line() for f in res.findings]
    assert all(h.severity == "error" for h in hits.values())
    assert "0x00" in hits["SeriesDescription"].message
    assert "80 characters" in hits["ContentDescription"].message
    exe = Path(sys.executable).parent / "segbridge"
    run = subprocess.run([str(exe), "validate", str(broken)], capture_output=True, text=True)
    assert run.returncode == 1 and "SEG-TEXT-VALUES" in run.stdout


def test_content_label_must_be_cs(bases, tmp_path):
    broken = mutate(bases["binary"], tmp_path, lambda ds: setattr(ds, "ContentLabel", "Liver"))
    hits = [f for f in validate(broken).findings if f.rule == "SEG-TEXT-VALUES"]
    assert hits and hits[0].where == "ContentLabel" and "not a CS value" in hits[0].message


def test_a_text_problem_in_every_frame_is_reported(bases, tmp_path):
    """The walker shares identical per-frame items: a bad value repeated in every frame is
    still found (once, at the first frame), and a bad value in one frame only names it."""
    def every_frame(ds):
        for item in ds.PerFrameFunctionalGroupsSequence:
            item.DerivationImageSequence[0].SourceImageSequence[0].SpatialLocationsPreserved = \
                "yes"

    hits = [f for f in validate(mutate(bases["binary"], tmp_path, every_frame)).findings
            if f.rule == "SEG-TEXT-VALUES"]
    assert len(hits) == 1 and hits[0].where.startswith("PerFrameFunctionalGroupsSequence[0].")
    assert hits[0].where.endswith("SpatialLocationsPreserved")

    def last_frame(ds):
        seq = ds.PerFrameFunctionalGroupsSequence
        seq[-1].DerivationImageSequence[0].SourceImageSequence[0].SpatialLocationsPreserved = \
            "yes"
        return len(seq)

    ds = pydicom.dcmread(bases["binary"])
    n = last_frame(ds)
    hits = [f for f in validate(mutate(bases["binary"], tmp_path, last_frame, "last.dcm"))
            .findings if f.rule == "SEG-TEXT-VALUES"]
    assert [h.where.split(".")[0] for h in hits] == [f"PerFrameFunctionalGroupsSequence[{n - 1}]"]
