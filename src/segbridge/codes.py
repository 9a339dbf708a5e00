"""Coded concepts (DICOM Code Sequence macro) and the defaults segbridge uses.

Codes are compared by (scheme, value); the meaning is for humans. Retired SRT codes that older
SEGs still carry are mapped to their SNOMED CT equivalents on read (PS3.16 Annex O / dicom-digest
section 6).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """One coded concept: value, coding scheme designator, meaning (and optional version)."""

    value: str
    scheme: str
    meaning: str
    version: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Code):
            return NotImplemented
        return (self.value, self.scheme) == (other.value, other.scheme)

    def __hash__(self) -> int:
        return hash((self.value, self.scheme))

    def to_json(self) -> dict:
        """dcmqi JSON form (common-schema.json codeSequence)."""
        d = {"CodeValue": self.value, "CodingSchemeDesignator": self.scheme,
             "CodeMeaning": self.meaning}
        if self.version:
            d["CodingSchemeVersion"] = self.version
        return d

    @classmethod
    def from_json(cls, d: dict) -> Code:
        return cls(str(d["CodeValue"]), str(d["CodingSchemeDesignator"]), str(d["CodeMeaning"]),
                   d.get("CodingSchemeVersion"))

    def to_slicer(self) -> str:
        """Slicer terminology triplet ``scheme^value^meaning``."""
        return f"{self.scheme}^{self.value}^{self.meaning}"

    @classmethod
    def from_slicer(cls, text: str) -> Code | None:
        parts = text.split("^")
        if len(parts) < 3 or not parts[0] or not parts[1]:
            return None
        return cls(parts[1], parts[0], "^".join(parts[2:]))


TISSUE = Code("85756007", "SCT", "Tissue")
ANATOMICAL_STRUCTURE = Code("91723000", "SCT", "Anatomical Structure")
BACKGROUND = Code("125040", "DCM", "Background")
SPATIAL_AND_RELATIONAL = Code("309825002", "SCT", "Spatial and Relational Concept")
SEGMENTATION_DERIVATION = Code("113076", "DCM", "Segmentation")
SOURCE_IMAGE_PURPOSE = Code("121322", "DCM", "Source image for image processing operation")
MANUAL_PROCESSING = Code("123109", "DCM", "Manual Processing")
ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")

#: Retired SNOMED-RT style code values still found in SEGs, with their SNOMED CT equivalents.
SRT_TO_SCT: dict[str, str] = {
    "T-D0050": "85756007",   # Tissue
    "T-D000A": "91723000",   # Anatomical Structure
    "M-01000": "49755003",   # Morphologically Abnormal Structure
    "T-62000": "10200004",   # Liver
    "T-32000": "80891009",   # Heart
    "T-11500": "421060004",  # Spine / vertebral column
    "M-80003": "86049000",   # Neoplasm, Primary
    "M-80006": "14799000",   # Neoplasm, Secondary
    "R-42018": "246464006",  # Function
    "A-00004": "260787004",  # Physical object
}


def normalise(code: Code) -> Code:
    """Map a retired SRT code to SNOMED CT when the mapping is known; otherwise unchanged."""
    if code.scheme == "SRT" and code.value in SRT_TO_SCT:
        return Code(SRT_TO_SCT[code.value], "SCT", code.meaning)
    return code


def is_background(code: Code | None, label: str | None = None) -> bool:
    """True for the Background concept (DCM 125040) or a segment plainly labelled so."""
    if code is not None and code == BACKGROUND:
        return True
    return bool(label) and label.strip().lower() == "background"
