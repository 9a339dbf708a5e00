"""A folder of mask NIfTIs (TotalSegmentator's ``segmentations/``) read as one segmentation.

TotalSegmentator writes one ``<class>.nii.gz`` per class, all on the input image's grid, and
writes every class's file even when the class is absent (an all-zero mask). Here each file is one
segment: its non-zero voxels, named by the file name without ``.nii`` / ``.nii.gz``; masks that
overlap go into further layers (greedy first fit, as :meth:`Segmentation.from_masks`). Each file
is read by the NIfTI reader and put on the reference grid with the same checks as a single NIfTI
input (:func:`segbridge.geometry.align_array`).

Decisions:

- Empty masks are left out by default, with one note naming them: the project's viewer rules
  (OHIF-EMPTY-SEGMENT, SLICER-EMPTY-SEGMENT) warn about empty segments, and a TotalSegmentator
  folder has dozens of them. ``keep_empty=True`` keeps them as empty segments.
- Files whose names do not end in ``.nii`` / ``.nii.gz`` (TotalSegmentator's ``statistics.json``
  and previews, ``.DS_Store``) and sub-folders are ignored with one note naming them; a file named
  ``.nii.gz`` that is not NIfTI is refused by the reader, naming it.
- A symbolic link that resolves outside the folder is refused (like a detached NRRD header's data
  file, :mod:`segbridge.formats.nrrd_reader`) unless ``allow_outside``.
- Segment numbers: TotalSegmentator's class value order when every name is one of its classes
  (the built-in map then gives SNOMED CT codes), else file-name order; 1..N without gaps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .colors import default_color
from .errors import InvalidInputError, Report
from .geometry import align_array
from .labels import LabelMap, totalsegmentator
from .model import Segment, Segmentation, label_dtype, place_first_fit

SUFFIXES = (".nii.gz", ".nii")


def stem(path: Path) -> str:
    """The file name without ``.nii`` / ``.nii.gz`` (any case)."""
    name = path.name
    for s in SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def mask_files(folder: str | os.PathLike, *, allow_outside: bool = False,
               report: Report | None = None) -> list[Path]:
    """The NIfTI files of ``folder`` in name order; other entries are noted and skipped.

    Raises
    ------
    InvalidInputError
        No NIfTI file, two files with one name (``a.nii`` and ``a.nii.gz``), or a symbolic
        link out of the folder.
    """
    report = report if report is not None else Report()
    d = Path(folder)
    base = d.resolve()
    files: list[Path] = []
    ignored: list[str] = []
    for p in sorted(d.iterdir(), key=lambda q: q.name):
        if p.is_symlink() and not allow_outside:
            target = p.resolve()
            if not target.is_relative_to(base):
                raise InvalidInputError(f"{p}: symbolic link to {target}, outside the folder "
                                        f"{d}; refused (copy the file into the folder)")
        if p.name.startswith(".") or not p.name.lower().endswith(SUFFIXES) or not p.is_file():
            ignored.append(p.name + ("/" if p.is_dir() else ""))
            continue
        files.append(p)
    if ignored:
        report.note(f"{d}: ignored {len(ignored)} {'entry' if len(ignored) == 1 else 'entries'} "
                    "that are not NIfTI files: "
                    f"{_listed(ignored)}")
    if not files:
        raise InvalidInputError(f"{d}: no NIfTI masks (.nii, .nii.gz) in the folder")
    seen: dict[str, Path] = {}
    for p in files:
        if stem(p) in seen:
            raise InvalidInputError(f"{p}: same segment name as {seen[stem(p)].name}")
        seen[stem(p)] = p
    return files


def _listed(names: list[str], most: int = 8) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def read_mask_folder(folder: str | os.PathLike, *, reference=None,
                     labels: LabelMap | None = None, resample: bool = False,
                     report: Report | None = None, keep_empty: bool = False,
                     allow_outside: bool = False) -> tuple[Segmentation, list[Path]]:
    """One segmentation from a folder of 3-D mask NIfTIs, and the files read.

    ``labels`` names and codes segments by file name; without it, the built-in TotalSegmentator
    map is used when every file name is one of its classes.

    Raises
    ------
    InvalidInputError
        See :func:`mask_files`; a 4-D file, a file that is not NIfTI or holds no labels.
    GeometryMismatchError
        A mask is not on the reference grid (or, without one, on the first mask's grid).
    """
    from .formats.nifti import read_nifti
    from .formats.volumes import on_target

    report = report if report is not None else Report()
    files = mask_files(folder, allow_outside=allow_outside, report=report)
    names = [stem(p) for p in files]
    if labels is None:
        ts = totalsegmentator()
        if all(n in ts.by_name for n in names):
            labels = ts
            report.note("every file name is a TotalSegmentator class: SNOMED CT codes from "
                        "TotalSegmentator's mapping")
    if labels is not None and labels.by_value and all(n in labels.by_name for n in names):
        order = {lab.name: v for v, lab in labels.by_value.items()}
        files = sorted(files, key=lambda p: (order.get(stem(p), 1 << 20), stem(p)))
    if labels is not None:
        unknown = [n for n in names if labels.for_name(n) is None]
        if unknown:
            report.warn(f"{len(unknown)} file name(s) not in {labels.source}, kept uncoded: "
                        f"{_listed(unknown)}")
    grid = reference.grid if reference is not None else None
    dtype = label_dtype(len(files))
    layers: list[np.ndarray] = []
    bindings: dict[int, tuple[int, int]] = {}
    segments: list[Segment] = []
    empty: list[str] = []
    for i, p in enumerate(files):
        vols, _ = read_nifti(p, fractional=False, report=report)
        if len(vols) != 1:
            raise InvalidInputError(f"{p}: {len(vols)} volumes; a mask folder holds one 3-D "
                                    "mask per file")
        vol = vols[0]
        if grid is None:
            grid = vol.grid
        if vol.grid is grid:
            data = vol.data
        elif reference is not None and not reference.source.has_geometry:
            data = on_target(vol, grid, reference.source, resample, report)  # frame space
        else:
            data = align_array(vol.data, vol.grid, grid, resample=resample, what=str(p),
                               report=report)
        mask = data != 0
        if not mask.any():
            empty.append(stem(p))
            if not keep_empty:
                continue
        number = len(segments) + 1
        label = labels.for_name(stem(p)) if labels is not None else None
        seg = label.segment(number, i, label=stem(p)) if label is not None else \
            Segment(number, stem(p), color=default_color(i))
        segments.append(seg)
        bindings[number] = (place_first_fit(layers, mask, number, grid.shape, dtype), number)
    if empty:
        report.note(f"{len(empty)} of {len(files)} masks are empty, "
                    f"{'kept as empty segments' if keep_empty else 'left out'}: {_listed(empty)}")
    if not segments:
        raise InvalidInputError(f"{folder}: every mask is empty; nothing to convert")
    if not layers:
        layers.append(np.zeros(grid.shape, dtype))
    if len(layers) > 1:
        report.note(f"overlapping masks kept in {len(layers)} layers")
    source = reference.source if reference is not None else None
    return Segmentation(grid, segments, layers=layers, bindings=bindings, report=report,
                        source=source), files
