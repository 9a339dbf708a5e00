"""Every file each case of a batch may write, found before anything runs; which cases must not.

A case writes its output; a NIfTI / NRRD output also its dcmqi sidecar (``x.nii.gz`` and
``x.nrrd`` both -> ``x.json``); a DICOM SEG may be split by the profile into ``NAME-2.dcm``,
``NAME-3.dcm``, ... (:func:`segbridge.dicom.seg_writer.write_seg`); with ``assign_uids`` a
corrected copy of the reference series goes to the folder ``NAME-reference``. Paths are compared
as real paths (symlinks and ``..`` resolved), so ``same.dcm``, ``./same.dcm``,
``sub/../same.dcm``, ``/abs/out/same.dcm`` and a symlinked folder are one file; names differing
only in case are different files (as on Linux).

A case is refused (an error result naming the other case), and the others run, when

- one of its files lies outside the output folder;
- one of its files is, contains or lies inside a file or folder another case writes (both cases
  are refused);
- it would write over an input of any case: input files, their sidecars, meta files, and files
  of a reference series (a file or an existing file in a reference folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError

_SPLIT = re.compile(r"(.+)-([2-9]|[1-9][0-9]+)$")  # NAME-<n>, n >= 2
BATCH = -1  # owner of the batch's own files (results.csv, the journal)


@dataclass
class Plan:
    """What one case writes: files (real paths), whole folders, and the split-series pattern
    ``(folder, stem, suffix)`` standing for ``folder/stem-<n>suffix``, n >= 2."""

    target: Path
    files: list[Path] = field(default_factory=list)
    trees: list[Path] = field(default_factory=list)
    split: tuple[Path, str, str] | None = None


def real(path: str | os.PathLike, folders: dict[str, str] | None = None) -> Path:
    """The real path: symlinks and ``..`` resolved, missing tail components kept.

    ``folders`` caches resolved folders for one planning pass (a manifest names the same few
    folders many times)."""
    folder, name = os.path.split(os.fspath(path))
    if folders is None or name in ("", ".", "..") or os.path.islink(path):
        return Path(os.path.realpath(path))
    if folder not in folders:
        folders[folder] = os.path.realpath(folder)
    return Path(folders[folder], name)


def split_key(path: Path) -> tuple[Path, str, str] | None:
    """``(folder, stem, suffix)`` when ``path`` is named like a split file ``stem-<n>.suffix``
    (seg_writer's numbering: the stem ends at the first dot)."""
    head, dot, rest = path.name.partition(".")
    m = _SPLIT.fullmatch(head)
    return (path.parent, m.group(1), dot + rest) if m else None


def plan_case(case: dict, outdir: Path, folders: dict[str, str] | None = None) -> Plan:
    """The files ``case`` may write under ``outdir`` (a real path); InvalidInputError when its
    output is unusable or any of its files would land outside ``outdir``."""
    from .manifest import truthy
    from .outputs import reference_copy_dir, sidecar_of

    output = case["output"]
    target = real(outdir / output, folders)
    if not _inside(target, outdir):
        raise InvalidInputError(f"output {output} is outside the output folder {outdir}")
    plan = Plan(target, [target])
    side = sidecar_of(target)  # a volume's dcmqi JSON
    if side is not None:
        plan.files.append(real(side, folders))
    elif target.name.lower().endswith((".dcm", ".dicom")) and \
            (case.get("to") or "seg").lower() == "seg":
        head, dot, rest = target.name.partition(".")
        plan.split = (target.parent, head, dot + rest)
    if truthy(case.get("assign_uids", "")):
        plan.trees.append(real(reference_copy_dir(target), folders))
    for p in plan.files[1:] + plan.trees:
        if not _inside(p, outdir):
            raise InvalidInputError(f"output {output}: {p.name} would be written outside the "
                                    f"output folder {outdir} (through a symbolic link)")
    return plan


def refusals(cases: list[dict], outdir: Path, reserved: list[Path]) -> tuple[
        dict[int, Plan], dict[int, str]]:
    """Plans of the cases that may run (by manifest line) and why each other case may not.

    ``outdir`` is a real path; ``reserved`` are the batch's own files in it.
    """
    names = {c["line"]: c["case"] for c in cases}
    cache: dict[str, str] = {}  # resolved folders
    plans: dict[int, Plan] = {}
    why: dict[int, str] = {}
    for c in cases:
        try:
            plans[c["line"]] = plan_case(c, outdir, cache)
        except InvalidInputError as exc:
            why[c["line"]] = str(exc)

    def refuse(line: int, message: str) -> None:
        why.setdefault(line, message)

    owner: dict[Path, int] = {p: BATCH for p in reserved}
    splits: dict[tuple[Path, str, str], int] = {}
    for line, plan in plans.items():
        for p in plan.files + plan.trees:
            owner.setdefault(p, line)
        if plan.split is not None:
            splits.setdefault(plan.split, line)

    def who(line: int) -> str:
        return f"case {names[line]!r} (line {line})"

    def clash(line: int, p: Path, other: int, q: Path) -> str:
        """Why ``line`` writing ``p`` clashes with ``other`` writing ``q`` (``q`` is ``p`` or
        one of its folders)."""
        if other == BATCH:
            return f"writes {_rel(p, outdir)}, where the batch keeps its own {q.name}"
        if p == q:
            return f"writes {_rel(p, outdir)}, as {who(other)} does"
        return f"writes {_rel(p, outdir)} inside {_rel(q, outdir)}, which {who(other)} writes"

    for line, plan in plans.items():
        for p in plan.files + plan.trees:
            for q in (p, *p.parents):
                if q == outdir:
                    break
                other = owner.get(q)
                if other is not None and other != line:
                    refuse(line, clash(line, p, other, q))
                    if other != BATCH:
                        refuse(other, f"writes {_rel(q, outdir)}, which clashes with "
                                      f"{_rel(p, outdir)} written by {who(line)}")
                key = split_key(q)
                other = splits.get(key) if key else None
                if other is not None and other != line:
                    split_of = _rel(plans[other].target, outdir)
                    refuse(line, f"writes {_rel(p, outdir)}, a name the output {split_of} of "
                                 f"{who(other)} may be split into (overlapping segments)")
                    refuse(other, f"{split_of} may be split into {_rel(q, outdir)} "
                                  f"(overlapping segments), which {who(line)} writes")
    _refuse_input_overwrites(cases, plans, names, outdir, refuse, cache)
    return {line: p for line, p in plans.items() if line not in why}, why


def _refuse_input_overwrites(cases, plans, names, outdir, refuse, cache) -> None:
    """No case writes over an input of any case (PS: never touch an input)."""
    from .outputs import detached_data, sidecar_of
    from .web.client import is_url

    files: dict[Path, int] = {}
    folders: dict[Path, int] = {}
    for c in cases:
        paths = [*c["inputs"], c["meta"]]
        for p in c["inputs"]:
            paths += [sidecar_of(p), *detached_data(p)]
        for p in filter(None, paths):
            files.setdefault(real(p, cache), c["line"])
        ref = c["reference"]
        if ref and not is_url(ref):
            r = real(ref, cache)
            (folders if r.is_dir() else files).setdefault(r, c["line"])

    def of(line: int, other: int) -> str:
        return "of this case" if line == other else f"of case {names[other]!r} (line {other})"

    listed: dict[Path, list[Path]] = {}
    for line, plan in plans.items():
        written = list(plan.files)
        if plan.split is not None:  # split files already there would be replaced
            folder = plan.split[0]
            if folder not in listed:
                try:
                    listed[folder] = [folder / n for n in os.listdir(folder)]
                except OSError:
                    listed[folder] = []
            written += [real(p) for p in listed[folder] if split_key(p) == plan.split]
        for p in written:
            if p in files:
                refuse(line, f"would write over {p}, an input {of(line, files[p])}")
                continue
            ref = next((q for q in p.parents if q in folders), None) if folders else None
            if ref is not None and p.exists():
                refuse(line, f"would write over {p}, a file of the reference series {ref} "
                             f"{of(line, folders[ref])}")
        for t in plan.trees:
            for r, other in [*folders.items(), *files.items()]:
                if r == t or t in r.parents or (r in t.parents and r in folders):
                    refuse(line, f"would write the reference copy {_rel(t, outdir)} over or "
                                 f"into the input {r} {of(line, other)}")
                    break


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def _rel(path: Path, outdir: Path) -> str:
    try:
        return str(path.relative_to(outdir))
    except ValueError:
        return str(path)
