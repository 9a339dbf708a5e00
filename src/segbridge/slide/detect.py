"""Is a conversion about slides? Cheap tests (no numpy, no pydicom) for ``convert``'s hook.

A slide input or output is a label image (``.tif``, ``.tiff``, ``.npy``), or a DICOM SEG on a
total pixel matrix: TotalPixelMatrixRows (0048,0007) and a SEG SOP class within the file's
first 64 KiB (tags are ascending, so (0048,0007) comes before the segment and per-frame
sequences; only the patient, study and specimen attributes precede it).
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = (".tif", ".tiff", ".npy")
#: QuPath's polygons (slide/geojson.py reads them, slide/polygons.py writes them)
POLYGON_SUFFIXES = (".geojson",)
HEAD_BYTES = 64 << 10


def is_slide_path(path: str | os.PathLike) -> bool:
    """A label image (.tif, .tiff, .npy) or polygons (.geojson)?"""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES + POLYGON_SUFFIXES


def is_polygons(path: str | os.PathLike) -> bool:
    """QuPath GeoJSON polygons?"""
    return Path(path).suffix.lower() in POLYGON_SUFFIXES


def is_slide_seg(path: str | os.PathLike) -> bool:
    """Does a DICOM file look like a SEG on a total pixel matrix? (The slide reader then
    checks for real; a deflated file is not recognised here.)"""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return False
    if b"\x48\x00\x07\x00UL" not in head and b"\x48\x00\x07\x00\x04\x00\x00\x00" not in head:
        return False
    return b"1.2.840.10008.5.1.4.1.1.66." in head


def is_slide_job(inputs, output) -> bool:
    """A label image in or out, a slide SEG in, or a PNG preview of a slide."""
    paths = [Path(p) for p in inputs]

    def slide_input(p: Path) -> bool:
        return is_slide_path(p) or (p.suffix.lower() == ".dcm" and p.is_file()
                                    and is_slide_seg(p))

    if output is not None and is_slide_path(output):
        return True
    if any(slide_input(p) for p in paths):
        return True
    return False
