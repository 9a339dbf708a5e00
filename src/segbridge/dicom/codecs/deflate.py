"""Deflated Image Frame Compression (PS3.5 8.2.16, 1.2.840.10008.1.2.8.1): raw deflate per frame.

1-bit frames are bit-packed per frame (each frame starts on a byte boundary), the layout pydicom
writes; an odd-length stream is padded with one NUL byte.

Raw deflate carries no checksum, so a frame is only accepted when the stream is complete (its
final block reached), nothing but the pad byte follows it, and it inflates to exactly the bytes
one frame needs: anything else is a damaged frame, refused rather than read half.
"""

from __future__ import annotations

import zlib

import numpy as np

from ...errors import InvalidInputError
from .base import DEFLATED_IMAGE_FRAME, FrameCodec, as_binary_frame, check_frame


class DeflatedFrameCodec(FrameCodec):
    uid = DEFLATED_IMAGE_FRAME
    name = "deflate-frame"
    writes_bits = frozenset({1, 8, 16})

    def encode(self, frame: np.ndarray, bits_allocated: int) -> bytes:
        if bits_allocated == 1:
            raw = np.packbits(frame.reshape(-1) != 0, bitorder="little").tobytes()
        else:
            dtype = np.uint8 if bits_allocated == 8 else np.dtype("<u2")
            raw = np.ascontiguousarray(frame, dtype).tobytes()
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(raw) + c.flush()

    def decode(self, data: bytes, rows: int, columns: int, bits_allocated: int) -> np.ndarray:
        n = rows * columns
        # the largest layout a frame may have: one byte (1-bit) or bits/8 bytes per pixel
        most = n * max(bits_allocated // 8, 1)
        d = zlib.decompressobj(-15)
        try:
            # bounded: a stream inflating past one frame is refused without inflating it all
            raw = d.decompress(bytes(data), most + 1)
        except zlib.error as exc:
            raise InvalidInputError(f"deflated frame does not inflate ({exc})") from None
        if len(raw) > most or d.unconsumed_tail:
            raise InvalidInputError(f"deflated frame inflates to more than the {most} bytes "
                                    "of one frame")
        if not d.eof:
            raise InvalidInputError("deflated frame is cut short (its stream does not end)")
        if d.unused_data not in (b"", b"\x00"):
            raise InvalidInputError(f"deflated frame has {len(d.unused_data)} bytes after the "
                                    "end of its stream")
        if bits_allocated == 1:
            return as_binary_frame(np.frombuffer(raw, np.uint8), rows, columns)
        dtype = np.dtype(np.uint8) if bits_allocated == 8 else np.dtype("<u2")
        if len(raw) % dtype.itemsize:
            raise InvalidInputError(f"deflated frame inflates to {len(raw)} bytes, expected "
                                    f"{n * dtype.itemsize}")
        return check_frame(np.frombuffer(raw, dtype), rows, columns, bits_allocated,
                           "deflated frame")
