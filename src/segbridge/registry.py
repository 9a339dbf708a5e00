"""The formats segbridge reads and writes, each declared once: suffixes, content test, reader, writer.

In the style of nibabel's image classes (``valid_exts``, ``path_maybe_image``): ``io`` walks this
list instead of an if-chain. The readers and writers here are thin adapters that import their
format module only when called, so recognising a file costs no import of pydicom, nibabel or
pynrrd.

A format's reader is one of two kinds:

- ``"volumes"``: returns ``(volumes, info)``; label / probability volumes that
  ``formats.volumes.assemble`` turns into one model (several inputs are combined, dcmqi-style);
- ``"object"``: returns a finished :class:`~segbridge.model.Segmentation` on the reference grid
  (DICOM SEG, RTSTRUCT: one file at a time).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError, Report, SegbridgeError


@dataclass(frozen=True)
class Format:
    """One file format: how to recognise it and where its reader and writer live."""

    name: str
    family: str
    suffixes: tuple[str, ...]
    kind: str
    read: Callable
    write: Callable | None
    sniff: Callable[[Path, bytes], bool]
    description: str

    def has_suffix(self, path: str | os.PathLike) -> bool:
        """True when the file name ends in one of this format's suffixes (any case)."""
        return Path(path).name.lower().endswith(self.suffixes)



@dataclass
class ReadOptions:
    """What every reader may need; each reader takes the parts that apply to it."""

    reference: object = None
    report: Report = field(default_factory=Report)
    strict: bool = False
    resample: bool = False
    fractional: bool | str | None = None
    contour_fill: str = "centre"
    allow_outside: bool = False


# --- content tests: each looks at the first bytes of the file ------------------------------
def _is_dicom(path: Path, head: bytes) -> bool:
    return head[128:132] == b"DICM"


def _is_seg(path: Path, head: bytes) -> bool:
    if not _is_dicom(path, head):
        return False
    from .dicom.parse import sop_class_of
    from .dicom.segfile import SEG_SOP_CLASSES

    return sop_class_of(path) in SEG_SOP_CLASSES


def _is_rtstruct(path: Path, head: bytes) -> bool:
    if not _is_dicom(path, head):
        return False
    from .dicom.parse import sop_class_of
    from .rt.reader import RTSTRUCT_SOP_CLASS

    return sop_class_of(path) == RTSTRUCT_SOP_CLASS


def _is_nrrd(path: Path, head: bytes) -> bool:
    return head.startswith(b"NRRD000")


def _is_seg_nrrd(path: Path, head: bytes) -> bool:
    return _is_nrrd(path, head) and b"Segment0_" in head


def _is_nifti(path: Path, head: bytes) -> bool:
    if head[:2] == b"\x1f\x8b":  # gzip: look at the start of the stream
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 544)
        except zlib.error:
            return False
    return len(head) >= 348 and (head[344:348] in (b"n+1\0", b"ni1\0")
                                 or head[4:8] in (b"n+2\0", b"ni2\0"))


# --- readers with one signature: (path, options) -> Segmentation | (volumes, info) ---------
def _read_seg(path: Path, o: ReadOptions):
    from .dicom.seg_reader import read_seg

    return read_seg(path, o.reference, resample=o.resample, strict=o.strict, report=o.report)


def _read_rtstruct(path: Path, o: ReadOptions):
    from .rt.reader import read_rtstruct

    return read_rtstruct(path, o.reference, report=o.report, strict=o.strict,
                         fill=o.contour_fill)


def _read_seg_nrrd(path: Path, o: ReadOptions):
    from .formats.nrrd import read_seg_nrrd

    return read_seg_nrrd(path, report=o.report, allow_outside=o.allow_outside)[0], {}


def _read_nrrd(path: Path, o: ReadOptions):
    from .formats.nrrd import read_nrrd

    return read_nrrd(path, report=o.report, fractional=o.fractional or False,
                     allow_outside=o.allow_outside), {}


def _read_nifti(path: Path, o: ReadOptions):
    from .formats.nifti import read_nifti

    return read_nifti(path, fractional=o.fractional, report=o.report)


# --- writers of volume formats: (seg, path) -> None -----------------------------------------
def _write_seg_nrrd(seg, path: Path) -> None:
    from .formats.nrrd import write_seg_nrrd

    write_seg_nrrd(seg, path)


def _write_nrrd(seg, path: Path) -> None:
    from .formats.nrrd import write_nrrd

    write_nrrd(seg, path)


def _write_nifti(seg, path: Path) -> None:
    from .formats.nifti import write_nifti

    write_nifti(seg, path)


#: every format, most specific first (a seg.nrrd is also an NRRD; an RTSTRUCT is a .dcm).
#: DICOM outputs are written by io.write itself (validation, splitting into several series).
FORMATS: tuple[Format, ...] = (
    Format("seg", "dicom", (".dcm", ".dicom"), "object", _read_seg, None, _is_seg,
           "DICOM SEG"),
    Format("rtstruct", "dicom", (".dcm", ".dicom"), "object", _read_rtstruct, None,
           _is_rtstruct, "DICOM RT Structure Set"),
    Format("seg.nrrd", "seg.nrrd", (".seg.nrrd",), "volumes", _read_seg_nrrd, _write_seg_nrrd,
           _is_seg_nrrd, "3D Slicer segmentation"),
    Format("nrrd", "nrrd", (".nrrd", ".nhdr"), "volumes", _read_nrrd, _write_nrrd, _is_nrrd,
           "NRRD"),
    Format("nifti", "nifti", (".nii.gz", ".nii"), "volumes", _read_nifti, _write_nifti,
           _is_nifti, "NIfTI"),
)

BY_NAME = {f.name: f for f in FORMATS}
HEAD_BYTES = 65536


def head_of(path: str | os.PathLike) -> bytes:
    """The first bytes of a file (enough for every content test), b"" when unreadable."""
    try:
        with open(path, "rb") as fp:
            return fp.read(HEAD_BYTES)
    except OSError:
        return b""


def _sniffs(fmt: Format, path: Path, head: bytes) -> bool:
    """A content test that cannot even be run means "not this format": the reader chosen by
    suffix then says what is wrong with the file."""
    try:
        return fmt.sniff(path, head)
    except SegbridgeError:
        return False


def detect(path: str | os.PathLike) -> Format:
    """The format of an existing input: by content first, then by suffix.

    Content wins, so a DICOM file without ``.dcm`` and an RTSTRUCT named ``.dcm`` are both read
    by the right reader; the suffix decides for files whose content names no format (the reader
    then refuses them with its own message, e.g. a DICOM file of another SOP class).
    """
    p = Path(path)
    head = head_of(p)
    for fmt in FORMATS:
        if _sniffs(fmt, p, head):
            return fmt
    if _is_dicom(p, head):
        return BY_NAME["seg"]
    for fmt in FORMATS:
        if fmt.has_suffix(p):
            return fmt
    raise InvalidInputError(f"{path}: unknown format (not DICOM, NIfTI or NRRD)")


def for_output(path: str | os.PathLike, *, to: str = "seg") -> Format:
    """The format an output file name asks for (by suffix; ``to`` picks SEG or RTSTRUCT)."""
    name = Path(path).name.lower()
    for fmt in FORMATS:
        if fmt.family == "dicom":
            continue
        if fmt.has_suffix(name):
            return fmt
    if name.endswith((".dcm", ".dicom")):
        return BY_NAME["rtstruct" if to == "rtstruct" else "seg"]
    raise InvalidInputError(f"{path}: cannot tell the output format from the name; use .dcm, "
                            ".nii, .nii.gz, .nrrd or .seg.nrrd")
