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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InvalidInputError

#: suffixes kept at the end of temporary names (writers pick compression by suffix)
KNOWN_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr", ".dcm", ".json", ".png",
                  ".csv")


def tmp_name(target: str | os.PathLike) -> Path:
    """The hidden name a file is written under before it is renamed to ``target``.

    ``x.nii.gz`` -> ``.x.<pid>.tmp.nii.gz``: the suffix stays (writers choose gzip by it).
    """
    global _last_target
    t = Path(target)
    _last_target = t
    name = t.name
    suffix = next((s for s in KNOWN_SUFFIXES if name.lower().endswith(s)), "")
    return t.with_name(f".{name[: len(name) - len(suffix)]}.{os.getpid()}.tmp{suffix}")


#: the output most recently given a temporary name: what a write error without a file name
#: (a full disk) was writing
_last_target: Path | None = None
_TMP = re.compile(r"^\.(?P<stem>.+)\.\d+\.tmp(?P<suffix>.*)$")


def shown_name(path: str | os.PathLike | None) -> Path | None:
    """The output a path stands for in a message: a temporary name (:func:`tmp_name`) is
    shown as its output; without a path, the output last being written."""
    if path is None:
        return _last_target
    p = Path(path)
    m = _TMP.match(p.name)
    return p.with_name(m["stem"] + m["suffix"]) if m else p


def check_target(out: Path) -> None:
    """An output path that can be written: its folder exists and it is not a folder itself
    (said in one line naming the output, not its temporary name)."""
    if out.is_dir():
        raise InvalidInputError(f"{out}: is a folder; name an output file")
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out}: output folder {out.parent} does not exist")


@contextmanager
def written(target: str | os.PathLike) -> Iterator[Path]:
    """Write ``target`` through its temporary name: the caller writes the path it is given;
    it is renamed into place when the block ends, and removed if the block fails."""
    out = Path(target)
    check_target(out)
    tmp = tmp_name(out)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


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
        if Path(p).is_dir():  # a folder of masks: every file in it
            out += [f for f in Path(p).iterdir() if f.is_file()]
            continue
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


def _file_id(p: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file (symlinks followed), None when there is none."""
    try:
        st = os.stat(p)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def refuse_overwrite(outputs: Iterable[str | os.PathLike], protected: Iterable[str | os.PathLike],
                     *, split: str | os.PathLike | None = None,
                     folder: str | os.PathLike | None = None) -> None:
    """Raise when an output would replace a protected file (an input of the command).

    Files are compared by device and inode, so every spelling of a path (``./``, ``..``,
    symlinked folders, hard links) is the same file; an output that does not exist yet cannot
    replace anything. ``split`` is a SEG output that may become ``NAME-2.dcm``,
    ``NAME-3.dcm``...; ``folder`` a folder the command fills (the ``--assign-uids`` reference
    copy): protected files matching the pattern or inside the folder count too.
    """
    ids: dict[tuple[int, int], Path] = {}
    for p in map(Path, protected):
        fid = _file_id(p)
        if fid is not None:
            ids.setdefault(fid, p)
    if not ids:
        return
    for out in map(Path, outputs):
        fid = _file_id(out)
        hit = ids.get(fid) if fid is not None else None
        if hit is not None:
            raise InvalidInputError(f"{out}: is an input of this command ({hit}); writing there "
                                    "would destroy it: choose another output name")
    if split is not None:
        s = Path(split)
        stem, dot, suffix = s.name.partition(".")
        pattern = re.compile(re.escape(stem) + r"-\d+" + re.escape(dot + suffix) + "$")
        parent = _file_id(s.parent)
        for p in ids.values():
            if pattern.match(p.name) and _file_id(p.parent) == parent:
                raise InvalidInputError(f"{s}: a split of this output would be named like the "
                                        f"input {p}; choose another output name")
    if folder is not None and Path(folder).exists():
        f = os.path.realpath(folder) + os.sep
        for p in ids.values():
            if os.path.realpath(p).startswith(f):
                raise InvalidInputError(f"{folder}: this output folder holds the input {p}; "
                                        "choose another output name")
