"""The OHIF part of docs/interop.md, from the results of interop/ohif/matrix.py
(docs/interop-ohif.json): matrix cells for the "OHIF 3.13 (browser)" column, the table of the
harness's own cases, the statistics/bidirectional comparison and OHIF's export findings."""

from __future__ import annotations

CONSUMER = "OHIF 3.13 (browser)"


def matrix_cells(results: list[dict]) -> list[dict]:
    """The matrix rows of matrix.py as interop_matrix.Cell fields."""
    return [{"producer": r["producer"], "config": r["config"], "consumer": CONSUMER,
             "dataset": r["dataset"], "expected": r["expected"], "ok": r["ok"],
             "reason": r["reason"], "files": []}
            for r in results if r["kind"] == "matrix"]


def _mark(r: dict) -> str:
    if r["ok"]:
        return "✅ exact"
    return f"⬜ {r['reason']}" if not r["expected"] else f"❌ {r['reason']}"


def section(results: list[dict]) -> str:
    cases = [r for r in results if r["kind"] == "case"]
    lines = [
        "",
        "## OHIF 3.13 in the browser",
        "",
        "Generated from `docs/interop-ohif.json`, written by `python interop/ohif/matrix.py` "
        "(about 15 minutes; CI runs the cases marked CI through `tests/test_ohif.py`). Each run "
        "of `interop/ohif/harness.py` pushes the CT and the SEG(s) to a real Orthanc 1.10 with "
        "its DICOMweb plugin, opens the real OHIF Viewer 3.13.2 (`@ohif/app` dist) in Debian's "
        "chromium (puppeteer-core, software WebGL), loads each SEG as a user does (thumbnail, "
        "**Yes**) into the CT viewport, and compares with segbridge, per segment: the voxels "
        "Cornerstone stores, the voxels the labelmap actors draw on every stack slice, the "
        "centroid, OHIF's own \"Voxel Count\", and for the cases with MPR the labelmap volumes "
        "of the MPR viewports. Any console error, failed request or timeout fails the run. The "
        "`OHIF 3.13 (browser)` column of the matrix above comes from the same runs.",
        "",
        "| case | what | CI | result | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in cases:
        lines.append(f"| `{r['name']}` | {r.get('what', '')} | {'yes' if r.get('ci') else ''} "
                     f"| {_mark(r)} | {r['seconds']:.0f} |")
    rows = [r for r in results if r["kind"] == "matrix"]
    if rows:
        lines += [
            "",
            "Matrix rows (the `OHIF 3.13 (browser)` column above): "
            f"{sum(r['ok'] for r in rows)} of {len(rows)} load exactly. Each row's files were "
            "also checked with `segbridge validate --profile ohif`; every row that fails in "
            "OHIF is flagged by it or is not served by Orthanc:",
            "",
        ]
        for r in rows:
            if not r["ok"]:
                lines.append(f"- {r['name']}: {r['reason']}")
        loose = [r for r in rows if r["ok"] and r.get("ohif_profile_errors")]
        if loose:
            lines += ["", "Rows `segbridge validate --profile ohif` flags that OHIF 3.13 still "
                          "loads exactly (the profile guards older OHIF / the adapters' buffer "
                          "path too):", ""]
            lines += [f"- {r['name']}: {', '.join(r['ohif_profile_errors'])}" for r in loose]
    stats = next((r["stats"] for r in cases if r.get("stats")), None)
    if stats:
        lines += [
            "",
            "### Statistics and bidirectional: OHIF against `segbridge stats` / `measure`",
            "",
            "From the `overlap` case: OHIF's own segment statistics (`namedStats` of each "
            "segment, what its segmentation panel shows) and Cornerstone's "
            "`getSegmentLargestBidirectional` (what OHIF's \"Compute Largest Bidirectional\" "
            "runs), read in the page, against `segbridge stats --image CT --format json` and "
            "`segbridge measure --image CT --json` on the same files. A value agrees when the raw "
            "numbers are within 1e-9 (relative; statistics) or 1e-4 mm (coordinates and "
            "lengths: Cornerstone keeps world coordinates in float32) **and** print the same in "
            "segbridge's format. Same definitions on both sides: population standard deviation "
            "(Welford in Cornerstone, two-pass in segbridge), exact median, volume = voxels x "
            "voxel volume, the longest in-plane chord between contour points and the longest "
            "chord perpendicular to it (|cos| <= 0.01) per slice.",
            "",
            "| segment | quantity | OHIF 3.13 | segbridge | printed (OHIF / segbridge) | agree |",
            "|---|---|---|---|---|---|",
        ]
        for s in stats:
            mark = "⬜ explained" if s["explained"] else ("✅" if s["agree"] else "❌")
            lines.append(f"| {s['segment']} | {s['quantity']} | {s['ohif']!r} | "
                         f"{s['segbridge']!r} | {s['ohif_printed']} / {s['segbridge_printed']} "
                         f"| {mark} |")
        why = sorted({s["explained"] for s in stats if s["explained"]})
        lines += ["", *[f"Explained: {w}." for w in why]]
    exports = [r for r in cases if r.get("export")]
    if exports:
        lines += ["", "### OHIF's own exports read by segbridge", ""]
        for r in exports:
            e = r["export"]
            findings = e["validate"] if isinstance(e["validate"], list) else [str(e["validate"])]
            where = ("on OHIF's file" if e.get("dcmqi") != "repaired" else
                     "on the file `segbridge repair --profile slicer` wrote; dcmqi refuses "
                     f"OHIF's own: {e.get('dcmqi_original')}")
            lines += [
                f"- `{r['name']}`: OHIF's `downloadSegmentation` wrote a "
                f"{e.get('segmentation_type')} SEG ({e.get('transfer_syntax')}); painted "
                f"{e.get('painted')}, overlap {e.get('overlap_painted')} voxels. segbridge.read, "
                "`segbridge convert` + nibabel and dcmqi "
                f"({where}) "
                "give the painted voxels exactly. `segbridge validate` on OHIF's file: "
                + ("no findings." if not findings else ""),
                *[f"  - {f}" for f in findings],
            ]
        lines += [
            "- Strokes of OHIF's brush painted over a locked segment are exported as the wrong "
            "segment: Cornerstone keeps them on a private labelmap with label value 1 and "
            "OHIF 3.13's exporter writes raw values as segment numbers (segment 2 comes out "
            "empty, both segments labelled \"Segment 1\"). Real files in `tests/data/ohif313/`; "
            "`segbridge validate` warns SEG-DUPLICATE-FRAMES and SEG-DUPLICATE-LABELS on them.",
            "- OHIF's \"Save\" (STOW of that 1-bit RLE BINARY SEG) works, but OHIF then cannot "
            "reload its own SEG from Orthanc 1.10 (HTTP 500, 'Cannot transcode image').",
        ]
    return "\n".join(lines) + "\n"
