"""NIfTI (.nii, .nii.gz) labelmaps: read by :mod:`.nifti_reader`, written by a NIfTI-1 encoder.

3-D files hold one labelmap; 4-D files hold one volume per layer (overlapping segments) or, for
fractional data, one probability volume per segment. NIfTI is RAS: the affine is converted to
LPS by :func:`segbridge.geometry.flip_lps_ras` and the (x, y, z) array is transposed to
[z, y, x]. A dcmqi JSON sidecar is written beside every output.

Why our own writer: importing nibabel also imports pydicom (nibabel.nifti1 probes for it), which
costs ~0.2 s of a ~0.7 s SEG -> NIfTI command; the NIfTI-1 header is 348 bytes. Every file it
writes is read back by nibabel in the tests (independent reader).
"""

from __future__ import annotations

import os
import struct
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, Report
from ..geometry import Grid, flip_lps_ras
from ..model import Segmentation, label_dtype
from .nifti_reader import read_image
from .pgzip import GzipWriter
from .volumes import LabelVolume, as_fraction, as_labels, note_auto_labels, wants_fraction

FRACTIONAL_TAG = "segbridge FRACTIONAL"


def read_nifti(path: str | Path, *, fractional: bool | str | None = None,
               report: Report | None = None) -> tuple[list[LabelVolume], dict]:
    """Volumes of a NIfTI file, and header facts (``fractional_type``, ``max``).

    Raises
    ------
    InvalidInputError
        The file is missing, not NIfTI, damaged (gzip checked to its end), has no usable
        geometry or holds values that are not labels (or fractions).
    """
    p = Path(path)
    img = read_image(p)
    data, descrip = img.data, img.descrip
    info: dict = {}
    tagged = descrip.startswith(FRACTIONAL_TAG)
    if tagged:
        parts = descrip.split()
        info["fractional_type"] = parts[2] if len(parts) > 2 else "PROBABILITY"
        info["max"] = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 255
    is_frac = wants_fraction(fractional, data.dtype.kind, tagged)
    if data.ndim == 2:  # one slice (a mask of a single 2-D image such as a DX)
        data = data[:, :, None]
    if data.ndim not in (3, 4) and not (data.ndim == 5 and data.shape[3] == 1):
        raise InvalidInputError(f"{p}: {data.ndim}-D image; expected 2-D or 3-D labels or "
                                "4-D layers")
    if data.ndim == 5:
        data = data[:, :, :, 0, :]
    no_space = int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 0
    shape_zyx = data.shape[:3][::-1]
    grid = Grid.from_affine(flip_lps_ras(img.affine), shape_zyx, what=f"{p}: NIfTI")
    # one conversion over the whole 4-D array rather than one per volume (issue 11, class 11:
    # thousands of tiny volumes); what is left per volume is a view and a small record
    xyzt = data[..., None] if data.ndim == 3 else data
    zyx_t = np.transpose(xyzt, (3, 2, 1, 0))
    if is_frac:
        conv = as_fraction(zyx_t, p.name, info.get("max", 255))
    else:
        conv = as_labels(zyx_t, p.name)
        note_auto_labels(conv, p.name, fractional, report)
    conv = np.ascontiguousarray(conv)
    n = conv.shape[0]
    out = []
    for i in range(n):
        name = p.name if n == 1 else f"{p.name}[volume {i + 1}]"
        out.append(LabelVolume(grid, conv[i], name, fractional=bool(is_frac),
                               no_space=no_space))
    return out, info


_DATATYPES = {np.dtype(np.uint8): (2, 8), np.dtype(np.int16): (4, 16),
              np.dtype(np.int32): (8, 32), np.dtype(np.float32): (16, 32),
              np.dtype(np.uint16): (512, 16), np.dtype(np.uint32): (768, 32)}


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float] | None:
    """(b, c, d, qfac) of an orthonormal 3x3 matrix (NIfTI-1 qform), None if not orthonormal."""
    r = np.array(rotation, float)
    if np.abs(r.T @ r - np.eye(3)).max() > 1e-4:
        return None
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r[:, 2] *= -1
    a = r[0, 0] + r[1, 1] + r[2, 2] + 1.0
    if a > 0.5:
        a = 0.5 * np.sqrt(a)
        b, c, d = (0.25 * (r[2, 1] - r[1, 2]) / a, 0.25 * (r[0, 2] - r[2, 0]) / a,
                   0.25 * (r[1, 0] - r[0, 1]) / a)
    else:
        xd, yd, zd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2]), 1.0 + r[1, 1] - (r[0, 0] + r[2, 2]), \
            1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
        if xd > 1.0:
            b = 0.5 * np.sqrt(xd)
            c, d, a = 0.25 * (r[0, 1] + r[1, 0]) / b, 0.25 * (r[0, 2] + r[2, 0]) / b, \
                0.25 * (r[2, 1] - r[1, 2]) / b
        elif yd > 1.0:
            c = 0.5 * np.sqrt(yd)
            b, d, a = 0.25 * (r[0, 1] + r[1, 0]) / c, 0.25 * (r[1, 2] + r[2, 1]) / c, \
                0.25 * (r[0, 2] - r[2, 0]) / c
        else:
            d = 0.5 * np.sqrt(zd)
            b, c, a = 0.25 * (r[0, 2] + r[2, 0]) / d, 0.25 * (r[1, 2] + r[2, 1]) / d, \
                0.25 * (r[1, 0] - r[0, 1]) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return float(b), float(c), float(d), qfac


def _header(shape_xyzt: tuple[int, ...], dtype: np.dtype, affine_ras: np.ndarray,
            spacing_xyz, descrip: str = "", *, space: bool = True) -> bytes:
    """The NIfTI-1 header. ``space=False`` (frame space): qform_code = sform_code = 0, no
    patient / scanner space claimed; pixdim keeps the pixel spacing and srow a plain scaling."""
    code, bitpix = _DATATYPES[np.dtype(dtype)]
    dim = [len(shape_xyzt), *shape_xyzt] + [1] * (7 - len(shape_xyzt))
    if not space:
        affine_ras = np.diag([*(float(v) for v in spacing_xyz), 1.0])
    rotation = affine_ras[:3, :3] / np.asarray(spacing_xyz, float)
    quat = _quaternion(rotation) if space else None
    qfac = quat[3] if quat else 1.0
    pixdim = [qfac, *[float(v) for v in spacing_xyz]] + [1.0] * 4
    nan = float("nan")
    hdr = struct.pack("<i10s18sihsB", 348, b"", b"", 0, 0, b"r", 0)
    hdr += struct.pack("<8h", *dim)
    hdr += struct.pack("<3fh", 0.0, 0.0, 0.0, 0)
    hdr += struct.pack("<hhh", code, bitpix, 0)
    hdr += struct.pack("<8f", *pixdim)
    hdr += struct.pack("<fffhBB", 352.0, nan, nan, 0, 0, 2 | 8)  # mm, seconds
    hdr += struct.pack("<ffffii", 0.0, 0.0, 0.0, 0.0, 0, 0)
    hdr += struct.pack("<80s24s", descrip.encode("ascii", "replace")[:79], b"")
    b, c, d = quat[:3] if quat else (0.0, 0.0, 0.0)
    off = affine_ras[:3, 3]
    hdr += struct.pack("<hh", 1 if quat else 0, 1 if space else 0)
    hdr += struct.pack("<6f", b, c, d, *off)
    for row in range(3):
        hdr += struct.pack("<4f", *affine_ras[row, :4])
    hdr += struct.pack("<16s4s", b"", b"n+1\x00")
    assert len(hdr) == 348
    return hdr + b"\x00\x00\x00\x00"


def write_nifti(seg: Segmentation, path: str | Path) -> None:
    """Write layers (3-D, or 4-D when there are several) or fractions (4-D float32)."""
    grid = seg.grid
    if not grid.is_regular:
        raise InvalidInputError(
            f"{path}: NIfTI needs evenly spaced slices, but this grid has uneven gaps "
            f"({_gaps(grid)}); pass --resample to resample onto a regular grid")
    if seg.is_fractional:
        vols = [seg.fractional[s.number].astype(np.float32) / np.float32(seg.max_fractional_value)
                for s in seg.segments]
        dtype = np.dtype(np.float32)
        descrip = f"{FRACTIONAL_TAG} {seg.fractional_type} {seg.max_fractional_value}"
    else:
        vols = seg.layers
        dtype = label_dtype(max((int(layer.max(initial=0)) for layer in vols), default=1))
        descrip = "segbridge labels"
    write_volumes(vols, grid, path, dtype, descrip, space=not seg.frame_space)


def write_volumes(vols, grid: Grid, path: str | Path, dtype, descrip: str = "", *,
                  space: bool = True) -> None:
    """[z, y, x] arrays on a regular ``grid`` as one NIfTI-1 file (3-D for one array, else
    4-D), in ``dtype`` (uint8, int16, uint16, int32, uint32 or float32); gzip for ``.gz``.
    ``space=False`` for frame space (2-D / cine): no transform codes, see :func:`_header`.
    Used for label volumes and, by :mod:`segbridge.datasets`, for image volumes."""
    dtype = np.dtype(dtype)
    nz, ny, nx = grid.shape
    shape = (nx, ny, nz) if len(vols) == 1 else (nx, ny, nz, len(vols))
    header = _header(shape, dtype, flip_lps_ras(grid.affine), grid.spacing[::-1], descrip,
                     space=space)
    name = os.fspath(path)
    with open(name, "wb") as raw:
        # no name and no time in the gzip header: the same segmentation gives the same bytes
        # (and a parallel deflate: formats/pgzip.py)
        opener = GzipWriter(raw, level=1) if name.endswith(".gz") else nullcontext(raw)
        with opener as fp:
            fp.write(header)
            for v in vols:  # [z, y, x] in C order is NIfTI's x-fastest order
                fp.write(np.ascontiguousarray(v, dtype=dtype).data)  # no extra copy


def _gaps(grid: Grid) -> str:
    s = grid.slice_positions() @ grid.normal
    return ", ".join(f"{v:.2f}" for v in s[:6]) + (" ..." if len(s) > 6 else "") + " mm"
