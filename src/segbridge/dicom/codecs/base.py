"""What every frame codec shares: the transfer syntax UIDs, the :class:`FrameCodec` interface and
the checks that a decoded frame is exactly one frame (PS3.5 8.2, Annex A.4).

The codec modules import this, and the package (``codecs/__init__``) imports the codec
modules to build its registry: nothing imports the package from inside it.
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError, UnsupportedError

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


def as_binary_frame(arr: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Decoded 1-bit frame data -> (rows, columns) 0/1 uint8, checked to its exact size.

    Two layouts are met: one byte per pixel holding 0 or 1 (the "padded composite pixel code"
    of PS3.5 G.2, and what JPEG 2000 gives) and bit-packed bytes, first pixel in the least
    significant bit (older pydicom RLE, Deflated Image Frame Compression). Any other length,
    or a byte-per-pixel value other than 0/1, means the frame decoded to something else than
    a 1-bit image: InvalidInputError (the caller adds file and frame).
    """
    flat = np.asarray(arr).reshape(-1)
    n = rows * columns
    if flat.size == n:
        if flat.size and int(flat.max()) > 1:
            raise InvalidInputError(f"1-bit frame decodes to pixel value {int(flat.max())} "
                                    "(only 0 and 1 are possible)")
        return flat.astype(np.uint8).reshape(rows, columns)
    if flat.size == (n + 7) // 8 and flat.dtype.itemsize == 1:
        return np.unpackbits(flat.astype(np.uint8), bitorder="little",
                             count=n).reshape(rows, columns)
    raise InvalidInputError(f"1-bit frame decodes to {flat.size} values, expected {n} "
                            f"({rows}x{columns}, or {(n + 7) // 8} bit-packed bytes)")


def check_frame(arr: np.ndarray, rows: int, columns: int, bits_allocated: int,
                what: str) -> np.ndarray:
    """An 8- or 16-bit decoded frame, refused unless it is exactly rows x columns values that
    fit in ``bits_allocated`` bits (a decoder handing back another size is a broken stream)."""
    flat = np.asarray(arr).reshape(-1)
    if flat.size != rows * columns:
        raise InvalidInputError(f"{what} decodes to {flat.size} pixels, expected "
                                f"{rows * columns} ({rows}x{columns})")
    if flat.size and int(flat.max()) >> bits_allocated:
        raise InvalidInputError(f"{what} holds pixel value {int(flat.max())}, more than "
                                f"{bits_allocated} bits")
    dtype = np.uint8 if bits_allocated == 8 else np.uint16
    return flat.astype(dtype, copy=False).reshape(rows, columns)


def ends_with_marker(data: bytes, marker: bytes) -> bool:
    """Does a JPEG / JPEG 2000 codestream end with its end marker (EOI / EOC, FFD9), allowing
    the one NUL byte that pads a fragment to even length (PS3.5 A.4)? A codestream cut short
    lacks it, and some decoders return a partial image for it without complaint."""
    return data.endswith(marker) or data.endswith(marker + b"\x00")


def first_line(exc: BaseException) -> str:
    """The first line of a wrapped library's message (some span several lines)."""
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0].strip() or type(exc).__name__
