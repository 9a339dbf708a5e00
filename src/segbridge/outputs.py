"""Where a command writes, and the rule that no output lands on one of its inputs.

Every writer puts its file under a temporary name beside the target and renames it when it is
complete, so an interrupted write leaves nothing. Before anything is written, the files an
output brings along (the dcmqi JSON sidecar of a volume, the ``NAME-2.dcm``... series a split
SEG may add, the ``NAME-reference`` folder of ``--assign-uids``) are compared with every file
the command read (inputs, their sidecars and detached data, ``--meta``, the reference series):
a clash is refused with one line, whatever ``--force`` says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .errors import InvalidInputError

#: suffixes kept at the end of temporary names (writers pick compression by suffix)
KNOWN_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr", ".dcm", ".json", ".png",
                  ".csv")


def tmp_name(target: str | os.PathLike) -> Path:
    """The hidden name a file is written under before it is renamed to ``target``.

    ``x.nii.gz`` -> ``.x.<pid>.tmp.nii.gz``: the suffix stays (writers choose gzip by it).
    """
    t = Path(target)
    name = t.name
    suffix = next((s for s in KNOWN_SUFFIXES if name.lower().endswith(s)), "")
    return t.with_name(f".{name[: len(name) - len(suffix)]}.{os.getpid()}.tmp{suffix}")


def numbered_name(target: str | os.PathLike, n: int) -> Path:
    """``NAME.dcm`` -> ``NAME-n.dcm``: the n-th series of a SEG split into several."""
    t = Path(target)
    stem, dot, suffix = t.name.partition(".")
    return t.with_name(f"{stem}-{n}{dot}{suffix}")


def reference_copy_dir(target: str | os.PathLike) -> Path:
    """The folder ``--assign-uids`` writes the corrected image copy into, beside ``target``."""
    t = Path(target)
    return t.parent / f"{t.name.split('.')[0]}-reference"


def sidecar_of(path: str | os.PathLike) -> Path | None:
    """The dcmqi JSON sidecar that travels with a volume file (None for other files)."""
    name = Path(path).name.lower()
    if not name.endswith((".nii.gz", ".nii", ".nrrd", ".nhdr")):
        return None
    from .formats.dcmqi_json import sidecar_path

    return sidecar_path(path)


def detached_data(path: str | os.PathLike) -> list[Path]:
    """The data file(s) a detached NRRD header names (``data file:``), if any."""
    p = Path(path)
    if not p.name.lower().endswith((".nhdr", ".nrrd")):
        return []
    try:
        with open(p, "rb") as fp:
            head = fp.read(65536)
    except OSError:
        return []
    out = []
    for line in head.split(b"\n\n", 1)[0].splitlines():
        key, sep, value = line.decode("latin-1").partition(":")
        if sep and key.strip().lower() in ("data file", "datafile"):
            value = value.strip()
            if value and not value.upper().startswith("LIST") and "%" not in value:
                out.append(p.parent / value)
    return out


def files_read(inputs: Iterable[str | os.PathLike] = (), *, meta=None,
               reference=None) -> list[Path]:
    """Every file a command reads: inputs with their sidecars and detached data, the metadata
    file, and the files of a local reference series."""
    out: list[Path] = []
    for p in inputs:
        out.append(Path(p))
        side = sidecar_of(p)
        if side is not None:
            out.append(side)
        out += detached_data(p)
    if isinstance(meta, (str, os.PathLike)):
        out.append(Path(meta))
    paths = getattr(reference, "paths", None)
    if paths:
        out += [Path(p) for p in paths if isinstance(p, (str, os.PathLike))]
    elif isinstance(reference, (str, os.PathLike)) and not str(reference).startswith(
            ("http://", "https://")):
        ref = Path(reference)
        out += [f for f in ref.iterdir() if f.is_file()] if ref.is_dir() else [ref]
    return out


def _key(p: Path) -> str:
    return os.path.normcase(os.path.realpath(p))


def _same(a: Path, b: Path) -> bool:
    if _key(a) == _key(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(outputs: Iterable[str | os.PathLike], protected: Iterable[str | os.PathLike],
                     *, split: str | os.PathLike | None = None,
                     folder: str | os.PathLike | None = None) -> None:
    """Raise when an output would replace a protected file (an input of the command).

    ``split`` is a SEG output that may become ``NAME-2.dcm``, ``NAME-3.dcm``...; ``folder`` a
    folder the command fills (the ``--assign-uids`` reference copy): protected files matching
    the pattern or inside the folder count too.
    """
    prot = [Path(p) for p in protected if os.path.lexists(p)]  # what exists can be destroyed
    if not prot:
        return
    keys = {_key(p): p for p in prot}
    for out in outputs:
        o = Path(out)
        hit = keys.get(_key(o)) or next((p for p in prot if o.exists() and _same(o, p)), None)
        if hit is not None:
            raise InvalidInputError(f"{o}: is an input of this command ({hit}); writing there "
                                    "would destroy it: choose another output name")
    if split is not None:
        s = Path(split)
        stem, dot, suffix = s.name.partition(".")
        pattern = re.compile(re.escape(stem) + r"-\d+" + re.escape(dot + suffix) + "$")
        parent = _key(s.parent)
        for p in prot:
            if pattern.match(p.name) and _key(p.parent) == parent:
                raise InvalidInputError(f"{s}: a split of this output would be named like the "
                                        f"input {p}; choose another output name")
    if folder is not None:
        f = _key(Path(folder)) + os.sep
        for p in prot:
            if _key(p).startswith(f):
                raise InvalidInputError(f"{folder}: this output folder holds the input {p}; "
                                        "choose another output name")
