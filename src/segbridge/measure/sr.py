"""DICOM SR TID 1500 measurement reports (Comprehensive 3D SR), written with highdicom.

Per segment, a TID 1411 volumetric group references the segment in its SEG (and the SEG's
source series) and holds the volume and the intensity statistics as derivations of the
modality's concept (CT attenuation, PET SUV, MR signal; the dcmqi / QIICR convention). The long
and short axis are planar measurements with end points, which TID 1411 cannot carry (highdicom
refuses coordinates there), so they go into a TID 1501 group with the same tracking identifier,
each axis INFERRED FROM a polyline on the measured slice, the way dcmjs / OHIF store
bidirectional measurements. highdicom builds the content tree and the evidence sequences; we only
choose codes and values.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..codes import Code as SbCode
from ..errors import InvalidInputError, Report
from ..outputs import tmp_name
from .bidirectional import Bidirectional
from .stats import SegmentStats
from .units import HU, MM, MM3, SUV_BW, Unit

PROCEDURE = ("363679005", "SCT", "Imaging procedure")
VOLUME = ("118565006", "SCT", "Volume")
LONG_AXIS = ("103339001", "SCT", "Long Axis")
SHORT_AXIS = ("103340004", "SCT", "Short Axis")
TLG = ("126033", "DCM", "Total Lesion Glycolysis")
#: Concept measured by the intensity statistics, per unit (dicom-digest section 4).
INTENSITY = {
    HU.label: ("112031", "DCM", "Attenuation Coefficient"),
    SUV_BW.label: ("126400", "DCM", "Standardized Uptake Value"),
}
MR_SIGNAL = ("110852", "DCM", "MR signal intensity")
DERIVATIONS = {  # CID 7464
    "mean": ("373098007", "SCT", "Mean"),
    "min": ("255605001", "SCT", "Minimum"),
    "max": ("56851009", "SCT", "Maximum"),
    "median": ("373099004", "SCT", "Median"),
    "std": ("386136009", "SCT", "Standard Deviation"),
    "skewness": ("126051", "DCM", "Skewness"),
    "kurtosis": ("126052", "DCM", "Kurtosis"),
    "peak": ("126031", "DCM", "Peak Value Within ROI"),
}
UNITLESS = Unit("1", "1", "no units")
GRAM = Unit("g", "g", "gram")


def _code(c):
    from highdicom.sr import CodedConcept

    if isinstance(c, SbCode):
        return CodedConcept(c.value, c.scheme, c.meaning)
    return CodedConcept(*c)


def _unit(u: Unit):
    from highdicom.sr import CodedConcept

    return CodedConcept(u.ucum, "UCUM", u.meaning)


def _intensity_concept(unit: Unit | None, modality: str | None):
    if unit is None:
        return None
    if unit.label in INTENSITY:
        return INTENSITY[unit.label]
    if (modality or "").upper() == "MR":
        return MR_SIGNAL
    return None


def _num(name, value: float, unit: Unit, derivation=None, coords=None):
    from highdicom.sr import Measurement

    return Measurement(name=_code(name), value=float(value), unit=_unit(unit),
                       derivation=_code(derivation) if derivation else None,
                       referenced_coordinates=coords)


def _axis(name, length: float, ax: Bidirectional, which: str, for_uid: str | None,
          sop_class_uid: str | None):
    """A long/short axis NUM inferred from its two end points.

    On a known source image the end points are a 2-D SCOORD in that image's pixels (centre of
    the top-left pixel = 0.5, 0.5), which OHIF's SR reader also understands; otherwise a
    SCOORD3D polyline in the frame of reference.
    """
    from highdicom.sr import (
        CoordinatesForMeasurement,
        CoordinatesForMeasurement3D,
        SourceImageForRegion,
    )

    index = ax.long_index if which == "long" else ax.short_index
    lps = ax.long_lps if which == "long" else ax.short_lps
    coords = None
    if ax.sop_instance_uid and sop_class_uid:
        frames = [ax.frame_number] if ax.frame_number else None
        src = SourceImageForRegion(sop_class_uid, ax.sop_instance_uid, frames)
        coords = [CoordinatesForMeasurement("POLYLINE", np.asarray(index, float) + 0.5, src)]
    elif for_uid:
        coords = [CoordinatesForMeasurement3D("POLYLINE", np.asarray(lps, float), for_uid)]
    return _num(name, length, MM, coords=coords)


def measurement_report(seg_ds, segments: dict[int, object], *,
                       stats: dict[int, SegmentStats] | None = None,
                       axes: dict[int, Bidirectional] | None = None,
                       modality: str | None = None, evidence: list | None = None,
                       image_sop_class: str | None = None,
                       series_number: int = 200, report: Report | None = None):
    """A highdicom Comprehensive3DSR for the segments of the SEG dataset ``seg_ds``.

    ``segments`` maps the segment number in that SEG to its :class:`~segbridge.model.Segment`.
    """
    import highdicom.sr as hsr
    from highdicom.sr import (
        CodedConcept,
        DeviceObserverIdentifyingAttributes,
        ObservationContext,
        ObserverContext,
    )
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    report = report if report is not None else Report()
    stats, axes = stats or {}, axes or {}
    for_uid = str(seg_ds.get("FrameOfReferenceUID", "") or "") or None
    source_series = None
    if "ReferencedSeriesSequence" in seg_ds and len(seg_ds.ReferencedSeriesSequence):
        source_series = str(seg_ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    groups = []
    for number, segment in segments.items():
        st, ax = stats.get(number), axes.get(number)
        items = []
        if st is not None:
            items.append(_num(VOLUME, st.volume_mm3, MM3))
            concept = _intensity_concept(st.unit, modality)
            if concept is None and st.unit is not None and not st.empty:
                report.note(f"segment {number}: intensity statistics in {st.unit.label} have no "
                            "standard concept; not put in the SR")
            if concept is not None and not st.empty:
                for key in ("mean", "min", "max", "median", "std"):
                    items.append(_num(concept, getattr(st, key), st.unit, DERIVATIONS[key]))
                for key in ("skewness", "kurtosis"):
                    items.append(_num(concept, getattr(st, key), UNITLESS, DERIVATIONS[key]))
                if st.peak is not None:
                    items.append(_num(concept, st.peak, st.unit, DERIVATIONS["peak"]))
                if st.lesion_glycolysis is not None:
                    items.append(_num(TLG, st.lesion_glycolysis, GRAM))
        tracking = hsr.TrackingIdentifier(uid=segment.tracking_uid or generate_uid(),
                                          identifier=segment.tracking_id or segment.label)
        sites = [hsr.FindingSite(_code(segment.anatomic_region))] \
            if segment.anatomic_region is not None else None
        if items:
            ref = hsr.ReferencedSegment(
                sop_class_uid=str(seg_ds.SOPClassUID),
                sop_instance_uid=str(seg_ds.SOPInstanceUID), segment_number=int(number),
                source_series=hsr.SourceSeriesForSegmentation(source_series) if source_series
                else None)
            groups.append(hsr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, referenced_segment=ref,
                finding_type=_code(segment.type), finding_category=_code(segment.category),
                finding_sites=sites, measurements=items))
        if ax is not None and ax.found:
            axes_items = [_axis(LONG_AXIS, ax.long_mm, ax, "long", for_uid, image_sop_class)]
            if ax.short_mm is not None:
                axes_items.append(_axis(SHORT_AXIS, ax.short_mm, ax, "short", for_uid,
                                        image_sop_class))
            groups.append(hsr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, finding_type=_code(segment.type),
                finding_category=_code(segment.category), finding_sites=sites,
                measurements=axes_items))
    if not groups:
        raise InvalidInputError("nothing to report: every selected segment is empty")
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="segbridge", manufacturer_name="segbridge"))
    content = hsr.MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=CodedConcept(*PROCEDURE), imaging_measurements=groups)
    return hsr.Comprehensive3DSR(
        evidence=[seg_ds, *(evidence or [])], content=content,
        series_instance_uid=generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="segbridge",
        is_complete=True, series_description="segbridge measurements")


def write_report(sr, path: str | os.PathLike) -> Path:
    """Save an SR through a temporary name, so a failure leaves nothing behind."""
    target = Path(path)
    if not target.parent.exists():
        raise InvalidInputError(f"{target}: output folder {target.parent} does not exist")
    tmp = tmp_name(target)
    try:
        sr.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
