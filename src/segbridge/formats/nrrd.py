"""NRRD labelmaps and 3D Slicer ``.seg.nrrd`` segmentations (read by :mod:`.nrrd_reader`).

Plain NRRD: 3-D labels, or 4-D with a ``list`` axis (one volume per layer). Slicer .seg.nrrd adds
``SegmentN_*`` keys (name, colour, label value, layer, terminology) and stores overlapping
segments as layers along the list axis (Slicer developer guide, "Segmentations"). The ``space``
field decides the patient coordinate system; RAS-based spaces are converted to LPS here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codes import TISSUE, Code
from ..colors import default_color
from ..errors import InvalidInputError, Report
from ..geometry import Grid
from ..model import Segment, Segmentation, label_dtype
from . import nrrd_reader
from .pgzip import GzipWriter
from .volumes import LabelVolume, as_fraction, as_labels, note_auto_labels, wants_fraction

_SPACE_SIGNS = {
    "left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1), "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1),
}
_CONTEXT = "Segmentation category and type - DICOM master list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def _read(path: Path, report: Report, allow_outside: bool) -> tuple[np.ndarray, dict]:
    return nrrd_reader.read(path, report=report, allow_outside=allow_outside)


def _geometry(path: Path, data: np.ndarray, header: dict,
              report: Report) -> tuple[Grid, int | None]:
    """Grid of the spatial axes and the index of the list (layer) axis, if any."""
    dirs = header.get("space directions")
    if dirs is None:
        raise InvalidInputError(f"{path}: NRRD has no 'space directions'; orientation unknown")
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    for d in dirs:
        if d is not None and d.size < 3:
            raise InvalidInputError(f"{path}: NRRD 'space directions' vectors have {d.size} "
                                    "components; a 3-D space is needed")
    # first three components (old Slicer files use a 4-D space with (0,0,0,1) for the list axis)
    dirs = [None if d is None else d[:3] for d in dirs]
    spatial = [i for i, d in enumerate(dirs) if d is not None and np.linalg.norm(d) > 0]
    list_axes = [i for i in range(data.ndim) if i not in spatial]
    if len(spatial) == 4 and data.ndim == 4:  # old Slicer files: 4th axis with a unit vector
        spatial, list_axes = spatial[:3], [3]
    if len(spatial) != 3 or len(list_axes) > 1:
        zero = [i for i, d in enumerate(dirs) if d is not None and not np.linalg.norm(d) > 0]
        if zero:
            raise InvalidInputError(f"{path}: NRRD 'space directions' of axis {zero[0]} is a "
                                    "zero vector (zero spacing)")
        raise InvalidInputError(f"{path}: expected 3 spatial axes (and at most one list axis), "
                                f"found kinds {kinds}")
    space = str(header.get("space", "")).lower()
    if space in _SPACE_SIGNS:
        signs = np.array(_SPACE_SIGNS[space], float)
    else:
        signs = np.ones(3)
        report.note(f"{path.name}: NRRD has no known 'space' field ({space or 'none'}); "
                    "coordinates read as LPS")
    origin = np.asarray(header.get("space origin", np.zeros(3)), float)[:3]
    if origin.size != 3:
        raise InvalidInputError(f"{path}: NRRD 'space origin' has {origin.size} components; "
                                "a 3-D space is needed")
    affine = np.eye(4)
    for col, ax in enumerate(spatial):
        affine[:3, col] = dirs[ax] * signs
    affine[:3, 3] = origin * signs
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12 * np.prod(np.linalg.norm(affine[:3, :3], axis=0)):
        raise InvalidInputError(f"{path}: NRRD 'space directions' are not independent "
                                "(degenerate axes)")
    shape_xyz = [data.shape[a] for a in spatial]
    return (Grid.from_affine(affine, shape_xyz[::-1], what=f"{path}: NRRD"),
            list_axes[0] if list_axes else None)


def _volumes(path: Path, data: np.ndarray, spatial_first: int | None) -> list[np.ndarray]:
    """Split the list axis and return [z, y, x] arrays."""
    if spatial_first is None:
        return [np.ascontiguousarray(np.transpose(data, (2, 1, 0)))]
    moved = np.moveaxis(data, spatial_first, 0)
    return [np.ascontiguousarray(np.transpose(v, (2, 1, 0))) for v in moved]


def read_nrrd(path: str | Path, report: Report | None = None,
              fractional: bool | str = False, *, allow_outside: bool = False) -> list[LabelVolume]:
    """Volumes of a plain NRRD: labels (3-D, or 4-D with one layer per list entry) or, with
    ``fractional``, probabilities (one segment per volume).

    ``allow_outside`` lets a detached header's ``data file`` lie outside the header's folder.
    """
    report = report if report is not None else Report()
    p = Path(path)
    data, header = _read(p, report, allow_outside)
    grid, list_axis = _geometry(p, data, header, report)
    vols = _volumes(p, data, list_axis)
    out = []
    for i, v in enumerate(vols):
        name = p.name if len(vols) == 1 else f"{p.name}[layer {i}]"
        frac = wants_fraction(fractional, v.dtype.kind)
        conv = as_fraction(v, name) if frac else as_labels(v, name)
        if not frac:
            note_auto_labels(conv, name, fractional, report)
        out.append(LabelVolume(grid, conv, p.name, fractional=frac))
    return out


# ---------------------------------------------------------------------------------------------
# Slicer .seg.nrrd
# ---------------------------------------------------------------------------------------------
def _parse_terminology(tags: str) -> dict:
    out: dict = {}
    for part in tags.split("|"):
        if part.startswith("TerminologyEntry:"):
            fields = part[len("TerminologyEntry:"):].split("~")
            fields += [""] * (7 - len(fields))
            for key, idx in (("category", 1), ("type", 2), ("type_modifier", 3),
                             ("anatomic_region", 5), ("anatomic_region_modifier", 6)):
                code = Code.from_slicer(fields[idx])
                if code is not None:
                    out[key] = code
    return out


def read_seg_nrrd(path: str | Path, report: Report | None = None, *,
                  allow_outside: bool = False) -> tuple[list[LabelVolume], dict]:
    """Layers of a Slicer .seg.nrrd with their segments bound to (layer, label value).

    Junk in a ``SegmentN_`` key is an error naming the key when the voxels cannot be placed
    without it (LabelValue, Layer), else a warning and a default (Color).
    """
    report = report if report is not None else Report()
    p = Path(path)
    data, header = _read(p, report, allow_outside)
    grid, list_axis = _geometry(p, data, header, report)
    vols = [as_labels(v, f"{p.name}[layer {i}]")
            for i, v in enumerate(_volumes(p, data, list_axis))]
    count = 0
    while f"Segment{count}_ID" in header or f"Segment{count}_Name" in header:
        count += 1
    per_layer: list[list[tuple[Segment, int]]] = [[] for _ in vols]
    old_style = count and "Segment0_LabelValue" not in header
    for n in range(count):
        g = lambda key, n=n: header.get(f"Segment{n}_{key}")  # noqa: E731
        name = g("Name") or g("ID") or f"Segment {n + 1}"
        rgb = _color(p, n, g("Color") or g("DefaultColor"), report)
        if old_style:  # Slicer < 4.11: one volume per segment along the list axis, value 1
            layer, value = (n if len(vols) > 1 else 0), None
        else:
            layer = _int_key(p, f"Segment{n}_Layer", g("Layer"), 0, len(vols) - 1)
            value = _int_key(p, f"Segment{n}_LabelValue", g("LabelValue"), 1, 65535)
        kw = _parse_terminology(str(g("Tags") or ""))
        seg = Segment(number=n + 1, label=str(name), color=rgb or default_color(n),
                      extras={"slicer_id": str(g("ID") or name)}, **kw)
        if value is None:
            vals = [v for v in np.unique(vols[layer]) if v != 0]
            if len(vals) > 1:
                raise InvalidInputError(f"{p}: old-style segment volume {n} holds several values")
            value = int(vals[0]) if vals else 1
        if any(v == value for _, v in per_layer[layer]):
            report.warn(f"{p.name}: Segment{n}_LabelValue {value} in layer {layer} is also "
                        "another segment's; the first one keeps the voxels")
            continue
        per_layer[layer].append((seg, value))
    if count == 0:
        report.warn(f"{p.name}: no Segment*_ keys; every label value becomes a segment")
        out = [LabelVolume(grid, v, f"{p.name}[layer {i}]") for i, v in enumerate(vols)]
    else:
        out = [LabelVolume(grid, v, f"{p.name}[layer {i}]" if len(vols) > 1 else p.name,
                           segments=per_layer[i]) for i, v in enumerate(vols)]
    return out, {}


def _color(p: Path, n: int, text: str | None, report: Report) -> tuple[int, int, int] | None:
    """Segment colour (three numbers 0..1), or None with a warning when it is junk."""
    if not text:
        return None
    try:
        vals = [float(c) for c in str(text).split()]
    except ValueError:
        vals = []
    if len(vals) < 3 or not all(np.isfinite(vals[:3])):
        report.warn(f"{p.name}: Segment{n}_Color '{_short(text)}' is not three numbers 0..1; a "
                    "default colour is used")
        return None
    return tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in vals[:3])


def _int_key(p: Path, key: str, text: str | None, low: int, high: int) -> int:
    """An integer key in low..high; absent means ``low``; anything else is an error."""
    if text is None or not str(text).strip():
        return low
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidInputError(f"{p}: {key} '{_short(text)}' is not a whole number") from None
    if not low <= value <= high:
        raise InvalidInputError(f"{p}: {key} is {_short(str(value))}; it must be {low}..{high}")
    return value


def _short(text: str, n: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."


def _extents(layer: np.ndarray, values: list[int]) -> dict[int, str]:
    """Slicer ``Extent`` (minI maxI minJ maxJ minK maxK) of every value of a layer.

    Slices holding each value come from one histogram per slice; the in-plane extent is then
    searched only inside those slices.
    """
    size = max(values, default=0) + 1
    per_slice = np.stack([np.bincount(layer[k].ravel(), minlength=size)[:size] > 0
                          for k in range(layer.shape[0])])
    out = {}
    for v in values:
        ks = np.flatnonzero(per_slice[:, v])
        if ks.size == 0:
            out[v] = "0 -1 0 -1 0 -1"
            continue
        sub = layer[ks[0]:ks[-1] + 1] == v
        ys = np.flatnonzero(sub.any(axis=(0, 2)))
        xs = np.flatnonzero(sub.any(axis=(0, 1)))
        out[v] = f"{xs[0]} {xs[-1]} {ys[0]} {ys[-1]} {ks[0]} {ks[-1]}"
    return out


_CONTROL = {c: " " for c in [*range(0x20), 0x7F] if c != 0x0A}  # newline is escaped instead


def _kv_value(text: str, what: str, report: Report) -> str:
    """A key/value value as teem writes it (NRRD spec): backslash and newline escaped, other
    control characters (which break the line-based header, or end a C string) made spaces."""
    clean = str(text).translate(_CONTROL)
    if clean != str(text):
        report.warn(f"{what} holds control characters that a NRRD header cannot hold; they are "
                    "written as spaces")
    return clean.replace("\\", "\\\\").replace("\n", "\\n")


def _terminology(s: Segment, report: Report) -> str:
    def c(code: Code | None) -> str:
        if code is None:
            return "^^"
        text = code.to_slicer()
        if "~" in text or "|" in text:  # Slicer's field and tag separators
            report.warn(f"segment {s.number}: code '{_short(text)}' holds '~' or '|', which "
                        "Slicer's terminology string cannot hold; written as '-' and '/'")
            text = text.replace("~", "-").replace("|", "/")
        return text
    return ("TerminologyEntry:" + "~".join([
        _CONTEXT, c(s.category or TISSUE), c(s.type or TISSUE), c(s.type_modifier),
        _ANATOMIC_CONTEXT, c(s.anatomic_region), c(s.anatomic_region_modifier)]) + "|")


def _header(seg: Segmentation, path: str | Path) -> dict[str, str]:
    """NRRD geometry fields (LPS) for the layers of ``seg``, as header text."""
    if seg.is_fractional:
        raise InvalidInputError(f"{path}: fractional segmentations are written as NIfTI "
                                "(.nii.gz), not NRRD")
    grid = seg.grid
    if not grid.is_regular:
        raise InvalidInputError(f"{path}: NRRD needs evenly spaced slices; pass --resample")
    a = grid.affine
    dirs = [_vec(a[:3, i]) for i in range(3)]
    several = len(seg.layers) > 1
    return {"space": "left-posterior-superior",
            "space directions": " ".join((["none"] if several else []) + dirs),
            "kinds": " ".join((["list"] if several else []) + ["domain"] * 3),
            "space origin": _vec(a[:3, 3])}


def _vec(v) -> str:
    return "(" + ",".join(repr(float(x)) for x in v) + ")"


def _stack(layers: list[np.ndarray]) -> np.ndarray:
    """Layers as one [layer, z, y, x] (or [z, y, x]) array: C order here is the NRRD order
    with x fastest, and the list axis (when there is one) faster still, as Slicer writes it."""
    dtype = label_dtype(max((int(x.max(initial=0)) for x in layers), default=1))
    if len(layers) == 1:
        return np.ascontiguousarray(layers[0], dtype)
    return np.ascontiguousarray(np.stack([x.astype(dtype, copy=False) for x in layers], -1))


_TYPE_NAMES = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16",
               np.dtype(np.uint32): "uint32"}


def _write(path: str | Path, data: np.ndarray, fields: dict[str, str],
           keys: dict[str, str] | None = None) -> None:
    """A gzip-encoded NRRD0004 file; ``data`` is in C order [.., z, y, x] (x fastest in the
    file); ``keys`` are key/value pairs already escaped by :func:`_kv_value`. The header is
    UTF-8 (Slicer writes segment names that way); pynrrd's writer only takes ASCII."""
    sizes = " ".join(str(n) for n in data.shape[::-1])
    lines = ["NRRD0004", "# Complete NRRD file format specification at:",
             "# http://teem.sourceforge.net/nrrd/format.html",
             f"type: {_TYPE_NAMES[data.dtype]}", f"dimension: {data.ndim}",
             f"space: {fields['space']}", f"sizes: {sizes}",
             f"space directions: {fields['space directions']}", f"kinds: {fields['kinds']}",
             "endian: little", "encoding: gzip", f"space origin: {fields['space origin']}"]
    lines += [f"{k}:={v}" for k, v in (keys or {}).items()]
    with open(path, "wb") as fp:
        fp.write(("\n".join(lines) + "\n\n").encode("utf-8"))
        flat = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<"), copy=False))
        with GzipWriter(fp, level=1) as out:
            out.write(flat.reshape(-1).data)


def write_nrrd(seg: Segmentation, path: str | Path) -> None:
    """Plain NRRD labelmap (4-D with a list axis when there are several layers)."""
    _write(path, _stack(seg.layers), _header(seg, path))


def write_seg_nrrd(seg: Segmentation, path: str | Path) -> None:
    """Slicer .seg.nrrd with Segment*_ keys; overlapping segments stay in separate layers."""
    fields = _header(seg, path)
    h: dict[str, str] = {}
    report = seg.report
    extents = {}
    for li, layer_arr in enumerate(seg.layers):
        vals = [v for bl, v in seg.bindings.values() if bl == li]
        extents.update({(li, v): e for v, e in _extents(layer_arr, vals).items()})
    for i, s in enumerate(seg.segments):
        layer, value = seg.bindings[s.number]
        rgb = s.color or default_color(i)
        sid = s.extras.get("slicer_id") or f"Segment_{s.number}"
        h[f"Segment{i}_Color"] = " ".join(f"{c / 255:.6g}" for c in rgb)
        h[f"Segment{i}_ColorAutoGenerated"] = "0"
        h[f"Segment{i}_Extent"] = extents[(layer, value)]
        h[f"Segment{i}_ID"] = _kv_value(sid, f"segment {s.number} id", report)
        h[f"Segment{i}_LabelValue"] = str(value)
        h[f"Segment{i}_Layer"] = str(layer)
        h[f"Segment{i}_Name"] = _kv_value(s.label, f"segment {s.number} label", report)
        h[f"Segment{i}_NameAutoGenerated"] = "0"
        h[f"Segment{i}_Tags"] = _kv_value(_terminology(s, report),
                                          f"segment {s.number} terminology", report)
    h["Segmentation_ContainedRepresentationNames"] = "Binary labelmap|"
    h["Segmentation_ConversionParameters"] = ""
    h["Segmentation_MasterRepresentation"] = "Binary labelmap"
    h["Segmentation_ReferenceImageExtentOffset"] = "0 0 0"
    _write(path, _stack(seg.layers), fields, h)
