"""A folder of DICOM studies: its image series and the segmentation objects referencing them.

Image headers are read by the series reader's raw walker (:func:`segbridge.series.read_header`);
a SEG or RTSTRUCT is linked to the image series holding most of the SOP instances it references
(any ``ReferencedSOPInstanceUID`` in it), else to the series its ``ReferencedSeriesSequence`` /
``RTReferencedSeriesSequence`` names.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..series import NON_IMAGE_SOP_CLASSES, RawHeader, expand_paths, read_header

SEG_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


@dataclass
class SegObject:
    """A SEG or RTSTRUCT file and the image series it belongs to (None: not found here)."""

    path: Path
    kind: str  # "seg" or "rtstruct"
    series: str | None
    problem: str = ""


@dataclass
class StudyIndex:
    """Image series by SeriesInstanceUID (their files, study UID, modality) and the
    segmentation objects found under one folder."""

    root: Path
    images: dict[str, list[Path]] = field(default_factory=dict)
    study: dict[str, str] = field(default_factory=dict)
    modality: dict[str, str] = field(default_factory=dict)
    objects: list[SegObject] = field(default_factory=list)


def _text(h, keyword: str) -> str:
    value = h.get(keyword) if h is not None else None
    return str(value).strip() if value not in (None, "") else ""


def _references(path: Path) -> tuple[set[str], set[str]]:
    """Referenced SOP instance UIDs and series UIDs anywhere in a SEG / RTSTRUCT header."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    sops, series = set(), set()
    for elem in ds.iterall():
        if elem.keyword == "ReferencedSOPInstanceUID" and elem.value:
            sops.add(str(elem.value))
        elif elem.keyword == "SeriesInstanceUID" and elem.value and elem is not \
                ds.get("SeriesInstanceUID"):
            series.add(str(elem.value))
    series.discard(str(ds.get("SeriesInstanceUID", "")))
    return sops, series


def scan(root: str | os.PathLike) -> StudyIndex:
    """Every image series and SEG / RTSTRUCT under ``root`` (recursively)."""
    index = StudyIndex(Path(root))
    sop_series: dict[str, str] = {}
    objects: list[Path] = []
    kinds: dict[Path, str] = {}
    for f in expand_paths(root):
        h = read_header(f)
        if h is None:
            continue
        meta = h.meta if isinstance(h, RawHeader) else getattr(h, "file_meta", None)
        sop_class = _text(h, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
        if sop_class in SEG_CLASSES or sop_class == RTSTRUCT_CLASS:
            objects.append(f)
            kinds[f] = "seg" if sop_class in SEG_CLASSES else "rtstruct"
            continue
        if sop_class in NON_IMAGE_SOP_CLASSES or "Rows" not in h:
            continue
        uid = _text(h, "SeriesInstanceUID")
        if not uid:
            continue  # blank series UID: nothing can reference it
        index.images.setdefault(uid, []).append(f)
        index.study.setdefault(uid, _text(h, "StudyInstanceUID"))
        index.modality.setdefault(uid, _text(h, "Modality"))
        sop = _text(h, "SOPInstanceUID")
        if sop:
            sop_series[sop] = uid
    for f in objects:
        try:
            sops, series = _references(f)
        except Exception as exc:  # pydicom's many errors: this object is reported, not fatal
            index.objects.append(SegObject(f, kinds[f], None, f"cannot read it ({exc})"))
            continue
        votes = Counter(sop_series[s] for s in sops if s in sop_series)
        uid = votes.most_common(1)[0][0] if votes else next(
            (s for s in sorted(series) if s in index.images), None)
        index.objects.append(SegObject(f, kinds[f], uid, "" if uid else
                                       "references no image series found under "
                                       f"{index.root}"))
    return index
