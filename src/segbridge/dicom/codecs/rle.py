"""RLE Lossless (PS3.5 Annex G) via pylibjpeg-rle.

1-bit frames are written as the standard's "padded composite pixel code": one byte per pixel in
one segment (G.2). Readers meet two layouts in the wild, both accepted: one byte per pixel, and
bit-packed bytes per frame (older pydicom output, e.g. pydicom-data ``liver_rle.dcm``).
"""

from __future__ import annotations

import struct

import numpy as np
from rle.utils import decode_segment, encode_frame

from ...errors import InvalidInputError
from . import RLE_LOSSLESS, FrameCodec, as_binary_frame


class RleCodec(FrameCodec):
    uid = RLE_LOSSLESS
    name = "rle"
    writes_bits = frozenset({1, 8, 16})

    def encode(self, frame: np.ndarray, bits_allocated: int) -> bytes:
        rows, columns = frame.shape
        if bits_allocated == 1:
            data = (frame != 0).astype(np.uint8).tobytes()
            return bytes(encode_frame(data, rows, columns, 1, 8, "<"))
        dtype = np.uint8 if bits_allocated == 8 else np.dtype("<u2")
        return bytes(encode_frame(np.ascontiguousarray(frame, dtype).tobytes(), rows, columns,
                                  1, bits_allocated, "<"))

    def decode(self, data: bytes, rows: int, columns: int, bits_allocated: int) -> np.ndarray:
        if len(data) < 64:
            raise InvalidInputError("RLE frame shorter than its 64-byte header")
        header = struct.unpack("<16L", data[:64])
        nseg = header[0]
        if not 1 <= nseg <= 15:
            raise InvalidInputError(f"RLE frame declares {nseg} segments")
        offsets = list(header[1:nseg + 1]) + [len(data)]
        segments = [decode_segment(bytes(data[offsets[i]:offsets[i + 1]])) for i in range(nseg)]
        n = rows * columns
        if bits_allocated == 1:
            return as_binary_frame(np.frombuffer(segments[0], np.uint8), rows, columns)
        if bits_allocated == 8:
            seg = np.frombuffer(segments[0], np.uint8)
            if seg.size < n:
                raise InvalidInputError(f"RLE segment decodes to {seg.size} bytes, need {n}")
            return seg[:n].reshape(rows, columns)
        if bits_allocated == 16 and nseg >= 2:
            hi = np.frombuffer(segments[0], np.uint8)[:n].astype(np.uint16)
            lo = np.frombuffer(segments[1], np.uint8)[:n].astype(np.uint16)
            return ((hi << 8) | lo).reshape(rows, columns)
        raise InvalidInputError(f"RLE frame with {nseg} segments for {bits_allocated}-bit pixels")
