"""Read a reference image series (the images a segmentation is drawn on) into a grid.

Accepts a folder, a list of files, or one enhanced / legacy-converted multi-frame image. Headers
only are read up front; pixels are decoded on demand (statistics, previews). Every decision about
messy real files is taken here, once, and reported (DESIGN.md, "Messy real files").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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
    ds: Dataset
    frame: int | None  # 1-based frame of a multi-frame file
    position: np.ndarray
    position_strings: list[str]
    orientation: np.ndarray
    orientation_strings: list[str]
    spacing_strings: list[str]
    sop_class: str
    sop_instance: str
    has_geometry: bool = True


@dataclass
class ReferenceImage:
    """A source image series on its grid, with references for derived objects."""

    grid: Grid
    source: SourceRef
    paths: list[Path]
    frames: list[int | None]
    report: Report = field(default_factory=Report)
    assigned_uids: dict[str, str] = field(default_factory=dict)
    headers: list = field(default_factory=list, repr=False)
    _pixels: np.ndarray | None = None

    @property
    def modality(self) -> str | None:
        return self.source.modality

    def pixels(self) -> np.ndarray:
        """Image voxels on the grid, [z, y, x], in real-world units (rescale applied).

        Rescale slope and intercept are taken per slice (PET slices each have their own) and,
        for enhanced multi-frame images, per frame from the functional groups.
        """
        if self._pixels is None:
            out = np.empty(self.grid.shape, np.float32)
            decoded, arr = None, None  # one file's pixels at a time
            for k, (frame, ds) in enumerate(zip(self.frames, _datasets(self.paths),
                                                strict=True)):
                if ds is not decoded:
                    decoded, arr = ds, ds.pixel_array
                plane = arr[frame - 1] if frame else arr
                slope, inter = _rescale(ds, frame)
                out[k] = plane.astype(np.float32) * np.float32(slope) + np.float32(inter)
            self._pixels = out
        return self._pixels


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


def read_header(path: Path) -> Dataset | None:
    """Header of a DICOM file (no pixels), or None if the file is not DICOM."""
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


def _ds_strings(elem) -> list[str]:
    from pydicom.multival import MultiValue

    values = elem.value if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]
    return [str(v).strip() for v in values]


def _uid(ds: Dataset, keyword: str, meta_keyword: str | None = None) -> str:
    """A UID attribute as text; falls back to the file meta attribute when blank."""
    value = str(ds.get(keyword, "") or "").strip()
    if not value and meta_keyword and hasattr(ds, "file_meta"):
        value = str(ds.file_meta.get(meta_keyword, "") or "").strip()
    return value


def _find_fg(path: Path, i: int, fg: Dataset, shared: Dataset, seq_kw: str, kw: str):
    """An attribute of frame i from its per-frame functional group, else the shared one."""
    for grp in (fg, shared):
        if seq_kw in grp and len(grp[seq_kw].value) and kw in grp[seq_kw].value[0]:
            return grp[seq_kw].value[0][kw]
    raise InvalidInputError(f"{path}: frame {i + 1} has no {kw}")


def _slices_of(path: Path, ds: Dataset, report: Report, blank: list[str]) -> list[_Slice]:
    from pydicom.dataset import Dataset

    sop_class = _uid(ds, "SOPClassUID", "MediaStorageSOPClassUID")
    sop_inst = _uid(ds, "SOPInstanceUID")
    if not sop_inst:
        meta = getattr(ds, "file_meta", Dataset())
        sop_inst = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip()
        if not sop_inst:
            raise InvalidInputError(f"{path}: SOP Instance UID is blank and the file has no "
                                    "Media Storage SOP Instance UID either")
        blank.append(path.name)  # reported once for the whole series
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" in ds and (
            nframes > 1 or "ImagePositionPatient" not in ds):
        shared = ds.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
        out = []
        for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
            pos = _find_fg(path, i, fg, shared, "PlanePositionSequence", "ImagePositionPatient")
            ori = _find_fg(path, i, fg, shared, "PlaneOrientationSequence",
                           "ImageOrientationPatient")
            spc = _find_fg(path, i, fg, shared, "PixelMeasuresSequence", "PixelSpacing")
            out.append(_Slice(path, ds, i + 1, np.array(pos.value, float), _ds_strings(pos),
                              np.array(ori.value, float), _ds_strings(ori), _ds_strings(spc),
                              sop_class, sop_inst))
        return out
    if nframes > 1:
        raise InvalidInputError(f"{path}: multi-frame image ({nframes} frames) without per-frame "
                                "functional groups; its frames cannot be placed")
    if any(kw not in ds or ds[kw].value in (None, "") for kw in
           ("ImagePositionPatient", "ImageOrientationPatient")):
        # a projection image (CR, DX, ...): no patient geometry, only pixel correspondence
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [1, 1]
        number = float(ds.get("InstanceNumber", 0) or 0)
        return [_Slice(path, ds, None, np.array([0.0, 0.0, number]), [], np.array(
            [1.0, 0, 0, 0, 1.0, 0]), [], [str(v) for v in spacing], sop_class, sop_inst,
            has_geometry=False)]
    if "PixelSpacing" not in ds or ds.PixelSpacing in (None, ""):
        raise InvalidInputError(f"{path}: image has no PixelSpacing; it cannot be placed in space")
    return [_Slice(path, ds, None, np.array(ds.ImagePositionPatient, float),
                   _ds_strings(ds["ImagePositionPatient"]),
                   np.array(ds.ImageOrientationPatient, float),
                   _ds_strings(ds["ImageOrientationPatient"]), _ds_strings(ds["PixelSpacing"]),
                   sop_class, sop_inst)]


def _describe_series(uid: str, items: list[tuple[Path, Dataset]]) -> str:
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
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    report = report if report is not None else Report()
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
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
    rows, cols = int(first.Rows), int(first.Columns)
    for s in slices:
        if (int(s.ds.Rows), int(s.ds.Columns)) != (rows, cols):
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
        slices.sort(key=lambda s: float(s.position[2]))
        for i, s in enumerate(slices):
            s.position = np.array([0.0, 0.0, float(i)])
        report.warn(f"{label}: images have no patient position/orientation (projection "
                    "images); segmentations are matched by SOP Instance UID only and volume "
                    "outputs get a nominal geometry")
    slices.sort(key=lambda s: float(s.position @ normal))
    proj = np.array([s.position @ normal for s in slices])
    dup = np.flatnonzero(np.diff(proj) < 1e-3)
    if dup.size:
        a, b = slices[dup[0]], slices[dup[0] + 1]
        raise GeometryMismatchError(
            f"{label}: two slices at the same position {proj[dup[0]]:.3f} mm ({a.path.name}"
            f"{'#' + str(a.frame) if a.frame else ''}, {b.path.name}"
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
        pixel_spacing_strings=slices[0].spacing_strings,
        slice_thickness=str(first.get("SliceThickness", "") or "").strip() or None,
        modality=str(first.get("Modality", "") or "") or None,
        lossy=str(first.get("LossyImageCompression", "00")) == "01",
    )
    return ReferenceImage(grid=grid, source=source, paths=[s.path for s in slices],
                          frames=[s.frame for s in slices], report=report,
                          assigned_uids=assigned, headers=[s.ds for s in slices])


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
