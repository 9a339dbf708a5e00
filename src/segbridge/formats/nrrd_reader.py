"""NRRD header and data, read with every problem named (NRRD0001-NRRD0005, teem's format spec).

pynrrd (still used to write) reads what a well-formed file holds, but on a hostile one it lets
ValueError/KeyError escape, opens any ``data file`` path (``../../etc/passwd``, absolute paths),
stops inflating a gzip stream once it has enough bytes (no CRC-32/ISIZE check) and reads all the
data before comparing its size with the header. Here:

* every field is parsed on its own, so an error names the field; key/value pairs (``key:=value``)
  are unescaped as teem does (``\\n`` -> newline, ``\\\\`` -> backslash); a repeated key keeps
  the last value with a warning (the spec's rule), a repeated field is an error;
* detached data (``data file``) must lie in or below the header's folder after resolving
  symlinks, unless the caller allows it; LIST and pattern forms are refused; messages about a
  detached file never give its size;
* compressed data (gzip, bzip2) is checked to the end of its stream (:mod:`.gz`), and nothing
  larger than the header's sizes is ever held in memory.

The result mirrors ``nrrd.read(..., index_order="F")``: the array is indexed (x, y, z, ...) and
the header is a dict with the standard fields parsed (``sizes`` ints, ``space directions`` a list
of vectors or None, ``space origin`` a vector) plus the key/value pairs as strings.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InvalidInputError, Report, UnsupportedError
from .gz import read_all

_MAX_HEADER = 64 << 20  # bytes: a few kB in practice, ~500 B per segment in a seg.nrrd
#: (65,535 segments fit); a bound on what a hostile header can make us hold
_GZIP_MAX_RATIO = 1032  # deflate cannot expand more than ~1032:1
_TYPES = {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": ("longlong", "long long", "long long int", "signed long long",
           "signed long long int", "int64", "int64_t"),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    "f4": ("float",), "f8": ("double",),
}
_TYPE_OF = {name: code for code, names in _TYPES.items() for name in names}
_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2",
              "ascii": "ascii", "text": "ascii", "txt": "ascii"}
_ALIASES = {"lineskip": "line skip", "byteskip": "byte skip", "datafile": "data file",
            "spacedimension": "space dimension", "spaceorigin": "space origin",
            "spacedirections": "space directions", "spaceunits": "space units",
            "centerings": "centers"}


def _bad(p: Path, what: str) -> InvalidInputError:
    return InvalidInputError(f"{p}: {what}")


def _ints(p: Path, field: str, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split()]
    except ValueError:
        raise _bad(p, f"NRRD field '{field}' must be whole numbers, not '{_short(value)}'") \
            from None


def _vector(p: Path, field: str, text: str) -> np.ndarray:
    t = text.strip()
    if not (t.startswith("(") and t.endswith(")")):
        raise _bad(p, f"NRRD field '{field}': '{_short(t)}' is not a vector like (1,0,0)")
    try:
        vec = np.array([float(v) for v in t[1:-1].split(",")], float)
    except ValueError:
        raise _bad(p, f"NRRD field '{field}': '{_short(t)}' is not a vector of numbers") \
            from None
    if not np.all(np.isfinite(vec)):
        raise _bad(p, f"NRRD field '{field}' holds NaN or infinite values ({_short(t)})")
    return vec


def _directions(p: Path, value: str) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = []
    for tok in value.replace(") (", ")\t(").split():
        out.append(None if tok == "none" else _vector(p, "space directions", tok))
    return out


def _short(text: str, n: int = 40) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n] + "..."


def _unescape(value: str) -> str:
    """teem's airUnescape: ``\\n`` -> newline, ``\\\\`` -> backslash, nothing else."""
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in "n\\":
            out.append("\n" if value[i + 1] == "n" else "\\")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _split_header(p: Path, fp) -> tuple[list[bytes], int]:
    """Header lines (without the magic) and the offset of the first data byte."""
    magic = fp.readline(64)
    if not magic.startswith(b"NRRD000") or magic[7:8] not in b"12345" or not magic[7:8]:
        raise _bad(p, "not a NRRD file (the first line is not NRRD0001..NRRD0005)")
    lines, size = [], len(magic)
    while True:
        line = fp.readline(_MAX_HEADER)
        size += len(line)
        if size > _MAX_HEADER:
            raise _bad(p, f"NRRD header longer than {_MAX_HEADER} bytes (no blank line ends it "
                       "within that)")
        if not line.rstrip(b"\r\n").strip():
            return lines, size  # a blank line (or the end of a detached header)
        lines.append(line.rstrip(b"\r\n"))


def read_header(path: str | Path,
                report: Report | None = None) -> tuple[dict, dict[str, str], int]:
    """Parsed header fields, key/values, and the byte offset where attached data start."""
    report = report if report is not None else Report()
    p = Path(path)
    with _regular_file(p, p, "the file") as fp:
        lines, offset = _split_header(p, fp)
    fields: dict[str, str] = {}
    keys: dict[str, str] = {}
    for n, raw in enumerate(lines, start=2):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", "replace")
            report.warn(f"{p.name}: NRRD header line {n} is not UTF-8 text; undecodable bytes "
                        "replaced")
        line = line.rstrip()
        if line.startswith("#"):
            continue
        kv, fd = line.find(":="), line.find(": ")
        if kv > 0 and (fd < 0 or kv < fd):
            key, value = line[:kv], _unescape(line[kv + 2:])
            if key in keys:
                report.warn(f"{p.name}: NRRD key '{_short(key)}' appears twice; the last value "
                            "is used")
            keys[key] = value
        elif fd > 0:
            name = line[:fd].strip().lower()
            name = _ALIASES.get(name.replace(" ", ""), name)
            if name in fields:
                raise _bad(p, f"NRRD field '{name}' appears twice (line {n})")
            fields[name] = line[fd + 2:].strip()
        else:
            raise _bad(p, f"NRRD header line {n} is neither 'field: value' nor 'key:=value' "
                       f"('{_short(line)}')")
    return _parse_fields(p, fields), keys, offset


def _parse_fields(p: Path, f: dict[str, str]) -> dict:
    for req in ("dimension", "type", "encoding", "sizes"):
        if req not in f:
            raise _bad(p, f"NRRD header has no '{req}' field")
    h: dict = dict(f)
    dim = _ints(p, "dimension", f["dimension"])
    sizes = _ints(p, "sizes", f["sizes"])
    if len(dim) != 1 or not 1 <= dim[0] <= 16:
        raise _bad(p, f"NRRD 'dimension' must be one number 1..16, not '{_short(f['dimension'])}'")
    if len(sizes) != dim[0]:
        raise _bad(p, f"NRRD 'sizes' has {len(sizes)} values for dimension {dim[0]}")
    if any(s <= 0 for s in sizes):
        raise _bad(p, f"NRRD 'sizes' must be positive ({f['sizes']})")
    h["dimension"], h["sizes"] = dim[0], sizes
    tname = " ".join(f["type"].split()).lower()
    if tname not in _TYPE_OF:
        raise UnsupportedError(f"{p}: NRRD 'type' '{_short(f['type'])}' is not a numeric type "
                               "segbridge reads")
    h["type"] = tname
    enc = f["encoding"].strip().lower()
    if enc not in _ENCODINGS:
        raise UnsupportedError(f"{p}: NRRD 'encoding' '{_short(f['encoding'])}' is not supported "
                               "(raw, gzip, bzip2 or ascii)")
    h["encoding"] = _ENCODINGS[enc]
    endian = f.get("endian", "").strip().lower()
    if endian not in ("", "little", "big"):
        raise _bad(p, f"NRRD 'endian' must be little or big, not '{_short(endian)}'")
    if not endian and np.dtype(_TYPE_OF[tname]).itemsize > 1 and h["encoding"] != "ascii":
        raise _bad(p, "NRRD header has no 'endian' field for a multi-byte type")
    h["endian"] = endian or "little"
    for name in ("line skip", "byte skip"):
        if name in f:
            v = _ints(p, name, f[name])
            low = -1 if name == "byte skip" else 0
            if len(v) != 1 or v[0] < low:
                raise _bad(p, f"NRRD '{name}' must be one number >= {low}")
            h[name] = v[0]
    if "space directions" in f:
        dirs = _directions(p, f["space directions"])
        if len(dirs) != dim[0]:
            raise _bad(p, f"NRRD 'space directions' has {len(dirs)} entries for dimension "
                       f"{dim[0]}")
        h["space directions"] = dirs
    if "space origin" in f:
        h["space origin"] = _vector(p, "space origin", f["space origin"])
    if "kinds" in f:
        h["kinds"] = f["kinds"].split()
    if "space" in f:
        h["space"] = f["space"].strip()
    return h


def _data_path(p: Path, value: str, allow_outside: bool) -> Path:
    words = value.split()
    if not words:
        raise _bad(p, "NRRD 'data file' is empty")
    if words[0] == "LIST" or (len(words) >= 4 and "%" in words[0]):
        raise UnsupportedError(f"{p}: NRRD 'data file' lists and patterns (several data files) "
                               "are not supported")
    if any(not ch.isprintable() for ch in value.strip()):
        raise _bad(p, f"NRRD 'data file' {value.strip()!r} holds control characters")
    base = p.resolve().parent
    target = (base / value.strip()).resolve()
    if not allow_outside and not target.is_relative_to(base):
        raise _bad(p, "NRRD 'data file' points outside the header's folder; refused (reading "
                   "it needs an explicit permission)")
    return target


def _load(p: Path, data_path: Path | None, detached: bool) -> bytearray:
    """The whole data (or header + data) file, writable so arrays built on it are too."""
    where = "the NRRD data file" if detached else "the file"
    with _regular_file(p, data_path or p, where) as fp:
        buf = bytearray(os.fstat(fp.fileno()).st_size)
        del buf[fp.readinto(buf):]
        return buf


@contextmanager
def _regular_file(p: Path, target: Path, where: str) -> Iterator[BinaryIO]:
    """``target`` opened for reading; whatever the file system says becomes one line naming
    the header ``p`` (a FIFO or device would block or never end: refused)."""
    try:
        with open(target, "rb") as fp:
            if not stat.S_ISREG(os.fstat(fp.fileno()).st_mode):
                raise _bad(p, f"{where} is not a regular file")
            yield fp
    except FileNotFoundError:
        raise _bad(p, f"{where} does not exist") from None
    except IsADirectoryError:
        raise _bad(p, f"{where} is a folder") from None
    except OSError as exc:
        raise _bad(p, f"cannot read {where} ({exc.strerror or 'I/O error'})") from None


def read(path: str | Path, *, report: Report | None = None,
         allow_outside: bool = False) -> tuple[np.ndarray, dict]:
    """(data indexed x, y, z, ..., header) of a .nrrd / .nhdr file; see the module text."""
    p = Path(path)
    h, keys, offset = read_header(p, report)
    detached = "data file" in h
    data_path = _data_path(p, h["data file"], allow_outside) if detached else None
    dtype = np.dtype(_TYPE_OF[h["type"]]).newbyteorder("<" if h["endian"] == "little" else ">")
    count = math.prod(h["sizes"])
    nbytes = count * dtype.itemsize
    enc = h["encoding"]
    skip = h.get("byte skip", 0)
    if skip == -1 and enc != "raw":
        raise _bad(p, "NRRD 'byte skip: -1' is only defined for raw encoding")
    raw = _load(p, data_path, detached)
    start = 0 if detached else offset
    for _ in range(h.get("line skip", 0)):
        nl = raw.find(b"\n", start)
        if nl < 0:
            raise _bad(p, "NRRD 'line skip' passes the end of the data")
        start = nl + 1
    short = "the data are too short for the header's sizes"
    long_ = "the data are longer than the header's sizes"
    if enc == "raw":
        body = memoryview(raw)[start:]
        if skip == -1:
            if len(body) < nbytes:
                raise _bad(p, short)
            body = body[len(body) - nbytes:]
        else:
            body = body[skip:]
        if len(body) != nbytes:
            raise _bad(p, short if len(body) < nbytes else long_)
        data = np.frombuffer(body, dtype, count)
    elif enc in ("gzip", "bzip2"):
        if enc == "gzip" and nbytes + skip > (len(raw) - start) * _GZIP_MAX_RATIO + 1024:
            raise _bad(p, "the header's sizes need more bytes than the compressed data can hold")
        out = read_all(memoryview(raw), p, enc, start=start, limit=skip + nbytes)
        if len(out) != skip + nbytes:
            raise _bad(p, short)
        data = np.frombuffer(out, dtype, count, offset=skip)
    else:  # ascii
        words = raw[start + skip:].split()
        if len(words) != count:
            raise _bad(p, short if len(words) < count else long_)
        try:
            data = np.array([float(w) for w in words]).astype(dtype) if dtype.kind == "f" \
                else np.array([int(w) for w in words], dtype)
        except (ValueError, OverflowError):
            raise _bad(p, f"NRRD ascii data hold values that are not {h['type']}") from None
    data = data.astype(dtype.newbyteorder("="), copy=False)
    return data.reshape(h["sizes"][::-1]).T, {**keys, **h}

