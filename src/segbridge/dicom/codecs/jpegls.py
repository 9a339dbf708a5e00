"""JPEG-LS Lossless via pyjpegls (CharLS). 8- and 16-bit frames only (PS3.5 Table 8.2.3-1)."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError, UnsupportedError
from .base import JPEG_LS_LOSSLESS, FrameCodec, as_binary_frame, check_frame, ends_with_marker

#: End of image marker (ITU-T T.87 / T.81 B.2.1).
EOI = b"\xff\xd9"


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
        """One frame, refused unless the stream is whole (ends with EOI, T.87 / T.81 B.2.1),
        lossless (NEAR = 0, as the transfer syntax says) and one Rows x Columns component."""
        import jpeg_ls

        data = bytes(data)
        if not ends_with_marker(data, EOI):
            raise InvalidInputError("JPEG-LS stream does not end with its EOI marker "
                                    "(cut short?)")
        buf, info = jpeg_ls.decode_buffer(data)
        size = (int(info.get("height", 0)), int(info.get("width", 0)))
        if size != (rows, columns) or int(info.get("components", 1)) != 1:
            raise InvalidInputError(f"JPEG-LS frame is {size[0]}x{size[1]} with "
                                    f"{info.get('components')} components, expected one "
                                    f"component of {rows}x{columns}")
        if int(info.get("allowed_lossy_error", 0)):
            raise InvalidInputError("JPEG-LS frame is near-lossless (NEAR "
                                    f"{info['allowed_lossy_error']}) in a lossless transfer "
                                    "syntax")
        dtype = np.dtype(np.uint8) if info["bits_per_sample"] <= 8 else np.dtype("<u2")
        if len(buf) != rows * columns * dtype.itemsize:
            raise InvalidInputError(f"JPEG-LS frame decodes to {len(buf)} bytes, expected "
                                    f"{rows * columns * dtype.itemsize}")
        arr = np.frombuffer(buf, dtype)
        if bits_allocated == 1:
            return as_binary_frame(arr, rows, columns)
        return check_frame(arr, rows, columns, bits_allocated, "JPEG-LS frame")
