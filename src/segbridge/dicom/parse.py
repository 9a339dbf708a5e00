"""Parse any DICOM file into walked elements (no pydicom): file meta, transfer syntax, dataset.

Shared by the SEG reader and the validator; the validator parses leniently (a truncated value is
kept clipped and reported instead of stopping the parse).
"""

from __future__ import annotations

import mmap
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError
from . import rawdicom as raw
from .codecs import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from .rawdicom import RawDataset, text_encoding

#: largest inflated dataset read from a deflated file (a deflate bomb stops here)
MAX_INFLATED = 1 << 30
#: files at least this large are mapped, not read: only the pages a reader touches are loaded
#: (a 400 MB BINARY SEG is validated after writing from its header pages alone); an empty file
#: cannot be mapped
MAP_AT = 1


@dataclass
class ParsedFile:
    """A DICOM file as walked elements."""

    path: Path
    meta: RawDataset
    ds: RawDataset
    top: dict
    walker: raw.Walker
    transfer_syntax: str
    little: bool
    implicit: bool
    body: object
    spans: dict = field(default_factory=dict)
    has_preamble: bool = True
    #: the file's memory map, when it was mapped (see :func:`parse_file`)
    mapping: mmap.mmap | None = None

    def release_pages(self) -> None:
        """Drop the mapped pages read so far from this process (the page cache keeps them; a
        later access maps them back). Frame loops call it so that decoding a file of hundreds
        of MB does not hold all of it resident at once."""
        if self.mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
            try:
                self.mapping.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass

    @property
    def sop_class_uid(self) -> str:
        return str(self.ds.get("SOPClassUID") or self.meta.get("MediaStorageSOPClassUID") or "")

    def header_bytes(self, keywords) -> tuple[bytes, bool, bool]:
        """The listed top-level elements as encoded in the file (to copy them verbatim)."""
        from .tags import TAGS

        parts = []
        for kw in keywords:
            tag = TAGS[kw][0] if kw in TAGS else None
            if tag in self.spans:
                a, b = self.spans[tag]
                parts.append((tag, bytes(self.body[a:b])))
        return b"".join(p for _, p in sorted(parts)), self.little, self.implicit


def parse_file(path: str | Path, *, lenient: bool = False) -> ParsedFile:
    """Walk a DICOM file; InvalidInputError (one line naming the file) when it cannot be read."""
    p = Path(path)
    try:
        data, mapping = _load(p)
    except OSError as exc:
        raise InvalidInputError(f"{p}: cannot read ({exc.strerror or type(exc).__name__})") \
            from None
    parsed = _parse(p, data, lenient)
    parsed.mapping = mapping
    return parsed


def _load(p: Path) -> tuple[object, mmap.mmap | None]:
    """The file's bytes: a read-only memory map for a large regular file (its pixel data stays
    on disk until a frame is decoded), else read whole. A file that cannot be mapped (a pipe, a
    special file system) is read."""
    with open(p, "rb") as fp:
        try:
            size = os.fstat(fp.fileno()).st_size
            if size >= MAP_AT and stat.S_ISREG(os.fstat(fp.fileno()).st_mode):
                m = mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ)
                return m, m
        except (OSError, ValueError):
            pass
        return fp.read(), None


def _file_meta(p: Path, data: bytes) -> tuple[dict, int]:
    """Group 0002 elements (always Explicit VR Little Endian, PS3.10 7.1) and where the
    dataset starts."""
    has_preamble = data[128:132] == b"DICM"
    pos = 132 if has_preamble else 0
    walker = raw.Walker(data, little=True, implicit=False, name=str(p))
    elems: dict = {}
    group_end = None
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":
        tag, vr, length, vpos = walker.header(pos)
        if length == raw.UNDEFINED or vpos + length > len(data):
            raise InvalidInputError(f"{p}: file meta element {raw.tag_str(tag)} runs past the "
                                    "end of the file")
        elems[tag] = (vr, walker.buf[vpos:vpos + length])
        pos = vpos + length
        if tag == 0x00020000 and length == 4:  # File Meta Information Group Length
            group_end = pos + int.from_bytes(data[vpos:vpos + 4], "little")
    if group_end is not None and pos < group_end > len(data):  # the file ends inside it
        raise InvalidInputError(f"{p}: file meta information is truncated ({pos} of "
                                f"{group_end} bytes present)")
    return elems, pos


def _inflate(p: Path, body) -> bytes:
    """The dataset of a Deflated Explicit VR Little Endian file (PS3.5 A.5), checked to the end
    of its deflate stream: a truncated or corrupt stream is refused, never read in part."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(body, MAX_INFLATED)
        if d.unconsumed_tail:
            raise InvalidInputError(f"{p}: deflated dataset inflates to more than "
                                    f"{MAX_INFLATED >> 20} MiB; refused")
        out += d.flush()
    except zlib.error as exc:
        raise InvalidInputError(f"{p}: deflated dataset is corrupt ({exc})") from None
    if not d.eof:
        raise InvalidInputError(f"{p}: deflated dataset is truncated (the deflate stream does "
                                "not end)")
    if d.unused_data.strip(b"\x00"):
        raise InvalidInputError(f"{p}: {len(d.unused_data)} bytes follow the end of the deflated "
                                "dataset")
    return out


def _parse(p: Path, data: bytes, lenient: bool) -> ParsedFile:
    has_preamble = data[128:132] == b"DICM"
    meta_elems, pos = _file_meta(p, data)
    meta = RawDataset(meta_elems, raw.Walker(data, name=str(p)))
    ts = str(meta.get("TransferSyntaxUID") or "")
    if not ts:  # no file meta: explicit VR if a VR follows the first tag
        ts = EXPLICIT_LE if data[pos + 4:pos + 6].isalpha() else IMPLICIT_LE
    little = ts != EXPLICIT_BE
    implicit = ts == IMPLICIT_LE
    body = memoryview(data)[pos:]  # no copy of a file that may be hundreds of MB
    if ts == DEFLATED_LE:
        body = _inflate(p, body)
    walker = raw.Walker(body, little, implicit, lenient=lenient, name=str(p))
    spans: dict = {}
    top, _ = walker.dataset(0, len(body), spans, top=True)
    charset = RawDataset(top, walker).get("SpecificCharacterSet")
    ds = RawDataset(top, walker, text_encoding(charset))
    return ParsedFile(p, meta, ds, top, walker, ts, little, implicit, body, spans, has_preamble)


def sop_class_of(path: str | Path) -> str:
    """SOP Class UID of a DICOM file from its file meta (reads the first 64 KiB only)."""
    p = Path(path)
    try:
        with open(p, "rb") as fp:
            head = fp.read(65536)
    except OSError as exc:
        raise InvalidInputError(f"{p}: cannot read ({exc.strerror or type(exc).__name__})") \
            from None
    if head[128:132] == b"DICM":
        try:
            elems, _ = _file_meta(p, head)
        except InvalidInputError:
            elems = {}  # file meta longer than the head: parse the whole file below
        if 0x00020002 in elems:
            return bytes(elems[0x00020002][1]).decode("ascii", "replace").strip("\x00 ")
    return parse_file(p).sop_class_uid
