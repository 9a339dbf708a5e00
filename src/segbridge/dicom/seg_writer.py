""":class:`Segmentation` -> DICOM SEG (BINARY, FRACTIONAL, or LABELMAP / Sup 243).

The header is built module by module as encoded elements (:mod:`.encoder`, no pydicom); the
per-frame functional groups and the pixel data are encoded as bytes and streamed after it (their
tags are the last in the dataset), which keeps writing thousands of frames fast and memory flat. Files are written under a temporary name and
renamed when complete, so a failure never leaves a partial SEG behind.
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np

from .. import __version__
from ..codes import (
    BACKGROUND,
    SEGMENTATION_DERIVATION,
    SOURCE_IMAGE_PURPOSE,
    SPATIAL_AND_RELATIONAL,
)
from ..colors import default_color
from ..errors import InvalidInputError, Report, UnsupportedError
from ..model import Segment, Segmentation
from ..outputs import tmp_name
from ..profiles import Profile, get_profile
from . import rawdicom as raw
from .codecs import COMPRESSIONS, DEFLATED_LE, NATIVE, codec_for
from .codecs.native import encode_native_frame, native_length, pack_binary_frames
from .derived import start
from .encoder import DataSet, file_meta, fit, why
from .segfile import LABELMAP_SOP_CLASS, SEG_SOP_CLASS
from .segments import code_item, item_from_segment
from .tags import TAGS
from .uids import generate_uid

#: Dimension Index Pointer / Functional Group Pointer values (attribute tags, PS3.3 C.7.6.17)
REFERENCED_SEGMENT_NUMBER = 0x0062000B
SEGMENT_IDENTIFICATION_SEQUENCE = 0x0062000A
IMAGE_POSITION_PATIENT = 0x00200032
PLANE_POSITION_SEQUENCE = 0x00209113
FRAME_LABEL = 0x00209453
FRAME_CONTENT_SEQUENCE = 0x00209111

TYPES = ("auto", "binary", "fractional", "labelmap")


@dataclass
class _Frame:
    segment: int | None  # None for label map frames
    slice: int


def write_seg(seg: Segmentation, path: str | os.PathLike, *, type: str = "auto",
              profile: str | Profile = "ohif", compression: str | None = None,
              split_overlaps: bool | None = None, series_description: str | None = None,
              series_number: int | None = None, report: Report | None = None,
              progress: Callable[[int, int], None] | None = None,
              check: Callable[[Path], None] | None = None) -> list[Path]:
    """Write ``seg`` as one or more DICOM SEG files; returns the paths written.

    ``progress(done, total)`` is called as frames are encoded (for a progress bar);
    ``check(path)`` is called on every finished temporary file before any is renamed into
    place, and may raise to stop the write (nothing is left behind).

    Several files are written only when the profile (``ohif``) or ``split_overlaps`` asks for
    overlapping segments, or more segments than the profile can show, to be split: ``NAME.dcm``,
    ``NAME-2.dcm``, ... each in its own series.
    """
    report = report if report is not None else seg.report
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    out = Path(path)
    if not out.parent.exists():
        raise InvalidInputError(f"{out}: output folder {out.parent} does not exist")
    if seg.source is None or not seg.source.instances:
        raise InvalidInputError(f"{out}: a DICOM SEG must reference its source images; pass "
                                "--reference with the image series")
    type = (type or "auto").lower()
    if type not in TYPES:
        raise InvalidInputError(f"unknown segmentation type {type!r}; choose one of "
                                f"{', '.join(TYPES)}")
    plans = _plan(seg, type, prof, split_overlaps, report)
    written: list[Path] = []
    tmp_paths: list[Path] = []
    try:
        for i, (part, kind) in enumerate(plans):
            target = out if i == 0 else out.with_name(_numbered_name(out.name, i + 1))
            desc = series_description or seg.series_description or "Segmentation"
            if len(plans) > 1:
                desc = f"{desc} ({i + 1} of {len(plans)})"
            number = (series_number or seg.series_number or 300) + i
            tmp = tmp_name(target)
            tmp_paths.append(tmp)
            try:
                _write_one(part, kind, tmp, prof, compression, desc, number, report, progress)
            except _NoSourceImage as exc:
                raise InvalidInputError(f"{target}: {exc}") from None
            written.append(target)
        if check is not None:
            for tmp in tmp_paths:
                check(tmp)
        for tmp, target in zip(tmp_paths, written, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in tmp_paths:
            if tmp.exists():
                tmp.unlink()
    if len(written) > 1:
        report.note(f"wrote {len(written)} SEG objects: {', '.join(p.name for p in written)}")
    return written


class _NoSourceImage(InvalidInputError):
    """A frame on a grid slice no source image stands behind (named with the output)."""


def _numbered_name(name: str, n: int) -> str:
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{n}{dot}{suffix}"


# ---------------------------------------------------------------------------------------------
# planning: type, splitting, numbering
# ---------------------------------------------------------------------------------------------
def _plan(seg: Segmentation, type: str, prof: Profile, split: bool | None,
          report: Report) -> list[tuple[Segmentation, str]]:
    if not seg.segments:
        raise InvalidInputError("the segmentation has no segments to write")
    split = prof.split_overlaps if split is None else split
    if seg.is_fractional and type not in ("auto", "fractional"):
        seg = _threshold(seg, report)
    if type == "fractional" or (type == "auto" and seg.is_fractional):
        kind = "FRACTIONAL"
    elif type == "labelmap" or (type == "auto" and prof.auto_type == "labelmap"):
        kind = "LABELMAP"
    else:
        kind = "BINARY"
    overlap = seg.has_overlap()
    too_many = len(seg.segments) > prof.max_segment_number if prof.contiguous_numbers else \
        max(seg.numbers) > prof.max_segment_number
    if kind == "LABELMAP" and overlap and not split:
        if type == "labelmap":
            raise InvalidInputError("segments overlap, so they cannot share one label map; use "
                                    "--type binary or --split-overlaps")
        kind = "BINARY"
    if (overlap and split) or too_many:
        cap = prof.max_segment_number if too_many or prof.contiguous_numbers else 1 << 16
        groups = _groups(seg, cap, overlap and split)
        if len(groups) > 1:
            why = "overlapping segments" if overlap and split else \
                f"more than {prof.max_segment_number} segments"
            report.note(f"{why}: split into {len(groups)} SEG objects "
                        f"({'; '.join(','.join(map(str, g)) for g in groups)})")
            return [(_numbered(seg.subset(g), kind, prof, report), kind) for g in groups]
    return [(_numbered(seg, kind, prof, report), kind)]


def _threshold(seg: Segmentation, report: Report) -> Segmentation:
    half = (seg.max_fractional_value + 1) // 2
    report.note(f"fractional data thresholded at {half}/{seg.max_fractional_value} "
                "(>= 50%) to write a non-fractional type")
    from ..model import Segmentation as S

    return S.from_masks(seg.grid, [(s, seg.fractional[s.number] >= half) for s in seg.segments],
                        **seg._meta_kw())


def _groups(seg: Segmentation, cap: int, by_overlap: bool) -> list[list[int]]:
    """Greedy first-fit groups of mutually non-overlapping segments, at most ``cap`` each."""
    if not by_overlap:
        nums = seg.numbers
        return [nums[i:i + cap] for i in range(0, len(nums), cap)]
    if not seg.is_fractional:  # segments in one layer never overlap: a layer is a group
        groups = []
        for li in sorted({layer for layer, _ in seg.bindings.values()}):
            nums = [s.number for s in seg.segments if seg.bindings[s.number][0] == li]
            groups += [nums[i:i + cap] for i in range(0, len(nums), cap)]
        return groups
    groups: list[list[int]] = []
    unions: list[np.ndarray] = []
    for s in seg.segments:
        m = seg.mask(s.number)
        for g, u in zip(groups, unions, strict=True):
            if len(g) < cap and not np.any(u & m):
                g.append(s.number)
                u |= m
                break
        else:
            groups.append([s.number])
            unions.append(m.copy())
    return groups


def _numbered(seg: Segmentation, kind: str, prof: Profile, report: Report) -> Segmentation:
    nums = seg.numbers
    if kind in ("BINARY", "FRACTIONAL") or prof.contiguous_numbers:
        order = sorted(nums)
        mapping = {n: i + 1 for i, n in enumerate(order)}
        moved = [f"{k}->{v}" for k, v in mapping.items() if k != v]
        if moved:
            report.note("segments renumbered 1..N: " + ", ".join(moved[:10])
                        + (f" and {len(moved) - 10} more" if len(moved) > 10 else ""))
            seg = seg.renumbered(mapping)
        if [s.number for s in seg.segments] != sorted(seg.numbers):  # SegmentSequence in order
            seg = seg.copy_meta(segments=sorted(seg.segments, key=lambda s: s.number))
    elif max(nums) > 65535 or min(nums) < 1:
        raise InvalidInputError("label map segment numbers must be 1..65535")
    if max(seg.numbers) > prof.max_segment_number:
        raise InvalidInputError(f"profile {prof.name}: segment number {max(seg.numbers)} is "
                                f"above {prof.max_segment_number}")
    return seg


# ---------------------------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------------------------
def _presence(layer: np.ndarray, values: list[int]) -> dict[int, np.ndarray]:
    """Per value, which slices of ``layer`` hold it."""
    nz = layer.shape[0]
    size = max(values) + 1
    table = np.zeros((nz, size), bool)
    for k in range(nz):
        plane = layer[k].ravel()
        nonzero = plane[plane != 0]  # mostly background: count the few labelled pixels only
        if nonzero.size * 2 < plane.size:
            plane = nonzero
        table[k] = np.bincount(plane, minlength=size)[:size] > 0
    return {v: table[:, v] for v in values}


def _frame_plan(seg: Segmentation, kind: str, dense: bool) -> tuple[list[_Frame], object]:
    nz = seg.grid.shape[0]
    if kind == "LABELMAP":
        lab = seg.labelmap()  # the planner guarantees no overlap
        if dense:
            slices = list(range(nz))
        else:
            slices = [k for k in range(nz) if lab[k].any()]
        return [_Frame(None, k) for k in slices], lab
    frames: list[_Frame] = []
    if kind == "FRACTIONAL":
        for s in seg.segments:
            has = np.any(seg.fraction(s.number), axis=(1, 2)) if not dense else None
            frames.extend(_Frame(s.number, k) for k in range(nz) if dense or has[k])
        return frames, None
    by_layer: dict[int, list[int]] = {}
    for layer, value in seg.bindings.values():
        by_layer.setdefault(layer, []).append(value)
    presence = {}
    if not dense:
        for layer, values in by_layer.items():
            for v, has in _presence(seg.layers[layer], values).items():
                presence[(layer, v)] = has
    for s in seg.segments:
        b = seg.bindings[s.number]
        frames.extend(_Frame(s.number, k) for k in range(nz) if dense or presence[b][k])
    return frames, None


def _frame_pixels(seg: Segmentation, kind: str, frames: list[_Frame],
                  lab: np.ndarray | None) -> Iterator[np.ndarray]:
    current: tuple[int | None, np.ndarray | None] = (None, None)
    for fr in frames:
        if kind == "LABELMAP":
            yield lab[fr.slice]
        elif kind == "FRACTIONAL":
            if current[0] != fr.segment:
                current = (fr.segment, seg.fraction(fr.segment))
            yield current[1][fr.slice]
        else:
            layer, value = seg.bindings[fr.segment]
            yield seg.layers[layer][fr.slice] == value


# ---------------------------------------------------------------------------------------------
# header: one builder per module (PS3.3 A.51 Segmentation IOD)
# ---------------------------------------------------------------------------------------------
@dataclass
class _Header:
    """The header of one SEG object: its data set and the values the file meta repeats."""

    ds: DataSet
    sop_class: str
    sop_instance: str


def _fitted(value: str, vr: str, what: str, report: Report) -> str:
    """``value`` fitted to its VR (see :func:`encoder.fit`); a change is a warning."""
    new = fit(value, vr)
    if new != value:
        report.warn(f"{what} {value!r} written as {new!r} ({why(vr)})")
    return new


def _content_label(text: str | None, report: Report) -> str:
    """ContentLabel (CS, PS3.3 C.10.9): upper-case letters, digits, spaces, underscores."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_ ") else "_"
                    for c in (text or "SEGMENTATION"))
    label = clean.upper()[:16].strip() or "SEGMENTATION"
    if text is not None and label != text:
        report.note(f"ContentLabel {text!r} written as {label!r} ({why('CS')})")
    return label


def _ds_strings(values) -> list[str]:
    return [raw.format_ds(float(v)) for v in values]


def _series_and_instance(ds: DataSet, seg: Segmentation, kind: str, description: str,
                         number: int, now: _dt.datetime, report: Report) -> _Header:
    """General Series, Segmentation Series, Frame of Reference and SOP Common attributes."""
    src, grid = seg.source, seg.grid
    sop_class = LABELMAP_SOP_CLASS if kind == "LABELMAP" else SEG_SOP_CLASS
    sop_instance = generate_uid()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.update(SOPClassUID=sop_class, SOPInstanceUID=sop_instance, Modality="SEG",
              SeriesInstanceUID=generate_uid(), SeriesNumber=int(number),
              SeriesDescription=_fitted(description, "LO", "SeriesDescription", report),
              SeriesDate=date, SeriesTime=time, InstanceNumber=1, InstanceCreationDate=date,
              InstanceCreationTime=time)
    if src.has_geometry and (grid.frame_of_reference_uid or src.frame_of_reference_uid):
        ds.set("FrameOfReferenceUID", src.frame_of_reference_uid or grid.frame_of_reference_uid)
    elif not src.has_geometry and src.frame_of_reference_uid:
        # frame space: the source's own FoR only, never one made up (PS3.3 A.51.1)
        ds.set("FrameOfReferenceUID", src.frame_of_reference_uid)
    if not src.has_geometry and "FrameOfReferenceUID" not in ds:  # no FoR module
        ds.elements.pop(TAGS["PositionReferenceIndicator"][0], None)
    elif "PositionReferenceIndicator" not in ds:
        ds.set("PositionReferenceIndicator", "")
    return _Header(ds, sop_class, sop_instance)


def _equipment(ds: DataSet) -> None:
    """Enhanced General Equipment module (PS3.3 C.7.5.2)."""
    ds.update(Manufacturer="segbridge", ManufacturerModelName="segbridge",
              DeviceSerialNumber="1", SoftwareVersions=__version__)


def _image(ds: DataSet, seg: Segmentation, kind: str, bits: int, now: _dt.datetime,
           report: Report) -> None:
    """General Image, Image Pixel and Segmentation Image modules (PS3.3 C.8.20.2)."""
    grid = seg.grid
    ds.update(ContentDate=now.strftime("%Y%m%d"), ContentTime=now.strftime("%H%M%S"),
              ImageType=["DERIVED", "PRIMARY"],
              ContentLabel=_content_label(seg.content_label, report),
              ContentDescription=_fitted(seg.content_description or "Segmentation", "LO",
                                         "ContentDescription", report),
              ContentCreatorName=_fitted(seg.content_creator or "", "PN", "ContentCreatorName",
                                         report),
              SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
              Rows=grid.shape[1], Columns=grid.shape[2], BitsAllocated=bits, BitsStored=bits,
              HighBit=bits - 1, PixelRepresentation=0,
              LossyImageCompression="01" if seg.source.lossy else "00", SegmentationType=kind)
    if kind == "FRACTIONAL":
        ds.update(SegmentationFractionalType=seg.fractional_type,
                  MaximumFractionalValue=seg.max_fractional_value)
    if not seg.source.has_geometry:
        # frame space: the General Image module's Patient Orientation (PS3.3 C.7.6.1.1.1, type
        # 2C without Plane Orientation), the only orientation a 2-D source has; empty if none
        ds.set("PatientOrientation", list(seg.source.patient_orientation or []) or "")
    if kind == "LABELMAP":
        ds.update(PixelPaddingValue=0, SegmentsOverlap="NO")
    else:
        ds.set("SegmentsOverlap", "YES" if seg.has_overlap() else "NO")


def _segment_sequence(ds: DataSet, seg: Segmentation, kind: str, prof: Profile,
                      report: Report) -> None:
    """Segment Sequence: a Background item 0 when the profile asks, then every segment."""
    items = []
    if kind == "LABELMAP" and prof.background_segment:
        items.append(item_from_segment(Segment(0, "Background", category=SPATIAL_AND_RELATIONAL,
                                               type=BACKGROUND), ds.charset, with_color=False))
    for i, s in enumerate(seg.segments):
        if s.color is None:
            s = Segment(**{**s.__dict__, "color": default_color(i)})
        items.append(item_from_segment(s, ds.charset, report=report))
    ds.set("SegmentSequence", items)


def _shared_functional_groups(ds: DataSet, seg: Segmentation, kind: str) -> None:
    """Pixel Measures and Plane Orientation, shared by all frames, copied from the source text
    (viewers compare them at 1e-3)."""
    src, grid = seg.source, seg.grid
    shared = DataSet(ds.charset)
    if src.has_geometry:
        pm = DataSet().update(
            PixelSpacing=src.pixel_spacing_strings or _ds_strings(grid.pixel_spacing),
            SliceThickness=src.slice_thickness or raw.format_ds(float(grid.spacing[0])))
        if grid.is_regular:
            pm.set("SpacingBetweenSlices", raw.format_ds(float(grid.spacing[0])))
        po = DataSet().set("ImageOrientationPatient", src.orientation_strings or _ds_strings(
            grid.image_orientation))
        shared.update(PixelMeasuresSequence=[pm], PlaneOrientationSequence=[po])
    elif src.pixel_spacing_strings:
        # frame space: Pixel Measures only from the source's own PixelSpacing (as highdicom);
        # no Plane Position / Orientation (PS3.3 C.7.6.16.2.3/4: only with patient geometry)
        pm = DataSet().set("PixelSpacing", list(src.pixel_spacing_strings))
        if src.slice_thickness:
            pm.set("SliceThickness", src.slice_thickness)
        shared.set("PixelMeasuresSequence", [pm])
    ds.set("SharedFunctionalGroupsSequence", [shared])


def _dimensions(ds: DataSet, seg: Segmentation, kind: str) -> None:
    """Multi-frame Dimension module (PS3.3 C.7.6.17): segment number (not for label maps),
    then the image position."""
    org_uid = generate_uid()
    ds.set("DimensionOrganizationSequence", [DataSet().set("DimensionOrganizationUID", org_uid)])
    ds.set("DimensionOrganizationType", "3D")
    dims = []
    if kind != "LABELMAP":
        dims.append((REFERENCED_SEGMENT_NUMBER, SEGMENT_IDENTIFICATION_SEQUENCE,
                     "ReferencedSegmentNumber"))
    if seg.source.has_geometry:
        dims.append((IMAGE_POSITION_PATIENT, PLANE_POSITION_SEQUENCE, "ImagePositionPatient"))
    else:  # frame space: the referenced source frame, as a Frame Label (as highdicom does)
        dims.append((FRAME_LABEL, FRAME_CONTENT_SEQUENCE, "Source Frame"))
    ds.set("DimensionIndexSequence", [
        DataSet().update(DimensionOrganizationUID=org_uid, DimensionIndexPointer=pointer,
                         FunctionalGroupPointer=group, DimensionDescriptionLabel=label)
        for pointer, group, label in dims])


def _common_instance_reference(ds: DataSet, seg: Segmentation, frames: list[_Frame]) -> None:
    """Referenced Series Sequence: every source instance a frame points at (PS3.3 C.12.2)."""
    src = seg.source
    seen: dict[str, str] = {}
    for k in sorted({fr.slice for fr in frames}):
        inst = src.instances[k]
        if inst.sop_instance_uid:
            seen.setdefault(inst.sop_instance_uid, inst.sop_class_uid)
    ds.set("ReferencedSeriesSequence", [DataSet().update(
        SeriesInstanceUID=src.series_instance_uid,
        ReferencedInstanceSequence=[
            DataSet().update(ReferencedSOPClassUID=cls, ReferencedSOPInstanceUID=uid)
            for uid, cls in seen.items()])])


def new_text(segments, *more: str | None) -> list[str]:
    """The text a SEG writer adds to the copied header: segment names, descriptions,
    algorithm names, code meanings, and ``more`` (series / content description, creator)."""
    out = [t for t in more if t]
    for s in segments:
        out += [t for t in (s.label, s.description, s.algorithm_name, s.tracking_id) if t]
        codes = (s.category, s.type, s.type_modifier, s.anatomic_region,
                 s.anatomic_region_modifier)
        out += [c.meaning for c in codes if c is not None and c.meaning]
    return out


def _header(seg: Segmentation, kind: str, frames: list[_Frame], prof: Profile,
            description: str, number: int, bits: int, report: Report) -> _Header:
    """Everything before the per-frame functional groups, module by module."""
    now = _dt.datetime.now()
    ds = start(seg.source, new_text(seg.segments, description, seg.content_description,
                                    seg.content_creator))
    head = _series_and_instance(ds, seg, kind, description, number, now, report)
    _equipment(ds)
    _image(ds, seg, kind, bits, now, report)
    _segment_sequence(ds, seg, kind, prof, report)
    _shared_functional_groups(ds, seg, kind)
    _dimensions(ds, seg, kind)
    _common_instance_reference(ds, seg, frames)
    ds.set("NumberOfFrames", len(frames))
    return head


# ---------------------------------------------------------------------------------------------
# per-frame functional groups as bytes
# ---------------------------------------------------------------------------------------------
_PURPOSE = raw.sequence(0x0040A170, [code_item(SOURCE_IMAGE_PURPOSE).encode()])
_DERIVATION_CODE = raw.sequence(0x00089215, [code_item(SEGMENTATION_DERIVATION).encode()])


def _frame_label(k: int, index: int) -> str:
    """Frame Label of a frame-space frame: its source frame, ordered as its index value."""
    return f"SOURCE FRAME {index:05d}"


def _per_frame_items(seg: Segmentation, kind: str, frames: list[_Frame]) -> Iterator[bytes]:
    src = seg.source
    grid = seg.grid
    positions = grid.slice_positions()
    pos_index = {k: i + 1 for i, k in enumerate(sorted({fr.slice for fr in frames}))}
    seg_index = {s.number: i + 1 for i, s in enumerate(seg.segments)}
    derivation: dict[int, bytes] = {}
    plane: dict[int, bytes] = {}
    for fr in frames:
        k = fr.slice
        if k not in derivation:
            inst = src.instances[k]
            if not inst.sop_instance_uid:
                raise _NoSourceImage(f"slice {k + 1} has no known source image (the input "
                                     "was read without its image series); pass --reference "
                                     "with the source series")
            ref = (raw.element(0x00081150, b"UI", raw.text(inst.sop_class_uid)) +
                   raw.element(0x00081155, b"UI", raw.text(inst.sop_instance_uid)))
            if inst.frame_number:
                ref += raw.element(0x00081160, b"IS", str(inst.frame_number).encode())
            ref += raw.element(0x0028135A, b"CS", b"YES") + _PURPOSE
            derivation[k] = raw.sequence(0x00089124, [
                raw.sequence(0x00082112, [ref]) + _DERIVATION_CODE])
            if src.has_geometry:
                strings = src.position_strings[k] if src.position_strings else None
                ipp = raw.ds(*strings) if strings else raw.ds(*positions[k])
                plane[k] = raw.sequence(0x00209113, [raw.element(0x00200032, b"DS", ipp)])
            else:
                plane[k] = b""
        label = b"" if src.has_geometry else \
            raw.element(FRAME_LABEL, b"LO", raw.text(_frame_label(k, pos_index[k])))
        if kind == "LABELMAP":
            content = raw.sequence(0x00209111, [raw.element(0x00209157, b"UL",
                                                            raw.ul(pos_index[k])) + label])
            yield derivation[k] + content + plane[k]
        else:
            index = (seg_index[fr.segment], pos_index[k])
            content = raw.sequence(0x00209111, [raw.element(0x00209157, b"UL",
                                                            raw.ul(*index)) + label])
            ident = raw.sequence(0x0062000A, [raw.element(0x0062000B, b"US",
                                                          raw.us(fr.segment))])
            yield derivation[k] + content + plane[k] + ident


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _counted(items: Iterator, total: int,
             progress: Callable[[int, int], None] | None) -> Iterator:
    """Pass items through, reporting progress every 64 items."""
    if progress is None:
        yield from items
        return
    for i, item in enumerate(items):
        if i % 64 == 0:
            progress(i, total)
        yield item
    progress(total, total)


def _choose_compression(kind: str, bits: int, columns: int, prof: Profile,
                        compression: str | None, report: Report) -> str:
    if compression is None:
        return prof.compression_for(bits, columns)
    name = compression.lower()
    if name not in COMPRESSIONS:
        raise InvalidInputError(f"unknown compression {compression!r}; choose one of "
                                f"{', '.join(COMPRESSIONS)}")
    if name == "jpegls" and bits == 1:
        raise UnsupportedError("JPEG-LS cannot hold 1-bit BINARY frames; use rle, jpeg2000, "
                               "deflate or none (or --type labelmap)")
    if name not in prof.allowed[bits]:
        report.warn(f"profile {prof.name}: its consumers may not decode {name} for {kind} "
                    f"({bits}-bit) frames")
    return name


def _smallest(frames_px: list[np.ndarray], bits: int, columns: int) -> str:
    """Pick the compression that makes a sample of frames smallest (archive profile)."""
    candidates = ["rle", "jpegls", "jpeg2000"] if bits > 1 else ["rle", "jpeg2000"]
    sample = frames_px[:: max(1, len(frames_px) // 8)][:8]
    if not sample:
        return "rle"
    sizes = {}
    for name in candidates:
        codec = codec_for(COMPRESSIONS[name].uid)
        try:
            sizes[name] = sum(len(codec.encode(np.asarray(f), bits)) for f in sample)
        except UnsupportedError:
            continue
    return min(sizes, key=sizes.get)


def _write_one(seg: Segmentation, kind: str, tmp: Path, prof: Profile,
               compression: str | None, description: str, number: int,
               report: Report, progress: Callable[[int, int], None] | None = None) -> None:
    bits = {"BINARY": 1, "FRACTIONAL": 8}.get(kind)
    if kind == "LABELMAP":
        bits = 8 if max(seg.numbers) <= 255 else 16
    frames, lab = _frame_plan(seg, kind, prof.dense)
    for s in seg.segments:
        if not any(fr.segment == s.number for fr in frames) and kind != "LABELMAP":
            report.warn(f"segment {s.number} ({s.label}) is empty")
    if not frames:
        report.note("the segmentation is empty; one empty frame written")
        frames = [_Frame(None if kind == "LABELMAP" else seg.segments[0].number, 0)]
    rows, columns = seg.grid.shape[1:]
    name = _choose_compression(kind, bits, columns, prof, compression, report)
    chosen = name == "smallest"
    if chosen:
        first = list(_frame_pixels(seg, kind, frames[:64], lab))
        name = _smallest(first, bits, columns)
        report.note(f"archive profile: {name} gave the smallest frames")
    for attempt in (name, "rle"):
        ts = COMPRESSIONS[attempt].uid
        head = _header(seg, kind, frames, prof, description, number, bits,
                       report if attempt == name else Report())
        pffg = _per_frame_items(seg, kind, frames)
        try:
            with open(tmp, "wb") as fp:
                _stream(fp, head, ts, pffg, _counted(_frame_pixels(seg, kind, frames, lab),
                                                   len(frames), progress),
                        len(frames), rows, columns, bits)
            return
        except UnsupportedError as exc:
            if not chosen or attempt == "rle":
                raise
            report.note(f"archive profile: {attempt} failed ({exc}); wrote RLE instead")


def _stream(fp, head: _Header, ts: str, pffg: Iterator[bytes] | None,
            pixels: Iterator[np.ndarray] | None, nframes: int, rows: int, columns: int,
            bits: int, encoded: list[bytes] | None = None) -> None:
    """Write the file: meta, header, per-frame groups, pixel data. Encapsulated frames come
    from ``pixels`` (encoded here) or already ``encoded`` (the slide writer encodes while it
    finds the non-empty tiles, so the source is read once)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15) if ts == DEFLATED_LE else None
    deflated_length = 0

    def put(b: bytes) -> None:
        nonlocal deflated_length
        if deflate:
            out = deflate.compress(b)
            deflated_length += len(out)
            fp.write(out)
        else:
            fp.write(b)

    fp.write(file_meta(head.sop_class, head.sop_instance, ts, f"SEGBRIDGE_{__version__}"))
    put(head.ds.encode())
    if pffg is not None:  # None: TILED_FULL, no per-frame functional groups (PS3.3 C.7.6.17.3)
        put(raw.sequence_header_undefined(raw.PER_FRAME_FG))
        for it in pffg:
            put(raw.item(it))
        put(raw.SEQUENCE_DELIMITER)
    if ts in NATIVE:
        length = native_length(nframes, rows, columns, bits)
        padded = length + (length % 2)
        vr = b"OW" if bits == 16 else b"OB"
        put(struct.pack("<HH2sHL", 0x7FE0, 0x0010, vr, 0, padded))
        if bits == 1:
            for chunk in pack_binary_frames(pixels, rows, columns):
                put(chunk)
        else:
            for frame in pixels:
                put(encode_native_frame(frame, bits))
        if padded != length:
            put(b"\x00")
    else:
        if encoded is None:
            codec = codec_for(ts)
            encoded = []
            for frame in pixels:
                encoded.append(codec.encode(np.asarray(frame), bits))
        encoded = [e + b"\x00" if len(e) % 2 else e for e in encoded]
        offsets, pos = [], 0
        for e in encoded:
            offsets.append(pos)
            pos += 8 + len(e)
        if pos >= 1 << 32:
            raise UnsupportedError("encapsulated pixel data above 4 GiB is not supported")
        put(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, raw.UNDEFINED))
        put(raw.item(raw.ul(*offsets)))
        buf = BytesIO()
        for e in encoded:
            buf.write(raw.item(e))
        put(buf.getvalue())
        put(raw.SEQUENCE_DELIMITER)
    if deflate:
        tail = deflate.flush()
        fp.write(tail)
        if (deflated_length + len(tail)) % 2:
            fp.write(b"\x00")  # PS3.5 A.5: an odd deflated stream gets one trailing NUL
