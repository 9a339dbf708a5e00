"""Pixel codecs for segmentation frames, one small module per backend, keyed by transfer syntax.

Encapsulated transfer syntaxes encode and decode one frame at a time (:class:`FrameCodec`).
Native transfer syntaxes (implicit/explicit little endian, explicit big endian, deflated
dataset) are not frame based: 1-bit frames run on across byte boundaries, so they are packed
and unpacked for the whole object in :mod:`.native`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UnsupportedError
from .base import (
    DEFLATED_IMAGE_FRAME,
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_LS_LOSSLESS,
    NATIVE,
    RLE_LOSSLESS,
    FrameCodec,
    as_binary_frame,
    check_frame,
    ends_with_marker,
    first_line,
)

__all__ = ["DEFLATED_IMAGE_FRAME", "DEFLATED_LE", "EXPLICIT_BE", "EXPLICIT_LE", "IMPLICIT_LE",
           "JPEG_2000", "JPEG_2000_LOSSLESS", "JPEG_LS_LOSSLESS", "NATIVE", "RLE_LOSSLESS",
           "FrameCodec", "as_binary_frame", "check_frame", "ends_with_marker", "first_line",
           "COMPRESSIONS", "Compression", "codec_for"]


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
        raise UnsupportedError(f"transfer syntax {uid!r} is not supported for segmentations") \
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
