"""Start-up latency: one small case per process, segbridge convert beside dcmqi.

The case is bench_web's (a 192x192x48 synthetic CT series + a label-map NIfTI -> DICOM SEG):
`segbridge convert labels.nii.gz -r ct -o out.dcm --type binary|labelmap` against dcmqi's
`itkimage2segimage` on the same files (its metadata JSON written beforehand). Each command is
one fresh process, timed whole (interpreter, imports, reading, writing, validation) from a small
launcher; the runs alternate between the tools so both see the same machine load. segbridge is
byte-compiled first, as an installed package is. Reported:
the median and the fastest wall time of ``--reps`` runs each, and segbridge's ratio to dcmqi.
``--importtime`` also prints the slowest top-level imports of one segbridge run
(``python -X importtime``).

``--baseline REV`` adds segbridge as of an earlier commit (its src/ from git archive) to the
same alternation, for a before/after under the same load.

usage: python bench/bench_latency.py [--reps 15] [--out bench/out] [--baseline REV]
                                     [--markdown docs/performance.md] [--importtime]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, PY, ROOT, dcmqi_meta, publish, timed  # noqa: E402

SHAPE = (48, 192, 192)


def make_case(out: Path) -> Path:
    """bench_web's collection of two cases (case000 binary, case001 labelmap), made once."""
    from segbridge.synthetic import write_collection

    coll = out / f"latency_{'x'.join(map(str, SHAPE))}"
    if not (coll / "done").exists():
        shutil.rmtree(coll, ignore_errors=True)
        write_collection(coll, 2, shape=SHAPE)
        for case in ("case000", "case001"):
            import nibabel as nib
            import numpy as np

            labels = np.asarray(nib.load(coll / case / "labels.nii.gz").dataobj)
            values = sorted(int(v) for v in np.unique(labels) if v)
            (coll / case / "dcmqi.json").write_text(json.dumps(dcmqi_meta(values)))
        (coll / "done").write_text("ok")
    return coll


def baseline_source(out: Path, rev: str) -> Path:
    """segbridge's src/ as of commit ``rev`` (git archive), byte-compiled."""
    root = out / f"baseline_{rev}"
    if not (root / "src" / "segbridge").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    compileall.compile_dir(root / "src", quiet=1)
    return root / "src"


def commands(coll: Path, work: Path, baseline: str | None) -> dict[str, list[str]]:
    sb = str(BIN / "segbridge")
    c0, c1 = coll / "case000", coll / "case001"
    old = {}
    if baseline:
        old = {f"segbridge {baseline} convert --type labelmap": [
            PY, "-m", "segbridge", "convert", str(c1 / "labels.nii.gz"), "-r", str(c1 / "ct"),
            "-o", str(work / "old_labelmap.dcm"), "--type", "labelmap", "--force"]}
    return {**old,
        "segbridge convert --type binary": [
            sb, "convert", str(c0 / "labels.nii.gz"), "-r", str(c0 / "ct"), "-o",
            str(work / "sb_binary.dcm"), "--type", "binary", "--force"],
        "segbridge convert --type labelmap": [
            sb, "convert", str(c1 / "labels.nii.gz"), "-r", str(c1 / "ct"), "-o",
            str(work / "sb_labelmap.dcm"), "--type", "labelmap", "--force"],
        "dcmqi itkimage2segimage": [
            str(BIN / "itkimage2segimage"), "--inputImageList", str(c0 / "labels.nii.gz"),
            "--inputDICOMDirectory", str(c0 / "ct"), "--outputDICOM", str(work / "dcmqi.dcm"),
            "--inputMetadata", str(c0 / "dcmqi.json")],
    }


def importtime(cmd: list[str], top: int = 15) -> list[tuple[str, float]]:
    """The slowest top-level imports (cumulative seconds) of one run of ``cmd``."""
    r = subprocess.run([PY, "-X", "importtime", "-m", "segbridge", *cmd[1:]],
                       capture_output=True, text=True)
    rows = []
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        name = name[1:]  # nesting shows as further leading spaces
        if not name.startswith(" "):
            rows.append((name.strip(), int(cum) / 1e6))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also time segbridge as of this git commit (before/after)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # byte-compile segbridge as `pip install` does (PYTHONDONTWRITEBYTECODE would otherwise make
    # every run compile segbridge's own modules again)
    import segbridge

    compileall.compile_dir(Path(segbridge.__file__).parent, quiet=1)
    coll = make_case(args.out)
    work = args.out / "work_latency"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = [os.getloadavg()[0]]
    cmds = commands(coll, work, args.baseline)
    envs = {}
    if args.baseline:
        envs[f"segbridge {args.baseline} convert --type labelmap"] = {
            "PYTHONPATH": str(baseline_source(args.out, args.baseline))}
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    errors: dict[str, str] = {}
    for name, cmd in cmds.items():  # one warm-up run each (page cache)
        r = timed(cmd, envs.get(name))
        if not r.ok:
            errors[name] = (r.error.strip().splitlines() or [""])[-1]
    for _ in range(args.reps):
        for name, cmd in cmds.items():
            if name in errors:
                continue
            r = timed(cmd, envs.get(name))
            if not r.ok:
                errors[name] = (r.error.strip().splitlines() or [""])[-1]
                continue
            walls[name].append(r.wall)
    load.append(os.getloadavg()[0])
    dcmqi = statistics.median(walls["dcmqi itkimage2segimage"]) \
        if walls["dcmqi itkimage2segimage"] else None
    rows = []
    for name, w in walls.items():
        med = statistics.median(w) if w else None
        rows.append({"run": name, "runs": len(w), "median_s": round(med, 3) if med else None,
                     "min_s": round(min(w), 3) if w else None,
                     "x_dcmqi": round(med / dcmqi, 2) if med and dcmqi else None,
                     "ok": name not in errors, "error": errors.get(name, "")})
        print(f"{name:36s} median {med or float('nan'):6.3f} s  min "
              f"{min(w) if w else float('nan'):6.3f} s  x dcmqi "
              f"{rows[-1]['x_dcmqi']}  {errors.get(name, '')}", flush=True)
    imports = importtime(cmds["segbridge convert --type labelmap"]) if args.importtime else []
    for name, s in imports:
        print(f"  import {name:30s} {s:6.3f} s")
    machine = f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    lines = [f"## Start-up latency ({machine})", "",
             f"`python bench/bench_latency.py --reps {args.reps}"
             f"{' --baseline ' + args.baseline if args.baseline else ''}` — one small case per "
             "process "
             f"(bench_web's {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} CT series + label-map NIfTI -> "
             "DICOM SEG), each command a fresh process timed whole (interpreter, imports, "
             "reading, writing, segbridge's validation of its output); tools alternate run by "
             f"run. 1-minute load average {load[0]:.1f} before, {load[1]:.1f} after on "
             f"{os.cpu_count()} cores (a loaded machine slows the Python runs more than dcmqi's; "
             "the fastest run is closest to an idle machine). Target: segbridge <= 0.25 s "
             "median, within about 2x of dcmqi.", "",
             "| run | runs | median (s) | fastest (s) | x dcmqi |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['runs']} | {r['median_s']} | {r['min_s']} | "
                     f"{r['x_dcmqi'] if r['x_dcmqi'] is not None else ''} |")
    if imports:
        lines += ["", "Slowest top-level imports of one `segbridge convert --type labelmap` "
                  "(`-X importtime`, cumulative):", "",
                  ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in imports[:8])]
    publish(args.out / "bench_latency.json", {"machine": machine, "rows": rows,
                                              "imports": imports},
            "\n".join(lines), args.markdown, "bench_latency")


if __name__ == "__main__":
    main()
