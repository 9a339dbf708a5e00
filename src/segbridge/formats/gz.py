"""Compressed streams read to their end and checked (gzip RFC 1952, bzip2).

nibabel and pynrrd stop inflating once they have the bytes they need, so a gzip member whose
CRC-32 or ISIZE trailer is wrong, that is cut short, or that is followed by garbage, converts
silently into wrong voxels. :class:`Inflater` hands out the decompressed bytes a reader asks for,
and :meth:`Inflater.finish` inflates the rest of the stream (discarding it, so memory stays
bounded) and checks every member's trailer, as ``gzip -t`` does. Concatenated members are one
stream (RFC 1952 section 2.2); zero padding after the last member is accepted, as Python's
``gzip`` module accepts it.
"""

from __future__ import annotations

import bz2
import zlib
from pathlib import Path
from typing import Literal

from ..errors import InvalidInputError

Kind = Literal["gzip", "bzip2"]
_CHUNK = 1 << 20
_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh"}


class Inflater:
    """Sequential reader of a gzip or bzip2 stream held in ``data`` (starting at ``start``)."""

    def __init__(self, data: bytes | memoryview, path: str | Path, kind: Kind = "gzip",
                 start: int = 0) -> None:
        self.path, self.kind = path, kind
        self._data = memoryview(data)
        self._pos = start
        self._buf = bytearray()
        self._done = False
        self.total_out = 0  # decompressed bytes produced so far
        if bytes(self._data[start:start + len(_MAGIC[kind])]) != _MAGIC[kind]:
            raise InvalidInputError(f"{path}: not {kind} data (no {kind} signature)")
        self._dec = self._new()

    def _new(self):
        return zlib.decompressobj(zlib.MAX_WBITS | 16) if self.kind == "gzip" \
            else bz2.BZ2Decompressor()

    def _fail(self, why: str) -> InvalidInputError:
        return InvalidInputError(f"{self.path}: damaged {self.kind} data ({why}); "
                                 f"the file is corrupt or incomplete")

    def _step(self, want: int) -> bytes:
        """Up to ``want`` more decompressed bytes (b'' only at the end of the stream)."""
        while not self._done:
            dec = self._dec
            if self.kind == "gzip":
                tail = dec.unconsumed_tail
                feed = tail if tail else self._data[self._pos:self._pos + _CHUNK]
                if not tail:
                    self._pos += len(feed)
                try:
                    out = dec.decompress(feed, want)
                except zlib.error as exc:
                    raise self._fail(_zlib_reason(exc)) from None
            else:
                if dec.needs_input:
                    feed = self._data[self._pos:self._pos + _CHUNK]
                    self._pos += len(feed)
                else:
                    feed = b""
                try:
                    out = dec.decompress(feed, want)
                except (OSError, EOFError, ValueError):
                    raise self._fail("invalid bzip2 block or checksum") from None
            if dec.eof:
                self._next_member(bytes(dec.unused_data))
            elif not out and self._pos >= len(self._data) and not _pending(dec):
                raise self._fail("the stream ends before its end marker: truncated")
            if out:
                self.total_out += len(out)
                return out
        return b""

    def _next_member(self, unused: bytes) -> None:
        rest = unused + bytes(self._data[self._pos:])
        self._pos = len(self._data)
        if not rest.strip(b"\x00"):
            self._done = True
            return
        if not rest.startswith(_MAGIC[self.kind]):
            raise self._fail("unexpected bytes after the end of the stream")
        self._data = memoryview(rest)
        self._pos = 0
        self._dec = self._new()

    def read(self, n: int) -> bytes:
        """Exactly ``n`` decompressed bytes, fewer only when the stream ends first."""
        while len(self._buf) < n:
            chunk = self._step(max(n - len(self._buf), 1 << 16))
            if not chunk:
                break
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` with decompressed bytes (no intermediate copy of the whole); return
        how many were written, fewer than ``len(buf)`` only when the stream ends first."""
        mv = memoryview(buf).cast("B")
        n = min(len(self._buf), len(mv))
        mv[:n] = self._buf[:n]
        del self._buf[:n]
        while n < len(mv):
            chunk = self._step(min(len(mv) - n, _CHUNK))
            if not chunk:
                break
            mv[n:n + len(chunk)] = chunk
            n += len(chunk)
        return n

    def finish(self) -> int:
        """Inflate and check the rest of the stream; return how many bytes were left over."""
        extra = len(self._buf)
        self._buf.clear()
        while chunk := self._step(_CHUNK):
            extra += len(chunk)
        return extra


def _pending(dec) -> bool:
    return bool(getattr(dec, "unconsumed_tail", b""))


def _zlib_reason(exc: zlib.error) -> str:
    """zlib's reason without its 'Error -3 while decompressing data:' prefix."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    reason = text.rsplit(":", 1)[-1].strip()
    return reason or "invalid deflate data"


def read_all(data: bytes | memoryview, path: str | Path, kind: Kind, *, start: int = 0,
             limit: int) -> bytearray:
    """The whole decompressed stream, checked to its end; more than ``limit`` bytes is an
    error raised before they are held in memory."""
    inf = Inflater(data, path, kind, start)
    out = bytearray(limit)
    got = inf.readinto(out)
    if got == limit and inf.read(1):
        raise InvalidInputError(f"{path}: the compressed data holds more bytes than the "
                                "header's sizes")
    inf.finish()
    del out[got:]
    return out
