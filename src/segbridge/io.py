"""Read and write any supported format; the CLI and the library API both come through here.

The format is chosen by content for DICOM and by suffix for volumes: ``.dcm`` (or any DICOM SEG)
-> DICOM SEG, ``.nii`` / ``.nii.gz`` -> NIfTI, ``.seg.nrrd`` -> Slicer segmentation, ``.nrrd`` ->
NRRD labelmap. Every write goes to a temporary name first and is renamed when complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import InvalidInputError, Report, UnsupportedError
from .geometry import Grid, resample_nearest
from .model import Segment, Segmentation
from .series import ReferenceImage, read_series

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr")


def format_of(path: str | os.PathLike, *, for_writing: bool = False) -> str:
    """'dicom', 'nifti', 'seg.nrrd' or 'nrrd' for a path (by suffix, then by content)."""
    name = Path(path).name.lower()
    if name.endswith((".nii.gz", ".nii")):
        return "nifti"
    if name.endswith(".seg.nrrd"):
        return "seg.nrrd"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".dcm", ".dicom")) or for_writing is False and _is_dicom(path):
        return "dicom"
    if for_writing:
        raise InvalidInputError(f"{path}: cannot tell the output format from the name; use "
                                ".dcm, .nii, .nii.gz, .nrrd or .seg.nrrd")
    raise InvalidInputError(f"{path}: unknown format (not DICOM, NIfTI or NRRD)")


def _is_dicom(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def load_reference(reference, *, series_uid: str | None = None, assign_uids: bool = False,
                   report: Report | None = None) -> ReferenceImage | None:
    """A ReferenceImage from a path (folder, file, list), a DICOMweb series URL, or as is."""
    if reference is None or isinstance(reference, ReferenceImage):
        return reference
    from .web.client import is_url

    if is_url(reference):
        from .web.client import default_options
        from .web.series import read_remote_series

        return read_remote_series(reference, options=default_options(), series_uid=series_uid,
                                  assign_uids=assign_uids, report=report)
    return read_series(reference, series_uid=series_uid, assign_uids=assign_uids, report=report)


def read(inputs: str | os.PathLike | Sequence[str | os.PathLike], *, reference=None,
         meta: str | os.PathLike | dict | None = None, resample: bool = False,
         strict: bool = False, fractional: bool | None = None, series_uid: str | None = None,
         assign_uids: bool = False, report: Report | None = None,
         contour_fill: str = "centre") -> Segmentation:
    """Read segmentation file(s) into one model, on the reference grid when one is given.

    Several volume files (NIfTI / NRRD) are combined like dcmqi does; their segments may
    overlap. ``meta`` is dcmqi JSON; without it, a ``.json`` sidecar next to a single volume
    input is used when present. ``contour_fill`` picks how RTSTRUCT contours become voxels:
    ``"centre"`` (voxel centre inside) or ``"rt-utils"`` (rt-utils' masks).
    """
    report = report if report is not None else Report(strict=strict)
    from .rt.contours import RULES

    if contour_fill not in RULES:
        raise InvalidInputError(f"contour fill must be one of {', '.join(RULES)}, not "
                                f"{contour_fill!r}")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise InvalidInputError("no input files")
    for p in paths:
        if not p.exists():
            raise InvalidInputError(f"{p}: no such file")
        if p.is_dir():
            raise InvalidInputError(f"{p}: is a folder; give segmentation files (a folder is "
                                    "only accepted as --reference)")
    ref = load_reference(reference, series_uid=series_uid, assign_uids=assign_uids,
                         report=report)
    formats = [format_of(p) for p in paths]
    if "dicom" in formats:
        if len(paths) > 1:
            raise UnsupportedError("one DICOM SEG or RTSTRUCT at a time; convert the others "
                                   "separately")
        if is_rtstruct(paths[0]):
            from .rt.reader import read_rtstruct

            return read_rtstruct(paths[0], ref, report=report, strict=strict,
                                 fill=contour_fill)
        from .dicom.seg_reader import read_seg

        return read_seg(paths[0], ref, resample=resample, strict=strict, report=report)
    from .formats import dcmqi_json
    from .formats.volumes import assemble

    volumes = []
    info: dict = {}
    for p, fmt in zip(paths, formats, strict=True):
        if fmt == "nifti":
            from .formats.nifti import read_nifti

            vols, info = read_nifti(p, fractional=fractional, report=report)
        elif fmt == "seg.nrrd" or (fmt == "nrrd" and _has_segment_keys(p)):
            from .formats.nrrd import read_seg_nrrd

            vols, _ = read_seg_nrrd(p, report=report)
        else:
            from .formats.nrrd import read_nrrd

            vols = read_nrrd(p, report=report, fractional=bool(fractional))
        volumes.extend(vols)
    meta_doc = None
    if isinstance(meta, dict):
        meta_doc = meta
    elif meta is not None:
        meta_doc = dcmqi_json.read_meta(meta)
    elif len(paths) == 1:
        side = dcmqi_json.sidecar_path(paths[0])
        if side.exists():
            meta_doc = dcmqi_json.read_meta(side)
            report.note(f"segment metadata read from {side.name}")
    seg = assemble(volumes, meta=meta_doc, grid=ref.grid if ref else None, resample=resample,
                   report=report, source=ref.source if ref else None,
                   fractional_type=info.get("fractional_type", "PROBABILITY"))
    if info.get("max") and seg.is_fractional:
        seg.max_fractional_value = int(info["max"])
    return seg


def is_rtstruct(path: str | os.PathLike) -> bool:
    """True for an RT Structure Set file (by SOP class)."""
    from .dicom.parse import sop_class_of
    from .rt.reader import RTSTRUCT_SOP_CLASS

    return sop_class_of(path) == RTSTRUCT_SOP_CLASS


def _has_segment_keys(path: Path) -> bool:
    try:
        with open(path, "rb") as fp:
            head = fp.read(65536)
    except OSError:
        return False
    return b"Segment0_" in head


def from_array(array: np.ndarray, reference=None, *, grid: Grid | None = None,
               segments: Sequence[Segment] | None = None,
               fractional: bool = False) -> Segmentation:
    """A segmentation from a numpy array on a reference series (or an explicit grid).

    ``array`` is a [z, y, x] label array, or [n, z, y, x] stacked masks (one per segment, may
    overlap), or with ``fractional`` [n, z, y, x] probabilities in [0, 1]. ``segments`` describe
    the label values (3-D) or the stacked masks in order (4-D).
    """
    from .colors import default_color
    from .formats.volumes import as_fraction, as_labels

    ref = load_reference(reference)
    if ref is None and grid is None:
        raise InvalidInputError("from_array needs a reference series or a grid")
    g = ref.grid if ref is not None else grid
    kw = dict(source=ref.source if ref is not None else None)
    arr = np.asarray(array)
    if arr.shape == g.shape and not fractional:
        return Segmentation.from_labelmap(g, as_labels(arr, "array"), segments, **kw)
    if arr.ndim == 3 and arr.shape == g.shape:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != g.shape:
        raise InvalidInputError(f"array shape {arr.shape} does not fit the grid {g.shape} "
                                "([z, y, x] or [n, z, y, x])")
    segs = list(segments) if segments is not None else [
        Segment(i + 1, color=default_color(i)) for i in range(arr.shape[0])]
    if len(segs) != arr.shape[0]:
        raise InvalidInputError(f"{len(segs)} segments given for {arr.shape[0]} stacked arrays")
    if fractional:
        frac = {s.number: as_fraction(a, f"array[{i}]") for i, (s, a) in
                enumerate(zip(segs, arr, strict=True))}
        return Segmentation(g, segs, fractional=frac, **kw)
    return Segmentation.from_masks(g, [(s, as_labels(a, f"array[{i}]") != 0) for i, (s, a) in
                                       enumerate(zip(segs, arr, strict=True))], **kw)


def regular_grid(grid: Grid) -> Grid:
    """The evenly spaced grid spanning an uneven stack, at its smallest slice gap."""
    pos = grid.slice_positions() @ grid.normal
    gaps = np.diff(pos)
    step = float(np.min(gaps[gaps > 0]))
    n = int(round((pos[-1] - pos[0]) / step)) + 1
    return Grid((n, *grid.shape[1:]), grid.slice_positions()[0],
                (step, grid.spacing[1], grid.spacing[2]),
                np.column_stack([grid.direction[:, 0], grid.direction[:, 1], grid.normal]),
                grid.frame_of_reference_uid)


def resampled_regular(seg: Segmentation, report: Report) -> Segmentation:
    """Nearest-neighbour copy of ``seg`` on an evenly spaced grid (for NIfTI/NRRD)."""
    g = regular_grid(seg.grid)
    report.warn(f"resampled with nearest neighbour onto an evenly spaced grid ({g.describe()})")
    if seg.is_fractional:
        frac = {n: resample_nearest(a, seg.grid, g) for n, a in seg.fractional.items()}
        return seg.copy_meta(grid=g, fractional=frac, source=None)
    layers = [resample_nearest(layer, seg.grid, g) for layer in seg.layers]
    return seg.copy_meta(grid=g, layers=layers, source=None)


def _tmp_name(target: Path) -> Path:
    name = target.name
    suffix = next((s for s in VOLUME_SUFFIXES + (".dcm", ".json") if name.lower().endswith(s)),
                  "")
    return target.with_name(f".{name[: len(name) - len(suffix)]}.{os.getpid()}.tmp{suffix}")


def _sidecar_meta(seg: Segmentation) -> dict:
    from .formats.dcmqi_json import build_meta

    if seg.is_fractional:
        groups = [[(s, 1)] for s in seg.segments]
    else:
        groups = [[] for _ in seg.layers]
        for s in seg.segments:
            layer, value = seg.bindings[s.number]
            groups[layer].append((s, value))
        for g in groups:
            g.sort(key=lambda item: item[1])
    return build_meta(groups, series_description=seg.series_description,
                      series_number=seg.series_number, content_label=seg.content_label,
                      content_description=seg.content_description,
                      content_creator=seg.content_creator)


def _validating_check(seg: Segmentation, target: Path, profile: str, type: str,
                      split_overlaps: bool | None, reference, force: bool, report: Report):
    """Validation for write(): model findings now, file findings on each temporary file."""
    from .errors import ValidationFailed
    from .validate import model_findings, validate

    def fail_or_warn(findings, would: str) -> None:
        errors = [f for f in findings if f.severity == "error"]
        if errors and not force:
            e = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValidationFailed(
                f"{target}: the output {would} fail validation for profile {profile}: "
                f"{e.rule} {e.where}: {e.message}{more}; fix: {e.hint} Nothing written "
                "(force writes anyway).", errors)
        for f in findings:
            if f.severity in ("warning", "error"):  # errors reach here only with force
                report.warn(f"{f.rule} {f.where}: {f.message}")

    fail_or_warn(model_findings(seg, profile, type=type, split_overlaps=split_overlaps), "would")

    def check(path: Path) -> None:
        fail_or_warn(validate(path, reference=reference, profile=profile, pixels=False).findings,
                     "does")

    return check


def write(seg: Segmentation, path: str | os.PathLike, *, type: str = "auto",
          profile: str = "ohif", compression: str | None = None,
          split_overlaps: bool | None = None, series_description: str | None = None,
          series_number: int | None = None, resample: bool = False, sidecar: bool = True,
          report: Report | None = None, progress=None, validate: bool = True,
          force: bool = False, reference=None, to: str = "seg") -> list[Path]:
    """Write ``seg`` in the format named by the suffix of ``path``; returns the files written.

    A ``.dcm`` output is a DICOM SEG, or an RT Structure Set with ``to="rtstruct"``.

    A DICOM SEG is validated against the profile before it is put in place (structure rules on
    the written file, pixel rules from the model); an error-level finding raises
    ValidationFailed and nothing is written, unless ``force`` (findings then become warnings in
    the report). ``reference`` (a ReferenceImage) enables the reference rules.
    """
    report = report if report is not None else seg.report
    target = Path(path)
    fmt = format_of(target, for_writing=True)
    if not target.parent.exists():
        raise InvalidInputError(f"{target}: output folder {target.parent} does not exist")
    if to not in ("seg", "rtstruct"):
        raise InvalidInputError(f"--to must be seg or rtstruct, got {to!r}")
    if to == "rtstruct":
        if fmt != "dicom":
            raise InvalidInputError(f"{target}: an RTSTRUCT is a DICOM file; name it .dcm")
        from .rt.writer import write_rtstruct

        return [write_rtstruct(seg, target, series_description=series_description,
                               series_number=series_number, report=report)]
    if fmt == "dicom":
        from .dicom.seg_writer import write_seg

        check = None
        if validate:
            check = _validating_check(seg, target, profile, type, split_overlaps, reference,
                                      force, report)
        return write_seg(seg, target, type=type, profile=profile, compression=compression,
                         split_overlaps=split_overlaps, series_description=series_description,
                         series_number=series_number, report=report, progress=progress,
                         check=check)
    if type == "labelmap" and seg.has_overlap():
        raise InvalidInputError("segments overlap, so they cannot share one label map")
    if series_description:
        seg = seg.copy_meta(series_description=series_description)
    if series_number:
        seg = seg.copy_meta(series_number=series_number)
    if not seg.grid.is_regular and resample:
        seg = resampled_regular(seg, report)
    if not seg.is_fractional and len(seg.layers) > 1 and not seg.has_overlap():
        seg = seg.compacted()
    from .formats.dcmqi_json import sidecar_path, write_meta

    side = sidecar_path(target) if sidecar else None
    tmp, side_tmp = _tmp_name(target), (_tmp_name(side) if side else None)
    try:
        if fmt == "nifti":
            from .formats.nifti import write_nifti

            write_nifti(seg, tmp)
        elif fmt == "seg.nrrd":
            from .formats.nrrd import write_seg_nrrd

            write_seg_nrrd(seg, tmp)
        else:
            from .formats.nrrd import write_nrrd

            write_nrrd(seg, tmp)
        if side is not None:
            write_meta(_sidecar_meta(seg), side_tmp)
        os.replace(tmp, target)
        if side is not None:
            os.replace(side_tmp, side)
    finally:
        for t in (tmp, side_tmp):
            if t is not None and t.exists():
                t.unlink()
    return [target] + ([side] if side is not None else [])
