"""The model -> an RT Structure Set, contours traced so they rasterise back to the same voxels.

Per segment and slice, outer boundaries and holes are traced (:func:`.contours.trace`) in index
space and mapped to patient coordinates through the grid. ROI colours come from the segment
colours; the Structure Set, ROI Contour and RT ROI Observations modules are complete, with
ContourImageSequence and the referenced frame of reference, study and series filled from the
source images. Contours are moved 1/32 voxel inwards (:func:`.contours.inset`) so readers
that round vertices to pixels get the same voxels as the centre rule. A slice with a contour
whose ContourData would pass 64 KiB (the length field of an explicit VR DS value) is traced in
bands of rows instead (:func:`.contours.bands`).

The header is built with pydicom; the ROI Contour Sequence, which holds millions of coordinates
for a full planning structure set, is encoded directly (pydicom builds a Python object per
value: 15 s for 3.6 million values, measured).
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np

from .. import __version__
from ..colors import default_color
from ..errors import InvalidInputError, Report, UnsupportedError
from ..model import Segmentation
from ..outputs import tmp_name
from .contours import bands, inset, trace
from .reader import RTSTRUCT_SOP_CLASS

MAX_VALUE_BYTES = 65534
MAX_VERTICES = MAX_VALUE_BYTES // 39  # 3 values of up to 12 characters + separators
STUDY_COMPONENT_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
INTERPRETED_TYPES = {"EXTERNAL", "PTV", "CTV", "GTV", "TREATED_VOLUME", "IRRAD_VOLUME",
                     "OAR", "BOLUS", "AVOIDANCE", "ORGAN", "MARKER", "REGISTRATION",
                     "ISOCENTER", "CONTRAST_AGENT", "CAVITY", "BRACHY_CHANNEL",
                     "BRACHY_ACCESSORY", "BRACHY_SRC_APP", "BRACHY_CHNL_SHLD", "SUPPORT",
                     "FIXATION", "DOSE_REGION", "CONTROL", "DOSE_MEASUREMENT"}


def _format(values: np.ndarray) -> list[str]:
    """Decimal strings (<= 16 characters, 0.1 micrometre) for many coordinates at once: each
    distinct value is formatted once (vertices take few distinct values: a half-voxel lattice
    moved by a handful of inset offsets)."""
    rounded = np.round(values, 4) + 0.0  # + 0.0 turns -0.0 into 0.0
    uniq, inverse = np.unique(rounded, return_inverse=True)
    text = np.array([f"{v:.4f}".rstrip("0").rstrip(".") for v in uniq], dtype=object)
    return text[inverse.ravel()].tolist()


def write_rtstruct(seg: Segmentation, path: str | os.PathLike, *,
                   series_description: str | None = None, series_number: int | None = None,
                   label: str | None = None, report: Report | None = None) -> Path:
    """Write ``seg`` as an RTSTRUCT on its source series; returns the path."""
    report = report if report is not None else seg.report
    target = Path(path)
    src = seg.source
    if src is not None and src.instances and not src.has_geometry:
        raise UnsupportedError(
            f"{target}: an RTSTRUCT holds contours in patient coordinates; this segmentation is "
            "frame-referenced (2-D / cine images without patient geometry); write a SEG")
    if src is None or not src.instances:
        raise InvalidInputError(
            f"{target}: an RTSTRUCT references the images it was drawn on; give the image "
            "series with --reference")
    if not target.parent.exists():
        raise InvalidInputError(f"{target}: output folder {target.parent} does not exist")
    if seg.is_fractional:
        report.note("fractional segments outlined at 50 % (RTSTRUCT contours are binary)")
    boxes = seg.bounding_boxes() if not seg.is_fractional else {}
    rois = []
    for i, s in enumerate(seg.segments):
        rois.append((s, _contours(seg, s.number, boxes.get(s.number)),
                     s.color or default_color(i)))
    tmp = tmp_name(target)
    try:
        charset = _write(tmp, seg, rois, series_description, series_number, label)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    from ..dicom.encoder import encode_text

    lost = [s.label for s, _, _ in rois if not encode_text(s.label[:64], charset)[1]]
    if lost:  # the source's character set decides; say what it could not hold
        report.warn(f"ROI name(s) {', '.join(map(repr, lost[:5]))}: characters the character "
                    f"set {'/'.join(charset) if isinstance(charset, list) else charset} cannot "
                    "hold were written as '?'")
    n_contours = sum(len(c) for _, c, _ in rois)
    report.note(f"RTSTRUCT: {len(rois)} ROIs, {n_contours} contours on series "
                f"{src.series_instance_uid}")
    return target


def _contours(seg: Segmentation, number: int, box) -> list[tuple[int, list[str]]]:
    """(slice, ContourData strings) of one segment (``box``: its bounding box)."""
    if seg.is_fractional:
        from ..model import _bbox

        mask = seg.fraction(number) >= (seg.max_fractional_value + 1) // 2
        box = _bbox(mask)
        sub = mask[box] if box is not None else None
    elif box is not None:
        sub = seg.mask_in(number, box)
    if box is None:
        return []
    offset = np.array([box[2].start, box[1].start])
    out = []
    traced = trace(sub)
    too_long = {k for k, poly in traced if len(poly) > MAX_VERTICES}
    traced = [(k, poly) for k, poly in traced if k not in too_long] + \
        [(k, poly) for k in sorted(too_long) for poly in bands(sub[k], MAX_VERTICES)]
    traced.sort(key=lambda t: t[0])  # ContourNumber in slice order
    polys = [(k + box[0].start, inset(poly) + offset) for k, poly in traced]
    if not polys:
        return []
    idx = np.concatenate([np.c_[p, np.full(len(p), k, float)] for k, p in polys])
    lps = seg.grid.index_to_lps(idx)
    text = _format(lps.ravel())
    pos = 0
    for k, p in polys:
        n = 3 * len(p)
        out.append((k, text[pos:pos + n]))
        pos += n
    return out


def _write(tmp: Path, seg: Segmentation, rois, series_description, series_number,
           label) -> str | list[str]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    from ..dicom import rawdicom as raw
    from ..dicom.derived import base_dataset

    src = seg.source
    now = _dt.datetime.now()
    head = base_dataset(src)
    sop_uid = generate_uid()
    head.SOPClassUID = RTSTRUCT_SOP_CLASS
    head.SOPInstanceUID = sop_uid
    head.Modality = "RTSTRUCT"
    head.SeriesInstanceUID = generate_uid()
    head.SeriesNumber = int(series_number or seg.series_number or 301)
    head.SeriesDescription = (series_description or seg.series_description or
                              "segbridge structures")[:64]
    head.SeriesDate = now.strftime("%Y%m%d")
    head.SeriesTime = now.strftime("%H%M%S")
    head.Manufacturer = "segbridge"
    head.ManufacturerModelName = "segbridge"
    head.SoftwareVersions = __version__
    head.OperatorsName = ""
    head.InstanceNumber = 1
    head.InstanceCreationDate = head.SeriesDate
    head.InstanceCreationTime = head.SeriesTime
    head.StructureSetLabel = _label(label or seg.content_label or "SEGBRIDGE")
    head.StructureSetName = (label or seg.content_label or "segbridge")[:64]
    head.StructureSetDate = head.SeriesDate
    head.StructureSetTime = head.SeriesTime
    for_uid = src.frame_of_reference_uid or seg.grid.frame_of_reference_uid or generate_uid()
    head.FrameOfReferenceUID = for_uid
    if "PositionReferenceIndicator" not in head:
        head.PositionReferenceIndicator = ""
    images = []
    seen = set()
    for inst in src.instances:
        if inst.sop_instance_uid in seen:
            continue
        seen.add(inst.sop_instance_uid)
        im = Dataset()
        im.ReferencedSOPClassUID = inst.sop_class_uid
        im.ReferencedSOPInstanceUID = inst.sop_instance_uid
        images.append(im)
    series = Dataset()
    series.SeriesInstanceUID = src.series_instance_uid
    series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_SOP_CLASS
    study.ReferencedSOPInstanceUID = head.StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    frame.RTReferencedStudySequence = [study]
    head.ReferencedFrameOfReferenceSequence = [frame]
    items = []
    for s, _, _ in rois:
        it = Dataset()
        it.ROINumber = s.number
        it.ReferencedFrameOfReferenceUID = for_uid
        it.ROIName = s.label[:64]
        if s.description:
            it.ROIDescription = s.description
        it.ROIGenerationAlgorithm = s.algorithm_type
        items.append(it)
    head.StructureSetROISequence = items

    tail = Dataset()  # elements after the ROI Contour Sequence (3006,0039)
    observations = []
    for i, (s, _, _) in enumerate(rois):
        ob = Dataset()
        ob.ObservationNumber = i + 1
        ob.ReferencedROINumber = s.number
        if s.extras.get("rt_observation_label"):
            ob.ROIObservationLabel = str(s.extras["rt_observation_label"])[:16]
        kind = str(s.extras.get("rt_interpreted_type") or "").upper()
        ob.RTROIInterpretedType = kind if kind in INTERPRETED_TYPES else ""
        ob.ROIInterpreter = ""
        observations.append(ob)
    tail.RTROIObservationsSequence = observations
    tail.ApprovalStatus = "UNAPPROVED"

    head.file_meta = FileMetaDataset()
    head.file_meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    head.file_meta.MediaStorageSOPInstanceUID = sop_uid
    head.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    head.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    head.SpecificCharacterSet = head.get("SpecificCharacterSet", "ISO_IR 192") or "ISO_IR 192"
    charset = head.SpecificCharacterSet
    charset = list(charset) if not isinstance(charset, str) else charset

    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, head.file_meta, enforce_standard=True)
    del head.file_meta
    parts = []
    for ds in (head, tail):
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_dataset(buf, ds)
        parts.append(buf.getvalue())
    with open(tmp, "wb") as fp:
        fp.write(b"\x00" * 128 + b"DICM" + meta.getvalue())
        fp.write(parts[0])
        fp.write(_roi_contours(rois, src, raw))
        fp.write(parts[1])
    return charset


def _roi_contours(rois, src, raw) -> bytes:
    """ROIContourSequence (3006,0039), encoded directly."""
    refs = {}
    for k, inst in enumerate(src.instances):
        ref = (raw.element(0x00081150, b"UI", raw.text(inst.sop_class_uid)) +
               raw.element(0x00081155, b"UI", raw.text(inst.sop_instance_uid)))
        if inst.frame_number:
            ref += raw.element(0x00081160, b"IS", str(inst.frame_number).encode())
        refs[k] = raw.sequence(0x30060016, [ref])
    closed = raw.element(0x30060042, b"CS", b"CLOSED_PLANAR")
    items = []
    for s, contours, color in rois:
        body = raw.element(0x3006002A, b"IS", "\\".join(str(int(c)) for c in color).encode())
        cs = []
        for i, (k, values) in enumerate(contours):
            data = "\\".join(values).encode("ascii")
            cs.append(refs[k] + closed +
                      raw.element(0x30060046, b"IS", str(len(values) // 3).encode()) +
                      raw.element(0x30060048, b"IS", str(i + 1).encode()) +
                      raw.element(0x30060050, b"DS", data))
        if cs:  # none for an empty segment: an empty Contour Sequence is invalid (1-n items)
            body += raw.sequence(0x30060040, cs)
        body += raw.element(0x30060084, b"IS", str(s.number).encode())
        items.append(body)
    return raw.sequence(0x30060039, items)


def _label(text: str) -> str:
    return (text or "SEGBRIDGE")[:16]
