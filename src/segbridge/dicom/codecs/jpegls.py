"""JPEG-LS Lossless via pyjpegls (CharLS). 8- and 16-bit frames only (PS3.5 Table 8.2.3-1)."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from . import JPEG_LS_LOSSLESS, FrameCodec, as_binary_frame


class JpegLsCodec(FrameCodec):
    uid = JPEG_LS_LOSSLESS
    name = "jpegls"
    writes_bits = frozenset({8, 16})

    def encode(self, frame: np.ndarray, bits_allocated: int) -> bytes:
        import jpeg_ls

        if bits_allocated not in (8, 16):
            raise UnsupportedError("JPEG-LS cannot hold 1-bit (BINARY) frames; "
                                   "use rle, jpeg2000 or none")
        dtype = np.uint8 if bits_allocated == 8 else np.dtype("<u2")
        rows, columns = frame.shape
        src = np.ascontiguousarray(frame, dtype).tobytes()
        try:
            return bytes(jpeg_ls.encode_buffer(src, rows, columns, 1, bits_allocated, 0, 0))
        except RuntimeError as exc:
            # pyjpegls sizes its output buffer from the input: frames under ~16 pixels (and
            # incompressible noise) overflow it
            raise UnsupportedError(f"the JPEG-LS encoder cannot encode a {rows}x{columns} frame "
                                   f"({exc}); use rle or jpeg2000") from None

    def decode(self, data: bytes, rows: int, columns: int, bits_allocated: int) -> np.ndarray:
        import jpeg_ls

        buf, info = jpeg_ls.decode_buffer(bytes(data))
        dtype = np.uint8 if info["bits_per_sample"] <= 8 else np.dtype("<u2")
        arr = np.frombuffer(buf, dtype)
        if bits_allocated == 1:
            return as_binary_frame(arr, rows, columns)
        return arr[: rows * columns].reshape(rows, columns)
