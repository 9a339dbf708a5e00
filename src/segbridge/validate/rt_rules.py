"""RT Structure Set rules (PS3.3 C.8.8.5-C.8.8.8) and what OHIF's RTSTRUCT loader needs."""

from __future__ import annotations

import numpy as np

from ..errors import SegbridgeError
from .context import RtContext, number
from .findings import ERROR, WARNING, rule

RT = "RTSTRUCT"
RT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
GEOMETRIC_TYPES = {"POINT", "OPEN_PLANAR", "OPEN_NONPLANAR", "CLOSED_PLANAR", "CLOSEDPLANAR_XOR"}


def _empty(v) -> bool:
    return v is None or v == "" or v == []


@rule("RT-SOP-CLASS", RT, ERROR, "SOP Class is RT Structure Set Storage and Modality RTSTRUCT.",
      hint="Fix SOPClassUID / Modality.", source="PS3.3 A.19, C.8.8.1 [digest 5]")
def rt_sop_class(ctx: RtContext):
    if str(ctx.ds.get("SOPClassUID") or "") != RT_SOP:
        yield "SOPClassUID", f"{ctx.ds.get('SOPClassUID')!s} is not RT Structure Set Storage"
    if str(ctx.ds.get("Modality") or "") != "RTSTRUCT":
        yield "Modality", f"is {ctx.ds.get('Modality')!r}, must be RTSTRUCT"


@rule("RT-STRUCTURE-SET", RT, ERROR, "Structure Set module: StructureSetLabel and a non-empty "
      "StructureSetROISequence.", hint="Add the Structure Set attributes.",
      source="PS3.3 C.8.8.5 [digest 5]")
def rt_structure_set(ctx: RtContext):
    if _empty(ctx.ds.get("StructureSetLabel")):
        yield "StructureSetLabel", "missing or empty"
    if not ctx.rois:
        yield "StructureSetROISequence", "missing or empty"


@rule("RT-ROI", RT, ERROR, "Every ROI has a unique ROINumber and a ReferencedFrameOfReferenceUID.",
      hint="Number ROIs uniquely.", source="PS3.3 C.8.8.5 [digest 5]")
def rt_roi(ctx: RtContext):
    nums = ctx.roi_numbers
    if len(set(nums)) != len(nums):
        yield "StructureSetROISequence", f"duplicate ROI numbers {sorted(nums)}"
    for i, r in enumerate(ctx.rois):
        if _empty(r.get("ROINumber")):
            yield f"StructureSetROISequence[{i}].ROINumber", "missing"
        if _empty(r.get("ReferencedFrameOfReferenceUID")):
            yield f"StructureSetROISequence[{i}].ReferencedFrameOfReferenceUID", "missing"


@rule("RT-ROI-CONTOUR-REFERENCE", RT, ERROR, "Every ROIContourSequence item references an existing "
      "ROI (OHIF crashes otherwise).", hint="Fix ReferencedROINumber.",
      source="PS3.3 C.8.8.6, viewer-behaviour A25")
def rt_roi_contour_reference(ctx: RtContext):
    known = set(ctx.roi_numbers)
    if "ROIContourSequence" not in ctx.ds:
        yield "ROIContourSequence", "missing"
        return
    for i, item in enumerate(ctx.ds.get("ROIContourSequence") or []):
        n = item.get("ReferencedROINumber")
        if n is None or number(n, -1) not in known:
            yield f"ROIContourSequence[{i}]", f"references ROI {n}, which is not defined"


@rule("RT-OBSERVATIONS", RT, ERROR, "RTROIObservationsSequence exists and references defined "
      "ROIs.", hint="Add an observation per ROI.", source="PS3.3 C.8.8.8 [digest 5]")
def rt_observations(ctx: RtContext):
    obs = ctx.ds.get("RTROIObservationsSequence")
    if obs is None:
        yield "RTROIObservationsSequence", "missing"
        return
    known = set(ctx.roi_numbers)
    for i, o in enumerate(obs):
        n = o.get("ReferencedROINumber")
        if n is None or number(n, -1) not in known:
            yield f"RTROIObservationsSequence[{i}]", f"references ROI {n}, which is not defined"


@rule("RT-CONTOUR-POINTS", RT, ERROR, "NumberOfContourPoints x 3 equals the ContourData values.",
      hint="Fix the point count.", source="PS3.3 C.8.8.6, viewer-behaviour A25")
def rt_contour_points(ctx: RtContext):
    for roi, i, c in ctx.contours:
        raw_value = c.raw("ContourData")  # counted as written: RT-CONTOUR-DATA checks numbers
        text = b"" if raw_value is None or isinstance(raw_value, list) else \
            bytes(raw_value[1]).strip(b" \x00")
        values = text.split(b"\\") if text else []
        n = c.get("NumberOfContourPoints")
        if n is None or number(n, -1) * 3 != len(values):
            yield f"ROI {roi} contour {i + 1}", f"NumberOfContourPoints {n} for " \
                f"{len(values)} coordinates"


@rule("RT-CONTOUR-TYPE", RT, ERROR, "ContourGeometricType is a defined term; CLOSED_PLANAR "
      "contours have at least 3 points.", hint="Use POINT / OPEN_PLANAR for 1-2 points.",
      source="PS3.3 C.8.8.6.1 [digest 5]")
def rt_contour_type(ctx: RtContext):
    for roi, i, c in ctx.contours:
        t = str(c.get("ContourGeometricType") or "")
        if t not in GEOMETRIC_TYPES:
            yield f"ROI {roi} contour {i + 1}", f"ContourGeometricType {t!r}"
        elif t == "CLOSED_PLANAR" and c.get("NumberOfContourPoints") is not None and \
                number(c.get("NumberOfContourPoints")) < 3:
            yield f"ROI {roi} contour {i + 1}", f"CLOSED_PLANAR with " \
                f"{c.get('NumberOfContourPoints')} points"


@rule("RT-CONTOUR-PLANAR", RT, ERROR, "CLOSED_PLANAR contour points lie in one plane.",
      hint="Split the contour per slice.", source="PS3.3 C.8.8.6.1")
def rt_contour_planar(ctx: RtContext):
    for roi, i, c in ctx.contours:
        if str(c.get("ContourGeometricType") or "") != "CLOSED_PLANAR":
            continue
        pts = _points(c)
        if pts is None or len(pts) < 4:
            continue
        centred = pts - pts.mean(axis=0)
        s = np.linalg.svd(centred, compute_uv=False)
        if s[-1] / max(np.sqrt(len(pts)), 1) > 0.01:
            yield f"ROI {roi} contour {i + 1}", "points are not coplanar"
            return


def _points(c) -> np.ndarray | None:
    """The contour's points, or None when ContourData is not 3-D numbers (other rules say)."""
    try:
        data = c.get("ContourData")
    except SegbridgeError:
        return None
    if not isinstance(data, list) or len(data) % 3:
        return None
    pts = np.asarray(data, float).reshape(-1, 3)
    return pts if np.isfinite(pts).all() else None


@rule("RT-REFERENCED-SERIES", RT, ERROR, "ReferencedFrameOfReferenceSequence leads to the image "
      "series and its ContourImageSequence (OHIF needs it to find the images).",
      hint="Add RTReferencedStudy/Series with ContourImageSequence.",
      source="PS3.3 C.8.8.5, viewer-behaviour A25", profiles=("ohif",))
def rt_referenced_series(ctx: RtContext):
    frs = ctx.ds.get("ReferencedFrameOfReferenceSequence") or []
    if not frs:
        yield "ReferencedFrameOfReferenceSequence", "missing: no referenced image series"
        return
    for fr in frs:
        for st in fr.get("RTReferencedStudySequence") or []:
            for se in st.get("RTReferencedSeriesSequence") or []:
                if not se.get("ContourImageSequence"):
                    yield "RTReferencedSeriesSequence", "no ContourImageSequence"
                    return
                return
    yield "ReferencedFrameOfReferenceSequence", "no RTReferencedSeriesSequence"


@rule("RT-REFERENCES", RT, ERROR, "Contour image references resolve in the given series, and the "
      "frame of reference matches it.", hint="Convert against the series the RTSTRUCT was "
      "drawn on.", source="PS3.3 C.8.8.5-6 (rt-utils #82)", needs_reference=True)
def rt_references(ctx: RtContext):
    src = ctx.reference.source
    missing = [u for u in ctx.referenced_images if src.index_of(u) is None]
    if missing:
        yield "ContourImageSequence", f"{len(missing)} of {len(ctx.referenced_images)} " \
            f"referenced images are not in series {src.series_instance_uid}"
    ref_for = ctx.reference.grid.frame_of_reference_uid
    for i, r in enumerate(ctx.rois):
        uid = r.get("ReferencedFrameOfReferenceUID")
        if uid and ref_for and str(uid) != ref_for:
            yield f"StructureSetROISequence[{i}]", f"frame of reference {uid} is not the " \
                f"series' {ref_for}"
            return


@rule("RT-COLOR", RT, WARNING, "Every ROI has ROIDisplayColor (else viewers pick colours).",
      hint="Add ROIDisplayColor.", source="PS3.3 C.8.8.6, viewer-behaviour A25",
      profiles=("ohif",))
def rt_color(ctx: RtContext):
    for i, item in enumerate(ctx.ds.get("ROIContourSequence") or []):
        if "ROIDisplayColor" not in item:
            yield f"ROIContourSequence[{i}]", "no ROIDisplayColor"
            return


@rule("RT-OBLIQUE", RT, WARNING, "Contours are axis-aligned planes (Cornerstone's contour to "
      "labelmap conversion throws on oblique contours).", hint="Expected for oblique series.",
      source="viewer-behaviour A26", profiles=("ohif",))
def rt_oblique(ctx: RtContext):
    for roi, i, c in ctx.contours:
        pts = _points(c)
        if pts is None or len(pts) < 3:
            continue
        if not np.any(np.ptp(pts, axis=0) < 1e-6):
            yield f"ROI {roi} contour {i + 1}", "not in an axis-aligned plane"
            return


@rule("RT-CONTOUR-DATA-LENGTH", RT, WARNING, "Each ContourData value fits an Explicit VR length "
      "(65534 bytes).", hint="Split long contours (segbridge does when writing).",
      source="PS3.5 7.1.2 [digest 5]")
def rt_contour_data_length(ctx: RtContext):
    for roi, i, c in ctx.contours:
        raw_value = c.raw("ContourData")
        if raw_value is not None and not isinstance(raw_value, list) and len(raw_value[1]) > \
                65534:
            yield f"ROI {roi} contour {i + 1}", f"ContourData is {len(raw_value[1])} bytes"
            return


@rule("RT-TEXT-VALUES", RT, ERROR, "Every text value fits its VR (ROI names LO: 64 characters, "
      "labels SH: 16), without control characters.", hint="Shorten the value and remove "
      "control characters.", source="PS3.5 6.1.3, 6.2 (Table 6.2-1)")
def rt_text_values(ctx: RtContext):
    from .seg_rules import text_problems

    yield from text_problems(ctx.ds)


@rule("RT-CONTOUR-DATA", RT, ERROR, "ContourData values are decimal numbers, finite.",
      hint="Re-export the structure set; such contours cannot be placed.",
      source="PS3.3 C.8.8.6.1, PS3.5 6.2 (DS)")
def rt_contour_data(ctx: RtContext):
    for roi, i, c in ctx.contours:
        try:
            data = c.get("ContourData")
        except SegbridgeError:
            yield f"ROI {roi} contour {i + 1}", "ContourData holds a value that is not a " \
                "decimal number"
            continue
        values = data if isinstance(data, list) else [] if data is None else [data]
        if values and not np.isfinite(np.asarray(values, float)).all():
            yield f"ROI {roi} contour {i + 1}", "ContourData holds NaN or infinite coordinates"


@rule("RT-READER", RT, ERROR, "segbridge's RTSTRUCT reader accepts the file (with --reference: "
      "the contours can be placed on the series).", hint="Fix what the message names; "
      "`segbridge convert` refuses the file until then.", source="segbridge reader (issue 11)",
      needs_pixels=True)
def rt_reader(ctx: RtContext):
    from ..errors import Report
    from ..rt.reader import parse_rtstruct, read_rtstruct

    try:
        if ctx.reference is None:
            parse_rtstruct(ctx.path, Report())
        else:
            read_rtstruct(ctx.path, ctx.reference, report=Report())
    except SegbridgeError as exc:
        yield "file", str(exc)
