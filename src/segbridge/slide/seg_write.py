""":class:`SlideSegmentation` -> DICOM SEG on a VL Whole Slide Microscopy image, tile by tile.

BINARY / FRACTIONAL (Segmentation Storage, 66.4) and LABELMAP (Label Map Segmentation
Storage, 66.7; MONOCHROME2 or PALETTE COLOR) on the source level's tile grid:

- TILED_SPARSE: only tiles holding a segment are written, each with Plane Position (Slide)
  (PS3.3 C.8.12.6.1), Frame Content and, for BINARY / FRACTIONAL, Segment Identification;
- TILED_FULL (PS3.3 C.7.6.17.3): every tile, no per-frame functional groups, frames in the
  order the standard defines (tiles row by row, then focal plane, optical path, segment).

The header is built with :mod:`segbridge.dicom.encoder` and the frames go through the volume
writer's stream (:func:`segbridge.dicom.seg_writer._stream`: native 1-bit packing across
frames, every lossless codec). Tiles are read from the TileSource as they are written (two
passes: which tiles are empty, then the pixels), so memory is bounded by one strip of tiles
(plus the compressed frames, which the offset table needs before the first fragment).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import __version__
from ..codes import BACKGROUND, SPATIAL_AND_RELATIONAL
from ..colors import default_color
from ..errors import InvalidInputError, Report, UnsupportedError
from ..model import Segment
from ..outputs import tmp_name
from .model import SlideGrid, SlideSegmentation

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"

#: attributes the slide SEG sets that the volume writer's table lacks: keyword -> (tag, VR)
SLIDE_TAGS: dict[str, tuple[int, str]] = {
    "TotalPixelMatrixColumns": (0x00480006, "UL"),
    "TotalPixelMatrixRows": (0x00480007, "UL"),
    "TotalPixelMatrixFocalPlanes": (0x00480303, "UL"),
    "PyramidUID": (0x00080019, "UI"),
    "PyramidLabel": (0x00200027, "LO"),
    "PaletteColorLookupTableUID": (0x00281199, "UI"),
    "RedPaletteColorLookupTableDescriptor": (0x00281101, "US"),
    "GreenPaletteColorLookupTableDescriptor": (0x00281102, "US"),
    "BluePaletteColorLookupTableDescriptor": (0x00281103, "US"),
    "RedPaletteColorLookupTableData": (0x00281201, "OW"),
    "GreenPaletteColorLookupTableData": (0x00281202, "OW"),
    "BluePaletteColorLookupTableData": (0x00281203, "OW"),
    "ICCProfile": (0x00282000, "OB"),
    "DimensionOrganizationType": (0x00209311, "CS"),
    "PatientOrientation": (0x00200020, "CS"),
}
TILED = ("sparse", "full")


def _put(ds, keyword: str, value) -> None:
    """Set an attribute of the encoder's DataSet, slide keywords included."""
    from ..dicom.encoder import WRITER_TAGS

    tag, vr = SLIDE_TAGS.get(keyword) or WRITER_TAGS[keyword]
    ds.elements[tag] = ds._element(keyword, tag, vr, value)


# ---------------------------------------------------------------------------------------------
# frames: which tiles, in which order
# ---------------------------------------------------------------------------------------------
def _tile_presence(sseg: SlideSegmentation) -> dict[int | None, list[tuple[int, int]]]:
    """Per segment (None: any label), its non-empty tiles in row-major order.

    One pass over the source, a strip of tile rows at a time; kept sparse (lists of tiles,
    not per-segment tables), so 100,000 segments on 40,000 tiles cost what they occupy.
    """
    g = sseg.grid
    out: dict[int | None, list[tuple[int, int]]] = {}
    numbers = sseg.numbers
    if sseg.labels is not None:
        anyt: list[tuple[int, int]] = []
        per: dict[int, list[tuple[int, int]]] | None = None
        wanted = None
        if sseg.seg_type != "LABELMAP":
            per = {n: [] for n in numbers}
            wanted = np.zeros(max(numbers) + 1, bool)
            wanted[numbers] = True
        for i in range(g.tiles_down):
            r0, r1 = i * g.tile_rows, min((i + 1) * g.tile_rows, g.rows)
            strip = sseg.labels.read(r0, r1, 0, g.columns)
            for j in range(g.tiles_across):
                block = strip[:, j * g.tile_columns:(j + 1) * g.tile_columns]
                if not block.any():
                    continue
                anyt.append((i, j))
                if per is not None:
                    vals = np.unique(block[block != 0])
                    for v in vals[vals < len(wanted)]:
                        if wanted[v]:
                            per[int(v)].append((i, j))
        out[None] = anyt
        if per is not None:
            out.update(per)
        return out
    for n, src in sseg.masks.items():
        tiles = []
        for i in range(g.tiles_down):
            r0, r1 = i * g.tile_rows, min((i + 1) * g.tile_rows, g.rows)
            strip = src.read(r0, r1, 0, g.columns)
            for j in range(g.tiles_across):
                if strip[:, j * g.tile_columns:(j + 1) * g.tile_columns].any():
                    tiles.append((i, j))
        out[n] = tiles
    return out


def plan_frames(sseg: SlideSegmentation, tiled: str,
                report: Report) -> list[tuple[int | None, int, int]]:
    """(segment or None, tile row, tile column) of every frame, in file order.

    TILED_FULL: every tile of every segment (segments outermost, PS3.3 C.7.6.17.3);
    TILED_SPARSE: the same order with empty tiles left out (at least one frame).
    """
    g = sseg.grid
    tiles = list(g.tiles())
    label = sseg.seg_type == "LABELMAP"
    if tiled == "full":
        if label:
            return [(None, i, j) for i, j in tiles]
        return [(n, i, j) for n in sseg.numbers for i, j in tiles]
    presence = _tile_presence(sseg)
    if label:
        frames = [(None, i, j) for i, j in presence[None]]
    else:
        frames = []
        for n in sseg.numbers:
            if not presence[n]:
                report.warn(f"segment {n} ({sseg.segment(n).label}) is empty")
            frames += [(n, i, j) for i, j in presence[n]]
    if not frames:
        report.note("the segmentation is empty; one empty frame written")
        frames = [(None if label else sseg.numbers[0], 0, 0)]
    return frames


def encode_frames(sseg: SlideSegmentation, tiled: str, codec, bits: int, dtype,
                  report: Report) -> tuple[list[tuple[int | None, int, int]], list[bytes]]:
    """:func:`plan_frames` and the frames' encoded pixels in ONE pass over the source (for
    encapsulated transfer syntaxes, whose frames are held until the offset table is written
    anyway): each strip of tile rows is read once, its non-empty tiles encoded as found."""
    g = sseg.grid
    full = tiled == "full"
    label = sseg.seg_type == "LABELMAP"
    per: dict[int | None, tuple[list, list]] = {}

    def add(key, i, j, block) -> None:
        tile = np.zeros((g.tile_rows, g.tile_columns), dtype)
        tile[:block.shape[0], :block.shape[1]] = block
        f, e = per.setdefault(key, ([], []))
        f.append((key, i, j))
        e.append(codec.encode(tile, bits))

    sources = [(None, sseg.labels)] if sseg.labels is not None else sorted(sseg.masks.items())
    numbers = sseg.numbers
    wanted = set(numbers)
    for n, src in sources:
        for i in range(g.tiles_down):
            r0, r1 = i * g.tile_rows, min((i + 1) * g.tile_rows, g.rows)
            strip = src.read(r0, r1, 0, g.columns)
            for j in range(g.tiles_across):
                block = strip[:, j * g.tile_columns:(j + 1) * g.tile_columns]
                if n is not None or label:  # a mask, or a label map's own tile
                    if full or block.any():
                        add(n, i, j, block)
                    continue
                # BINARY / FRACTIONAL segments from one label source: a frame per value
                values = numbers if full else np.unique(block[block != 0]).tolist()
                for v in values:
                    if v in wanted:
                        add(int(v), i, j, block == v)
    if label:
        keys = [None]
    else:
        keys = numbers
        for k in keys:
            if k not in per:
                report.warn(f"segment {k} ({sseg.segment(k).label}) is empty")
    frames = [f for k in keys for f in per.get(k, ([], []))[0]]
    encoded = [e for k in keys for e in per.get(k, ([], []))[1]]
    if not frames:
        report.note("the segmentation is empty; one empty frame written")
        key = None if label else numbers[0]
        add(key, 0, 0, np.zeros((1, 1), dtype))
        frames, encoded = per[key]
    return frames, encoded


def _pixels(sseg: SlideSegmentation, frames, dtype) -> Iterator[np.ndarray]:
    """Frame pixels, full tiles (edges padded with 0), one strip of tiles read at a time."""
    g = sseg.grid
    cache: tuple | None = None
    # tile-major frames (label maps) read a strip of tiles at a time; segment-major frames
    # of a sparse segment read just their tiles
    by_strip = sseg.seg_type == "LABELMAP" or len(frames) >= g.n_tiles * len(sseg.numbers)
    for n, i, j in frames:
        src = sseg.masks[n] if sseg.masks is not None else sseg.labels
        if by_strip:
            key = (n if sseg.masks is not None else None, i)
            if cache is None or cache[0] != key:
                r0, r1 = i * g.tile_rows, min((i + 1) * g.tile_rows, g.rows)
                cache = (key, src.read(r0, r1, 0, g.columns))
            block = cache[1][:, j * g.tile_columns:(j + 1) * g.tile_columns]
        else:
            r0, r1, c0, c1 = g.tile_box(i, j)
            block = src.read(r0, r1, c0, c1)
        if sseg.masks is None and n is not None:
            block = block == n
        tile = np.zeros((g.tile_rows, g.tile_columns), dtype)
        tile[:block.shape[0], :block.shape[1]] = block
        yield tile


# ---------------------------------------------------------------------------------------------
# header
# ---------------------------------------------------------------------------------------------
def _source_ref(grid: SlideGrid):
    from ..model import SourceInstance, SourceRef

    s = grid.source
    if s is None:
        raise InvalidInputError("a slide SEG needs its source image; pass --reference")
    return SourceRef(s.study_instance_uid, s.series_instance_uid, grid.frame_of_reference_uid,
                     [SourceInstance(s.sop_class_uid, s.sop_instance_uid)], header=grid.header)


def _palette(ds, sseg: SlideSegmentation) -> None:
    """PALETTE COLOR: a LUT from the segment colours, background black (PS3.3 C.7.6.3.1.5,
    C.7.9), with an sRGB ICC profile (PS3.3 C.11.15)."""
    from PIL import ImageCms

    from ..dicom.uids import generate_uid

    # 8-bit entries for 8- and 16-bit pixels alike (PS3.3 C.7.6.3.1.5 allows 8 or 16 bits
    # per entry; the colours are 8-bit sRGB, and highdicom's ICC step takes 8-bit RGB only)
    n = max(sseg.numbers) + 1
    lut = np.zeros((n, 3), np.uint8)
    for k, s in enumerate(sseg.segments):
        lut[s.number] = s.color if s.color is not None else default_color(k)
    desc = [n if n < 65536 else 0, 0, 8]
    for c, name in enumerate(("Red", "Green", "Blue")):
        data = np.ascontiguousarray(lut[:, c]).tobytes()
        if len(data) % 2:
            data += b"\x00"
        _put(ds, f"{name}PaletteColorLookupTableDescriptor", desc)
        _put(ds, f"{name}PaletteColorLookupTableData", data)
    _put(ds, "PaletteColorLookupTableUID", generate_uid())
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _put(ds, "ICCProfile", icc + (b"\x00" if len(icc) % 2 else b""))


def _header(sseg: SlideSegmentation, frames, tiled: str, bits: int, palette: bool,
            series_uid: str, series_number: int, instance_number: int, description: str,
            pyramid_uid: str | None, report: Report):
    from ..dicom import rawdicom as raw
    from ..dicom.derived import start
    from ..dicom.encoder import DataSet
    from ..dicom.seg_writer import _content_label, _Header, new_text
    from ..dicom.segments import item_from_segment
    from ..dicom.uids import generate_uid

    g, kind = sseg.grid, sseg.seg_type
    src = _source_ref(g)
    ds = start(src, new_text(sseg.segments, description))
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sop_class = LABELMAP_SOP_CLASS if kind == "LABELMAP" else SEG_SOP_CLASS
    sop_instance = generate_uid()
    ds.update(SOPClassUID=sop_class, SOPInstanceUID=sop_instance, Modality="SEG",
              SeriesInstanceUID=series_uid, SeriesNumber=int(series_number),
              SeriesDescription=description[:64], SeriesDate=date, SeriesTime=time,
              InstanceNumber=int(instance_number), InstanceCreationDate=date,
              InstanceCreationTime=time, ContentDate=date, ContentTime=time)
    if g.frame_of_reference_uid:
        ds.set("FrameOfReferenceUID", g.frame_of_reference_uid)
    if "PositionReferenceIndicator" not in ds:
        ds.set("PositionReferenceIndicator", "")
    ds.update(Manufacturer="segbridge", ManufacturerModelName="segbridge",
              DeviceSerialNumber="1", SoftwareVersions=__version__)
    _put(ds, "PatientOrientation", "")  # Type 2C: no patient geometry (PS3.3 C.7.6.1.1.1)
    photometric = "PALETTE COLOR" if palette else "MONOCHROME2"
    ds.update(ImageType=["DERIVED", "PRIMARY"],
              ContentLabel=_content_label(sseg.content_label, report),
              ContentDescription="Segmentation", ContentCreatorName="",
              SamplesPerPixel=1, PhotometricInterpretation=photometric,
              Rows=g.tile_rows, Columns=g.tile_columns, BitsAllocated=bits, BitsStored=bits,
              HighBit=bits - 1, PixelRepresentation=0, LossyImageCompression="00",
              SegmentationType=kind, SegmentsOverlap="NO" if sseg.labels is not None
              else "UNDEFINED")
    if kind == "FRACTIONAL":
        ds.update(SegmentationFractionalType=sseg.fractional_type,
                  MaximumFractionalValue=int(sseg.max_fractional_value))
    if kind == "LABELMAP":
        ds.set("PixelPaddingValue", 0)
    if palette:
        _palette(ds, sseg)
    items = []
    if kind == "LABELMAP":
        items.append(item_from_segment(Segment(0, "Background", category=SPATIAL_AND_RELATIONAL,
                                               type=BACKGROUND), ds.charset, with_color=False))
    for k, s in enumerate(sseg.segments):
        if s.color is None:
            s = Segment(**{**s.__dict__, "color": default_color(k)})
        items.append(item_from_segment(s, ds.charset, with_color=not palette, report=report))
    ds.set("SegmentSequence", items)
    pm = DataSet().set("PixelSpacing", [raw.format_ds(v) for v in g.pixel_spacing])
    pm.set("SliceThickness", raw.format_ds(g.slice_thickness or 0.0))
    ds.set("SharedFunctionalGroupsSequence", [DataSet().set("PixelMeasuresSequence", [pm])])
    org = generate_uid()
    ds.set("DimensionOrganizationSequence", [DataSet().set("DimensionOrganizationUID", org)])
    _put(ds, "DimensionOrganizationType", "TILED_FULL" if tiled == "full" else "TILED_SPARSE")
    if tiled == "sparse":
        dims = [] if kind == "LABELMAP" else [
            (0x0062000B, 0x0062000A, "Referenced Segment Number")]
        dims += [(0x0048021F, 0x0048021A, "Row Position In Total Image Pixel Matrix"),
                 (0x0048021E, 0x0048021A, "Column Position In Total Image Pixel Matrix")]
        ds.set("DimensionIndexSequence", [
            DataSet().update(DimensionOrganizationUID=org, DimensionIndexPointer=p,
                             FunctionalGroupPointer=fg, DimensionDescriptionLabel=label)
            for p, fg, label in dims])
    s = g.source
    ref = DataSet().update(ReferencedSOPClassUID=s.sop_class_uid,
                           ReferencedSOPInstanceUID=s.sop_instance_uid)
    ds.set("ReferencedSeriesSequence", [DataSet().update(
        SeriesInstanceUID=s.series_instance_uid, ReferencedInstanceSequence=[ref])])
    ds.set("SourceImageSequence", [ref])
    _put(ds, "TotalPixelMatrixRows", g.rows)
    _put(ds, "TotalPixelMatrixColumns", g.columns)
    _put(ds, "TotalPixelMatrixFocalPlanes", 1)
    if pyramid_uid:
        _put(ds, "PyramidUID", pyramid_uid)
    _slide_geometry(ds, g)
    ds.set("NumberOfFrames", len(frames))
    return _Header(ds, sop_class, sop_instance)


def _slide_geometry(ds, g: SlideGrid) -> None:
    """TotalPixelMatrixOriginSequence and ImageOrientationSlide, unless copied from the source."""
    from ..dicom import rawdicom as raw

    if 0x00480008 not in ds.elements:
        body = (raw.element(0x0040072A, b"DS", raw.ds(g.origin[0]))
                + raw.element(0x0040073A, b"DS", raw.ds(g.origin[1])))
        ds.put_encoded(0x00480008, raw.sequence(0x00480008, [body]))
    if 0x00480102 not in ds.elements:
        ds.put_encoded(0x00480102, raw.element(0x00480102, b"DS", raw.ds(*g.orientation)))


def _per_frame(sseg: SlideSegmentation, frames) -> Iterator[bytes]:
    """Per-frame groups of TILED_SPARSE: Derivation Image (empty: the source is referenced in
    SourceImageSequence), Frame Content, Plane Position (Slide), Segment Identification."""
    import struct

    from ..dicom import rawdicom as raw

    g = sseg.grid
    rows_present = sorted({i for _, i, _ in frames})
    cols_present = sorted({j for _, _, j in frames})
    rank_r = {i: k + 1 for k, i in enumerate(rows_present)}
    rank_c = {j: k + 1 for k, j in enumerate(cols_present)}
    seg_index = {n: k + 1 for k, n in enumerate(sseg.numbers)}
    derivation = raw.sequence(0x00089124, [])
    for n, i, j in frames:
        rp, cp = g.tile_position(i, j)
        x, y, z = g.tile_xyz(i, j)
        plane = raw.sequence(0x0048021A, [
            raw.element(0x0040072A, b"DS", raw.ds(x))
            + raw.element(0x0040073A, b"DS", raw.ds(y))
            + raw.element(0x0040074A, b"DS", raw.ds(z))
            + raw.element(0x0048021E, b"SL", struct.pack("<l", cp))
            + raw.element(0x0048021F, b"SL", struct.pack("<l", rp))])
        if n is None:
            index = (rank_r[i], rank_c[j])
        else:
            index = (seg_index[n], rank_r[i], rank_c[j])
        content = raw.sequence(0x00209111, [raw.element(0x00209157, b"UL", raw.ul(*index))])
        item = derivation + content + plane
        if n is not None:
            item += raw.sequence(0x0062000A, [raw.element(0x0062000B, b"US", raw.us(n))])
        yield item


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _bits(sseg: SlideSegmentation) -> int:
    if sseg.seg_type == "BINARY":
        return 1
    if sseg.seg_type == "FRACTIONAL":
        return 8
    return 8 if max(sseg.numbers) <= 255 else 16


def _checked(sseg: SlideSegmentation) -> None:
    if not sseg.segments:
        raise InvalidInputError("the segmentation has no segments to write")
    if min(sseg.numbers) < 1 or max(sseg.numbers) > 65535:
        raise InvalidInputError("segment numbers must be 1..65535")
    if sseg.seg_type != "LABELMAP" and sorted(sseg.numbers) != list(
            range(1, len(sseg.numbers) + 1)):
        raise InvalidInputError("BINARY / FRACTIONAL segments must be numbered 1..N "
                                "(PS3.3 C.8.20.2.5)")


def write_slide_seg(sseg: SlideSegmentation, path: str | os.PathLike, *, tiled: str = "sparse",
                    compression: str = "none", palette: bool = False,
                    series_uid: str | None = None, series_number: int = 300,
                    instance_number: int = 1, series_description: str | None = None,
                    pyramid_uid: str | None = None, report: Report | None = None,
                    rename: bool = True) -> Path:
    """Write one slide SEG; returns its path (written under a temporary name, then renamed
    unless ``rename`` is False, when the temporary path is returned)."""
    from ..dicom.codecs import COMPRESSIONS, NATIVE, codec_for
    from ..dicom.seg_writer import _stream
    from ..dicom.uids import generate_uid

    report = report if report is not None else Report()
    out = Path(path)
    if not out.parent.exists():
        raise InvalidInputError(f"{out}: output folder {out.parent} does not exist")
    tiled = tiled.lower()
    if tiled not in TILED:
        raise InvalidInputError(f"--tiled must be sparse or full, got {tiled!r}")
    _checked(sseg)
    if palette and sseg.seg_type != "LABELMAP":
        raise InvalidInputError("PALETTE COLOR is for LABELMAP segmentations only")
    name = (compression or "none").lower()
    if name not in COMPRESSIONS:
        raise InvalidInputError(f"unknown compression {compression!r}; choose one of "
                                f"{', '.join(COMPRESSIONS)}")
    bits = _bits(sseg)
    if name == "jpegls" and bits == 1:
        raise UnsupportedError("JPEG-LS cannot hold 1-bit BINARY frames; use rle, jpeg2000, "
                               "deflate or none (or --type labelmap)")
    g = sseg.grid
    ts = COMPRESSIONS[name].uid
    dtype = np.uint16 if bits == 16 else np.uint8
    encoded = None
    if ts in NATIVE:
        frames = plan_frames(sseg, tiled, report)
    else:  # one pass: the non-empty tiles are encoded as they are found
        frames, encoded = encode_frames(sseg, tiled, codec_for(ts), bits, dtype, report)
    head = _header(sseg, frames, tiled, bits, palette, series_uid or generate_uid(),
                   series_number, instance_number,
                   series_description or sseg.series_description or "Segmentation",
                   pyramid_uid, report)
    pffg = None if tiled == "full" else _per_frame(sseg, frames)
    tmp = tmp_name(out)
    try:
        with open(tmp, "wb") as fp:
            _stream(fp, head, ts, pffg,
                    _pixels(sseg, frames, dtype) if encoded is None else None,
                    len(frames), g.tile_rows, g.tile_columns, bits, encoded=encoded)
        if not rename:
            return tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
