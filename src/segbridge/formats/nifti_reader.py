"""NIfTI-1 / NIfTI-2 single files (.nii, .nii.gz) read with numpy alone.

Why not nibabel: importing ``nibabel.nifti1`` probes for pydicom (for the DICOM header
extension), which costs ~0.2 s of every command that reads a NIfTI; and nibabel neither checks
the gzip CRC-32/ISIZE trailer nor bounds what it allocates by what the file holds. segbridge needs
a small subset: the 348/540-byte header in either byte order, the data array, scaling, the
descrip text and the affine. The rules are those of the NIfTI-1 standard (nifti1.h) as nibabel
applies them, so both readers agree voxel for voxel and affine for affine (tested against
nibabel on every NIfTI in the test data and on generated headers):

* byte order and version from ``sizeof_hdr`` (348 or 540, as written or byte-swapped), then
  ``dim[0]`` must be 1..7 (nifti1.h "dim[0] outside 1..7 means the header is byte-swapped");
* affine: sform when ``sform_code`` > 0, else qform when ``qform_code`` > 0 (quaternion with
  ``a = sqrt(1 - b^2 - c^2 - d^2)``, ``qfac = pixdim[0]``, negative pixdims taken as their
  absolute value and a qfac other than +-1 taken as 1, as nibabel's header fixes do), else
  nibabel's base affine (x flipped, origin at the centre);
* ``scl_slope`` 0 or not finite means no scaling; otherwise values are ``raw * slope + inter``
  in float64 (the raw dtype is kept when slope is 1 and inter 0).

What nibabel would read as garbage (a voxel offset inside the header, a pair header ``ni1`` in a
single file) or fail on later is refused here with one line naming the file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, UnsupportedError
from .gz import Inflater

# nifti1.h header layout (offsets in comments); NIfTI-2 is the 540-byte layout of nifti2.h
_N1 = np.dtype([
    ("sizeof_hdr", "i4"), ("data_type", "S10"), ("db_name", "S18"), ("extents", "i4"),
    ("session_error", "i2"), ("regular", "S1"), ("dim_info", "u1"), ("dim", "i2", (8,)),
    ("intent_p1", "f4"), ("intent_p2", "f4"), ("intent_p3", "f4"), ("intent_code", "i2"),
    ("datatype", "i2"), ("bitpix", "i2"), ("slice_start", "i2"), ("pixdim", "f4", (8,)),
    ("vox_offset", "f4"), ("scl_slope", "f4"), ("scl_inter", "f4"), ("slice_end", "i2"),
    ("slice_code", "u1"), ("xyzt_units", "u1"), ("cal_max", "f4"), ("cal_min", "f4"),
    ("slice_duration", "f4"), ("toffset", "f4"), ("glmax", "i4"), ("glmin", "i4"),
    ("descrip", "S80"), ("aux_file", "S24"), ("qform_code", "i2"), ("sform_code", "i2"),
    ("quatern_b", "f4"), ("quatern_c", "f4"), ("quatern_d", "f4"), ("qoffset_x", "f4"),
    ("qoffset_y", "f4"), ("qoffset_z", "f4"), ("srow_x", "f4", (4,)), ("srow_y", "f4", (4,)),
    ("srow_z", "f4", (4,)), ("intent_name", "S16"), ("magic", "S4")])
_N2 = np.dtype([
    ("sizeof_hdr", "i4"), ("magic", "S4"), ("eol_check", "i1", (4,)), ("datatype", "i2"),
    ("bitpix", "i2"), ("dim", "i8", (8,)), ("intent_p1", "f8"), ("intent_p2", "f8"),
    ("intent_p3", "f8"), ("pixdim", "f8", (8,)), ("vox_offset", "i8"), ("scl_slope", "f8"),
    ("scl_inter", "f8"), ("cal_max", "f8"), ("cal_min", "f8"), ("slice_duration", "f8"),
    ("toffset", "f8"), ("slice_start", "i8"), ("slice_end", "i8"), ("descrip", "S80"),
    ("aux_file", "S24"), ("qform_code", "i4"), ("sform_code", "i4"), ("quatern_b", "f8"),
    ("quatern_c", "f8"), ("quatern_d", "f8"), ("qoffset_x", "f8"), ("qoffset_y", "f8"),
    ("qoffset_z", "f8"), ("srow_x", "f8", (4,)), ("srow_y", "f8", (4,)), ("srow_z", "f8", (4,)),
    ("slice_code", "i4"), ("xyzt_units", "i4"), ("intent_code", "i4"), ("intent_name", "S16"),
    ("dim_info", "u1"), ("unused_str", "S15")])
assert _N1.itemsize == 348 and _N2.itemsize == 540

# NIfTI datatype codes (nifti1.h) that can hold labels or fractions
_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4",
           1024: "i8", 1280: "u8"}
_OTHER = {0: "none", 1: "binary", 32: "complex64", 128: "RGB24", 255: "all", 1536: "float128",
          1792: "complex128", 2048: "complex256", 2304: "RGBA32"}
_GZIP_MAX_RATIO = 1032  # deflate cannot expand more than ~1032:1 (zlib technical details)


@dataclass
class NiftiImage:
    """What segbridge takes from a NIfTI file: data (x, y, z, ...), RAS affine, descrip."""

    data: np.ndarray
    affine: np.ndarray
    descrip: str
    header: np.ndarray  # the parsed header (a numpy record, in the file's byte order)


def _parse(block: bytes, p: Path) -> np.ndarray:
    """The header record, in the file's byte order (decided by sizeof_hdr)."""
    if len(block) < 4:
        raise InvalidInputError(f"{p}: not a NIfTI file (only {len(block)} bytes)")
    size_le = int.from_bytes(block[:4], "little")
    size_be = int.from_bytes(block[:4], "big")
    if 348 in (size_le, size_be):
        dt, order = _N1, "<" if size_le == 348 else ">"
    elif 540 in (size_le, size_be):
        dt, order = _N2, "<" if size_le == 540 else ">"
    else:
        raise InvalidInputError(f"{p}: not a NIfTI file (header size field is {size_le}, "
                                "expected 348 for NIfTI-1 or 540 for NIfTI-2)")
    if len(block) < dt.itemsize:
        raise InvalidInputError(f"{p}: NIfTI header cut short ({len(block)} of "
                                f"{dt.itemsize} bytes)")
    hdr = np.frombuffer(block[:dt.itemsize], dt.newbyteorder(order))[0]
    magic = bytes(hdr["magic"]).rstrip(b"\x00")
    want = b"n+1" if dt is _N1 else b"n+2"
    if magic != want:
        shown = magic.decode("latin1").encode("unicode_escape").decode() or "empty"
        raise InvalidInputError(f"{p}: NIfTI magic is '{shown}', expected '{want.decode()}' "
                                "(a single-file .nii)")
    ndim = int(hdr["dim"][0])
    if not 1 <= ndim <= 7:
        raise InvalidInputError(f"{p}: NIfTI dim[0] is {ndim}; it must be 1..7")
    return hdr


def _shape(hdr: np.ndarray, p: Path) -> tuple[int, ...]:
    ndim = int(hdr["dim"][0])
    shape = tuple(int(d) for d in hdr["dim"][1:ndim + 1])
    for i, d in enumerate(shape):
        if d <= 0:
            raise InvalidInputError(f"{p}: NIfTI dim[{i + 1}] is {d}; sizes must be positive")
    return shape


def _dtype(hdr: np.ndarray, p: Path) -> np.dtype:
    code = int(hdr["datatype"])
    if code in _DTYPES:
        return np.dtype(_DTYPES[code]).newbyteorder(hdr.dtype["sizeof_hdr"].byteorder)
    if code in _OTHER:
        raise UnsupportedError(f"{p}: NIfTI datatype {_OTHER[code]} (code {code}) cannot hold "
                               "labels or fractions; use an integer or float type")
    raise InvalidInputError(f"{p}: unknown NIfTI datatype code {code}")


def _fix_pixdim(hdr: np.ndarray) -> np.ndarray:
    """pixdim after nibabel's header fixes (0 -> 1 and negatives -> abs for 1..3; qfac +-1)."""
    pix = np.array(hdr["pixdim"])
    spat = pix[1:4]
    spat[spat == 0] = 1
    pix[1:4] = np.abs(spat)
    if pix[0] not in (-1, 1):
        pix[0] = 1
    return pix


def _qform(hdr: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """nifti1.h quaternion -> affine, computed as nibabel computes it."""
    bcd = np.array([hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"]])
    thresh = np.finfo(bcd.dtype).eps * 3 if hdr.dtype["quatern_b"].itemsize == 8 \
        else np.finfo(np.float32).eps * 3
    xyz = np.asarray(bcd, dtype=np.longdouble)
    w2 = 1.0 - xyz @ xyz
    if np.abs(w2) < np.abs(thresh):
        w = 0
    elif w2 < 0:
        raise ValueError("quaternion b^2 + c^2 + d^2 is above 1")
    else:
        w = np.sqrt(w2)
    w, x, y, z = np.r_[w, xyz]
    nq = w * w + x * x + y * y + z * z
    if nq < np.finfo(np.float64).eps:
        r = np.eye(3)
    else:
        s = 2.0 / nq
        xs, ys, zs = x * s, y * s, z * s
        wx, wy, wz = w * xs, w * ys, w * zs
        xx, xy, xz = x * xs, x * ys, x * zs
        yy, yz, zz = y * ys, y * zs, z * zs
        r = np.array([[1.0 - (yy + zz), xy - wz, xz + wy],
                      [xy + wz, 1.0 - (xx + zz), yz - wx],
                      [xz - wy, yz + wx, 1.0 - (xx + yy)]])
    vox = pix[1:4].copy()
    vox[-1] *= pix[0]
    out = np.eye(4)
    out[:3, :3] = r @ np.diag(vox)
    out[:3, 3] = [hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"]]
    return out


def _base_affine(shape: tuple[int, ...], pix: np.ndarray) -> np.ndarray:
    """nibabel's shape_zoom_affine: x flipped, voxel centre of the volume at the origin."""
    ndim = len(shape)
    dims = np.asarray(shape[:3] + (1,) * (3 - min(ndim, 3)))
    zooms = np.array(pix[1:ndim + 1])[:3]
    zooms = np.r_[zooms, np.ones(3 - zooms.size, zooms.dtype)].astype(zooms.dtype)
    zooms[0] *= -1
    aff = np.eye(4)
    aff[:3, :3] = np.diag(zooms)
    aff[:3, -1] = -((dims - 1) / 2.0) * zooms
    return aff


#: NIFTI_XFORM_* codes (nifti1.h; 5 = TEMPLATE_OTHER, NIfTI-2)
XFORM_CODES = range(6)


def best_affine(hdr: np.ndarray, shape: tuple[int, ...], p: Path) -> np.ndarray:
    """sform, else qform, else the base affine (NIfTI-1 standard, method 3 / 2 / 1).

    A transform code outside 0..5 (NIFTI_XFORM_UNKNOWN .. TEMPLATE_OTHER) means a damaged
    header: nibabel resets it to 0 and falls back to another transform, which moves the grid;
    refused here, since which transform was meant cannot be known.
    """
    for key in ("sform_code", "qform_code"):
        if int(hdr[key]) not in XFORM_CODES:
            raise InvalidInputError(f"{p}: NIfTI {key} {int(hdr[key])} is not a valid "
                                    "transform code (0-5); the header is damaged")
    if int(hdr["sform_code"]) != 0:
        out = np.eye(4)
        out[0], out[1], out[2] = hdr["srow_x"], hdr["srow_y"], hdr["srow_z"]
        which = "sform"
    elif np.any(hdr["pixdim"][1:4] == 0):
        raise InvalidInputError(f"{p}: NIfTI pixdim {list(map(float, hdr['pixdim'][1:4]))} "
                                "has a zero spacing and there is no sform; no usable geometry")
    elif int(hdr["qform_code"]) != 0:
        try:
            out = _qform(hdr, _fix_pixdim(hdr))
        except ValueError as exc:
            raise InvalidInputError(f"{p}: NIfTI qform is not a rotation ({exc})") from None
        which = "qform"
    else:
        out = _base_affine(shape, _fix_pixdim(hdr))
        which = "pixdim"
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(f"{p}: the NIfTI {which} holds NaN or infinite values; "
                                "no usable orientation")
    norms = np.linalg.norm(out[:3, :3], axis=0)
    if np.any(norms == 0) or abs(np.linalg.det(out[:3, :3])) < 1e-12 * np.prod(norms):
        raise InvalidInputError(f"{p}: the NIfTI {which} has a zero or degenerate axis "
                                "(zero spacing); no usable orientation")
    return out


def _scaled(raw: np.ndarray, hdr: np.ndarray, p: Path) -> np.ndarray:
    """scl_slope / scl_inter applied as nibabel's ArrayProxy applies them."""
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if slope == 0 or not np.isfinite(slope):
        return raw
    if not np.isfinite(inter):
        raise InvalidInputError(f"{p}: NIfTI scl_inter is {inter} with a valid scl_slope")
    if (slope, inter) == (1, 0):
        return raw
    out = raw.astype(np.float64)
    if slope != 1.0:
        out *= slope
    if inter != 0.0:
        out += inter
    return out


def _layout(block: bytes, p: Path) -> tuple[np.ndarray, tuple[int, ...], np.dtype, int, int]:
    """Header, shape, voxel dtype, data offset and data size in bytes."""
    hdr = _parse(block, p)
    shape = _shape(hdr, p)
    dtype = _dtype(hdr, p)
    minimum = hdr.dtype.itemsize + 4  # header + the 4 extension-flag bytes
    vox = float(hdr["vox_offset"])
    if not np.isfinite(vox) or int(vox) < minimum:
        raise InvalidInputError(f"{p}: NIfTI vox_offset {vox:g} lies inside the "
                                f"{hdr.dtype.itemsize}-byte header (must be at least {minimum})")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    return hdr, shape, dtype, int(vox), nbytes


def _image(p: Path, hdr: np.ndarray, shape: tuple[int, ...], dtype: np.dtype,
           buf: bytes | bytearray, offset: int) -> NiftiImage:
    affine = best_affine(hdr, shape, p)
    count = int(np.prod(shape, dtype=object))
    data = np.frombuffer(buf, dtype, count=count, offset=offset).reshape(shape, order="F")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    data = _scaled(data, hdr, p)
    descrip = bytes(hdr["descrip"]).decode("ascii", "ignore").strip("\x00 ")
    return NiftiImage(data, affine, descrip, hdr)


def _too_short(p: Path, shape: tuple[int, ...], have: int, need: int) -> InvalidInputError:
    return InvalidInputError(f"{p}: the data are too short for the header's sizes {shape} "
                             f"({have} of {need} bytes)")


def _from_gzip(p: Path, raw: bytes) -> NiftiImage:
    stream = Inflater(raw, p, "gzip")
    block = stream.read(540)
    hdr, shape, dtype, offset, nbytes = _layout(block, p)
    need = offset + nbytes
    if need > len(raw) * _GZIP_MAX_RATIO + 1024:  # refused before allocating anything
        raise InvalidInputError(f"{p}: the header's sizes {shape} need {need} bytes, more than "
                                "this compressed file can hold")
    body = bytearray(need)
    body[:len(block)] = block[:need]
    got = min(len(block), need) + stream.readinto(memoryview(body)[len(block):])
    if got < need:
        raise _too_short(p, shape, got, need)
    stream.finish()  # CRC-32 and ISIZE of every gzip member, to the end of the file
    return _image(p, hdr, shape, dtype, body, offset)


def _from_raw(p: Path, head: bytes, fp, size: int) -> NiftiImage:
    hdr, shape, dtype, offset, nbytes = _layout(head, p)
    if offset + nbytes > size:
        raise _too_short(p, shape, size, offset + nbytes)
    fp.seek(offset)
    buf = bytearray(nbytes)  # writable, as nibabel's copy-on-write memmap was
    got = fp.readinto(buf)
    if got < nbytes:
        raise _too_short(p, shape, offset + got, offset + nbytes)
    return _image(p, hdr, shape, dtype, buf, 0)


def read_image(path: str | Path) -> NiftiImage:
    """Header, affine and data of a .nii or .nii.gz (gzip checked to the end of its stream)."""
    p = Path(path)
    try:
        with open(p, "rb") as fp:
            st = os.fstat(fp.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInputError(f"{p}: not a regular file")
            head = fp.read(540)
            if head[:2] == b"\x1f\x8b":
                return _from_gzip(p, head + fp.read())
            return _from_raw(p, head, fp, st.st_size)
    except FileNotFoundError:
        raise InvalidInputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{p}: is a folder, not a NIfTI file") from None
    except OSError as exc:
        raise InvalidInputError(f"{p}: cannot read ({exc.strerror or 'I/O error'})") from None
