"""Native (uncompressed) pixel data: 1-bit packing across frames, 8/16-bit frames.

PS3.5 8.1.1 / Annex D: 1-bit pixels go 8 to a byte, first pixel in the least significant bit,
and frames of a multi-frame object are NOT padded: frame k starts at bit k*Rows*Columns, so when
Rows*Columns is not a multiple of 8 frames share bytes. Only the whole value is padded to even
length. Packing therefore works on groups of 8 frames (always a whole number of bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ...errors import InvalidInputError

#: Frames packed per chunk; a multiple of 8 keeps every chunk byte aligned.
CHUNK_FRAMES = 64


def pack_binary_frames(frames: Iterable[np.ndarray], rows: int, columns: int) -> Iterator[bytes]:
    """Yield the bit-packed bytes of a sequence of 0/1 frames, packed continuously."""
    if columns % 8 == 0:
        yield from _pack_aligned(frames, rows, columns)
        return
    n = rows * columns
    buf = np.empty((CHUNK_FRAMES, n), np.bool_)
    fill = 0
    for frame in frames:
        buf[fill] = frame.reshape(n) != 0
        fill += 1
        if fill == CHUNK_FRAMES:
            yield np.packbits(buf, bitorder="little").tobytes()
            fill = 0
    if fill:
        yield np.packbits(buf[:fill], bitorder="little").tobytes()


def _pack_aligned(frames: Iterable[np.ndarray], rows: int, columns: int) -> Iterator[bytes]:
    """Whole-byte rows: pack only the band of rows holding pixels (segments are small, and
    packing full frames dominated writing a 4,000-frame BINARY SEG)."""
    rowbytes = columns // 8
    for frame in frames:
        m = frame if frame.dtype == np.bool_ else frame != 0
        hit = np.flatnonzero(m.any(axis=1))
        out = bytearray(rows * rowbytes)
        if hit.size:
            r0, r1 = int(hit[0]), int(hit[-1]) + 1
            out[r0 * rowbytes:r1 * rowbytes] = np.packbits(m[r0:r1], bitorder="little").tobytes()
        yield bytes(out)


def native_length(nframes: int, rows: int, columns: int, bits_allocated: int) -> int:
    """Bytes of native pixel data (before padding to even length)."""
    if bits_allocated == 1:
        return (nframes * rows * columns + 7) // 8
    return nframes * rows * columns * (bits_allocated // 8)


def encode_native_frame(frame: np.ndarray, bits_allocated: int) -> bytes:
    """Little-endian bytes of one 8- or 16-bit frame."""
    dtype = np.uint8 if bits_allocated == 8 else np.dtype("<u2")
    return np.ascontiguousarray(frame, dtype).tobytes()


class NativeFrames:
    """Random access to the frames of native pixel data."""

    def __init__(self, data, nframes: int, rows: int, columns: int, bits_allocated: int,
                 big_endian: bool = False, vr: str = "OB") -> None:
        self.buf = np.frombuffer(data, np.uint8)
        if big_endian and vr == "OW" and bits_allocated in (1, 8):
            # OW in big endian swaps every pair of bytes
            even = self.buf[: self.buf.size // 2 * 2]
            self.buf = even.reshape(-1, 2)[:, ::-1].reshape(-1)
        self.nframes, self.rows, self.columns = nframes, rows, columns
        self.bits = bits_allocated
        self.big_endian = big_endian
        need = native_length(nframes, rows, columns, bits_allocated)
        #: 1-bit frames packed one by one (each padded to a whole byte) instead of continuously,
        #: as some writers (Cornerstone's exporter) do: recognised by the data length
        self.padded_frames = False
        per_frame = (rows * columns + 7) // 8
        standard = self.buf.size in (need, need + need % 2)
        if bits_allocated == 1 and (rows * columns) % 8 and not standard and self.buf.size in (
                nframes * per_frame, nframes * per_frame + 1) and nframes > 1:
            self.padded_frames = True
            need = nframes * per_frame
        if self.buf.size < need:
            raise InvalidInputError(
                f"pixel data holds {self.buf.size} bytes but {nframes} frames of "
                f"{rows}x{columns} at {bits_allocated} bits need {need} (truncated file?)")

    def frame(self, k: int) -> np.ndarray:
        r, c = self.rows, self.columns
        n = r * c
        if self.bits == 1:
            if self.padded_frames:
                per_frame = (n + 7) // 8
                block = self.buf[k * per_frame:(k + 1) * per_frame]
                return np.unpackbits(block, bitorder="little", count=n).reshape(r, c)
            start = k * n
            b0, shift = divmod(start, 8)
            b1 = (start + n + 7) // 8
            bits = np.unpackbits(self.buf[b0:b1], bitorder="little")
            return bits[shift:shift + n].reshape(r, c)
        if self.bits == 8:
            return self.buf[k * n:(k + 1) * n].reshape(r, c)
        if self.bits == 16:
            dt = np.dtype(">u2" if self.big_endian else "<u2")
            return self.buf[k * n * 2:(k + 1) * n * 2].view(dt).reshape(r, c).astype(np.uint16)
        raise InvalidInputError(f"{self.bits}-bit pixels are not a segmentation encoding")

    def nonzero_rows(self, k: int) -> tuple[int, int] | None:
        """Row range [r0, r1) holding non-zero pixels of a 1-bit frame, without unpacking it.

        Only used when Rows*Columns and Columns are multiples of 8 (byte-aligned rows).
        """
        r, c = self.rows, self.columns
        rowbytes = c // 8
        start = k * r * rowbytes
        block = self.buf[start:start + r * rowbytes].reshape(r, rowbytes)
        hit = np.flatnonzero(block.any(axis=1))
        if hit.size == 0:
            return None
        return int(hit[0]), int(hit[-1]) + 1
