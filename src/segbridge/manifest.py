"""Read a batch manifest: a CSV file, one case a line; a bad line fails only its own case.

The rules, so that every line of the manifest gets a result and one broken line never swallows
or stops the others:

- The file is UTF-8 text (a byte-order mark is allowed); anything else (Latin-1 bytes, UTF-16,
  a binary file), a missing, empty or unreadable file, a folder, a header without the columns
  ``case`` and ``inputs``, or with unknown or repeated column names is one error naming the
  manifest: no case runs.
- One case a physical line (RFC 4180 quoting within the line; a quoted field cannot hold a line
  break). A line with an unterminated quote, text after a closing quote, more fields than the
  header names, an empty, repeated or non-plain case name, or a value no writer knows
  (``type=foo``) is an error result for that line; the other lines run. Fewer fields than the
  header are fine: the missing ones are empty. Blank lines (and lines of only commas) are
  skipped.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError
from .web.client import is_url

COLUMNS = ("case", "inputs", "reference", "meta", "output", "type", "profile", "to", "push",
           "compression", "series", "contour_fill", "assign_uids")
#: a manifest larger than this is refused before it is read (a manifest line is ~200 bytes)
MAX_BYTES = 64 * 2**20
_LINES = re.compile(r"\r\n|\r|\n")
_TRUE, _FALSE = ("1", "yes", "true", "y"), ("", "0", "no", "false", "n")


@dataclass
class Manifest:
    """The lines of a manifest: ``cases`` to run (dicts, paths absolute, each with its
    ``line``) and ``refused`` lines (result rows with status error)."""

    path: Path
    cases: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The cases of a manifest; a broken manifest raises InvalidInputError (one line), a
    broken line becomes a refused row."""
    path = Path(path)
    lines = _text(path)
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise InvalidInputError(f"{path}: the manifest is empty")
    header_line, header = _header(path, *numbered[0])
    base = path.resolve().parent
    result = Manifest(path)
    by_name: dict[str, list[dict]] = {}
    for n, line in numbered[1:]:
        fields, problem = _fields(line)
        while len(fields) > len(header) and not fields[-1].strip():
            fields.pop()  # trailing empty fields (a spreadsheet's trailing commas)
        if problem is None and len(fields) > len(header):
            problem = (f"{len(fields)} fields, but the header names {len(header)} columns "
                       "(a comma inside a path? quote the field)")
        row = dict(zip(header, (f.strip() for f in fields), strict=False))
        row.pop("", None)  # columns with an empty header name are ignored
        if problem is None and not any(row.values()):
            continue  # a line of only commas
        name = row.get("case", "")
        if problem is None:
            problem = _name_problem(name) or _value_problem(row)
        if problem is not None:
            plain = name if _name_problem(name) is None else ""
            result.refused.append(refused_row(n, plain, problem))
            continue
        case = {k: row.get(k, "") for k in COLUMNS}
        try:
            case["inputs"] = [str(_resolve(base, p)) for p in case["inputs"].split(";")
                              if p.strip()]
            for k in ("reference", "meta"):
                if case[k] and not is_url(case[k]):
                    case[k] = str(_resolve(base, case[k]))
        except InvalidInputError as exc:
            result.refused.append(refused_row(n, name, str(exc)))
            continue
        case["output"] = case["output"] or f"{name}.dcm"
        case["line"] = n
        by_name.setdefault(name, []).append(case)
    if not by_name and not result.refused:
        raise InvalidInputError(f"{path}: the manifest has no cases (only a header, line "
                                f"{header_line})")
    for name, group in by_name.items():
        if len(group) == 1:
            result.cases.append(group[0])
            continue
        for c in group:  # which one was meant is not ours to guess: none runs
            others = ", ".join(str(o["line"]) for o in group if o is not c)
            result.refused.append(refused_row(c["line"], name, f"case {name!r} also on line "
                                                              f"{others}"))
    result.cases.sort(key=lambda c: c["line"])
    return result


def refused_row(line: int, case: str, message: str) -> dict:
    """A result row for a manifest line that does not run."""
    return {"case": case, "status": "error", "message": f"line {line}: {message}",
            "outputs": "", "seconds": 0.0, "bytes": 0, "segments": "", "line": line}


def truthy(value: str) -> bool:
    """A yes/no column value (``assign_uids``)."""
    return value.strip().lower() in _TRUE


def _text(path: Path) -> list[str]:
    """The manifest's lines, decoded as UTF-8 (BOM allowed), or one-line errors."""
    if not path.exists():
        raise InvalidInputError(f"{path}: no such manifest")
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a folder, not a manifest (a CSV file)")
    if not path.is_file():
        raise InvalidInputError(f"{path}: not a regular file; a manifest is a CSV file")
    try:
        with open(path, "rb") as fp:
            data = fp.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the manifest "
                                f"({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_BYTES:
        raise InvalidInputError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a manifest "
                                "(split it)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInputError(f"{path}: the manifest is UTF-16 text; save it as UTF-8 CSV")
    if b"\x00" in data:
        raise InvalidInputError(f"{path}: holds NUL bytes (a binary file, or UTF-16 text); a "
                                "manifest is UTF-8 CSV text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInputError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02X} on line "
                                f"{line}); save the manifest as UTF-8") from None
    return _LINES.split(text)


def _header(path: Path, n: int, line: str) -> tuple[int, list[str]]:
    fields, problem = _fields(line)
    if problem is not None:
        raise InvalidInputError(f"{path}: line {n}: the header is not valid CSV: {problem}")
    header = [h.strip().lower() for h in fields]
    if "case" not in header or "inputs" not in header:
        raise InvalidInputError(f"{path}: a manifest needs the columns 'case' and 'inputs' "
                                f"(found: {', '.join(h for h in header if h) or 'none'})")
    unknown = [h for h in header if h and h not in COLUMNS]
    if unknown:
        raise InvalidInputError(f"{path}: unknown column(s) {', '.join(unknown)}; known: "
                                f"{', '.join(COLUMNS)}")
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise InvalidInputError(f"{path}: column(s) {', '.join(twice)} named twice in the "
                                "header")
    return n, header


def _fields(line: str) -> tuple[list[str], str | None]:
    """The fields of one line, or a problem when its quoting is broken."""
    try:
        return next(csv.reader([line], strict=True)), None
    except csv.Error:
        pass
    fields = next(csv.reader([line]), [])  # the lenient reading, for the case name only
    if line.count('"') % 2:
        return fields, "a quoted field is not closed on its line (quote whole fields; a " \
                       "quote inside one is written twice)"
    return fields, "text follows a closing quote (quote whole fields; a quote inside one is " \
                   "written twice)"


def _name_problem(name: str) -> str | None:
    if not name:
        return "empty case name"
    if "/" in name or "\\" in name or name.startswith(".") or \
            any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return (f"case name {name!r} must be a plain name (no '/', no leading '.', no control "
                "characters)")
    return None


def _value_problem(row: dict) -> str | None:
    """A value no writer knows, found before any case runs."""
    from .dicom.codecs import COMPRESSIONS
    from .dicom.seg_writer import TYPES
    from .profiles import PROFILES
    from .rt.contours import RULES

    choices = {"type": TYPES, "profile": tuple(PROFILES), "to": ("seg", "rtstruct"),
               "compression": tuple(COMPRESSIONS), "contour_fill": RULES,
               "assign_uids": ("yes", "no")}
    for column, allowed in choices.items():
        value = row.get(column, "").lower()
        if column == "assign_uids":
            value = "yes" if value in _TRUE else "no" if value in _FALSE else value
        if value and value not in allowed:
            return f"{column} {row[column]!r} is not one of {', '.join(allowed)}"
    push = row.get("push", "")
    if push and not is_url(push):
        return f"push {push!r} is not a DICOMweb URL (http:// or https://)"
    return None


def _resolve(base: Path, p: str) -> Path:
    """``p`` made absolute against the manifest's folder (``~`` expanded)."""
    try:
        q = Path(p.strip()).expanduser()
    except RuntimeError:  # ~user of an unknown user
        raise InvalidInputError(f"{p.strip()}: cannot expand '~' (no such user)") from None
    return q if q.is_absolute() else base / q
