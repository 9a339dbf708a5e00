"""Parse any DICOM file into walked elements (no pydicom): file meta, transfer syntax, dataset.

Shared by the SEG reader and the validator; the validator parses leniently (a truncated value is
kept clipped and reported instead of stopping the parse).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError
from . import rawdicom as raw
from .codecs import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from .rawdicom import RawDataset, text_encoding


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
    """Walk a DICOM file; InvalidInputError (naming the file) when it cannot be read."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        return _parse(p, data, lenient)
    except InvalidInputError:
        raise
    except raw.TruncatedError as exc:
        what = "pixel data" if exc.tag == raw.PIXEL_DATA else f"element {exc.tag:08X}"
        raise InvalidInputError(f"{p}: {what} is truncated ({exc})") from None
    except Exception as exc:  # struct errors and the like on broken files
        raise InvalidInputError(f"{p}: not a readable DICOM file "
                                f"({type(exc).__name__}: {exc})") from None


def _parse(p: Path, data: bytes, lenient: bool) -> ParsedFile:
    has_preamble = data[128:132] == b"DICM"
    pos = 132 if has_preamble else 0
    meta_walker = raw.Walker(data, little=True, implicit=False)
    meta_elems: dict = {}
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":
        tag, vr, length, vpos = meta_walker.header(pos)
        meta_elems[tag] = (vr, meta_walker.buf[vpos:vpos + length])
        pos = vpos + length
    meta = RawDataset(meta_elems, meta_walker)
    ts = str(meta.get("TransferSyntaxUID") or "")
    if not ts:  # no file meta: explicit VR if a VR follows the first tag
        ts = EXPLICIT_LE if data[pos + 4:pos + 6].isalpha() else IMPLICIT_LE
    little = ts != EXPLICIT_BE
    implicit = ts == IMPLICIT_LE
    body = memoryview(data)[pos:]  # no copy of a file that may be hundreds of MB
    if ts == DEFLATED_LE:
        try:
            body = zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise InvalidInputError(f"{p}: deflated dataset does not inflate ({exc})") from None
    walker = raw.Walker(body, little, implicit, lenient=lenient)
    spans: dict = {}
    top, _ = walker.dataset(0, len(body), spans)
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
        raise InvalidInputError(f"{p}: cannot read ({exc.strerror})") from None
    if head[128:132] == b"DICM":
        walker = raw.Walker(head, little=True, implicit=False)
        pos = 132
        while pos + 8 <= len(head) and head[pos:pos + 2] == b"\x02\x00":
            tag, _, length, vpos = walker.header(pos)
            if tag == 0x00020002:
                return bytes(head[vpos:vpos + length]).decode("ascii", "replace").strip("\x00 ")
            pos = vpos + length
    return parse_file(p).sop_class_uid
