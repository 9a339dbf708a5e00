"""Segment Sequence items (PS3.3 C.8.20.4 Segment Description macro) <-> :class:`Segment`."""

from __future__ import annotations

from ..codes import Code, normalise
from ..colors import dicom_lab_to_rgb, rgb_to_dicom_lab
from ..errors import Report
from ..model import Segment


def code_from_item(item) -> Code:
    value = str(item.get("CodeValue", "") or item.get("LongCodeValue", "") or
                item.get("URNCodeValue", "") or "")
    return Code(value, str(item.get("CodingSchemeDesignator", "") or ""),
                str(item.get("CodeMeaning", "") or ""),
                str(item.CodingSchemeVersion) if "CodingSchemeVersion" in item else None)


def code_item(code: Code):
    """Code Sequence macro item (pydicom Dataset); values over 16 characters go to LongCodeValue."""
    from pydicom.dataset import Dataset

    d = Dataset()
    if len(code.value) > 16:
        d.LongCodeValue = code.value
    else:
        d.CodeValue = code.value
    d.CodingSchemeDesignator = code.scheme
    if code.version:
        d.CodingSchemeVersion = code.version
    d.CodeMeaning = code.meaning[:64]
    return d


def _first_code(item, keyword: str, report: Report | None, where: str) -> Code | None:
    seq = item.get(keyword)
    if not seq:
        return None
    code = code_from_item(seq[0])
    norm = normalise(code)
    if norm is not code and report is not None:
        report.note(f"{where}: retired SRT code {code.value} ({code.meaning}) read as "
                    f"SCT {norm.value}")
    return norm


def segment_from_item(item, report: Report | None = None) -> Segment:
    """Read one SegmentSequence item (a RawDataset or a pydicom Dataset)."""
    number = int(item.get("SegmentNumber", 0))
    where = f"segment {number}"
    category = _first_code(item, "SegmentedPropertyCategoryCodeSequence", report, where)
    seg_type_seq = item.get("SegmentedPropertyTypeCodeSequence")
    seg_type = _first_code(item, "SegmentedPropertyTypeCodeSequence", report, where)
    modifier = None
    if seg_type_seq and "SegmentedPropertyTypeModifierCodeSequence" in seg_type_seq[0]:
        modifier = _first_code(seg_type_seq[0], "SegmentedPropertyTypeModifierCodeSequence",
                               report, where)
    region = _first_code(item, "AnatomicRegionSequence", report, where)
    region_mod = None
    if item.get("AnatomicRegionSequence") and \
            "AnatomicRegionModifierSequence" in item.AnatomicRegionSequence[0]:
        region_mod = _first_code(item.AnatomicRegionSequence[0],
                                 "AnatomicRegionModifierSequence", report, where)
    color = None
    if "RecommendedDisplayCIELabValue" in item and item.RecommendedDisplayCIELabValue:
        color = dicom_lab_to_rgb(item.RecommendedDisplayCIELabValue)
    algo_name = item.get("SegmentAlgorithmName")
    if not algo_name and item.get("SegmentationAlgorithmIdentificationSequence"):
        algo_name = item.SegmentationAlgorithmIdentificationSequence[0].get("AlgorithmName")
    algo_type = str(item.get("SegmentAlgorithmType", "MANUAL") or "MANUAL").upper()
    if algo_type not in ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"):
        if report is not None:
            report.warn(f"{where}: unknown SegmentAlgorithmType {algo_type!r}, read as MANUAL")
        algo_type = "MANUAL"
    kw = {}
    if category is not None:
        kw["category"] = category
    if seg_type is not None:
        kw["type"] = seg_type
    return Segment(
        number=number,
        label=str(item.get("SegmentLabel", "") or ""),
        description=str(item.SegmentDescription) if item.get("SegmentDescription") else None,
        type_modifier=modifier, anatomic_region=region, anatomic_region_modifier=region_mod,
        algorithm_type=algo_type, algorithm_name=str(algo_name) if algo_name else None,
        color=color,
        tracking_id=str(item.TrackingID) if item.get("TrackingID") else None,
        tracking_uid=str(item.TrackingUID) if item.get("TrackingUID") else None,
        **kw,
    )


def item_from_segment(seg: Segment, *, with_color: bool = True):
    """Write one SegmentSequence item; every segment gets codes, algorithm and colour."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    d = Dataset()
    d.SegmentNumber = seg.number
    d.SegmentLabel = (seg.label or f"Segment {seg.number}")[:64]
    if seg.description:
        d.SegmentDescription = seg.description[:1024]
    d.SegmentAlgorithmType = seg.algorithm_type
    if seg.algorithm_type != "MANUAL":
        name = seg.algorithm_name or "segbridge"
        d.SegmentAlgorithmName = name[:64]
        algo = Dataset()
        family = Dataset()
        family.CodeValue = "123109" if seg.algorithm_type == "SEMIAUTOMATIC" else "123110"
        family.CodingSchemeDesignator = "DCM"
        family.CodeMeaning = ("Manual Processing" if seg.algorithm_type == "SEMIAUTOMATIC"
                              else "Artificial Intelligence")
        algo.AlgorithmFamilyCodeSequence = Sequence([family])
        algo.AlgorithmName = name[:64]
        algo.AlgorithmVersion = str(seg.extras.get("algorithm_version", "unknown"))[:64]
        d.SegmentationAlgorithmIdentificationSequence = Sequence([algo])
    elif seg.algorithm_name:
        d.SegmentAlgorithmName = seg.algorithm_name[:64]
    if seg.anatomic_region is not None:
        region = code_item(seg.anatomic_region)
        if seg.anatomic_region_modifier is not None:
            region.AnatomicRegionModifierSequence = Sequence(
                [code_item(seg.anatomic_region_modifier)])
        d.AnatomicRegionSequence = Sequence([region])
    d.SegmentedPropertyCategoryCodeSequence = Sequence([code_item(seg.category)])
    type_item = code_item(seg.type)
    if seg.type_modifier is not None:
        type_item.SegmentedPropertyTypeModifierCodeSequence = Sequence(
            [code_item(seg.type_modifier)])
    d.SegmentedPropertyTypeCodeSequence = Sequence([type_item])
    if seg.tracking_id and seg.tracking_uid:
        d.TrackingID = seg.tracking_id
        d.TrackingUID = seg.tracking_uid
    if with_color and seg.color is not None:
        d.RecommendedDisplayCIELabValue = list(rgb_to_dicom_lab(seg.color))
    return d
