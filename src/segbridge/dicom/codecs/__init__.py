"""Pixel codecs for segmentation frames, one small module per backend, keyed by transfer syntax.

Encapsulated transfer syntaxes encode and decode one frame at a time (:class:`FrameCodec`).
Native transfer syntaxes (implicit/explicit little endian, explicit big endian, deflated
dataset) are not frame based: 1-bit frames run on across byte boundaries, so they are packed
and unpacked for the whole object in :mod:`.native`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UnsupportedError

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"

NATIVE = {IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE}


class FrameCodec:
    """Encode / decode one frame of an encapsulated transfer syntax."""

    uid: str = ""
    name: str = ""
    #: Bits Allocated values this codec can write.
    writes_bits: frozenset[int] = frozenset()

    def encode(self, frame: np.ndarray, bits_allocated: int) -> bytes:  # pragma: no cover
        raise UnsupportedError(f"{self.name}: encoding not available")

    def decode(self, data: bytes, rows: int, columns: int,
               bits_allocated: int) -> np.ndarray:  # pragma: no cover
        raise UnsupportedError(f"{self.name}: decoding not available")


def _registry() -> dict[str, FrameCodec]:
    from .deflate import DeflatedFrameCodec
    from .jpeg2000 import Jpeg2000Codec
    from .jpegls import JpegLsCodec
    from .rle import RleCodec

    codecs: list[FrameCodec] = [RleCodec(), JpegLsCodec(), Jpeg2000Codec(),
                                Jpeg2000Codec(JPEG_2000), DeflatedFrameCodec()]
    return {c.uid: c for c in codecs}


_CODECS: dict[str, FrameCodec] | None = None


def codec_for(uid: str) -> FrameCodec:
    """The frame codec of an encapsulated transfer syntax; UnsupportedError if none."""
    global _CODECS
    if _CODECS is None:
        _CODECS = _registry()
    try:
        return _CODECS[uid]
    except KeyError:
        raise UnsupportedError(f"transfer syntax {uid} is not supported for segmentations") \
            from None


@dataclass(frozen=True)
class Compression:
    """A user-facing compression choice: CLI name -> transfer syntax."""

    name: str
    uid: str
    description: str


COMPRESSIONS: dict[str, Compression] = {c.name: c for c in (
    Compression("none", EXPLICIT_LE, "Explicit VR Little Endian, native pixels"),
    Compression("rle", RLE_LOSSLESS, "RLE Lossless, one fragment per frame"),
    Compression("jpegls", JPEG_LS_LOSSLESS, "JPEG-LS Lossless (8/16-bit frames only)"),
    Compression("jpeg2000", JPEG_2000_LOSSLESS, "JPEG 2000 Lossless Only"),
    Compression("deflate", DEFLATED_LE, "Deflated Explicit VR Little Endian (whole dataset)"),
    Compression("deflate-frame", DEFLATED_IMAGE_FRAME, "Deflated Image Frame Compression"),
)}


def as_binary_frame(arr: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Decoded 1-bit frame data (bytes per pixel, or bit-packed) -> (rows, columns) 0/1 uint8."""
    flat = np.asarray(arr).reshape(-1)
    n = rows * columns
    if flat.size >= n:
        return (flat[:n] != 0).astype(np.uint8).reshape(rows, columns)
    if flat.size * 8 >= n:  # bit-packed frame, first pixel in the least significant bit
        return np.unpackbits(flat.astype(np.uint8), bitorder="little",
                             count=n).reshape(rows, columns)
    raise ValueError(f"frame holds {flat.size} bytes, too few for {rows}x{columns} pixels")
