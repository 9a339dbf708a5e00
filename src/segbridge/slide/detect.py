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


#: TotalPixelMatrixRows (0048,0007), explicit or implicit little endian
_TPM = (b"\x48\x00\x07\x00UL", b"\x48\x00\x07\x00\x04\x00\x00\x00")
#: elements that follow (0048,0007) in a SEG (tags ascend): SegmentSequence, the functional
#: group sequences, Pixel Data, explicit or implicit VR; seen first, the file has no total
#: pixel matrix (so an implicit-VR volume SEG is not scanned up to SCAN_LIMIT)
_LATER = (b"\x62\x00\x02\x00SQ", b"\x62\x00\x02\x00\xff\xff\xff\xff", b"\x00\x52\x29\x92",
          b"\x00\x52\x30\x92", b"\xe0\x7f\x10\x00")
_SEG_SOP = b"1.2.840.10008.5.1.4.1.1.66."
_DEFLATED = b"1.2.840.10008.1.2.1.99"
#: how far to look for (0048,0007) (a 16-bit palette LUT alone is 393 KB)
SCAN_LIMIT = 16 << 20


def _verdict(buf: bytes) -> bool | None:
    """True: the total pixel matrix tag is there; False: a later element comes first."""
    at = min((i for i in (buf.find(t) for t in _TPM) if i >= 0), default=-1)
    later = min((i for i in (buf.find(t) for t in _LATER) if i >= 0), default=-1)
    if at >= 0 and (later < 0 or at < later):
        return True
    return False if later >= 0 else None


def is_slide_seg(path: str | os.PathLike) -> bool:
    """Does a DICOM file look like a SEG on a total pixel matrix? Reads on from the first
    64 KiB (inflating a deflated data set) until TotalPixelMatrixRows or an element that
    comes after it is seen, at most :data:`SCAN_LIMIT` bytes; the slide reader checks for
    real."""
    import zlib

    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
            if _SEG_SOP not in head:
                return False
            meta_end = 0
            if head[128:132] == b"DICM" and head[132:136] == b"\x02\x00\x00\x00":
                meta_end = 144 + int.from_bytes(head[140:144], "little")
            inflate = None
            if _DEFLATED in head[:max(meta_end, 0)] and meta_end:
                inflate = zlib.decompressobj(-15)
                fh.seek(meta_end)
                head = inflate.decompress(fh.read(HEAD_BYTES))
            seen = len(head)
            buf = head
            while True:
                got = _verdict(buf)
                if got is not None:
                    return got
                chunk = fh.read(1 << 20)
                if not chunk or seen > SCAN_LIMIT:
                    return False
                if inflate is not None:
                    chunk = inflate.decompress(chunk)
                seen += len(chunk)
                buf = buf[-16:] + chunk
    except (OSError, zlib.error):
        return False


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
