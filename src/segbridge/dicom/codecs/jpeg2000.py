"""JPEG 2000 (lossless) via pylibjpeg-openjpeg; the one image codec that also takes 1-bit frames."""

from __future__ import annotations

import numpy as np

from . import JPEG_2000_LOSSLESS, FrameCodec, as_binary_frame


class Jpeg2000Codec(FrameCodec):
    name = "jpeg2000"
    writes_bits = frozenset({1, 8, 16})

    def __init__(self, uid: str = JPEG_2000_LOSSLESS) -> None:
        self.uid = uid

    def encode(self, frame: np.ndarray, bits_allocated: int) -> bytes:
        import openjpeg

        if bits_allocated == 1:
            arr = (frame != 0).astype(np.uint8)
            return bytes(openjpeg.encode(arr, bits_stored=1, photometric_interpretation=2,
                                         use_mct=False))
        dtype = np.uint8 if bits_allocated == 8 else np.uint16
        return bytes(openjpeg.encode(np.ascontiguousarray(frame, dtype),
                                     bits_stored=bits_allocated, photometric_interpretation=2,
                                     use_mct=False))

    def decode(self, data: bytes, rows: int, columns: int, bits_allocated: int) -> np.ndarray:
        import openjpeg

        arr = openjpeg.decode(bytes(data))
        if bits_allocated == 1:
            return as_binary_frame(arr, rows, columns)
        return np.asarray(arr).reshape(rows, columns)
