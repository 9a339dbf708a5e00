"""The cases of a dataset export, their ids and their folds.

Two sources:

- a batch manifest (:mod:`segbridge.manifest`, its rules and columns): ``case`` is the case id,
  ``inputs`` the SEG / RTSTRUCT (or any segmentation segbridge reads), ``reference`` the image
  series (a folder, files, or a DICOMweb series URL), ``series`` / ``contour_fill`` /
  ``assign_uids`` as for batch; the other columns are ignored;
- a folder of DICOM studies (:mod:`.studies`): one case per image series that exactly one SEG
  or RTSTRUCT references, named ``case_000``, ``case_001``, ... in the order of the series'
  (StudyInstanceUID, SeriesInstanceUID); a series referenced by several objects is one failed
  case naming them (which one was meant is not ours to guess: use a manifest).

Folds: the exported case ids, sorted, are dealt round-robin into k folds (case i is in fold
i mod k), so a case keeps its fold when others are added after it in sort order.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InvalidInputError

#: a case id becomes a file name: letters, digits, ``.``, ``_``, ``-``; not starting with ``.``
CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_case_id(case: str) -> str | None:
    """Why ``case`` cannot be a case id (None when it can)."""
    if not CASE_ID.fullmatch(case):
        return (f"case id {case!r} must be letters, digits, '.', '_' or '-' (at most 100, "
                "not starting with '.'): it becomes a file name")
    return None


def failure(case: str, source: str, message: str) -> dict:
    """A result row for a case that is left out."""
    return {"case": case, "status": "error", "message": message, "source": source}


def from_manifest(path: Path) -> tuple[list[dict], list[dict]]:
    """Cases (dicts) and failures from a batch manifest."""
    from ..manifest import read_manifest

    parsed = read_manifest(path)
    cases, failed = [], [failure(r["case"], str(path), r["message"]) for r in parsed.refused]
    for c in parsed.cases:
        problem = check_case_id(c["case"])
        if problem is None and not c["reference"]:
            problem = "no reference image series (the dataset's images come from it)"
        if problem is None and len(c["inputs"]) != 1:
            problem = "give one segmentation file (SEG or RTSTRUCT) in inputs"
        if problem:
            failed.append(failure(c["case"], str(path), f"line {c['line']}: {problem}"))
            continue
        cases.append({"case": c["case"], "inputs": c["inputs"], "reference": c["reference"],
                      "series": c["series"], "contour_fill": c["contour_fill"].lower(),
                      "assign_uids": c["assign_uids"], "source": c["inputs"][0]})
    # ids that differ only in case name one file on a case-insensitive file system
    kept, clashes = clashing(cases, lambda c: c["case"].casefold())
    for same in clashes.values():
        for c in same:
            other = next(o["case"] for o in same if o is not c)
            failed.append(failure(c["case"], str(path), f"case id {c['case']!r} differs from "
                                  f"{other!r} only in case (one file on Windows / macOS)"))
    return kept, failed


def clashing(items: list[dict], key) -> tuple[list[dict], dict[str, list[dict]]]:
    """The items whose ``key`` no other item shares, and the groups of those that share one
    (cases that would write one file: each of them fails, none is picked)."""
    groups: dict[str, list[dict]] = {}
    for it in items:
        groups.setdefault(key(it), []).append(it)
    return ([it for it in items if len(groups[key(it)]) == 1],
            {k: g for k, g in groups.items() if len(g) > 1})


def from_folder(root: Path) -> tuple[list[dict], list[dict]]:
    """Cases and failures from a folder of DICOM studies."""
    from .studies import scan

    index = scan(root)
    failed = [failure("", str(o.path), o.problem) for o in index.objects if o.series is None]
    by_series: dict[str, list] = {}
    for o in index.objects:
        if o.series is not None:
            by_series.setdefault(o.series, []).append(o)
    if not by_series and not failed:
        raise InvalidInputError(f"{root}: no SEG or RTSTRUCT found (a folder of DICOM studies "
                                "with segmentations, or a manifest)")
    cases = []
    order = sorted(by_series, key=lambda s: (index.study.get(s, ""), s))
    for i, uid in enumerate(order):
        case, objs = f"case_{i:03d}", by_series[uid]
        if len(objs) > 1:
            names = ", ".join(str(o.path) for o in objs)
            failed.append(failure(case, names, f"series {uid} has {len(objs)} segmentations "
                                               f"({names}); choose one in a manifest"))
            continue
        cases.append({"case": case, "inputs": [str(objs[0].path)],
                      "reference": [str(p) for p in index.images[uid]], "series": uid,
                      "contour_fill": "", "assign_uids": "", "source": str(objs[0].path)})
    return cases, failed


def collect(source: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """The cases of a manifest file or a folder of studies, and the ones refused already."""
    p = Path(source)
    if p.is_dir():
        return from_folder(p)
    if p.is_file():
        return from_manifest(p)
    raise InvalidInputError(f"{p}: no such manifest or folder")


def folds(case_ids: list[str], k: int) -> dict[str, int]:
    """Case id -> fold (0..k-1): sorted ids dealt round-robin."""
    if k < 2:
        return {}
    if len(case_ids) < k:
        raise InvalidInputError(f"--split {k} needs at least {k} exported cases, got "
                                f"{len(case_ids)}")
    return {c: i % k for i, c in enumerate(sorted(case_ids))}
