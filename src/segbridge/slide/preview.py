"""A downsampled PNG of a slide segmentation over the slide image (or over white).

The preview keeps every ``step``-th pixel of the segmentation's total pixel matrix (step =
ceil(longer side / max side)), read a band of tiles at a time, so a 50,000 x 50,000 label
image is never held whole. The slide image underneath comes from the smallest pyramid level
that still has at least the preview's size, sampled at the same slide positions (levels of
one slide share the origin and cover the same area, PS3.3 C.8.12.4.1.4), fetched tile by
tile (locally or over DICOMweb, :mod:`segbridge.slide.image`). Segments are drawn in their
colours at 50 % with a full-colour outline, a legend lists them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..colors import default_color
from ..errors import InvalidInputError, Report
from .image import SlideImage
from .model import SlideSegmentation

ALPHA = 0.5


def _sample_rows(src, rows: np.ndarray, cols: np.ndarray, band: int) -> np.ndarray:
    """src[rows][:, cols] read a band of rows at a time (rows ascending)."""
    out = []
    width = int(cols.max()) + 1 if cols.size else 0
    k = 0
    while k < rows.size:
        r0 = int(rows[k])
        r1 = min(r0 + band, int(rows[-1]) + 1)
        take = rows[(rows >= r0) & (rows < r1)]
        part = src.read(r0, r1, 0, width)
        out.append(part[take - r0][:, cols])
        k += take.size
    return np.concatenate(out, axis=0)


def _labels_at(sseg: SlideSegmentation, rows: np.ndarray, cols: np.ndarray,
               band: int) -> dict[int, np.ndarray]:
    """Per segment, a boolean mask at the sampled positions."""
    if sseg.labels is not None:
        lab = _sample_rows(sseg.labels, rows, cols, band)
        return {s.number: lab == s.number for s in sseg.segments}
    return {n: _sample_rows(src, rows, cols, band) > 0 for n, src in sseg.masks.items()}


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def slide_preview(sseg: SlideSegmentation, output: str | os.PathLike, *,
                  image: SlideImage | None = None, max_side: int = 1024,
                  report: Report | None = None) -> Path:
    """Write the PNG preview; returns its path. ``image``: the slide (any level set) to draw on.

    Raises
    ------
    InvalidInputError
        The image is another slide (frame of reference) than the segmentation's.
    """
    from PIL import Image, ImageDraw

    from ..outputs import written

    report = report if report is not None else Report()
    if Path(output).suffix.lower() != ".png":
        raise InvalidInputError(f"{output}: a preview is a PNG file (name it .png)")
    g = sseg.grid
    step = max(1, -(-max(g.rows, g.columns) // max(16, int(max_side))))
    rows = np.arange(0, g.rows, step)
    cols = np.arange(0, g.columns, step)
    band = g.tile_rows * max(1, 2048 // g.tile_rows)
    masks = _labels_at(sseg, rows, cols, band)
    if image is not None:
        ref_for = g.frame_of_reference_uid
        level = image.level_for(max(rows.size, cols.size))
        img_for = level.grid.frame_of_reference_uid
        if ref_for and img_for and ref_for != img_for:
            raise InvalidInputError(f"{image.where}: another slide (frame of reference {img_for}, "
                                    f"the segmentation's is {ref_for})")
        # the same slide positions on that level: pixel centres scaled by the size ratio
        ir = np.minimum(((rows + 0.5) * level.grid.rows / g.rows).astype(np.int64),
                        level.grid.rows - 1)
        ic = np.minimum(((cols + 0.5) * level.grid.columns / g.columns).astype(np.int64),
                        level.grid.columns - 1)
        base = _sample_rows(level, ir, ic,
                            level.grid.tile_rows * max(1, 2048 // level.grid.tile_rows))
        if base.shape[2] == 1:
            base = np.repeat(base, 3, axis=2)
        base = base[:, :, :3].astype(np.float32)
        if level.dtype != np.uint8:  # 16-bit (fluorescence): stretch 0.5-99.5 % to 0-255
            lo, hi = np.percentile(base, [0.5, 99.5])
            base = (base - lo) * (255.0 / max(hi - lo, 1.0))
        report.note(f"preview: slide level {level.grid.rows} x {level.grid.columns} under the "
                    f"segmentation's {g.rows} x {g.columns}"
                    + (f", one pixel in {step} along each side" if step > 1 else ""))
    else:
        base = np.full((rows.size, cols.size, 3), 255, np.float32)
    colors = {s.number: np.array(s.color or default_color(i), np.float32)
              for i, s in enumerate(sseg.segments)}
    for n, m in masks.items():
        if m.any():
            base[m] = (1 - ALPHA) * base[m] + ALPHA * colors[n]
            base[_outline(m)] = colors[n]
    canvas = Image.fromarray(base.round().clip(0, 255).astype(np.uint8), "RGB")
    grow = max(1, 256 // max(canvas.width, canvas.height))
    if grow > 1:  # a tiny slide is shown enlarged, pixels as blocks
        canvas = canvas.resize((canvas.width * grow, canvas.height * grow), Image.NEAREST)
    shown = [s for s in sseg.segments if masks[s.number].any()][:30]
    if shown:
        width = max(canvas.width, 320)
        legend = Image.new("RGB", (width, 18 * len(shown) + 6), (255, 255, 255))
        draw = ImageDraw.Draw(legend)
        for k, s in enumerate(shown):
            y = 3 + 18 * k
            draw.rectangle([4, y, 18, y + 14], fill=tuple(int(c) for c in colors[s.number]))
            draw.text((24, y + 1), f"{s.number}: {s.label}"[:60], fill=(0, 0, 0))
        full = Image.new("RGB", (width, canvas.height + legend.height), (255, 255, 255))
        full.paste(canvas, (0, 0))
        full.paste(legend, (0, canvas.height))
        canvas = full
    with written(output) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(output)

