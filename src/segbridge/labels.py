"""Label maps: label value and/or class name -> segment name, codes and colour.

A label map describes the segments of a multi-label volume (by value) or of a folder of masks
(by file name). It comes from a file (``--labels``, CSV or JSON, formats below), from a dict, or
is the built-in TotalSegmentator map (``"totalsegmentator"``; codes and class values from
:mod:`segbridge.totalsegmentator`).

JSON: an object whose keys are label values (``"5"``) or class names (``"liver"``), and whose
values are a name, or an object with ``name``, ``color`` ([r, g, b]) and codes ``category``,
``type``, ``type_modifier``, ``anatomic_region``, ``anatomic_region_modifier`` (each a dcmqi code
object ``{"CodeValue", "CodingSchemeDesignator", "CodeMeaning"}`` or a Slicer triplet
``"SCT^10200004^Liver"``). TotalSegmentator's class map dumped as JSON (``{"1": "spleen", ...}``)
is such a file.

CSV (header row, comma separated): a value column (``label``, ``value``, ``index`` or
``labelID``) and/or a name column (``name``, ``TotalSegmentator_name``, ``Structure`` or
``SegmentLabel``); optional ``color`` ("r g b") and code columns, either as triplets (``category``,
``type``, ``type_modifier``, ...) or as dcmqi-style dotted columns
(``SegmentedPropertyTypeCodeSequence.CodeValue``...), the layout of TotalSegmentator's own
``totalsegmentator_snomed_mapping.csv`` and ``totalsegmentator_total_mapping.csv``.

A label whose name is a TotalSegmentator class and that carries no codes of its own gets the
class's codes and colour.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from .codes import Code
from .colors import default_color
from .errors import InvalidInputError
from .model import Segment

BUILTIN = "totalsegmentator"
CODE_FIELDS = ("category", "type", "type_modifier", "anatomic_region", "anatomic_region_modifier")
#: dcmqi / DICOM sequence names of the code fields (CSV dotted columns)
_SEQUENCES = {
    "category": "SegmentedPropertyCategoryCodeSequence",
    "type": "SegmentedPropertyTypeCodeSequence",
    "type_modifier": "SegmentedPropertyTypeModifierCodeSequence",
    "anatomic_region": "AnatomicRegionSequence",
    "anatomic_region_modifier": "AnatomicRegionModifierSequence",
}
_VALUE_COLUMNS = ("label", "value", "index", "labelid")
_NAME_COLUMNS = ("name", "totalsegmentator_name", "structure", "segmentlabel")


@dataclass(frozen=True)
class Label:
    """What one label value or class name means."""

    name: str
    category: Code | None = None
    type: Code | None = None
    type_modifier: Code | None = None
    anatomic_region: Code | None = None
    anatomic_region_modifier: Code | None = None
    color: tuple[int, int, int] | None = None
    algorithm_name: str | None = None

    @property
    def coded(self) -> bool:
        return self.type is not None

    def segment(self, number: int, index: int, label: str | None = None) -> Segment:
        """A Segment with this meaning (``label`` overrides the name as SegmentLabel)."""
        kw = {f: getattr(self, f) for f in CODE_FIELDS if getattr(self, f) is not None}
        algo = dict(algorithm_type="AUTOMATIC", algorithm_name=self.algorithm_name) \
            if self.algorithm_name else {}
        return Segment(number, label or self.name, color=self.color or default_color(index),
                       **algo, **kw)


@dataclass
class LabelMap:
    """Labels by value and by name (either may be empty)."""

    by_value: dict[int, Label]
    by_name: dict[str, Label]
    source: str = "labels"

    def for_name(self, name: str) -> Label | None:
        """The label of a class name (file stem), with TotalSegmentator codes filled in."""
        got = self.by_name.get(name)
        return _filled(got) if got is not None else None

    def for_value(self, value: int) -> Label | None:
        """The label of a label value, with TotalSegmentator codes filled in."""
        got = self.by_value.get(int(value))
        if got is None:
            return None
        if not got.coded and got.name in self.by_name:
            got = replace(self.by_name[got.name], name=got.name)
        return _filled(got)


def _filled(label: Label) -> Label:
    """Codes and colour of the TotalSegmentator class of the same name, when it has none."""
    if label.coded:
        return label
    ts = totalsegmentator().by_name.get(label.name)
    if ts is None:
        return label
    return replace(ts, name=label.name, color=label.color or ts.color,
                   algorithm_name=label.algorithm_name)


def _code(text: str, where: str) -> Code | None:
    if isinstance(text, dict):
        try:
            return Code.from_json(text)
        except KeyError as exc:
            raise InvalidInputError(f"{where}: code object without {exc.args[0]}") from None
    if not isinstance(text, str):
        raise InvalidInputError(f"{where}: a code is an object or 'SCHEME^VALUE^MEANING' text")
    if not text.strip():
        return None
    code = Code.from_slicer(text.strip())
    if code is None:
        raise InvalidInputError(f"{where}: code {text!r} is not 'SCHEME^VALUE^MEANING'")
    return code


def _whole(value) -> int | None:
    """A whole number from a JSON number or ASCII digits, else None (int() would cut 1.9 to 1
    and take True as 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,3}", value.strip()):
        return int(value)
    return None


def _color(value, where: str) -> tuple[int, int, int] | None:
    if value is None or value == "":
        return None
    try:
        parts = value.replace(",", " ").replace(";", " ").split() if isinstance(value, str) \
            else list(value)
        rgb = tuple(_whole(p) for p in parts)
    except TypeError:
        rgb = ()
    if len(rgb) != 3 or not all(c is not None and 0 <= c <= 255 for c in rgb):
        raise InvalidInputError(f"{where}: colour must be three integers 0..255, got {value!r}")
    return rgb  # type: ignore[return-value]


def _value(key: str, where: str) -> int | None:
    key = str(key).strip()
    if not re.fullmatch(r"[0-9]+", key):  # ASCII digits only (str.isdigit takes superscripts)
        return None
    v = int(key)
    if not 1 <= v <= 65535:
        raise InvalidInputError(f"{where}: label value {v} outside 1..65535")
    return v


def _add(labels: LabelMap, value: int | None, label: Label, where: str) -> None:
    check_codes(label, where)
    if value is not None:
        if value in labels.by_value:
            raise InvalidInputError(f"{where}: label value {value} is described twice")
        labels.by_value[value] = label
    if label.name and (value is None or label.coded):
        labels.by_name.setdefault(label.name, label)


def from_dict(doc: dict, where: str = "labels") -> LabelMap:
    """A label map from the JSON form (see the module docstring)."""
    if not isinstance(doc, dict) or not doc:
        raise InvalidInputError(f"{where}: a label map is a non-empty JSON object")
    out = LabelMap({}, {}, where)
    for key, entry in doc.items():
        at = f"{where}: {key!r}"
        value = _value(key, at)
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{at}: give a name or an object")
        name = str(entry.get("name") or ("" if value is not None else key)).strip()
        if not name:
            raise InvalidInputError(f"{at}: no name")
        _add(out, value, Label(name, algorithm_name=entry.get("algorithm_name"),
                               **entry_fields(entry, at)), at)
    return out


def entry_fields(entry: dict, at: str) -> dict:
    """Codes and colour of a JSON entry, as Label keyword arguments (checked)."""
    fields = {f: _code(entry[f], f"{at}.{f}") for f in CODE_FIELDS if entry.get(f)}
    fields["color"] = _color(entry.get("color"), at)
    return fields


def cell_fields(cell: dict[str, str], at: str) -> dict:
    """Codes and colour of a CSV row (lower-case column -> text), as Label keyword arguments:
    codes as triplets (``type``) or dcmqi dotted columns, colour as "r g b"."""
    fields: dict = {}
    for f, seq in _SEQUENCES.items():
        dotted = [cell.get(f"{seq}.{k}".lower(), "") for k in
                  ("CodingSchemeDesignator", "CodeValue", "CodeMeaning")]
        text = cell.get(f, "") or ("^".join(dotted) if all(dotted) else "")
        if text:
            fields[f] = _code(text, f"{at} {f}")
    fields["color"] = _color(cell.get("color"), at)
    return fields


def code_columns() -> set[str]:
    """The CSV column names (lower case) that :func:`cell_fields` reads."""
    dotted = {f"{seq}.{k}".lower() for seq in _SEQUENCES.values()
              for k in ("CodingSchemeDesignator", "CodeValue", "CodeMeaning")}
    return {*CODE_FIELDS, "color", *dotted}


def check_codes(label: Label, where: str) -> None:
    """A category code needs a type code and the other way round."""
    if (label.category is None) != (label.type is None):
        raise InvalidInputError(f"{where}: give both a category and a type code, or neither")


def from_csv(text: str, where: str = "labels") -> LabelMap:
    """A label map from CSV text (see the module docstring)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InvalidInputError(f"{where}: no rows (a header row and one row per label)")
    columns = {c.strip().lower(): c for c in rows[0] if c}
    vcol = next((columns[c] for c in _VALUE_COLUMNS if c in columns), None)
    ncol = next((columns[c] for c in _NAME_COLUMNS if c in columns), None)
    if vcol is None and ncol is None:
        raise InvalidInputError(f"{where}: no value column ({', '.join(_VALUE_COLUMNS)}) and no "
                                f"name column ({', '.join(_NAME_COLUMNS)})")
    out = LabelMap({}, {}, where)
    for i, row in enumerate(rows, start=2):
        at = f"{where}: line {i}"
        cell = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        value = None
        if vcol is not None:
            raw = cell[vcol.strip().lower()]
            value = _value(raw, at)
            if value is None:
                raise InvalidInputError(f"{at}: label value {raw!r} is not a positive integer")
        name = cell.get(ncol.strip().lower(), "") if ncol else ""
        if not name and value is not None:
            name = f"Segment {value}"
        if not name:
            raise InvalidInputError(f"{at}: no name")
        _add(out, value, Label(name, **cell_fields(cell, at)), at)
    return out


def read_map_file(path: str | os.PathLike, what: str = "label map") -> tuple[str, object]:
    """The text of a map file (UTF-8, BOM allowed) and, for JSON (a ``.json`` name or text
    starting with ``{`` or ``[``), its parsed document (else None); one-line errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"{p}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{p}: cannot read the {what} ({exc})") from None
    if p.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{p}: not valid JSON ({exc.msg}, line {exc.lineno})") \
                from None
        if not isinstance(doc, (dict, list)):
            raise InvalidInputError(f"{p}: a {what} in JSON is an object or a list, not "
                                    f"{type(doc).__name__ if doc is not None else 'null'}")
        return text, doc
    return text, None


def read_labels(path: str | os.PathLike) -> LabelMap:
    """A label map file (.json or .csv)."""
    text, doc = read_map_file(path)
    return from_dict(doc, str(path)) if doc is not None else from_csv(text, str(path))


@lru_cache(maxsize=1)
def totalsegmentator() -> LabelMap:
    """The built-in TotalSegmentator v2 "total" map: class values, names, SNOMED CT codes."""
    from .totalsegmentator import ALGORITHM_NAME, SNOMED_CSV, TOTAL_V2

    coded = from_csv(SNOMED_CSV, "TotalSegmentator SNOMED mapping").by_name
    by_name = {}
    for v, name in enumerate(TOTAL_V2, start=1):
        by_name[name] = replace(coded[name], color=default_color(v - 1),
                                algorithm_name=ALGORITHM_NAME)
    return LabelMap({v: by_name[n] for v, n in enumerate(TOTAL_V2, start=1)}, by_name,
                    "TotalSegmentator v2 total")


def load_labels(labels) -> LabelMap | None:
    """A LabelMap from a path, the name ``"totalsegmentator"``, a dict or a LabelMap."""
    if labels is None or isinstance(labels, LabelMap):
        return labels
    if isinstance(labels, dict):
        return from_dict(labels)
    if str(labels).lower() == BUILTIN and not Path(labels).exists():
        return totalsegmentator()
    return read_labels(labels)
