"""The pixels of a VL Whole Slide Microscopy image, decoded tile by tile, local or on DICOMweb.

A slide is one series of SM instances, one per resolution level (PS3.3 C.8.12.4, A.32.8);
each level's frames are tiles of its total pixel matrix, placed by frame order (TILED_FULL,
PS3.3 C.7.6.17.3: columns fastest, then rows, then focal planes, then optical paths) or by
Plane Position (Slide) per frame (TILED_SPARSE, C.8.12.6.1). A region read decodes only the
tiles it touches: from a memory-mapped local file, or fetched from the server frame by frame
(WADO-RS ``.../instances/<uid>/frames/<n,m,...>``, PS3.18 10.4.1.1.4), so a preview or a
reference on a remote slide never downloads whole instances. Only the first optical path and
the first focal plane are read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, UnsupportedError
from .frames import decode_frame, native_frame
from .model import SM_SOP_CLASS, SlideGrid

#: ImageType value 3 of the instances that are levels of the pyramid (LABEL and OVERVIEW
#: images are photographs of the glass, not in the total pixel matrix's coordinates)
LEVEL_FLAVORS = ("VOLUME", "THUMBNAIL")


@dataclass
class SlideLevel:
    """One resolution level: its grid, header, and a way to get decoded frames."""

    grid: SlideGrid
    header: object = field(repr=False)
    #: (tile row, tile column) -> 1-based frame number, first optical path and focal plane
    tiles: dict[tuple[int, int], int] = field(repr=False)
    #: frame numbers -> decoded frames (rows, columns, samples), uint8
    fetch: Callable[[Sequence[int]], dict[int, np.ndarray]] = field(repr=False)
    samples: int = 3
    photometric: str = "RGB"
    name: str = ""
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.uint8))

    @property
    def background(self) -> int:
        """Value of a pixel no tile covers: glass is white in bright field, black in
        fluorescence (MONOCHROME2)."""
        return 0 if self.photometric == "MONOCHROME2" else int(np.iinfo(self.dtype).max)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Pixels [r0:r1, c0:c1] of the total pixel matrix as (rows, columns, samples);
        only the tiles the region touches are decoded (and fetched, when remote)."""
        g = self.grid
        r0, c0 = max(0, r0), max(0, c0)
        r1, c1 = min(g.rows, r1), min(g.columns, c1)
        out = np.full((max(0, r1 - r0), max(0, c1 - c0), self.samples), self.background,
                      self.dtype)
        if out.size == 0:
            return out
        wanted = {}
        for i in range(r0 // g.tile_rows, (r1 - 1) // g.tile_rows + 1):
            for j in range(c0 // g.tile_columns, (c1 - 1) // g.tile_columns + 1):
                n = self.tiles.get((i, j))
                if n is not None:
                    wanted[n] = (i, j)
        frames = self.fetch(sorted(wanted)) if wanted else {}
        for n, (i, j) in wanted.items():
            tile = frames[n]
            if tile.ndim == 2:
                tile = tile[:, :, None]
            tr0, tc0 = i * g.tile_rows, j * g.tile_columns
            a0, a1 = max(r0, tr0), min(r1, tr0 + g.tile_rows)
            b0, b1 = max(c0, tc0), min(c1, tc0 + g.tile_columns)
            out[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = tile[a0 - tr0:a1 - tr0, b0 - tc0:b1 - tc0,
                                                         :self.samples]
        return out

    def overview(self, max_side: int) -> tuple[np.ndarray, int]:
        """The whole level shrunk by an integer step so that its longer side is at most
        ``max_side`` (every step-th pixel), and the step; read a band of tiles at a time."""
        g = self.grid
        step = max(1, -(-max(g.rows, g.columns) // max(1, max_side)))
        rows = []
        band = g.tile_rows * max(1, 4096 // g.tile_rows)
        for r in range(0, g.rows, band):
            part = self.read(r, min(g.rows, r + band), 0, g.columns)
            first = (-r) % step
            rows.append(part[first::step, ::step])
        return np.concatenate(rows, axis=0), step


@dataclass
class SlideImage:
    """The levels of one slide series, largest first."""

    levels: list[SlideLevel]
    where: str

    def level_matching(self, grid: SlideGrid) -> SlideLevel | None:
        """The level whose total pixel matrix has the size of ``grid`` (a SEG's source)."""
        for level in self.levels:
            if level.grid.shape == grid.shape:
                return level
        return None

    def level_for(self, max_side: int) -> SlideLevel:
        """The smallest level whose longer side still reaches ``max_side`` pixels (else the
        largest): what a preview of that size is made from."""
        fits = [lv for lv in self.levels if max(lv.grid.shape) >= max_side]
        return fits[-1] if fits else self.levels[0]


# --- which frame holds which tile --------------------------------------------------------
def tile_frames(ds, grid: SlideGrid, where: str) -> dict[tuple[int, int], int]:
    """(tile row, tile column) -> 1-based frame number of the first optical path and focal
    plane, from the frame order (TILED_FULL) or Plane Position (Slide) (TILED_SPARSE)."""
    nframes = int(ds.get("NumberOfFrames") or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if str(ds.get("DimensionOrganizationType") or "") == "TILED_FULL" or not per_frame:
        n = min(nframes, grid.n_tiles)
        return {(k // grid.tiles_across, k % grid.tiles_across): k + 1 for k in range(n)}
    if len(per_frame) != nframes:
        raise InvalidInputError(f"{where}: {len(per_frame)} per-frame functional group items "
                                f"for {nframes} frames")
    first_path = grid.optical_path_ids[0] if grid.optical_path_ids else None
    out: dict[tuple[int, int], int] = {}
    z_first = None
    for k, item in enumerate(per_frame):
        path_items = item.get("OpticalPathIdentificationSequence")
        if path_items and first_path is not None and \
                str(path_items[0].get("OpticalPathIdentifier")) != first_path:
            continue
        try:
            pos = item.PlanePositionSlideSequence[0]
            row = int(pos.RowPositionInTotalImagePixelMatrix)
            col = int(pos.ColumnPositionInTotalImagePixelMatrix)
            z = pos.get("ZOffsetInSlideCoordinateSystem")
        except (AttributeError, IndexError, TypeError, ValueError):
            raise InvalidInputError(f"{where}: frame {k + 1} has no Plane Position (Slide) "
                                    "(TILED_SPARSE needs one per frame)") from None
        z = None if z is None else float(z)
        if z_first is None:
            z_first = z
        if z != z_first:
            continue  # another focal plane
        try:
            ij = grid.tile_of_position(row, col)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: frame {k + 1}: {exc}") from None
        out.setdefault(ij, k + 1)
    return out


def _level(ds, fetch, where: str, name: str) -> SlideLevel:
    from .reference import grid_of

    try:
        grid = grid_of(ds)
    except (AttributeError, IndexError, KeyError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{where}: incomplete slide image header ({exc})") from None
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 8)
    if bits not in (8, 16) or int(ds.get("PixelRepresentation") or 0):
        raise UnsupportedError(f"{where}: slide images of {bits}-bit "
                               f"{'signed' if ds.get('PixelRepresentation') else 'unsigned'} "
                               "samples are not read (8 or 16 bits, unsigned)")
    return SlideLevel(grid, ds, tile_frames(ds, grid, where), fetch, samples,
                      str(ds.get("PhotometricInterpretation") or "RGB"), name,
                      np.dtype(np.uint8 if bits == 8 else "<u2"))


def _is_level(ds) -> bool:
    if str(ds.get("SOPClassUID") or "") != SM_SOP_CLASS:
        return False
    kind = list(ds.get("ImageType") or [])
    return len(kind) < 3 or str(kind[2]) in LEVEL_FLAVORS


def _sorted_levels(levels: list[SlideLevel], where: str) -> list[SlideLevel]:
    if not levels:
        raise InvalidInputError(f"{where}: no VL Whole Slide Microscopy image (VOLUME or "
                                "THUMBNAIL) there")
    series = {str(lv.header.get("SeriesInstanceUID") or "") for lv in levels}
    if len(series) > 1:
        raise InvalidInputError(f"{where}: holds {len(series)} slide series; name one")
    return sorted(levels, key=lambda lv: -lv.grid.rows * lv.grid.columns)


# --- local files -------------------------------------------------------------------------
class LocalFrames:
    """Frames of a local SM file, decoded on demand from its memory map."""

    def __init__(self, path: Path) -> None:
        from ..dicom import rawdicom as raw
        from ..dicom.codecs import NATIVE
        from ..dicom.parse import parse_file

        self.path = path
        parsed = parse_file(path)
        self.parsed = parsed
        self.transfer_syntax = parsed.transfer_syntax
        pixel = parsed.top.get(raw.PIXEL_DATA)
        if pixel is None:
            raise InvalidInputError(f"{path}: slide image without pixel data")
        kind, value = pixel
        kind = kind.decode("ascii") if isinstance(kind, bytes) else kind
        self.native = self.transfer_syntax in NATIVE and kind != "encapsulated"
        self.value = value
        self.ds = None  # set by open_local (the pydicom header)

    def frames_of(self, nframes: int) -> list:
        """The encoded frames (encapsulated: one fragment per frame, or split by pydicom)."""
        from pydicom.encaps import generate_frames

        from ..dicom import rawdicom as raw

        frags = self.value
        if len(frags) - 1 == nframes:
            return frags[1:]
        enc = b"".join(raw.item(bytes(f)) for f in frags) + raw.SEQUENCE_DELIMITER
        return list(generate_frames(enc, number_of_frames=nframes))

    def __call__(self, numbers: Sequence[int]) -> dict[int, np.ndarray]:
        ds = self.ds
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel") or 1)
        nframes = int(ds.get("NumberOfFrames") or 1)
        out = {}
        if self.native:
            size = rows * cols * samples * (int(ds.get("BitsAllocated") or 8) // 8)
            for n in numbers:
                chunk = self.value[(n - 1) * size:n * size]
                if len(chunk) < size:
                    raise InvalidInputError(f"{self.path}: frame {n} is cut short")
                out[n] = native_frame(chunk, ds)
            return out
        if not hasattr(self, "_frames"):
            try:
                self._frames = self.frames_of(nframes)
            except Exception as exc:
                raise InvalidInputError(f"{self.path}: cannot split the pixel data into "
                                        f"{nframes} frames ({exc})") from None
        for n in numbers:
            try:
                out[n] = decode_frame(bytes(self._frames[n - 1]), ds, self.transfer_syntax)
            except (InvalidInputError, UnsupportedError):
                raise
            except Exception as exc:
                raise InvalidInputError(f"{self.path}: frame {n} does not decode "
                                        f"({type(exc).__name__})") from None
        return out


def open_local(paths: Sequence[str | os.PathLike]) -> SlideImage:
    """The slide series among local files / folders (every SM level found)."""
    import pydicom

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.is_file())
        elif p.exists():
            files.append(p)
        else:
            raise InvalidInputError(f"{p}: no such file or folder")
    where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1})"
    levels = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            if len(files) == 1:
                raise InvalidInputError(f"{f}: not a readable DICOM file") from None
            continue  # a folder may hold other files
        if not _is_level(ds):
            continue
        fetch = LocalFrames(f)
        fetch.ds = ds
        levels.append(_level(ds, fetch, str(f), f.name))
    return SlideImage(_sorted_levels(levels, where), where)


def open_slide(source, *, options=None) -> SlideImage:
    """A slide series from local paths (a file, a folder, a list) or a DICOMweb series URL."""
    from ..web.client import is_url

    if isinstance(source, SlideImage):
        return source
    if isinstance(source, (str, os.PathLike)) and is_url(str(source)):
        from ..web.slide import remote_levels

        where, items = remote_levels(str(source), _is_level, options=options)
        levels = [_level(ds, fetch, f"{where}/instances/{fetch.sop}", fetch.sop)
                  for ds, fetch in items]
        return SlideImage(_sorted_levels(levels, where), where)
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    return open_local(paths)
