"""A downsampled PNG preview of a slide segmentation over the slide image (Pillow).

The preview is at most ``max_size`` pixels on its long side; both the slide image and the
labels are sampled by the pyramid rule (:func:`.tiles.nearest_index`). The image's frames
are decoded one at a time (``pydicom.pixels.iter_pixels``) and only the pixels the preview
shows are kept; segments are drawn in their colours at half opacity, outlines opaque.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..colors import default_color
from ..errors import InvalidInputError
from .model import SlideSegmentation
from .tiles import nearest_index

MAX_SIZE = 1024


def _image_underneath(reference: Path, rows: int, cols: int, ri: np.ndarray,
                      ci: np.ndarray) -> np.ndarray:
    """The slide image's pixels at the preview's sample positions, as RGB uint8."""
    import pydicom
    from pydicom.pixels import iter_pixels

    ds = pydicom.dcmread(reference, stop_before_pixels=True)
    th, tw = int(ds.Rows), int(ds.Columns)
    across = -(-cols // tw)
    positions = None
    if ds.get("DimensionOrganizationType") != "TILED_FULL" and \
            "PerFrameFunctionalGroupsSequence" in ds:
        positions = [(int(fg.PlanePositionSlideSequence[0].RowPositionInTotalImagePixelMatrix) - 1,
                      int(fg.PlanePositionSlideSequence[0]
                          .ColumnPositionInTotalImagePixelMatrix) - 1)
                     for fg in ds.PerFrameFunctionalGroupsSequence]
    out = np.full((ri.size, ci.size, 3), 255, np.uint8)
    for k, frame in enumerate(iter_pixels(reference)):
        if positions is not None:
            r0, c0 = positions[k]
        else:
            t = k % (-(-rows // th) * across)  # first focal plane / optical path repeats
            if k >= -(-rows // th) * across:
                break
            r0, c0 = (t // across) * th, (t % across) * tw
        rsel = np.flatnonzero((ri >= r0) & (ri < r0 + th))
        csel = np.flatnonzero((ci >= c0) & (ci < c0 + tw))
        if rsel.size == 0 or csel.size == 0:
            continue
        block = frame[np.ix_(ri[rsel] - r0, ci[csel] - c0)]
        if block.ndim == 2:
            block = np.repeat(block[..., None], 3, -1)
            if ds.get("PhotometricInterpretation") == "MONOCHROME1":
                block = block.max() - block
        out[np.ix_(rsel, csel)] = np.asarray(block[..., :3], np.float64).clip(0, 255)
    return out


def render_preview(sseg: SlideSegmentation, reference: str | os.PathLike | None,
                   path: str | os.PathLike, max_size: int = MAX_SIZE) -> Path:
    """Write the preview PNG (to ``path`` as given; the caller renames it into place)."""
    from PIL import Image

    rows, cols = sseg.grid.shape
    scale = max(1.0, max(rows, cols) / max_size)
    orows, ocols = max(1, int(rows / scale)), max(1, int(cols / scale))
    ri, ci = nearest_index(rows, orows), nearest_index(cols, ocols)
    if reference is not None:
        try:
            rgb = _image_underneath(Path(reference), rows, cols, ri, ci).astype(np.float64)
        except (ValueError, AttributeError, KeyError, OSError) as exc:
            raise InvalidInputError(f"{reference}: cannot decode the slide image for the "
                                    f"preview ({exc})") from None
    else:
        rgb = np.full((orows, ocols, 3), 255.0)
    colors = {s.number: s.color or default_color(k) for k, s in enumerate(sseg.segments)}
    sources = [(None, sseg.labels)] if sseg.labels is not None else list(sseg.masks.items())
    for n, src in sources:
        picked = np.empty((orows, ocols), src.dtype)
        step = max(1, 4096 // max(1, int(scale)))
        for a in range(0, orows, step):  # bands of preview rows: a strip of the source each
            rows_here = ri[a:a + step]
            band = src.read(int(rows_here[0]), int(rows_here[-1]) + 1, 0, cols)
            picked[a:a + step] = band[np.ix_(rows_here - rows_here[0], ci)]
        values = [n] if n is not None else [s.number for s in sseg.segments]
        for v in values:
            m = picked != 0 if n is not None else picked == v
            if not m.any():
                continue
            color = np.array(colors[v], np.float64)
            rgb[m] = 0.5 * rgb[m] + 0.5 * color
            edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1)
                         & np.roll(m, -1, 1))
            rgb[edge] = color
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(path, format="PNG")
    return Path(path)
