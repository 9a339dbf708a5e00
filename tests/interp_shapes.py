"""Test shapes for slice interpolation, and ITK's filter as the oracle.

Each case is a dict {segment number: boolean [z, y, x] mask}: the annotated slices only (what a
user drew); the cone and the sphere also have their analytic truth. Used by
tests/test_interpolate.py and bench/bench_interpolate.py (the Dice table in
docs/performance.md).
"""

from __future__ import annotations

import numpy as np

SHAPE = (41, 96, 96)


def disc(shape2, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:shape2[0], :shape2[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _stack(slices: dict[int, np.ndarray], nz: int = SHAPE[0]) -> np.ndarray:
    out = np.zeros((nz, *SHAPE[1:]), bool)
    for z, m in slices.items():
        out[z] = m
    return out


def cone(h: int = 30, r_top: float = 24.0, r_bottom: float = 2.0):
    """A cone cut at radius 2 (the apex is no disc): its two end discs, and the cone itself
    (the disc radius falling linearly between them), voxelised on the same grid."""
    z0 = 5
    ends = {z0: disc(SHAPE[1:], 48, 48, r_top), z0 + h: disc(SHAPE[1:], 48, 48, r_bottom)}
    truth = _stack({z0 + k: disc(SHAPE[1:], 48, 48, r_top + (r_bottom - r_top) * k / h)
                    for k in range(h + 1)})
    analytic = np.pi * h / 3 * (r_top ** 2 + r_top * r_bottom + r_bottom ** 2)
    return _stack(ends), truth, analytic


def sphere(r: float = 18.0, every: int = 4):
    """A sphere with every 4th slice annotated (the ends included), and the voxelised truth."""
    c = 20
    zz, yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    truth = (zz - c) ** 2 + (yy - 48) ** 2 + (xx - 48) ** 2 <= r * r
    hit = np.flatnonzero(truth.any(axis=(1, 2)))
    keep = np.zeros(SHAPE[0], bool)
    keep[hit[0]:hit[-1] + 1:every] = True
    keep[hit[-1]] = True
    sparse = truth & keep[:, None, None]
    return sparse, truth, 4 / 3 * np.pi * r ** 3


def cases() -> dict[str, dict[int, np.ndarray]]:
    """Named test cases: {name: {segment: annotated slices}}."""
    s2 = SHAPE[1:]
    out: dict[str, dict[int, np.ndarray]] = {}
    out["cone"] = {1: cone()[0]}
    out["sphere"] = {1: sphere()[0]}
    # two segments, one moving sideways (alignment) and one growing; they overlap
    out["moving + growing, overlapping"] = {
        1: _stack({z: disc(s2, 40, 30 + z, 12) for z in (4, 12, 20, 28)}),
        2: _stack({z: disc(s2, 45, 50, 6 + z / 2) for z in (4, 12, 20, 28)}),
    }
    # several islands per slice, each with a partner
    out["three islands"] = {1: _stack({
        z: disc(s2, 25, 25, 8 + z / 8) | disc(s2, 70, 30, 10 - z / 8) | disc(s2, 50, 72, 9)
        for z in (6, 14, 22, 30)})}
    # a hole that grows, and a ring whose hole closes
    out["holes"] = {1: _stack({
        z: disc(s2, 48, 48, 30) & ~disc(s2, 48, 48, 6 + z / 2) for z in (4, 12, 20, 28)})}
    # one island splits into two (1-to-N), and two merge into one (M-to-1)
    split_a = disc(s2, 48, 48, 20)
    split_b = disc(s2, 48, 34, 11) | disc(s2, 48, 62, 11)
    out["split"] = {1: _stack({6: split_a, 16: split_b, 26: split_a})}
    out["merge"] = {1: _stack({6: split_b, 16: split_a, 26: split_b})}
    # an island with no partner on the next annotated slice shrinks to a point
    out["island without partner"] = {1: _stack({
        8: disc(s2, 30, 30, 12) | disc(s2, 70, 70, 8), 18: disc(s2, 30, 30, 14)})}
    return out


def itk_interpolate(mask: np.ndarray, axis: int = 0, *, same_slices: bool = True) -> np.ndarray:
    """ITK's MorphologicalContourInterpolator (PyPI itk-morphologicalcontourinterpolation) on
    one segment with its defaults (distance transform median, cross structuring element,
    heuristic alignment), restricted to the given array axis (ITK's axis 2 - axis).

    ``same_slices``: give ITK every non-empty slice as an annotated slice (its custom slice
    positions), as segbridge takes them; ITK's own detection skips a slice with no pixel whose
    four in-plane neighbours are all labelled (a sphere's one-pixel pole) and slices next to
    another labelled slice. The image is uint16: ITK keeps 10 x distance in the label pixel
    type, which overflows uint8 past 25.5 pixels.
    """
    import itk  # a missing oracle fails the test: never skipped

    img = itk.image_from_array(mask.astype(np.uint16))
    f = itk.MorphologicalContourInterpolator.New(img)
    f.SetAxis(2 - axis)
    if same_slices:
        other = tuple(a for a in range(3) if a != axis)
        f.SetUseCustomSlicePositions(True)
        f.SetLabeledSliceIndices(2 - axis, 1, [int(k) for k in
                                               np.flatnonzero(mask.any(axis=other))])
    f.Update()
    return itk.array_from_image(f.GetOutput()) != 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def itk_many(jobs: dict[str, tuple[np.ndarray, int, bool]]) -> dict[str, np.ndarray]:
    """:func:`itk_interpolate` on every (mask, axis, same_slices) job, in one child process.

    ITK's filter can leave the heap damaged, and glibc then aborts the process at exit
    ("malloc_consolidate(): unaligned fastbin chunk detected"); the child writes its results
    and leaves without the interpreter's teardown, so the test run is not taken down with it.
    A child that fails (ITK missing, ...) raises: the oracle is never skipped.
    """
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        np.savez_compressed(d / "in.npz", **{k: m for k, (m, _, _) in jobs.items()})
        (d / "jobs.json").write_text(json.dumps({k: [a, s] for k, (_, a, s) in jobs.items()}))
        res = subprocess.run([sys.executable, __file__, str(d)], capture_output=True, text=True)
        if res.returncode != 0 or not (d / "out.npz").exists():
            raise RuntimeError(f"ITK's filter failed (exit {res.returncode}): "
                               f"{res.stderr.strip()[-500:]}")
        with np.load(d / "out.npz") as out:
            return {k: out[k] for k in jobs}


if __name__ == "__main__":  # the child of itk_many
    import json
    import os
    import sys
    from pathlib import Path

    d = Path(sys.argv[1])
    spec = json.loads((d / "jobs.json").read_text())
    with np.load(d / "in.npz") as masks:
        results = {k: itk_interpolate(masks[k], a, same_slices=s) for k, (a, s) in spec.items()}
    np.savez_compressed(d / "out.tmp.npz", **results)
    os.replace(d / "out.tmp.npz", d / "out.npz")
    sys.stdout.flush()
    os._exit(0)
