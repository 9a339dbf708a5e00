"""A synthetic whole-body label map shaped like TotalSegmentator's output (for bench_scale.py).

Real whole-body AI output is not 117 small balls: a few structures run the length of the body
(aorta, vena cava, spinal cord, oesophagus, muscles), the vertebrae are a stack of touching
blocks, the ribs are thin slabs, a dozen organs are large, and the rest are small. What matters
for a SEG writer is the number of (segment, slice) frames and how much of each frame a segment
fills; this layout gives about as many frames as IDC's TotalSegmentator SEGs (roughly 115 slices
per segment at 1.5 mm).

Every extent is a fraction of the slice count, so a 1,500-slice volume is the same body cut
thinner (0.6 mm) and the work per slice stays the same: time and memory should grow linearly.
"""

from __future__ import annotations

import numpy as np


def _ellipsoid(labels: np.ndarray, value: int, c, r) -> None:
    """Paint ``value`` into the free (0) voxels of an axis-aligned ellipsoid."""
    shape = np.array(labels.shape)
    c, r = np.asarray(c, float), np.maximum(np.asarray(r, float), 0.75)
    lo = np.clip(np.floor(c - r).astype(int), 0, shape)
    hi = np.clip(np.ceil(c + r).astype(int) + 1, 0, shape)
    if np.any(hi <= lo):
        return
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    inside = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + \
        ((xx - c[2]) / r[2]) ** 2 <= 1
    box = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    box[inside & (box == 0)] = value


def _tube(labels: np.ndarray, value: int, z0: int, z1: int, cy, cx, radius: float,
          rng: np.random.Generator) -> None:
    """A tube along z whose centre wanders slowly (a vessel, the cord, a long muscle)."""
    ny, nx = labels.shape[1:]
    phase = rng.uniform(0, 2 * np.pi, 2)
    yy, xx = np.ogrid[:ny, :nx]
    r = int(np.ceil(radius)) + 1
    for z in range(max(z0, 0), min(z1, labels.shape[0])):
        t = z / labels.shape[0]
        y = cy + 12 * np.sin(2 * np.pi * t + phase[0])
        x = cx + 12 * np.sin(3 * np.pi * t + phase[1])
        ys, xs = slice(max(int(y) - r, 0), int(y) + r + 1), slice(max(int(x) - r, 0),
                                                                   int(x) + r + 1)
        disk = (yy[ys] - y) ** 2 + (xx[:, xs] - x) ** 2 <= radius ** 2
        sl = labels[z, ys, xs]
        sl[disk & (sl == 0)] = value


def make_body(shape: tuple[int, int, int], n_labels: int = 117, seed: int = 0) -> np.ndarray:
    """``n_labels`` (>= 60) non-overlapping structures laid out like a whole-body CT's."""
    if n_labels < 60:
        raise ValueError("make_body lays out at least 60 structures")
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    labels = np.zeros(shape, np.uint8 if n_labels < 256 else np.uint16)
    value = 0

    def nxt() -> int:
        nonlocal value
        value += 1
        return value

    # the spine: 25 touching vertebrae from 10 % to 75 % of the body, behind the middle
    spine_cy, spine_cx = ny * 0.62, nx * 0.5
    edges = np.linspace(0.10 * nz, 0.75 * nz, 26)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        _ellipsoid(labels, nxt(), ((a + b) / 2, spine_cy, spine_cx),
                   ((b - a) / 2 + 0.5, rng.uniform(14, 20), rng.uniform(16, 24)))
    # the spinal cord through them would overlap: it runs just behind
    _tube(labels, nxt(), int(0.08 * nz), int(0.78 * nz), spine_cy + 24, spine_cx, 4.0, rng)
    # long tubes: aorta, vena cava, oesophagus, two iliopsoas-like muscles
    for cy, cx, rad, f0, f1 in ((0.52, 0.46, 10, 0.15, 0.70), (0.52, 0.56, 11, 0.20, 0.72),
                                (0.55, 0.50, 6, 0.08, 0.45), (0.58, 0.38, 14, 0.55, 0.85),
                                (0.58, 0.62, 14, 0.55, 0.85)):
        _tube(labels, nxt(), int(f0 * nz), int(f1 * nz), cy * ny, cx * nx, rad, rng)
    # 24 ribs: thin slabs fanning out to both sides of the thorax
    for i in range(12):
        z = (0.18 + i * 0.022) * nz
        for side in (-1, 1):
            _ellipsoid(labels, nxt(), (z, ny * 0.48, nx * (0.5 + side * 0.24)),
                       (0.03 * nz, 60, 30))
    # large organs: lungs, liver, heart, stomach, spleen, kidneys, bladder, femurs, glutei ...
    large = ((0.30, 0.45, 0.33, 0.11, 90, 70), (0.30, 0.45, 0.67, 0.11, 90, 70),
             (0.46, 0.42, 0.36, 0.07, 80, 90), (0.33, 0.40, 0.52, 0.05, 55, 55),
             (0.46, 0.40, 0.64, 0.05, 45, 45), (0.45, 0.52, 0.75, 0.04, 40, 30),
             (0.53, 0.60, 0.38, 0.035, 30, 25), (0.53, 0.60, 0.62, 0.035, 30, 25),
             (0.70, 0.40, 0.50, 0.03, 40, 45), (0.85, 0.50, 0.38, 0.10, 22, 22),
             (0.85, 0.50, 0.62, 0.10, 22, 22), (0.72, 0.66, 0.35, 0.06, 45, 55),
             (0.72, 0.66, 0.65, 0.06, 45, 55), (0.56, 0.42, 0.50, 0.08, 60, 120))
    for fz, fy, fx, rz, ry, rx in large:
        _ellipsoid(labels, nxt(), (fz * nz, fy * ny, fx * nx), (rz * nz, ry, rx))
    # the rest: glands, vessels' branches, small bones and muscles, of mixed sizes
    while value < n_labels:
        rz = rng.uniform(0.08, 0.26) * nz
        ry, rx = rng.uniform(6, 30), rng.uniform(6, 30)
        c = (rng.uniform(0.08, 0.92) * nz, rng.uniform(0.3, 0.7) * ny,
             rng.uniform(0.2, 0.8) * nx)
        before = value
        _ellipsoid(labels, nxt(), c, (rz, ry, rx))
        if not np.any(labels[max(int(c[0] - rz), 0):int(c[0] + rz) + 1] == value):
            value = before  # it fell entirely inside earlier structures: place it again
    return labels
