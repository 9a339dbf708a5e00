"""TIFF / OME-TIFF label images and NumPy files for slides: region reads, tiled writes.

Reading decodes only the tiles (or strips) a region needs, through tifffile's own segment
decoder (``TiffPage.decode`` on the bytes at ``dataoffsets``); writing hands tifffile an
iterator of tiles, so neither direction holds the whole slide. NumPy ``.npy`` files are
memory-mapped (``np.load(mmap_mode="r")`` / ``np.lib.format.open_memmap``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .tiles import ArrayTiles, TileSource

TIFF_SUFFIXES = (".tif", ".tiff")


class TiffTiles:
    """One page of a TIFF (page ``page`` of level 0 of series ``series``) as a TileSource."""

    def __init__(self, path: str | os.PathLike, page: int = 0, series: int = 0) -> None:
        import logging

        import tifffile

        self.path = Path(path)
        # tifffile logs what it finds wrong before it raises: the one line is ours
        logging.getLogger("tifffile").setLevel(logging.CRITICAL)
        try:
            self._tif = tifffile.TiffFile(self.path)
            pages = self._tif.series[series].levels[0].pages if self._tif.series \
                else self._tif.pages
            p = pages[page]
            if p is not None and not isinstance(p, tifffile.TiffPage):
                p = p.aspage()  # OME stacks list their later pages as light TiffFrames
        except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError) as exc:
            raise InvalidInputError(f"{self.path}: not a readable TIFF ({exc})") from None
        if p is None:
            raise InvalidInputError(f"{self.path}: page {page + 1} of the image is missing")
        if p.samplesperpixel != 1 or p.imagedepth != 1:
            raise InvalidInputError(f"{self.path}: a label image must have one sample per pixel "
                                    f"and one plane (got {p.samplesperpixel} samples)")
        if p.dtype is None or np.dtype(p.dtype).kind not in "ub":
            raise InvalidInputError(f"{self.path}: label pixels must be unsigned integers, "
                                    f"got {p.dtype}")
        self._page = p
        self.shape = (int(p.imagelength), int(p.imagewidth))
        self.dtype = np.dtype(p.dtype)
        if p.is_tiled:
            self._seg = (int(p.tilelength), int(p.tilewidth))
        else:
            self._seg = (int(p.rowsperstrip) if p.rowsperstrip else self.shape[0], self.shape[1])
        self._across = -(-self.shape[1] // self._seg[1])
        self._cache: dict[int, np.ndarray] = {}

    @property
    def n_pages(self) -> int:
        return len(self._tif.pages)

    def _segment(self, index: int) -> np.ndarray:
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        p = self._page
        fh = self._tif.filehandle
        offset, count = p.dataoffsets[index], p.databytecounts[index]
        if count == 0:
            arr = np.zeros(self._seg, self.dtype)
        else:
            fh.seek(offset)
            data = fh.read(count)
            try:
                arr, _, shape = p.decode(data, index, jpegtables=p.jpegtables)
            except Exception as exc:  # tifffile and codec errors vary
                raise InvalidInputError(f"{self.path}: tile/strip {index} does not decode "
                                        f"({type(exc).__name__}: {exc})") from None
            arr = np.asarray(arr).reshape(arr.shape[1], arr.shape[2])
        if len(self._cache) > 4 * self._across:
            self._cache.clear()
        self._cache[index] = arr
        return arr

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        th, tw = self._seg
        out = np.empty((r1 - r0, c1 - c0), self.dtype)
        for i in range(r0 // th, (r1 - 1) // th + 1 if r1 > r0 else 0):
            for j in range(c0 // tw, (c1 - 1) // tw + 1 if c1 > c0 else 0):
                seg = self._segment(i * self._across + j)
                a, b = max(r0, i * th), min(r1, (i + 1) * th)
                c, d = max(c0, j * tw), min(c1, (j + 1) * tw)
                out[a - r0:b - r0, c - c0:d - c0] = seg[a - i * th:b - i * th,
                                                         c - j * tw:d - j * tw]
        return out

    def close(self) -> None:
        self._tif.close()


def open_label_image(path: str | os.PathLike) -> list[TileSource]:
    """A 2-D label image (one source) or a stack of per-segment planes (one source each)."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{p}: not a readable .npy file ({exc})") from None
        if arr.dtype.kind not in "ub":
            raise InvalidInputError(f"{p}: label pixels must be unsigned integers or bool, "
                                    f"got {arr.dtype}")
        if arr.ndim == 2:
            return [ArrayTiles(arr)]
        if arr.ndim == 3 and 0 in arr.shape:
            raise InvalidInputError(f"{p}: the stack holds no pixels (shape {arr.shape})")
        if arr.ndim == 3:
            return [ArrayTiles(arr[k]) for k in range(arr.shape[0])]
        raise InvalidInputError(f"{p}: expected a 2-D label image or a 3-D stack, got shape "
                                f"{arr.shape}")
    first = TiffTiles(p)
    series = first._tif.series
    if len(series) > 1:
        # several series: one plane each when they are single 2-D pages of one size (tifffile
        # writes a series per write call); anything else would be a guess at what they mean
        shapes = [tuple(s.levels[0].shape) for s in series]
        if all(len(s.levels[0].pages) == 1 for s in series) and \
                all(sh == shapes[0] for sh in shapes):
            return [first] + [TiffTiles(p, 0, k) for k in range(1, len(series))]
        first.close()
        raise InvalidInputError(f"{p}: holds {len(series)} image series ({', '.join(map(str, shapes[:4]))}"
                                f"{', ...' if len(shapes) > 4 else ''}); a label image is one 2-D "
                                "image or one stack of planes of one size")
    n = len(series[0].levels[0].pages) if series else 1
    if n <= 1:
        return [first]
    return [first] + [TiffTiles(p, k) for k in range(1, n)]


def _tiff_tile(rows: int, columns: int, tile: int) -> int:
    """TIFF tiles are multiples of 16 (TIFF 6.0, section 15)."""
    t = max(16, (tile // 16) * 16)
    return t


def write_tiff(path: str | os.PathLike, planes: list[TileSource], tile: int = 256,
               compression: str = "zlib", ome: bool = False,
               spacing_mm: tuple[float, float] | None = None) -> None:
    """Tiled TIFF (or OME-TIFF) of one or more planes, written tile by tile (a strip of tiles
    in memory)."""
    import tifffile

    rows, cols = planes[0].shape
    dtype = planes[0].dtype
    t = _tiff_tile(rows, cols, tile)

    def tiles() -> Iterator[np.ndarray]:
        for src in planes:
            for r0 in range(0, rows, t):
                strip = src.read(r0, min(r0 + t, rows), 0, cols)
                for c0 in range(0, cols, t):
                    block = strip[:, c0:c0 + t]
                    if block.shape != (t, t):
                        full = np.zeros((t, t), dtype)
                        full[:block.shape[0], :block.shape[1]] = block
                        block = full
                    yield np.ascontiguousarray(block, dtype)

    shape = (rows, cols) if len(planes) == 1 else (len(planes), rows, cols)
    if ome:  # OME-TIFF: the pixel size in micrometres goes into the OME-XML
        meta = {"axes": "YX" if len(planes) == 1 else "ZYX"}
        if spacing_mm is not None:
            meta.update(PhysicalSizeY=spacing_mm[0] * 1000, PhysicalSizeYUnit="µm",
                        PhysicalSizeX=spacing_mm[1] * 1000, PhysicalSizeXUnit="µm")
        tifffile.imwrite(path, tiles(), shape=shape, dtype=dtype, tile=(t, t),
                         compression=compression, photometric="minisblack", ome=True,
                         metadata=meta)
        return
    tifffile.imwrite(path, tiles(), shape=shape, dtype=dtype, tile=(t, t),
                     compression=compression, photometric="minisblack", metadata=None)


def write_npy(path: str | os.PathLike, planes: list[TileSource], strip: int = 1024) -> None:
    """``.npy`` (2-D, or a stack of planes) written strip by strip.

    ``np.lib.format.open_memmap`` lays out the file (header, size); the strips are then
    written through a file handle, not the map, so written pages never pile up in the
    process (a 50,000 x 50,000 output would otherwise be resident as it is filled).
    """
    rows, cols = planes[0].shape
    dtype = planes[0].dtype
    shape = (rows, cols) if len(planes) == 1 else (len(planes), rows, cols)
    layout = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset = layout.offset
    del layout
    with open(path, "r+b") as fh:
        fh.seek(offset)
        for src in planes:
            for r0 in range(0, rows, strip):
                block = src.read(r0, min(r0 + strip, rows), 0, cols)
                fh.write(np.ascontiguousarray(block, dtype).tobytes())
