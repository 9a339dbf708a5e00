"""The "OHIF 3.13 (browser)" column of docs/interop.md: every SEG of the interop matrix, and every
case of interop/ohif/cases.py, loaded in the real OHIF Viewer through harness.py, one run each.

    python interop/ohif/matrix.py [--json docs/interop-ohif.json] [--only REGEX] [--reclassify]
    (--only reruns the matching rows / cases and keeps the other results in --json)
    python interop/write_matrix.py        # then puts the column and the case table in the docs

The matrix rows are made by the producers of tests/test_interop.py (segbridge in every profile,
type and compression; highdicom; dcmqi) on dcmqi's CT, exactly as the interop tests make them.
About 15 minutes on 2 cores (a run is 12-45 s). Needs what interop/ohif/run.sh sets up
(`bash interop/ohif/run.sh --setup-only`), Orthanc and chromium.

A failing run is classified by its FAIL line: HTTP 400 / 500 from Orthanc are limits of the
server in front of OHIF (expected, explained); anything else is a red cell.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

#: the case whose stack and MPR screenshots go to docs/ (overlapping segments of two series)
SCREENSHOT_CASE = "overlap"

#: FAIL line pattern -> why (a limit of the server in front of OHIF, not of segbridge's file)
KNOWN = [
    (re.compile(r"HTTP 400 for GET .*/frames/"),
     "Orthanc 1.10 answers HTTP 400 to single frames of a 1-bit SEG whose Rows x Columns is "
     "not a multiple of 8 (a frame does not start on a byte), so OHIF never gets the frames"),
    (re.compile(r"HTTP 500"),
     "Orthanc 1.10 (Debian) cannot transcode this transfer syntax for OHIF's request "
     "(HTTP 500, Orthanc logs 'Cannot transcode image'): 1-bit RLE, JPEG 2000 and Deflated "
     "Image Frame are not served"),
]


def classify(line: str) -> tuple[bool, str]:
    """(expected, reason) of a FAIL line."""
    for pattern, why in KNOWN:
        if pattern.search(line):
            return False, why
    line = re.sub(r" \(\+\d+ more, see .*\)$", "", line)  # no temporary paths in the docs
    return True, line.removeprefix("ohif harness: FAIL ").strip()


def ohif_profile_errors(files: list[Path], ct: Path) -> list[str]:
    """Rule ids `segbridge validate --profile ohif` reports as errors on these files: a row
    outside the profile that fails in OHIF is a limit the profile already guards against."""
    from segbridge.validate import validate

    ids: list[str] = []
    for f in files:
        for finding in validate(f, reference=ct, profile="ohif").findings:
            if finding.severity == "error" and finding.rule not in ids:
                ids.append(finding.rule)
    return ids


def classify_row(ok: bool, line: str, errors: list[str]) -> tuple[bool, str]:
    """(expected, reason) of a matrix row, knowing what the ohif profile says of its files."""
    if ok:
        return True, ""
    expected, reason = classify(line)
    if errors:
        return False, f"outside the `ohif` profile (`segbridge validate --profile ohif`: " \
                      f"{', '.join(errors)}): {reason}"
    return expected, reason


def harness(args: list[str], out: Path, timeout: float) -> tuple[bool, str, float]:
    t = time.time()
    p = subprocess.run([sys.executable, str(HERE / "harness.py"), *args, "--out", str(out),
                        "--timeout", str(timeout)], capture_output=True, text=True,
                       timeout=timeout + 180)
    line = (p.stdout.strip() or p.stderr.strip()).splitlines()[-1:] or ["(no output)"]
    return p.returncode == 0, line[0], time.time() - t


def keep_details(cell: dict, result: Path) -> None:
    """For the docs: the statistics table and the export findings of a case's run."""
    if not result.is_file():
        return
    r = json.loads(result.read_text())
    if r.get("stats"):
        cell["stats"] = r["stats"]
    if r.get("export"):
        e = r["export"]
        v = e.get("validate")
        cell["export"] = {
            "segmentation_type": (e.get("info") or {}).get("segmentation_type")
            if isinstance(e.get("info"), dict) else None,
            "transfer_syntax": (e.get("info") or {}).get("transfer_syntax")
            if isinstance(e.get("info"), dict) else None,
            "painted": e.get("painted"), "overlap_painted": e.get("overlap_painted"),
            "validate": [f"{f.get('severity')} {f.get('rule')} {f.get('where')}: {f.get('message')}"
                         for f in (v.get("findings") or [])] if isinstance(v, dict) else v,
            "dcmqi": (e.get("dcmqi") or {}).get("file"),
            "dcmqi_original": e.get("dcmqi_original"), "repair": e.get("repair")}
    mpr = (r.get("ohif_detail") or {}).get("mpr")
    if mpr:
        cell["mpr_actors_untouched"] = mpr.get("labelmap_actors_untouched")


def matrix_rows(tmp: Path):
    """(dataset, producer, config, CT folder, files) for each row of the interop matrix."""
    import test_interop as ti
    from conftest import CT3, DCMQI

    import segbridge as sb

    ct3 = sb.read_series(CT3)
    odd_ref = sb.read_series(DCMQI / "23x38x3" / "image")
    data = {"ct": (ct3, sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)),
            "odd": (odd_ref, sb.read(DCMQI / "23x38x3" / "seg" / "label.seg",
                                     reference=odd_ref)),
            "tmp": tmp}
    tmp.mkdir(parents=True, exist_ok=True)
    folders = {"ct": CT3, "odd": DCMQI / "23x38x3" / "image"}
    for cfg in ti.SEGBRIDGE:
        p = ti.produce_segbridge(data, cfg)
        yield p.dataset, p.producer, p.config, folders[p.dataset], p.files
    for cfg in ti.PEERS:
        p = ti.produce_peer(data, cfg)
        yield p.dataset, p.producer, p.config, folders[p.dataset], p.files


def main() -> int:
    from cases import CASES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "interop-ohif.json")
    ap.add_argument("--only", help="run only rows / cases whose name matches this regex")
    ap.add_argument("--timeout", type=float, default=240.0)
    ap.add_argument("--reclassify", action="store_true",
                    help="keep the runs in --json, only redo the classification of matrix rows")
    a = ap.parse_args()
    only = re.compile(a.only) if a.only else None
    tmp = Path(tempfile.mkdtemp(prefix="segbridge-ohif-matrix-"))
    previous = json.loads(a.json.read_text()) if (a.reclassify or a.only) and \
        a.json.is_file() else []
    # --reclassify keeps every case; --only keeps the results it does not rerun
    cells: list[dict] = [c for c in previous if (c["kind"] == "case") if a.reclassify] + \
        [c for c in previous if only and not a.reclassify and not only.search(c["name"])]
    t0 = time.time()

    def record(kind: str, name: str, ok: bool, line: str, secs: float, **extra) -> None:
        expected, reason = (True, "") if ok else classify(line)
        cells.append({"kind": kind, "name": name, "ok": ok, "expected": expected,
                      "reason": reason, "line": line, "seconds": round(secs, 1), **extra})
        mark = "ok  " if ok else ("fail" if expected else "limit")
        print(f"[{time.time() - t0:6.0f} s] {mark} {name}: {line[:160]}", flush=True)
        a.json.write_text(json.dumps(cells, indent=1))

    for dataset, producer, config, ct, files in matrix_rows(tmp / "produced"):
        name = f"{dataset} | {producer} | {config}"
        if only and not only.search(name):
            continue
        out = tmp / re.sub(r"\W+", "_", name)
        errors = ohif_profile_errors(files, ct)
        if a.reclassify:
            old = next(c for c in previous if c.get("name") == name)
            ok, line, secs = old["ok"], old["line"], old["seconds"]
        else:
            ok, line, secs = harness(["--ct", str(ct), "--segs", ",".join(map(str, files))],
                                     out, a.timeout)
        record("matrix", name, ok, line, secs, dataset=dataset, producer=producer,
               config=config, ohif_profile_errors=errors)
        cells[-1]["expected"], cells[-1]["reason"] = classify_row(ok, line, errors)
        a.json.write_text(json.dumps(cells, indent=1))
    for case in CASES.values():
        if a.reclassify or (only and not only.search(case.name)):
            continue
        ok, line, secs = harness(["--case", case.name], tmp / case.name, a.timeout)
        known = (not ok and case.expect is not None and case.expect_fail_match is not None
                 and re.search(case.expect_fail_match, line) is not None)
        record("case", case.name, ok, line, secs, what=case.what, ci=case.ci,
               case_expect=case.expect, known=known)
        if known:
            cells[-1].update(expected=False, reason=case.expect)
        keep_details(cells[-1], tmp / case.name / "result.json")
        if case.name == SCREENSHOT_CASE and ok:  # README's and the docs' pictures
            for shot in ("ohif-stack.png", "ohif-mpr.png"):
                shutil.copyfile(tmp / case.name / shot, a.json.parent / f"{case.name}-{shot}")
        a.json.write_text(json.dumps(cells, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    bad = [c for c in cells if not c["ok"] and c["expected"]]
    print(f"{len(cells)} runs in {time.time() - t0:.0f} s: {sum(c['ok'] for c in cells)} pass, "
          f"{len(cells) - len(bad) - sum(c['ok'] for c in cells)} limits of the server, "
          f"{len(bad)} unexpected failures; wrote {a.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
