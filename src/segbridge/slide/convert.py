"""Slide conversions: TIFF / OME-TIFF / NumPy label images and slide SEGs, in any direction.

What ``segbridge convert`` runs when an input or output is a slide (a ``.tif`` / ``.tiff`` /
``.npy`` label image, or a SEG with a total pixel matrix). Inputs are opened as tile sources,
outputs are written under a temporary name and renamed, and no output may replace an input.

Layout of label images: a 2-D image holds non-overlapping segments (pixel value = segment
number); a stack (3-D ``.npy``, or a multi-page TIFF) holds one plane per segment (segment
k + 1 = plane k): 0/1 for BINARY, 0..max for FRACTIONAL.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, Report
from ..model import Segment
from .detect import (  # noqa: F401 (is_slide_job, is_slide_seg: the CLI's hook)
    IMAGE_SUFFIXES,
    POLYGON_SUFFIXES,
    is_polygons,
    is_slide_job,
    is_slide_path,
    is_slide_seg,
)
from .model import SlideGrid, SlideSegmentation
from .tiles import DownsampledTiles, FunctionTiles, TileSource


def from_geojson(path: Path, grid: SlideGrid, seg_type: str | None,
                 report: Report) -> SlideSegmentation:
    """QuPath GeoJSON polygons on the reference level: one segment per classification, a
    LABELMAP (later features win where they overlap) or BINARY (one mask per class, overlaps
    kept)."""
    from .geojson import read_geojson

    kind = (seg_type or "LABELMAP").upper()
    if kind == "FRACTIONAL":
        raise InvalidInputError(f"{path}: polygons cannot be FRACTIONAL; use BINARY or LABELMAP")
    gl = read_geojson(path, grid.shape, report)
    segments = [Segment(s.value, s.name, color=s.color) for s in gl.segments]
    if kind == "LABELMAP":
        return SlideSegmentation(grid, segments, kind, labels=gl.tiles())
    return SlideSegmentation(grid, segments, kind,
                             masks={s.value: gl.mask(s.value) for s in gl.segments})



def _strip_values(src: TileSource, strip: int = 1024) -> np.ndarray:
    """The distinct values of a source, a strip at a time."""
    rows, cols = src.shape
    small = np.dtype(src.dtype).itemsize <= 2
    present = np.zeros(1 << (8 * np.dtype(src.dtype).itemsize) if small else 0, bool)
    seen = np.zeros(0, np.int64)
    for r0 in range(0, rows, strip):
        block = src.read(r0, min(r0 + strip, rows), 0, cols)
        if small:  # a flag per possible value: 7x np.bincount (which widens to int64)
            if block.dtype == bool:
                block = block.view(np.uint8)
            present[block[block != 0]] = True  # background (most pixels) left out first
        else:
            seen = np.union1d(seen, np.unique(block))
    if small:
        present[0] = True  # the callers drop 0 themselves
        return np.flatnonzero(present).astype(np.int64)
    return seen.astype(np.int64)


def _segment(number: int, value: int, index: int, label_map) -> Segment:
    """Segment ``number`` for label ``value``: named, coded and coloured by ``--labels``."""
    got = label_map.for_value(value) if label_map is not None else None
    return got.segment(number, index) if got is not None else Segment(number)


def from_label_image(path: str | os.PathLike, grid: SlideGrid, seg_type: str | None,
                     report: Report, labels=None) -> SlideSegmentation:
    """A TIFF / NumPy label image (or stack) on the reference slide's grid; ``labels`` (a
    ``--labels`` map, see :mod:`segbridge.labels`) names the values / planes."""
    from ..labels import load_labels
    from .tiff import open_label_image

    label_map = load_labels(labels)

    p = Path(path)
    planes = open_label_image(p)
    shape = planes[0].shape
    if shape != grid.shape:
        raise InvalidInputError(
            f"{p}: the label image is {shape[0]} x {shape[1]}, the reference slide's total "
            f"pixel matrix is {grid.rows} x {grid.columns}")
    kind = (seg_type or "").upper() or None
    if len(planes) == 1:
        src = planes[0]
        values = [int(v) for v in _strip_values(src) if v != 0]
        if not values:
            raise InvalidInputError(f"{p}: the label image is empty (no pixel above 0)")
        if max(values) > 65535:
            raise InvalidInputError(f"{p}: label value {max(values)} is above 65535")
        kind = kind or "LABELMAP"
        if kind == "FRACTIONAL":
            raise InvalidInputError(f"{p}: a 2-D label image cannot be FRACTIONAL; give a stack "
                                    "of per-segment planes")
        originals = list(values)
        if kind == "BINARY" and values != list(range(1, len(values) + 1)):
            lut = np.zeros(max(values) + 1, np.uint16 if len(values) > 255 else np.uint8)
            lut[values] = np.arange(1, len(values) + 1)
            report.note("segments renumbered 1..N for BINARY: " + ", ".join(
                f"{v}->{k + 1}" for k, v in enumerate(values) if v != k + 1))
            base = src
            src = FunctionTiles(shape, lut.dtype,
                                lambda r0, r1, c0, c1: lut[base.read(r0, r1, c0, c1)])
            values = list(range(1, len(values) + 1))
        segments = [_segment(n, v, k, label_map)
                    for k, (n, v) in enumerate(zip(values, originals, strict=True))]
        return SlideSegmentation(grid, segments, kind, labels=src)
    top = max(int(_strip_values(s).max()) for s in planes)
    kind = kind or ("BINARY" if top <= 1 else "FRACTIONAL")
    if kind == "LABELMAP":
        raise InvalidInputError(f"{p}: a stack of {len(planes)} planes cannot be one LABELMAP; "
                                "use --type binary or fractional")
    if kind == "BINARY" and top > 1:
        raise InvalidInputError(f"{p}: BINARY planes must hold 0 and 1 only (found {top})")
    if top > 255:
        raise InvalidInputError(f"{p}: fractional values must fit 8 bits (found {top})")
    masks = {k + 1: s for k, s in enumerate(planes)}
    extra = {"max_fractional_value": 255} if kind == "FRACTIONAL" else {}
    segments = [_segment(n, n, k, label_map) for k, n in enumerate(masks)]
    return SlideSegmentation(grid, segments, kind, masks=masks, **extra)


def check_same_slide(path: Path, sseg: SlideSegmentation, reference: SlideGrid) -> None:
    """A SEG converted against a reference must be on that slide level (PS3.3 C.8.20.2:
    the source image it references, or at least its frame of reference and matrix)."""
    s, r = sseg.grid.source, reference.source
    if s is not None and r is not None and s.sop_instance_uid and \
            s.sop_instance_uid != r.sop_instance_uid:
        raise InvalidInputError(f"{path}: references image {s.sop_instance_uid}, not the "
                                f"reference slide {r.sop_instance_uid}")
    if not sseg.grid.same_slide(reference):
        raise InvalidInputError(
            f"{path}: its total pixel matrix ({sseg.grid.rows} x {sseg.grid.columns}, frame of "
            f"reference {sseg.grid.frame_of_reference_uid}) is not the reference slide's "
            f"({reference.rows} x {reference.columns}, {reference.frame_of_reference_uid})")
    spacing = sseg.grid.spacing_differs(reference)
    if spacing:  # areas would change by the square of the ratio
        raise InvalidInputError(f"{path}: {spacing}; not a segmentation of that level")


def read_slide(path: str | os.PathLike, reference: SlideGrid | None, seg_type: str | None,
               report: Report, labels=None) -> SlideSegmentation:
    """Any slide input: a slide SEG, or a label image with its reference."""
    from .seg_read import read_slide_seg

    p = Path(path)
    if is_polygons(p):
        if reference is None:
            raise InvalidInputError(f"{p}: GeoJSON polygons need --reference with the VL Whole "
                                    "Slide Microscopy image they were drawn on")
        return from_geojson(p, reference, seg_type, report)
    if is_slide_path(p):
        if reference is None:
            raise InvalidInputError(f"{p}: a slide label image needs --reference with the VL "
                                    "Whole Slide Microscopy image it was drawn on")
        return from_label_image(p, reference, seg_type, report, labels)
    sseg = read_slide_seg(p, report)
    if reference is not None:
        check_same_slide(p, sseg, reference)
        moved = sseg.grid.origin_differs(reference)
        if moved:  # positions follow the image the SEG is put on: say that they move
            report.warn(f"{p}: {moved}; positions are given on the slide image's grid")
        sseg.grid = reference
    return sseg


class _Combined:
    """Non-overlapping masks as one label source (value = segment number)."""

    def __init__(self, sseg: SlideSegmentation) -> None:
        self._s = sseg
        self.shape = sseg.grid.shape
        self.dtype = np.dtype(np.uint8 if max(sseg.numbers) <= 255 else np.uint16)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        out = np.zeros((r1 - r0, c1 - c0), self.dtype)
        for n, src in self._s.masks.items():
            m = src.read(r0, r1, c0, c1) != 0
            out[m] = n
        return out


def _overlaps(sseg: SlideSegmentation, strip: int = 1024) -> bool:
    rows, cols = sseg.grid.shape
    for r0 in range(0, rows, strip):
        r1 = min(r0 + strip, rows)
        total = np.zeros((r1 - r0, cols), np.uint16)
        for src in sseg.masks.values():
            total += src.read(r0, r1, 0, cols) != 0
        if total.max(initial=0) > 1:
            return True
    return False


def output_planes(sseg: SlideSegmentation, report: Report) -> list[TileSource]:
    """What a label image output holds: one label plane when the segments do not overlap and
    are not fractional, else one plane per segment (in segment-number order)."""
    if sseg.labels is not None:
        return [sseg.labels]
    if sseg.seg_type == "BINARY" and not _overlaps(sseg):
        return [_Combined(sseg)]
    report.note(f"{len(sseg.numbers)} segment planes written as a stack (plane k = segment "
                f"{sorted(sseg.numbers)[0]} + k)" if sseg.seg_type == "FRACTIONAL" else
                "overlapping segments written as a stack of planes, one per segment")
    return [sseg.masks[n] for n in sorted(sseg.numbers)]


def downsampled(sseg: SlideSegmentation, factor: float,
                level: SlideGrid | None = None) -> SlideSegmentation:
    """The segmentation on the level ``factor`` times coarser (highdicom's nearest rule), or
    on a given image level (its size, tiles, spacing and source), as highdicom's pyramids
    from several source images are made."""
    grid = level if level is not None else sseg.grid.downsampled(factor)
    shape = grid.shape
    kw = dict(fractional_type=sseg.fractional_type,
              max_fractional_value=sseg.max_fractional_value)
    if sseg.labels is not None:
        return SlideSegmentation(grid, sseg.segments, sseg.seg_type,
                                 labels=DownsampledTiles(sseg.labels, shape=shape), **kw)
    return SlideSegmentation(grid, sseg.segments, sseg.seg_type,
                             masks={n: DownsampledTiles(s, shape=shape)
                                    for n, s in sseg.masks.items()}, **kw)


def pyramid_levels(sseg: SlideSegmentation, factors: list,
                   images: list[SlideGrid]) -> list[SlideSegmentation]:
    """One segmentation per factor: on the slide image level of that size when the
    reference folder has one (referencing it), else derived from level 0."""
    by_shape = {g.shape: g for g in images}
    out = []
    for f in factors:
        if isinstance(f, SlideGrid):  # an image level itself ("--pyramid levels")
            out.append(downsampled(sseg, sseg.grid.rows / f.rows, f))
            continue
        target = sseg.grid.downsampled(f)
        out.append(downsampled(sseg, f, by_shape.get(target.shape)))
    return out


#: in-memory pyramid levels filled while the base level is written (bytes, all levels)
TEE_BUDGET = 1 << 30


def _tee_levels(sseg: SlideSegmentation, coarser: list[SlideSegmentation]) -> dict:
    """Wrap the base sources so that writing the base level also samples every coarser level
    into memory (when they fit in :data:`TEE_BUDGET`): the pyramid then costs one read of the
    source instead of one (or two) per level. Returns {source key: LevelTee}; the base
    segmentation reads through the tees from now on."""
    from .tiles import LevelTee

    if not coarser:
        return {}
    shapes = [c.grid.shape for c in coarser]
    sources = {None: sseg.labels} if sseg.labels is not None else dict(sseg.masks)
    need = sum(r * c for r, c in shapes) * sum(np.dtype(s.dtype).itemsize
                                               for s in sources.values())
    if need > TEE_BUDGET:
        return {}
    tees = {k: LevelTee(src, shapes) for k, src in sources.items()}
    if sseg.labels is not None:
        sseg.labels = tees[None]
    else:
        sseg.masks = dict(tees)
    return tees


def _use_teed_levels(sseg: SlideSegmentation, coarser: list[SlideSegmentation],
                     tees: dict) -> None:
    """After the base level is written: every coarser level whose rows were all sampled reads
    its in-memory copy (else it keeps reading the base through DownsampledTiles)."""
    from .tiles import ArrayTiles

    for k, level in enumerate(coarser):
        if not all(t.complete(k) for t in tees.values()):
            continue
        if level.labels is not None:
            level.labels = ArrayTiles(tees[None].levels[k])
        else:
            level.masks = {n: ArrayTiles(tees[n].levels[k]) for n in level.masks}
    if sseg.labels is not None:  # the base reads its own source again
        sseg.labels = tees[None].src
    else:
        sseg.masks = {n: t.src for n, t in tees.items()}


def write_slide(sseg: SlideSegmentation, output: str | os.PathLike, *, tiled: str = "sparse",
                compression: str | None = None, palette: bool = False,
                pyramid: list[float] | None = None, series_description: str | None = None,
                series_number: int | None = None, report: Report | None = None,
                preview_reference: str | os.PathLike | None = None,
                level_images: list[SlideGrid] | None = None) -> list[Path]:
    """Write a slide segmentation: SEG (one per pyramid level, one series), TIFF or NumPy, or
    a PNG preview (over ``preview_reference``, the slide image, when given)."""
    from ..dicom.uids import generate_uid
    from ..outputs import check_target, numbered_name, tmp_name
    from .seg_write import write_slide_seg
    from .tiff import write_npy, write_tiff

    report = report if report is not None else Report()
    out = Path(output)
    check_target(out)
    suffix = out.suffix.lower()
    if suffix == ".png":
        from .image import open_slide
        from .preview import slide_preview

        image = open_slide(preview_reference) if preview_reference is not None else None
        return [slide_preview(sseg, out, image=image, report=report)]
    if suffix in POLYGON_SUFFIXES:
        from .polygons import write_geojson

        if pyramid:
            raise InvalidInputError("--pyramid is for DICOM SEG outputs")
        report.note(f"{write_geojson(sseg, out)} polygons written")
        return [out]
    if suffix in IMAGE_SUFFIXES:
        if pyramid:
            raise InvalidInputError("--pyramid is for DICOM SEG outputs")
        planes = output_planes(sseg, report)
        tmp = tmp_name(out)
        try:
            if suffix == ".npy":
                write_npy(tmp, planes)
            else:
                write_tiff(tmp, planes, tile=sseg.grid.tile_columns,
                           ome=out.name.lower().endswith((".ome.tif", ".ome.tiff")),
                           spacing_mm=sseg.grid.pixel_spacing)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
        return [out]
    if suffix != ".dcm":
        raise InvalidInputError(f"{out}: a slide segmentation is written as .dcm, .tif, .tiff, "
                                ".npy, .geojson or a .png preview")
    if sseg.grid.source is None or sseg.grid.header is None:
        raise InvalidInputError(f"{out}: writing a slide SEG needs --reference with the VL "
                                "Whole Slide Microscopy image")
    factors = list(pyramid or [])
    if not all(isinstance(f, SlideGrid) for f in factors):
        factors = sorted(set(factors))
    coarser = pyramid_levels(sseg, factors, level_images or [])
    tees = _tee_levels(sseg, coarser)
    levels = [(out, sseg)] + [(numbered_name(out, k + 2), level)
                              for k, level in enumerate(coarser)]
    series_uid = generate_uid()
    pyramid_uid = generate_uid() if factors else None
    tmps: list[Path] = []
    try:
        for k, (target, level) in enumerate(levels):
            if k == 1 and tees:
                _use_teed_levels(sseg, coarser, tees)
            tmps.append(write_slide_seg(
                level, target, tiled=tiled, compression=compression or "none",
                palette=palette, series_uid=series_uid, series_number=series_number or 300,
                instance_number=k + 1, series_description=series_description,
                pyramid_uid=pyramid_uid, report=report, rename=False))
        for tmp, (target, _) in zip(tmps, levels, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()
    stale = [numbered_name(out, k) for k in range(len(levels) + 1, len(levels) + 33)
             if numbered_name(out, k).exists()]
    if stale:  # an earlier run's levels: stored with these, they would mix two pyramids
        report.warn(f"{stale[0].name}{' ...' if len(stale) > 1 else ''} beside {out.name} "
                    "belong to an earlier run (another series / pyramid); remove them "
                    "before storing the folder")
    return [t for t, _ in levels]


def convert_slide(inputs: list[Path], output: Path, reference: Path | None, *,
                  seg_type: str | None = None, tiled: str = "sparse",
                  compression: str | None = None, palette: bool = False,
                  pyramid: list[float] | str | None = None,
                  series_description: str | None = None, series_number: int | None = None,
                  report: Report | None = None,
                  labels=None) -> tuple[SlideSegmentation, list[Path]]:
    """``segbridge convert`` for slides: one input, one output (plus pyramid levels).

    ``reference`` is one SM image, or a folder with the slide's levels (largest = level 0);
    ``pyramid`` is a list of factors, or "levels" for every level of that folder. A pyramid
    level whose size int(n / f) is a level of the folder is written on (and references)
    that image, else it is derived from level 0.
    """
    from ..outputs import numbered_name, refuse_overwrite
    from ..web.client import is_url

    report = report if report is not None else Report()
    if len(inputs) != 1:
        raise InvalidInputError("a slide conversion takes one input file")
    src = Path(inputs[0])
    if not src.is_file():
        raise InvalidInputError(f"{src}: no such file")
    images = reference_levels(reference) if reference is not None else []
    ref = pick_level(images, src, str(reference)) if images else None
    below = [g for g in images if ref is not None and g.rows * g.columns < ref.rows * ref.columns]
    if pyramid == "levels":  # every level of the reference below the input's
        if not below:
            raise InvalidInputError("--pyramid levels needs --reference with the slide's levels "
                                    "(a folder or a DICOMweb series) below the input's size")
        pyramid = below
    local_ref = reference is not None and not is_url(str(reference))
    protected = [src] + ([Path(reference)] if local_ref else [])
    if local_ref and Path(reference).is_dir():
        protected += [Path(reference) / p.name for p in Path(reference).iterdir()]
    n_levels = len(pyramid) if pyramid and isinstance(pyramid[0], SlideGrid) else \
        len(set(pyramid or []))
    outs = [output] + [numbered_name(output, k + 2) for k in range(n_levels)]
    refuse_overwrite(outs, protected)
    sseg = read_slide(src, ref, seg_type, report, labels)
    if seg_type and sseg.seg_type != seg_type.upper() and not is_slide_path(src):
        raise InvalidInputError(f"{src}: is a {sseg.seg_type} SEG; converting it to "
                                f"{seg_type.upper()} is not supported for slides")
    return sseg, write_slide(sseg, output, tiled=tiled, compression=compression,
                             palette=palette, pyramid=pyramid,
                             series_description=series_description,
                             series_number=series_number, report=report,
                             preview_reference=reference, level_images=below)


def reference_levels(reference, *, options=None) -> list[SlideGrid]:
    """The levels of a slide reference, largest first: one SM file, a folder of its levels
    (``reference.read_sm_levels``) or a DICOMweb slide series (metadata only)."""
    from ..web.client import is_url
    from .reference import read_sm_levels

    if is_url(str(reference)):
        from .image import open_slide

        return [lv.grid for lv in open_slide(str(reference), options=options).levels]
    return read_sm_levels(reference)


def pick_level(levels: list[SlideGrid], src: str | os.PathLike | None,
               where: str) -> SlideGrid:
    """The level a slide input lies on: the one of its size (a label image or SEG), the
    largest for GeoJSON (its coordinates are full-resolution pixels) or one file as given."""
    if len(levels) == 1 or src is None:
        return levels[0]
    shape = _shape_of(Path(src))
    if shape is None:
        return levels[0]
    for g in levels:
        if g.shape == shape:
            return g
    sizes = ", ".join(f"{g.rows} x {g.columns}" for g in levels)
    raise InvalidInputError(f"{src}: {shape[0]} x {shape[1]} is the size of no level of "
                            f"{where} ({sizes})")


def slide_reference(reference, src: str | os.PathLike | None = None, *,
                    options=None) -> SlideGrid:
    """The slide level a conversion is placed on (see :func:`pick_level`); only metadata is
    read, never a tile."""
    return pick_level(reference_levels(reference, options=options), src, str(reference))


def _shape_of(path: Path) -> tuple[int, int] | None:
    """Rows x columns of a slide label image or slide SEG, from its header (None: GeoJSON)."""
    if is_polygons(path):
        return None
    if is_slide_path(path):
        from .tiff import open_label_image

        return tuple(open_label_image(path)[0].shape)  # type: ignore[return-value]
    from .seg_read import read_slide_seg

    return read_slide_seg(path).grid.shape


def preview_file(path: str | os.PathLike, image, output: str | os.PathLike, *,
                 max_side: int = 1024, options=None, report: Report | None = None) -> Path:
    """``segbridge render`` for slides: a slide SEG (or a label image, placed on the level of
    ``image`` that has its size) drawn over ``image`` (local files or a DICOMweb series URL)."""
    from .image import open_slide
    from .preview import slide_preview

    report = report if report is not None else Report()
    slide = open_slide(image, options=options)
    p = Path(path)
    level = None
    if is_polygons(p):
        level = slide.levels[0]
    elif is_slide_path(p):
        from .tiff import open_label_image

        shape = tuple(open_label_image(p)[0].shape)
        level = next((lv for lv in slide.levels if lv.grid.shape == shape), None)
        if level is None:
            raise InvalidInputError(f"{p}: {shape[0]} x {shape[1]} matches no level of "
                                    f"{slide.where}")
    sseg = read_slide(p, level.grid if level is not None else None, None, report)
    return slide_preview(sseg, output, image=slide, max_side=max_side, report=report)
