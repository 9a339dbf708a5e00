"""Publish a mask to a PACS as DICOM SEG, and prove the PACS stored it right.

The pipeline an AI back end needs, in one typed call (``segbridge serve`` is its HTTP shell,
``segbridge convert --push`` can become another):

1. ``load_mask``: a mask file (NIfTI, NRRD, seg.nrrd, DICOM SEG, RTSTRUCT, or a NumPy ``.npy``
   array in the reference's ``[z, y, x]`` voxel order) + segment metadata (dcmqi JSON, or the
   short form ``[{"label": .., "value": .., "color": [r, g, b]}]``) -> the model, on the
   reference grid;
2. ``write_seg_files``: the SEG object(s) for a profile (the ``ohif`` profile splits
   overlapping segments into several series), validated before they are put in place;
3. ``publish``: STOW-RS into the reference's study; every instance refused is an error with the
   server's reason code; then every stored SEG series is pulled back (WADO-RS) and read on the
   reference grid, and each of its segments must equal a segment of the model voxel for voxel.

A ``deadline`` (``time.time()`` seconds) is checked before anything is stored: a caller that
has already given up never leaves an object in the PACS. A STOW that was sent cannot be taken
back (DICOMweb has no delete); a read-back that differs is reported with the stored UIDs.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import (
    GeometryMismatchError,
    InvalidInputError,
    RemoteError,
    Report,
    SegbridgeError,
    UnsupportedError,
)
from ..model import Segmentation
from ..series import ReferenceImage
from .client import WebOptions, public, split_series_url

NPY_MAGIC = b"\x93NUMPY"
#: a UID as DICOMweb clients check it (dicomweb-client refuses "1..2" and "1.2."); ASCII only
UID = re.compile(r"[0-9]+(?:\.[0-9]+)*", re.ASCII)


class SeriesNotFound(RemoteError):
    """The reference series (or the stored series asked for) is not on the server."""


class StoreRefused(RemoteError):
    """The server refused to store (some of) the SEG instances; ``reasons`` lists
    (SOP Instance UID, reason with its code)."""

    def __init__(self, message: str, reasons: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []

    def __reduce__(self):  # keep the reasons across a process pool
        return (self.__class__, (str(self), self.reasons))


class ReadBackMismatch(RemoteError):
    """What the server sends back is not what was stored."""


class DeadlineExceeded(SegbridgeError):
    """The caller's deadline passed before the objects were stored (nothing was stored)."""


class UnknownFormat(UnsupportedError):
    """The mask file is none of the formats segbridge reads."""


def remote_kind(exc: RemoteError) -> str:
    """What a RemoteError means for a caller deciding on a retry: ``not_found``,
    ``store_refused``, ``read_back``, ``unreachable``, ``timeout``, ``auth`` or ``pacs_error``.

    ``web.client`` words its one-line messages for people; the few fixed phrases it uses for
    these cases are read here, in one place.
    """
    if isinstance(exc, SeriesNotFound):
        return "not_found"
    if isinstance(exc, StoreRefused):
        return "store_refused"
    if isinstance(exc, ReadBackMismatch):
        return "read_back"
    text = str(exc)
    if "cannot reach the server" in text:
        return "unreachable"
    if "no answer within" in text:
        return "timeout"
    if ": 401 Unauthorized" in text or ": 403 Forbidden" in text:
        return "auth"
    return "pacs_error"


# ---------------------------------------------------------------------------------------------
# reference and mask
# ---------------------------------------------------------------------------------------------
def series_url(pacs: str, study: str | None = None, series: str | None = None) -> str:
    """``<root>/studies/<study>/series/<series>``; ``pacs`` may already be a series URL."""
    root, url_study, url_series = split_series_url(pacs)
    study, series = study or url_study, series or url_series
    if not study or not series:
        raise InvalidInputError("the reference needs a study and a series UID (or a DICOMweb "
                                "series URL .../studies/<uid>/series/<uid>)")
    for what, uid in (("study", study), ("series", series)):
        if not (len(uid) <= 64 and UID.fullmatch(uid)):
            raise InvalidInputError(f"{what} {uid[:70]!r} is not a DICOM UID (numbers "
                                    "separated by single dots, at most 64 characters)")
    return f"{root}/studies/{study}/series/{series}"


def load_pacs_reference(url: str, *, options: WebOptions | None = None,
                        report: Report | None = None) -> ReferenceImage:
    """The reference series at a DICOMweb series URL (headers only); SeriesNotFound when the
    server does not have it."""
    from .series import read_remote_series

    try:
        return read_remote_series(url, options=options, report=report)
    except RemoteError as exc:
        text = str(exc)
        if "404 Not Found" in text or "has no instances" in text:
            raise SeriesNotFound(f"{public(url)}: no such series on the server") from None
        raise


def short_meta(entries: Sequence[dict]) -> dict:
    """The short form ``[{"label", "value", "color"?, "description"?, "algorithm"?}]`` as a
    dcmqi metadata document (one input file)."""
    if not isinstance(entries, list | tuple) or not entries:
        raise InvalidInputError("segments: give a non-empty list of {label, value, color}")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "value" not in e:
            raise InvalidInputError(f"segments[{i}]: needs at least value (the label value in "
                                    "the mask) and label")
        d = {"labelID": e["value"], "SegmentLabel": e.get("label") or f"Segment {e['value']}",
             "SegmentAlgorithmType": str(e.get("algorithm_type", "AUTOMATIC")).upper()}
        if d["SegmentAlgorithmType"] != "MANUAL":
            d["SegmentAlgorithmName"] = str(e.get("algorithm", "segbridge"))
        if e.get("color") is not None:
            d["recommendedDisplayRGBValue"] = e["color"]
        if e.get("description"):
            d["SegmentDescription"] = e["description"]
        for key in ("SegmentedPropertyCategoryCodeSequence", "SegmentedPropertyTypeCodeSequence",
                    "AnatomicRegionSequence"):
            if key in e:
                d[key] = e[key]
        out.append(d)
    return {"segmentAttributes": [out]}


def as_meta(segments) -> dict | None:
    """Segment metadata as given by a client: None, a dcmqi document (with
    ``segmentAttributes``) or the short form list."""
    from ..formats.dcmqi_json import check_meta

    if segments is None:
        return None
    if isinstance(segments, dict):
        return check_meta(segments, "segments")
    return check_meta(short_meta(segments), "segments")


def mask_format(path: str | os.PathLike, name: str | None = None) -> str:
    """``npy`` or the registry's format name; UnknownFormat (naming the file as ``name``)
    otherwise."""
    from .. import registry

    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(len(NPY_MAGIC))
    if head == NPY_MAGIC:
        return "npy"
    try:
        return registry.detect(p).name
    except InvalidInputError as exc:
        raise UnknownFormat(f"{name or p.name}: unknown mask format (not NIfTI, NRRD, seg.nrrd, DICOM "
                            "SEG, RTSTRUCT or NumPy .npy)") from exc


def load_mask(path: str | os.PathLike, reference: ReferenceImage, *, segments=None,
              fractional: bool = False, report: Report | None = None,
              name: str | None = None) -> Segmentation:
    """A mask file on ``reference``'s grid.

    ``segments``: dcmqi metadata or the short form (see :func:`short_meta`). A ``.npy`` array
    is ``[z, y, x]`` labels (or ``[n, z, y, x]`` stacked masks) in the reference's voxel order.

    Raises
    ------
    UnknownFormat
        Not a format segbridge reads.
    GeometryMismatchError
        The mask is on another grid (the message names both).
    InvalidInputError
        Broken file or metadata.
    """
    from .. import io

    report = report if report is not None else Report()
    p = Path(path)
    name = name or p.name
    meta = as_meta(segments)
    kind = mask_format(p, name)
    if kind != "npy":
        return io.read(p, reference=reference, meta=meta, report=report,
                       fractional=True if fractional else None)
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{name}: not a readable .npy array ({exc})") from None
    shape = tuple(arr.shape)
    if shape[-3:] != tuple(reference.grid.shape) or len(shape) not in (3, 4):
        raise GeometryMismatchError(
            f"{name}: array shape {list(shape)} ([z, y, x]) does not fit the reference grid "
            f"{reference.grid.describe()}")
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name}: array of {arr.dtype} values; give integer labels "
                                "(or floats 0..1 with fractional)")
    from ..formats.dcmqi_json import segment_from_json

    segs = None
    if meta is not None:
        # one list per input file in dcmqi; an array is one input: every entry, in order
        group = [e for g in meta["segmentAttributes"] for e in g]
        if not group:
            raise InvalidInputError("segments: segmentAttributes names no segment")
        segs = [segment_from_json(e, e["labelID"] if len(shape) == 3 else i + 1, i)
                for i, e in enumerate(group)]
    seg = io.from_array(np.asarray(arr), reference, segments=segs, fractional=fractional)
    if segs is not None and len(shape) == 3 and not fractional:
        # label values the metadata does not describe become "Segment N", as the NIfTI and
        # NRRD readers make them (left in the label array undescribed, they would be written
        # as pixel values no segment item describes)
        from ..colors import default_color
        from ..model import Segment, present_values

        described = {s.number for s in segs}
        extra = [int(v) for v in present_values(seg.layers[0]) if int(v) not in described]
        if extra:
            report.warn(f"{name}: label value(s) {', '.join(map(str, extra[:10]))} not "
                        "described by the segments given; stored as 'Segment N'")
            segs = [*segs, *(Segment(v, color=default_color(len(segs) + i))
                             for i, v in enumerate(extra))]
            seg = io.from_array(np.asarray(arr), reference, segments=segs)
    return seg


# ---------------------------------------------------------------------------------------------
# SEG files
# ---------------------------------------------------------------------------------------------
def write_seg_files(seg: Segmentation, reference: ReferenceImage, folder: str | os.PathLike, *,
                    type: str = "auto", profile: str = "ohif", compression: str | None = None,
                    series_description: str | None = None, name: str = "segmentation.dcm",
                    report: Report | None = None) -> tuple[list[Path], list[dict]]:
    """Write the SEG object(s) into ``folder`` (``NAME.dcm``, ``NAME-2.dcm``... when split);
    returns them and the validation findings (warnings and infos: an error stops the write
    with ValidationFailed)."""
    from .. import io

    report = report if report is not None else Report()
    checked: list = []  # (index of the file or None, Finding): io.write's own validation
    written = io.write(seg, Path(folder) / name, type=type, profile=profile,
                       compression=compression, series_description=series_description,
                       reference=reference, report=report, findings=checked)
    findings = [{"file": written[k].name if k is not None else None, **asdict(f)}
                for k, f in checked]
    return written, findings


# ---------------------------------------------------------------------------------------------
# publish
# ---------------------------------------------------------------------------------------------
@dataclass
class StoredSeries:
    """One SEG series as stored (several when overlapping segments were split)."""

    series_instance_uid: str
    sop_instance_uids: list[str]
    segments: list[int]  # model segment numbers held by this series


@dataclass
class SegmentSummary:
    number: int
    label: str
    voxels: int
    volume_ml: float | None  # None in frame space: 2-D / cine images have no volume
    series_instance_uid: str | None = None


@dataclass
class PublishResult:
    study_instance_uid: str
    reference_series_uid: str
    series: list[StoredSeries]
    segments: list[SegmentSummary]
    findings: list[dict]
    verified: bool
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def segment_summaries(seg: Segmentation) -> list[SegmentSummary]:
    """Voxel counts and volumes (mL) per segment of the model (no volume in frame space: its
    grid is nominal, as ``stats`` and ``measure`` refuse it)."""
    voxel_ml = float(abs(np.linalg.det(seg.grid.affine[:3, :3]))) / 1000.0
    counts = seg.voxel_counts()
    return [SegmentSummary(s.number, s.label, int(counts.get(s.number, 0)),
                           None if seg.frame_space else
                           round(counts.get(s.number, 0) * voxel_ml, 6)) for s in seg.segments]


def _header_uids(path: Path) -> tuple[str, str, str]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _values(seg: Segmentation, number: int, binary_from_fraction: bool) -> np.ndarray:
    if seg.is_fractional and not binary_from_fraction:
        return np.asarray(seg.fraction(number))
    if seg.is_fractional:
        return np.asarray(seg.fraction(number)) >= (seg.max_fractional_value + 1) // 2
    return seg.mask(number)


def match_segments(model: Segmentation, stored: Sequence[tuple[str, Segmentation]]
                   ) -> dict[int, str]:
    """Every segment of every stored object equals one segment of the model, voxel for
    voxel, and every model segment is stored: model number -> series UID. ReadBackMismatch
    naming the first difference otherwise. Numbers may differ (SEG numbering runs 1..N per
    object); labels pick the candidates first, voxels decide."""
    where: dict[int, str] = {}
    for series_uid, back in stored:
        if back.grid.shape != model.grid.shape:
            raise ReadBackMismatch(f"series {series_uid}: read back on grid "
                                   f"{back.grid.describe()}, not {model.grid.describe()}")
        for s in back.segments:
            got = _values(back, s.number, False)
            free = [m for m in model.segments if m.number not in where]
            free.sort(key=lambda m: m.label != s.label)
            best = None
            for m in free:
                want = _values(model, m.number, not back.is_fractional)
                if want.shape == got.shape and np.array_equal(want, got):
                    best = m.number
                    break
            if best is None:
                near = free[0] if free else None
                diff = "" if near is None else (
                    f"; {int(np.count_nonzero(_values(model, near.number, not back.is_fractional) != got))}"
                    f" voxels differ from model segment {near.number} ({near.label})")
                raise ReadBackMismatch(f"series {series_uid}: stored segment {s.number} "
                                       f"({s.label}) equals no segment of the model{diff}")
            where[best] = series_uid
    missing = [m.number for m in model.segments if m.number not in where]
    if missing:
        raise ReadBackMismatch(f"model segment(s) {', '.join(map(str, missing))} were not found "
                               "in what the server sent back")
    return where


def read_back(root: str, study: str, stored: dict[str, list[str]], reference: ReferenceImage,
              folder: Path, *, options: WebOptions | None = None,
              report: Report | None = None) -> list[tuple[str, Segmentation]]:
    """Retrieve each stored SEG instance (WADO-RS, by the UIDs just stored: no listing
    query) and read it on the reference grid. ``stored``: series UID -> SOP Instance UIDs."""
    from .. import io
    from .transfer import fetch_instances

    out = []
    folder.mkdir()
    for uid, sops in stored.items():
        try:
            files = fetch_instances(root, study, uid, sops, folder, options=options)
        except RemoteError as exc:
            if "404" not in str(exc) and "not found" not in str(exc).lower():
                raise
            raise ReadBackMismatch(f"{public(root)}: series {uid}: the server accepted the "
                                   "STOW but sends nothing back (it may have filtered the "
                                   "instances out)") from None
        for f in files:
            out.append((uid, io.read(f, reference=reference, report=report or Report())))
    return out


def publish(seg: Segmentation, reference: ReferenceImage, pacs: str, *,
            folder: str | os.PathLike, options: WebOptions | None = None, type: str = "auto",
            profile: str = "ohif", compression: str | None = None,
            series_description: str | None = None, report: Report | None = None,
            deadline: float | None = None, verify: bool = True) -> PublishResult:
    """Write ``seg`` as SEG for ``profile``, store it in the reference's study on ``pacs``
    (a DICOMweb root), read it back and compare it with ``seg`` voxel for voxel.

    ``folder`` (existing, empty) receives the SEG files and what is read back; the caller
    removes it. Raises ValidationFailed / InvalidInputError before anything is stored,
    DeadlineExceeded when ``deadline`` passed before the STOW, StoreRefused (with the server's
    reasons), ReadBackMismatch, or RemoteError (unreachable, timeout...).
    """
    from .transfer import push

    report = report if report is not None else Report()
    options = options or WebOptions.from_env()
    work = Path(folder)
    if not work.is_dir():
        raise InvalidInputError(f"{work}: the work folder does not exist")
    out = work / "seg"
    out.mkdir()
    written, findings = write_seg_files(seg, reference, out, type=type, profile=profile,
                                        compression=compression,
                                        series_description=series_description, report=report)
    study = reference.source.study_instance_uid
    uids = [_header_uids(p) for p in written]
    if any(u[0] != study for u in uids):
        raise InvalidInputError("the SEG does not belong to the reference's study")
    root = split_series_url(pacs)[0]
    if deadline is not None:
        left = deadline - time.time()
        if left <= 0:
            raise DeadlineExceeded("the request's time ran out before storing; nothing was "
                                   "stored")
        options = replace(options, timeout=max(0.5, min(options.timeout, left)))
    pushed = push(written, root, options=options, study=study, batch_size=len(written),
                  workers=1)
    if pushed.failed:
        reasons = [(uid, why) for _, uid, why in pushed.failed]
        stored = f"; stored anyway: {', '.join(pushed.stored)}" if pushed.stored else ""
        raise StoreRefused(f"{public(root)}: the server refused {len(pushed.failed)} of "
                           f"{len(written)} SEG instance(s): "
                           + "; ".join(f"{uid}: {why}" for uid, why in reasons) + stored,
                           reasons)
    for _, uid, why in pushed.warnings:
        report.warn(f"{uid}: stored with a warning: {why}")
    series_uids = list(dict.fromkeys(u[1] for u in uids))
    summaries = segment_summaries(seg)
    verified = False
    where: dict[int, str] = {}
    if verify:
        stored = {uid: [u[2] for u in uids if u[1] == uid] for uid in series_uids}
        back = read_back(root, study, stored, reference, work / "back", options=options,
                         report=Report())
        where = match_segments(seg, back)
        verified = True
    for s in summaries:
        s.series_instance_uid = where.get(s.number)
    series = [StoredSeries(uid, [u[2] for u in uids if u[1] == uid],
                           sorted(n for n, w in where.items() if w == uid))
              for uid in series_uids]
    return PublishResult(study, reference.source.series_instance_uid, series, summaries,
                         findings, verified, list(report.notes), list(report.warnings))
