"""Open a DICOM SEG: every element walked by :mod:`.rawdicom`, frames decoded on demand.

No pydicom here on purpose: walking the per-frame functional groups ourselves is an order of
magnitude faster than building pydicom Datasets for thousands of frames, and not importing
pydicom saves ~0.2 s per command. Deflated (whole-dataset) files are inflated first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, UnsupportedError
from . import rawdicom as raw
from .codecs import NATIVE, codec_for
from .codecs.native import NativeFrames
from .parse import ParsedFile, parse_file
from .rawdicom import RawDataset

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"
SEG_SOP_CLASSES = {SEG_SOP_CLASS, LABELMAP_SOP_CLASS}

# tags used in per-frame functional groups
_SEG_ID = 0x0062000A
_REF_SEG_NUM = 0x0062000B
_PLANE_POS = 0x00209113
_IPP = 0x00200032
_PLANE_ORI = 0x00209116
_IOP = 0x00200037
_PIXEL_MEASURES = 0x00289110
_PIXEL_SPACING = 0x00280030
_DERIVATION = 0x00089124
_SOURCE_IMAGE = 0x00082112
_REF_SOP_UID = 0x00081155
_REF_FRAME = 0x00081160
_FRAME_CONTENT = 0x00209111
_DIM_INDEX = 0x00209157


@dataclass
class FrameInfo:
    """What the per-frame functional groups say about one frame."""

    segment: int | None = None
    position: np.ndarray | None = None
    orientation: np.ndarray | None = None
    position_strings: list[str] | None = None
    spacing: tuple[float, float] | None = None
    sop_instance_uid: str | None = None
    frame_number: int | None = None
    dimension_index: list[int] | None = None


class SegFile:
    """A parsed SEG: header dataset, frame information and decoded frames on demand."""

    def __init__(self, path: str | Path, parsed: ParsedFile | None = None) -> None:
        self.path = Path(path)
        f = parsed if parsed is not None else parse_file(self.path)
        self.parsed = f
        self.meta, self.ds, self.walker = f.meta, f.ds, f.walker
        self.transfer_syntax, self.little, self.implicit = f.transfer_syntax, f.little, f.implicit
        sop = f.sop_class_uid
        if sop not in SEG_SOP_CLASSES:
            if not sop:
                raise InvalidInputError(f"{self.path}: DICOM file without a SOP Class UID; "
                                        "not a segmentation")
            raise UnsupportedError(f"{self.path}: DICOM {self.ds.get('Modality') or '?'} object "
                                   f"(SOP class {sop}) is not a segmentation this version reads")
        self.sop_class_uid = sop
        self.per_frame: list[dict] = f.top.get(raw.PER_FRAME_FG, [])
        self._pixel = f.top.get(raw.PIXEL_DATA)
        try:
            self._parse_frames()
        except (InvalidInputError, UnsupportedError):
            raise
        except Exception as exc:
            raise InvalidInputError(f"{self.path}: malformed functional groups "
                                    f"({type(exc).__name__}: {exc})") from None

    def header_bytes(self, keywords) -> tuple[bytes, bool, bool]:
        return self.parsed.header_bytes(keywords)

    def _parse_frames(self) -> None:
        ds, w = self.ds, self.walker
        self.rows = int(ds.get("Rows", 0) or 0)
        self.columns = int(ds.get("Columns", 0) or 0)
        self.bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
        self.number_of_frames = int(ds.get("NumberOfFrames", 1) or 1)
        if self.rows <= 0 or self.columns <= 0:
            raise InvalidInputError(f"{self.path}: Rows/Columns missing or zero")
        if str(ds.get("DimensionOrganizationType", "")) == "TILED_FULL" or \
                "TotalPixelMatrixRows" in ds:
            raise UnsupportedError(f"{self.path}: tiled slide-microscopy segmentations are not "
                                   "supported yet")
        self.frames: list[FrameInfo] = []
        for fg in self.per_frame:
            fi = FrameInfo()
            v = raw.first(fg, _SEG_ID, _REF_SEG_NUM)
            if v is not None:
                fi.segment = w.ints(v)[0]
            v = raw.first(fg, _PLANE_POS, _IPP)
            if v is not None:
                fi.position_strings = w.text(v).split("\\")
                fi.position = np.array([float(x) for x in fi.position_strings], float)
            v = raw.first(fg, _PLANE_ORI, _IOP)
            if v is not None:
                fi.orientation = np.array(w.floats(v), float)
            v = raw.first(fg, _PIXEL_MEASURES, _PIXEL_SPACING)
            if v is not None:
                sp = w.floats(v)
                fi.spacing = (sp[0], sp[1])
            src = raw.first(fg, _DERIVATION, _SOURCE_IMAGE)
            if isinstance(src, list) and src:
                uid = src[0].get(_REF_SOP_UID)
                if uid is not None:
                    fi.sop_instance_uid = w.text(uid)
                fr = src[0].get(_REF_FRAME)
                if fr is not None:
                    fi.frame_number = w.ints(fr)[0]
            v = raw.first(fg, _FRAME_CONTENT, _DIM_INDEX)
            if v is not None:
                fi.dimension_index = w.ints(v)
            if "PlanePositionSlideSequence" in ds or raw.first(fg, 0x0048021A) is not None:
                raise UnsupportedError(f"{self.path}: slide-microscopy segmentations are not "
                                       "supported yet")
            self.frames.append(fi)
        # shared functional groups fill what per-frame groups leave out
        shared_fg = ds.get("SharedFunctionalGroupsSequence")
        sh = shared_fg[0] if shared_fg else RawDataset({}, self.walker)
        shared_seg = None
        if sh.get("SegmentIdentificationSequence"):
            shared_seg = int(sh.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        shared_ori = None
        if sh.get("PlaneOrientationSequence") and \
                "ImageOrientationPatient" in sh.PlaneOrientationSequence[0]:
            shared_ori = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
        shared_sp = None
        if sh.get("PixelMeasuresSequence") and "PixelSpacing" in sh.PixelMeasuresSequence[0]:
            sp = sh.PixelMeasuresSequence[0].PixelSpacing
            shared_sp = (float(sp[0]), float(sp[1]))
        self.slice_thickness = None
        self.spacing_between_slices = None
        if sh.get("PixelMeasuresSequence"):
            pm = sh.PixelMeasuresSequence[0]
            if pm.get("SliceThickness") not in (None, ""):
                self.slice_thickness = float(pm.SliceThickness)
            if pm.get("SpacingBetweenSlices") not in (None, ""):
                self.spacing_between_slices = float(pm.SpacingBetweenSlices)
        for fi in self.frames:
            if fi.segment is None:
                fi.segment = shared_seg
            if fi.orientation is None:
                fi.orientation = shared_ori
            if fi.spacing is None:
                fi.spacing = shared_sp
        if not self.frames and self.number_of_frames >= 1 and "PerFrameFunctionalGroupsSequence" \
                not in ds and self._pixel is not None:
            # single-frame SEG without functional groups per frame: treat shared values
            self.frames = [FrameInfo(segment=shared_seg, orientation=shared_ori,
                                     spacing=shared_sp)]
        self.segmentation_type = str(ds.get("SegmentationType", "") or "").upper()

    # -- pixel access ------------------------------------------------------------------------
    def check_counts(self) -> None:
        """NumberOfFrames, functional groups and pixel data must agree."""
        nfg = len(self.frames)
        if self._pixel is None:
            raise InvalidInputError(f"{self.path}: no pixel data")
        if nfg != self.number_of_frames:
            raise InvalidInputError(
                f"{self.path}: NumberOfFrames is {self.number_of_frames} but there are {nfg} "
                "per-frame functional group items")

    def frame_source(self):
        """An object with ``frame(k)`` returning frame k as a (rows, columns) array."""
        kind, value = self._pixel
        kind = kind.decode("ascii") if isinstance(kind, bytes) else kind
        if self.transfer_syntax in NATIVE or kind != "encapsulated":
            if kind == "encapsulated":
                raise InvalidInputError(f"{self.path}: encapsulated pixel data in a native "
                                        f"transfer syntax ({self.transfer_syntax})")
            return NativeFrames(value, self.number_of_frames, self.rows, self.columns,
                                self.bits_allocated, big_endian=not self.little, vr=kind)
        return _EncapsulatedFrames(self, value)


class _EncapsulatedFrames:
    def __init__(self, seg: SegFile, fragments: list) -> None:
        self.seg = seg
        codec = codec_for(seg.transfer_syntax)
        self.codec = codec
        nframes = seg.number_of_frames
        if len(fragments) - 1 == nframes:
            self.data = [bytes(f) for f in fragments[1:]]
        else:
            # several fragments per frame: let pydicom's logic use the offset tables
            from pydicom.encaps import generate_frames

            enc = b"".join(raw.item(bytes(f)) for f in fragments) + raw.SEQUENCE_DELIMITER
            ext = None
            if "ExtendedOffsetTable" in seg.ds:
                ext = (seg.ds.get("ExtendedOffsetTable"),
                       seg.ds.get("ExtendedOffsetTableLengths"))
            try:
                self.data = list(generate_frames(enc, number_of_frames=nframes,
                                                 extended_offsets=ext))
            except Exception as exc:
                raise InvalidInputError(f"{seg.path}: cannot split encapsulated pixel data "
                                        f"into {nframes} frames ({exc})") from None
        if len(self.data) < nframes:
            raise InvalidInputError(f"{seg.path}: pixel data holds {len(self.data)} frames, "
                                    f"NumberOfFrames says {nframes}")

    def frame(self, k: int) -> np.ndarray:
        s = self.seg
        try:
            return self.codec.decode(self.data[k], s.rows, s.columns, s.bits_allocated)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{s.path}: frame {k + 1}: {exc}") from None
        except Exception as exc:
            raise InvalidInputError(f"{s.path}: frame {k + 1} does not decode "
                                    f"({type(exc).__name__}: {exc})") from None
