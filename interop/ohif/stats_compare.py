"""OHIF's segment statistics and Cornerstone's largest bidirectional against ``segbridge stats``
and ``segbridge measure`` on the same SEG and CT (issue 12 point 4).

Each quantity is compared twice: the raw values must be within a tolerance (float32 world
coordinates in Cornerstone: 1e-4 mm; statistics: 1e-9 relative), and the value as segbridge
prints it must be the same string for both. The one known difference (a segment with no
perpendicular chord: Cornerstone returns no bidirectional, segbridge the long axis alone with a
note) is reported as explained, not as a failure.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

#: (OHIF namedStats key, segbridge stats key, printed format, tolerance kind)
STATS = [("count", "voxel_count", "{:d}", "exact"),
         ("volume", "volume_mm3", "{:.3f}", "rel"),  # printed as ml: value / 1000
         ("mean", "mean", "{:.2f}", "rel"),
         ("stdDev", "std", "{:.2f}", "rel"),
         ("min", "min", "{:.2f}", "rel"),
         ("max", "max", "{:.2f}", "rel"),
         ("median", "median", "{:.2f}", "rel"),
         ("skewness", "skewness", "{:.6f}", "rel"),
         ("kurtosis", "kurtosis", "{:.6f}", "rel")]
POINTS = [("center", "center_lps"), ("minLPS", "min_lps"), ("maxLPS", "max_lps")]
MM = 1e-4  # Cornerstone keeps world coordinates in float32 (about 4e-6 mm here)
REL = 1e-9


def _segbridge_json(segbridge: str, *args: str) -> dict:
    p = subprocess.run([segbridge, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"segbridge {args[0]}: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout)


def _close(a: float, b: float, kind: str) -> bool:
    if kind == "exact":
        return a == b
    if kind == "mm":
        return abs(a - b) <= MM
    return abs(a - b) <= REL * max(1.0, abs(a), abs(b))


def compare_stats(seg: Path, ct: Path, ohif: dict, segbridge: str) -> tuple[list[dict], list[str]]:
    """Rows for the docs table and the problems (empty when everything agrees)."""
    st = {s["segment"]: s for s in _segbridge_json(
        segbridge, "stats", str(seg), "--image", str(ct), "--format", "json")["segments"]}
    me = {s["segment"]: s for s in _segbridge_json(
        segbridge, "measure", str(seg), "--image", str(ct), "--json")["segments"]}
    rows: list[dict] = []
    problems: list[str] = []

    def row(label: str, what: str, o, s, fmt: str, kind: str, scale: float = 1.0,
            explained: str | None = None) -> None:
        def show(v) -> str:
            return "-" if v is None else fmt.format(v / scale if scale != 1.0 else v)

        if o is None or s is None:
            ok = explained is not None
            rows.append({"segment": label, "quantity": what, "ohif": o, "segbridge": s,
                         "ohif_printed": show(o), "segbridge_printed": show(s),
                         "agree": ok, "explained": explained})
            if not ok:
                problems.append(f"{seg.name} {label}: {what} OHIF {o}, segbridge {s}")
            return
        po, ps = show(o), show(s)
        ok = _close(o, s, kind) and po == ps
        rows.append({"segment": label, "quantity": what, "ohif": o, "segbridge": s,
                     "ohif_printed": po, "segbridge_printed": ps, "agree": ok,
                     "difference": o - s, "explained": None})
        if not ok:
            problems.append(f"{seg.name} {label}: {what} OHIF {o!r} ({po}), segbridge {s!r} "
                            f"({ps})")

    for idx, o in sorted(ohif.items(), key=lambda kv: int(kv[0])):
        n = int(idx)
        s, m = st.get(n), me.get(n)
        if s is None or m is None:
            problems.append(f"{seg.name}: segment {n} ({o['label']}) has OHIF statistics but "
                            "no segbridge statistics")
            continue
        named = o["named"]
        for key, skey, fmt, kind in STATS:
            v = named.get(key, {}).get("value")
            if key == "count" and v is not None:
                v = int(v)
            row(o["label"], key + (" (mm³, printed in ml)" if key == "volume" else ""), v,
                s.get(skey), fmt,
                kind, 1000.0 if key == "volume" else 1.0)
        for key, skey in POINTS:
            v = named.get(key, {}).get("value")
            for i, axis in enumerate("xyz"):
                row(o["label"], f"{key} {axis} (mm)", None if v is None else v[i],
                    None if s.get(skey) is None else s[skey][i], "{:.4f}", "mm")
        b = o["bidirectional"]
        note = m.get("note")
        explained = None
        if b is None and m.get("short_axis_mm") is None and note:
            explained = ("no chord perpendicular to the longest one lies inside on any slice: "
                         "Cornerstone returns no bidirectional (and OHIF's command shows "
                         "nothing); segbridge reports the long axis alone with the note "
                         f"\"{note}\"")
        row(o["label"], "long axis (mm)", None if b is None else b["maxMajor"],
            m.get("long_axis_mm"), "{:.2f}", "mm", explained=explained)
        row(o["label"], "short axis (mm)", None if b is None else b["maxMinor"],
            m.get("short_axis_mm"), "{:.2f}", "mm", explained=explained)
        z_o = None if b is None else b["majorAxis"][0][2]
        z_s = None if not m.get("long_axis_lps") else m["long_axis_lps"][0][2]
        row(o["label"], "bidirectional slice z (mm)", z_o, z_s, "{:.2f}", "mm",
            explained=explained)
    return rows, problems


def markdown(rows: list[dict]) -> str:
    """The comparison table for docs/interop.md."""
    out = ["| segment | quantity | OHIF 3.13 (raw) | segbridge (raw) | printed (OHIF / "
           "segbridge) | agree |", "|---|---|---|---|---|---|"]
    for r in rows:
        mark = "✅" if r["agree"] and not r["explained"] else ("⬜ explained" if r["agree"]
                                                            else "❌")
        out.append(f"| {r['segment']} | {r['quantity']} | {r['ohif']!r} | {r['segbridge']!r} "
                   f"| {r['ohif_printed']} / {r['segbridge_printed']} | {mark} |")
    return "\n".join(out) + "\n"
