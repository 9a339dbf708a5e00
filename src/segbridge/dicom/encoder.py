"""Explicit VR Little Endian encoding of the data sets segbridge writes, without pydicom.

Importing pydicom costs ~0.2 s, most of a small ``convert``; the writers only need to put a few
dozen known attributes into a file, so they build :class:`DataSet` objects here: keyword ->
encoded element, sorted by tag when encoded (PS3.5 7.1), sequences and items of defined length
(PS3.5 7.5), values padded to even length (UI and OB with NUL, other text with a space), text
in the data set's Specific Character Set (PS3.5 6.1; the repertoires pydicom falls back to for
the rest). Elements copied from a source file are inserted as the bytes they were.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from . import rawdicom as raw
from .tags import TAGS
from .uids import IMPLEMENTATION_CLASS_UID

#: keyword -> (tag, VR) of every attribute the writers set: the reader's table
#: (:mod:`.tags`) and the few only writers use (tests/test_encoder.py checks them against pydicom)
WRITER_TAGS: dict[str, tuple[int, str]] = {
    **TAGS,
    "FileMetaInformationGroupLength": (0x00020000, "UL"),
    "FileMetaInformationVersion": (0x00020001, "OB"),
    "ImplementationClassUID": (0x00020012, "UI"),
    "ImplementationVersionName": (0x00020013, "SH"),
    "InstanceCreationTime": (0x00080013, "TM"),
    "DimensionDescriptionLabel": (0x00209421, "LO"),
    "AlgorithmFamilyCodeSequence": (0x0066002F, "SQ"),
    "AlgorithmVersion": (0x00660031, "LO"),
}

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
             "UC", "UI", "UR", "UT"}
#: VRs whose values may hold characters outside the default repertoire (PS3.5 6.1.2.3)
_CHARSET_VRS = {"LO", "LT", "PN", "SH", "ST", "UC", "UT"}
_BINARY = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}


def _codec(charset: str | Sequence[str] | None) -> str | None:
    """Python codec for a Specific Character Set, None when pydicom has to encode (ISO 2022
    code extensions and the other multi-byte sets)."""
    values = [charset] if isinstance(charset, str) or charset is None else list(charset)
    values = [(v or "").strip() for v in values] or [""]
    if len(values) > 1:
        return None
    # the default repertoire (no Specific Character Set, ISO_IR 6) is ASCII (PS3.5 6.1.2.2)
    return {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1",
            "ISO_IR 192": "utf-8"}.get(values[0])


def encode_text(value: str, charset: str | Sequence[str] | None = None) -> tuple[bytes, bool]:
    """``value`` in the character set; (bytes, exact) where ``exact`` is False when characters
    the set cannot hold were replaced by "?" (as pydicom does)."""
    if value.isascii():
        return value.encode("ascii"), True
    codec = _codec(charset)
    if codec is not None:
        try:
            return value.encode(codec), True
        except UnicodeEncodeError:
            return value.encode(codec, "replace"), False
    import warnings

    from pydicom.charset import encode_string, python_encoding

    names = [charset] if isinstance(charset, str) else list(charset or [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = encode_string(value, [python_encoding.get(n.strip(), "latin-1") for n in names])
    return data, not caught


class DataSet:
    """Elements being built for a file: keyword -> encoded element (Explicit VR LE)."""

    __slots__ = ("elements", "charset", "inexact")

    def __init__(self, charset: str | Sequence[str] | None = None) -> None:
        self.elements: dict[int, bytes] = {}
        self.charset = charset
        #: keywords whose text had characters the character set cannot hold
        self.inexact: list[str] = []

    def __contains__(self, keyword: str) -> bool:
        return WRITER_TAGS[keyword][0] in self.elements

    def set(self, keyword: str, value) -> DataSet:
        """Set one attribute: text (str or a list of values), numbers, bytes, or a list of
        DataSets for a sequence."""
        tag, vr = WRITER_TAGS[keyword]
        self.elements[tag] = self._element(keyword, tag, vr, value)
        return self

    def update(self, **values) -> DataSet:
        for keyword, value in values.items():
            self.set(keyword, value)
        return self

    def put_encoded(self, tag: int, element: bytes) -> None:
        """An element as already encoded (Explicit VR Little Endian), copied from a file."""
        self.elements[tag] = element

    def _element(self, keyword: str, tag: int, vr: str, value) -> bytes:
        if vr == "SQ":
            items = [i.encode() for i in value]
            for i in value:
                self.inexact += i.inexact
            return raw.sequence(tag, items)
        if vr in _TEXT_VRS:
            values = value if isinstance(value, (list, tuple)) else [value]
            text = "\\".join(str(int(v)) if vr == "IS" and not isinstance(v, str) else str(v)
                              for v in values)
            if vr in _CHARSET_VRS:
                data, exact = encode_text(text, self.charset)
                if not exact:
                    self.inexact.append(keyword)
            else:
                data = text.encode("ascii")
            return raw.element(tag, vr.encode(), data)
        if vr in _BINARY:
            values = value if isinstance(value, (list, tuple)) else [value]
            return raw.element(tag, vr.encode(),
                               struct.pack(f"<{len(values)}{_BINARY[vr]}", *values))
        if vr == "AT":
            values = value if isinstance(value, (list, tuple)) else [value]
            return raw.element(tag, b"AT", b"".join(
                struct.pack("<HH", v >> 16, v & 0xFFFF) for v in values))
        if vr in ("OB", "OW", "UN"):
            return raw.element(tag, vr.encode(), bytes(value))
        raise ValueError(f"{keyword}: VR {vr} is not encoded by segbridge.dicom.encoder")

    def encode(self) -> bytes:
        """The elements in ascending tag order."""
        return b"".join(self.elements[t] for t in sorted(self.elements))


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str,
              version_name: str) -> bytes:
    """Preamble, "DICM" and the File Meta Information group (PS3.10 7.1), group length first."""
    meta = DataSet()
    meta.update(FileMetaInformationVersion=b"\x00\x01", MediaStorageSOPClassUID=sop_class,
                MediaStorageSOPInstanceUID=sop_instance, TransferSyntaxUID=transfer_syntax,
                ImplementationClassUID=IMPLEMENTATION_CLASS_UID,
                ImplementationVersionName=version_name[:16])
    body = meta.encode()
    meta.set("FileMetaInformationGroupLength", len(body))
    return b"\x00" * 128 + b"DICM" + meta.encode()


#: longest value (in characters) of the text VRs the writers fill from user data (PS3.5 6.2)
MAX_CHARS = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240,
             "UC": 0xFFFFFFFE, "UT": 0xFFFFFFFE}
_WHY = {"CS": "CS holds at most 16 upper-case letters, digits, spaces or underscores",
        "ST": "ST holds at most 1024 characters; control characters are not written",
        "UT": "control characters are not written"}


def fit(value: str, vr: str) -> str:
    """``value`` made into what ``vr`` can hold: control characters (NUL, newline, ...) become
    spaces, a backslash (the value separator) becomes "/" in single-line VRs, CS keeps only
    upper-case letters, digits, spaces and underscores, and the value is cut to the VR's length
    (PS3.5 6.2: LO/SH/PN/CS exclude control characters and backslash)."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    if vr in ("AE", "CS", "LO", "PN", "SH", "UC"):
        text = text.replace("\\", "/")
    if vr == "CS":
        text = "".join(c if c.isascii() and (c.isalnum() or c in " _") else "_"
                       for c in text.upper())
    return text[:MAX_CHARS.get(vr, len(text))]


def why(vr: str) -> str:
    """What ``vr`` cannot hold, for a message saying a value was changed to fit."""
    return _WHY.get(vr, f"{vr} holds at most {MAX_CHARS.get(vr)} characters, no control "
                        "characters or backslash")
