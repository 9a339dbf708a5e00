"""Rules for SEGs on a slide's tiled total pixel matrix (VL Whole Slide Microscopy sources).

Sources: PS3.3 C.7.6.17.3 (TILED_FULL frame order), C.8.12.6.1 (Plane Position (Slide)),
C.8.12.14 (Microscope Slide Layer Tile Organization), C.8.12.4.1.2 (slide coordinates);
reference/dicom-digest.md sections 1.5-1.7 in brackets.
"""

from __future__ import annotations

import struct

from .context import SegContext
from .findings import ERROR, WARNING, rule

SEG = "SEG"
_TPM_COLUMNS, _TPM_ROWS, _TPM_ORIGIN = 0x00480006, 0x00480007, 0x00480008
_ORIENTATION_SLIDE = 0x00480102
_PLANE_POS_SLIDE, _COL_POS, _ROW_POS = 0x0048021A, 0x0048021E, 0x0048021F
_X, _Y = 0x0040072A, 0x0040073A
#: slide coordinates of a frame may differ from the ones its position implies by this (mm)
SLIDE_TOLERANCE_MM = 1e-3


def _organisation(ctx: SegContext) -> str:
    return str(ctx.ds.get("DimensionOrganizationType") or "")


def _int(v, little: bool, signed: bool) -> int | None:
    data = bytes(v[1]) if isinstance(v, tuple) else b""
    if len(data) != 4:
        return None
    return struct.unpack(("<" if little else ">") + ("l" if signed else "L"), data)[0]


def _grid(ctx: SegContext):
    """The slide grid the file declares, or None (SLIDE-TILE-GRID says why)."""
    from ..errors import SegbridgeError
    from ..slide.seg_read import _grid as grid_of

    if ctx.seg is None:
        return None
    try:
        return grid_of(ctx.seg)
    except SegbridgeError:
        return None


def _sparse_grid(ctx: SegContext):
    """The grid of a TILED_SPARSE slide SEG (frames placed by Plane Position (Slide)), else None."""
    if not ctx.tiled or _organisation(ctx) == "TILED_FULL":
        return None
    return _grid(ctx)


def _frame_positions(ctx: SegContext):
    """Per frame: (index, its Plane Position (Slide) item or None, Row / Column Position In
    Total Image Pixel Matrix, each None when absent)."""
    little = ctx.seg.little
    for k, fg in enumerate(ctx.per_frame):
        pos = fg.get(_PLANE_POS_SLIDE)
        if not isinstance(pos, list) or not pos:
            yield k, None, None, None
            continue
        item = pos[0]
        rp = _int(item.get(_ROW_POS), little, True) if _ROW_POS in item else None
        cp = _int(item.get(_COL_POS), little, True) if _COL_POS in item else None
        yield k, item, rp, cp


@rule("SLIDE-TILE-GRID", SEG, ERROR, "A SEG on a slide declares its total pixel matrix "
      "(TotalPixelMatrixRows / Columns, positive) and, for TILED_FULL, the Microscope Slide Layer "
      "Tile Organization (TotalPixelMatrixOriginSequence, ImageOrientationSlide); a "
      "DimensionOrganizationType (Type 3), when given, is TILED_SPARSE or TILED_FULL.",
      hint="Copy the slide attributes from the source VL Whole Slide Microscopy image.",
      source="PS3.3 C.8.12.14, C.7.6.17.3 [digest 1.5, 1.7]")
def tile_grid(ctx: SegContext):
    if not ctx.tiled:
        return
    e, little = ctx.ds.elements, ctx.seg.little if ctx.seg is not None else True
    for tag, name in ((_TPM_ROWS, "TotalPixelMatrixRows"), (_TPM_COLUMNS,
                                                            "TotalPixelMatrixColumns")):
        value = _int(e.get(tag), little, False) if tag in e else None
        if not value:
            yield name, "missing or not a positive number"
    organisation = _organisation(ctx)
    if organisation and organisation not in ("TILED_SPARSE", "TILED_FULL"):  # Type 3
        yield "DimensionOrganizationType", f"{organisation}; a SEG on a total pixel matrix " \
            "is TILED_SPARSE or TILED_FULL"
    if organisation == "TILED_FULL":
        if not isinstance(e.get(_TPM_ORIGIN), list) or not e[_TPM_ORIGIN]:
            yield "TotalPixelMatrixOriginSequence", "missing (Type 1 in C.8.12.14)"
        if _ORIENTATION_SLIDE not in e:
            yield "ImageOrientationSlide", "missing (Type 1 in C.8.12.14)"


@rule("SLIDE-TILED-FULL-FRAMES", SEG, ERROR, "A TILED_FULL SEG holds every tile of every "
      "segment plane: NumberOfFrames = tiles across x tiles down x segments (1 for LABELMAP), "
      "in the order of C.7.6.17.3.",
      hint="Write every tile (empty ones included) or use TILED_SPARSE.",
      source="PS3.3 C.7.6.17.3 [digest 1.7]")
def tiled_full_frames(ctx: SegContext):
    if not ctx.tiled or _organisation(ctx) != "TILED_FULL":
        return
    g = _grid(ctx)
    if g is None:
        return
    planes = 1 if ctx.type == "LABELMAP" else len([n for n in ctx.segment_numbers if n])
    want = g.n_tiles * planes
    if ctx.number_of_frames != want:
        yield "NumberOfFrames", f"{ctx.number_of_frames}; {g.tiles_across} x {g.tiles_down} " \
            f"tiles x {planes} plane(s) need {want}"


@rule("SLIDE-TILE-POSITIONS", SEG, ERROR, "Every TILED_SPARSE frame has Plane Position (Slide) "
      "with its Row / Column Position In Total Image Pixel Matrix on the tile lattice (1 + a "
      "multiple of Rows / Columns) inside the matrix, and no tile of a segment is given twice.",
      hint="Write each frame's 1-based top left pixel position; one frame per segment and tile.",
      source="PS3.3 C.8.12.6.1, C.7.6.17.3 [digest 1.6]")
def tile_positions(ctx: SegContext):
    g = _sparse_grid(ctx)
    if g is None:
        return
    seen: dict[tuple, int] = {}
    for k, item, rp, cp in _frame_positions(ctx):
        if item is None:
            yield f"frame {k + 1}", "no Plane Position (Slide)"
            return
        if rp is None or cp is None:
            yield f"frame {k + 1}", "no Row / Column Position In Total Image Pixel Matrix"
            return
        r, c = rp - 1, cp - 1
        if r < 0 or c < 0 or r % g.tile_rows or c % g.tile_columns or r >= g.rows or \
                c >= g.columns:
            yield f"frame {k + 1}", f"position ({rp}, {cp}) is not the top left pixel of a " \
                f"{g.tile_rows} x {g.tile_columns} tile of the {g.rows} x {g.columns} matrix"
            continue
        key = (ctx.frame_segment(k) if ctx.type != "LABELMAP" else None, r, c)
        if key in seen:
            yield f"frame {k + 1}", f"repeats frame {seen[key] + 1} (tile ({rp}, {cp})" + \
                (f", segment {key[0]})" if key[0] is not None else ")")
        seen.setdefault(key, k)


@rule("SLIDE-COORDINATES", SEG, WARNING, "A TILED_SPARSE frame's X / Y Offset In Slide "
      "Coordinate System agree (within 1 micrometre) with the slide position of its top left "
      "pixel: origin + column x column spacing x row direction + row x row spacing x column "
      "direction (ImageOrientationSlide, PixelSpacing, TotalPixelMatrixOriginSequence).",
      hint="Recompute the offsets from the position (viewers place tiles by either).",
      source="PS3.3 C.8.12.6.1, C.8.12.4.1.2 [digest 1.6]")
def slide_coordinates(ctx: SegContext):
    g = _sparse_grid(ctx)
    if g is None or _TPM_ORIGIN not in ctx.ds.elements:
        return  # no origin: nothing to compare the offsets with
    from ..slide.seg_read import _floats

    for k, item, rp, cp in _frame_positions(ctx):
        if item is None or _X not in item or _Y not in item or rp is None or cp is None:
            continue
        x, y, _ = g.slide_xyz(rp - 1, cp - 1)
        got = (_floats(item[_X])[:1] or [float("nan")])[0], \
            (_floats(item[_Y])[:1] or [float("nan")])[0]
        if not (abs(got[0] - x) <= SLIDE_TOLERANCE_MM and abs(got[1] - y) <= SLIDE_TOLERANCE_MM):
            yield f"frame {k + 1}", f"X/Y offset ({got[0]:g}, {got[1]:g}) mm; position " \
                f"({rp}, {cp}) is at ({x:g}, {y:g}) mm"
            return


def _seg_and_slide(ctx: SegContext):
    """(the SEG's grid, the slide image given with --reference), when both are there."""
    ref = getattr(ctx, "slide_reference", None)
    if ref is None or not ctx.tiled:
        return None
    g = _grid(ctx)
    return None if g is None else (g, ref)


@rule("SLIDE-REFERENCE", SEG, ERROR, "Checked against its slide image (--reference SM.dcm), a "
      "slide SEG references that image (Referenced Series / Source Image Sequence), shares its "
      "Frame of Reference and has its total pixel matrix size and pixel spacing.",
      hint="Write the SEG on the SM level it was drawn on (segbridge convert -r SM.dcm).",
      source="PS3.3 C.12.2, C.7.4.1, C.8.12.14 [digest 1.8]")
def slide_reference(ctx: SegContext):
    pair = _seg_and_slide(ctx)
    if pair is None:
        return
    g, ref = pair
    uids = set()
    for item in ctx.ds.get("ReferencedSeriesSequence") or []:
        for inst in item.get("ReferencedInstanceSequence") or []:
            uids.add(str(inst.get("ReferencedSOPInstanceUID", "") or ""))
    for inst in ctx.ds.get("SourceImageSequence") or []:
        uids.add(str(inst.get("ReferencedSOPInstanceUID", "") or ""))
    if ref.source is not None and ref.source.sop_instance_uid not in uids:
        yield "ReferencedSeriesSequence", f"does not reference the slide image " \
            f"{ref.source.sop_instance_uid}"
    if ref.frame_of_reference_uid and g.frame_of_reference_uid != ref.frame_of_reference_uid:
        yield "FrameOfReferenceUID", f"{g.frame_of_reference_uid} is not the slide's " \
            f"{ref.frame_of_reference_uid}"
    if g.shape != ref.shape:
        yield "TotalPixelMatrixRows", f"{g.rows} x {g.columns}; the slide image is " \
            f"{ref.rows} x {ref.columns}"
    spacing = g.spacing_differs(ref)
    if spacing:
        yield "PixelSpacing", spacing


@rule("SLIDE-REFERENCE-ORIGIN", SEG, WARNING, "Checked against its slide image, a slide SEG's "
      "TotalPixelMatrixOriginSequence is the image's (within 1 micrometre): else its pixels do "
      "not lie on the image's pixels.",
      hint="Copy TotalPixelMatrixOriginSequence from the SM level the SEG was drawn on.",
      source="PS3.3 C.8.12.14, C.8.12.4.1.2 [digest 1.8]")
def slide_reference_origin(ctx: SegContext):
    pair = _seg_and_slide(ctx)
    if pair is None or _TPM_ORIGIN not in ctx.ds.elements:
        return
    g, ref = pair
    moved = g.origin_differs(ref, SLIDE_TOLERANCE_MM)
    if moved:
        yield "TotalPixelMatrixOriginSequence", moved
