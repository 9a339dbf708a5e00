"""Read and write any supported format; the CLI, batch, repair and the library API all come here.

Formats are declared once in :mod:`segbridge.registry` (suffixes, content test, reader,
writer); ``read`` picks the reader by content, then suffix, and ``write`` picks the writer by
the output's suffix. Every write goes to a temporary name first and is renamed when complete,
and no output may land on a file the command read (:mod:`segbridge.outputs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from . import registry
from .errors import InvalidInputError, Report, UnsupportedError
from .geometry import Grid, resample_nearest
from .model import Segment, Segmentation
from .outputs import files_read, reference_copy_dir, refuse_overwrite, sidecar_of, tmp_name
from .reference import ReferenceLike, load_reference
from .series import ReferenceImage

__all__ = ["read", "write", "from_array", "format_of", "is_rtstruct", "load_reference",
           "ReferenceImage"]

PathLike = str | os.PathLike
SegType = Literal["auto", "binary", "fractional", "labelmap"]
ProfileName = Literal["ohif", "slicer", "archive", "dense"]
Compression = Literal["none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame"]
ContourFill = Literal["centre", "rt-utils"]
CONTOUR_FILLS = ("centre", "rt-utils")  # rt.contours.RULES, without importing the contour engine


def format_of(path: PathLike, *, for_writing: bool = False) -> str:
    """The format family of a path: 'dicom', 'nifti', 'seg.nrrd' or 'nrrd'.

    An existing input is recognised by content, then by suffix; an output by its suffix.
    """
    if for_writing or not Path(path).is_file():
        return registry.for_output(path).family
    return registry.detect(path).family


def is_rtstruct(path: PathLike) -> bool:
    """True for an RT Structure Set file (by SOP class)."""
    return registry.detect(path).name == "rtstruct"


def read(inputs: PathLike | Sequence[PathLike], *, reference: ReferenceLike = None,
         meta: PathLike | dict | None = None, resample: bool = False, strict: bool = False,
         fractional: bool | str | None = None, series_uid: str | None = None,
         assign_uids: bool = False, report: Report | None = None,
         contour_fill: ContourFill = "centre", allow_outside: bool = False,
         labels: PathLike | dict | None = None, keep_empty: bool = False) -> Segmentation:
    """Read segmentation file(s) into one model, on the reference grid when one is given.

    Parameters
    ----------
    inputs
        One file (DICOM SEG, RTSTRUCT, NIfTI, NRRD, seg.nrrd) or several label volumes, which
        are combined like dcmqi does (their segments may overlap); or one folder of mask NIfTIs
        (TotalSegmentator's ``segmentations/``: one segment per file, :mod:`segbridge.folder`).
    reference
        The image series (folder, files, DICOMweb series URL or ReferenceImage); the result
        is put on its grid and references its instances.
    meta
        dcmqi segment metadata (a JSON file or its parsed dict). Without it, a ``.json``
        sidecar next to a single volume input is used when present.
    resample
        Allow nearest-neighbour resampling onto the reference grid.
    strict
        Warnings become errors.
    fractional
        Read volumes as probabilities (0..1); None follows the file's own tag; ``"auto"``
        reads float volumes as probabilities and integer ones as labels.
    series_uid, assign_uids
        Which series of a folder; accept images with blank study / series UIDs.
    report
        Collects warnings and decisions (default: a new one, kept as ``seg.report``).
    contour_fill
        How RTSTRUCT contours become voxels: ``"centre"`` (the voxel centre is inside) or
        ``"rt-utils"`` (rt-utils' masks).
    allow_outside
        Let a detached NRRD header name a data file outside its own folder, or a mask
        folder hold symbolic links out of it (refused by default: segbridge reads only files
        the user named).
    labels
        A label map (CSV or JSON file, dict, or ``"totalsegmentator"`` for TotalSegmentator's
        v2 class map): label values (of a multi-label volume) or file names (of a mask folder)
        -> names, codes, colours (:mod:`segbridge.labels`). Not with ``meta``.
    keep_empty
        Keep the empty masks of a mask folder as empty segments (default: left out, noted).

    Raises
    ------
    InvalidInputError
        A file is missing, broken or inconsistent (one line naming it).
    GeometryMismatchError
        The segmentation does not lie on the reference grid and ``resample`` is off.
    UnsupportedError
        A valid input that segbridge does not handle.
    """
    report = report if report is not None else Report(strict=strict)
    if contour_fill not in CONTOUR_FILLS:
        raise InvalidInputError(f"contour fill must be one of {', '.join(CONTOUR_FILLS)}, not "
                                f"{contour_fill!r}")
    if not isinstance(inputs, (str, os.PathLike, list, tuple)) or (
            isinstance(inputs, (list, tuple)) and
            not all(isinstance(p, (str, os.PathLike)) for p in inputs)):
        raise InvalidInputError(f"read takes file paths, not {type(inputs).__name__} (an array "
                                "goes through segbridge.from_array)")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise InvalidInputError("no input files")
    for p in paths:
        if not p.exists():
            raise InvalidInputError(f"{p}: no such file")
        if p.is_dir() and len(paths) > 1:
            raise InvalidInputError(f"{p}: is a folder; a folder of masks is read on its own")
    if meta is not None and labels is not None:
        raise InvalidInputError("give segment metadata (--meta) or a label map (--labels), "
                                "not both")
    from .labels import load_labels

    label_map = load_labels(labels)
    ref = load_reference(reference, series_uid=series_uid, assign_uids=assign_uids,
                         report=report)
    if paths[0].is_dir():
        if meta is not None:
            raise InvalidInputError(f"{paths[0]}: a mask folder takes --labels, not --meta")
        from .folder import read_mask_folder

        seg, files = read_mask_folder(paths[0], reference=ref, labels=label_map,
                                      resample=resample, report=report, keep_empty=keep_empty,
                                      allow_outside=allow_outside)
        extra = [labels] if isinstance(labels, (str, os.PathLike)) and Path(labels).is_file() \
            else []
        seg.read_from = tuple(files_read(files + extra, reference=ref))
        return seg
    formats = [registry.detect(p) for p in paths]
    options = registry.ReadOptions(reference=ref, report=report, strict=strict,
                                   resample=resample, fractional=fractional,
                                   contour_fill=contour_fill, allow_outside=allow_outside)
    objects = [f for f in formats if f.kind == "object"]
    if objects:
        if label_map is not None:
            raise UnsupportedError(f"{paths[0]}: a label map applies to label volumes and mask "
                                   f"folders, not to a {objects[0].description}")
        if len(paths) > 1:
            raise UnsupportedError(f"{paths[0]}: one {objects[0].description} at a time; "
                                   "convert the other inputs separately")
        seg = formats[0].read(paths[0], options)
        seg.read_from = tuple(files_read(paths, meta=meta, reference=ref))
        return seg
    from .formats import dcmqi_json
    from .formats.volumes import assemble

    volumes = []
    info: dict = {}
    for p, fmt in zip(paths, formats, strict=True):
        vols, got = fmt.read(p, options)
        if label_map is not None:
            for vol in vols:
                _apply_labels(vol, label_map)
        volumes.extend(vols)
        info = got or info
    meta_doc = None
    if isinstance(meta, dict):
        meta_doc = meta
    elif meta is not None:
        meta_doc = dcmqi_json.read_meta(meta)
    elif len(paths) == 1 and label_map is None:  # a label map replaces the sidecar
        side = sidecar_of(paths[0])
        if side is not None and side.exists():
            meta_doc = dcmqi_json.read_meta(side)
            report.note(f"segment metadata read from {side.name}")
    seg = assemble(volumes, meta=meta_doc, grid=ref.grid if ref else None, resample=resample,
                   report=report, source=ref.source if ref else None,
                   fractional_type=info.get("fractional_type", "PROBABILITY"))
    if info.get("max") and seg.is_fractional:
        seg.max_fractional_value = int(info["max"])
    seg.read_from = tuple(files_read(paths, meta=meta, reference=ref))
    return seg


def _apply_labels(vol, label_map) -> None:
    """Describe the label values present in ``vol`` from a label map (its segments, by value)."""
    from .model import present_values

    if vol.fractional:
        raise InvalidInputError(f"{vol.name}: a label map describes label values, not "
                                "probabilities")
    described = dict((v, s) for s, v in (vol.segments or []))
    for v in present_values(vol.data):  # values it does not describe: assemble warns
        label = label_map.for_value(v)
        if label is not None:
            described[v] = label.segment(v, v - 1)
    vol.segments = [(s, v) for v, s in sorted(described.items())]


def read_from(seg: Segmentation) -> tuple[Path, ...]:
    """The files ``seg`` was read or derived from (inputs, sidecars, metadata, the series its
    source came from): outputs may not replace them."""
    source_files = tuple(Path(p) for p in getattr(seg.source, "files", ()) or ())
    return seg.read_from + source_files


def from_array(array: np.ndarray, reference: ReferenceLike = None, *, grid: Grid | None = None,
               segments: Sequence[Segment] | None = None,
               fractional: bool = False) -> Segmentation:
    """A segmentation from a numpy array on a reference series (or an explicit grid).

    Parameters
    ----------
    array
        A [z, y, x] label array, or [n, z, y, x] stacked masks (one per segment, they may
        overlap), or with ``fractional`` [n, z, y, x] probabilities in [0, 1].
    reference
        The image series the array lies on (gives the grid and the instance references).
    grid
        The grid, when there is no reference series.
    segments
        Describe the label values (3-D) or the stacked masks in order (4-D); default: one
        unnamed segment per value or mask.
    fractional
        The array holds probabilities.

    Raises
    ------
    InvalidInputError
        Neither reference nor grid, or an array that does not fit the grid.
    """
    from .colors import default_color
    from .formats.volumes import as_fraction, as_labels

    ref = load_reference(reference)
    if ref is None and grid is None:
        raise InvalidInputError("from_array needs a reference series or a grid")
    g = ref.grid if ref is not None else grid
    kw = dict(source=ref.source if ref is not None else None)  # its files: SourceRef.files
    if segments is not None and not all(isinstance(s, Segment) for s in segments):
        raise InvalidInputError("segments must be segbridge.Segment objects (e.g. "
                                "Segment(1, 'liver'))")
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
                      split_overlaps: bool | None, reference, force: bool, report: Report,
                      collect: list | None = None):
    """Validation for write(): model findings now, file findings on each temporary file
    (appended to ``collect`` as (index of the file or None, Finding) when given)."""
    from .errors import ValidationFailed
    from .validate import model_findings, validate

    checked = [0]

    def fail_or_warn(findings, would: str) -> None:
        if collect is not None:
            collect.extend((None if would else checked[0], f) for f in findings)
        errors = [f for f in findings if f.severity == "error"]
        if errors and not force:
            e = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValidationFailed(
                f"{target}: the output {would + ' fail' if would else 'fails'} validation for "
                f"profile {profile}: "
                f"{e.rule} {e.where}: {e.message}{more}; fix: {e.hint} Nothing written "
                "(force writes anyway).", errors)
        for f in findings:
            if f.severity in ("warning", "error"):  # errors reach here only with force
                report.warn(f"{target}: {f.rule} {f.where}: {f.message}")

    fail_or_warn(model_findings(seg, profile, type=type, split_overlaps=split_overlaps),
                 "would")

    def check(path: Path) -> None:
        fail_or_warn(validate(path, reference=reference, profile=profile, pixels=False).findings,
                     "")
        checked[0] += 1

    return check


def write(seg: Segmentation, path: PathLike, *, type: SegType = "auto",
          profile: ProfileName = "ohif", compression: Compression | None = None,
          split_overlaps: bool | None = None, series_description: str | None = None,
          series_number: int | None = None, resample: bool = False, sidecar: bool = True,
          report: Report | None = None, progress: Callable[[int, int], None] | None = None,
          validate: bool = True, force: bool = False, reference: ReferenceImage | None = None,
          to: Literal["seg", "rtstruct"] = "seg",
          protect: Sequence[PathLike] = (), findings: list | None = None) -> list[Path]:
    """Write ``seg`` in the format named by the suffix of ``path``; returns the files written.

    A DICOM SEG is validated against the profile before it is put in place (structure rules on
    the written file, pixel rules from the model); an error-level finding raises
    ValidationFailed and nothing is written, unless ``force`` (findings then become warnings).
    No output may replace a file the segmentation was read from, a file of ``reference``, or
    a file in ``protect``: ``force`` does not change that.

    Parameters
    ----------
    seg
        The segmentation.
    path
        ``.dcm`` (DICOM SEG, or RTSTRUCT with ``to="rtstruct"``), ``.nii`` / ``.nii.gz``,
        ``.nrrd`` or ``.seg.nrrd``. A SEG split into several series adds ``NAME-2.dcm``...
    type, profile, compression, split_overlaps
        DICOM SEG encoding (see the README's profile table); ignored for volume formats
        except that ``type="labelmap"`` refuses overlapping segments.
    series_description, series_number
        Written into the output (DICOM, and the sidecar of volumes).
    resample
        Put a stack with uneven slice gaps on an evenly spaced grid (NIfTI / NRRD need one).
    sidecar
        Write the dcmqi JSON sidecar next to a volume output.
    report
        Collects what the writer decided (default ``seg.report``).
    progress
        Called with (done, total) while frames are encoded.
    validate, force
        Validate a SEG before it is put in place; write despite error findings.
    reference
        The image series (enables the reference rules of validation).
    to
        What a ``.dcm`` output is: ``"seg"`` or ``"rtstruct"``.
    protect
        More files that must not be written over (the command's inputs).
    findings
        A DICOM SEG's validation findings are appended here as (index of the written file,
        Finding); index None for findings on the model before writing. Lets a caller report
        them without validating the files a second time.

    Raises
    ------
    InvalidInputError
        Bad output name or folder, an output that would replace an input, or data the
        format cannot hold.
    ValidationFailed
        The SEG fails validation for the profile (and not ``force``).
    """
    report = report if report is not None else seg.report
    target = Path(path)
    if to not in ("seg", "rtstruct"):
        raise InvalidInputError(f"--to must be seg or rtstruct, got {to!r}")
    if target.is_dir():
        raise InvalidInputError(f"{target}: is a folder; give an output file name")
    fmt = registry.for_output(target, to=to)
    if to == "rtstruct" and fmt.family != "dicom":
        raise InvalidInputError(f"{target}: an RTSTRUCT is a DICOM file; name it .dcm")
    if not target.parent.is_dir():
        raise InvalidInputError(f"{target}: output folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{target}: output folder {target.parent} is not writable")
    side = sidecar_of(target) if sidecar and fmt.family != "dicom" else None
    protected = [*read_from(seg), *files_read(reference=reference), *map(Path, protect)]
    refuse_overwrite([target] + ([side] if side else []), protected,
                     split=target if fmt.name == "seg" else None,
                     folder=reference_copy_dir(target))
    if fmt.name == "rtstruct":
        from .rt.writer import write_rtstruct

        return [write_rtstruct(seg, target, series_description=series_description,
                               series_number=series_number, report=report)]
    if fmt.name == "seg":
        from .dicom.seg_writer import write_seg
        from .profiles import get_profile

        if isinstance(profile, str):
            get_profile(profile)  # unknown names listed as the writer's, not validate's
        check = None
        if validate:
            check = _validating_check(seg, target, profile, type, split_overlaps, reference,
                                      force, report, findings)
        return write_seg(seg, target, type=type, profile=profile, compression=compression,
                         split_overlaps=split_overlaps, series_description=series_description,
                         series_number=series_number, report=report, progress=progress,
                         check=check)
    if type == "labelmap" and seg.has_overlap():
        raise InvalidInputError(f"{target}: segments overlap, so they cannot share one label "
                                "map (write a .seg.nrrd or a 4-D NIfTI, or --type binary)")
    if series_description:
        seg = seg.copy_meta(series_description=series_description)
    if series_number:
        seg = seg.copy_meta(series_number=series_number)
    if not seg.grid.is_regular and resample:
        seg = resampled_regular(seg, report)
    if not seg.is_fractional and len(seg.layers) > 1 and not seg.has_overlap():
        seg = seg.compacted()
    if seg.frame_space and fmt.name != "nifti":
        report.warn(f"{target.name}: frame-referenced (2-D / cine) segmentation; {fmt.name} "
                    "has no way to say 'no patient space', so the file gets the nominal grid "
                    "(identity directions, frame k at z = k); it is placed by index again on "
                    "the 2-D reference")
    from .formats.dcmqi_json import write_meta

    tmp, side_tmp = tmp_name(target), (tmp_name(side) if side else None)
    try:
        fmt.write(seg, tmp)
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
