"""NRRD labelmaps and 3D Slicer ``.seg.nrrd`` segmentations via pynrrd.

Plain NRRD: 3-D labels, or 4-D with a ``list`` axis (one volume per layer). Slicer .seg.nrrd adds
``SegmentN_*`` keys (name, colour, label value, layer, terminology) and stores overlapping
segments as layers along the list axis (Slicer developer guide, "Segmentations"). The ``space``
field decides the patient coordinate system; RAS-based spaces are converted to LPS here.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import nrrd
import numpy as np

from ..codes import TISSUE, Code
from ..colors import default_color
from ..errors import InvalidInputError, Report
from ..geometry import Grid
from ..model import Segment, Segmentation, label_dtype
from .volumes import LabelVolume, as_fraction, as_labels

_SPACE_SIGNS = {
    "left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1), "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1),
}
_CONTEXT = "Segmentation category and type - DICOM master list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def _read(path: Path) -> tuple[np.ndarray, dict]:
    try:
        return nrrd.read(str(path), index_order="F")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    except Exception as exc:
        raise InvalidInputError(f"{path}: not a readable NRRD file ({exc})") from None


def _geometry(path: Path, data: np.ndarray, header: dict,
              report: Report) -> tuple[Grid, int | None]:
    """Grid of the spatial axes and the index of the list (layer) axis, if any."""
    dirs = header.get("space directions")
    if dirs is None:
        raise InvalidInputError(f"{path}: NRRD has no 'space directions'; orientation unknown")
    dirs = np.array([np.full(3, np.nan) if d is None else np.asarray(d, float)[:3]
                     for d in dirs], float)
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    spatial = [i for i in range(data.ndim)
               if np.all(np.isfinite(dirs[i])) and np.linalg.norm(dirs[i]) > 0]
    list_axes = [i for i in range(data.ndim) if i not in spatial]
    if len(spatial) == 4 and data.ndim == 4:  # old Slicer files: 4th axis with a unit vector
        spatial, list_axes = spatial[:3], [3]
    if len(spatial) != 3 or len(list_axes) > 1:
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
    if not np.all(np.isfinite(origin)):
        origin = np.zeros(3)
    affine = np.eye(4)
    for col, ax in enumerate(spatial):
        affine[:3, col] = dirs[ax] * signs
    affine[:3, 3] = origin * signs
    shape_xyz = [data.shape[a] for a in spatial]
    return Grid.from_affine(affine, shape_xyz[::-1]), (list_axes[0] if list_axes else None)


def _volumes(path: Path, data: np.ndarray, spatial_first: int | None) -> list[np.ndarray]:
    """Split the list axis and return [z, y, x] arrays."""
    if spatial_first is None:
        return [np.ascontiguousarray(np.transpose(data, (2, 1, 0)))]
    moved = np.moveaxis(data, spatial_first, 0)
    return [np.ascontiguousarray(np.transpose(v, (2, 1, 0))) for v in moved]


def read_nrrd(path: str | Path, report: Report | None = None,
              fractional: bool = False) -> list[LabelVolume]:
    """Volumes of a plain NRRD: labels (3-D, or 4-D with one layer per list entry) or, with
    ``fractional``, probabilities (one segment per volume)."""
    report = report if report is not None else Report()
    p = Path(path)
    data, header = _read(p)
    grid, list_axis = _geometry(p, data, header, report)
    vols = _volumes(p, data, list_axis)
    out = []
    for i, v in enumerate(vols):
        name = p.name if len(vols) == 1 else f"{p.name}[layer {i}]"
        out.append(LabelVolume(grid, as_fraction(v, name) if fractional else as_labels(v, name),
                               p.name, fractional=fractional))
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


def read_seg_nrrd(path: str | Path,
                  report: Report | None = None) -> tuple[list[LabelVolume], dict]:
    """Layers of a Slicer .seg.nrrd with their segments bound to (layer, label value)."""
    report = report if report is not None else Report()
    p = Path(path)
    data, header = _read(p)
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
        color = g("Color") or g("DefaultColor")
        rgb = None
        if color:
            vals = [float(c) for c in str(color).split()]
            rgb = tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in vals[:3])
        if old_style:  # Slicer < 4.11: one volume per segment along the list axis, value 1
            layer, value = (n if len(vols) > 1 else 0), None
        else:
            layer = int(g("Layer") or 0)
            value = int(g("LabelValue") or 1)
        kw = _parse_terminology(str(g("Tags") or ""))
        seg = Segment(number=n + 1, label=str(name), color=rgb or default_color(n),
                      extras={"slicer_id": str(g("ID") or name)}, **kw)
        if layer >= len(vols):
            raise InvalidInputError(f"{p}: segment {name} is in layer {layer} but the file has "
                                    f"{len(vols)}")
        if value is None:
            vals = [v for v in np.unique(vols[layer]) if v != 0]
            if len(vals) > 1:
                raise InvalidInputError(f"{p}: old-style segment volume {n} holds several values")
            value = int(vals[0]) if vals else 1
        per_layer[layer].append((seg, value))
    if count == 0:
        report.warn(f"{p.name}: no Segment*_ keys; every label value becomes a segment")
        out = [LabelVolume(grid, v, f"{p.name}[layer {i}]") for i, v in enumerate(vols)]
    else:
        out = [LabelVolume(grid, v, f"{p.name}[layer {i}]" if len(vols) > 1 else p.name,
                           segments=per_layer[i]) for i, v in enumerate(vols)]
    return out, {}


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


def _terminology(s: Segment) -> str:
    def c(code: Code | None) -> str:
        return code.to_slicer() if code is not None else "^^"
    return ("TerminologyEntry:" + "~".join([
        _CONTEXT, c(s.category or TISSUE), c(s.type or TISSUE), c(s.type_modifier),
        _ANATOMIC_CONTEXT, c(s.anatomic_region), c(s.anatomic_region_modifier)]) + "|")


def _header(seg: Segmentation, path: str | Path) -> OrderedDict:
    """NRRD geometry fields (LPS) for the layers of ``seg``."""
    if seg.is_fractional:
        raise InvalidInputError(f"{path}: fractional segmentations are written as NIfTI "
                                "(.nii.gz), not NRRD")
    nlayers = len(seg.layers)
    grid = seg.grid
    if not grid.is_regular:
        raise InvalidInputError("NRRD needs evenly spaced slices; pass --resample")
    a = grid.affine
    h: OrderedDict = OrderedDict()
    h["space"] = "left-posterior-superior"
    dirs = [a[:3, 0], a[:3, 1], a[:3, 2]]
    if nlayers > 1:
        h["space directions"] = np.array([[np.nan] * 3] + dirs)
        h["kinds"] = ["list", "domain", "domain", "domain"]
    else:
        h["space directions"] = np.array(dirs)
        h["kinds"] = ["domain", "domain", "domain"]
    h["space origin"] = a[:3, 3]
    h["encoding"] = "gzip"
    return h


def _stack(layers: list[np.ndarray]) -> np.ndarray:
    dtype = label_dtype(max((int(x.max(initial=0)) for x in layers), default=1))
    xyz = [np.transpose(x, (2, 1, 0)).astype(dtype, copy=False) for x in layers]
    if len(xyz) == 1:
        return xyz[0]
    return np.stack(xyz, axis=0)


def write_nrrd(seg: Segmentation, path: str | Path) -> None:
    """Plain NRRD labelmap (4-D with a list axis when there are several layers)."""
    h = _header(seg, path)
    nrrd.write(str(path), _stack(seg.layers), header=h, index_order="F", compression_level=1)


def write_seg_nrrd(seg: Segmentation, path: str | Path) -> None:
    """Slicer .seg.nrrd with Segment*_ keys; overlapping segments stay in separate layers."""
    h = _header(seg, path)
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
        h[f"Segment{i}_ID"] = sid
        h[f"Segment{i}_LabelValue"] = str(value)
        h[f"Segment{i}_Layer"] = str(layer)
        h[f"Segment{i}_Name"] = s.label
        h[f"Segment{i}_NameAutoGenerated"] = "0"
        h[f"Segment{i}_Tags"] = _terminology(s)
    h["Segmentation_ContainedRepresentationNames"] = "Binary labelmap|"
    h["Segmentation_ConversionParameters"] = ""
    h["Segmentation_MasterRepresentation"] = "Binary labelmap"
    h["Segmentation_ReferenceImageExtentOffset"] = "0 0 0"
    nrrd.write(str(path), _stack(seg.layers), header=h, index_order="F", compression_level=1)
