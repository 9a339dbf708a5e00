"""Read a reference image series (the images a segmentation is drawn on) into a grid.

Accepts a folder, a list of files, or one enhanced / legacy-converted multi-frame image. Headers
only are read up front; pixels are decoded on demand (statistics, previews). Every decision about
messy real files is taken here, once, and reported (DESIGN.md, "Messy real files").
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .dicom import rawdicom as raw
from .dicom.codecs import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from .dicom.derived import CopiedHeader
from .dicom.rawdicom import RawDataset, text_encoding
from .dicom.tags import TAGS
from .dicom.uids import generate_uid
from .errors import GeometryMismatchError, InvalidInputError, Report
from .geometry import Grid
from .model import SourceInstance, SourceRef

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: SOP classes that are never reference images.
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7",  # SEG
    "1.2.840.10008.5.1.4.1.1.481.3",  # RTSTRUCT
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34",  # SR
    "1.2.840.10008.5.1.4.1.1.66.1",  # registration
}

#: Attributes copied from the source into derived objects (Patient, General Study, Patient
#: Study and Clinical Trial modules).
COPIED_ATTRIBUTES = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence", "PatientAge", "PatientSize", "PatientWeight",
    "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription", "IssuerOfAccessionNumberSequence",
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID", "ClinicalTrialSiteName", "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID", "ClinicalTrialTimePointID",
    "PositionReferenceIndicator", "BodyPartExamined", "LossyImageCompression",
    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "SpecificCharacterSet",
)


@dataclass
class _Slice:
    path: Path
    ds: Dataset | RawHeader
    frame: int | None  # 1-based frame of a multi-frame file
    position: np.ndarray
    position_strings: list[str]
    orientation: np.ndarray
    orientation_strings: list[str]
    spacing_strings: list[str]
    sop_class: str
    sop_instance: str
    has_geometry: bool = True
    #: frame space: where the slice goes in the stack (InstanceNumber, SOP UID, frame)
    order: tuple = ()
    #: frame space: the image's own PixelSpacing (not ImagerPixelSpacing), or None
    pixel_spacing: list[str] | None = None


@dataclass
class ReferenceImage:
    """A source image series on its grid, with references for derived objects."""

    grid: Grid
    source: SourceRef
    paths: list[Path]
    frames: list[int | None]
    report: Report = field(default_factory=Report)
    assigned_uids: dict[str, str] = field(default_factory=dict)
    #: per slice, the header it was read from (a RawHeader or a pydicom Dataset)
    raw_headers: list = field(default_factory=list, repr=False)
    _pixels: np.ndarray | None = None
    _stored: tuple | None = field(default=None, repr=False)
    _headers: list | None = field(default=None, repr=False)

    @property
    def modality(self) -> str | None:
        return self.source.modality

    @property
    def headers(self) -> list:
        """Per slice, its header as a pydicom Dataset (no pixels), for the measurements that
        read attributes the raw reader does not decode (PET dose, acquisition times, ...)."""
        if self._headers is None:
            loaded: dict = {}
            out = []
            for path, h in zip(self.paths, self.raw_headers, strict=True):
                if isinstance(h, RawHeader):
                    if path not in loaded:
                        loaded[path] = _pydicom_header(path) or h
                    h = loaded[path]
                out.append(h)
            self._headers = out
        return self._headers

    def pixels(self) -> np.ndarray:
        """Image voxels on the grid, [z, y, x], in real-world units (rescale applied).

        Rescale slope and intercept are taken per slice (PET slices each have their own) and,
        for enhanced multi-frame images, per frame from the functional groups.
        """
        if self._pixels is None:
            stored, slope, inter = self.stored_pixels()
            out = np.empty(self.grid.shape, np.float32)
            for k in range(len(out)):
                out[k] = stored[k].astype(np.float32) * slope[k] + inter[k]
            self._pixels, self._stored = out, None  # values_at reads the float volume now
        return self._pixels

    def stored_slices(self):
        """(slice index, stored plane, rescale slope, rescale intercept) for every slice in
        order, one file decoded at a time: for passes that must not hold the whole volume
        (statistics of a 1,500-slice CT). Slope and intercept are float32, as
        :meth:`values_at` applies them."""
        decoded, arr = None, None  # one file's pixels at a time
        for k, (frame, ds) in enumerate(zip(self.frames, _datasets(self.paths), strict=True)):
            if ds is not decoded:
                decoded, arr = ds, ds.pixel_array
            s, i = _rescale(ds, frame)
            plane = arr[frame - 1] if frame else arr
            if plane.ndim == 3:  # colour (US, XC: pydicom gives RGB): drawn and read as luma
                plane = luma(plane)
            yield k, plane, np.float32(s), np.float32(i)

    def stored_pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored values [z, y, x] in their own type (half the memory of float32 for CT),
        with each slice's rescale slope and intercept (float32)."""
        if self._stored is None:
            planes: np.ndarray | None = None
            slope = np.ones(self.grid.shape[0], np.float32)
            inter = np.zeros(self.grid.shape[0], np.float32)
            for k, plane, s, i in self.stored_slices():
                if planes is None:
                    planes = np.empty(self.grid.shape, plane.dtype)
                elif not np.can_cast(plane.dtype, planes.dtype, "safe"):
                    planes = planes.astype(np.result_type(planes.dtype, plane.dtype))
                planes[k] = plane
                slope[k], inter[k] = s, i
            self._stored = (planes, slope, inter)
        return self._stored

    def values_at(self, idx: np.ndarray) -> np.ndarray:
        """Real-world values (float32, exactly as :meth:`pixels` has them) at [z, y, x]
        indices, without building the whole float volume."""
        if self._pixels is not None:
            return self._pixels[idx[:, 0], idx[:, 1], idx[:, 2]]
        stored, slope, inter = self.stored_pixels()
        z = idx[:, 0]
        return stored[z, idx[:, 1], idx[:, 2]].astype(np.float32) * slope[z] + inter[z]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Grey values of RGB pixels [..., 3] (ITU-R BT.601 weights, as YBR's Y), in the input's
    integer type: what a colour ultrasound frame looks like under a segmentation."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.round(y).astype(rgb.dtype)


def load_dataset(source) -> Dataset:
    """The whole data set of a series member: a file, or a remote instance."""
    if hasattr(source, "read_dataset"):
        return source.read_dataset()
    import pydicom

    return pydicom.dcmread(source, force=True)


def _datasets(sources):
    """The data set behind each source in order (each file once, remote ones in parallel)."""
    remote = [s for s in dict.fromkeys(sources) if hasattr(s, "read_dataset")]
    fetched = {}
    if remote:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            fetched = dict(zip(remote, pool.map(load_dataset, remote), strict=True))
    last = None
    for s in sources:
        if s in fetched:
            yield fetched[s]
        else:
            if last is None or last[0] != s:
                last = (s, load_dataset(s))
            yield last[1]


def _rescale(ds: Dataset, frame: int | None) -> tuple[float, float]:
    """Rescale slope and intercept of a slice or of one frame of an enhanced image."""
    src = ds
    if frame:
        for seq_kw, i in (("PerFrameFunctionalGroupsSequence", frame - 1),
                          ("SharedFunctionalGroupsSequence", 0)):
            seq = ds.get(seq_kw)
            if seq and len(seq) > i and "PixelValueTransformationSequence" in seq[i]:
                src = seq[i].PixelValueTransformationSequence[0]
                break
    slope = src.get("RescaleSlope", 1)
    inter = src.get("RescaleIntercept", 0)
    return float(slope if slope not in (None, "") else 1), float(inter or 0)


def _is_dicom_candidate(p: Path) -> bool:
    name = p.name
    return not (name.startswith(".") or name.upper() == "DICOMDIR" or
                p.suffix.lower() in {".json", ".txt", ".md", ".nrrd", ".nii", ".gz", ".png",
                                     ".csv", ".xml", ".py"})


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """A folder (recursively), a file, or a list of either -> sorted list of candidate files."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and _is_dicom_candidate(q)))
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInputError(f"{p}: no such file or folder")
    return out


#: attributes the series reader needs beyond the SEG reader's table (keyword -> (tag, VR))
_EXTRA_TAGS = {"ImagerPixelSpacing": (0x00181164, "DS")}
#: bytes read first from each file: the header of an ordinary image is well inside
_HEAD = 32768


class RawHeader(RawDataset):
    """The header of one image file, walked without pydicom (:mod:`segbridge.dicom.rawdicom`).

    Answers ``get``, ``in`` and attribute access by keyword like a pydicom Dataset; ``meta``
    is the file meta group and ``copied()`` the attributes a derived object copies, as the
    file encodes them.
    """

    __slots__ = ("meta", "_spans", "_body")

    def __init__(self, elems: dict, walker: raw.Walker, encoding: str, meta: RawDataset,
                 spans: dict, body) -> None:
        super().__init__(elems, walker, encoding)
        self.meta = meta
        self._spans = spans
        self._body = body

    def _tag(self, keyword: str) -> int:
        extra = _EXTRA_TAGS.get(keyword)
        return extra[0] if extra else super()._tag(keyword)

    def copied(self, keywords) -> CopiedHeader:
        """The listed top-level attributes that have a value, as encoded in the file."""
        parts = []
        for kw in keywords:
            tag = TAGS[kw][0]
            if tag in self._spans and _has_value(self._elems[tag]):
                a, b = self._spans[tag]
                parts.append((tag, bytes(self._body[a:b])))
        return CopiedHeader(b"".join(p for _, p in sorted(parts)), self._walker.little,
                            self._walker.implicit)


def _has_value(value) -> bool:
    if isinstance(value, list):
        return True  # a sequence, even empty, is copied (as pydicom's Dataset did)
    return bool(bytes(value[1]).strip(b" \x00"))


class _NeedMore(Exception):
    """The first bytes of a file did not hold its whole header."""


def read_header(path: Path) -> RawHeader | Dataset | None:
    """Header of a DICOM file (no pixels), or None if the file is not DICOM.

    Ordinary files are walked by segbridge's own reader from their first 32 KiB (the whole
    file when the header is longer); files it cannot walk are read by pydicom.
    """
    try:
        with open(path, "rb") as fp:
            data = fp.read(_HEAD)
            complete = len(data) < _HEAD
            try:
                return _walk(data, complete)
            except _NeedMore:
                data += fp.read()
                return _walk(data, True)
    except _NeedMore:
        pass
    except OSError:
        return None
    except Exception:  # struct errors and the like: let pydicom judge the file
        pass
    return _pydicom_header(path)


def _walk(data: bytes, complete: bool) -> RawHeader | None:
    has_preamble = data[128:132] == b"DICM"
    pos = 132 if has_preamble else 0
    meta_walker = raw.Walker(data, little=True, implicit=False)
    meta_elems: dict = {}
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":
        tag, vr, length, vpos = meta_walker.header(pos)
        if vpos + length > len(data):
            raise _NeedMore
        meta_elems[tag] = (vr, meta_walker.buf[vpos:vpos + length])
        pos = vpos + length
    meta = RawDataset(meta_elems, meta_walker)
    ts = str(meta.get("TransferSyntaxUID") or "")
    if not ts:  # no file meta: explicit VR if a VR follows the first tag
        ts = EXPLICIT_LE if data[pos + 4:pos + 6].isalpha() else IMPLICIT_LE
    body = memoryview(data)[pos:]
    if ts == DEFLATED_LE:
        if not complete:
            raise _NeedMore
        body = zlib.decompress(body, -zlib.MAX_WBITS)
    walker = raw.Walker(body, ts != EXPLICIT_BE, ts == IMPLICIT_LE, lenient=True)
    spans: dict = {}
    try:
        top, _ = walker.dataset(0, len(body), spans)
    except Exception:
        if complete:
            raise
        raise _NeedMore from None
    if not complete and (raw.PIXEL_DATA not in top or any(
            t != raw.PIXEL_DATA for t, _, _ in walker.truncated)):
        raise _NeedMore
    if not has_preamble and 0x00080016 not in top and 0x00280010 not in top:
        return None
    charset = RawDataset(top, walker).get("SpecificCharacterSet")
    return RawHeader(top, walker, text_encoding(charset), meta, spans, body)


def _pydicom_header(path: Path) -> Dataset | None:
    """A header read by pydicom (files the raw reader cannot walk, and the full attribute set
    for measurements), or None if pydicom does not take it for DICOM either."""
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, defer_size="64 KB")
    except pydicom.errors.InvalidDicomError:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, defer_size="64 KB")
        except Exception:
            return None
        return ds if "SOPClassUID" in ds or "Rows" in ds else None
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None


def _strings(ds, keyword: str) -> list[str]:
    """The values of a multi-valued text attribute (DS, IS, ...) as written, stripped."""
    if isinstance(ds, RawDataset):
        value = ds.raw(keyword)
        if value is None or isinstance(value, list):
            return []
        text = bytes(value[1]).decode("latin-1").strip(" \x00")
        return [p.strip() for p in text.split("\\")] if text else []
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    values = value if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
    return [str(v).strip() for v in values]


def _numbers(path: Path, keyword: str, strings: list[str], count: int,
             frame: int | None = None) -> np.ndarray:
    """``count`` finite numbers from DS strings; anything else is one line naming the file."""
    where = f"{path}{f' frame {frame}' if frame else ''}: {keyword}"
    shown = "\\".join(strings)
    try:
        values = [float(v) for v in strings]
    except ValueError:
        raise InvalidInputError(f"{where} '{shown}' is not numeric") from None
    if len(values) != count:
        raise InvalidInputError(f"{where} has {len(values)} values ('{shown}'), not {count}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidInputError(f"{where} '{shown}' is not finite")
    return np.array(values, float)


def _check_plane(path: Path, ori: np.ndarray, spacing: list[str], frame: int | None) -> None:
    """Orientation: two non-zero, non-parallel vectors; pixel spacing: two positive numbers."""
    where = f"{path}{f' frame {frame}' if frame else ''}"
    r0, r1, r2, c0, c1, c2 = ori.tolist()  # plain floats: numpy per 3-vector is slower
    rn, cn = math.hypot(r0, r1, r2), math.hypot(c0, c1, c2)
    cross = math.hypot(r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0)
    if min(rn, cn) < 1e-6 or cross < 1e-6 * rn * cn:
        shown = "\\".join(raw.format_ds(float(v)) for v in ori)
        raise InvalidInputError(f"{where}: ImageOrientationPatient '{shown}' does not give "
                                "two independent directions")
    values = _numbers(path, "PixelSpacing", spacing, 2, frame)
    if np.any(values <= 0):
        shown = "\\".join(spacing)
        raise InvalidInputError(f"{where}: PixelSpacing '{shown}' is not positive")


def _uid(ds, keyword: str, meta_keyword: str | None = None) -> str:
    """A UID attribute as text; falls back to the file meta attribute when blank."""
    value = str(ds.get(keyword, "") or "").strip()
    if not value and meta_keyword:
        meta = ds.meta if isinstance(ds, RawHeader) else getattr(ds, "file_meta", None)
        if meta is not None:
            value = str(meta.get(meta_keyword, "") or "").strip()
    return value


def _find_fg(path: Path, i: int, fg, shared, seq_kw: str, kw: str):
    """The functional group item of frame i that holds ``kw``: its own, else the shared one."""
    for grp in (fg, shared):
        seq = grp.get(seq_kw) if grp is not None else None
        if seq and kw in seq[0]:
            return seq[0]
    raise InvalidInputError(f"{path}: frame {i + 1} has no {kw}")


def _slices_of(path: Path, ds, report: Report, blank: list[str]) -> list[_Slice]:
    sop_class = _uid(ds, "SOPClassUID", "MediaStorageSOPClassUID")
    sop_inst = _uid(ds, "SOPInstanceUID", "MediaStorageSOPInstanceUID")
    if not str(ds.get("SOPInstanceUID", "") or "").strip():
        if not sop_inst:
            raise InvalidInputError(f"{path}: SOP Instance UID is blank and the file has no "
                                    "Media Storage SOP Instance UID either")
        blank.append(path.name)  # reported once for the whole series
    try:
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{path}: NumberOfFrames is not a number") from None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    has_fg = "PerFrameFunctionalGroupsSequence" in ds
    if has_fg and modality not in CROSS_SECTIONAL and not _fg_plane_position(ds):
        return _frame_space_slices(path, ds, nframes, sop_class, sop_inst, report)  # enhanced 2-D
    if not has_fg and nframes > 1 and modality not in CROSS_SECTIONAL:
        return _frame_space_slices(path, ds, nframes, sop_class, sop_inst, report)  # cine, 2-D
    if has_fg and (
            nframes > 1 or "ImagePositionPatient" not in ds):
        shared_seq = ds.get("SharedFunctionalGroupsSequence")
        shared = shared_seq[0] if shared_seq else None
        out = []
        for i, fg in enumerate(ds.get("PerFrameFunctionalGroupsSequence") or []):
            pos = _strings(_find_fg(path, i, fg, shared, "PlanePositionSequence",
                                    "ImagePositionPatient"), "ImagePositionPatient")
            ori = _strings(_find_fg(path, i, fg, shared, "PlaneOrientationSequence",
                                    "ImageOrientationPatient"), "ImageOrientationPatient")
            spc = _strings(_find_fg(path, i, fg, shared, "PixelMeasuresSequence",
                                    "PixelSpacing"), "PixelSpacing")
            orientation = _numbers(path, "ImageOrientationPatient", ori, 6, i + 1)
            _check_plane(path, orientation, spc, i + 1)
            out.append(_Slice(path, ds, i + 1,
                              _numbers(path, "ImagePositionPatient", pos, 3, i + 1), pos,
                              orientation, ori, spc, sop_class, sop_inst))
        return out
    if nframes > 1:
        raise InvalidInputError(f"{path}: multi-frame image ({nframes} frames) without per-frame "
                                "functional groups; its frames cannot be placed")
    pos = _strings(ds, "ImagePositionPatient")
    ori = _strings(ds, "ImageOrientationPatient")
    if not pos or not ori or modality in FRAME_SPACE_MODALITIES:
        return _frame_space_slices(path, ds, nframes, sop_class, sop_inst, report)  # 2-D image
    spacing = _strings(ds, "PixelSpacing")
    if not spacing:
        raise InvalidInputError(f"{path}: image has no PixelSpacing; it cannot be placed in space")
    orientation = _numbers(path, "ImageOrientationPatient", ori, 6)
    _check_plane(path, orientation, spacing, None)
    return [_Slice(path, ds, None, _numbers(path, "ImagePositionPatient", pos, 3), pos,
                   orientation, ori, spacing, sop_class, sop_inst)]


#: projection / 2-D modalities whose images never carry patient-space planes (PS3.3 C.8.11
#: DX, C.8.1 CR, C.8.5 US, C.8.7 XA, C.8.12 VL): a single frame without functional groups is
#: read as frame space even if a position is set
FRAME_SPACE_MODALITIES = {"CR", "DX", "MG", "IO", "PX", "US", "XA", "RF", "XC", "ES", "GM",
                          "OP"}

#: cross-sectional modalities: a multi-frame image of these without plane positions is damaged,
#: not a 2-D image (refused as before); a single frame without them is read as frame space
CROSS_SECTIONAL = {"CT", "MR", "PT", "NM"}


def _fg_plane_position(ds) -> bool:
    """Does an enhanced image place its frames in patient space (Plane Position functional
    group, per frame or shared; or the Image Plane module at the top)?"""
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        return True
    pffg = ds.get("PerFrameFunctionalGroupsSequence")
    if not pffg:
        return False
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    for grp in (pffg[0], shared_seq[0] if shared_seq else None):
        seq = grp.get("PlanePositionSequence") if grp is not None else None
        if seq and "ImagePositionPatient" in seq[0]:
            return True
    return False


def _frame_space_slices(path: Path, ds, nframes: int, sop_class: str,
                        sop_inst: str, report: Report) -> list[_Slice]:
    """A 2-D image (single frame) or a cine / multi-frame 2-D image without patient geometry:
    one slice per frame, linked to its source only by SOP instance and frame number.

    The pixel spacing used for the grid is PixelSpacing, else ImagerPixelSpacing (projection
    images, PS3.3 C.8.11.4), else 1; only PixelSpacing is kept as the SEG's Pixel Measures.
    """
    own = _strings(ds, "PixelSpacing")

    def usable(values) -> bool:
        try:
            sp = [float(v) for v in values]
        except (TypeError, ValueError):
            return False
        return len(sp) == 2 and all(math.isfinite(v) and v > 0 for v in sp)

    if own and not usable(own):
        report.warn(f"{path.name}: PixelSpacing {'/'.join(own)} is not two positive numbers; "
                    "not used")
        own = None  # odd spacing: no measures claimed from it
    spacing = own or _strings(ds, "ImagerPixelSpacing") or ["1", "1"]
    if not usable(spacing):
        spacing = ["1", "1"]  # pixel units
    try:
        number = float(ds.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        number = 0.0
    multi = nframes > 1 or "PerFrameFunctionalGroupsSequence" in ds
    frames = range(1, nframes + 1) if multi else [None]
    return [_Slice(path, ds, f, np.zeros(3), [], np.array([1.0, 0, 0, 0, 1.0, 0]), [],
                   spacing, sop_class, sop_inst, has_geometry=False,
                   order=(number, sop_inst, f or 0), pixel_spacing=own or None)
            for f in frames]


def _size(path: Path, ds, keyword: str) -> int:
    """Rows or Columns: a positive whole number, else one line naming the file."""
    value = ds.get(keyword)
    if isinstance(value, int) and value > 0:
        return value
    raise InvalidInputError(f"{path}: {keyword} is {'missing' if value is None else value!r}; "
                            "not an image that can be placed")


def _describe_series(uid: str, items: list[tuple[Path, Dataset | RawHeader]]) -> str:
    ds = items[0][1]
    desc = str(ds.get("SeriesDescription", "") or "")
    return f"{uid or '<blank>'} ({ds.get('Modality', '?')}, {len(items)} files{', ' + desc if desc else ''})"


def read_series(paths: str | os.PathLike | Sequence[str | os.PathLike], *,
                series_uid: str | None = None, assign_uids: bool = False,
                report: Report | None = None) -> ReferenceImage:
    """Read the headers of a source image series and place its slices on a grid.

    Several series in the input are an error listing them unless ``series_uid`` picks one. Blank
    study or series UIDs are an error unless ``assign_uids`` (new UIDs, derived from the file
    contents so a rerun gives the same ones, are reported in ``assigned_uids``).
    """
    report = report if report is not None else Report()
    files = expand_paths(paths)
    label = str(paths if isinstance(paths, (str, os.PathLike)) else (paths[0] if paths else ""))
    headers = ((f, ds) for f in files if (ds := read_header(f)) is not None)
    return series_from_headers(label, headers, series_uid=series_uid, assign_uids=assign_uids,
                               report=report)


def series_from_headers(label: str, headers, *, series_uid: str | None = None,
                        assign_uids: bool = False, report: Report | None = None
                        ) -> ReferenceImage:
    """The grid and references of a series from (source, header) pairs.

    A source is a file path or anything with a ``name`` and a ``read_dataset()`` (an instance on
    a DICOMweb server): the headers come from wherever, pixels are fetched only when asked for.
    """
    report = report if report is not None else Report()
    groups: dict[str, list[tuple[Path, Dataset | RawHeader]]] = {}
    for f, ds in headers:
        sop_class = _uid(ds, "SOPClassUID", "MediaStorageSOPClassUID")
        if sop_class in NON_IMAGE_SOP_CLASSES or "Rows" not in ds:
            continue
        groups.setdefault(_uid(ds, "SeriesInstanceUID"), []).append((f, ds))
    if not groups:
        raise InvalidInputError(f"{label}: no DICOM images found")
    if series_uid is not None:
        if series_uid not in groups:
            raise InvalidInputError(f"{label}: series {series_uid} not found; series present: "
                                    + "; ".join(_describe_series(u, g) for u, g in groups.items()))
        items = groups[series_uid]
    elif len(groups) > 1:
        raise InvalidInputError(f"{label}: {len(groups)} series found, choose one with --series: "
                                + "; ".join(_describe_series(u, g) for u, g in groups.items()))
    else:
        items = next(iter(groups.values()))

    slices: list[_Slice] = []
    blank: list[str] = []
    for path, ds in items:
        slices.extend(_slices_of(path, ds, report, blank))
    if blank:
        report.warn(f"{label}: {len(blank)} image(s) have a blank SOP Instance UID ({blank[0]}"
                    f"{', ...' if len(blank) > 1 else ''}); using their file meta Media Storage "
                    "SOP Instance UIDs")
    first = slices[0].ds
    rows, cols = _size(slices[0].path, first, "Rows"), _size(slices[0].path, first, "Columns")
    for s in slices:
        if (_size(s.path, s.ds, "Rows"), _size(s.path, s.ds, "Columns")) != (rows, cols):
            raise GeometryMismatchError(f"{s.path}: {s.ds.Rows}x{s.ds.Columns} pixels, other "
                                        f"slices of the series have {rows}x{cols}")
        if np.abs(s.orientation - slices[0].orientation).max() > 1e-4:
            raise GeometryMismatchError(
                f"{label}: mixed image orientations in one series ({s.path.name} differs from "
                f"{slices[0].path.name}); pass the files of one orientation only")
        if np.abs(np.array(s.spacing_strings, float) -
                  np.array(slices[0].spacing_strings, float)).max() > 1e-4:
            raise GeometryMismatchError(f"{label}: pixel spacing differs between slices "
                                        f"({s.path.name})")
    ori = slices[0].orientation
    normal = np.cross(ori[:3], ori[3:6])
    has_geometry = all(s.has_geometry for s in slices)
    if not has_geometry:
        if any(s.has_geometry for s in slices):
            raise GeometryMismatchError(f"{label}: some images have a patient position and "
                                        "some do not")
        slices.sort(key=lambda s: s.order)
        instances = {s.sop_instance: s.ds.get("InstanceNumber") for s in slices}
        numbers = [str(v).strip() if v is not None else "" for v in instances.values()]
        if len(instances) > 1 and ("" in numbers or len(set(numbers)) < len(numbers)):
            report.warn(f"{label}: images without an InstanceNumber, or sharing one, are "
                        "ordered by SOP Instance UID: a mask's frame k goes to the k-th image "
                        "in that order")
        for i, s in enumerate(slices):
            s.position = np.array([0.0, 0.0, float(i)])
        report.note(f"{label}: 2-D images without patient position/orientation ("
                    f"{len(slices)} frame(s)); read as frame space: segmentations are linked "
                    "by SOP instance and frame number only, no patient geometry is assumed")
    slices.sort(key=lambda s: float(s.position @ normal))
    proj = np.array([s.position @ normal for s in slices])
    dup = np.flatnonzero(np.diff(proj) < 1e-3)
    if dup.size:
        a, b = slices[dup[0]], slices[dup[0] + 1]
        # names alone, unless they are the same name in two folders (a copied series)
        na, nb = (a.path.name, b.path.name) if a.path.name != b.path.name or \
            a.path == b.path else (str(a.path), str(b.path))
        raise GeometryMismatchError(
            f"{label}: two slices at the same position {proj[dup[0]]:.3f} mm ({na}"
            f"{'#' + str(a.frame) if a.frame else ''}, {nb}"
            f"{'#' + str(b.frame) if b.frame else ''}); several acquisitions in one series?")

    study = _uid(first, "StudyInstanceUID")
    series = _uid(first, "SeriesInstanceUID")
    for_uid = _uid(first, "FrameOfReferenceUID") or None
    assigned: dict[str, str] = {}
    missing = [k for k, v in (("StudyInstanceUID", study), ("SeriesInstanceUID", series)) if not v]
    if missing:
        if not assign_uids:
            raise InvalidInputError(
                f"{label}: blank {' and '.join(missing)} in the images, so a segmentation could "
                "not be linked to them; pass --assign-uids to give them new UIDs")
        entropy = [s.sop_instance for s in slices]
        if not study:
            study = assigned["StudyInstanceUID"] = generate_uid(entropy_srcs=["study", *entropy])
        if not series:
            series = assigned["SeriesInstanceUID"] = generate_uid(
                entropy_srcs=["series", *entropy])
        report.note("assigned new UIDs to the reference images: "
                    + ", ".join(f"{k}={v}" for k, v in assigned.items()))
    if for_uid is None and has_geometry:
        report.warn(f"{label}: no Frame of Reference UID; the segmentation will carry none")

    grid = Grid.from_slices(np.array([s.position for s in slices]), ori,
                            np.array(slices[0].spacing_strings, float), rows, cols, for_uid,
                            report=report, what=label)
    if isinstance(first, RawHeader):
        # the assigned Study Instance UID reaches writers through SourceRef.study_instance_uid
        header = first.copied(COPIED_ATTRIBUTES)
    else:
        from pydicom.dataset import Dataset

        header = Dataset()
        for kw in COPIED_ATTRIBUTES:
            if kw in first and first[kw].value not in (None, ""):
                header[kw] = first[kw]
        if "StudyInstanceUID" in assigned:
            header.StudyInstanceUID = study
    source = SourceRef(
        study_instance_uid=study, series_instance_uid=series, frame_of_reference_uid=for_uid,
        instances=[SourceInstance(s.sop_class, s.sop_instance, s.frame) for s in slices],
        header=header,
        position_strings=[s.position_strings for s in slices] if has_geometry else None,
        orientation_strings=slices[0].orientation_strings if has_geometry else None,
        has_geometry=has_geometry,
        patient_orientation=None if has_geometry else
        (_strings(first, "PatientOrientation") or None),
        pixel_spacing_strings=slices[0].spacing_strings if has_geometry else
        slices[0].pixel_spacing,
        slice_thickness=str(first.get("SliceThickness", "") or "").strip() or None,
        modality=str(first.get("Modality", "") or "") or None,
        lossy=str(first.get("LossyImageCompression", "00")) == "01",
        files=tuple(dict.fromkeys(str(s.path) for s in slices
                                  if isinstance(s.path, (str, os.PathLike)))),
    )
    return ReferenceImage(grid=grid, source=source, paths=[s.path for s in slices],
                          frames=[s.frame for s in slices], report=report,
                          assigned_uids=assigned, raw_headers=[s.ds for s in slices])


def write_reference_copy(ref: ReferenceImage, folder: str | os.PathLike) -> Path:
    """Copy the reference images with the UIDs assigned by ``assign_uids`` filled in.

    Blank SOP Instance UIDs get the file meta's Media Storage SOP Instance UID (the one the
    segmentation references), so the images and the segmentation can be stored together.
    """

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    done: set[Path] = set()
    for path in ref.paths:
        if path in done:
            continue
        done.add(path)
        ds = load_dataset(path)
        for kw, uid in ref.assigned_uids.items():
            setattr(ds, kw, uid)
        meta = getattr(ds, "file_meta", None)
        if not str(ds.get("SOPInstanceUID", "") or "").strip() and meta is not None:
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        if not str(ds.get("SOPClassUID", "") or "").strip() and meta is not None:
            ds.SOPClassUID = meta.MediaStorageSOPClassUID
        target = out / path.name
        tmp = target.with_name(f".{target.name}.tmp")
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)
    return out
