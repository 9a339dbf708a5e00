"""dcmqi-style segment metadata JSON (dcmqi ``doc/schemas/seg-schema.json``).

``segmentAttributes`` is a list of lists: the outer index is the input file (or, for segbridge's
4-D outputs, the layer / volume along the fourth axis); each inner list holds one object per
label value (``labelID``) in that volume. A sidecar written beside every NIfTI/NRRD output keeps
names, codes and colours through a round trip.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..codes import Code
from ..colors import default_color
from ..errors import InvalidInputError
from ..model import ALGORITHM_TYPES, Segment

SCHEMA_URL = ("https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/"
              "seg-schema.json#")


def read_meta(path: str | Path) -> dict:
    """Load and sanity-check a dcmqi segmentation metadata file.

    Raises
    ------
    InvalidInputError
        One line naming the file and, for a bad entry, ``segmentAttributes[i][j]`` and the key:
        unreadable, not UTF-8, not JSON, or a labelID / colour / code that is not what the
        schema says.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidInputError(f"{p}: cannot read ({exc.strerror or 'I/O error'})") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{p}: not UTF-8 text (byte {exc.start}); JSON must be UTF-8") \
            from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{p}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise InvalidInputError(f"{p}: JSON nested too deeply") from None
    return check_meta(meta, p)


def check_meta(meta, p: str | Path = "metadata") -> dict:
    """``meta`` itself when it is a usable metadata document, else InvalidInputError naming
    ``p`` and the entry (also for documents given as a dict through the API)."""
    attrs = meta.get("segmentAttributes") if isinstance(meta, dict) else None
    if not isinstance(attrs, list) or not all(isinstance(a, list) for a in attrs):
        raise InvalidInputError(f"{p}: segmentAttributes must be a list of lists (one list per "
                                "input file), as in dcmqi's seg-schema.json")
    for i, group in enumerate(attrs):
        for j, entry in enumerate(group):
            if not isinstance(entry, dict) or "labelID" not in entry:
                raise InvalidInputError(f"{p}: segmentAttributes[{i}] has an entry without "
                                        "labelID")
            _check_entry(p, f"segmentAttributes[{i}][{j}]", entry)
    return meta


_CODE_KEYS = ("SegmentedPropertyCategoryCodeSequence", "SegmentedPropertyTypeCodeSequence",
              "SegmentedPropertyTypeModifierCodeSequence", "AnatomicRegionSequence",
              "AnatomicRegionModifierSequence")


def _check_entry(p: str | Path, where: str, entry: dict) -> None:
    """Types and ranges of one segmentAttributes object (dcmqi seg-schema.json)."""
    label = entry["labelID"]
    if isinstance(label, bool) or not isinstance(label, int) or not 0 < label <= 65535:
        raise InvalidInputError(f"{p}: {where}.labelID must be a whole number 1..65535, not "
                                f"{json.dumps(label)[:40]}")
    for key, top in (("recommendedDisplayRGBValue", 255), ("RecommendedDisplayCIELabValue",
                                                           65535)):
        v = entry.get(key)
        if v is not None and not (isinstance(v, list) and len(v) == 3 and all(
                isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= top
                for c in v)):
            raise InvalidInputError(f"{p}: {where}.{key} must be three numbers 0..{top}")
    for key in _CODE_KEYS:
        v = entry.get(key)
        if isinstance(v, list):
            v = v[0] if v else None
        if v is None:
            continue
        if not isinstance(v, dict) or not all(
                isinstance(v.get(k), str | int) and str(v.get(k)).strip()
                for k in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")):
            raise InvalidInputError(f"{p}: {where}.{key} needs CodeValue, "
                                    "CodingSchemeDesignator and CodeMeaning")
    for key in ("SegmentLabel", "SegmentDescription", "SegmentAlgorithmName",
                "SegmentAlgorithmType", "TrackingIdentifier", "TrackingUniqueIdentifier"):
        if key in entry and entry[key] is not None and not isinstance(entry[key], str):
            raise InvalidInputError(f"{p}: {where}.{key} must be text")


def segment_from_json(entry: dict, number: int, index: int = 0) -> Segment:
    """One segmentAttributes object -> Segment (number chosen by the caller)."""
    def code(key: str) -> Code | None:
        v = entry.get(key)
        if isinstance(v, list):  # tolerate a one-item list
            v = v[0] if v else None
        return Code.from_json(v) if isinstance(v, dict) else None

    color = entry.get("recommendedDisplayRGBValue")
    if color is None and entry.get("RecommendedDisplayCIELabValue"):
        from ..colors import dicom_lab_to_rgb

        color = dicom_lab_to_rgb(entry["RecommendedDisplayCIELabValue"])
    algo = str(entry.get("SegmentAlgorithmType", "SEMIAUTOMATIC")).upper()
    if algo not in ALGORITHM_TYPES:
        raise InvalidInputError(f"labelID {entry.get('labelID')}: SegmentAlgorithmType must be "
                                f"one of {', '.join(ALGORITHM_TYPES)}")
    kw = {}
    for key, attr in (("SegmentedPropertyCategoryCodeSequence", "category"),
                      ("SegmentedPropertyTypeCodeSequence", "type")):
        c = code(key)
        if c is not None:
            kw[attr] = c
    label = entry.get("SegmentLabel") or (kw["type"].meaning if "type" in kw else "")
    return Segment(
        number=number, label=str(label or f"Segment {number}"),
        description=entry.get("SegmentDescription"),
        type_modifier=code("SegmentedPropertyTypeModifierCodeSequence"),
        anatomic_region=code("AnatomicRegionSequence"),
        anatomic_region_modifier=code("AnatomicRegionModifierSequence"),
        algorithm_type=algo, algorithm_name=entry.get("SegmentAlgorithmName"),
        color=tuple(color) if color is not None else default_color(index),
        tracking_id=entry.get("TrackingIdentifier"),
        tracking_uid=entry.get("TrackingUniqueIdentifier"),
        **kw,
    )


def segment_to_json(seg: Segment, label_id: int) -> dict:
    d: dict = {"labelID": int(label_id), "SegmentLabel": seg.label}
    if seg.description:
        d["SegmentDescription"] = seg.description
    d["SegmentedPropertyCategoryCodeSequence"] = seg.category.to_json()
    d["SegmentedPropertyTypeCodeSequence"] = seg.type.to_json()
    if seg.type_modifier is not None:
        d["SegmentedPropertyTypeModifierCodeSequence"] = seg.type_modifier.to_json()
    if seg.anatomic_region is not None:
        d["AnatomicRegionSequence"] = seg.anatomic_region.to_json()
    if seg.anatomic_region_modifier is not None:
        d["AnatomicRegionModifierSequence"] = seg.anatomic_region_modifier.to_json()
    d["SegmentAlgorithmType"] = seg.algorithm_type
    if seg.algorithm_name:
        d["SegmentAlgorithmName"] = seg.algorithm_name
    if seg.color is not None:
        d["recommendedDisplayRGBValue"] = [int(c) for c in seg.color]
    if seg.tracking_id and seg.tracking_uid:
        d["TrackingIdentifier"] = seg.tracking_id
        d["TrackingUniqueIdentifier"] = seg.tracking_uid
    return d


def series_fields(meta: dict) -> dict:
    """Series-level fields of a metadata file, as Segmentation keyword arguments."""
    out = {}
    if meta.get("SeriesDescription"):
        out["series_description"] = str(meta["SeriesDescription"])
    if str(meta.get("SeriesNumber", "")).strip().isdigit():
        out["series_number"] = int(str(meta["SeriesNumber"]).strip())
    for key, attr in (("ContentLabel", "content_label"),
                      ("ContentDescription", "content_description"),
                      ("ContentCreatorName", "content_creator")):
        if meta.get(key):
            out[attr] = str(meta[key])
    return out


def build_meta(groups: list[list[tuple[Segment, int]]], *, series_description: str | None,
               series_number: int | None, content_label: str | None = None,
               content_description: str | None = None,
               content_creator: str | None = None) -> dict:
    """A metadata document; ``groups[i]`` lists (segment, labelID) of volume i."""
    meta: dict = {"@schema": SCHEMA_URL}
    meta["ContentCreatorName"] = content_creator or "segbridge"
    if content_label:
        meta["ContentLabel"] = content_label
    if content_description:
        meta["ContentDescription"] = content_description
    meta["SeriesDescription"] = series_description or "Segmentation"
    meta["SeriesNumber"] = str(series_number or 300)
    meta["InstanceNumber"] = "1"
    meta["segmentAttributes"] = [[segment_to_json(s, v) for s, v in g] for g in groups]
    return meta


def write_meta(meta: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(meta, indent=2) + "\n")


def sidecar_path(path: str | Path) -> Path:
    """``x.nii.gz`` / ``x.nrrd`` / ``x.seg.nrrd`` -> ``x.json``."""
    p = Path(path)
    name = p.name
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd"):
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".json")
    return p.with_suffix(".json")
