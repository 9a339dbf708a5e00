"""RT Structure Set -> the model, on the grid of the images the contours were drawn on.

One segment per ROI (name, colour, ROI number, interpreted type, generation algorithm). ROIs
overlap freely (BODY holds the organs), so they are placed in layers first-fit. Only
CLOSED_PLANAR contours are rasterised (rule in :mod:`.contours`: centre inside, even-odd, or on
the contour; a degenerate 1-2 point contour keeps the voxel centres it passes through, as rt-utils
writes them for one- and two-voxel slices); POINT and OPEN_PLANAR contours are kept on the
segment as metadata with a warning. A contour belongs to the slice whose plane
it lies in (its distance along the slice normal, within a quarter of the slice spacing), worked
out in the image plane's own coordinates so oblique series work; the ContourImageSequence
reference is only checked against that. Everything odd in the file is a warning, not a crash.
``fill="rt-utils"`` rasterises the way rt-utils does instead (vertices rounded to pixels, outline
pixels in), to reproduce masks a dataset was made with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..colors import default_color
from ..errors import GeometryMismatchError, InvalidInputError, Report
from ..model import Segment, Segmentation, label_dtype, place_first_fit
from ..series import ReferenceImage
from .contours import rasterize
from .rtutils import pixel_matrix, pixel_xy

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
ALGORITHMS = {"AUTOMATIC": "AUTOMATIC", "SEMIAUTOMATIC": "SEMIAUTOMATIC", "MANUAL": "MANUAL"}
#: a contour is on a slice when it is within this fraction of the slice spacing of its plane
PLANE_TOLERANCE = 0.25


#: the defined terms of ContourGeometricType (PS3.3 C.8.8.6.1)
GEOMETRIC_TYPES = ("POINT", "OPEN_PLANAR", "OPEN_NONPLANAR", "CLOSED_PLANAR")

@dataclass
class RtContour:
    kind: str
    points: np.ndarray  # (m, 3) LPS mm
    image_uid: str | None
    declared_points: int | None
    #: why the ContourData cannot be used ("missing", "numbers", "finite"), or None
    problem: str | None = None


@dataclass
class RtRoi:
    number: int
    name: str
    color: tuple[int, int, int] | None
    interpreted_type: str
    algorithm: str
    description: str | None
    observation_label: str | None
    contours: list[RtContour] = field(default_factory=list)


@dataclass
class RtStruct:
    """What an RTSTRUCT file holds, as read (coordinates still in patient space)."""

    path: Path
    label: str
    sop_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    referenced_series: str | None
    referenced_images: list[str]
    rois: list[RtRoi]


def _text(ds, keyword: str) -> str:
    v = ds.get(keyword)
    if isinstance(v, list):
        v = v[0] if v else ""
    return str(v or "").strip()


def _floats(c) -> tuple[np.ndarray, str | None]:
    """ContourData (DS, PS3.3 C.8.8.6.1) as numbers, and what is wrong with it if anything:
    "missing" (no ContourData), "numbers" (a value that is not a decimal string) or "finite"
    (NaN or infinite coordinates). A broken contour is skipped with a warning, never a crash."""
    elem = c.raw("ContourData")
    if elem is None:
        return np.zeros(0), "missing"
    data = bytes(elem[1]).strip(b" \x00")
    if not data:
        return np.zeros(0), "missing"
    try:
        values = np.array([float(v) for v in data.split(b"\\")], dtype=np.float64)
    except ValueError:
        return np.zeros(0), "numbers"
    if not np.isfinite(values).all():
        return np.zeros(0), "finite"
    return values, None


def parse_rtstruct(path: str | Path, report: Report | None = None) -> RtStruct:
    """Read the structure set's ROIs and contours (no rasterising)."""
    from ..dicom.parse import parse_file

    report = report if report is not None else Report()
    pf = parse_file(path)
    p = pf.path
    if pf.sop_class_uid != RTSTRUCT_SOP_CLASS:
        raise InvalidInputError(f"{p}: not an RT Structure Set (SOP Class {pf.sop_class_uid})")
    ds = pf.ds
    series, images, for_uid = None, [], None
    for fr in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for_uid = for_uid or _text(fr, "FrameOfReferenceUID") or None
        for st in fr.get("RTReferencedStudySequence") or []:
            for se in st.get("RTReferencedSeriesSequence") or []:
                series = series or _text(se, "SeriesInstanceUID") or None
                images += [_text(im, "ReferencedSOPInstanceUID")
                           for im in se.get("ContourImageSequence") or []]
    rois: dict[int, RtRoi] = {}
    for item in ds.get("StructureSetROISequence") or []:
        n = item.get("ROINumber")
        if n is None:
            report.warn(f"{p.name}: a StructureSetROISequence item has no ROINumber; skipped")
            continue
        n = int(n if not isinstance(n, list) else n[0])
        if n in rois:
            report.warn(f"{p.name}: ROI number {n} is defined twice in StructureSetROISequence; "
                        f"the later one ({_text(item, 'ROIName') or 'unnamed'}) is kept")
        algorithm = _text(item, "ROIGenerationAlgorithm").upper()
        rois[n] = RtRoi(n, _text(item, "ROIName") or f"ROI {n}", None, "",
                        ALGORITHMS.get(algorithm, "MANUAL"),
                        _text(item, "ROIDescription") or None, None)
        for_uid = for_uid or _text(item, "ReferencedFrameOfReferenceUID") or None
    for obs in ds.get("RTROIObservationsSequence") or []:
        n = obs.get("ReferencedROINumber")
        if n is not None and int(n) in rois:
            rois[int(n)].interpreted_type = _text(obs, "RTROIInterpretedType")
            rois[int(n)].observation_label = _text(obs, "ROIObservationLabel") or None
    for item in ds.get("ROIContourSequence") or []:
        n = item.get("ReferencedROINumber")
        if n is None or int(n) not in rois:
            report.warn(f"{p.name}: ROIContourSequence item references ROI {n}, which is not "
                        "defined; its contours are skipped")
            continue
        roi = rois[int(n)]
        color = item.get("ROIDisplayColor")
        if isinstance(color, list) and len(color) == 3:
            roi.color = tuple(int(max(0, min(255, c))) for c in color)
        for j, c in enumerate(item.get("ContourSequence") or []):
            refs = c.get("ContourImageSequence") or []
            declared = c.get("NumberOfContourPoints")
            points, problem = _floats(c)
            kind = _text(c, "ContourGeometricType").upper()
            if kind not in GEOMETRIC_TYPES:
                # dropping it could turn a hole into fill, guessing could do the reverse
                raise InvalidInputError(
                    f"{p}: ROI {roi.number} contour {j + 1} has ContourGeometricType "
                    f"{kind!r}, not one of {', '.join(GEOMETRIC_TYPES)} (PS3.3 C.8.8.6.1); "
                    "the file is damaged")
            roi.contours.append(RtContour(
                kind, points,
                _text(refs[0], "ReferencedSOPInstanceUID") or None if refs else None,
                int(declared) if declared is not None else None, problem))
    return RtStruct(p, _text(ds, "StructureSetLabel"), _text(ds, "SOPInstanceUID"),
                    _text(ds, "StudyInstanceUID"), for_uid, series, images, list(rois.values()))


def read_rtstruct(path: str | Path, reference: ReferenceImage | None, *,
                  report: Report | None = None, strict: bool = False,
                  fill: str = "centre") -> Segmentation:
    """Rasterise an RTSTRUCT onto the reference series' grid.

    ``fill``: ``"centre"`` (the rule above) or ``"rt-utils"`` (rt-utils' masks, for datasets
    made with it; see :mod:`.rtutils`); checked by :func:`segbridge.io.read`.
    """
    report = report if report is not None else Report(strict=strict)
    rt = parse_rtstruct(path, report)
    name = rt.path.name
    if reference is None:
        which = f" (it references series {rt.referenced_series})" if rt.referenced_series else ""
        raise InvalidInputError(f"{rt.path}: an RTSTRUCT holds contours, not voxels; give the "
                                f"image series it was drawn on with --reference{which}")
    grid = reference.grid
    if rt.frame_of_reference_uid and grid.frame_of_reference_uid and \
            rt.frame_of_reference_uid != grid.frame_of_reference_uid:
        src = reference.source
        ours = rt.referenced_series == src.series_instance_uid or any(
            src.index_of(u) is not None for u in rt.referenced_images)
        if not ours:
            raise GeometryMismatchError(
                f"{rt.path}: the structure set is in Frame of Reference "
                f"{rt.frame_of_reference_uid} and references other images; the given series "
                f"is in {grid.frame_of_reference_uid}")
        report.warn(f"{name}: Frame of Reference UID {rt.frame_of_reference_uid} differs from "
                    "the images' although the structure set references them (a known rt-utils "
                    "defect); contours placed in the images' frame")
    if rt.referenced_series is None:
        report.warn(f"{name}: names no referenced series; contours placed on the given series "
                    "by position")
    elif rt.referenced_series != reference.source.series_instance_uid:
        report.warn(f"{name}: references series {rt.referenced_series}, not the given series "
                    f"{reference.source.series_instance_uid}; contours placed by position")
    layers: list[np.ndarray] = []
    bindings: dict[int, tuple[int, int]] = {}
    segments: list[Segment] = []
    dtype = label_dtype(max((r.number for r in rt.rois), default=1))
    stats = _Tally()
    matrix = None
    src = reference.source
    if fill == "rt-utils" and src.position_strings and src.orientation_strings and \
            src.pixel_spacing_strings:
        matrix = pixel_matrix(src.position_strings, src.orientation_strings,
                              src.pixel_spacing_strings)
    for i, roi in enumerate(rt.rois):
        seg = Segment(roi.number, roi.name, description=roi.description,
                      algorithm_type=roi.algorithm,
                      color=roi.color or default_color(i),
                      extras={"rt_roi_number": roi.number,
                              "rt_interpreted_type": roi.interpreted_type,
                              "rt_observation_label": roi.observation_label})
        box, sub = _rasterize_roi(roi, reference, stats, name, fill, matrix)
        other = [{"type": c.kind, "points": c.points.reshape(-1, 3).tolist()}
                 for c in roi.contours if c.kind in ("POINT", "OPEN_PLANAR", "OPEN_NONPLANAR")
                 and c.problem is None and c.points.size % 3 == 0]
        if other:
            seg.extras["rt_other_contours"] = other
            kinds = sorted({o["type"] for o in other})
            report.warn(f"{name}: ROI {roi.number} ({roi.name}) has {len(other)} "
                        f"{'/'.join(kinds)} contour(s): kept as metadata, not rasterised")
        if box is None:
            if not other:
                report.warn(f"{name}: ROI {roi.number} ({roi.name}) has no closed contour on "
                            "the series; it is empty")
            layer = place_first_fit(layers, np.zeros(grid.shape, bool), roi.number,
                                    grid.shape, dtype)
        else:
            layer = place_first_fit(layers, sub, roi.number, grid.shape, dtype, box=box)
        segments.append(seg)
        bindings[roi.number] = (layer, roi.number)
    stats.report(report, name)
    if not layers:
        layers.append(np.zeros(grid.shape, dtype))
    return Segmentation(grid, segments, layers=layers, bindings=bindings,
                        source=reference.source, series_description=rt.label or None,
                        content_label=rt.label or None, report=report)


class _Tally:
    """Counts of skipped or odd contours, reported once per kind instead of once per contour."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}

    def add(self, kind: str, where: str) -> None:
        self.items.setdefault(kind, []).append(where)

    def report(self, report: Report, name: str) -> None:
        messages = {
            "count": "NumberOfContourPoints disagrees with ContourData (the data was used)",
            "ragged": "ContourData is not a list of x, y, z triplets (skipped)",
            "missing": "a contour has no ContourData (skipped)",
            "numbers": "ContourData holds values that are not numbers (skipped)",
            "finite": "ContourData holds NaN or infinite coordinates (skipped)",
            "few": "a CLOSED_PLANAR contour has fewer than 3 points (only the voxels whose "
                   "centres it passes through are kept)",
            "off": "the contour lies on no slice of the series (skipped)",
            "nonplanar": "the contour's points are not in one slice plane (placed on the "
                         "nearest slice)",
            "reference": "ContourImageSequence names another slice than the contour's plane "
                         "(placed by plane)",
            "foreign": "ContourImageSequence names an image that is not in the reference "
                       "series (placed by its plane; rt-utils drops such contours)",
        }
        for kind, where in self.items.items():
            report.warn(f"{name}: {messages[kind]}: {len(where)} contour(s), "
                        f"{', '.join(where[:3])}{', ...' if len(where) > 3 else ''}")


def _rasterize_roi(roi: RtRoi, reference: ReferenceImage, tally: _Tally, name: str,
                   fill: str, matrix: np.ndarray | None):
    """(index box, boolean sub-mask) of one ROI's closed contours, or (None, None).

    ``matrix``: rt-utils' patient -> pixel matrix; with it, the in-plane coordinates are the
    ones rt-utils computes (rounded in image coordinates, before the box shifts them)."""
    grid = reference.grid
    nz, ny, nx = grid.shape
    polys = []
    for j, c in enumerate(roi.contours):
        if c.kind != "CLOSED_PLANAR":
            continue
        where = f"ROI {roi.number} contour {j + 1}"
        if c.problem is not None:
            tally.add(c.problem, where)
            continue
        if c.points.size % 3:
            tally.add("ragged", where)
            continue
        pts = c.points.reshape(-1, 3)
        if c.declared_points is not None and c.declared_points != len(pts):
            tally.add("count", where)
        if len(pts) < 3:
            tally.add("few", where)
            if len(pts) == 0:
                continue
        idx = grid.lps_to_index(pts)
        if not np.isfinite(idx).all():  # coordinates so far out that the index overflows
            tally.add("off", where)
            continue
        z = idx[:, 2]
        k = int(np.floor(z.mean() + 0.5))
        if not 0 <= k < nz or abs(z.mean() - k) > PLANE_TOLERANCE:
            tally.add("off", where)
            continue
        if z.max() - z.min() > PLANE_TOLERANCE:
            tally.add("nonplanar", where)
        if c.image_uid is not None:
            at = reference.source.index_of(c.image_uid)
            if at is None:
                tally.add("foreign", where)
            elif at != k:
                tally.add("reference", where)
        if matrix is not None:
            polys.append((k, pixel_xy(pts, matrix)))
        else:
            polys.append((k, np.around(idx[:, :2]) if fill == "rt-utils" else idx[:, :2]))
    if not polys:
        return None, None
    allxy = np.concatenate([p for _, p in polys])
    x0 = max(0, int(np.floor(allxy[:, 0].min())))
    x1 = min(nx, int(np.ceil(allxy[:, 0].max())) + 1)
    y0 = max(0, int(np.floor(allxy[:, 1].min())))
    y1 = min(ny, int(np.ceil(allxy[:, 1].max())) + 1)
    ks = [k for k, _ in polys]
    z0, z1 = min(ks), max(ks) + 1
    if x1 <= x0 or y1 <= y0:
        return None, None
    shifted = [(k - z0, p - np.array([x0, y0])) for k, p in polys]
    sub = rasterize(shifted, (z1 - z0, y1 - y0, x1 - x0), rule=fill)
    return (slice(z0, z1), slice(y0, y1), slice(x0, x1)), sub
