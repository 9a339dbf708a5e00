"""Segment Sequence items (PS3.3 C.8.20.4 Segment Description macro) <-> :class:`Segment`."""

from __future__ import annotations

from collections.abc import Callable

from ..codes import ARTIFICIAL_INTELLIGENCE, MANUAL_PROCESSING, Code, normalise
from ..colors import dicom_lab_to_rgb, rgb_to_dicom_lab
from ..errors import Report
from ..model import Segment
from .encoder import DataSet, fit, why


def code_from_item(item) -> Code:
    value = str(item.get("CodeValue", "") or item.get("LongCodeValue", "") or
                item.get("URNCodeValue", "") or "")
    return Code(value, str(item.get("CodingSchemeDesignator", "") or ""),
                str(item.get("CodeMeaning", "") or ""),
                str(item.CodingSchemeVersion) if "CodingSchemeVersion" in item else None)


def code_item(code: Code, charset=None, fitted: Callable[[str, str, str, str], str] | None = None
              ) -> DataSet:
    """Code Sequence macro item (PS3.3 8.8); values over 16 characters go to LongCodeValue."""
    put = fitted or (lambda kw, vr, value, where: fit(value, vr))
    d = DataSet(charset)
    if len(code.value) > 16:
        d.set("LongCodeValue", put("LongCodeValue", "UC", code.value, ""))
    else:
        d.set("CodeValue", put("CodeValue", "SH", code.value, ""))
    d.set("CodingSchemeDesignator", put("CodingSchemeDesignator", "SH", code.scheme, ""))
    if code.version:
        d.set("CodingSchemeVersion", put("CodingSchemeVersion", "SH", code.version, ""))
    d.set("CodeMeaning", put("CodeMeaning", "LO", code.meaning, ""))
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


def item_from_segment(seg: Segment, charset=None, *, with_color: bool = True,
                      report: Report | None = None) -> DataSet:
    """One SegmentSequence item (PS3.3 C.8.20.4); every segment gets codes, algorithm and
    colour. Text is fitted to its VR (no control characters, no backslash where the VR has
    none, cut to length); each change is a warning in ``report`` naming the segment."""

    def put(keyword: str, vr: str, value: str, where: str = "") -> str:
        new = fit(value, vr)
        if new != value and report is not None:
            report.warn(f"segment {seg.number}: {keyword}{where} {_shown(value)} written as "
                        f"{_shown(new)} ({why(vr)})")
        return new

    def code(c: Code, what: str) -> DataSet:
        return code_item(c, charset, lambda kw, vr, v, _: put(kw, vr, v, f" of {what}"))

    d = DataSet(charset)
    d.set("SegmentNumber", seg.number)
    d.set("SegmentLabel", put("SegmentLabel", "LO", seg.label or f"Segment {seg.number}"))
    if seg.description:
        d.set("SegmentDescription", put("SegmentDescription", "ST", seg.description))
    d.set("SegmentAlgorithmType", seg.algorithm_type)
    if seg.algorithm_type != "MANUAL":
        name = put("SegmentAlgorithmName", "LO", seg.algorithm_name or "segbridge")
        d.set("SegmentAlgorithmName", name)
        family = ARTIFICIAL_INTELLIGENCE if seg.algorithm_type == "AUTOMATIC" \
            else MANUAL_PROCESSING
        algo = DataSet(charset).update(
            AlgorithmFamilyCodeSequence=[code_item(family, charset)], AlgorithmName=name,
            AlgorithmVersion=put("AlgorithmVersion", "LO",
                                 str(seg.extras.get("algorithm_version", "unknown"))))
        d.set("SegmentationAlgorithmIdentificationSequence", [algo])
    elif seg.algorithm_name:
        d.set("SegmentAlgorithmName", put("SegmentAlgorithmName", "LO", seg.algorithm_name))
    if seg.anatomic_region is not None:
        region = code(seg.anatomic_region, "the anatomic region")
        if seg.anatomic_region_modifier is not None:
            region.set("AnatomicRegionModifierSequence",
                       [code(seg.anatomic_region_modifier, "the anatomic region modifier")])
        d.set("AnatomicRegionSequence", [region])
    d.set("SegmentedPropertyCategoryCodeSequence", [code(seg.category, "the category")])
    type_item = code(seg.type, "the type")
    if seg.type_modifier is not None:
        type_item.set("SegmentedPropertyTypeModifierCodeSequence",
                      [code(seg.type_modifier, "the type modifier")])
    d.set("SegmentedPropertyTypeCodeSequence", [type_item])
    if seg.tracking_id and seg.tracking_uid:
        d.set("TrackingID", put("TrackingID", "UT", seg.tracking_id))
        d.set("TrackingUID", seg.tracking_uid)
    if with_color and seg.color is not None:
        d.set("RecommendedDisplayCIELabValue", list(rgb_to_dicom_lab(seg.color)))
    if d.inexact and report is not None:
        report.warn(f"segment {seg.number}: characters the character set "
                    f"{'/'.join(charset) if isinstance(charset, list) else charset or 'ISO_IR 6'}"
                    f" cannot hold were written as '?' ({', '.join(dict.fromkeys(d.inexact))})")
    return d


def _shown(value: str) -> str:
    """A value for a one-line message: repr (control characters escaped), long ones cut."""
    return repr(value if len(value) <= 80 else value[:77] + "...")




def palette_colors(f, numbers=None) -> dict[int, tuple[int, int, int]]:
    """RGB (8-bit) of a PALETTE COLOR label map's pixel values from its Palette Color Lookup
    Table (PS3.3 C.7.9, C.7.6.3.1.5-6; Sup 243: a LABELMAP may carry its colours there
    instead of RecommendedDisplayCIELabValue), read from the parsed file ``f`` (a SegFile:
    raw elements, byte order). Descriptor: entries (0 = 65536), first mapped value, bits per
    entry; 8-bit entries one byte each (padded to an even length) or one per 16-bit word,
    16-bit entries scaled to 8 bits; values outside the table take its first / last colour.
    ``numbers``: the values wanted (default every entry). Empty when there is no usable
    (non-segmented) table: a broken one is validate's business (SEG-PALETTE)."""
    import struct

    import numpy as np

    e = f.ds.elements
    order = "<" if f.little else ">"
    tables = []
    for desc_tag, data_tag in ((0x00281101, 0x00281201), (0x00281102, 0x00281202),
                               (0x00281103, 0x00281203)):
        if desc_tag not in e or data_tag not in e:
            return {}
        raw_desc = bytes(e[desc_tag][1])
        if len(raw_desc) != 6:
            return {}
        n, first, bits = struct.unpack(order + "3H", raw_desc)
        n = n or 65536
        data = bytes(e[data_tag][1])
        if bits == 8 and len(data) in (n, n + 1):
            t = np.frombuffer(data, np.uint8, n)
        elif len(data) >= 2 * n:
            t = np.frombuffer(data, order + "u2", n)
            t = t >> 8 if bits == 16 or t.max(initial=0) > 255 else t
        else:
            return {}
        tables.append((first, t.astype(np.uint8)))
    first, size = tables[0][0], len(tables[0][1])
    wanted = range(first, first + size) if numbers is None else numbers
    return {int(v): tuple(int(t[min(max(int(v) - f0, 0), len(t) - 1)]) for f0, t in tables)
            for v in wanted}
