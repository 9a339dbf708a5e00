"""The start of every object segbridge derives from source images (SEG, RTSTRUCT).

Patient, study and clinical-trial attributes are copied from the source; Type 2 attributes a
derived object must carry are present even when the source lacks them (PS3.3 C.7.1.1, C.7.2.1).
The SEG writer copies the source's elements as encoded bytes (:func:`start`, no pydicom); the
RTSTRUCT writer still builds a pydicom Dataset (:func:`base_dataset`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..model import SourceRef
from . import rawdicom as raw
from .encoder import WRITER_TAGS, DataSet

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                       "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
_CHARSET = 0x00080005
_STUDY_UID = 0x0020000D


@dataclass(frozen=True)
class CopiedHeader(raw.EncodedHeader):
    """A source image's attributes to copy, as the bytes its file holds (read without pydicom);
    :func:`source_header` gives the pydicom view where one is needed."""


def source_header(src: SourceRef) -> Dataset:
    """The source's copied attributes as a pydicom Dataset (empty when it has none)."""
    from pydicom.dataset import Dataset

    header = src.header
    if isinstance(header, raw.EncodedHeader):
        header = header.to_pydicom()
    return header if isinstance(header, Dataset) else Dataset()


def base_dataset(src: SourceRef) -> Dataset:
    """A new pydicom dataset with the source's patient / study modules and Study Instance UID."""
    header = source_header(src)
    from pydicom.dataset import Dataset

    ds = Dataset()
    for elem in header:
        ds[elem.tag] = elem
    ds.StudyInstanceUID = src.study_instance_uid or header.get("StudyInstanceUID", "")
    if not ds.StudyInstanceUID:
        raise InvalidInputError("the source has no Study Instance UID; pass --assign-uids")
    for kw in TYPE2_PATIENT_STUDY:
        if kw not in ds:
            setattr(ds, kw, "")
    return ds


def copied_elements(src: SourceRef) -> dict[int, bytes]:
    """The source's copied top-level elements, tag -> element in Explicit VR Little Endian.

    Explicit little-endian bytes (nearly every file) are split and kept as they are; headers in
    another transfer syntax, and pydicom Datasets (DICOMweb metadata, API callers), are
    re-encoded through pydicom.
    """
    header = src.header
    if header is None:
        return {}
    if isinstance(header, raw.EncodedHeader) and header.little and not header.implicit:
        data = header.data
    elif isinstance(header, raw.EncodedHeader) or hasattr(header, "iterall"):
        data = _explicit_le(header.to_pydicom() if isinstance(header, raw.EncodedHeader)
                            else header)
    else:
        return {}
    walker = raw.Walker(data)
    spans: dict[int, tuple[int, int]] = {}
    walker.dataset(0, len(data), spans)
    return {tag: bytes(data[a:b]) for tag, (a, b) in spans.items()}


def _explicit_le(ds: Dataset) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


def _charset(elements: dict[int, bytes]) -> list[str] | None:
    elem = elements.get(_CHARSET)
    if elem is None:
        return None
    values = elem[8:].decode("ascii", "replace").rstrip(" \x00").split("\\")
    return [v.strip() for v in values]


def _ascii_text(elements: dict[int, bytes]) -> bool:
    """True when no copied text element, sequences' items included, holds a byte outside
    ASCII."""
    def clean(ds: dict) -> bool:
        for value in ds.values():
            if isinstance(value, list):  # a sequence: its items
                if not all(clean(item) for item in value):
                    return False
            elif isinstance(value, tuple) and value[0] in _CHARSET_VR_BYTES and \
                    not bytes(value[1]).isascii():
                return False
        return True

    for elem in elements.values():
        vr = elem[4:6]
        if vr == b"SQ":
            try:
                parsed, _ = raw.Walker(elem).dataset(0, len(elem))
            except Exception:  # noqa: BLE001 - unreadable: keep the source's repertoire
                return False
            if not clean(parsed):
                return False
        elif vr in _CHARSET_VR_BYTES and not elem[12 if vr in _LONG_VR_BYTES else 8:].isascii():
            return False
    return True


_CHARSET_VR_BYTES = {vr.encode() for vr in ("LO", "LT", "PN", "SH", "ST", "UC", "UT")}
_LONG_VR_BYTES = {vr.encode() for vr in ("UC", "UT")}


def start(src: SourceRef, new_text: Iterable[str] = ()) -> DataSet:
    """A new data set holding the source's patient / study modules and its Study Instance UID.

    Its character set is the source's, so copied names and new text are in one repertoire.
    When the source has none (ASCII, PS3.5 6.1.2.2) but ``new_text`` (segment labels...) needs
    more, and everything copied is ASCII, the data set is UTF-8 (ISO_IR 192) instead of
    writing '?' for those characters.
    """
    elements = copied_elements(src)
    charset = _charset(elements)
    if charset in (None, [""], ["ISO_IR 6"]) and \
            not all(t.isascii() for t in new_text if t) and _ascii_text(elements):
        elements.pop(_CHARSET, None)
        charset = ["ISO_IR 192"]
        ds = DataSet(charset)
        ds.set("SpecificCharacterSet", "ISO_IR 192")
    else:
        ds = DataSet(charset)
    for tag, elem in elements.items():
        ds.put_encoded(tag, elem)
    study = src.study_instance_uid
    if not study and _STUDY_UID in elements:
        study = elements[_STUDY_UID][8:].decode("ascii", "replace").rstrip(" \x00").strip()
    if not study:
        raise InvalidInputError("the source has no Study Instance UID; pass --assign-uids")
    ds.set("StudyInstanceUID", study)
    for kw in TYPE2_PATIENT_STUDY:
        if WRITER_TAGS[kw][0] not in ds.elements:
            ds.set(kw, "")
    return ds
