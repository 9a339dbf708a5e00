"""DICOM SEG on a slide (TILED_SPARSE or TILED_FULL) -> :class:`SlideSegmentation`, lazily.

The file is walked by :mod:`segbridge.dicom.segfile` (the volume reader's parser, with the
tiled refusal lifted); frames are decoded only when a region that needs them is read. Frame
placement: TILED_SPARSE frames by their Plane Position (Slide) Row / Column Position In Total
Image Pixel Matrix (PS3.3 C.8.12.6.1); TILED_FULL frames by their index in the order PS3.3
C.7.6.17.3 defines (tiles row by row, then focal plane, optical path, segment).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..dicom.segfile import SegFile
from ..errors import InvalidInputError, Report, UnsupportedError
from .model import SlideGrid, SlideSegmentation, SlideSource
from .tiles import RELEASE_BYTES

_TPM_COLUMNS = 0x00480006
_TPM_ROWS = 0x00480007
_TPM_ORIGIN = 0x00480008
_X_OFFSET = 0x0040072A
_Y_OFFSET = 0x0040073A
_ORIENTATION_SLIDE = 0x00480102
_FOCAL_PLANES = 0x00480303
_OPTICAL_PATHS = 0x00480302
_PLANE_POS_SLIDE = 0x0048021A
_COL_POS = 0x0048021E
_ROW_POS = 0x0048021F
_DIM_ORG_TYPE = 0x00209311


class TiledSegFile(SegFile):
    """A SEG file whose frames are tiles of a total pixel matrix."""

    allow_tiled = True

    @property
    def tiled_full(self) -> bool:
        e = self.ds.elements
        return _DIM_ORG_TYPE in e and _text(e[_DIM_ORG_TYPE]) == "TILED_FULL"

    def check_counts(self) -> None:
        """TILED_FULL has no per-frame groups: its count is checked against the tile grid
        (:func:`_frame_tiles`)."""
        if self._pixel is None:
            raise InvalidInputError(f"{self.path}: no pixel data")
        if not self.tiled_full:
            super().check_counts()


def _text(v) -> str:
    return bytes(v[1]).decode("ascii", "replace").strip(" \x00")


def _number(v, signed: bool = False, little: bool = True) -> int:
    """A binary UL / SL value (also in implicit VR files, where the VR is unknown)."""
    data = bytes(v[1])
    if len(data) != 4:
        raise InvalidInputError(f"expected a 4-byte integer, got {len(data)} bytes")
    return struct.unpack(("<" if little else ">") + ("l" if signed else "L"), data)[0]


def _floats(v) -> list[float]:
    try:
        return [float(x) for x in _text(v).split("\\") if x.strip()]
    except ValueError:
        raise InvalidInputError(f"{_text(v)[:40]!r} is not a list of decimal numbers") from None


def _origin(value, little: bool = True) -> tuple[float, float] | None:
    """X / Y offsets of TotalPixelMatrixOriginSequence: a walked sequence, or (implicit VR
    files, where segbridge's tag table does not know the sequence) its undecoded bytes."""
    if isinstance(value, list):
        if value and _X_OFFSET in value[0] and _Y_OFFSET in value[0]:
            return _floats(value[0][_X_OFFSET])[0], _floats(value[0][_Y_OFFSET])[0]
        return None
    if not isinstance(value, tuple):
        return None
    data, found, pos = bytes(value[1]), {}, 8  # after the first item's tag and length
    order = "<" if little else ">"
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack(order + "HHL", data[pos:pos + 8])
        if (group, elem) in ((0xFFFE, 0xE00D), (0xFFFE, 0xE000)):
            break
        found[(group << 16) | elem] = data[pos + 8:pos + 8 + length]
        pos += 8 + length
    try:
        return (float(found[_X_OFFSET].decode("ascii").strip(" \x00")),
                float(found[_Y_OFFSET].decode("ascii").strip(" \x00")))
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


class SegTiles:
    """One plane of a tiled SEG (a segment, or the label map) as a lazy TileSource."""

    def __init__(self, frames, index: dict[tuple[int, int], int], grid: SlideGrid, dtype,
                 release=None) -> None:
        self._frames = frames
        self._release = release
        self._decoded = 0
        self._index = index
        self._grid = grid
        self.shape = grid.shape
        self.dtype = np.dtype(dtype)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        g = self._grid
        out = np.zeros((r1 - r0, c1 - c0), self.dtype)
        for i in range(r0 // g.tile_rows, (r1 - 1) // g.tile_rows + 1 if r1 > r0 else 0):
            for j in range(c0 // g.tile_columns, (c1 - 1) // g.tile_columns + 1 if c1 > c0 else 0):
                k = self._index.get((i, j))
                if k is None:
                    continue
                tile = self._frames.frame(k)
                self._decoded += tile.nbytes
                if self._release is not None and self._decoded > RELEASE_BYTES:
                    self._decoded = 0
                    self._release()  # the file's mapped pages go back (peak RSS bound)
                tr0, tc0 = i * g.tile_rows, j * g.tile_columns
                a, b = max(r0, tr0), min(r1, tr0 + g.tile_rows, g.rows)
                c, d = max(c0, tc0), min(c1, tc0 + g.tile_columns, g.columns)
                out[a - r0:b - r0, c - c0:d - c0] = tile[a - tr0:b - tr0, c - tc0:d - tc0]
        return out


def _grid(sf: TiledSegFile) -> SlideGrid:
    e = sf.ds.elements
    path = sf.path
    if _TPM_ROWS not in e or _TPM_COLUMNS not in e:
        raise InvalidInputError(f"{path}: not a slide segmentation (no TotalPixelMatrixRows)")
    spacing = (0.001, 0.001)
    thickness = None
    shared = sf.ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("PixelMeasuresSequence"):
        pm = shared[0].PixelMeasuresSequence[0]
        if "PixelSpacing" in pm:
            sp = pm.PixelSpacing
            spacing = sf._spacing(sp if isinstance(sp, list) else [sp], "shared groups")
        thickness = sf._finite(pm, "SliceThickness")
    origin = _origin(e.get(_TPM_ORIGIN), sf.little) or (0.0, 0.0)
    orientation = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0)
    if _ORIENTATION_SLIDE in e:
        orientation = tuple(_floats(e[_ORIENTATION_SLIDE]))
    study = str(sf.ds.get("StudyInstanceUID", "") or "")
    series, sop, cls = "", "", ""
    refs = sf.ds.get("ReferencedSeriesSequence") or []
    if refs:
        series = str(refs[0].get("SeriesInstanceUID", "") or "")
        inst = refs[0].get("ReferencedInstanceSequence") or []
        if inst:
            sop = str(inst[0].get("ReferencedSOPInstanceUID", "") or "")
            cls = str(inst[0].get("ReferencedSOPClassUID", "") or "")
    if not sop and sf.ds.get("SourceImageSequence"):
        item = sf.ds.SourceImageSequence[0]
        sop = str(item.get("ReferencedSOPInstanceUID", "") or "")
        cls = str(item.get("ReferencedSOPClassUID", "") or "")
    try:
        return SlideGrid(
            rows=_number(e[_TPM_ROWS], little=sf.little),
            columns=_number(e[_TPM_COLUMNS], little=sf.little),
            tile_rows=sf.rows, tile_columns=sf.columns, pixel_spacing=spacing,
            orientation=orientation, origin=origin,
            frame_of_reference_uid=str(sf.ds.get("FrameOfReferenceUID", "") or "") or None,
            source=SlideSource(study, series, sop, cls) if sop else None,
            slice_thickness=thickness)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None


def _frame_tiles(sf: TiledSegFile, grid: SlideGrid, kind: str,
                 numbers: list[int]) -> dict[int | None, dict[tuple[int, int], int]]:
    """segment (None for a label map) -> {(tile row, tile column): frame index}."""
    path, e = sf.path, sf.ds.elements
    organisation = _text(e[_DIM_ORG_TYPE]) if _DIM_ORG_TYPE in e else ""
    planes = [None] if kind == "LABELMAP" else numbers
    out: dict[int | None, dict[tuple[int, int], int]] = {n: {} for n in planes}
    if organisation == "TILED_FULL":
        for tag, what in ((_FOCAL_PLANES, "focal planes"), (_OPTICAL_PATHS, "optical paths")):
            if tag in e and _number(e[tag], little=sf.little) > 1:
                raise UnsupportedError(f"{path}: TILED_FULL with several {what} is not "
                                       "supported")
        per_plane = grid.n_tiles
        if sf.number_of_frames != per_plane * len(planes):
            raise InvalidInputError(
                f"{path}: TILED_FULL with {len(planes)} segment plane(s) of {per_plane} tiles "
                f"needs {per_plane * len(planes)} frames, NumberOfFrames is "
                f"{sf.number_of_frames}")
        for s, n in enumerate(planes):
            for t, (i, j) in enumerate(grid.tiles()):
                out[n][(i, j)] = s * per_plane + t
        return out
    sf.check_counts()
    for k, (fg, fi) in enumerate(zip(sf.per_frame, sf.frames, strict=True)):
        pos = fg.get(_PLANE_POS_SLIDE)
        if not isinstance(pos, list) or not pos or _ROW_POS not in pos[0] \
                or _COL_POS not in pos[0]:
            raise InvalidInputError(f"{path}: frame {k + 1} has no Plane Position (Slide) "
                                    "row / column position")
        try:
            rp = _number(pos[0][_ROW_POS], signed=True, little=sf.little)
            cp = _number(pos[0][_COL_POS], signed=True, little=sf.little)
            i, j = grid.tile_of_position(rp, cp)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: frame {k + 1}: {exc}") from None
        n = None if kind == "LABELMAP" else fi.segment
        if n not in out:
            raise InvalidInputError(f"{path}: frame {k + 1} refers to segment {n}, which the "
                                    "Segment Sequence does not describe")
        if (i, j) in out[n]:
            raise InvalidInputError(f"{path}: frame {k + 1} repeats tile ({rp}, {cp})"
                                    + (f" of segment {n}" if n is not None else ""))
        out[n][(i, j)] = k
    return out


def read_slide_seg(path: str | os.PathLike, report: Report | None = None) -> SlideSegmentation:
    """Open a slide SEG; pixels stay in the file until a region is read."""
    from ..dicom.segments import segment_from_item

    report = report if report is not None else Report()
    p = Path(path)
    sf = TiledSegFile(p)
    grid = _grid(sf)
    kind = str(sf.ds.get("SegmentationType", "") or "").upper()
    if kind not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise InvalidInputError(f"{p}: SegmentationType {kind!r} is not BINARY, FRACTIONAL or "
                                "LABELMAP")
    segments = [segment_from_item(it, report) for it in (sf.ds.get("SegmentSequence") or [])]
    segments = [s for s in segments if s.number != 0]
    if not segments:
        raise InvalidInputError(f"{p}: no segments described")
    numbers = [s.number for s in segments]
    if str(sf.ds.get("PhotometricInterpretation", "") or "") == "PALETTE COLOR":
        from ..dicom.segments import palette_colors

        colors = palette_colors(sf, numbers)  # segments without CIELab take the LUT's colour
        for s in segments:
            if s.color is None:
                s.color = colors.get(s.number)
    tiles = _frame_tiles(sf, grid, kind, numbers)
    frames = sf.frame_source()
    bits = sf.bits_allocated
    if kind == "LABELMAP":
        dtype = np.uint16 if bits == 16 else np.uint8
        return SlideSegmentation(grid, segments, kind, labels=SegTiles(
            frames, tiles[None], grid, dtype, sf.parsed.release_pages))
    masks = {n: SegTiles(frames, tiles[n], grid, np.uint8, sf.parsed.release_pages)
             for n in numbers}
    extra = {}
    if kind == "FRACTIONAL":
        extra = dict(fractional_type=str(sf.ds.get("SegmentationFractionalType", "PROBABILITY")
                                         or "PROBABILITY"),
                     max_fractional_value=int(sf.ds.get("MaximumFractionalValue", 255) or 255))
    return SlideSegmentation(grid, segments, kind, masks=masks, **extra)


def read_every_tile(path: str | os.PathLike) -> SlideSegmentation:
    """Open a slide SEG and decode every frame it holds (what validate's SEG-READER runs)."""
    sseg = read_slide_seg(path)
    sources = [sseg.labels] if sseg.labels is not None else list(sseg.masks.values())
    g = sseg.grid
    for src in sources:
        for i in range(g.tiles_down):
            src.read(i * g.tile_rows, min((i + 1) * g.tile_rows, g.rows), 0, g.columns)
    return sseg
