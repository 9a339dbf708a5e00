"""What real consumers need beyond the standard: OHIF / Cornerstone3D, and 3D Slicer / dcmqi.

Sources: reference/viewer-behaviour.md (section letters and rule numbers in brackets) and the
interop matrix (docs/interop.md).
"""

from __future__ import annotations

import numpy as np

from ..dicom import rawdicom as raw
from ..dicom.codecs import (
    DEFLATED_LE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    NATIVE,
    RLE_LOSSLESS,
)
from .context import SegContext
from .findings import ERROR, WARNING, rule
from .hints import fractional_fix, ohif_binary_fix
from .seg_rules import _has, _overlapping_pair

SEG = "SEG"
#: decoded by OHIF's image loader (per frame), not by the adapters' buffer path
IMAGE_LOADER_ONLY = {DEFLATED_LE, "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
                     "1.2.840.10008.1.2.4.91"}
OHIF = ("ohif",)
SLICER = ("slicer",)


@rule("OHIF-REFERENCED-SERIES", SEG, ERROR, "Top-level ReferencedSeriesSequence names the source "
      "series (OHIF builds no display set without it).", hint="segbridge repair adds it.",
      source="viewer-behaviour A2", profiles=OHIF)
def ohif_referenced_series(ctx: SegContext):
    rss = ctx.ds.get("ReferencedSeriesSequence") or []
    if not rss or not rss[0].get("SeriesInstanceUID"):
        yield "ReferencedSeriesSequence", "missing: OHIF will not list this SEG"


@rule("OHIF-FRAME-SOURCE", SEG, ERROR, "Every frame references its source image through "
      "DerivationImageSequence > SourceImageSequence (Cornerstone matches frames by it).",
      hint="segbridge repair --reference adds the references by position.",
      source="viewer-behaviour A5", profiles=OHIF)
def ohif_frame_source(ctx: SegContext):
    missing = [i for i in range(len(ctx.per_frame)) if not ctx.frame_source_uid(i)[0]]
    if missing:
        yield f"frame {missing[0] + 1}", f"{len(missing)} frames without a source image " \
            "reference: Cornerstone falls back to 1e-3 mm position matching or drops them"


@rule("OHIF-SOURCE-SIZE", SEG, ERROR, "Rows/Columns equal the source images' (cropped or "
      "resampled SEGs do not load).", hint="Write the SEG on the source grid.",
      source="viewer-behaviour A7", profiles=OHIF, needs_reference=True)
def ohif_source_size(ctx: SegContext):
    g = ctx.reference.grid
    if (ctx.rows, ctx.columns) != g.shape[1:]:
        yield "Rows/Columns", f"{ctx.rows}x{ctx.columns}, source images are " \
            f"{g.shape[1]}x{g.shape[2]}"


def _frame_referenced(ctx: SegContext) -> bool:
    """A SEG of 2-D / cine images: no plane position or orientation anywhere, every frame
    derived from a source image (PS3.3 A.51.1, A.51.5), and no Frame of Reference unless the
    reference given is such an image (2-D images may carry one)."""
    if str(ctx.ds.get("FrameOfReferenceUID") or ""):
        ref = ctx.reference
        if ref is None or not getattr(getattr(ref, "source", None), "frame_space", False):
            return False
    for tag in (0x00209113, 0x00209116):
        if tag in ctx.shared_raw or any(tag in fg for fg in ctx.per_frame):
            return False
    return all(0x00089124 in fg or 0x00089124 in ctx.shared_raw for fg in ctx.per_frame)


@rule("OHIF-FRAME-SPACE", SEG, WARNING, "A SEG of 2-D / cine images (no Frame of Reference, "
      "no plane geometry) does not load in OHIF 3.x: Cornerstone needs ImageOrientationPatient, "
      "which such images do not have.", hint="Nothing to fix in the file (inventing an "
      "orientation would break PS3.3 A.51.1); view it in a viewer that maps SEGs by source "
      "frame (highdicom, Slicer) or keep it for archiving.", source="viewer-behaviour A8; "
      "PS3.3 A.51.1", profiles=OHIF)
def ohif_frame_space(ctx: SegContext):
    if ctx.per_frame and _frame_referenced(ctx):
        yield "PlaneOrientationSequence", "absent (2-D / cine source): OHIF cannot display " \
            "this SEG"


@rule("OHIF-ORIENTATION", SEG, ERROR, "ImageOrientationPatient is present and equals the source "
      "orientation up to 90-degree rotations and flips (within 1e-3).",
      hint="Copy the source's ImageOrientationPatient into the shared functional groups.",
      source="viewer-behaviour A8, A9", profiles=OHIF)
def ohif_orientation(ctx: SegContext):
    if not ctx.per_frame or _frame_referenced(ctx):
        return  # OHIF-FRAME-SPACE: nothing to copy, the source has no orientation
    oris = [fi.orientation for fi in ctx.frames]
    if ctx.frames and any(o is None for o in oris):
        yield "PlaneOrientationSequence", "missing: Cornerstone throws 'missing " \
            "ImageOrientationPatient'"
        return
    if ctx.reference is None or not ctx.frames:
        return
    src = np.array(ctx.reference.grid.image_orientation)
    row, col = src[:3], src[3:]
    variants = []
    for a, b in ((row, col), (col, row)):
        for sa in (1, -1):
            for sb in (1, -1):
                variants.append(np.concatenate([sa * a, sb * b]))
    for i, o in enumerate(oris):
        if not any(np.abs(o - v).max() <= 1e-3 for v in variants):
            yield f"frame {i + 1}", "orientation is not the source's (or a 90-degree rotation "\
                "/ flip of it): Cornerstone refuses oblique or perpendicular SEGs"
            return


@rule("OHIF-NUMBERING", SEG, WARNING, "SegmentSequence is sorted and numbered 1..N, also for "
      "LABELMAP: older Cornerstone code indexes segment metadata by position. OHIF 3.13 in a "
      "browser loads label maps with gaps and a segment 0 with every label and voxel right "
      "(docs/interop.md, OHIF column), so this is a warning.",
      hint="segbridge repair renumbers 1..N.",
      source="viewer-behaviour A11, A13; interop/ohif (OHIF 3.13.2)", profiles=OHIF)
def ohif_numbering(ctx: SegContext):
    nums = ctx.segment_numbers
    if 0 in nums:
        yield "SegmentSequence", "a segment numbered 0 shifts every label and colour in " \
            "Cornerstone (background is PixelPaddingValue)"
    elif nums != list(range(1, len(nums) + 1)):
        yield "SegmentSequence", f"numbers {nums[:10]} are not 1..{len(nums)} in order"


@rule("OHIF-SEGMENT-MAX", SEG, ERROR, "Segment numbers and label values are at most 255 "
      "(Cornerstone labelmaps are 8-bit; larger values wrap silently).",
      hint="segbridge repair splits the SEG into several series.",
      source="viewer-behaviour A12", profiles=OHIF)
def ohif_segment_max(ctx: SegContext):
    if ctx.segment_numbers and max(ctx.segment_numbers) > 255:
        yield "SegmentSequence", f"segment number {max(ctx.segment_numbers)} > 255"


@rule("OHIF-FRACTIONAL", SEG, ERROR, "FRACTIONAL pixels are only 0 or MaximumFractionalValue "
      "(Cornerstone throws on real fractions).", hint="For OHIF write --type labelmap or "
      "binary (thresholded), or keep the fractions with --profile slicer|archive.",
      source="viewer-behaviour A14", profiles=OHIF, needs_pixels=True)
def ohif_fractional(ctx: SegContext):
    if ctx.type != "FRACTIONAL":
        return
    m = ctx.ds.get("MaximumFractionalValue")
    for i in range(len(ctx.per_frame)):
        f = ctx.frame(i)
        if f is not None and np.any((f != 0) & (f != m)):
            yield f"frame {i + 1}", "holds soft fractions: 'Fractional segmentations are not " \
                "yet supported'", fractional_fix(ctx.columns)
            return


@rule("OHIF-OVERLAP", SEG, WARNING, "Two segments of one BINARY SEG overlap: OHIF 3.13 in a "
      "browser loads them exactly (docs/interop.md, OHIF column), but the adapters' buffer path "
      "(Cornerstone <= 5.14, older OHIF and other integrations) damages other segments while "
      "merging overlaps.",
      hint="For every OHIF version, split it into several SEG series: segbridge repair "
           "--profile ohif (convert does so by default for ohif).",
      source="viewer-behaviour E (cornerstone3D #2846); interop/ohif (OHIF 3.13.2)",
      profiles=OHIF, needs_pixels=True)
def ohif_overlap(ctx: SegContext):
    if ctx.type == "LABELMAP":
        return
    pair = _overlapping_pair(ctx)
    if pair:
        yield "PixelData", f"segments {pair[0]} and {pair[1]} overlap: voxels of other " \
            "segments are lost on load through the adapters' buffer path (not in OHIF 3.13)"


@rule("OHIF-NATIVE-1BIT-COLUMNS", SEG, ERROR, "Native 1-bit frames need Columns to be a "
      "multiple of 8 (per-frame retrieval fails in Orthanc, wadouri misreads them).",
      hint="For OHIF write --type labelmap (the ohif default; 1-bit RLE loads empty, "
           "OHIF-RLE-1BIT), or write BINARY for another consumer with --profile slicer|archive.",
      source="viewer-behaviour F, D1",
      profiles=OHIF)
def ohif_native_one_bit(ctx: SegContext):
    if ctx.bits == 1 and ctx.transfer_syntax in NATIVE and ctx.columns % 8:
        yield "Columns", f"{ctx.columns} is not a multiple of 8 for native 1-bit frames"


@rule("OHIF-RLE-1BIT", SEG, ERROR, "No RLE-compressed 1-bit frames: Cornerstone 5.14 decodes "
      "them as bit-packed bytes, while the standard (and segbridge) store one byte per pixel; "
      "the segments load empty, silently.", hint="For OHIF write a LABELMAP (the ohif default), "
      "or native BINARY with Columns a multiple of 8.",
      source="interop matrix (@cornerstonejs/adapters 5.14), PS3.5 G.2", profiles=OHIF)
def ohif_rle_one_bit(ctx: SegContext):
    if ctx.bits == 1 and ctx.transfer_syntax == RLE_LOSSLESS:
        yield "TransferSyntaxUID", "RLE with 1-bit frames loads empty in Cornerstone", \
            ohif_binary_fix(ctx.columns)


@rule("OHIF-TRANSFER-SYNTAX", SEG, ERROR, "A transfer syntax Cornerstone decodes: native little "
      "endian or RLE everywhere; JPEG-LS, JPEG 2000 and deflate only in the image-loader path.",
      hint="Use --compression rle or none for OHIF.", source="viewer-behaviour A23, D",
      profiles=OHIF)
def ohif_transfer_syntax(ctx: SegContext):
    ts = ctx.transfer_syntax
    if ts not in (IMPLICIT_LE, EXPLICIT_LE, RLE_LOSSLESS) and ts not in IMAGE_LOADER_ONLY:
        yield "TransferSyntaxUID", f"{ts} is not decoded by Cornerstone", \
            ohif_binary_fix(ctx.columns) if ctx.bits == 1 else None


@rule("OHIF-TRANSFER-SYNTAX-PATH", SEG, WARNING, "JPEG-LS, JPEG 2000 and deflate load only through "
      "OHIF's image loader, not the adapters' buffer path. Measured in OHIF 3.13 over DICOMweb: "
      "JPEG-LS and deflate load exactly; JPEG 2000 does not get through Orthanc 1.10, which "
      "cannot transcode it for OHIF (HTTP 500).",
      hint="Prefer RLE for the widest reach.",
      source="viewer-behaviour A23, D4; interop/ohif (OHIF 3.13.2)", profiles=OHIF)
def ohif_transfer_syntax_path(ctx: SegContext):
    if ctx.transfer_syntax in IMAGE_LOADER_ONLY:
        yield "TransferSyntaxUID", f"{ctx.transfer_syntax} needs OHIF's image-loader path", \
            ohif_binary_fix(ctx.columns) if ctx.bits == 1 else None


@rule("OHIF-FRAGMENTS", SEG, WARNING, "Encapsulated pixel data has one fragment per frame and a "
      "filled Basic Offset Table.", hint="segbridge repair rewrites the fragments.",
      source="viewer-behaviour D3", profiles=OHIF)
def ohif_fragments(ctx: SegContext):
    pixel = ctx.top.get(raw.PIXEL_DATA)
    if pixel is None or (pixel[0].decode() if isinstance(pixel[0], bytes) else pixel[0]) != \
            "encapsulated":
        return
    frags = pixel[1]
    if not frags or len(frags[0]) == 0:
        yield "PixelData", "empty Basic Offset Table"
    if len(frags) - 1 != ctx.number_of_frames:
        yield "PixelData", f"{len(frags) - 1} fragments for {ctx.number_of_frames} frames"


@rule("OHIF-MULTIFRAME-SOURCE", SEG, ERROR, "References to a multi-frame source carry "
      "ReferencedFrameNumber.", hint="Add the frame numbers (segbridge repair --reference).",
      source="viewer-behaviour A20", profiles=OHIF)
def ohif_multiframe_source(ctx: SegContext):
    counts: dict[str, int] = {}
    for i in range(len(ctx.per_frame)):
        uid, frame = ctx.frame_source_uid(i)
        if uid and frame is None:
            counts[uid] = counts.get(uid, 0) + 1
    ref = ctx.reference
    multi = {i.sop_instance_uid for i in ref.source.instances if i.frame_number} if ref else set()
    for uid in counts:
        if uid in multi:
            yield "SourceImageSequence", f"{uid} is a multi-frame image; no " \
                "ReferencedFrameNumber"
            return


@rule("OHIF-EMPTY-SEGMENT", SEG, WARNING, "No described segment is empty (older OHIF hung; "
      "Cornerstone computes NaN centroids).", hint="Drop empty segments for OHIF.",
      source="viewer-behaviour A18", profiles=OHIF)
def ohif_empty_segment(ctx: SegContext):
    if ctx.type == "LABELMAP":
        return
    used = {ctx.frame_segment(i) for i in range(len(ctx.per_frame))}
    empty = [n for n in ctx.segment_numbers if n not in used]
    if empty:
        yield "SegmentSequence", f"segments {empty[:10]} have no frames"


@rule("OHIF-COLOR", SEG, WARNING, "Every segment has RecommendedDisplayCIELabValue (else default "
      "colours and a warning toast).", hint="segbridge repair adds colours.",
      source="viewer-behaviour A19", profiles=OHIF)
def ohif_color(ctx: SegContext):
    for i, s in enumerate(ctx.segments):
        if "RecommendedDisplayCIELabValue" not in s and s.get("SegmentNumber") != 0:
            yield f"SegmentSequence[{i}]", "no RecommendedDisplayCIELabValue"
            return


@rule("OHIF-SINGLE-FRAME", SEG, WARNING, "More than one frame (single-frame SEGs broke dcmjs "
      "normalisers in older OHIF).", hint="Harmless for current OHIF.",
      source="viewer-behaviour D9", profiles=OHIF)
def ohif_single_frame(ctx: SegContext):
    if ctx.number_of_frames == 1:
        yield "NumberOfFrames", "is 1"


@rule("SLICER-TRANSFER-SYNTAX", SEG, ERROR, "A transfer syntax dcmqi (Slicer's SEG reader) "
      "decodes: native, deflate, and RLE for 8/16-bit frames.",
      hint="Use --compression none or deflate for Slicer.", source="interop matrix (dcmqi "
      "1.5: 'Cannot decompress')", profiles=SLICER)
def slicer_transfer_syntax(ctx: SegContext):
    ts = ctx.transfer_syntax
    if ts in NATIVE:
        return
    if ts == RLE_LOSSLESS and ctx.bits in (8, 16):
        return
    yield "TransferSyntaxUID", f"dcmqi cannot decompress {ts} at {ctx.bits} bit"


@rule("SLICER-PLANE-POSITIONS", SEG, ERROR, "Every frame has Plane Position (Patient) and the "
      "SEG a Plane Orientation (Patient): dcmqi (Slicer's SEG reader) computes the volume from "
      "them and cannot read frames placed only by their source images.",
      hint="Write the SEG from a CT / MR series with segbridge (it copies the geometry); a SEG "
      "of 2-D / cine images has none to give.", source="dcmqi Dicom2ItkConverter "
      "(extractBasicSegmentationInfo, getITKImageOrigin)", profiles=SLICER)
def slicer_plane_positions(ctx: SegContext):
    if ctx.tiled or not ctx.per_frame:
        return
    for i in range(len(ctx.per_frame)):
        for tag, name in ((0x00209113, "Plane Position (Patient)"),
                          (0x00209116, "Plane Orientation (Patient)")):
            if not _has(ctx, i, tag):
                yield f"frame {i + 1}", f"no {name}: Slicer cannot place it"
                return


@rule("SLICER-LABELMAP", SEG, WARNING, "LABELMAP (Sup 243) needs dcmqi >= 1.5 / a recent Slicer.",
      hint="Write --type binary for older Slicer versions.", source="peers.md 3.1, Slicer PR #9163",
      profiles=SLICER)
def slicer_labelmap(ctx: SegContext):
    if ctx.type == "LABELMAP":
        yield "SegmentationType", "LABELMAP needs dcmqi >= 1.5"


@rule("SLICER-EMPTY-SEGMENT", SEG, WARNING, "No described segment is empty (Slicer does not "
      "create empty segments from a SEG).", hint="Drop empty segments or expect them missing.",
      source="peers.md 6.2 (QuantitativeReporting #253)", profiles=SLICER)
def slicer_empty_segment(ctx: SegContext):
    yield from ohif_empty_segment(ctx)
