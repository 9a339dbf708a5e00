"""Open a DICOM SEG: every element walked by :mod:`.rawdicom`, frames decoded on demand.

No pydicom here on purpose: walking the per-frame functional groups ourselves is an order of
magnitude faster than building pydicom Datasets for thousands of frames, and not importing
pydicom saves ~0.2 s per command. Deflated (whole-dataset) files are inflated first.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, UnsupportedError
from . import rawdicom as raw
from .codecs import NATIVE, codec_for, first_line
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
#: Row and column direction cosines must be unit vectors and orthogonal within this.
_UNIT_TOLERANCE = 1e-2


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

    #: tiled (slide) SEGs are refused here; segbridge.slide.seg_read subclasses with True
    allow_tiled = False

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
        nframes = ds.get("NumberOfFrames")
        self.number_of_frames = 1 if nframes in (None, "") else int(nframes)
        if self.number_of_frames < 1:
            raise InvalidInputError(f"{self.path}: NumberOfFrames {self.number_of_frames} is not "
                                    "a positive number")
        if self.rows <= 0 or self.columns <= 0:
            raise InvalidInputError(f"{self.path}: Rows/Columns missing or zero")
        if not self.allow_tiled and (str(ds.get("DimensionOrganizationType", "")) ==
                                     "TILED_FULL" or "TotalPixelMatrixRows" in ds):
            raise UnsupportedError(f"{self.path}: tiled slide-microscopy segmentations are not "
                                   "supported yet")
        self.frames: list[FrameInfo] = []
        # values the walker shares between frames (Walker._shared_sequence) are decoded once;
        # the decoded arrays are shared too and never written to
        decoded: dict[int, tuple] = {}
        for fg in self.per_frame:
            fi = FrameInfo()
            v = raw.first(fg, _SEG_ID, _REF_SEG_NUM)
            if v is not None:
                fi.segment = w.ints(v)[0]
            v = raw.first(fg, _PLANE_POS, _IPP)
            if v is not None:
                known = decoded.get(id(v))
                if known is None:
                    known = decoded[id(v)] = (v, w.text(v).split("\\"),
                                              np.array(w.floats(v), float))
                fi.position_strings, fi.position = known[1], known[2]
            v = raw.first(fg, _PLANE_ORI, _IOP)
            if v is not None:
                fi.orientation = np.array(w.floats(v), float)
            v = raw.first(fg, _PIXEL_MEASURES, _PIXEL_SPACING)
            if v is not None:
                fi.spacing = self._spacing(w.floats(v), f"frame {len(self.frames) + 1}")
            src = raw.first(fg, _DERIVATION, _SOURCE_IMAGE)
            if isinstance(src, list) and src:
                known = decoded.get(id(src))
                if known is None:
                    uid, fr = src[0].get(_REF_SOP_UID), src[0].get(_REF_FRAME)
                    known = decoded[id(src)] = (src, w.text(uid) if uid is not None else None,
                                                w.ints(fr)[0] if fr is not None else None)
                fi.sop_instance_uid, fi.frame_number = known[1], known[2]
            v = raw.first(fg, _FRAME_CONTENT, _DIM_INDEX)
            if v is not None:
                fi.dimension_index = w.ints(v)
            if not self.allow_tiled and ("PlanePositionSlideSequence" in ds or
                                         raw.first(fg, 0x0048021A) is not None):
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
            shared_sp = self._spacing(sp if isinstance(sp, list) else [sp], "shared groups")
        self.slice_thickness = None
        self.spacing_between_slices = None
        if sh.get("PixelMeasuresSequence"):
            pm = sh.PixelMeasuresSequence[0]
            self.slice_thickness = self._finite(pm, "SliceThickness")
            self.spacing_between_slices = self._finite(pm, "SpacingBetweenSlices")
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
        checked: set[tuple[int, int]] = set()  # shared (position, orientation) pairs
        for i, fi in enumerate(self.frames):
            pair = (id(fi.position), id(fi.orientation))
            if pair not in checked:
                self._check_plane(i, fi)
                checked.add(pair)

    def _spacing(self, values, where: str) -> tuple[float, float]:
        """PixelSpacing (PS3.3 10.7.1.3: row spacing, column spacing in mm): two finite
        positive numbers, or the file is refused (a zero or NaN spacing breaks every mapping
        between frames and patient space)."""
        sp = [float(v) for v in values] if values is not None else []
        if len(sp) != 2 or not all(np.isfinite(sp)) or min(sp) <= 0:
            raise InvalidInputError(f"{self.path}: {where}: PixelSpacing {_show(sp)} is not two "
                                    "positive numbers")
        return sp[0], sp[1]

    def _finite(self, item, keyword: str) -> float | None:
        """An optional single number of the Pixel Measures item: None when absent, refused
        when it is not a finite number."""
        v = item.get(keyword)
        if v in (None, ""):
            return None
        try:
            x = float(v[0] if isinstance(v, list) else v)
        except (TypeError, ValueError):
            x = float("nan")
        if not np.isfinite(x):
            raise InvalidInputError(f"{self.path}: {keyword} {_show(v)} is not a finite number")
        return x

    def _check_plane(self, i: int, fi: FrameInfo) -> None:
        """Plane position (3 finite numbers) and orientation (two orthogonal unit vectors,
        PS3.3 C.7.6.2.1.1) of frame ``i``, as far as the file gives them."""
        if fi.position is not None and (fi.position.shape != (3,) or
                                        not np.isfinite(fi.position).all()):
            raise InvalidInputError(f"{self.path}: frame {i + 1}: ImagePositionPatient "
                                    f"{_show(fi.position_strings)} is not three finite numbers")
        o = fi.orientation
        if o is None:
            return
        ok = o.shape == (6,) and np.isfinite(o).all()
        if ok:
            r, c = o[:3], o[3:]
            ok = abs(np.linalg.norm(r) - 1) < _UNIT_TOLERANCE and \
                abs(np.linalg.norm(c) - 1) < _UNIT_TOLERANCE and abs(r @ c) < _UNIT_TOLERANCE
        if not ok:
            raise InvalidInputError(f"{self.path}: frame {i + 1}: ImageOrientationPatient "
                                    f"{_show(o)} is not two orthogonal unit vectors")

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
            try:
                return NativeFrames(value, self.number_of_frames, self.rows, self.columns,
                                    self.bits_allocated, big_endian=not self.little, vr=kind)
            except InvalidInputError as exc:  # the codec does not know the file's name
                raise InvalidInputError(f"{self.path}: {exc}") from None
        return _EncapsulatedFrames(self, value)


def _show(values) -> str:
    """A short, one-line rendering of a (possibly hostile) value for a message."""
    if values is None:
        return "(missing)"
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        text = "\\".join(str(v) for v in values)
    else:
        text = str(values)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return '"' + text[:40] + ("..." if len(text) > 40 else "") + '"'


#: Sequence Delimitation Item closing encapsulated pixel data (PS3.5 A.4), little endian.
_SEQ_DELIM_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


class _EncapsulatedFrames:
    """The frames of encapsulated pixel data (PS3.5 A.4), split and checked before any decode:
    the value must end with its sequence delimiter (else the file is cut short), and a Basic
    Offset Table, when present, must point at the fragments that are there."""

    def __init__(self, seg: SegFile, fragments: list) -> None:
        self.seg = seg
        try:
            codec = codec_for(seg.transfer_syntax)
        except UnsupportedError as exc:
            raise UnsupportedError(f"{seg.path}: {exc}") from None
        self.codec = codec
        nframes = seg.number_of_frames
        self._check_complete()
        if not fragments:
            raise InvalidInputError(f"{seg.path}: encapsulated pixel data has no items (not even "
                                    "the Basic Offset Table)")
        bot = bytes(fragments[0])
        offsets = self._offsets(bot, fragments)
        if len(fragments) - 1 == nframes:
            if offsets and offsets != _starts(fragments):
                raise InvalidInputError(f"{seg.path}: the Basic Offset Table does not point at "
                                        f"the {nframes} frame fragments")
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
                                        f"into {nframes} frames ({first_line(exc)})") from None
        if len(self.data) != nframes:
            raise InvalidInputError(f"{seg.path}: pixel data holds {len(self.data)} frames, "
                                    f"NumberOfFrames says {nframes}")

    def _check_complete(self) -> None:
        """Encapsulated pixel data that stops before its delimiter was cut short: its last
        fragment may be clipped, and a clipped frame can still decode (to wrong pixels)."""
        f = self.seg.parsed
        span = f.spans.get(raw.PIXEL_DATA)
        if span is None:
            return
        end = span[1]
        if end > len(f.body) or bytes(f.body[end - 8:end]) != _SEQ_DELIM_LE:
            raise InvalidInputError(f"{self.seg.path}: encapsulated pixel data is truncated (no "
                                    "sequence delimiter after the last fragment)")

    def _offsets(self, bot: bytes, fragments: list) -> list[int]:
        """The Basic Offset Table as integers, checked: whole 4-byte entries, one per frame,
        starting at 0, rising, each the start of a fragment."""
        if not bot:
            return []
        seg, nframes = self.seg, self.seg.number_of_frames
        if len(bot) % 4 or len(bot) // 4 != nframes:
            raise InvalidInputError(f"{seg.path}: the Basic Offset Table holds {len(bot)} bytes, "
                                    f"not 4 per frame for {nframes} frames")
        offsets = list(struct.unpack(f"<{nframes}L", bot))
        starts = set(_starts(fragments))
        if offsets[0] != 0 or any(b <= a for a, b in itertools.pairwise(offsets)) or \
                not starts.issuperset(offsets):
            raise InvalidInputError(f"{seg.path}: the Basic Offset Table does not point at the "
                                    "starts of fragments")
        return offsets

    def frame(self, k: int) -> np.ndarray:
        s = self.seg
        try:
            return self.codec.decode(self.data[k], s.rows, s.columns, s.bits_allocated)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{s.path}: frame {k + 1}: {exc}") from None
        except Exception as exc:
            raise InvalidInputError(f"{s.path}: frame {k + 1} does not decode "
                                    f"({type(exc).__name__}: {first_line(exc)})") from None


def _starts(fragments: list) -> list[int]:
    """Offset of each fragment item after the Basic Offset Table item, as a BOT counts them."""
    out, pos = [], 0
    for frag in fragments[1:]:
        out.append(pos)
        pos += 8 + len(frag)
    return out
