"""What the rules look at: one parsed file, its reference series, decoded pixels on demand.

Parsing is lenient: a truncated value, unreadable functional groups or undecodable frames become
findings instead of stopping validation.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from ..dicom import rawdicom as raw
from ..dicom.parse import ParsedFile
from ..dicom.rawdicom import RawDataset
from ..errors import SegbridgeError
from ..series import ReferenceImage

# functional-group sequences of the Segmentation IOD (tag -> name)
FG_MACROS = {
    0x00289110: "PixelMeasuresSequence", 0x00209113: "PlanePositionSequence",
    0x00209116: "PlaneOrientationSequence", 0x00089124: "DerivationImageSequence",
    0x00209111: "FrameContentSequence", 0x0062000A: "SegmentIdentificationSequence",
    0x0048021A: "PlanePositionSlideSequence",
}


def number(value, default: int = 0) -> int:
    """An integer attribute as the rules use it: the first of several values, ``default`` when
    empty or not an integer (the attribute's own rule reports what is wrong with it)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) else default


class SegContext:
    """A DICOM SEG under validation."""

    kind = "SEG"
    #: the validation profile the rules run for (hints name fixes that work under it)
    profile = "standard"
    #: the VL WSI image a slide SEG was checked against (slide.model.SlideGrid), if any
    slide_reference = None

    def __init__(self, parsed: ParsedFile, reference: ReferenceImage | None) -> None:
        self.parsed = parsed
        self.path: Path = parsed.path
        self.ds: RawDataset = parsed.ds
        self.top = parsed.top
        self.walker = parsed.walker
        self.reference = reference
        self.per_frame: list[dict] = self.top.get(raw.PER_FRAME_FG, [])
        shared = self.ds.get("SharedFunctionalGroupsSequence") or []
        self.shared_raw: dict = self.top.get(0x52009229, [{}])[0] if shared else {}
        self.read_error: str | None = None
        self.seg = None
        #: a SEG on a slide's total pixel matrix (slide_rules.py checks its tiles)
        self.tiled = "TotalPixelMatrixRows" in self.ds or \
            str(self.ds.get("DimensionOrganizationType") or "") == "TILED_FULL"
        try:
            from ..dicom.segfile import SegFile

            if self.tiled:
                from ..slide.seg_read import TiledSegFile as SegFile
            self.seg = SegFile(self.path, parsed)
        except SegbridgeError as exc:
            self.read_error = str(exc)
        self._frames: dict[int, np.ndarray] = {}
        self.decode_error: str | None = None

    # -- convenience ------------------------------------------------------------------------
    @property
    def type(self) -> str:
        return str(self.ds.get("SegmentationType") or "").upper()

    @property
    def rows(self) -> int:
        return number(self.ds.get("Rows"))

    @property
    def columns(self) -> int:
        return number(self.ds.get("Columns"))

    @property
    def bits(self) -> int:
        return number(self.ds.get("BitsAllocated"))

    @property
    def number_of_frames(self) -> int:
        return number(self.ds.get("NumberOfFrames"), 1) or 1

    @property
    def transfer_syntax(self) -> str:
        return self.parsed.transfer_syntax

    @cached_property
    def segments(self) -> list[RawDataset]:
        return list(self.ds.get("SegmentSequence") or [])

    @cached_property
    def segment_numbers(self) -> list[int]:
        return [number(s.get("SegmentNumber")) for s in self.segments
                if s.get("SegmentNumber") is not None]

    @property
    def frames(self):
        return self.seg.frames if self.seg is not None else []

    @cached_property
    def _frame_segments(self) -> list[int | None]:
        shared = raw.first(self.shared_raw, 0x0062000A, 0x0062000B)
        out = []
        for fg in self.per_frame:
            v = raw.first(fg, 0x0062000A, 0x0062000B) or shared
            out.append(self.walker.ints(v)[0] if v is not None else None)
        return out

    def frame_segment(self, i: int) -> int | None:
        segs = self._frame_segments
        return segs[i] if i < len(segs) else None

    @cached_property
    def _frame_sources(self) -> list[tuple[str | None, int | None]]:
        out = []
        for fg in self.per_frame:
            src = raw.first(fg, 0x00089124, 0x00082112)
            if not isinstance(src, list) or not src:
                out.append((None, None))
                continue
            uid = src[0].get(0x00081155)
            frame = src[0].get(0x00081160)
            out.append((self.walker.text(uid) if uid is not None else None,
                        self.walker.ints(frame)[0] if frame is not None else None))
        return out

    def frame_source_uid(self, i: int) -> tuple[str | None, int | None]:
        srcs = self._frame_sources
        return srcs[i] if i < len(srcs) else (None, None)

    # -- pixels -------------------------------------------------------------------------------
    @cached_property
    def _source(self):
        if self.seg is None:
            return None
        try:
            self.seg.check_counts()
            return self.seg.frame_source()
        except SegbridgeError as exc:
            self.decode_error = str(exc)
            return None

    def frame(self, i: int) -> np.ndarray | None:
        """Decoded frame i, or None when the pixel data cannot be decoded."""
        if i not in self._frames:
            src = self._source
            if src is None:
                return None
            try:
                self._frames[i] = src.frame(i)
            except SegbridgeError as exc:
                self.decode_error = str(exc)
                return None
        return self._frames[i]

    @cached_property
    def pixels_ok(self) -> bool:
        return self._source is not None and all(
            self.frame(i) is not None for i in range(min(len(self.per_frame),
                                                         self.number_of_frames)))


class RtContext:
    """An RT Structure Set under validation."""

    kind = "RTSTRUCT"
    profile = "standard"

    def __init__(self, parsed: ParsedFile, reference: ReferenceImage | None) -> None:
        self.parsed = parsed
        self.path: Path = parsed.path
        self.ds: RawDataset = parsed.ds
        self.reference = reference

    @cached_property
    def rois(self) -> list[RawDataset]:
        return list(self.ds.get("StructureSetROISequence") or [])

    @cached_property
    def roi_numbers(self) -> list[int]:
        return [number(r.get("ROINumber")) for r in self.rois if r.get("ROINumber") is not None]

    @cached_property
    def contours(self) -> list[tuple[int | None, int, RawDataset]]:
        """(referenced ROI number, contour index, contour item) for every contour."""
        out = []
        for item in self.ds.get("ROIContourSequence") or []:
            n = item.get("ReferencedROINumber")
            for i, c in enumerate(item.get("ContourSequence") or []):
                out.append((number(n) if n is not None else None, i, c))
        return out

    @cached_property
    def referenced_images(self) -> list[str]:
        uids = []
        for fr in self.ds.get("ReferencedFrameOfReferenceSequence") or []:
            for st in fr.get("RTReferencedStudySequence") or []:
                for se in st.get("RTReferencedSeriesSequence") or []:
                    for im in se.get("ContourImageSequence") or []:
                        uid = im.get("ReferencedSOPInstanceUID")
                        if uid:
                            uids.append(str(uid))
        return uids
