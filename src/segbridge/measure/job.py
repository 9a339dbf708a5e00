"""What the stats, measure and render commands share: reading the inputs, writing the SR.

A segmentation is put on the image's grid when their lattices match (exactly, no voxel moves);
when they do not, it stays on its own grid and statistics sample the image through patient
coordinates (reported). An SR must reference segments of a DICOM SEG: for a NIfTI or NRRD input
the SEG is written next to the SR first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import GeometryMismatchError, InvalidInputError, Report, UnsupportedError
from ..model import Segmentation
from ..series import ReferenceImage


@dataclass
class Loaded:
    """A segmentation ready to measure, with the image it is measured on."""

    seg: Segmentation
    image: ReferenceImage | None
    paths: list[Path]
    seg_file: Path | None  # the input when it is a DICOM SEG

    @property
    def modality(self) -> str | None:
        return self.image.modality if self.image is not None else None


def load(inputs: Sequence[str | os.PathLike], image=None, *, series_uid: str | None = None,
         assign_uids: bool = False, report: Report | None = None) -> Loaded:
    """Read segmentation file(s), and the image series when one is given."""
    from .. import io

    report = report if report is not None else Report()
    paths = [Path(p) for p in inputs]
    ref = io.load_reference(image, series_uid=series_uid, assign_uids=assign_uids,
                            report=report) if image is not None else None
    for p in paths:
        if not p.exists():
            raise InvalidInputError(f"{p}: no such file")
    is_seg = len(paths) == 1 and io.format_of(paths[0]) == "dicom"
    if is_seg or ref is None:
        seg = io.read(paths, reference=ref, report=report)
    else:
        try:
            seg = io.read(paths, reference=ref, report=report)
        except GeometryMismatchError as exc:
            report.note(f"kept the segmentation on its own grid ({exc})")
            seg = io.read(paths, report=report)
    return Loaded(seg, ref, paths, paths[0] if is_seg else None)


def require_patient_space(loaded: Loaded, what: str) -> None:
    """Volumes (mm3) and bidirectional axes (mm) need patient-space geometry: a frame-referenced
    segmentation (2-D / cine images, ``SourceRef.has_geometry`` False) is refused, one line."""
    if loaded.seg.frame_space:
        raise UnsupportedError(
            f"{loaded.paths[0]}: {what} need patient-space geometry; this segmentation is "
            "frame-referenced (2-D / cine images without patient position), so no volumes or "
            "lengths in mm can be given")


def write_sr(loaded: Loaded, out: str | os.PathLike, numbers: list[int], *,
             stats=None, axes=None, report: Report | None = None) -> list[Path]:
    """Write a TID 1500 SR for ``numbers``; returns the files written (SEG first if new)."""
    import pydicom

    from .. import io
    from .sr import measurement_report, write_report

    report = report if report is not None else Report()
    target = Path(out)
    written: list[Path] = []
    stats = {s.number: s for s in (stats or []) if s.number is not None}
    axes = {a.number: a for a in (axes or [])}
    if loaded.seg_file is not None:
        seg_path, mapping = loaded.seg_file, {n: n for n in numbers}
    else:
        if loaded.image is None:
            raise InvalidInputError("--sr: the SR references segments of a DICOM SEG; for a "
                                    f"{loaded.paths[0].name} input give the image series "
                                    "(--image) so the SEG can be written first")
        seg = loaded.seg
        if not seg.grid.same_as(loaded.image.grid):
            seg = io.read(loaded.paths, reference=loaded.image, resample=True, report=report)
        mapping = {n: i + 1 for i, n in enumerate(numbers)}  # SEG numbers run 1..N
        seg = seg.subset(numbers).renumbered(mapping)
        seg_path = target.with_name(target.name.removesuffix(".dcm") + "-seg.dcm")
        written += io.write(seg, seg_path, profile="slicer", reference=loaded.image,
                            report=report)
        renumbered = " (segments renumbered 1..N)" if any(
            k != v for k, v in mapping.items()) else ""
        report.note(f"the SR references {seg_path.name}, written from "
                    f"{', '.join(p.name for p in loaded.paths)}{renumbered}")
    seg_ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
    evidence = _evidence(loaded.seg)
    sr = measurement_report(
        seg_ds, {mapping[n]: loaded.seg.segment(n) for n in numbers},
        stats={mapping[n]: s for n, s in stats.items() if n in mapping},
        axes={mapping[n]: a for n, a in axes.items() if n in mapping},
        modality=loaded.modality, evidence=evidence, report=report,
        image_sop_class=_image_sop_class(loaded))
    written.append(write_report(sr, target))
    return written


def _image_sop_class(loaded: Loaded) -> str | None:
    src = loaded.seg.source
    if src is None or not src.instances:
        return None
    return src.instances[0].sop_class_uid or None


def _evidence(seg: Segmentation) -> list:
    """One small dataset per source image (UIDs as the segmentation references them, which
    includes UIDs assigned to images that had blank ones), for the SR's evidence lists."""
    from pydicom.dataset import Dataset

    from ..dicom.derived import source_header

    src = seg.source
    if src is None or not src.study_instance_uid or not src.series_instance_uid:
        return []
    header = source_header(src)  # raw bytes from a series or a SEG, or a pydicom Dataset
    out = []
    for inst in {i.sop_instance_uid: i for i in src.instances}.values():
        ds = Dataset()
        ds.update(header)
        ds.StudyInstanceUID = src.study_instance_uid
        ds.SeriesInstanceUID = src.series_instance_uid
        ds.SOPClassUID = inst.sop_class_uid
        ds.SOPInstanceUID = inst.sop_instance_uid
        out.append(ds)
    return out
