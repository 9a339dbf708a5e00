"""Label volumes (from NIfTI, NRRD, seg.nrrd, numpy) -> one :class:`Segmentation`.

Shared by every volume format: label checks, metadata (dcmqi JSON or embedded Slicer keys),
numbering, putting each volume on the target grid, and packing segments from several files or
layers (which may overlap) into as few layers as possible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..colors import default_color
from ..errors import GeometryMismatchError, InvalidInputError, Report
from ..geometry import Grid, align_array
from ..model import Segment, Segmentation, label_dtype, present_values
from .dcmqi_json import check_meta, segment_from_json, series_fields


@dataclass
class LabelVolume:
    """One 3-D volume of labels (or of fractions) and what is known about its segments."""

    grid: Grid
    data: np.ndarray
    name: str
    segments: list[tuple[Segment, int]] | None = None  # (segment, label value) if embedded
    fractional: bool = False
    #: the file claims no place in space (NIfTI qform_code = sform_code = 0): its grid is a
    #: reader's fallback, good for frame space (placed by index), never for patient space
    no_space: bool = False


def as_labels(arr: np.ndarray, name: str) -> np.ndarray:
    """Check that an array holds non-negative integer labels and return it as unsigned ints."""
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind in "ui":
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise InvalidInputError(f"{name}: negative label values (min {arr.min()})")
        vmax = int(arr.max()) if arr.size else 0
        if vmax > 65535:
            raise InvalidInputError(f"{name}: label value {vmax} is above 65535")
        return arr.astype(label_dtype(vmax), copy=False)
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise InvalidInputError(f"{name}: labels contain NaN values")
        if np.isinf(arr).any():
            raise InvalidInputError(f"{name}: labels contain infinite values")
        rounded = np.round(arr)
        if not np.array_equal(rounded, arr):
            bad = arr[rounded != arr][0]
            raise InvalidInputError(
                f"{name}: non-integer label values (e.g. {bad:g}); pass --type fractional if "
                "these are probabilities")
        lo, hi = (float(rounded.min()), float(rounded.max())) if rounded.size else (0.0, 0.0)
        if lo < 0:
            raise InvalidInputError(f"{name}: negative label values (min {lo:g})")
        if hi > 65535:  # checked before the cast: a float beyond int64 has no integer value
            raise InvalidInputError(f"{name}: label value {hi:g} is above 65535")
        return as_labels(rounded.astype(np.int64), name)
    raise InvalidInputError(f"{name}: unsupported voxel type {arr.dtype} for labels")


def wants_fraction(fractional: bool | str | None, kind: str, tagged: bool = False) -> bool:
    """Whether a volume of dtype kind ``kind`` is read as fractions: ``fractional`` True /
    False decides; None follows the file's own tag; ``"auto"`` (``--type fractional`` without
    ``--fractional``) takes float volumes as probabilities and integer ones as labels (a
    label image is not a probability map of 1/255, 2/255...)."""
    if fractional == "auto":
        return tagged or kind == "f"
    return bool(fractional) if fractional is not None else tagged


def note_auto_labels(labels: np.ndarray, name: str, fractional, report) -> None:
    """With ``fractional="auto"``, an integer volume read as labels that holds values above 1
    might have been stored fractions (0..255): say so, never silently."""
    if fractional == "auto" and report is not None and labels.size and int(labels.max()) > 1:
        report.warn(f"{name}: integer values read as labels (one segment per value, "
                    f"up to {int(labels.max())}); pass --fractional if they are stored "
                    "fractions 0..255")


def as_fraction(arr: np.ndarray, name: str, max_value: int = 255) -> np.ndarray:
    """Probabilities in [0, 1] (float), stored values 0..max (integers), or a mask (bool:
    True is certain, max) -> uint8 0..max."""
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8) * np.uint8(max_value)
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise InvalidInputError(f"{name}: fractional values contain NaN")
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise InvalidInputError(f"{name}: fractional values must lie in [0, 1] "
                                    f"(found {arr.min():g}..{arr.max():g})")
        return np.round(arr.astype(np.float64) * max_value).astype(np.uint8)
    if arr.size and (arr.min() < 0 or arr.max() > max_value):
        raise InvalidInputError(f"{name}: fractional values must lie in 0..{max_value}")
    return arr.astype(np.uint8)


def assemble(volumes: list[LabelVolume], *, meta: dict | None = None,
             grid: Grid | None = None, resample: bool = False,
             report: Report | None = None, source=None,
             fractional_type: str = "PROBABILITY") -> Segmentation:
    """Put every volume on ``grid`` (default: the first volume's) and build the model."""
    report = report if report is not None else Report()
    if not volumes:
        raise InvalidInputError("no input volumes")
    target = grid if grid is not None else volumes[0].grid
    if meta and (not isinstance(meta, dict) or "segmentAttributes" in meta):
        check_meta(meta)  # a dict given through the API is checked like a file
    attrs = meta.get("segmentAttributes") if meta else None
    if attrs is not None and len(attrs) != len(volumes):
        raise InvalidInputError(
            f"the metadata describes {len(attrs)} input volume(s) (segmentAttributes) but "
            f"{len(volumes)} were given")
    extra = series_fields(meta) if meta else {}
    if any(v.fractional for v in volumes):
        extra["fractional_type"] = fractional_type
        return _assemble_fractional(volumes, attrs, target, resample, report, source, extra)

    # which segments does each volume hold, with which label value
    per_volume: list[list[tuple[Segment, int]]] = []
    arrays: list[np.ndarray] = []
    index = 0
    for i, vol in enumerate(volumes):
        data = on_target(vol, target, source, resample, report)
        arrays.append(data)
        values = present_values(data)
        described: dict[int, Segment] = {}
        if attrs is not None:
            for entry in attrs[i]:
                v = int(entry["labelID"])
                described[v] = segment_from_json(entry, v, index + len(described))
            for v in sorted(set(described) - set(values)):
                report.warn(f"{vol.name}: labelID {v} from the metadata is not in the volume; "
                            "its segment is kept empty")
        elif vol.segments is not None:
            described = {v: s for s, v in vol.segments}
        pairs = []
        for v in sorted(set(values) | set(described)):
            if v in described:
                pairs.append((described[v], v))
            else:
                if attrs is not None or vol.segments is not None:
                    report.warn(f"{vol.name}: label value {v} is not described by the metadata; "
                                "added with default attributes")
                label = f"Segment {v}" if len(volumes) == 1 else f"{_stem(vol.name)} {v}"
                pairs.append((Segment(v, label, color=default_color(index)), v))
            index += 1
        per_volume.append(pairs)

    # numbering: embedded segment numbers (seg.nrrd), else label values when unique
    all_values = [v for pairs in per_volume for _, v in pairs]
    embedded = [s.number for pairs in per_volume for s, _ in pairs]
    if attrs is None and all(v.segments is not None for v in volumes) and \
            len(embedded) == len(set(embedded)):
        numbers = [[s.number for s, _ in pairs] for pairs in per_volume]
    elif len(all_values) == len(set(all_values)):
        numbers = [[v for _, v in pairs] for pairs in per_volume]
    else:
        counter = iter(range(1, len(all_values) + 1))
        numbers = [[next(counter) for _ in pairs] for pairs in per_volume]
        report.note("label values repeat across input volumes; segments numbered 1..N in "
                    "input order")
    segments: list[Segment] = []
    for pairs, nums in zip(per_volume, numbers, strict=True):
        for (s, _), n in zip(pairs, nums, strict=True):
            s.number = n
            segments.append(s)
    order = sorted(segments, key=lambda s: s.number)
    kw = dict(report=report, source=source, **extra)
    if len(arrays) == 1:
        identity = all(v == n for (_, v), n in zip(per_volume[0], numbers[0], strict=True))
        if identity:
            dt = label_dtype(max(numbers[0], default=1))
            layer = arrays[0].astype(dt, copy=False)
            return Segmentation(target, order, layers=[layer],
                                bindings={n: (0, n) for n in numbers[0]}, **kw)
    # several volumes: each goes whole into the first layer where it collides with nothing
    # (a volume never overlaps itself), else into a new layer -- at most one layer per input.
    # Collisions are tested on one occupancy table over the voxels some volume labels (rows:
    # layers), one numpy call per volume: work grows with what the data hold, not with
    # layers x volumes x grid size (issue 11: 3,000 tiny overlapping volumes took 32 s).
    layers: list[np.ndarray] = []
    bindings: dict[int, tuple[int, int]] = {}
    dtype = label_dtype(max((s.number for s in segments), default=1))
    where = [np.flatnonzero(arr) for arr in arrays]
    touched = np.unique(np.concatenate(where)) if where else np.zeros(0, np.intp)
    occupied = np.zeros((min(len(arrays), 8), touched.size), bool)
    for arr, idx, pairs, nums in zip(arrays, where, per_volume, numbers, strict=True):
        lut = np.zeros(int(arr.max(initial=0)) + 1, dtype)
        for (_, v), n in zip(pairs, nums, strict=True):
            if v < lut.size:
                lut[v] = n
        cols = np.searchsorted(touched, idx)
        free = np.flatnonzero(~occupied[:len(layers)][:, cols].any(axis=1))
        if free.size:
            li = int(free[0])
            layers[li].flat[idx] = lut[arr.flat[idx]]
        else:
            layers.append(lut[arr])
            li = len(layers) - 1
            if li >= occupied.shape[0]:
                occupied = np.concatenate([occupied, np.zeros_like(occupied)])
        occupied[li, cols] = True
        for n in nums:
            bindings[n] = (li, n)
    if not layers:
        layers.append(np.zeros(target.shape, dtype))
    seg = Segmentation(target, order, layers=layers, bindings=bindings, **kw)
    if len(layers) > 1:
        report.note(f"overlapping segments kept in {len(layers)} layers")
    return seg


def _stem(name: str) -> str:
    for suffix in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def on_target(vol: LabelVolume, target: Grid, source, resample: bool,
               report: Report) -> np.ndarray:
    """``vol``'s voxels on the target grid. On a frame-space reference (2-D / cine images,
    ``SourceRef.has_geometry`` False) there is no patient space to match through: the array is
    placed by index and must have the reference's shape exactly (frames, rows, columns)."""
    if vol.grid is target:
        return vol.data
    if source is not None and not source.has_geometry:
        if vol.data.shape != target.shape:
            nz, ny, nx = target.shape
            got = vol.data.shape
            raise GeometryMismatchError(
                f"{vol.name}: shape {got[0]}x{got[1]}x{got[2]} (frames x rows x columns; "
                f"NIfTI {got[2]}x{got[1]}x{got[0]} as x, y, z) does not match the 2-D / cine "
                f"reference, {nz}x{ny}x{nx} ({nx}x{ny}x{nz} as NIfTI x, y, z); frame-space "
                "masks are placed by index and must match exactly")
        return vol.data
    if vol.no_space:  # placing it would invent its geometry
        raise GeometryMismatchError(
            f"{vol.name}: the NIfTI claims no position in space (qform_code = sform_code = 0, "
            "as for 2-D / cine masks); it cannot be placed on a reference with patient "
            "geometry (give it a qform / sform, or the 2-D image it belongs to)")
    return align_array(vol.data, vol.grid, target, resample=resample, what=vol.name,
                       report=report)


def _assemble_fractional(volumes, attrs, target, resample, report, source, extra):
    segments: list[Segment] = []
    fractional: dict[int, np.ndarray] = {}
    for i, vol in enumerate(volumes):
        if not vol.fractional:
            raise InvalidInputError(f"{vol.name}: cannot mix fractional and label inputs")
        data = on_target(vol, target, source, resample, report)
        n = i + 1
        entry = attrs[i][0] if attrs is not None and attrs[i] else None
        if entry is not None:
            s = segment_from_json(entry, n, i)
        elif vol.segments:
            s = vol.segments[0][0]
            s.number = n
        else:
            s = Segment(n, color=default_color(i))
        segments.append(s)
        fractional[n] = data
    return Segmentation(target, segments, fractional=fractional, report=report, source=source,
                        **extra)
