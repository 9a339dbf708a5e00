"""Fill the slices between annotated slices of each segment (``segbridge interpolate``).

Each segment is interpolated on its own along one axis, so overlapping segments stay
overlapping; only slices strictly between two annotated slices of a segment are written, so
an annotated slice is never changed. Two methods:

- ``morphological`` (default): ITK's MorphologicalContourInterpolator with its PyPI defaults
  (:mod:`.morphological`), what 3D Slicer's "Fill between slices", OHIF and Cornerstone use;
- ``linear-sdf``: a linear blend of signed distance maps (:mod:`.sdf`), faster and smoother
  on a single convex shape, with no pairing of islands.

The axis of a segment (``axis="auto"``) is the one along which the segment's slices are the
sparsest: the largest share of empty slices between its first and last non-empty slice
(ties: slice axis, then rows, then columns). A segment with no empty slice between annotated
ones along that axis is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import InvalidInputError, Report, UnsupportedError
from ..model import (
    Segmentation,
    label_dtype,
    place_first_fit,
    require_segmentation,
    segment_numbers,
)

METHODS = ("morphological", "linear-sdf")
AXES = {"z": 0, "slice": 0, "y": 1, "row": 1, "x": 2, "column": 2}
AXIS_NAMES = ("z", "y", "x")


def parse_axis(axis: str | int) -> int | None:
    """``"auto"`` -> None; ``"z"`` / ``"y"`` / ``"x"`` (or 0 / 1 / 2, array axes) -> index."""
    if isinstance(axis, int) and not isinstance(axis, bool) and axis in (0, 1, 2):
        return axis
    text = str(axis).strip().lower()
    if text == "auto":
        return None
    if text in ("0", "1", "2"):
        return int(text)
    if text in AXES:
        return AXES[text]
    raise InvalidInputError(f"axis must be auto, z, y or x, got {axis!r}")


def annotated_slices(mask: np.ndarray, axis: int) -> np.ndarray:
    """Indices of the slices along ``axis`` that hold voxels of the mask."""
    other = tuple(a for a in range(3) if a != axis)
    return np.flatnonzero(mask.any(axis=other))


def gap_share(slices: np.ndarray) -> float:
    """Share of empty slices between the first and last annotated one."""
    if slices.size < 2:
        return 0.0
    span = int(slices[-1] - slices[0]) + 1
    return (span - slices.size) / span


def choose_axis(mask: np.ndarray) -> int:
    """The axis along which the mask's slices are sparsest (see the module docstring)."""
    shares = [gap_share(annotated_slices(mask, a)) for a in range(3)]
    return int(np.argmax(shares))  # first maximum: z before y before x


def interpolate_mask(mask: np.ndarray, axis: int, method: str = "morphological",
                     spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """One segment's boolean [z, y, x] mask with its gaps along ``axis`` filled."""
    vol = np.moveaxis(mask, axis, 0)
    slices = annotated_slices(mask, axis)
    if method == "morphological":
        from . import morphological  # numpy only: no scipy import on this path

        out = morphological.fill_gaps(vol, slices)
    elif method == "linear-sdf":
        from . import sdf

        plane = tuple(float(s) for k, s in enumerate(spacing) if k != axis)
        out = sdf.fill_gaps(vol, slices, plane)  # type: ignore[arg-type]
    else:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return np.moveaxis(out, 0, axis)


def interpolate(seg: Segmentation, *, segments: Iterable[int] | None = None,
                axis: str | int = "auto", method: str = "morphological",
                report: Report | None = None) -> Segmentation:
    """Fill the slices between annotated slices of each segment; returns a new segmentation.

    Parameters
    ----------
    seg
        A labelled segmentation (fractional ones are refused).
    segments
        Segment numbers to interpolate (default all); the others are kept as they are.
    axis
        ``"auto"`` (per segment, the axis with the sparsest slices), or ``"z"``, ``"y"``,
        ``"x"`` (array axes 0, 1, 2).
    method
        ``"morphological"`` (ITK's algorithm) or ``"linear-sdf"``.
    report
        Collects one note per segment (default ``seg.report``).

    Raises
    ------
    InvalidInputError
        Unknown method, axis or segment number.
    UnsupportedError
        A fractional segmentation.
    """
    seg = require_segmentation(seg, "interpolate")
    report = report if report is not None else seg.report
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    fixed = parse_axis(axis)
    if seg.is_fractional:
        raise UnsupportedError("a fractional segmentation cannot be interpolated (threshold it "
                               "or convert it to a labelled one first)")
    wanted = set(seg.numbers) if segments is None else set(segment_numbers(segments))
    unknown = sorted(wanted - set(seg.numbers))
    if unknown:
        raise InvalidInputError(f"no segment number {unknown[0]} (segments: "
                                f"{', '.join(map(str, seg.numbers))})")
    boxes = seg.bounding_boxes()
    if not seg.segments:
        report.warn("nothing to interpolate: the segmentation has no segments")
    elif all(boxes.get(n) is None for n in wanted):
        report.warn("nothing to interpolate: the segments asked for are empty")
    shape = seg.grid.shape
    dtype = label_dtype(max(seg.numbers, default=1))
    layers: list[np.ndarray] = []
    bindings: dict[int, tuple[int, int]] = {}
    spacing = tuple(float(s) for s in seg.grid.spacing)
    for s in seg.segments:
        n = s.number
        box = boxes.get(n)
        if box is None:
            bindings[n] = (place_first_fit(layers, np.zeros((1, 1, 1), bool), n, shape, dtype),
                           n)
            continue
        mask = seg.mask_in(n, box)
        if n in wanted:
            a = fixed if fixed is not None else choose_axis(mask)
            slices = annotated_slices(mask, a)
            gaps = int(slices[-1] - slices[0]) + 1 - slices.size
            if gaps:
                before = int(np.count_nonzero(mask))
                mask = interpolate_mask(mask, a, method, spacing)  # type: ignore[arg-type]
                report.note(f"segment {n} ({s.label}): {gaps} empty slices between "
                            f"{slices.size} annotated ones filled along {AXIS_NAMES[a]} "
                            f"({method}), {int(np.count_nonzero(mask)) - before} voxels added")
            else:
                report.note(f"segment {n} ({s.label}): no empty slice between annotated ones "
                            f"along {AXIS_NAMES[a]}; unchanged")
        bindings[n] = (place_first_fit(layers, mask, n, shape, dtype, box=box), n)
    if not layers:
        layers.append(np.zeros(shape, dtype))
    return Segmentation(seg.grid, seg.segments, layers=layers, bindings=bindings,
                        **seg._meta_kw())


__all__ = ["interpolate", "interpolate_mask", "choose_axis", "METHODS"]
