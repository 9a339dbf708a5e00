"""DICOM SEG rules from the standard (PS3.3 A.51, C.8.20; PS3.5 8.1.1, A.4, Annex G).

Sources are given per rule; reference/dicom-digest.md sections in brackets.
"""

from __future__ import annotations

import re

import numpy as np

from ..dicom import rawdicom as raw
from ..dicom.codecs import (
    DEFLATED_IMAGE_FRAME,
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_LS_LOSSLESS,
    NATIVE,
    RLE_LOSSLESS,
)
from ..dicom.codecs.native import native_length
from .context import FG_MACROS, SegContext, number
from .findings import ERROR, INFO, WARNING, rule
from .hints import ohif_binary_fix

SEG = "SEG"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SOP = "1.2.840.10008.5.1.4.1.1.66.7"
KNOWN_TS = {IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE, RLE_LOSSLESS, JPEG_LS_LOSSLESS,
            JPEG_2000_LOSSLESS, JPEG_2000, DEFLATED_IMAGE_FRAME, "1.2.840.10008.1.2.4.81",
            "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
            "1.2.840.10008.1.2.1.98"}
LOSSY_TS = {JPEG_2000, "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.203"}
ONE_BIT_TS = {IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE, RLE_LOSSLESS,
              JPEG_2000_LOSSLESS, JPEG_2000, DEFLATED_IMAGE_FRAME}
CS_RE = re.compile(r"^[A-Z0-9_ ]{0,16}$")


def _empty(v) -> bool:
    return v is None or v == "" or v == []


@rule("SEG-READ", SEG, ERROR, "The object parses: functional groups, pixel data and frames can "
      "be read.", hint="Re-export the SEG; a truncated or malformed file cannot be repaired.",
      source="PS3.5 7, PS3.3 C.7.6.16")
def read_problems(ctx: SegContext):
    for tag, have, need in ctx.walker.truncated:
        what = "pixel data" if tag == raw.PIXEL_DATA else f"element ({tag >> 16:04X},"\
            f"{tag & 0xFFFF:04X})"
        yield what, f"truncated: {have} of {need} bytes present"
    if ctx.read_error and not ctx.walker.truncated:
        yield "file", ctx.read_error


@rule("SEG-FILE-META", SEG, ERROR, "Part 10 file meta is present and agrees with the dataset.",
      hint="Write the file with a preamble and file meta; Media Storage UIDs must equal the SOP "
           "UIDs.", source="PS3.10 7.1")
def file_meta(ctx: SegContext):
    meta = ctx.parsed.meta
    if not ctx.parsed.has_preamble or "TransferSyntaxUID" not in meta:
        yield "file meta", "no DICM preamble / file meta information"
        return
    for mkw, kw in (("MediaStorageSOPClassUID", "SOPClassUID"),
                    ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
        if str(meta.get(mkw) or "") != str(ctx.ds.get(kw) or ""):
            yield f"(0002) {mkw}", f"{meta.get(mkw)!s} differs from {kw} {ctx.ds.get(kw)!s}"


@rule("SEG-SOP-CLASS", SEG, ERROR, "SOP Class is Segmentation (66.4) or Label Map Segmentation "
      "(66.7), Modality is SEG.", hint="Set SOPClassUID from the segmentation type and Modality "
      "to SEG.", source="PS3.3 A.51, C.8.20.1 [digest 1.1, 1.3]")
def sop_class(ctx: SegContext):
    sop = str(ctx.ds.get("SOPClassUID") or "")
    if sop not in (SEG_SOP, LABELMAP_SOP):
        yield "SOPClassUID", f"{sop or 'missing'} is not a segmentation SOP class"
    if str(ctx.ds.get("Modality") or "") != "SEG":
        yield "Modality", f"is {ctx.ds.get('Modality')!r}, must be SEG"


@rule("SEG-TYPE", SEG, ERROR, "SegmentationType fits the SOP class: BINARY/FRACTIONAL in 66.4, "
      "LABELMAP in 66.7.", hint="Use SOP class 66.7 for LABELMAP and 66.4 otherwise.",
      source="PS3.3 C.8.20.2, Sup 243 [digest 1.1]")
def seg_type(ctx: SegContext):
    t, sop = ctx.type, str(ctx.ds.get("SOPClassUID") or "")
    if t not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        yield "SegmentationType", f"{t or 'missing'} is not BINARY, FRACTIONAL or LABELMAP"
    elif (t == "LABELMAP") != (sop == LABELMAP_SOP):
        yield "SegmentationType", f"{t} in SOP class {sop}"


@rule("SEG-BITS", SEG, ERROR, "Bits Allocated/Stored/High Bit match the segmentation type "
      "(BINARY 1/1/0, FRACTIONAL 8/8/7, LABELMAP 8 or 16 with Stored = Allocated).",
      hint="Re-encode the pixels (segbridge repair).", source="PS3.3 C.8.20.2 [digest 1.4]")
def bits(ctx: SegContext):
    ba, bs, hb = (ctx.ds.get(k) for k in ("BitsAllocated", "BitsStored", "HighBit"))
    want = {"BINARY": [(1, 1, 0)], "FRACTIONAL": [(8, 8, 7)],
            "LABELMAP": [(8, 8, 7), (16, 16, 15)]}.get(ctx.type)
    if want and (ba, bs, hb) not in want:
        yield "BitsAllocated/BitsStored/HighBit", f"{ba}/{bs}/{hb} for {ctx.type}"


@rule("SEG-IMAGE-PIXEL", SEG, ERROR, "One sample per pixel, unsigned, MONOCHROME2 (LABELMAP may "
      "use PALETTE COLOR).", hint="Fix the Image Pixel attributes.",
      source="PS3.3 C.8.20.2 [digest 1.4]")
def image_pixel(ctx: SegContext):
    if ctx.ds.get("SamplesPerPixel") != 1:
        yield "SamplesPerPixel", f"is {ctx.ds.get('SamplesPerPixel')}, must be 1"
    if ctx.ds.get("PixelRepresentation") != 0:
        yield "PixelRepresentation", f"is {ctx.ds.get('PixelRepresentation')}, must be 0"
    pi = str(ctx.ds.get("PhotometricInterpretation") or "")
    allowed = ("MONOCHROME2", "PALETTE COLOR") if ctx.type == "LABELMAP" else ("MONOCHROME2",)
    if pi not in allowed:
        yield "PhotometricInterpretation", f"{pi or 'missing'} not allowed for {ctx.type}"


@rule("SEG-IMAGE-TYPE", SEG, ERROR, "ImageType is DERIVED\\PRIMARY.",
      hint="Set ImageType to DERIVED\\PRIMARY.", source="PS3.3 C.8.20.2 [digest 1.4]")
def image_type(ctx: SegContext):
    it = ctx.ds.get("ImageType")
    vals = it if isinstance(it, list) else [it]
    if [str(v) for v in vals][:2] != ["DERIVED", "PRIMARY"]:
        yield "ImageType", f"is {vals}"


@rule("SEG-FRACTIONAL", SEG, ERROR, "A FRACTIONAL SEG has SegmentationFractionalType "
      "(PROBABILITY/OCCUPANCY) and MaximumFractionalValue 1..255.",
      hint="Add both attributes.", source="PS3.3 C.8.20.2 [digest 1.4]")
def fractional(ctx: SegContext):
    if ctx.type != "FRACTIONAL":
        return
    if str(ctx.ds.get("SegmentationFractionalType") or "") not in ("PROBABILITY", "OCCUPANCY"):
        yield "SegmentationFractionalType", f"is {ctx.ds.get('SegmentationFractionalType')!r}"
    m = ctx.ds.get("MaximumFractionalValue")
    if not isinstance(m, int) or not 1 <= m <= 255:
        yield "MaximumFractionalValue", f"is {m!r}, must be 1..255"


@rule("SEG-FRACTIONAL-RANGE", SEG, ERROR, "No FRACTIONAL pixel exceeds MaximumFractionalValue.",
      hint="Clip or rescale the fractions.", source="PS3.3 C.8.20.2.3", needs_pixels=True)
def fractional_range(ctx: SegContext):
    m = ctx.ds.get("MaximumFractionalValue")
    if ctx.type != "FRACTIONAL" or not isinstance(m, int):
        return
    for i in range(len(ctx.per_frame)):
        f = ctx.frame(i)
        if f is not None and int(f.max(initial=0)) > m:
            yield f"frame {i + 1}", f"value {int(f.max())} above MaximumFractionalValue {m}"
            return


@rule("SEG-SEGMENT-NUMBERS", SEG, ERROR, "Segment numbers are unique; BINARY/FRACTIONAL number "
      "them 1..N in order; only LABELMAP may use 0.", hint="segbridge repair renumbers 1..N.",
      source="PS3.3 C.8.20.2.4, C.8.20.4 [digest 1.4, 1.5]")
def segment_numbers(ctx: SegContext):
    nums = ctx.segment_numbers
    if not ctx.segments:
        yield "SegmentSequence", "missing or empty"
        return
    if len(set(nums)) != len(nums):
        yield "SegmentSequence", f"duplicate segment numbers {sorted(nums)}"
    if ctx.type in ("BINARY", "FRACTIONAL") and nums != list(range(1, len(nums) + 1)):
        yield "SegmentSequence", f"numbers {nums[:10]} are not 1..{len(nums)} in order"


@rule("SEG-SEGMENT-ITEM", SEG, ERROR, "Every segment has number, label, algorithm type (and "
      "name unless MANUAL), one category code and one type code.",
      hint="Complete the Segment Description items (segbridge repair adds what it can).",
      source="PS3.3 C.8.20.4 [digest 1.5]")
def segment_items(ctx: SegContext):
    for i, s in enumerate(ctx.segments):
        where = f"SegmentSequence[{i}]"
        for kw in ("SegmentNumber", "SegmentLabel", "SegmentAlgorithmType"):
            if _empty(s.get(kw)):
                yield f"{where}.{kw}", "missing"
        algo = str(s.get("SegmentAlgorithmType") or "")
        if algo and algo not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
            yield f"{where}.SegmentAlgorithmType", f"{algo!r} is not a defined term"
        if algo in ("AUTOMATIC", "SEMIAUTOMATIC") and _empty(s.get("SegmentAlgorithmName")):
            yield f"{where}.SegmentAlgorithmName", f"required for {algo} segments"
        for kw in ("SegmentedPropertyCategoryCodeSequence", "SegmentedPropertyTypeCodeSequence"):
            seq = s.get(kw) or []
            if len(seq) != 1:
                yield f"{where}.{kw}", f"has {len(seq)} items, needs exactly 1"


@rule("SEG-CODE-ITEM", SEG, ERROR, "Every code item has a code value, coding scheme and "
      "meaning.", hint="Complete the code items.", source="PS3.3 8.8 (Code Sequence macro)")
def code_items(ctx: SegContext):
    keys = ("SegmentedPropertyCategoryCodeSequence", "SegmentedPropertyTypeCodeSequence",
            "AnatomicRegionSequence")
    for i, s in enumerate(ctx.segments):
        for kw in keys:
            for j, c in enumerate(s.get(kw) or []):
                value = c.get("CodeValue") or c.get("LongCodeValue") or c.get("URNCodeValue")
                if _empty(value) or _empty(c.get("CodingSchemeDesignator")) or \
                        _empty(c.get("CodeMeaning")):
                    yield f"SegmentSequence[{i}].{kw}[{j}]", "incomplete code item"


@rule("SEG-TRACKING", SEG, ERROR, "TrackingID and TrackingUID come together.",
      hint="Add the missing one or drop both.", source="PS3.3 C.8.20.4 [digest 1.5]")
def tracking(ctx: SegContext):
    for i, s in enumerate(ctx.segments):
        if _empty(s.get("TrackingID")) != _empty(s.get("TrackingUID")):
            yield f"SegmentSequence[{i}]", "only one of TrackingID / TrackingUID"


@rule("SEG-CONTENT-ID", SEG, ERROR, "Content Identification: InstanceNumber and a ContentLabel "
      "that is a valid CS (A-Z, 0-9, _ and space, at most 16 characters).",
      hint="Set ContentLabel like SEGMENTATION.", source="PS3.3 C.8.20.2, 10.9 [digest 1.4]")
def content_id(ctx: SegContext):
    if _empty(ctx.ds.get("InstanceNumber")):
        yield "InstanceNumber", "missing"
    label = ctx.ds.get("ContentLabel")
    if _empty(label) or not CS_RE.match(str(label)):
        yield "ContentLabel", f"{label!r} is not a valid CS value"


@rule("SEG-EQUIPMENT", SEG, ERROR, "Enhanced General Equipment: Manufacturer, "
      "ManufacturerModelName, DeviceSerialNumber and SoftwareVersions are not empty.",
      hint="Fill the four equipment attributes.", source="PS3.3 C.7.5.2 [digest 1.8]")
def equipment(ctx: SegContext):
    for kw in ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber",
               "SoftwareVersions"):
        if _empty(ctx.ds.get(kw)):
            yield kw, "missing or empty"


@rule("SEG-IDENTITY", SEG, ERROR, "Study, series and instance UIDs and the SeriesNumber are "
      "present.", hint="A SEG needs its own series in the source study.",
      source="PS3.3 C.7.2.1, C.7.3.1, C.8.20.1, C.12.1 [digest 1.3]")
def identity(ctx: SegContext):
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SeriesNumber"):
        if _empty(ctx.ds.get(kw)):
            yield kw, "missing or empty"


@rule("SEG-FRAME-COUNT", SEG, ERROR, "NumberOfFrames equals the per-frame functional group items "
      "and the frames in the pixel data.", hint="segbridge repair rewrites the object.",
      source="PS3.3 C.7.6.16 [viewer A16]")
def frame_count(ctx: SegContext):
    n = ctx.number_of_frames
    if "PerFrameFunctionalGroupsSequence" in ctx.ds and len(ctx.per_frame) != n:
        yield "PerFrameFunctionalGroupsSequence", f"{len(ctx.per_frame)} items for " \
            f"NumberOfFrames {n}"
    pixel = ctx.top.get(raw.PIXEL_DATA)
    if pixel is None:
        yield "PixelData", "missing"
        return
    kind = pixel[0].decode() if isinstance(pixel[0], bytes) else pixel[0]
    if kind == "encapsulated":
        frags = pixel[1][1:]
        if ctx.transfer_syntax in (RLE_LOSSLESS, DEFLATED_IMAGE_FRAME) and len(frags) != n:
            yield "PixelData", f"{len(frags)} fragments for {n} frames"
        elif len(frags) < n:
            yield "PixelData", f"only {len(frags)} fragments for {n} frames"


@rule("SEG-PIXEL-LENGTH", SEG, ERROR, "Native pixel data has exactly the bytes its frames need "
      "(1-bit frames packed continuously across frames, padded once to even length).",
      hint="segbridge repair re-packs the bits.", source="PS3.5 8.1.1, Annex D [digest 3.2]")
def pixel_length(ctx: SegContext):
    pixel = ctx.top.get(raw.PIXEL_DATA)
    if pixel is None or ctx.transfer_syntax not in NATIVE or ctx.rows * ctx.columns == 0:
        return
    n, r, c, b = ctx.number_of_frames, ctx.rows, ctx.columns, ctx.bits
    if b not in (1, 8, 16):
        return
    have = len(pixel[1])
    need = native_length(n, r, c, b)
    if have in (need, need + need % 2):
        return
    if b == 1 and (r * c) % 8 and have in (n * ((r * c + 7) // 8), n * ((r * c + 7) // 8) + 1):
        yield "PixelData", f"frames are padded to whole bytes one by one ({have} bytes); the " \
            f"standard packs them continuously ({need} bytes)"
    else:
        yield "PixelData", f"{have} bytes, {n} frames of {r}x{c} at {b} bit need {need}"


@rule("SEG-SEGMENT-IDENTIFICATION", SEG, ERROR, "Every BINARY/FRACTIONAL frame names exactly one "
      "described segment; LABELMAP frames name none.", hint="segbridge repair rewrites the "
      "functional groups.", source="PS3.3 C.8.20.3, Sup 243 [digest 1.6, viewer A10]")
def segment_identification(ctx: SegContext):
    known = set(ctx.segment_numbers)
    for i, fg in enumerate(ctx.per_frame):
        seq = fg.get(0x0062000A) or ctx.shared_raw.get(0x0062000A)
        if ctx.type == "LABELMAP":
            if seq:
                yield f"frame {i + 1}", "SegmentIdentificationSequence in a LABELMAP SEG"
                return
            continue
        if not seq or 0x0062000B not in seq[0]:
            yield f"frame {i + 1}", "no ReferencedSegmentNumber"
            return
        if len(seq) != 1:
            yield f"frame {i + 1}", f"SegmentIdentificationSequence has {len(seq)} items"
        n = ctx.walker.ints(seq[0][0x0062000B])[0]
        if n not in known:
            yield f"frame {i + 1}", f"references segment {n}, which SegmentSequence lacks"
            return


@rule("SEG-FUNCTIONAL-GROUPS", SEG, ERROR, "A functional group is either shared or per-frame, "
      "never both; Frame Content is never shared.", hint="Move the macro to one place.",
      source="PS3.3 C.7.6.16 [digest 1.7]")
def functional_groups(ctx: SegContext):
    for tag, name in FG_MACROS.items():
        if tag in ctx.shared_raw and any(tag in fg for fg in ctx.per_frame):
            yield name, "present in both shared and per-frame functional groups"
    if 0x00209111 in ctx.shared_raw:
        yield "SharedFunctionalGroupsSequence", "contains FrameContentSequence"


def _has(ctx: SegContext, i: int, tag: int) -> bool:
    fg = ctx.per_frame[i] if i < len(ctx.per_frame) else {}
    return tag in fg or tag in ctx.shared_raw


@rule("SEG-GEOMETRY", SEG, ERROR, "Pixel Measures, Plane Position and Plane Orientation are on "
      "every frame that has no Derivation Image, and on all frames or none: a SEG with a Frame "
      "of Reference may leave them out only when every frame references its source pixels "
      "(a 2-D image without plane positions).",
      hint="Add the geometry functional groups from the source images.",
      source="PS3.3 A.51.5 (Table A.51-2, 2024c) [digest 1.6]")
def geometry(ctx: SegContext):
    if ctx.tiled:
        return  # slide frames are placed by Plane Position (Slide): SLIDE-TILE-POSITIONS
    tags = (0x00289110, 0x00209113, 0x00209116)
    n = len(ctx.per_frame)
    placed = [all(_has(ctx, i, t) for t in tags) for i in range(n)]
    if not any(placed) and all(_has(ctx, i, 0x00089124) for i in range(n)):
        return  # each frame is tied to its source frame's pixels (A.51.5.1)
    for i in range(n):
        if not placed[i]:
            missing = next(t for t in tags if not _has(ctx, i, t))
            yield f"frame {i + 1}", f"no {FG_MACROS[missing]}"
            return


@rule("SEG-PATIENT-ORIENTATION", SEG, ERROR, "Without patient geometry (no Plane "
      "Orientation), PatientOrientation is present (General Image, Type 2C).",
      hint="Add PatientOrientation (may be empty) or the plane functional groups.",
      source="PS3.3 C.7.6.1 (dciodvfy)")
def patient_orientation(ctx: SegContext):
    if not ctx.per_frame:
        return
    if not any(_has(ctx, i, 0x00209116) for i in range(len(ctx.per_frame))) and \
            "PatientOrientation" not in ctx.ds:
        yield "PatientOrientation", "missing while frames carry no Plane Orientation"


@rule("SEG-PIXEL-MEASURES", SEG, WARNING, "Pixel Measures give PixelSpacing and "
      "SliceThickness.", hint="Copy both from the source images (highdicom refuses the file "
      "otherwise).", source="PS3.3 C.7.6.16.2.1")
def pixel_measures(ctx: SegContext):
    seqs = []
    if 0x00289110 in ctx.shared_raw:
        seqs.append(("shared", ctx.shared_raw[0x00289110]))
    elif ctx.per_frame and 0x00289110 in ctx.per_frame[0]:
        seqs.append(("frame 1", ctx.per_frame[0][0x00289110]))
    for where, seq in seqs:
        item = seq[0] if seq else {}
        for tag, name in ((0x00280030, "PixelSpacing"), (0x00180050, "SliceThickness")):
            if tag not in item:
                why = ""
                if tag == 0x00180050 and _empty(ctx.ds.get("FrameOfReferenceUID")):
                    why = (" (not required without a Frame of Reference, CP 1426; highdicom "
                           "<= 0.28 refuses such files all the same)")
                yield f"PixelMeasuresSequence ({where})", f"no {name}{why}"


@rule("SEG-DIMENSIONS", SEG, ERROR, "Multi-frame Dimension module: DimensionIndexSequence present "
      "and every frame's DimensionIndexValues has one 1-based value per dimension.",
      hint="segbridge repair rewrites the dimension indices.",
      source="PS3.3 C.7.6.17, C.7.6.16.2.2 [digest 1.7]")
def dimensions(ctx: SegContext):
    if str(ctx.ds.get("DimensionOrganizationType") or "") == "TILED_FULL":
        return
    if not ctx.ds.get("DimensionOrganizationSequence"):
        yield "DimensionOrganizationSequence", "missing"
    dims = ctx.ds.get("DimensionIndexSequence") or []
    if not dims:
        yield "DimensionIndexSequence", "missing"
        return
    for j, d in enumerate(dims):
        pointer, group = d.get("DimensionIndexPointer"), d.get("FunctionalGroupPointer")
        if pointer in (0x00209111, 0x00209157):
            yield f"DimensionIndexSequence[{j}]", "points at Frame Content"
        elif pointer is None:
            yield f"DimensionIndexSequence[{j}]", "no DimensionIndexPointer"
        elif isinstance(pointer, int) and isinstance(group, int) and ctx.per_frame:
            fg = ctx.per_frame[0].get(group) or ctx.shared_raw.get(group)
            if not fg:
                yield f"DimensionIndexSequence[{j}]", f"FunctionalGroupPointer " \
                    f"{raw.tag_str(group)} is in neither frame 1's nor the shared functional groups"
            elif pointer not in fg[0]:
                yield f"DimensionIndexSequence[{j}]", f"DimensionIndexPointer " \
                    f"{raw.tag_str(pointer)} is not in {raw.tag_str(group)} of frame 1"
    for i, fg in enumerate(ctx.per_frame):
        v = raw.first(fg, 0x00209111, 0x00209157)
        if v is None:
            yield f"frame {i + 1}", "no DimensionIndexValues"
            return
        vals = ctx.walker.ints(v)
        if len(vals) != len(dims) or min(vals, default=1) < 1:
            yield f"frame {i + 1}", f"DimensionIndexValues {vals} for {len(dims)} dimensions"
            return


@rule("SEG-READER", SEG, ERROR, "segbridge's SEG reader accepts the file: frames can be "
      "placed (on the --reference series when given), values are numbers, geometry is finite "
      "with positive spacing.", hint="Fix what the message names; `segbridge convert` refuses "
      "the file until then.", source="segbridge reader (issue 11)", needs_pixels=True)
def reader(ctx: SegContext):
    if ctx.seg is None:
        return  # SEG-READ reports why the file does not parse
    from ..dicom.seg_reader import read_seg
    from ..errors import Report, SegbridgeError

    ctx.pixels_ok  # noqa: B018  (decodes the frames first: SEG-READ reports what fails there)
    try:
        if ctx.tiled:
            from ..slide.seg_read import read_every_tile

            read_every_tile(ctx.path)
            return
        read_seg(ctx.path, ctx.reference, report=Report())
    except SegbridgeError as exc:
        if str(exc) not in (ctx.read_error, ctx.decode_error):
            yield "file", str(exc)


@rule("SEG-FRAME-OF-REFERENCE", SEG, ERROR, "A SEG with plane positions has a Frame of "
      "Reference UID, the same as its source images.", hint="Copy FrameOfReferenceUID from the "
      "source series.", source="PS3.3 A.51.1, C.7.4.1 [digest 1.2, 1.8]")
def frame_of_reference(ctx: SegContext):
    for_uid = str(ctx.ds.get("FrameOfReferenceUID") or "")
    if not for_uid and any(_has(ctx, i, 0x00209113) for i in range(len(ctx.per_frame))):
        yield "FrameOfReferenceUID", "missing although frames have plane positions"
    ref = ctx.reference
    if for_uid and ref is not None and ref.grid.frame_of_reference_uid and \
            for_uid != ref.grid.frame_of_reference_uid:
        yield "FrameOfReferenceUID", f"{for_uid} differs from the reference series' " \
            f"{ref.grid.frame_of_reference_uid}"


@rule("SEG-REFERENCES", SEG, ERROR, "Every frame's source image is an instance of the given "
      "reference series.", hint="Convert against the right series, or repair with --reference.",
      source="PS3.3 C.7.6.16.2.6 [viewer A5, A3]", needs_reference=True)
def references(ctx: SegContext):
    src = ctx.reference.source
    known = _instance_frames(src)  # a known instance with a wrong frame: SEG-FRAME-NUMBER
    missing = [i for i in range(len(ctx.per_frame))
               if (u := ctx.frame_source_uid(i))[0] and u[0] not in known and
               src.index_of(u[0], u[1]) is None]
    if missing:
        i = missing[0]
        yield f"frame {i + 1}", f"{len(missing)} frames reference instances not in series " \
            f"{src.series_instance_uid} (first: {ctx.frame_source_uid(i)[0]})"


def _instance_frames(src) -> dict[str, int]:
    """SOP Instance UID -> number of frames of that instance in the reference (0: single)."""
    out: dict[str, int] = {}
    for inst in src.instances:
        out[inst.sop_instance_uid] = max(out.get(inst.sop_instance_uid, 0),
                                         inst.frame_number or 0)
    return out


@rule("SEG-FRAME-NUMBER", SEG, ERROR, "A frame's ReferencedFrameNumber names a frame of the "
      "referenced source instance: 1..NumberOfFrames, none for a single-frame image, and "
      "present when a 2-D / cine source has several frames.", hint="Reference the source "
      "frame the segmentation frame was drawn on (convert against the right series).",
      source="PS3.3 C.7.6.16.2.6 (Derivation Image: Referenced Frame Number, Table 10-3 "
      "Image SOP Instance Reference Macro) [digest 1.6]", needs_reference=True)
def frame_number(ctx: SegContext):
    src = ctx.reference.source
    frames = _instance_frames(src)
    for i in range(len(ctx.per_frame)):
        uid, n = ctx.frame_source_uid(i)
        if not uid or uid not in frames:
            continue  # SEG-REFERENCES
        have = frames[uid]
        if n is not None and (n < 1 or n > max(have, 1)):
            yield f"frame {i + 1}", f"ReferencedFrameNumber {n} of {uid}, which has " \
                f"{max(have, 1)} frame(s)"
            return
        if n is None and have > 1 and not src.has_geometry:
            yield f"frame {i + 1}", f"no ReferencedFrameNumber, but {uid} is a {have}-frame " \
                "2-D / cine image: the frame it segments is unknown"
            return


@rule("SEG-FRAME-SPACE-GEOMETRY", SEG, ERROR, "A SEG on 2-D / cine images without patient "
      "geometry invents none: no Plane Position / Orientation, and a FrameOfReferenceUID only "
      "when the source images have one; its frames have the source's rows and columns.",
      hint="Write the SEG again from the source images (segbridge writes frame-space SEGs "
      "without patient geometry).", source="PS3.3 A.51.1, A.51.5, C.7.6.16.2.3, C.7.6.16.2.4",
      needs_reference=True)
def frame_space_geometry(ctx: SegContext):
    ref = ctx.reference
    if ref.source.has_geometry:
        return
    for_uid = str(ctx.ds.get("FrameOfReferenceUID") or "")
    if for_uid and for_uid != (ref.source.frame_of_reference_uid or ""):
        yield "FrameOfReferenceUID", f"{for_uid}, but the source images have " + (
            f"{ref.source.frame_of_reference_uid}" if ref.source.frame_of_reference_uid
            else "no Frame of Reference")
    for tag in (0x00209113, 0x00209116):
        if any(_has(ctx, i, tag) for i in range(len(ctx.per_frame))):
            yield FG_MACROS[tag], "present, but the source images have no patient geometry"
    _, rows, cols = ref.grid.shape
    if (ctx.rows, ctx.columns) != (rows, cols):
        yield "Rows/Columns", f"{ctx.rows}x{ctx.columns}, the source images {rows}x{cols} " \
            "(without a Frame of Reference, SEG pixels correspond 1:1 to source pixels)"


@rule("SEG-FRAME-SPACE-PIXEL-MEASURES", SEG, WARNING, "A SEG on 2-D images whose source has "
      "PixelSpacing gives it in Pixel Measures (equal to the source's).", hint="Copy "
      "PixelSpacing from the source image into the shared Pixel Measures functional group.",
      source="PS3.3 A.51.5 (Table A.51-2), C.7.6.16.2.1", needs_reference=True)
def frame_space_pixel_measures(ctx: SegContext):
    src = ctx.reference.source
    if src.has_geometry or not src.pixel_spacing_strings:
        return
    seq = ctx.shared_raw.get(0x00289110)
    if seq is None and ctx.per_frame:
        seq = ctx.per_frame[0].get(0x00289110)
    item = seq[0] if seq else None
    if item is None or 0x00280030 not in item:
        yield "PixelMeasuresSequence", "missing, but the source image has PixelSpacing " \
            + "\\".join(src.pixel_spacing_strings)
        return
    text = ctx.walker.text(item[0x00280030])
    try:
        got = [float(v) for v in text.split("\\")]
        want = [float(v) for v in src.pixel_spacing_strings]
    except ValueError:
        yield "PixelMeasuresSequence", f"PixelSpacing '{text}' is not two numbers"
        return
    if len(got) != 2 or any(abs(a - b) > 1e-4 * max(abs(b), 1)
                            for a, b in zip(got, want, strict=True)):
        yield "PixelMeasuresSequence", f"PixelSpacing {text}, the source image's " \
            + "\\".join(src.pixel_spacing_strings)


@rule("SEG-REFERENCE-POSITION", SEG, ERROR, "A frame's plane position equals the position of the "
      "source image it references (within 1e-3 mm).", hint="The frame and its reference "
      "disagree; re-create the SEG (viewers place it by the reference, others by position).",
      source="PS3.3 C.7.6.16.2.3, C.7.6.16.2.6 [viewer A6]", needs_reference=True)
def reference_position(ctx: SegContext):
    src, grid = ctx.reference.source, ctx.reference.grid
    positions = grid.slice_positions()
    for i, fi in enumerate(ctx.frames):
        uid, frame = ctx.frame_source_uid(i)
        if fi.position is None or not uid:
            continue
        k = src.index_of(uid, frame)
        if k is None:
            continue
        d = float(np.abs(fi.position - positions[k]).max())
        if d > 1e-3:
            yield f"frame {i + 1}", f"position is {d:.3f} mm away from its source image {uid}"
            return


@rule("SEG-COMMON-INSTANCE-REFERENCE", SEG, ERROR, "With Derivation Image functional groups, "
      "ReferencedSeriesSequence lists every referenced source instance.",
      hint="segbridge repair adds ReferencedSeriesSequence.",
      source="PS3.3 A.51 (Common Instance Reference C.12.2) [digest 1.8]")
def common_instance_reference(ctx: SegContext):
    uids = {u for i in range(len(ctx.per_frame)) if (u := ctx.frame_source_uid(i)[0])}
    if not uids:
        return
    rss = ctx.ds.get("ReferencedSeriesSequence") or []
    other = ctx.ds.get("StudiesContainingOtherReferencedInstancesSequence") or []
    if not rss and not other:
        yield "ReferencedSeriesSequence", "missing although frames reference source images"
        return
    listed = set()
    for s in list(rss) + [se for st in other for se in (st.get("ReferencedSeriesSequence") or [])]:
        for r in s.get("ReferencedInstanceSequence") or []:
            listed.add(str(r.get("ReferencedSOPInstanceUID")))
    unlisted = uids - listed
    if unlisted:
        yield "ReferencedSeriesSequence", f"{len(unlisted)} referenced instances are not listed"


@rule("SEG-LABELMAP-VALUES", SEG, ERROR, "Every LABELMAP pixel value is described by a segment "
      "(the PixelPaddingValue background excepted). An undescribed 0 is an error too: PS3.3 "
      "C.8.20.2.3 requires an item for every value actually encoded and its note names 0 "
      "explicitly; Sup 243 marks the background with PixelPaddingValue. segbridge reads such an "
      "undescribed 0 as the background (as OHIF 3.13, which writes it, does).",
      hint="Describe every value: segbridge repair writes an undescribed 0 as the "
           "PixelPaddingValue background and any other value as an undescribed segment.",
      source="PS3.3 C.8.20.2.3, Sup 243 [digest 2]", needs_pixels=True)
def labelmap_values(ctx: SegContext):
    if ctx.type != "LABELMAP":
        return
    described = set(ctx.segment_numbers)
    ppv = ctx.ds.get("PixelPaddingValue")
    if ppv is not None:
        described.add(number(ppv))
    seen: set[int] = set()
    for i in range(len(ctx.per_frame)):
        f = ctx.frame(i)
        if f is not None:
            seen.update(int(v) for v in np.flatnonzero(np.bincount(f.ravel())))
    extra = sorted(seen - described)
    if 0 in extra:
        yield "PixelData", "value 0 (background) is described by no segment item and no " \
            "PixelPaddingValue; read as the background"
    others = [v for v in extra if v != 0]
    if others:
        yield "PixelData", f"values {others[:10]} are not described by any segment"


@rule("SEG-OVERLAP-FLAG", SEG, ERROR, "SegmentsOverlap is truthful: NO (or a LABELMAP) means no "
      "voxel belongs to two segments.", hint="Set SegmentsOverlap to YES or UNDEFINED.",
      source="PS3.3 C.8.20.2 [digest 1.4]", needs_pixels=True)
def overlap_flag(ctx: SegContext):
    flag = str(ctx.ds.get("SegmentsOverlap") or "")
    if ctx.type == "LABELMAP":
        if flag and flag != "NO":
            yield "SegmentsOverlap", f"is {flag} in a LABELMAP SEG"
        return
    if flag == "NO" and _overlapping_pair(ctx):
        a, b = _overlapping_pair(ctx)
        yield "SegmentsOverlap", f"is NO but segments {a} and {b} overlap"


def _overlapping_pair(ctx: SegContext) -> tuple[int, int] | None:
    """Two segments sharing a voxel, found by comparing frames on the same source plane."""
    cached = getattr(ctx, "_overlap_pair", False)
    if cached is not False:
        return cached
    by_plane: dict = {}
    for i, fi in enumerate(ctx.frames):
        key = ctx.frame_source_uid(i) if ctx.frame_source_uid(i)[0] else (
            tuple(np.round(fi.position, 3)) if fi.position is not None else i)
        by_plane.setdefault(key, []).append(i)
    result = None
    for idx in by_plane.values():
        if len(idx) < 2:
            continue
        occupied: dict = {}
        for i in idx:
            f = ctx.frame(i)
            if f is None:
                continue
            m = f != 0
            for n, o in occupied.items():
                if n != ctx.frame_segment(i) and np.any(o & m):
                    result = (n, ctx.frame_segment(i))
                    break
            if result:
                break
            seg = ctx.frame_segment(i)
            occupied[seg] = occupied[seg] | m if seg in occupied else m
        if result:
            break
    ctx._overlap_pair = result
    return result


@rule("SEG-LOSSY", SEG, ERROR, "LossyImageCompression is 00 or 01, and 01 when the transfer "
      "syntax is lossy.", hint="Use a lossless transfer syntax.",
      source="PS3.3 C.8.20.2.2 [digest 1.4]")
def lossy(ctx: SegContext):
    v = str(ctx.ds.get("LossyImageCompression") or "")
    if v not in ("00", "01"):
        yield "LossyImageCompression", f"is {v!r}, must be 00 or 01"
    elif ctx.transfer_syntax in LOSSY_TS and v != "01":
        yield "LossyImageCompression", f"00 with lossy-capable transfer syntax " \
            f"{ctx.transfer_syntax}"


@rule("SEG-TRANSFER-SYNTAX", SEG, ERROR, "The transfer syntax can hold the pixels: 1-bit frames "
      "only native, deflate, RLE or JPEG 2000; no lossy JPEG.", hint="Re-encode (segbridge "
      "repair).", source="PS3.5 8.2 (Tables 8.2.3-1, 8.2.4-1) [digest 3.1]")
def transfer_syntax(ctx: SegContext):
    ts = ctx.transfer_syntax
    if ts not in KNOWN_TS:
        yield "TransferSyntaxUID", f"{ts} is not a transfer syntax for segmentations"
    elif ctx.bits == 1 and ts not in ONE_BIT_TS:
        yield "TransferSyntaxUID", f"{ts} cannot hold 1-bit BINARY frames"


@rule("SEG-TRANSFER-SYNTAX-ADVICE", SEG, WARNING, "Prefer lossless, current transfer syntaxes: "
      "not Explicit VR Big Endian (retired), not lossy-capable JPEG 2000 / JPEG-LS near-lossless.",
      hint="Re-encode with rle, jpegls or jpeg2000 (lossless).",
      source="PS3.5 A.3 (retired), C.8.20.2.2 note")
def transfer_syntax_advice(ctx: SegContext):
    fix = _lossless_fix(ctx)
    if ctx.transfer_syntax == EXPLICIT_BE:
        yield "TransferSyntaxUID", "Explicit VR Big Endian is retired and breaks viewers", fix
    elif ctx.transfer_syntax in LOSSY_TS:
        yield "TransferSyntaxUID", f"{ctx.transfer_syntax} is lossy-capable", fix


def _lossless_fix(ctx: SegContext) -> str:
    """Re-encoding advice the active profile accepts (see the OHIF-/SLICER-TRANSFER-SYNTAX
    rules)."""
    if ctx.profile == "ohif":
        if ctx.bits == 1:
            return ohif_binary_fix(ctx.columns)
        return "Re-encode with --compression rle or none (segbridge repair --profile ohif)."
    if ctx.profile == "slicer":
        return "Re-encode with --compression none or deflate (segbridge repair --profile slicer)."
    return "Re-encode with --compression rle, jpegls or jpeg2000 (lossless; segbridge repair)."


@rule("SEG-PALETTE", SEG, ERROR, "PALETTE COLOR only in LABELMAP, with the Palette Color LUT and "
      "without RecommendedDisplayCIELabValue.", hint="Use MONOCHROME2 or add the LUT.",
      source="PS3.3 A.51 (Palette Color LUT C.7.9), Sup 243 [digest 2]")
def palette(ctx: SegContext):
    if str(ctx.ds.get("PhotometricInterpretation") or "") != "PALETTE COLOR":
        return
    if ctx.type != "LABELMAP":
        yield "PhotometricInterpretation", "PALETTE COLOR outside a LABELMAP"
    if "RedPaletteColorLookupTableDescriptor" not in ctx.ds:
        yield "PaletteColorLookupTable", "missing"
    for i, s in enumerate(ctx.segments):
        if "RecommendedDisplayCIELabValue" in s:
            yield f"SegmentSequence[{i}]", "RecommendedDisplayCIELabValue with PALETTE COLOR"
            return


@rule("SEG-EMPTY-SEGMENT", SEG, INFO, "Every described segment has at least one frame.",
      hint="Empty segments are valid but some viewers mishandle them.",
      source="PS3.3 C.8.20.2 (highdicom #338)")
def empty_segments(ctx: SegContext):
    if ctx.type == "LABELMAP" or (ctx.tiled and not ctx.per_frame):
        return  # TILED_FULL holds every tile of every segment
    used = {ctx.frame_segment(i) for i in range(len(ctx.per_frame))}
    for n in ctx.segment_numbers:
        if n not in used:
            yield f"segment {n}", "has no frames"


@rule("SEG-DUPLICATE-FRAMES", SEG, WARNING, "No two frames hold the same segment on the same "
      "source image (or, without source references, the same plane position). PS3.3 C.8.20.2 "
      "and C.8.20.3 give each frame one segment on one plane and say nothing of a second copy: "
      "a reader may take either frame or both (segbridge combines them). OHIF 3.13 writes this "
      "when a segment lives in a labelmap layer under another segment's label value.",
      hint="Re-export with one frame per segment and plane; `segbridge repair` merges the "
           "frames (check the result: the two frames may hold different segments).",
      source="PS3.3 C.8.20.2, C.8.20.3, C.7.6.16.2.6")
def duplicate_frames(ctx: SegContext):
    by_key: dict = {}
    for i, fi in enumerate(ctx.frames):
        seg = None if ctx.type == "LABELMAP" else ctx.frame_segment(i)
        uid, frame = ctx.frame_source_uid(i)
        if uid:
            plane = (uid, frame)
        elif fi.position is not None:
            plane = tuple(np.round(fi.position, 3))
        else:
            continue
        by_key.setdefault((seg, plane), []).append(i)
    per_segment: dict = {}
    for (seg, plane), idx in by_key.items():
        if len(idx) > 1:
            per_segment.setdefault(seg, []).append((plane, idx))
    for seg, dups in sorted(per_segment.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        plane, idx = min(dups, key=lambda d: d[1][0])
        where = f"segment {seg}" if seg is not None else "PixelData"
        on = f"source image {plane[0]}" if isinstance(plane[0], str) else \
            f"position {list(plane)}"
        planes = "1 plane has" if len(dups) == 1 else f"{len(dups)} planes have"
        yield where, f"{planes} two or more frames (first: frames " \
            f"{', '.join(str(i + 1) for i in idx)} on {on})"


@rule("SEG-DUPLICATE-LABELS", SEG, WARNING, "Segment labels are distinct. The standard does not "
      "require it (PS3.3 C.8.20.4), but the label is what viewers show and what users and "
      "scripts pick a segment by, so equal labels cannot be told apart; they usually mean an "
      "exporter wrote one segment twice (OHIF 3.13).",
      hint="Give each segment its own SegmentLabel (segbridge convert --meta sets the labels).",
      source="PS3.3 C.8.20.4")
def duplicate_labels(ctx: SegContext):
    by_label: dict[str, list[int]] = {}
    for s in ctx.segments:
        label = str(s.get("SegmentLabel") or "").strip()
        if label and s.get("SegmentNumber") is not None:
            by_label.setdefault(label, []).append(number(s.get("SegmentNumber")))
    for label, nums in by_label.items():
        if len(nums) > 1:
            yield "SegmentSequence", f"segments {', '.join(map(str, nums))} share the label " \
                f"{label!r}"


# ---------------------------------------------------------------------------------------------
# text values a VR cannot hold (issue 11 class 3: labels with newlines, NUL, 200 characters)
# ---------------------------------------------------------------------------------------------
#: maximum characters per value (PS3.5 6.2, Table 6.2-1); PN counts per component group
MAX_CHARS = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240}
#: text VRs checked here; UC / UT have no length limit but the same character rules
TEXT_VRS = frozenset(MAX_CHARS) | {"UC", "UT"}
#: control characters a decoded value may hold: ST, LT and UT allow CR, LF, FF and TAB
#: (PS3.5 6.1.3); ESC only introduces code extensions (PS3.5 6.1.2.5.3), which decoding with
#: the Specific Character Set consumes, so an ESC left in decoded text is not one
_ALLOWED_CONTROL = {"ST": "\r\n\f\t", "LT": "\r\n\f\t", "UT": "\r\n\f\t"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CS_CHARS = re.compile(r"[A-Z0-9_ ]*")


def text_value_problem(vr: str, value: str) -> str | None:
    """What makes one (decoded) value unfit for its VR, or None."""
    bad = [c for c in set(_CONTROL.findall(value)) if c not in _ALLOWED_CONTROL.get(vr, "")]
    if bad:
        shown = ", ".join(f"0x{ord(c):02X}" for c in sorted(bad))
        return f"holds control characters ({shown}) a {vr} value cannot hold"
    if vr == "CS" and not _CS_CHARS.fullmatch(value):
        return "is not a CS value (uppercase A-Z, 0-9, space and _ only)"
    limit = MAX_CHARS.get(vr)
    if limit is not None:
        longest = max((len(g) for g in value.split("=")), default=0) if vr == "PN" else \
            len(value)
        if longest > limit:
            return f"is {longest} characters long; {vr} holds at most {limit}"
    return None


def text_problems(ds, where: str = "", seen: set | None = None, walked: set | None = None):
    """(where, message) for every text value in ``ds`` (a RawDataset, recursively) that its VR
    cannot hold. Values repeated across items (per-frame groups) are checked once, and so are
    items the walker shares between identical sequences (a problem there is reported at its
    first place)."""
    from ..dicom.tags import KEYWORD_OF_TAG

    seen = set() if seen is None else seen
    walked = set() if walked is None else walked
    for tag, value in ds.elements.items():
        if isinstance(value, list):
            name = KEYWORD_OF_TAG.get(tag) or raw.tag_str(tag)
            for i, item in enumerate(value):
                if id(item) in walked:
                    continue
                walked.add(id(item))
                yield from text_problems(ds.item(item), f"{where}{name}[{i}].", seen, walked)
            continue
        vr = value[0].decode("latin-1") if isinstance(value[0], bytes) else value[0]
        if vr not in TEXT_VRS:
            continue
        key = (tag, vr, bytes(value[1]), ds.encoding)
        if key in seen:
            continue
        seen.add(key)
        decoded = raw.decode_value(vr, value[1], True, ds.encoding)
        values = decoded if isinstance(decoded, list) else [decoded]
        for v in values:
            problem = text_value_problem(vr, v or "")
            if problem:
                name = KEYWORD_OF_TAG.get(tag) or raw.tag_str(tag)
                yield f"{where}{name}", f"{_show_text(v)} {problem}"
                break


def _show_text(v: str, limit: int = 40) -> str:
    return repr(v[:limit] + ("..." if len(v) > limit else ""))


@rule("SEG-TEXT-VALUES", SEG, ERROR, "Every text value fits its VR: at most 16 (SH, CS, AE), 64 "
      "(LO, PN) or 1024 (ST) characters, no control characters (NUL, newline...; ST/LT/UT may "
      "hold CR, LF, FF, TAB), CS only A-Z 0-9 space and _.",
      hint="Shorten the value and remove control characters (segment labels: LO, 64 "
           "characters).", source="PS3.5 6.1.3, 6.2 (Table 6.2-1)")
def seg_text_values(ctx: SegContext):
    yield from text_problems(ctx.ds)
