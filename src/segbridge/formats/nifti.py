"""NIfTI-1/2 (.nii, .nii.gz) labelmaps via nibabel.

3-D files hold one labelmap; 4-D files hold one volume per layer (overlapping segments) or, for
fractional data, one probability volume per segment. NIfTI is RAS: the affine is converted to
LPS by :func:`segbridge.geometry.flip_lps_ras` and the (x, y, z) array is transposed to
[z, y, x]. A dcmqi JSON sidecar is written beside every output.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import InvalidInputError, Report
from ..geometry import Grid, flip_lps_ras
from ..model import Segmentation, label_dtype
from .volumes import LabelVolume, as_fraction, as_labels

FRACTIONAL_TAG = "segbridge FRACTIONAL"


def read_nifti(path: str | Path, *, fractional: bool | None = None,
               report: Report | None = None) -> tuple[list[LabelVolume], dict]:
    """Volumes of a NIfTI file, and header facts (``fractional_type``, ``max``)."""
    p = Path(path)
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise InvalidInputError(f"{p}: no such file") from None
    except Exception as exc:
        raise InvalidInputError(f"{p}: not a readable NIfTI file ({exc})") from None
    descrip = ""
    try:
        descrip = bytes(img.header["descrip"]).decode("ascii", "ignore").strip("\x00 ")
    except Exception:
        pass
    info: dict = {}
    tagged = descrip.startswith(FRACTIONAL_TAG)
    if tagged:
        parts = descrip.split()
        info["fractional_type"] = parts[2] if len(parts) > 2 else "PROBABILITY"
        info["max"] = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 255
    is_frac = fractional if fractional is not None else tagged
    if data.ndim not in (3, 4) and not (data.ndim == 5 and data.shape[3] == 1):
        raise InvalidInputError(f"{p}: {data.ndim}-D image; expected 3-D labels or 4-D layers")
    if data.ndim == 5:
        data = data[:, :, :, 0, :]
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)):
        raise InvalidInputError(f"{p}: no usable orientation (affine)")
    shape_zyx = data.shape[:3][::-1]
    grid = Grid.from_affine(flip_lps_ras(affine), shape_zyx)
    vols = [data] if data.ndim == 3 else [data[..., i] for i in range(data.shape[3])]
    out = []
    for i, v in enumerate(vols):
        name = p.name if len(vols) == 1 else f"{p.name}[volume {i + 1}]"
        zyx = np.ascontiguousarray(np.transpose(v, (2, 1, 0)))
        if is_frac:
            zyx = as_fraction(zyx, name, info.get("max", 255))
        else:
            zyx = as_labels(zyx, name)
        out.append(LabelVolume(grid, zyx, name, fractional=bool(is_frac)))
    return out, info


def write_nifti(seg: Segmentation, path: str | Path) -> None:
    """Write layers (3-D, or 4-D when there are several) or fractions (4-D float)."""
    grid = seg.grid
    if not grid.is_regular:
        raise InvalidInputError(
            f"{path}: NIfTI needs evenly spaced slices, but this grid has uneven gaps "
            f"({_gaps(grid)}); pass --resample to resample onto a regular grid")
    if seg.is_fractional:
        vols = [seg.fractional[s.number].astype(np.float32) / np.float32(seg.max_fractional_value)
                for s in seg.segments]
        dtype = np.float32
    else:
        vols = seg.layers
        dtype = label_dtype(max((int(layer.max(initial=0)) for layer in vols), default=1))
    stacked = [np.transpose(v, (2, 1, 0)) for v in vols]
    data = stacked[0] if len(stacked) == 1 else np.stack(stacked, axis=-1)
    affine = flip_lps_ras(grid.affine)
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_data_dtype(dtype)
    if seg.is_fractional:
        img.header["descrip"] = (f"{FRACTIONAL_TAG} {seg.fractional_type} "
                                 f"{seg.max_fractional_value}").encode()
    nib.save(img, str(path))


def _gaps(grid: Grid) -> str:
    s = grid.slice_positions() @ grid.normal
    return ", ".join(f"{v:.2f}" for v in s[:6]) + (" ..." if len(s) > 6 else "") + " mm"
