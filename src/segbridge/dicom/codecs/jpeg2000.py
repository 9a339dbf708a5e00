"""JPEG 2000 (lossless) via pylibjpeg-openjpeg; the one image codec that also takes 1-bit frames.

The binding always uses 6 wavelet resolutions, so OpenJPEG refuses frames smaller than 32x32
pixels; those get a clear error instead of a crash. OpenJPEG's 1-bit path is unreliable on
noise-like masks (measured: 2 of 400 random 32-45 px masks decoded as all zeros, some fail to
encode; 0 of 600 smooth masks failed), so every 1-bit frame is decoded again and compared before
it is accepted.
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError, UnsupportedError
from ...signals import deferred
from .base import JPEG_2000_LOSSLESS, FrameCodec, as_binary_frame, check_frame, ends_with_marker

MIN_SIDE = 32
#: End of codestream marker (ITU-T T.800 A.3.4).
EOC = b"\xff\xd9"


class Jpeg2000Codec(FrameCodec):
    name = "jpeg2000"
    writes_bits = frozenset({1, 8, 16})

    def __init__(self, uid: str = JPEG_2000_LOSSLESS) -> None:
        self.uid = uid

    def encode(self, frame: np.ndarray, bits_allocated: int) -> bytes:
        import openjpeg

        if min(frame.shape) < MIN_SIDE:
            raise UnsupportedError(f"the JPEG 2000 encoder needs frames of at least "
                                   f"{MIN_SIDE}x{MIN_SIDE} pixels (got {frame.shape[0]}x"
                                   f"{frame.shape[1]}); use rle or deflate-frame")
        if bits_allocated == 1:
            arr = (frame != 0).astype(np.uint8)
            try:
                with deferred():
                    out = bytes(openjpeg.encode(arr, bits_stored=1,
                                                photometric_interpretation=2, use_mct=False))
            except RuntimeError:
                out = b""
            if not out or not np.array_equal(openjpeg.decode(out), arr):
                raise UnsupportedError("OpenJPEG could not encode a 1-bit frame losslessly "
                                       "(it fails on noise-like masks); use rle")
            return out
        dtype = np.uint8 if bits_allocated == 8 else np.uint16
        with deferred():
            return bytes(openjpeg.encode(np.ascontiguousarray(frame, dtype),
                                         bits_stored=bits_allocated,
                                         photometric_interpretation=2, use_mct=False))

    def decode(self, data: bytes, rows: int, columns: int, bits_allocated: int) -> np.ndarray:
        """One frame, refused unless the codestream is whole (ends with EOC, T.800 A.3.4) and
        decodes to one Rows x Columns component of at most BitsAllocated bits."""
        import openjpeg

        data = bytes(data)
        if not ends_with_marker(data, EOC):
            raise InvalidInputError("JPEG 2000 codestream does not end with its EOC marker "
                                    "(cut short?)")
        arr = np.asarray(openjpeg.decode(data))
        if arr.ndim != 2:
            raise InvalidInputError(f"JPEG 2000 frame decodes to shape {arr.shape}, expected "
                                    f"one component of {rows}x{columns}")
        if arr.shape != (rows, columns):
            raise InvalidInputError(f"JPEG 2000 frame is {arr.shape[0]}x{arr.shape[1]}, "
                                    f"expected {rows}x{columns}")
        if bits_allocated == 1:
            return as_binary_frame(arr, rows, columns)
        return check_frame(arr, rows, columns, bits_allocated, "JPEG 2000 frame")
