"""The voxel grid and every piece of orientation math, written once.

Conventions (DESIGN.md, "Geometry conventions"):

- Arrays are indexed ``[z, y, x]`` = ``[slice, row, column]``.
- ``origin`` is the LPS position (mm) of the centre of voxel ``[0, 0, 0]``.
- ``spacing`` is ``(dz, dy, dx)`` in array order.
- ``direction`` is 3x3; its columns are the LPS unit vectors along which the x (column), y (row)
  and z (slice) indices grow. DICOM ImageOrientationPatient is ``direction[:, 0]`` followed by
  ``direction[:, 1]``; PixelSpacing is ``[dy, dx]``.
- ``affine`` maps an index ``(x, y, z, 1)`` to LPS; it is derived, never stored.
- NIfTI is RAS: :func:`flip_lps_ras` is the only place that converts.
- A stack whose slices are not evenly spaced keeps every slice's position in ``positions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import GeometryMismatchError, Report

#: Two grids are the same when every voxel centre of one lies within this fraction of a voxel of
#: the matching voxel centre of the other. Covers float32 affines in NIfTI and rounded DS strings.
VOXEL_TOLERANCE = 0.01
#: the smallest voxel spacing a grid may have (mm); below it a header is damaged
MIN_SPACING = 1e-6

#: Slices count as evenly spaced when every gap is within this fraction of the median gap.
SPACING_TOLERANCE = 0.01


def flip_lps_ras(affine: np.ndarray) -> np.ndarray:
    """Convert a 4x4 affine between LPS and RAS (the same sign flip both ways)."""
    out = np.array(affine, dtype=float, copy=True)
    out[0, :] *= -1
    out[1, :] *= -1
    return out


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D array, without its first-call import of numpy.ma (~10-25 ms of a
    short command's start-up)."""
    v = np.sort(np.asarray(values, float))
    n = len(v)
    return float((v[(n - 1) // 2] + v[n // 2]) / 2)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n == 0:
        raise GeometryMismatchError("degenerate direction vector (zero length)")
    return np.asarray(v, float) / n


@dataclass(eq=False)
class Grid:
    """A 3-D voxel lattice in patient (LPS) space."""

    shape: tuple[int, int, int]
    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray
    frame_of_reference_uid: str | None = None
    positions: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)  # type: ignore[assignment]
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise GeometryMismatchError(f"grid shape must be 3 positive sizes, got {self.shape}")
        self.origin = np.asarray(self.origin, float).reshape(3)
        self.spacing = np.asarray(self.spacing, float).reshape(3)
        self.direction = np.asarray(self.direction, float).reshape(3, 3)
        if np.any(self.spacing <= 0):
            raise GeometryMismatchError(f"grid spacing must be positive, got {self.spacing}")
        if self.positions is not None:
            self.positions = np.asarray(self.positions, float).reshape(self.shape[0], 3)
            self.origin = self.positions[0].copy()

    # -- derived geometry -------------------------------------------------------------------
    @property
    def is_regular(self) -> bool:
        """True when slices are evenly spaced (the grid is fully described by its affine)."""
        return self.positions is None

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping an index (x, y, z, 1) to LPS millimetres."""
        a = np.eye(4)
        dz, dy, dx = self.spacing
        a[:3, 0] = self.direction[:, 0] * dx
        a[:3, 1] = self.direction[:, 1] * dy
        a[:3, 2] = self.direction[:, 2] * dz
        a[:3, 3] = self.origin
        return a

    @property
    def image_orientation(self) -> list[float]:
        """DICOM ImageOrientationPatient: row direction then column direction."""
        return [*self.direction[:, 0], *self.direction[:, 1]]

    @property
    def pixel_spacing(self) -> list[float]:
        """DICOM PixelSpacing: [row spacing (dy), column spacing (dx)]."""
        return [float(self.spacing[1]), float(self.spacing[2])]

    @property
    def normal(self) -> np.ndarray:
        """Unit vector perpendicular to the slice plane (row x column direction)."""
        return _unit(np.cross(self.direction[:, 0], self.direction[:, 1]))

    def slice_positions(self) -> np.ndarray:
        """LPS position of voxel (0, 0) of every slice, shape (nz, 3)."""
        if self.positions is not None:
            return self.positions
        k = np.arange(self.shape[0])[:, None]
        return self.origin[None, :] + k * self.spacing[0] * self.direction[:, 2][None, :]

    def index_to_lps(self, ijk_xyz: np.ndarray) -> np.ndarray:
        """Map (..., 3) indices in (x, y, z) order to LPS points (slice index may be fractional)."""
        idx = np.asarray(ijk_xyz, float)
        if self.positions is None:
            return idx @ self.affine[:3, :3].T + self.affine[:3, 3]
        z = idx[..., 2]
        k = np.arange(self.shape[0])
        base = np.stack([np.interp(z, k, self.positions[:, c]) for c in range(3)], axis=-1)
        inplane = self.affine[:3, :2]
        return base + idx[..., :2] @ inplane.T

    def lps_to_index(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 3) LPS points to fractional (x, y, z) indices."""
        pts = np.asarray(points, float)
        if self.positions is None:
            return (pts - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T
        n = self.normal
        s = self.positions @ n
        order = np.argsort(s)
        z = np.interp(pts @ n, s[order], np.arange(self.shape[0])[order],
                      left=np.nan, right=np.nan)
        # in-plane coordinates relative to the interpolated slice origin
        base = self.index_to_lps(np.stack([np.zeros_like(z), np.zeros_like(z),
                                           np.nan_to_num(z)], axis=-1))
        rel = pts - base
        x = rel @ self.direction[:, 0] / self.spacing[2]
        y = rel @ self.direction[:, 1] / self.spacing[1]
        return np.stack([x, y, z], axis=-1)

    # -- comparison and description -----------------------------------------------------------
    def same_as(self, other: Grid, tol: float = VOXEL_TOLERANCE) -> bool:
        """True when both grids have the same shape and voxel centres within ``tol`` voxels."""
        if self.shape != other.shape:
            return False
        m = exact_index_map(other, self, tol)
        if m is None:
            return False
        perm, idx = m
        return perm == (0, 1, 2) and all(
            np.array_equal(ix, np.arange(n)) for ix, n in zip(idx, self.shape, strict=True))

    def describe(self) -> str:
        """One-line description used in error messages."""
        nz, ny, nx = self.shape
        sp = self.spacing
        o = self.origin
        iop = ",".join(f"{v:.4g}" for v in self.image_orientation)
        kind = "" if self.is_regular else ", uneven slice spacing"
        return (f"{nx}x{ny}x{nz} voxels, spacing {sp[2]:.4g}x{sp[1]:.4g}x{sp[0]:.4g} mm, "
                f"origin ({o[0]:.4g},{o[1]:.4g},{o[2]:.4g}), orientation [{iop}]{kind}")

    def copy(self, **changes) -> Grid:
        fields = dict(shape=self.shape, origin=self.origin.copy(), spacing=self.spacing.copy(),
                      direction=self.direction.copy(),
                      frame_of_reference_uid=self.frame_of_reference_uid,
                      positions=None if self.positions is None else self.positions.copy())
        fields.update(changes)
        return Grid(**fields)

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def from_affine(cls, affine_lps: np.ndarray, shape_zyx: Sequence[int],
                    frame_of_reference_uid: str | None = None, *,
                    what: str = "affine") -> Grid:
        """Build a grid from a 4x4 index(x,y,z)->LPS affine and an array shape (z, y, x).

        Refused (naming ``what``): a non-finite affine, an axis shorter than
        ``MIN_SPACING`` mm, or axes so nearly parallel that voxels would collapse.
        """
        a = np.asarray(affine_lps, float)
        cols = a[:3, :3]
        if not np.all(np.isfinite(a[:3])):
            raise GeometryMismatchError(f"{what}: the affine holds NaN or infinite values")
        norms = np.linalg.norm(cols, axis=0)
        if np.any(norms < MIN_SPACING):
            raise GeometryMismatchError(
                f"{what}: voxel spacing {', '.join(f'{n:g}' for n in norms)} mm; every axis "
                f"needs at least {MIN_SPACING:g} mm")
        if abs(np.linalg.det(cols / norms)) < 1e-6:
            raise GeometryMismatchError(f"{what}: the voxel axes are (nearly) parallel; no "
                                        "usable geometry")
        return cls(shape=tuple(shape_zyx), origin=a[:3, 3], spacing=norms[::-1],
                   direction=cols / norms, frame_of_reference_uid=frame_of_reference_uid)

    @classmethod
    def from_slices(cls, positions: np.ndarray, orientation: Sequence[float],
                    pixel_spacing: Sequence[float], rows: int, columns: int,
                    frame_of_reference_uid: str | None = None,
                    report: Report | None = None, what: str = "series") -> Grid:
        """Build a grid from DICOM slice positions already sorted along the normal.

        Uneven gaps keep per-slice positions (reported); a slice direction that is not the
        normal (gantry tilt) is kept as a sheared direction (reported).
        """
        pos = np.asarray(positions, float).reshape(-1, 3)
        row_dir = _unit(np.asarray(orientation[:3], float))
        col_dir = _unit(np.asarray(orientation[3:6], float))
        normal = _unit(np.cross(row_dir, col_dir))
        dy, dx = float(pixel_spacing[0]), float(pixel_spacing[1])
        n = len(pos)
        if n == 1:
            return cls((1, rows, columns), pos[0], (1.0, dy, dx),
                       np.column_stack([row_dir, col_dir, normal]), frame_of_reference_uid)
        steps = np.diff(pos, axis=0)
        along = steps @ normal
        if np.any(along <= 1e-6):
            raise GeometryMismatchError(
                f"{what}: two slices share a position (or are not sorted along the normal)")
        dz = _median(along)
        slice_dir = normal
        total = pos[-1] - pos[0]
        inplane_shift = total - (total @ normal) * normal
        if np.linalg.norm(inplane_shift) > SPACING_TOLERANCE * min(dx, dy):
            slice_dir = _unit(total)
            if report is not None:
                tilt = np.degrees(np.arccos(np.clip(abs(slice_dir @ normal), 0, 1)))
                report.warn(f"{what}: slices are sheared (gantry tilt {tilt:.2f} deg); "
                            "the grid keeps the sheared slice direction")
            dz = _median(np.linalg.norm(steps, axis=1))
            along = np.linalg.norm(steps, axis=1)
        direction = np.column_stack([row_dir, col_dir, slice_dir])
        uneven = np.abs(along - dz) > SPACING_TOLERANCE * dz
        grid = cls((n, rows, columns), pos[0], (dz, dy, dx), direction, frame_of_reference_uid)
        if uneven.any():
            gaps = ", ".join(f"{pos[i] @ normal:.3f}->{pos[i + 1] @ normal:.3f}"
                             for i in np.flatnonzero(uneven)[:4])
            if report is not None:
                report.warn(f"{what}: slices are not evenly spaced (typical gap {dz:.4g} mm; "
                            f"uneven at {gaps} mm along the normal); per-slice positions kept")
            grid = grid.copy(positions=pos)
        else:
            # evenly spaced: fit the exact step so float noise does not accumulate
            grid.spacing[0] = float(np.linalg.norm(total)) / (n - 1)
        return grid


# ---------------------------------------------------------------------------------------------
# exact re-indexing between grids
# ---------------------------------------------------------------------------------------------
IndexMap = tuple[tuple[int, int, int], list[np.ndarray]]


def _signed_permutation(r: np.ndarray, extent: float, tol: float) -> np.ndarray | None:
    rr = np.round(r)
    if np.any(np.abs(rr) > 1) or np.abs(r - rr).max() * max(extent, 1.0) > tol:
        return None
    if not np.array_equal(np.abs(rr).sum(axis=0), np.ones(r.shape[1])) or \
            not np.array_equal(np.abs(rr).sum(axis=1), np.ones(r.shape[0])):
        return None
    return rr


def exact_index_map(src: Grid, dst: Grid, tol: float = VOXEL_TOLERANCE) -> IndexMap | None:
    """Find how the voxels of ``dst`` correspond one to one to voxels of ``src``.

    Returns ``(perm, idx)``: ``perm[a]`` is the src array axis that runs along dst array axis
    ``a`` (zyx order), and ``idx[a][i]`` is the src index for dst index ``i`` along that axis
    (-1 where dst lies outside src). ``None`` when the lattices do not coincide within ``tol``
    voxels (a resampling would be needed).
    """
    if src.is_regular and dst.is_regular:
        t = np.linalg.inv(src.affine) @ dst.affine  # dst index xyz -> src index xyz
        extent = float(max(dst.shape))
        rr = _signed_permutation(t[:3, :3], extent, tol)
        if rr is None:
            return None
        tt = t[:3, 3]
        if np.abs(tt - np.round(tt)).max() > tol:
            return None
        tt = np.round(tt).astype(int)
        src_shape_xyz = src.shape[::-1]
        perm_xyz = [int(np.flatnonzero(rr[:, d])[0]) for d in range(3)]  # src axis for dst axis
        idx_xyz = []
        for d in range(3):
            s = perm_xyz[d]
            n_dst = dst.shape[::-1][d]
            v = rr[s, d] * np.arange(n_dst) + tt[s]
            v = v.astype(int)
            v[(v < 0) | (v >= src_shape_xyz[s])] = -1
            idx_xyz.append(v)
        # convert xyz axes to zyx array axes
        perm = tuple(2 - perm_xyz[2 - a] for a in range(3))
        idx = [idx_xyz[2 - a] for a in range(3)]
        return perm, idx  # type: ignore[return-value]
    return _slice_matched_map(src, dst, tol)


def _slice_matched_map(src: Grid, dst: Grid, tol: float) -> IndexMap | None:
    """Exact map for grids with uneven slices: same plane lattice, slices matched by position."""
    r2 = np.array([[src.direction[:, i] @ dst.direction[:, j] for j in range(2)]
                   for i in range(2)])
    scale = np.array([[dst.spacing[2 - j] / src.spacing[2 - i] for j in range(2)]
                      for i in range(2)])
    rr = _signed_permutation(r2 * scale, float(max(dst.shape[1:])), tol)
    if rr is None:
        return None
    n = dst.normal
    if abs(abs(src.normal @ n) - 1) > 1e-6:
        return None
    src_pos = src.slice_positions()
    dst_pos = dst.slice_positions()
    src_s = src_pos @ n
    iz = np.full(dst.shape[0], -1, int)
    tol_mm = tol * min(src.spacing[0], dst.spacing[0])
    offsets = []
    for k, p in enumerate(dst_pos):
        j = int(np.argmin(np.abs(src_s - p @ n)))
        if abs(src_s[j] - p @ n) <= tol_mm:
            iz[k] = j
            rel = p - src_pos[j]
            offsets.append((rel @ src.direction[:, 0] / src.spacing[2],
                            rel @ src.direction[:, 1] / src.spacing[1]))
    if not offsets:
        return None
    off = np.array(offsets)
    if np.abs(off - off[0]).max() > tol or np.abs(off[0] - np.round(off[0])).max() > tol:
        return None
    ox, oy = (int(v) for v in np.round(off[0]))
    # rr rows = src in-plane axis (x, y), cols = dst in-plane axis (x, y)
    perm_xy = [int(np.flatnonzero(rr[:, d])[0]) for d in range(2)]
    src_n_xy = (src.shape[2], src.shape[1])
    base = (ox, oy)
    idx_xy = []
    for d in range(2):
        s = perm_xy[d]
        v = (rr[s, d] * np.arange(dst.shape[2 - d]) + base[s]).astype(int)
        v[(v < 0) | (v >= src_n_xy[s])] = -1
        idx_xy.append(v)
    perm = (0, 2 - perm_xy[1], 2 - perm_xy[0])
    return perm, [iz, idx_xy[1], idx_xy[0]]  # type: ignore[return-value]


def apply_index_map(array: np.ndarray, mapping: IndexMap, dst_shape: Sequence[int],
                    fill: int | float = 0) -> np.ndarray:
    """Re-index ``array`` (on the src grid) onto the dst grid described by ``mapping``."""
    perm, idx = mapping
    src = np.transpose(array, perm)
    out_shape = tuple(int(s) for s in dst_shape)
    simple = []
    for ix in idx:
        if len(ix) and (ix >= 0).all() and (len(ix) == 1 or np.all(np.diff(ix) == ix[1] - ix[0])):
            step = int(ix[1] - ix[0]) if len(ix) > 1 else 1
            stop = int(ix[-1]) + step
            simple.append(slice(int(ix[0]), stop if stop >= 0 else None, step))
        else:
            simple.append(None)
    if all(s is not None for s in simple):
        return np.ascontiguousarray(src[tuple(simple)])
    out = np.full(out_shape, fill, dtype=array.dtype)
    valid = [ix >= 0 for ix in idx]
    sub = src[np.ix_(idx[0][valid[0]], idx[1][valid[1]], idx[2][valid[2]])]
    out[np.ix_(valid[0], valid[1], valid[2])] = sub
    return out


def resample_nearest(array: np.ndarray, src: Grid, dst: Grid, fill: int | float = 0) -> np.ndarray:
    """Nearest-neighbour resampling of ``array`` from ``src`` onto ``dst`` (labels stay labels)."""
    out = np.full(dst.shape, fill, dtype=array.dtype)
    ny, nx = dst.shape[1:]
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    for k in range(dst.shape[0]):
        idx = np.stack([xx, yy, np.full_like(xx, k)], axis=-1).astype(float)
        pts = dst.index_to_lps(idx)
        s = src.lps_to_index(pts)
        with np.errstate(invalid="ignore"):
            si = np.round(s)
        ok = np.all(np.isfinite(si), axis=-1)
        si = np.where(ok[..., None], si, -1).astype(int)
        ok &= (si[..., 0] >= 0) & (si[..., 0] < src.shape[2])
        ok &= (si[..., 1] >= 0) & (si[..., 1] < src.shape[1])
        ok &= (si[..., 2] >= 0) & (si[..., 2] < src.shape[0])
        out[k][ok] = array[si[..., 2][ok], si[..., 1][ok], si[..., 0][ok]]
    return out


def align_array(array: np.ndarray, src: Grid, dst: Grid, *, resample: bool = False,
                what: str = "labelmap", report: Report | None = None,
                tol: float = VOXEL_TOLERANCE) -> np.ndarray:
    """Put ``array`` (on ``src``) onto ``dst`` exactly, or by nearest neighbour if allowed.

    An exact re-indexing (same lattice, possibly with axes flipped, permuted or cropped) never
    changes a voxel. Anything else needs ``resample=True``; otherwise the error names both grids.
    Labelled voxels that would fall outside ``dst`` are an error either way unless resampling.
    """
    mapping = exact_index_map(src, dst, tol)
    if mapping is not None:
        out = apply_index_map(array, mapping, dst.shape)
        if out.shape != tuple(dst.shape):
            raise GeometryMismatchError(f"{what}: internal re-indexing error")
        lost = int(np.count_nonzero(array)) - int(np.count_nonzero(out))
        if lost > 0:
            msg = (f"{what}: {lost} labelled voxels lie outside the reference grid "
                   f"({dst.describe()}); {what} grid is {src.describe()}")
            if not resample:
                raise GeometryMismatchError(msg)
            if report is not None:
                report.warn(msg)
        if report is not None and (mapping[0] != (0, 1, 2) or src.shape != dst.shape or any(
                not np.array_equal(ix, np.arange(len(ix))) for ix in mapping[1])):
            report.note(f"{what}: re-indexed exactly onto the reference grid "
                        "(axes flipped/permuted or extent changed; no voxel moved in space)")
        return out
    if not resample:
        raise GeometryMismatchError(
            f"{what} grid ({src.describe()}) does not match the reference grid "
            f"({dst.describe()}); pass --resample to resample with nearest neighbour")
    if report is not None:
        report.warn(f"{what}: resampled with nearest neighbour from ({src.describe()}) onto "
                    f"({dst.describe()})")
    out = resample_nearest(array, src, dst)
    _check_resampled(array, out, src, dst, what, report)
    return out


def _check_resampled(array: np.ndarray, out: np.ndarray, src: Grid, dst: Grid, what: str,
                     report: Report | None) -> None:
    """Say what resampling lost: labelled voxels whose centres lie outside the target grid (a
    warning), labels that vanished (a warning naming them), everything (an error: a
    segmentation that lies wholly outside the image is not silently emptied)."""
    zyx = np.argwhere(array != 0)
    if zyx.size == 0:
        return
    lps = src.index_to_lps(zyx[:, ::-1].astype(float))
    ijk = dst.lps_to_index(lps)[:, ::-1]
    inside = np.all((ijk > -0.5) & (ijk < np.asarray(dst.shape) - 0.5), axis=1)
    outside = int(np.count_nonzero(~inside))
    if outside == len(zyx) or not np.any(out):
        raise GeometryMismatchError(
            f"{what}: all {len(zyx)} labelled voxels lie outside the reference grid "
            f"({dst.describe()}); {what} grid is {src.describe()}")
    if report is None:
        return
    if outside:
        report.warn(f"{what}: {outside} of {len(zyx)} labelled voxels lie outside the reference "
                    "grid and were dropped by resampling")
    if array.dtype.kind in "iub":
        gone = sorted(set(np.unique(array[array != 0]).tolist())
                      - set(np.unique(out[out != 0]).tolist()))
        if gone:
            shown = ", ".join(map(str, gone[:8])) + (", ..." if len(gone) > 8 else "")
            report.warn(f"{what}: label value(s) {shown} vanished in resampling (too small for "
                        "the reference grid, or outside it)")


def sort_positions(positions: np.ndarray, orientation: Sequence[float]) -> np.ndarray:
    """Order of slices sorted by position along the normal of ``orientation`` (ascending)."""
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:6], float)
    normal = np.cross(row, col)
    return np.argsort(np.asarray(positions, float) @ normal, kind="stable")
