""":class:`Segmentation` -> DICOM SEG (BINARY, FRACTIONAL, or LABELMAP / Sup 243).

The header is built with pydicom; the per-frame functional groups and the pixel data are
encoded as bytes and streamed after it (their tags are the last in the dataset), which keeps
writing thousands of frames fast and memory flat. Files are written under a temporary name and
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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

from .. import __version__
from ..colors import default_color
from ..errors import InvalidInputError, Report, UnsupportedError
from ..model import Segment, Segmentation
from ..profiles import Profile, get_profile
from . import rawdicom as raw
from .codecs import COMPRESSIONS, DEFLATED_LE, NATIVE, codec_for
from .codecs.native import encode_native_frame, native_length, pack_binary_frames
from .derived import base_dataset
from .segfile import LABELMAP_SOP_CLASS, SEG_SOP_CLASS
from .segments import item_from_segment

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
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp_paths.append(tmp)
            _write_one(part, kind, tmp, prof, compression, desc, number, report, progress)
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
        if any(k != v for k, v in mapping.items()):
            report.note("segments renumbered 1..N: " + ", ".join(
                f"{k}->{v}" for k, v in mapping.items() if k != v))
            seg = seg.renumbered(mapping)
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
        table[k] = np.bincount(layer[k].ravel(), minlength=size)[:size] > 0
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
# header
# ---------------------------------------------------------------------------------------------
def _content_label(text: str | None) -> str:
    clean = "".join(c if c.isalnum() or c in "_ " else "_" for c in (text or "SEGMENTATION"))
    return (clean.upper()[:16].strip() or "SEGMENTATION")


def _ds_strings(values) -> list[str]:
    return [raw.format_ds(float(v)) for v in values]


def _header(seg: Segmentation, kind: str, frames: list[_Frame], prof: Profile, ts: str,
            description: str, number: int, bits: int) -> Dataset:
    src = seg.source
    grid = seg.grid
    ds = base_dataset(src)
    now = _dt.datetime.now()
    sop_uid = generate_uid()
    ds.SOPClassUID = LABELMAP_SOP_CLASS if kind == "LABELMAP" else SEG_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "SEG"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = int(number)
    ds.SeriesDescription = description[:64]
    ds.SeriesDate = now.strftime("%Y%m%d")
    ds.SeriesTime = now.strftime("%H%M%S")
    if src.has_geometry and (grid.frame_of_reference_uid or src.frame_of_reference_uid):
        ds.FrameOfReferenceUID = src.frame_of_reference_uid or grid.frame_of_reference_uid
    if "PositionReferenceIndicator" not in ds:
        ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "segbridge"
    ds.ManufacturerModelName = "segbridge"
    ds.DeviceSerialNumber = "1"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.InstanceCreationDate = ds.ContentDate
    ds.InstanceCreationTime = ds.ContentTime
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel = _content_label(seg.content_label)
    ds.ContentDescription = (seg.content_description or "Segmentation")[:64]
    ds.ContentCreatorName = seg.content_creator or ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "01" if src.lossy else "00"
    ds.SegmentationType = kind
    if kind == "FRACTIONAL":
        ds.SegmentationFractionalType = seg.fractional_type
        ds.MaximumFractionalValue = seg.max_fractional_value
    if kind == "LABELMAP":
        ds.PixelPaddingValue = 0
        ds.SegmentsOverlap = "NO"
    else:
        ds.SegmentsOverlap = "YES" if seg.has_overlap() else "NO"
    items = []
    if kind == "LABELMAP" and prof.background_segment:
        from ..codes import BACKGROUND, SPATIAL_AND_RELATIONAL

        items.append(item_from_segment(Segment(0, "Background", category=SPATIAL_AND_RELATIONAL,
                                               type=BACKGROUND), with_color=False))
    for i, s in enumerate(seg.segments):
        if s.color is None:
            s = Segment(**{**s.__dict__, "color": default_color(i)})
        items.append(item_from_segment(s))
    ds.SegmentSequence = Sequence(items)
    # shared functional groups: pixel measures and orientation, copied from the source text
    shared = Dataset()
    if src.has_geometry:
        pm = Dataset()
        pm.PixelSpacing = src.pixel_spacing_strings or _ds_strings(grid.pixel_spacing)
        pm.SliceThickness = src.slice_thickness or raw.format_ds(float(grid.spacing[0]))
        if grid.is_regular:
            pm.SpacingBetweenSlices = raw.format_ds(float(grid.spacing[0]))
        shared.PixelMeasuresSequence = Sequence([pm])
        po = Dataset()
        po.ImageOrientationPatient = src.orientation_strings or _ds_strings(
            grid.image_orientation)
        shared.PlaneOrientationSequence = Sequence([po])
    elif kind == "LABELMAP":
        raise UnsupportedError("a label map SEG needs source images with patient geometry; "
                               "use --type binary for projection images")
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    # dimensions
    org_uid = generate_uid()
    dorg = Dataset()
    dorg.DimensionOrganizationUID = org_uid
    ds.DimensionOrganizationSequence = Sequence([dorg])
    ds.DimensionOrganizationType = "3D"
    dims = []
    if kind != "LABELMAP":
        dims.append((0x0062000B, 0x0062000A, "ReferencedSegmentNumber"))
    if src.has_geometry:
        dims.append((0x00200032, 0x00209113, "ImagePositionPatient"))
    items = []
    for pointer, group, label in dims:
        d = Dataset()
        d.DimensionOrganizationUID = org_uid
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = group
        d.DimensionDescriptionLabel = label
        items.append(d)
    ds.DimensionIndexSequence = Sequence(items)
    # common instance reference: every instance a frame points at
    used = sorted({fr.slice for fr in frames})
    seen: dict[str, str] = {}
    for k in used:
        inst = src.instances[k]
        if inst.sop_instance_uid:
            seen.setdefault(inst.sop_instance_uid, inst.sop_class_uid)
    rss = Dataset()
    rss.SeriesInstanceUID = src.series_instance_uid
    ris = []
    for uid, cls in seen.items():
        r = Dataset()
        r.ReferencedSOPClassUID = cls
        r.ReferencedSOPInstanceUID = uid
        ris.append(r)
    rss.ReferencedInstanceSequence = Sequence(ris)
    ds.ReferencedSeriesSequence = Sequence([rss])
    ds.NumberOfFrames = len(frames)
    ds.file_meta = _file_meta(ds, ts)
    return ds


def _file_meta(ds: Dataset, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"SEGBRIDGE_{__version__}"[:16]
    return meta


# ---------------------------------------------------------------------------------------------
# per-frame functional groups as bytes
# ---------------------------------------------------------------------------------------------
_PURPOSE = raw.sequence(0x0040A170, [
    raw.element(0x00080100, b"SH", b"121322") + raw.element(0x00080102, b"SH", b"DCM") +
    raw.element(0x00080104, b"LO", b"Source image for image processing operation")])
_DERIVATION_CODE = raw.sequence(0x00089215, [
    raw.element(0x00080100, b"SH", b"113076") + raw.element(0x00080102, b"SH", b"DCM") +
    raw.element(0x00080104, b"LO", b"Segmentation")])


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
                raise InvalidInputError(f"slice {k + 1} has no known source image; pass "
                                        "--reference with the source series")
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
        if kind == "LABELMAP":
            content = raw.sequence(0x00209111, [raw.element(0x00209157, b"UL",
                                                            raw.ul(pos_index[k]))])
            yield derivation[k] + content + plane[k]
        else:
            index = (seg_index[fr.segment], pos_index[k]) if src.has_geometry else \
                (seg_index[fr.segment],)
            content = raw.sequence(0x00209111, [raw.element(0x00209157, b"UL",
                                                            raw.ul(*index))])
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
        ds = _header(seg, kind, frames, prof, ts, description, number, bits)
        pffg = _per_frame_items(seg, kind, frames)
        try:
            with open(tmp, "wb") as fp:
                _stream(fp, ds, ts, pffg, _counted(_frame_pixels(seg, kind, frames, lab),
                                                   len(frames), progress),
                        len(frames), rows, columns, bits)
            return
        except UnsupportedError as exc:
            if not chosen or attempt == "rle":
                raise
            report.note(f"archive profile: {attempt} failed ({exc}); wrote RLE instead")


def _stream(fp, ds: Dataset, ts: str, pffg: Iterator[bytes], pixels: Iterator[np.ndarray],
            nframes: int, rows: int, columns: int, bits: int) -> None:
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    file_meta = ds.file_meta
    del ds.file_meta
    try:
        write_dataset(body, ds)
    finally:
        ds.file_meta = file_meta
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

    fp.write(b"\x00" * 128 + b"DICM" + meta.getvalue())
    put(body.getvalue())
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
        codec = codec_for(ts)
        encoded = []
        for frame in pixels:
            e = codec.encode(np.asarray(frame), bits)
            encoded.append(e + b"\x00" if len(e) % 2 else e)
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
