"""Per-segment intensity and volume statistics, with Cornerstone3D's definitions.

Every segment is measured on its own mask, whatever layer it lives in, so a voxel shared by two
overlapping segments counts in both. Image values are looked up through patient coordinates:
when the segmentation and the image share a lattice the lookup is exact (possibly re-indexed);
otherwise the image is sampled at the segmentation's voxel centres by nearest neighbour and a
warning says so. Definitions follow Cornerstone3D ``getStatistics`` (population standard
deviation, exact median, skewness m3/(n var^1.5), excess kurtosis, min/max at their first voxel
in [z, y, x] order, SUV peak as the best 1 cm3 sphere mean around the ten hottest voxels);
percentiles use linear interpolation between order statistics (numpy's default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GeometryMismatchError, InvalidInputError, Report
from ..geometry import Grid, exact_index_map
from ..model import Segmentation
from ..series import ReferenceImage
from .units import SUV_BW, Unit, image_unit

#: Radius (mm) of a sphere of 1 cm3, as Cornerstone defines the SUV peak region.
PEAK_RADIUS_MM = (3 * 1000 / (4 * np.pi)) ** (1 / 3)
PERCENTILES = (5, 25, 75, 95)


@dataclass
class SegmentStats:
    """Statistics of one segment (or of the union of several, in collective mode)."""

    numbers: list[int]
    label: str
    count: int
    volume_mm3: float
    unit: Unit | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    min_lps: list[float] | None = None
    max: float | None = None
    max_lps: list[float] | None = None
    median: float | None = None
    percentiles: dict[int, float] = field(default_factory=dict)
    skewness: float | None = None
    kurtosis: float | None = None
    center_lps: list[float] | None = None
    bbox_index: list[list[int]] | None = None  # [[x0, y0, z0], [x1, y1, z1]], inclusive
    bbox_lps: list[list[float]] | None = None  # [min corner, max corner] of voxel centres
    peak: float | None = None
    peak_lps: list[float] | None = None
    lesion_glycolysis: float | None = None  # SUV x mL
    sampled_voxels: int = 0  # voxels that had an image value

    @property
    def volume_ml(self) -> float:
        return self.volume_mm3 / 1000.0

    @property
    def empty(self) -> bool:
        return self.count == 0

    @property
    def number(self) -> int | None:
        return self.numbers[0] if len(self.numbers) == 1 else None

    def as_dict(self) -> dict:
        """Plain JSON-ready values; statistics of an empty segment are None, never NaN."""
        d = {
            "segment": self.number if self.number is not None else self.numbers,
            "label": self.label, "empty": self.empty, "voxel_count": self.count,
            "volume_mm3": self.volume_mm3, "volume_ml": self.volume_ml,
            "unit": self.unit.label if self.unit else None,
            "mean": self.mean, "std": self.std, "min": self.min, "min_lps": self.min_lps,
            "max": self.max, "max_lps": self.max_lps, "median": self.median,
        }
        for p in PERCENTILES:
            d[f"p{p:02d}"] = self.percentiles.get(p)
        d.update(skewness=self.skewness, kurtosis=self.kurtosis, center_lps=self.center_lps,
                 bbox_index=self.bbox_index, bbox_lps=self.bbox_lps)
        if self.unit is SUV_BW:
            d.update(peak=self.peak, peak_lps=self.peak_lps,
                     lesion_glycolysis_suv_ml=self.lesion_glycolysis)
        return d


def parse_segment_list(text: str | None, seg: Segmentation, what: str = "") -> list[int]:
    """``"1,3"`` or ``"2-5"`` -> segment numbers, each checked to exist.

    ``what`` (the input's name) prefixes messages. A range is checked against the segments the
    segmentation has before it is listed, so "1-1000000000" costs nothing.
    """
    if not text:
        return list(seg.numbers)
    prefix = f"{what}: " if what else ""
    have = set(seg.numbers)
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = (int(v) for v in part.split("-", 1))
                if b < a:
                    raise InvalidInputError(f"{prefix}--segments: range {part!r} runs backwards")
                if b - a + 1 > len(have):
                    raise InvalidInputError(
                        f"{prefix}--segments {part}: {b - a + 1} segments asked, the "
                        f"segmentation has {len(have)} ({_ranges(seg.numbers)})")
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise InvalidInputError(f"{prefix}--segments: {part!r} is not a segment "
                                    "number") from None
    missing = [n for n in out if n not in have]
    if missing:
        raise InvalidInputError(
            f"{prefix}segment {', '.join(map(str, missing[:8]))}"
            f"{', ...' if len(missing) > 8 else ''} does not exist; the segmentation has "
            f"segments {_ranges(seg.numbers)}")
    return list(dict.fromkeys(out))


def _ranges(numbers: list[int]) -> str:
    nums = sorted(numbers)
    parts, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts) or "none"


class ImageLookup:
    """Image values at segmentation voxels, through patient coordinates."""

    def __init__(self, seg_grid: Grid, image: ReferenceImage, report: Report) -> None:
        self.seg_grid = seg_grid
        self.image = image
        g, ig = seg_grid, image.grid
        if g.frame_of_reference_uid and ig.frame_of_reference_uid and \
                g.frame_of_reference_uid != ig.frame_of_reference_uid:
            raise GeometryMismatchError(
                f"the image series is in another Frame of Reference "
                f"({ig.frame_of_reference_uid}) than the segmentation "
                f"({g.frame_of_reference_uid}); statistics would be meaningless")
        self.same = g.same_as(ig)
        self.exact = self.same or exact_index_map(g, ig) is not None
        if not self.same:
            if self.exact:
                report.note("segmentation and image grids differ but share a lattice; image "
                            "values looked up exactly through patient coordinates")
            else:
                report.warn(f"segmentation grid ({g.describe()}) differs from the image grid "
                            f"({ig.describe()}): image values sampled at the segmentation's "
                            "voxel centres by nearest neighbour (resampled)")
        self.resampled = not self.exact

    def image_index(self, zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image [z, y, x] indices of segmentation voxels, and which fall inside the image."""
        if self.same:
            return zyx, np.ones(len(zyx), bool)
        lps = self.seg_grid.index_to_lps(zyx[:, ::-1].astype(float))
        idx = np.floor(self.image.grid.lps_to_index(lps) + 0.5).astype(np.int64)[:, ::-1]
        shape = np.array(self.image.grid.shape)
        inside = np.all((idx >= 0) & (idx < shape), axis=1)
        return idx, inside


def _voxel_volume(grid: Grid) -> float:
    return float(abs(np.linalg.det(grid.affine[:3, :3])))


def _peak(values: np.ndarray, idx: np.ndarray, pixels: np.ndarray, grid: Grid,
          factor: float) -> tuple[float, np.ndarray]:
    """Cornerstone's SUV peak: best mean in a 1 cm3 index-space ellipsoid around a hot voxel."""
    n_test = min(10, len(values))
    order = np.lexsort((np.arange(len(values)), values))[-n_test:]  # ten hottest, ties -> later
    dz, dy, dx = grid.spacing
    radius = [max(1, int(np.floor(1.1 * PEAK_RADIUS_MM / s + 0.5))) for s in (dz, dy, dx)]
    best, best_at = -np.inf, idx[order[-1]]
    for i in order:
        c = idx[i]
        lo = np.maximum(c - radius, 0)
        hi = np.minimum(c + np.array(radius) + 1, pixels.shape)
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        inside = (((zz - c[0]) / radius[0]) ** 2 + ((yy - c[1]) / radius[1]) ** 2 +
                  ((xx - c[2]) / radius[2]) ** 2) <= 1
        mean = float(pixels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside].astype(
            np.float64).mean()) * factor
        if mean >= best:
            best, best_at = mean, c
    return best, best_at


def _describe(stats: SegmentStats, values: np.ndarray, zyx: np.ndarray, grid: Grid) -> None:
    n = len(values)
    stats.sampled_voxels = n
    if n == 0:
        return
    mean = float(values.mean())
    d = values - mean
    d2 = d * d
    m2 = float(d2.sum())
    var = m2 / n
    stats.mean, stats.std = mean, float(np.sqrt(var))
    if var > 0:
        stats.skewness = float((d2 * d).sum()) / (n * var ** 1.5)
        stats.kurtosis = float((d2 * d2).sum()) / (n * var * var) - 3.0
    else:
        stats.skewness = stats.kurtosis = 0.0
    imin, imax = int(np.argmin(values)), int(np.argmax(values))  # first occurrence
    stats.min, stats.max = float(values[imin]), float(values[imax])
    stats.min_lps = _lps(grid, zyx[imin])
    stats.max_lps = _lps(grid, zyx[imax])
    q = np.percentile(values, [50, *PERCENTILES])
    stats.median = float(q[0])
    stats.percentiles = {p: float(v) for p, v in zip(PERCENTILES, q[1:], strict=True)}


def _lps(grid: Grid, zyx) -> list[float]:
    return [float(v) for v in grid.index_to_lps(np.asarray(zyx, float)[::-1])]


def _geometry(stats: SegmentStats, zyx: np.ndarray, grid: Grid) -> None:
    if len(zyx) == 0:
        return
    lo, hi = zyx.min(axis=0), zyx.max(axis=0)
    stats.bbox_index = [[int(v) for v in lo[::-1]], [int(v) for v in hi[::-1]]]
    corners = np.array([[x, y, z] for z in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for x in (lo[2], hi[2])], float)
    c_lps = grid.index_to_lps(corners)
    stats.bbox_lps = [c_lps.min(axis=0).tolist(), c_lps.max(axis=0).tolist()]
    # the in-plane part of index -> LPS is linear, slice positions may be uneven
    k, counts = np.unique(zyx[:, 0], return_counts=True)
    base = (grid.slice_positions()[k] * counts[:, None]).sum(axis=0) / len(zyx)
    inplane = grid.affine[:3, :2] @ np.array([zyx[:, 2].mean(), zyx[:, 1].mean()])
    stats.center_lps = [float(v) for v in base + inplane]


def segment_voxels(seg: Segmentation, numbers: list[int],
                   boxes: dict | None = None) -> np.ndarray:
    """[z, y, x] indices (C order) of the voxels in any of ``numbers``."""
    boxes = boxes if boxes is not None else seg.bounding_boxes()
    present = [boxes[n] for n in numbers if boxes.get(n) is not None]
    if not present:
        return np.zeros((0, 3), np.int64)
    lo = [min(b[a].start for b in present) for a in range(3)]
    hi = [max(b[a].stop for b in present) for a in range(3)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    mask = np.zeros([b - a for a, b in zip(lo, hi, strict=True)], bool)
    for n in numbers:
        if boxes.get(n) is not None:
            mask |= seg.mask_in(n, box)
    return np.argwhere(mask) + np.array(lo)


def streamed_values(seg: Segmentation, image: ReferenceImage,
                    numbers: list[int]) -> dict[int, np.ndarray]:
    """Image values (float32, exactly as :meth:`ReferenceImage.values_at` gives them) at every
    voxel of each segment in ``numbers``, in C order (as :func:`segment_voxels` lists the
    voxels), from one pass over the image's slices: the image is never held whole (a 600-slice
    CT is 315 MB stored). The segmentation must be labelled and on the image's own grid.
    """
    by_layer: dict[int, dict[int, int]] = {}
    for n in numbers:
        layer, value = seg.bindings[n]
        by_layer.setdefault(layer, {})[value] = n
    chunks: dict[int, list[np.ndarray]] = {n: [] for n in numbers}
    for k, plane, slope, inter in image.stored_slices():
        pixels = plane.reshape(-1)
        for li, values in by_layer.items():
            labels = seg.layers[li][k].reshape(-1)
            at = np.flatnonzero(labels)  # labelled voxels only: usually a small part
            if not at.size:
                continue
            v = labels[at]
            order = np.argsort(v, kind="stable")  # radix sort; keeps C order per value
            vals = pixels[at[order]].astype(np.float32) * slope + inter
            counts = np.bincount(v)
            ends = np.cumsum(counts)
            for u in np.flatnonzero(counts):
                n = values.get(int(u))
                if n is not None:
                    chunks[n].append(vals[ends[u] - counts[u]:ends[u]])
    return {n: np.concatenate(c) if c else np.zeros(0, np.float32) for n, c in chunks.items()}


def compute_stats(seg: Segmentation, image: ReferenceImage | None = None, *,
                  numbers: list[int] | None = None, mode: str = "individual",
                  report: Report | None = None) -> list[SegmentStats]:
    """Statistics per segment (``individual``) or of the union of ``numbers`` (``collective``).

    Without an image only counts, volumes and geometry are computed.
    """
    report = report if report is not None else Report()
    if mode not in ("individual", "collective"):
        raise InvalidInputError(f"--mode must be individual or collective, got {mode!r}")
    numbers = list(seg.numbers) if numbers is None else numbers
    lookup = ImageLookup(seg.grid, image, report) if image is not None else None
    unit, factor = (None, 1.0)
    pixels = None
    if image is not None:
        unit, factor = image_unit(image.modality, image.headers, report,
                                  what=f"image series {image.source.series_instance_uid}")
        # the float volume only for the SUV peak; otherwise values come from the stored ones
        pixels = image.pixels() if unit is SUV_BW else None
    # one pass over the image slices instead of holding the image (the SUV peak needs the
    # whole float volume; other grids and unions look values up)
    streamed = streamed_values(seg, image, numbers) if (
        lookup is not None and lookup.same and mode == "individual" and unit is not SUV_BW
        and not seg.is_fractional) else None
    boxes = seg.bounding_boxes()
    groups = [[n] for n in numbers] if mode == "individual" else [numbers]
    vox = _voxel_volume(seg.grid)
    if not seg.grid.is_regular:
        report.note("slices are unevenly spaced: volumes use the grid's nominal slice spacing "
                    f"{seg.grid.spacing[0]:g} mm")
    out = []
    for group in groups:
        label = " + ".join(seg.segment(n).label for n in group)
        zyx = segment_voxels(seg, group, boxes)
        st = SegmentStats(numbers=group, label=label, count=len(zyx),
                          volume_mm3=len(zyx) * vox, unit=unit)
        _geometry(st, zyx, seg.grid)
        if st.empty:
            report.warn(f"segment {_ranges(group)} ({label}) is empty")
        if lookup is not None and not st.empty:
            idx, inside = lookup.image_index(zyx)
            if not inside.all():
                report.warn(f"segment {_ranges(group)} ({label}): {int((~inside).sum())} of "
                            f"{len(zyx)} voxels lie outside the image; intensity statistics "
                            "use the others")
            idx = idx[inside]
            values = (streamed.pop(group[0]) if streamed is not None else
                      image.values_at(idx)).astype(np.float64) * factor
            _describe(st, values, zyx[inside], seg.grid)
            if unit is SUV_BW and len(values):
                st.peak, at = _peak(values, idx, pixels, image.grid, factor)
                st.peak_lps = _lps(image.grid, at)
                st.lesion_glycolysis = st.volume_ml * st.mean
        out.append(st)
    return out
