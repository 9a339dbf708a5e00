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
from .uids import IMPLEMENTATION_CLASS_UID

#: keyword -> (tag, VR) of every attribute the writers set themselves
WRITER_TAGS: dict[str, tuple[int, str]] = {
    "FileMetaInformationGroupLength": (0x00020000, "UL"),
    "FileMetaInformationVersion": (0x00020001, "OB"),
    "MediaStorageSOPClassUID": (0x00020002, "UI"),
    "MediaStorageSOPInstanceUID": (0x00020003, "UI"),
    "TransferSyntaxUID": (0x00020010, "UI"),
    "ImplementationClassUID": (0x00020012, "UI"),
    "ImplementationVersionName": (0x00020013, "SH"),
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ImageType": (0x00080008, "CS"),
    "InstanceCreationDate": (0x00080012, "DA"),
    "InstanceCreationTime": (0x00080013, "TM"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyDate": (0x00080020, "DA"),
    "SeriesDate": (0x00080021, "DA"),
    "ContentDate": (0x00080023, "DA"),
    "StudyTime": (0x00080030, "TM"),
    "SeriesTime": (0x00080031, "TM"),
    "ContentTime": (0x00080033, "TM"),
    "AccessionNumber": (0x00080050, "SH"),
    "Modality": (0x00080060, "CS"),
    "Manufacturer": (0x00080070, "LO"),
    "ReferringPhysicianName": (0x00080090, "PN"),
    "CodeValue": (0x00080100, "SH"),
    "CodingSchemeDesignator": (0x00080102, "SH"),
    "CodingSchemeVersion": (0x00080103, "SH"),
    "CodeMeaning": (0x00080104, "LO"),
    "LongCodeValue": (0x00080119, "UC"),
    "SeriesDescription": (0x0008103E, "LO"),
    "ManufacturerModelName": (0x00081090, "LO"),
    "ReferencedSeriesSequence": (0x00081115, "SQ"),
    "ReferencedInstanceSequence": (0x0008114A, "SQ"),
    "ReferencedSOPClassUID": (0x00081150, "UI"),
    "ReferencedSOPInstanceUID": (0x00081155, "UI"),
    "AnatomicRegionSequence": (0x00082218, "SQ"),
    "AnatomicRegionModifierSequence": (0x00082220, "SQ"),
    "PatientName": (0x00100010, "PN"),
    "PatientID": (0x00100020, "LO"),
    "PatientBirthDate": (0x00100030, "DA"),
    "PatientSex": (0x00100040, "CS"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "DeviceSerialNumber": (0x00181000, "LO"),
    "SoftwareVersions": (0x00181020, "LO"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "StudyID": (0x00200010, "SH"),
    "SeriesNumber": (0x00200011, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "PositionReferenceIndicator": (0x00201040, "LO"),
    "PlaneOrientationSequence": (0x00209116, "SQ"),
    "DimensionOrganizationUID": (0x00209164, "UI"),
    "DimensionIndexPointer": (0x00209165, "AT"),
    "FunctionalGroupPointer": (0x00209167, "AT"),
    "DimensionOrganizationSequence": (0x00209221, "SQ"),
    "DimensionIndexSequence": (0x00209222, "SQ"),
    "DimensionOrganizationType": (0x00209311, "CS"),
    "DimensionDescriptionLabel": (0x00209421, "LO"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "HighBit": (0x00280102, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "PixelPaddingValue": (0x00280120, "US"),
    "LossyImageCompression": (0x00282110, "CS"),
    "PixelMeasuresSequence": (0x00289110, "SQ"),
    "SegmentationType": (0x00620001, "CS"),
    "SegmentSequence": (0x00620002, "SQ"),
    "SegmentedPropertyCategoryCodeSequence": (0x00620003, "SQ"),
    "SegmentNumber": (0x00620004, "US"),
    "SegmentLabel": (0x00620005, "LO"),
    "SegmentDescription": (0x00620006, "ST"),
    "SegmentationAlgorithmIdentificationSequence": (0x00620007, "SQ"),
    "SegmentAlgorithmType": (0x00620008, "CS"),
    "SegmentAlgorithmName": (0x00620009, "LO"),
    "RecommendedDisplayCIELabValue": (0x0062000D, "US"),
    "MaximumFractionalValue": (0x0062000E, "US"),
    "SegmentedPropertyTypeCodeSequence": (0x0062000F, "SQ"),
    "SegmentationFractionalType": (0x00620010, "CS"),
    "SegmentedPropertyTypeModifierCodeSequence": (0x00620011, "SQ"),
    "SegmentsOverlap": (0x00620013, "CS"),
    "TrackingID": (0x00620020, "UT"),
    "TrackingUID": (0x00620021, "UI"),
    "AlgorithmFamilyCodeSequence": (0x0066002F, "SQ"),
    "AlgorithmVersion": (0x00660031, "LO"),
    "AlgorithmName": (0x00660036, "LO"),
    "ContentLabel": (0x00700080, "CS"),
    "ContentDescription": (0x00700081, "LO"),
    "ContentCreatorName": (0x00700084, "PN"),
    "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
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
    return {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1",
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
