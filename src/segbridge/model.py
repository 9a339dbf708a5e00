"""The one in-memory model every reader produces and every writer consumes.

A :class:`Segmentation` is a :class:`~segbridge.geometry.Grid`, a list of :class:`Segment`
descriptions and the voxels. Labelled data lives in *layers*: integer label arrays on the grid,
each segment bound to one ``(layer, value)``. Segments that do not overlap share a layer;
overlapping segments go to further layers (greedy first-fit, as Slicer and Cornerstone3D do),
so overlap is never flattened. Fractional data (probability / occupancy) is kept per segment as
uint8 arrays scaled to ``max_fractional_value``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .codes import TISSUE, Code
from .colors import RGB, default_color
from .errors import InvalidInputError, Report
from .geometry import Grid

ALGORITHM_TYPES = ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC")
FRACTIONAL_TYPES = ("PROBABILITY", "OCCUPANCY")


@dataclass
class Segment:
    """What one segment is: number, label, coded meaning, colour and provenance."""

    number: int
    label: str = ""
    description: str | None = None
    category: Code = TISSUE
    type: Code = TISSUE
    type_modifier: Code | None = None
    anatomic_region: Code | None = None
    anatomic_region_modifier: Code | None = None
    algorithm_type: str = "MANUAL"
    algorithm_name: str | None = None
    color: RGB | None = None
    tracking_id: str | None = None
    tracking_uid: str | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.number = int(self.number)
        if not self.label:
            self.label = f"Segment {self.number}"
        self.algorithm_type = (self.algorithm_type or "MANUAL").upper()
        if self.algorithm_type not in ALGORITHM_TYPES:
            raise InvalidInputError(
                f"segment {self.number}: algorithm type must be one of {', '.join(ALGORITHM_TYPES)},"
                f" got {self.algorithm_type!r}")
        if self.color is not None:
            self.color = tuple(int(c) for c in self.color)  # type: ignore[assignment]


@dataclass
class SourceInstance:
    """One source image slice: SOP class and instance, and frame number for multi-frame images."""

    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None = None


@dataclass
class SourceRef:
    """Where a segmentation's grid came from: study, series, frame of reference, every slice.

    ``instances[k]`` is the source image of grid slice ``k``. ``header`` carries the patient,
    study and equipment attributes a DICOM writer copies: normally the elements as the source
    file encodes them (``rawdicom.EncodedHeader``, from an image series or a SEG), or a pydicom
    Dataset (DICOMweb metadata, API callers). The ``*_strings`` keep the exact DS
    text of the source geometry so a writer can copy it character for character (viewers compare
    orientation with a 1e-3 tolerance and positions with 1e-3 mm).
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None
    instances: list[SourceInstance]
    header: object | None = None
    position_strings: list[list[str]] | None = None
    orientation_strings: list[str] | None = None
    pixel_spacing_strings: list[str] | None = None
    slice_thickness: str | None = None
    modality: str | None = None
    lossy: bool = False
    #: False for *frame space*: 2-D / cine images without patient geometry (US, XA, XC, CR,
    #: DX, MG). The grid is then nominal (origin 0, identity direction, slice k = referenced
    #: frame k, pixel spacing as known or 1): ``instances`` is the only link to the images, and
    #: no writer may derive positions, orientation or a frame of reference from the grid.
    has_geometry: bool = True
    #: frame space: the source's PatientOrientation (PS3.3 C.7.6.1.1.1), copied into SEGs
    patient_orientation: list[str] | None = None
    #: the local files of the source series: no writer may put an output over them
    files: tuple[str, ...] = ()

    @property
    def frame_space(self) -> bool:
        """True when slices are referenced frames of 2-D images, not planes in patient space."""
        return not self.has_geometry

    def index_of(self, sop_instance_uid: str, frame_number: int | None = None) -> int | None:
        """Grid slice index of a referenced instance (and frame), or None."""
        lut = getattr(self, "_lut", None)
        if lut is None:
            lut = {(i.sop_instance_uid, i.frame_number or None): k
                   for k, i in enumerate(self.instances)}
            object.__setattr__(self, "_lut", lut)
        hit = lut.get((sop_instance_uid, frame_number or None))
        if hit is None and frame_number in (None, 1):
            hit = lut.get((sop_instance_uid, None))
            if hit is None:
                hit = lut.get((sop_instance_uid, 1))
        return hit


def label_dtype(max_value: int) -> np.dtype:
    """Smallest unsigned integer type that holds ``max_value``."""
    if max_value <= 255:
        return np.dtype(np.uint8)
    if max_value <= 65535:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box of the true voxels of a 3-D mask, or None if empty."""
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(np.any(mask, axis=other))
        if hit.size == 0:
            return None
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


class SegmentList:
    """What every segmentation model answers from its ``segments`` (volume and slide)."""

    segments: list[Segment]

    @property
    def numbers(self) -> list[int]:
        return [s.number for s in self.segments]

    def segment(self, number: int) -> Segment:
        for s in self.segments:
            if s.number == number:
                return s
        raise KeyError(f"no segment number {number}")


class Segmentation(SegmentList):
    """Segments on a grid, stored as layers of labels (or per-segment fractions)."""

    def __init__(self, grid: Grid, segments: Sequence[Segment], *,
                 layers: Sequence[np.ndarray] | None = None,
                 bindings: dict[int, tuple[int, int]] | None = None,
                 fractional: dict[int, np.ndarray] | None = None,
                 fractional_type: str = "PROBABILITY",
                 max_fractional_value: int = 255,
                 source: SourceRef | None = None,
                 series_description: str | None = None,
                 series_number: int | None = None,
                 content_label: str | None = None,
                 content_description: str | None = None,
                 content_creator: str | None = None,
                 report: Report | None = None,
                 read_from: Sequence[str | os.PathLike] = ()) -> None:
        self.grid = grid
        self.segments: list[Segment] = list(segments)
        self.layers: list[np.ndarray] = [np.asarray(x) for x in (layers or [])]
        self.bindings: dict[int, tuple[int, int]] = dict(bindings or {})
        self.fractional = fractional
        self.fractional_type = fractional_type.upper()
        self.max_fractional_value = int(max_fractional_value)
        self.source = source
        self.series_description = series_description
        self.series_number = series_number
        self.content_label = content_label
        self.content_description = content_description
        self.content_creator = content_creator
        self.report = report if report is not None else Report()
        #: files this segmentation was read or derived from (inputs, sidecars, the reference
        #: series): carried by every derived model, so no writer can put an output over them
        self.read_from: tuple[Path, ...] = tuple(Path(p) for p in read_from)
        self._check()

    # -- invariants ---------------------------------------------------------------------------
    def _check(self) -> None:
        numbers = [s.number for s in self.segments]
        if len(set(numbers)) != len(numbers):
            raise InvalidInputError(f"segment numbers are not unique: {numbers}")
        for layer in self.layers:
            if layer.shape != self.grid.shape:
                raise InvalidInputError(
                    f"layer shape {layer.shape} does not match grid shape {self.grid.shape}")
            if layer.dtype.kind not in "ui":
                raise InvalidInputError(f"layers must hold integers, got {layer.dtype}")
        if self.fractional is not None:
            if self.fractional_type not in FRACTIONAL_TYPES:
                raise InvalidInputError(
                    f"fractional type must be PROBABILITY or OCCUPANCY, got {self.fractional_type}")
            if not 1 <= self.max_fractional_value <= 255:
                raise InvalidInputError("max fractional value must be 1..255 (8-bit frames)")
            for n in numbers:
                if n not in self.fractional:
                    raise InvalidInputError(f"fractional segment {n} has no data")
                if self.fractional[n].shape != self.grid.shape:
                    raise InvalidInputError(f"fractional segment {n} has the wrong shape")
        else:
            for n in numbers:
                if n not in self.bindings:
                    raise InvalidInputError(f"segment {n} is not bound to a layer value")
                layer, value = self.bindings[n]
                if not 0 <= layer < len(self.layers) or value == 0:
                    raise InvalidInputError(f"segment {n} has an invalid binding {(layer, value)}")
            seen = set(self.bindings.values())
            if len(seen) != len(self.bindings):
                raise InvalidInputError("two segments are bound to the same layer value")

    # -- access ------------------------------------------------------------------------------
    @property
    def is_fractional(self) -> bool:
        return self.fractional is not None

    @property
    def frame_space(self) -> bool:
        """True when the grid is frame space (2-D / cine source, no patient geometry)."""
        return self.source is not None and not self.source.has_geometry


    def mask(self, number: int) -> np.ndarray:
        """Boolean array of one segment, wherever it lives."""
        if self.fractional is not None:
            return self.fractional[number] > 0
        layer, value = self.bindings[number]
        return self.layers[layer] == value

    def fraction(self, number: int) -> np.ndarray:
        """Stored fractional values (0..max_fractional_value) of one segment, as uint8."""
        if self.fractional is not None:
            return self.fractional[number]
        return self.mask(number).astype(np.uint8) * np.uint8(self.max_fractional_value)

    def slice_has(self, number: int) -> np.ndarray:
        """Per-slice flag: does the segment have voxels on slice k."""
        if self.fractional is not None:
            return np.any(self.fractional[number], axis=(1, 2))
        layer, value = self.bindings[number]
        return np.any(self.layers[layer] == value, axis=(1, 2))

    def voxel_counts(self) -> dict[int, int]:
        """Number of voxels of every segment (overlap counted in each segment)."""
        if self.fractional is not None:
            return {n: int(np.count_nonzero(a)) for n, a in self.fractional.items()}
        out = {n: 0 for n in self.numbers}
        by_layer: dict[int, dict[int, int]] = {}
        for n, (layer, value) in self.bindings.items():
            by_layer.setdefault(layer, {})[value] = n
        for layer, values in by_layer.items():
            arr = self.layers[layer]
            size = max(max(values), int(arr.max(initial=0))) + 1
            counts = np.zeros(size, np.int64)
            for k in range(arr.shape[0]):
                counts += np.bincount(arr[k].ravel(), minlength=size)
            for value, n in values.items():
                out[n] = int(counts[value])
        return out

    def bounding_boxes(self) -> dict[int, tuple[slice, slice, slice] | None]:
        """Index-space bounding box ([z, y, x] slices) of every segment, None when empty.

        One pass per layer over its row runs (``_run_extents``): all of the layer's values at
        once, instead of one full-volume comparison per segment.
        """
        if self.fractional is not None:
            return {n: _bbox(a > 0) for n, a in self.fractional.items()}
        out: dict[int, tuple[slice, slice, slice] | None] = {n: None for n in self.numbers}
        by_layer: dict[int, dict[int, int]] = {}
        for n, (layer, value) in self.bindings.items():
            by_layer.setdefault(layer, {})[value] = n
        for li, values in by_layer.items():
            arr = self.layers[li]
            size = max(max(values), int(arr.max(initial=0))) + 1
            zs, ys, x_first, x_last = _run_extents(arr, size)
            for value, n in values.items():
                z = np.flatnonzero(zs[:, value])
                if z.size:
                    y = np.flatnonzero(ys[:, value])
                    x0 = int(np.argmax(x_first[:, value]))
                    x1 = len(x_last) - int(np.argmax(x_last[::-1, value]))
                    out[n] = (slice(int(z[0]), int(z[-1]) + 1), slice(int(y[0]), int(y[-1]) + 1),
                              slice(x0, x1))
        return out

    def mask_in(self, number: int, box: tuple[slice, ...]) -> np.ndarray:
        """Boolean mask of one segment inside an index box (cheap for small segments)."""
        if self.fractional is not None:
            return self.fractional[number][box] > 0
        layer, value = self.bindings[number]
        return self.layers[layer][box] == value

    def has_overlap(self) -> bool:
        """True when at least one voxel belongs to two segments."""
        if self.fractional is not None:
            occupied = None
            for a in self.fractional.values():
                m = a > 0
                if occupied is not None and np.any(occupied & m):
                    return True
                occupied = m if occupied is None else occupied | m
            return False
        used = sorted({layer for layer, _ in self.bindings.values()})
        if len(used) < 2:
            return False
        count = np.zeros(self.grid.shape, np.uint8)
        for layer in used:
            count += self.layers[layer] != 0
        return bool((count > 1).any())

    def labelmap(self) -> np.ndarray:
        """All segments in one label array (values = segment numbers); fails on overlap."""
        if self.fractional is not None:
            raise InvalidInputError("a fractional segmentation has no labelmap; threshold it first")
        if self.has_overlap():
            raise InvalidInputError("segments overlap, so they do not fit in one labelmap")
        nmax = max(self.numbers, default=0)
        dtype = label_dtype(nmax)
        identity = all(v == n for n, (_, v) in self.bindings.items())
        used = sorted({layer for layer, _ in self.bindings.values()})
        if identity and len(used) == 1:
            return self.layers[used[0]].astype(dtype, copy=False)
        out = np.zeros(self.grid.shape, dtype)
        for li in used:  # no overlap: the layers' remapped values simply add up
            layer = self.layers[li]
            top = max([int(layer.max(initial=0))] + [v for bl, v in self.bindings.values()
                                                     if bl == li])
            lut = np.zeros(top + 1, dtype)
            for n, (bl, value) in self.bindings.items():
                if bl == li:
                    lut[value] = n
            out += lut[layer]
        return out

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_labelmap(cls, grid: Grid, labels: np.ndarray,
                      segments: Sequence[Segment] | None = None, **kw) -> Segmentation:
        """One label array -> segmentation; segments default to one per non-zero value."""
        labels = np.asarray(labels)
        if labels.shape != grid.shape:
            raise InvalidInputError(f"labelmap shape {labels.shape} != grid shape {grid.shape}")
        values = present_values(labels)
        if segments is None:
            segments = [Segment(int(v), color=default_color(i)) for i, v in enumerate(values)]
        segments = list(segments)
        described = {s.number for s in segments}
        # a value no segment describes is kept as "Segment N" (never dropped, never written as
        # an undescribed label-map value), as the NIfTI / NRRD readers do
        undescribed = [int(v) for v in values if int(v) not in described]
        segments += [Segment(v, f"Segment {v}", color=default_color(len(segments) + i))
                     for i, v in enumerate(undescribed)]
        nmax = max([s.number for s in segments] + [int(labels.max()) if labels.size else 0])
        layer = labels.astype(label_dtype(nmax), copy=False)
        bindings = {s.number: (0, s.number) for s in segments}
        seg = cls(grid, segments, layers=[layer], bindings=bindings, **kw)
        if undescribed:
            seg.report.warn(f"label values {undescribed[:10]} are described by no segment; "
                            "kept as 'Segment N'")
        return seg

    @classmethod
    def from_masks(cls, grid: Grid, items: Iterable[tuple[Segment, np.ndarray]],
                   **kw) -> Segmentation:
        """Segments given as boolean masks -> layers by greedy first-fit (overlap kept)."""
        segments: list[Segment] = []
        layers: list[np.ndarray] = []
        bindings: dict[int, tuple[int, int]] = {}
        items = list(items)
        dtype = label_dtype(max((s.number for s, _ in items), default=1))
        for seg, mask in items:
            mask = np.asarray(mask, bool)
            if mask.shape != grid.shape:
                raise InvalidInputError(f"mask of segment {seg.number} has shape {mask.shape}, "
                                        f"grid is {grid.shape}")
            segments.append(seg)
            layer = place_first_fit(layers, mask, seg.number, grid.shape, dtype)
            bindings[seg.number] = (layer, seg.number)
        if not layers:
            layers.append(np.zeros(grid.shape, dtype))
        return cls(grid, segments, layers=layers, bindings=bindings, **kw)

    def copy_meta(self, **changes) -> Segmentation:
        """Same voxels, some attributes changed (segments, source, series description...)."""
        kw = dict(layers=self.layers, bindings=self.bindings, fractional=self.fractional,
                  fractional_type=self.fractional_type,
                  max_fractional_value=self.max_fractional_value, source=self.source,
                  series_description=self.series_description, series_number=self.series_number,
                  content_label=self.content_label, content_description=self.content_description,
                  content_creator=self.content_creator, report=self.report,
                  read_from=self.read_from)
        grid = changes.pop("grid", self.grid)
        segments = changes.pop("segments", self.segments)
        kw.update(changes)
        return Segmentation(grid, segments, **kw)

    def renumbered(self, mapping: dict[int, int]) -> Segmentation:
        """Give segments new numbers (values in the layers stay; only bindings change)."""
        segs = [replace(s, number=mapping.get(s.number, s.number)) for s in self.segments]
        if self.fractional is not None:
            frac = {mapping.get(n, n): a for n, a in self.fractional.items()}
            return self.copy_meta(segments=segs, fractional=frac)
        bind = {mapping.get(n, n): b for n, b in self.bindings.items()}
        return self.copy_meta(segments=segs, bindings=bind)

    def values_as_numbers(self) -> Segmentation:
        """The same segmentation with each segment stored under its own number as the voxel
        value (label files show stored values: a renumbering must reach the voxels)."""
        if self.fractional is not None or all(n == v for n, (_, v) in self.bindings.items()):
            return self
        top = max(self.bindings, default=0)
        layers = list(self.layers)
        for li, layer in enumerate(layers):
            mine = {n: v for n, (bl, v) in self.bindings.items() if bl == li}
            if all(n == v for n, v in mine.items()):
                continue
            lut = np.zeros(max([int(layer.max(initial=0)), *mine.values()]) + 1,
                           label_dtype(top))
            for n, v in mine.items():
                lut[v] = n
            layers[li] = lut[layer]
        bindings = {n: (bl, n) for n, (bl, _) in self.bindings.items()}
        return self.copy_meta(layers=layers, bindings=bindings)

    def subset(self, numbers: Iterable[int]) -> Segmentation:
        """Only the given segments (voxels of the others are dropped from the layers)."""
        keep = set(numbers)
        segs = [s for s in self.segments if s.number in keep]
        if self.fractional is not None:
            return self.copy_meta(segments=segs,
                                  fractional={n: self.fractional[n] for n in keep})
        # keep the layer structure: one look-up per used layer zeroes the dropped segments
        used = sorted({self.bindings[s.number][0] for s in segs})
        layers, bindings = [], {}
        for new_index, li in enumerate(used):
            layer = self.layers[li]
            top = max([int(layer.max(initial=0))] + [v for bl, v in self.bindings.values()
                                                     if bl == li])
            lut = np.zeros(top + 1, layer.dtype)
            for s in segs:
                bl, value = self.bindings[s.number]
                if bl == li:
                    lut[value] = value
                    bindings[s.number] = (new_index, value)
            layers.append(lut[layer])
        if not layers:
            layers.append(np.zeros(self.grid.shape, np.uint8))
        return Segmentation(self.grid, segs, layers=layers, bindings=bindings, **self._meta_kw())

    def _meta_kw(self) -> dict:
        return dict(source=self.source, series_description=self.series_description,
                    series_number=self.series_number, content_label=self.content_label,
                    content_description=self.content_description,
                    content_creator=self.content_creator, report=self.report,
                    read_from=self.read_from)

    def compacted(self) -> Segmentation:
        """Repack layers by first-fit and make layer values equal segment numbers."""
        if self.fractional is not None:
            return self
        return Segmentation.from_masks(
            self.grid, [(s, self.mask(s.number)) for s in self.segments], **self._meta_kw())

    def __repr__(self) -> str:
        kind = "fractional" if self.is_fractional else f"{len(self.layers)} layer(s)"
        return (f"Segmentation({len(self.segments)} segments, {kind}, "
                f"grid {self.grid.describe()})")



def _run_extents(arr: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Where the values ``0 < v < size`` of a [z, y, x] label array occur, from its row runs.

    Returns boolean tables ``zs[z, v]``, ``ys[y, v]`` (value present in that slice / row) and
    ``x_first[x, v]`` / ``x_last[x, v]`` (a run of ``v`` starts / ends at column x), so a
    value's box is read off the first and last True of each. Empty rows are dropped first
    with a word-wise test; only the rows that hold labels are scanned for run boundaries,
    so the cost follows the labelled rows, not the volume.
    """
    nz, ny, nx = arr.shape
    zs = np.zeros((nz, size), bool)
    ys = np.zeros((ny, size), bool)
    x_first = np.zeros((nx, size), bool)
    x_last = np.zeros((nx, size), bool)
    if arr.size == 0:
        return zs, ys, x_first, x_last
    rows = arr.reshape(nz * ny, nx)
    step = max(1, (16 << 20) // max(1, nx * arr.itemsize))  # ~16 MB of rows at a time
    words = rows.dtype.itemsize * nx % 8 == 0 and rows.flags.c_contiguous
    for r0 in range(0, nz * ny, step):
        block = rows[r0:r0 + step]
        if words:  # a row is empty when all its 8-byte words are 0
            used = np.flatnonzero(block.view(np.uint64).any(axis=1))
        else:
            used = np.flatnonzero(block.any(axis=1))
        if used.size == 0:
            continue
        sub = block[used]
        change = np.empty(sub.shape, bool)
        np.not_equal(sub[:, 1:], sub[:, :-1], out=change[:, 1:])
        np.not_equal(sub[:, 0], 0, out=change[:, 0])
        starts = np.flatnonzero(change)
        row = starts // nx
        # a run ends just before the next run starts in the same row, or at the row's end
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[-1] = starts[-1] + nx
        ends = np.minimum(ends, (row + 1) * nx) - 1
        v = sub.reshape(-1)[starts].astype(np.int64)
        keep = v != 0
        v, row = v[keep], row[keep]
        first, last = starts[keep] - row * nx, ends[keep] - row * nx
        g = used[row] + r0  # global row index = z * ny + y
        zs |= np.bincount(g // ny * size + v, minlength=nz * size).reshape(nz, size) > 0
        ys |= np.bincount(g % ny * size + v, minlength=ny * size).reshape(ny, size) > 0
        x_first |= np.bincount(first * size + v, minlength=nx * size).reshape(nx, size) > 0
        x_last |= np.bincount(last * size + v, minlength=nx * size).reshape(nx, size) > 0
    return zs, ys, x_first, x_last

def present_values(labels: np.ndarray) -> list[int]:
    """Sorted non-zero values present in an integer label array.

    Small unsigned types are counted in slabs: one np.bincount over a whole volume first
    converts it to int64 (8x the memory, and 10x slower than counting slab by slab). Only the
    non-zero voxels of a slab are counted when they are fewer than half of it: whole-body AI
    label maps are ~90 % background, and counting 10 % of the voxels is 8x faster.
    """
    if labels.size == 0:
        return []
    if labels.dtype.kind == "u" and labels.dtype.itemsize <= 2:
        size = int(labels.max()) + 1
        seen = np.zeros(size, bool)
        flat = labels.reshape(labels.shape[0], -1) if labels.ndim > 1 else labels[None]
        step = max(1, (1 << 22) // max(flat.shape[1], 1))
        for i in range(0, flat.shape[0], step):
            slab = flat[i:i + step].ravel()
            nonzero = slab[slab != 0]
            if nonzero.size * 2 < slab.size:
                slab = nonzero
            if slab.size:
                seen |= np.bincount(slab, minlength=size) > 0
        return [int(v) for v in np.flatnonzero(seen) if v != 0]
    vals = np.unique(labels)
    return [int(v) for v in vals if v != 0]


def require_segmentation(obj, what: str) -> Segmentation:
    """``obj`` when it is a Segmentation, else a one-line error (API callers pass paths or
    arrays: read them with ``segbridge.read`` / ``from_array`` first)."""
    if not isinstance(obj, Segmentation):
        raise InvalidInputError(f"{what} takes a Segmentation (from segbridge.read or "
                                f"from_array), not {type(obj).__name__}")
    return obj


def segment_numbers(values, what: str = "segments") -> list[int]:
    """Segment numbers given by an API caller: an iterable of whole numbers (not a string)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{what} must be segment numbers, e.g. [1, 3]; got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InvalidInputError(f"{what} must be segment numbers, e.g. [1, 3]; got {v!r}")
        out.append(int(v))
    return out


def place_first_fit(layers: list[np.ndarray], mask: np.ndarray, value: int,
                    shape: tuple[int, int, int], dtype: np.dtype,
                    box: tuple[slice, ...] | None = None) -> int:
    """Put ``mask`` with ``value`` into the first layer where it collides with nothing.

    ``mask`` covers the whole grid, or only ``box`` when one is given. Adds a layer when
    needed and returns the index of the layer used.
    """
    if box is None:
        box = _bbox(mask)
        sub = mask[box] if box is not None else None
    else:
        inner = _bbox(mask)
        if inner is not None:  # tighten the given box to the voxels that are set
            sub = mask[inner]
            box = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in
                        zip(box, inner, strict=True))
        else:
            box = sub = None
    if box is None:
        if not layers:
            layers.append(np.zeros(shape, dtype))
        return 0
    for i, layer in enumerate(layers):
        if not np.any(layer[box][sub]):
            if layer.dtype.itemsize < np.dtype(dtype).itemsize:
                layer = layers[i] = layer.astype(dtype)
            layer[box][sub] = value
            return i
    layer = np.zeros(shape, dtype)
    layer[box][sub] = value
    layers.append(layer)
    return len(layers) - 1
