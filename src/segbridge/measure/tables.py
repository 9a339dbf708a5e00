"""Statistics and measurements as flat rows: CSV, JSON and terminal tables."""

from __future__ import annotations

import csv
import io
import json

from .bidirectional import Bidirectional
from .stats import SegmentStats


def _flat(d: dict) -> dict:
    """Points and boxes become one column per coordinate (CSV has no lists)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, list) and v and isinstance(v[0], list):
            for i, row in enumerate(v):
                for axis, x in zip("xyz", row, strict=False):
                    out[f"{k}_{i}_{axis}"] = x
        elif isinstance(v, list) and k.endswith("_lps"):
            for axis, x in zip("xyz", v, strict=True):
                out[f"{k}_{axis}"] = x
        elif k.endswith("_lps") and v is None:
            for axis in "xyz":
                out[f"{k}_{axis}"] = None
        elif isinstance(v, list):
            out[k] = "+".join(map(str, v))
        else:
            out[k] = v
    return out


def to_csv(rows: list[dict]) -> str:
    flat = [_flat(r) for r in rows]
    columns: list[str] = []
    for r in flat:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in flat:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=2)


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def stats_table(stats: list[SegmentStats], console, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    unit = next((s.unit.label for s in stats if s.unit is not None), None)
    t = Table(title=escape(title), title_justify="left")
    cols = ["#", "label", "voxels", "volume ml"]
    if unit:
        cols += [f"mean {unit}", "std", "min", "max", "median", "p05", "p95"]
        if any(s.peak is not None for s in stats):
            cols += ["peak", "TLG SUV*ml"]
    for c in cols:
        t.add_column(c, justify="left" if c == "label" else "right")
    for s in stats:
        num = str(s.number) if s.number is not None else "+".join(map(str, s.numbers))
        row = [num, escape(s.label), str(s.count), _fmt(s.volume_ml, 3)]
        if unit:
            if s.empty:
                row += ["empty"] + ["-"] * (len(cols) - 5)
            else:
                row += [_fmt(s.mean), _fmt(s.std), _fmt(s.min), _fmt(s.max), _fmt(s.median),
                        _fmt(s.percentiles.get(5)), _fmt(s.percentiles.get(95))]
                if "peak" in cols:
                    row += [_fmt(s.peak), _fmt(s.lesion_glycolysis)]
        elif s.empty:
            row[2] = "0 (empty)"
        t.add_row(*row)
    console.print(t)


def axes_table(axes: list[Bidirectional], console, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(title), title_justify="left")
    for c in ("#", "label", "long mm", "short mm", "slice", "SOP Instance UID"):
        t.add_column(c, justify="left" if c in ("label", "SOP Instance UID") else "right")
    for a in axes:
        t.add_row(str(a.number), escape(a.label), _fmt(a.long_mm), _fmt(a.short_mm),
                  _fmt(a.slice_index), escape(a.sop_instance_uid or (a.note or "-")))
    console.print(t)
