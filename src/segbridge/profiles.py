"""Writer profiles: what each consumer needs, chosen once instead of a dozen flags.

See DESIGN.md ("Writers choose for the consumer") and reference/viewer-behaviour.md for the
reasons behind each setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInputError


@dataclass(frozen=True)
class Profile:
    """How a DICOM SEG is encoded for one kind of consumer."""

    name: str
    description: str
    #: type chosen by ``--type auto`` for non-overlapping labelled data
    auto_type: str
    #: overlapping segments are split into several SEG objects (one per non-overlapping group)
    split_overlaps: bool
    #: largest segment number a consumer shows correctly (Cornerstone labelmaps are 8-bit)
    max_segment_number: int
    #: renumber every object's segments 1..N, also for label maps
    contiguous_numbers: bool
    #: every source slice gets a frame (legacy viewers that map frames by index)
    dense: bool
    #: write a "Background" segment 0 item in label maps (standard: every value is described)
    background_segment: bool
    #: compressions this consumer decodes, per bits allocated
    allowed: dict
    #: compression used when none is asked for: callable(bits, rows, columns) -> name
    default_compression: dict

    def compression_for(self, bits: int, columns: int) -> str:
        choice = self.default_compression[bits]
        if choice == "native-if-aligned":
            return "none" if columns % 8 == 0 else "rle"
        return choice


_ALL = {"none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame"}
_ONE_BIT = {"none", "rle", "jpeg2000", "deflate", "deflate-frame"}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile(
        name="ohif",
        description="OHIF / Cornerstone3D: label maps numbered 1..N (<=255), overlapping "
                    "segments split into several SEG series, RLE label maps (JPEG-LS and "
                    "deflate load too in OHIF 3.13); BINARY only native with Columns a "
                    "multiple of 8 (1-bit RLE: Orthanc cannot serve it to OHIF and the "
                    "adapters' buffer path loads it empty)",
        auto_type="labelmap", split_overlaps=True, max_segment_number=255,
        contiguous_numbers=True, dense=False, background_segment=False,
        # measured in the real OHIF 3.13.2 over DICOMweb (docs/interop.md, OHIF column):
        # 8-bit native, RLE, JPEG-LS and deflate load exactly; JPEG 2000 and Deflated Image
        # Frame are not served by Orthanc 1.10, 1-bit RLE neither (HTTP 500)
        allowed={1: {"none"}, 8: {"none", "rle", "jpegls", "deflate"},
                 16: {"none", "rle", "jpegls", "deflate"}},
        default_compression={1: "none", 8: "rle", 16: "rle"},
    ),
    Profile(
        name="slicer",
        description="3D Slicer / dcmqi: BINARY with overlaps in one object; native, deflate "
                    "or RLE pixels",
        auto_type="binary", split_overlaps=False, max_segment_number=65535,
        contiguous_numbers=False, dense=False, background_segment=True,
        allowed={1: {"none", "deflate"}, 8: {"none", "deflate", "rle"},
                 16: {"none", "deflate", "rle"}},
        default_compression={1: "none", 8: "none", 16: "none"},
    ),
    Profile(
        name="archive",
        description="PACS and sharing: the smallest conformant object (label map when segments "
                    "do not overlap; the smaller of RLE / JPEG-LS / JPEG 2000)",
        auto_type="labelmap", split_overlaps=False, max_segment_number=65535,
        contiguous_numbers=False, dense=False, background_segment=True,
        allowed={1: _ONE_BIT, 8: _ALL, 16: _ALL},
        default_compression={1: "smallest", 8: "smallest", 16: "smallest"},
    ),
    Profile(
        name="dense",
        description="legacy viewers that place frames by index: BINARY, every source slice "
                    "gets a frame",
        auto_type="binary", split_overlaps=False, max_segment_number=65535,
        contiguous_numbers=True, dense=True, background_segment=True,
        allowed={1: {"none", "rle"}, 8: {"none", "rle"}, 16: {"none", "rle"}},
        default_compression={1: "native-if-aligned", 8: "none", 16: "none"},
    ),
)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise InvalidInputError(f"unknown profile {name!r}; choose one of "
                                f"{', '.join(PROFILES)}") from None
