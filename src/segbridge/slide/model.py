"""The slide model: a tiled total pixel matrix and segments on it, never one big array.

A whole-slide segmentation lives on the *total pixel matrix* of one resolution level of a
VL Whole Slide Microscopy image (PS3.3 C.8.12.4): ``rows`` x ``columns`` pixels cut into
``tile_rows`` x ``tile_columns`` tiles, placed in the slide coordinate system by
TotalPixelMatrixOriginSequence (mm) and ImageOrientationSlide, with PixelSpacing per level.
The voxels stay in :class:`~segbridge.slide.tiles.TileSource` objects (a NumPy array or
memmap, a tiled TIFF, a SEG read lazily), read region by region, so a 50,000 x 50,000 label
image never has to be in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..model import FRACTIONAL_TYPES, Segment, SegmentList

if TYPE_CHECKING:
    from .tiles import TileSource

SEG_TYPES = ("BINARY", "FRACTIONAL", "LABELMAP")
SM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"   # VL Whole Slide Microscopy Image Storage


@dataclass(frozen=True)
class SlideSource:
    """The source image of a level: study, series, instance and SOP class (PS3.3 C.7.6.16.2.6)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str = SM_SOP_CLASS


@dataclass
class SlideGrid:
    """One resolution level of a slide's total pixel matrix and where it lies on the slide.

    ``pixel_spacing`` is (between rows, between columns) in mm as PixelSpacing orders it;
    ``orientation`` is ImageOrientationSlide (row direction, then column direction, in the
    slide coordinate system, PS3.3 C.8.12.4.1.2); ``origin`` is the (X, Y) offset of
    TotalPixelMatrixOriginSequence in mm (PS3.3 C.8.12.4.1.4): taken, as highdicom takes
    it, as the slide position of the top left pixel of the total pixel matrix.
    """

    rows: int
    columns: int
    tile_rows: int
    tile_columns: int
    pixel_spacing: tuple[float, float] = (0.001, 0.001)
    orientation: tuple[float, ...] = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0)
    origin: tuple[float, float] = (0.0, 0.0)
    frame_of_reference_uid: str | None = None
    optical_path_ids: tuple[str, ...] = ("1",)
    container_id: str | None = None
    source: SlideSource | None = None
    header: object | None = field(default=None, repr=False)
    slice_thickness: float | None = None
    z_offset: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rows", "columns", "tile_rows", "tile_columns"):
            v = int(getattr(self, name))
            if v < 1:
                raise InvalidInputError(f"slide grid: {name} must be positive, got {v}")
            setattr(self, name, v)
        if self.rows * self.columns > 2 ** 48:
            raise InvalidInputError("slide grid: total pixel matrix too large")
        if len(self.orientation) != 6:
            raise InvalidInputError("slide grid: ImageOrientationSlide needs six values")

    # -- tiles ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.columns)

    @property
    def tiles_down(self) -> int:
        """Tiles per column of tiles (ceil(TotalPixelMatrixRows / Rows))."""
        return -(-self.rows // self.tile_rows)

    @property
    def tiles_across(self) -> int:
        """Tiles per row of tiles (ceil(TotalPixelMatrixColumns / Columns))."""
        return -(-self.columns // self.tile_columns)

    @property
    def n_tiles(self) -> int:
        return self.tiles_down * self.tiles_across

    def tile_box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Pixel box (r0, r1, c0, c1) of tile row ``i``, tile column ``j``, clipped to the matrix."""
        r0, c0 = i * self.tile_rows, j * self.tile_columns
        return r0, min(r0 + self.tile_rows, self.rows), c0, min(c0 + self.tile_columns, self.columns)

    def tiles(self) -> Iterator[tuple[int, int]]:
        """Tile indices (i, j) row by row: the TILED_FULL order within a plane (PS3.3 C.7.6.17.3)."""
        for i in range(self.tiles_down):
            for j in range(self.tiles_across):
                yield i, j

    def tile_position(self, i: int, j: int) -> tuple[int, int]:
        """1-based (Row, Column) Position In Total Image Pixel Matrix of a tile's top left pixel.

        PS3.3 C.8.12.6.1 (Plane Position (Slide)) and C.8.12.4.1.4.
        """
        return i * self.tile_rows + 1, j * self.tile_columns + 1

    def tile_of_position(self, row_position: int, column_position: int) -> tuple[int, int]:
        """Tile index of a 1-based position; positions off the tile lattice are refused."""
        r, c = row_position - 1, column_position - 1
        if r < 0 or c < 0 or r % self.tile_rows or c % self.tile_columns:
            raise InvalidInputError(
                f"frame position ({row_position}, {column_position}) is not on the tile lattice")
        i, j = r // self.tile_rows, c // self.tile_columns
        if i >= self.tiles_down or j >= self.tiles_across:
            raise InvalidInputError(
                f"frame position ({row_position}, {column_position}) is outside the"
                f" {self.rows} x {self.columns} total pixel matrix")
        return i, j

    # -- slide coordinates -------------------------------------------------------------------
    def slide_xyz(self, row: float, column: float) -> tuple[float, float, float]:
        """Slide coordinates (mm) of a (0-based, fractional) pixel position.

        PS3.3 C.8.12.4.1.2: x = origin + column * spacing_col * row_dir + row * spacing_row *
        col_dir; (0, 0) is the top left pixel, as TotalPixelMatrixOriginSequence places it.
        """
        o = self.orientation
        sr, sc = self.pixel_spacing
        x = self.origin[0] + o[0] * column * sc + o[3] * row * sr
        y = self.origin[1] + o[1] * column * sc + o[4] * row * sr
        z = self.z_offset + o[2] * column * sc + o[5] * row * sr
        return (x, y, z)

    def tile_xyz(self, i: int, j: int) -> tuple[float, float, float]:
        """Slide coordinates of a tile's top left pixel (X/Y/Z Offset In Slide Coordinate System)."""
        r, c = self.tile_position(i, j)
        return self.slide_xyz(r - 1, c - 1)

    def downsampled(self, factor: float) -> SlideGrid:
        """The level ``factor`` times coarser, as highdicom's pyramids make it: size
        int(n / factor), spacing x (n / size) per axis, same origin and tile size."""
        from .tiles import pyramid_size

        if not factor > 1:
            raise InvalidInputError(f"downsampling factors must be above 1, got {factor}")
        rows, cols = pyramid_size(self.rows, factor), pyramid_size(self.columns, factor)
        return replace(self, rows=rows, columns=cols,
                       pixel_spacing=(self.pixel_spacing[0] * self.rows / rows,
                                      self.pixel_spacing[1] * self.columns / cols))

    def spacing_differs(self, other: SlideGrid) -> str | None:
        """What differs between the two levels' pixel spacings (relative 1e-6), or None: a
        SEG and an image of one matrix size but other spacings are not one level."""
        a, b = self.pixel_spacing, other.pixel_spacing
        if all(abs(x - y) <= 1e-6 * max(abs(x), abs(y)) for x, y in zip(a, b, strict=True)):
            return None
        return f"pixel spacing {a[0]:g} x {a[1]:g} mm, the slide image's {b[0]:g} x {b[1]:g}"

    def origin_differs(self, other: SlideGrid, tolerance_mm: float = 1e-3) -> str | None:
        """What differs between the two total pixel matrix origins (beyond 1 micrometre), or
        None: the pixels of one do not lie on the pixels of the other."""
        a, b = self.origin, other.origin
        if all(abs(x - y) <= tolerance_mm for x, y in zip(a, b, strict=True)):
            return None
        return (f"origin ({a[0]:g}, {a[1]:g}) mm, the slide image's ({b[0]:g}, {b[1]:g}) mm")

    def same_slide(self, other: SlideGrid) -> bool:
        """Same total pixel matrix size and frame of reference (what a SEG must match)."""
        return (self.shape == other.shape
                and (self.frame_of_reference_uid or None) == (other.frame_of_reference_uid or None))


@dataclass
class SlideSegmentation(SegmentList):
    """Segments on a slide grid: one label TileSource, or one TileSource per segment.

    ``labels`` (label value = segment number, 0 = background) is used for non-overlapping
    segments of any type; ``masks`` (segment number -> TileSource of 0/1 for BINARY or
    0..``max_fractional_value`` for FRACTIONAL) for overlapping or fractional segments.
    ``seg_type`` is the SEG type to write (BINARY, FRACTIONAL, LABELMAP).
    """

    grid: SlideGrid
    segments: list[Segment]
    seg_type: str = "LABELMAP"
    labels: TileSource | None = None
    masks: dict[int, TileSource] | None = None
    fractional_type: str = "PROBABILITY"
    max_fractional_value: int = 255
    series_description: str | None = None
    content_label: str | None = None

    def __post_init__(self) -> None:
        self.seg_type = self.seg_type.upper()
        if self.seg_type not in SEG_TYPES:
            raise InvalidInputError(f"segmentation type must be one of {', '.join(SEG_TYPES)}")
        if (self.labels is None) == (self.masks is None):
            raise InvalidInputError("a slide segmentation needs either labels or masks")
        numbers = [s.number for s in self.segments]
        if len(set(numbers)) != len(numbers):
            raise InvalidInputError(f"segment numbers are not unique: {numbers}")
        sources: Sequence = [self.labels] if self.labels is not None else list(self.masks.values())
        for src in sources:
            if tuple(src.shape) != self.grid.shape:
                raise InvalidInputError(
                    f"pixel data is {src.shape[0]} x {src.shape[1]}, the slide's total pixel"
                    f" matrix is {self.grid.rows} x {self.grid.columns}")
        if self.masks is not None and set(self.masks) != set(numbers):
            raise InvalidInputError("every segment needs exactly one mask")
        if self.seg_type == "LABELMAP" and self.labels is None:
            raise InvalidInputError("a LABELMAP slide segmentation needs one label source")
        if self.seg_type == "FRACTIONAL":
            self.fractional_type = self.fractional_type.upper()
            if self.fractional_type not in FRACTIONAL_TYPES:
                raise InvalidInputError("fractional type must be PROBABILITY or OCCUPANCY")
            if not 1 <= int(self.max_fractional_value) <= 255:
                raise InvalidInputError("max fractional value must be 1..255")


    def read_mask(self, number: int, r0: int, r1: int, c0: int, c1: int):
        """One segment's values in a region: 0/1 from labels, or the mask source's values."""
        if self.masks is not None:
            return self.masks[number].read(r0, r1, c0, c1)
        return (self.labels.read(r0, r1, c0, c1) == number).view("uint8")
