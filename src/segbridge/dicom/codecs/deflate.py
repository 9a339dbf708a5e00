"""Deflated Image Frame Compression (PS3.5 8.2.16, 1.2.840.10008.1.2.8.1): raw deflate per frame.

1-bit frames are bit-packed per frame (each frame starts on a byte boundary), the layout pydicom
writes; an odd-length stream is padded with one NUL byte.
"""

from __future__ import annotations

import zlib

import numpy as np

from ...errors import InvalidInputError
from . import DEFLATED_IMAGE_FRAME, FrameCodec, as_binary_frame


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
        try:
            raw = zlib.decompressobj(-15).decompress(bytes(data))
        except zlib.error as exc:
            raise InvalidInputError(f"deflated frame does not inflate: {exc}") from None
        if bits_allocated == 1:
            return as_binary_frame(np.frombuffer(raw, np.uint8), rows, columns)
        dtype = np.uint8 if bits_allocated == 8 else np.dtype("<u2")
        arr = np.frombuffer(raw, dtype)
        if arr.size < rows * columns:
            raise InvalidInputError(f"deflated frame holds {arr.size} pixels, need {rows * columns}")
        return arr[: rows * columns].reshape(rows, columns)
