"""Tile sources: any region of a 2-D pixel matrix on demand (in memory, memmap, TIFF, SEG).

The protocol is deliberately small: ``shape``, ``dtype`` and ``read(r0, r1, c0, c1)``. Writers
walk a source tile by tile or strip by strip (:func:`iter_strips`), so memory stays bounded
by a strip, not by the slide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInputError


@runtime_checkable
class TileSource(Protocol):
    """A 2-D pixel matrix read region by region."""

    shape: tuple[int, int]
    dtype: np.dtype

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Pixels [r0:r1, c0:c1] as a new or view array of ``dtype``."""
        ...


#: mapped bytes a reader may leave resident before giving the pages back (peak RSS bound)
RELEASE_BYTES = 256 << 20


class ArrayTiles:
    """A NumPy array (or ``np.memmap``) as a tile source.

    A memory-mapped array's pages are given back every :data:`RELEASE_BYTES` read
    (``madvise(MADV_DONTNEED)``; the page cache keeps them), so streaming a 5 GB ``.npy``
    does not hold it resident.
    """

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 2:
            raise InvalidInputError(f"a slide label image must be 2-D, got shape {array.shape}")
        self.array = array
        self.shape = (int(array.shape[0]), int(array.shape[1]))
        self.dtype = array.dtype
        self._mmap = getattr(array, "_mmap", None)
        self._touched = 0

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if self._mmap is None:
            return np.asarray(self.array[r0:r1, c0:c1])
        out = np.array(self.array[r0:r1, c0:c1])
        self._count(r1 - r0, c1 - c0)
        return out

    def take(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Pixels at the crossings of ``rows`` and ``cols`` (sorted indices): only those
        rows are read, which a down-sampling needs (not the f x f blocks around them)."""
        out = np.ascontiguousarray(self.array[np.ix_(rows, cols)])
        if self._mmap is not None:
            self._count(len(rows), int(cols[-1] - cols[0]) + 1 if len(cols) else 0)
        return out

    def _count(self, nrows: int, ncols: int) -> None:
        self._touched += nrows * max(4096, ncols * self.dtype.itemsize)
        if self._touched > RELEASE_BYTES:
            self._touched = 0
            release(self._mmap)


def release(mapping) -> None:
    """Give a read-only mapping's resident pages back (no-op where madvise is missing)."""
    import mmap

    if hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError, AttributeError):
            pass


class FunctionTiles:
    """A tile source computed from another: ``fn(region) -> region`` (e.g. a down-sampling)."""

    def __init__(self, shape: tuple[int, int], dtype, fn) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._fn = fn

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return self._fn(r0, r1, c0, c1)


def iter_strips(src: TileSource, strip_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(r0, pixels[r0:r0 + strip_rows, :]) over the whole matrix, top to bottom."""
    rows, cols = src.shape
    for r0 in range(0, rows, strip_rows):
        yield r0, src.read(r0, min(r0 + strip_rows, rows), 0, cols)


def read_all(src: TileSource) -> np.ndarray:
    """The whole matrix (small slides, tests)."""
    return src.read(0, src.shape[0], 0, src.shape[1])


def padded_tile(region: np.ndarray, tile_rows: int, tile_columns: int) -> np.ndarray:
    """A tile padded with zeros to the full tile size (edge tiles; PS3.3 C.8.12.4.1.5)."""
    if region.shape == (tile_rows, tile_columns):
        return region
    out = np.zeros((tile_rows, tile_columns), region.dtype)
    out[:region.shape[0], :region.shape[1]] = region
    return out


def pyramid_size(n: int, factor: float) -> int:
    """Size of a level ``factor`` times coarser: int(n / factor), as highdicom sizes it."""
    out = int(n / factor)
    if out < 1:
        raise InvalidInputError(f"downsampling {n} pixels by {factor} leaves nothing")
    return out


def nearest_index(n: int, out: int) -> np.ndarray:
    """Source index of each output pixel: int((x + 0.5) * (n / out)) in double precision.

    The nearest-neighbour rule of Pillow's ``resize(NEAREST)``, which highdicom's
    ``create_segmentation_pyramid`` uses for label and binary arrays (checked equal to
    Pillow for every size in tests/test_slide.py). For an integer factor f dividing n this
    is the centre pixel of each f x f block: x * f + f // 2.
    """
    return ((np.arange(out, dtype=np.float64) + 0.5) * (n / out)).astype(np.int64)


class DownsampledTiles:
    """A level ``factor`` times coarser, by :func:`nearest_index` (highdicom's rule)."""

    def __init__(self, src: TileSource, factor: float | None = None,
                 shape: tuple[int, int] | None = None) -> None:
        self.src = src
        self.factor = factor
        if shape is None:  # by factor: int(n / f), as highdicom sizes one-source pyramids
            shape = (pyramid_size(src.shape[0], factor), pyramid_size(src.shape[1], factor))
        self.shape = (int(shape[0]), int(shape[1]))  # or a given level's size
        self.dtype = src.dtype
        self._ri = nearest_index(src.shape[0], self.shape[0])
        self._ci = nearest_index(src.shape[1], self.shape[1])

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        ri, ci = self._ri[r0:r1], self._ci[c0:c1]
        if ri.size == 0 or ci.size == 0:
            return np.zeros((ri.size, ci.size), self.dtype)
        if isinstance(self.src, ArrayTiles):
            return self.src.take(ri, ci)
        block = self.src.read(int(ri[0]), int(ri[-1]) + 1, int(ci[0]), int(ci[-1]) + 1)
        return np.ascontiguousarray(block[np.ix_(ri - ri[0], ci - ci[0])])


class LevelTee:
    """A source that, while it is read a full-width band at a time (as the SEG writer reads),
    also fills in-memory copies of coarser pyramid levels, sampled by :func:`nearest_index`
    (the rule of :class:`DownsampledTiles`): the pyramid is then written without reading the
    full-resolution source again. ``complete`` says whether every level row was seen."""

    def __init__(self, src: TileSource, shapes: list[tuple[int, int]]) -> None:
        self.src = src
        self.shape = src.shape
        self.dtype = np.dtype(src.dtype)
        rows, cols = src.shape
        self.levels = [np.zeros(s, self.dtype) for s in shapes]
        self._rows = [nearest_index(rows, s[0]) for s in shapes]
        self._cols = [nearest_index(cols, s[1]) for s in shapes]
        self._seen = [np.zeros(s[0], bool) for s in shapes]

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        block = self.src.read(r0, r1, c0, c1)
        if c0 == 0 and c1 >= self.shape[1]:
            for level, ri, ci, seen in zip(self.levels, self._rows, self._cols, self._seen,
                                           strict=True):
                k0, k1 = np.searchsorted(ri, r0), np.searchsorted(ri, r1)
                if k1 > k0:
                    level[k0:k1] = block[ri[k0:k1] - r0][:, ci]
                    seen[k0:k1] = True
        return block

    def complete(self, k: int) -> bool:
        return bool(self._seen[k].all())
