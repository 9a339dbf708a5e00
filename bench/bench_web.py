"""Batch and DICOMweb benchmark: cases per minute, and pull/push throughput against Orthanc.

Batch: 40 small synthetic cases (a 192x192x48 CT series + a labelmap NIfTI each -> DICOM SEG),
`segbridge batch` with 1 and 2 local worker processes and on a Dask LocalCluster with 1 and 2
workers; the peers are shell loops, one process per case: `segbridge convert` and dcmqi's
`itkimage2segimage`. Every run starts from an empty output folder; wall time is the whole
command (interpreter, pool or cluster start-up included). Every output is checked.

DICOMweb: the core benchmark's 512x512x200 CT series (~100 MB) pushed to and pulled from a
real Orthanc with its DICOMweb plugin on loopback (a fresh server for each push): `segbridge
push` / `segbridge pull` against dicomweb-client used directly (store_instances in requests of
50; one retrieve_series request). MB/s counts the bytes of the series files.

usage: python bench/bench_web.py [--cases 40] [--reps 1] [--out bench/out]
                                 [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_core import prepare  # noqa: E402
from common import BIN, HERE, PY, dcmqi_meta, publish, repeat  # noqa: E402
from orthanc import Orthanc  # noqa: E402


def dcmqi_loop(manifest: Path, outdir: Path) -> str:
    """A bash loop running itkimage2segimage once per case (metadata written beforehand)."""
    lines = ["set -e"]
    with open(manifest, newline="") as fp:
        for row in csv.DictReader(fp):
            case = manifest.parent / row["case"]
            meta = case / "dcmqi.json"
            if not meta.exists():
                import nibabel as nib

                labels = sorted(int(v) for v in np.unique(
                    np.asarray(nib.load(case / "labels.nii.gz").dataobj)) if v)
                meta.write_text(json.dumps(dcmqi_meta(labels)))
            lines.append(f"{BIN / 'itkimage2segimage'} --inputImageList {case / 'labels.nii.gz'} "
                         f"--inputDICOMDirectory {case / 'ct'} --outputDICOM "
                         f"{outdir / (row['case'] + '.dcm')} --inputMetadata {meta} "
                         ">/dev/null")
    return "\n".join(lines)


def convert_loop(manifest: Path, outdir: Path) -> str:
    lines = ["set -e"]
    with open(manifest, newline="") as fp:
        for row in csv.DictReader(fp):
            case = manifest.parent / row["case"]
            lines.append(f"{BIN / 'segbridge'} convert {case / 'labels.nii.gz'} -r {case / 'ct'} "
                         f"-o {outdir / (row['case'] + '.dcm')} --type {row['type']} >/dev/null")
    return "\n".join(lines)


def check_outputs(manifest: Path, outdir: Path, n: int) -> bool:
    """Every case has a SEG that holds its labels (checked on a sample of 5)."""
    import segbridge as sb

    files = sorted(outdir.glob("case*.dcm"))
    if len(files) != n:
        return False
    for f in files[:: max(1, n // 5)]:
        case = manifest.parent / f.stem
        got = sb.read(f, reference=case / "ct")
        want = sb.read(case / "labels.nii.gz", reference=case / "ct")
        if not np.array_equal(got.labelmap() > 0, want.labelmap() > 0):
            return False
    return True


def bench_batch(out: Path, n: int, reps: int, shape: tuple[int, int, int]) -> list[dict]:
    from segbridge.synthetic import write_collection

    coll = out / f"collection_{n}_{'x'.join(map(str, shape))}"
    manifest = coll / "manifest.csv"
    if not (coll / "done").exists():
        shutil.rmtree(coll, ignore_errors=True)
        write_collection(coll, n, shape=shape)
        (coll / "done").write_text("ok")
    sb = str(BIN / "segbridge")
    runs = [
        ("segbridge batch, 1 process", [sb, "batch", str(manifest), "-o", "{out}"]),
        ("segbridge batch, 2 processes", [sb, "batch", str(manifest), "-o", "{out}", "-j", "2"]),
        ("segbridge batch, Dask LocalCluster 1 worker",
         [sb, "batch", str(manifest), "-o", "{out}", "--scheduler", "local", "-j", "1"]),
        ("segbridge batch, Dask LocalCluster 2 workers",
         [sb, "batch", str(manifest), "-o", "{out}", "--scheduler", "local", "-j", "2"]),
        ("segbridge convert, one process per case (shell loop)", None),
        ("dcmqi itkimage2segimage, one process per case (shell loop)", "dcmqi"),
    ]
    rows = []
    for name, cmd in runs:
        target = out / "work_web" / name.split(",")[0].replace(" ", "_") / str(len(rows))

        def fresh(target=target):
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)

        if cmd is None:
            fresh()
            script = convert_loop(manifest, target)
            run_cmd = ["bash", "-c", script]
        elif cmd == "dcmqi":
            fresh()
            script = dcmqi_loop(manifest, target)
            run_cmd = ["bash", "-c", script]
        else:
            run_cmd = [c.replace("{out}", str(target)) for c in cmd]
        r = repeat(run_cmd, reps, before=fresh)
        ok = r.ok and check_outputs(manifest, target, n)
        rows.append({"run": name, "wall_s": round(r.wall, 2), "peak_mb": round(r.peak_mb),
                     "cases_per_min": round(n / r.wall * 60, 1) if r.ok else None, "ok": ok,
                     "error": r.error[-300:] if not r.ok else ""})
        print(f"{name:60s} {r.wall:7.2f} s {rows[-1]['cases_per_min']} cases/min ok={ok}",
              flush=True)
    return rows


def series_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def bench_pacs(out: Path, reps: int) -> list[dict]:
    import pydicom

    ct = prepare(out, 200, 100)["ct"]
    size = series_bytes(ct)
    first = pydicom.dcmread(next(p for p in sorted(ct.iterdir()) if p.is_file()),
                            stop_before_pixels=True)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    peer = str(HERE / "peers" / "dicomweb_client_transfer.py")
    sb = str(BIN / "segbridge")
    rows = []
    work = out / "work_web" / "pacs"
    for what, tool, make in [
        ("push", "segbridge push", lambda url, o: [sb, "push", str(ct), "--url", url]),
        ("push", "dicomweb-client", lambda url, o: [PY, peer, "push", str(ct), url]),
    ]:
        walls = []
        for _ in range(reps):
            shutil.rmtree(work, ignore_errors=True)
            with Orthanc(work / "orthanc") as server:
                r = repeat(make(server.url, None), 1)
                stored = len(server._get("/instances"))
            walls.append(r.wall)
            ok = r.ok and stored == 200
        wall = float(np.median(walls))
        rows.append({"op": what, "tool": tool, "wall_s": round(wall, 2), "mb": round(size / 1e6),
                     "mb_per_s": round(size / 1e6 / wall, 1), "ok": ok})
        print(f"{what} {tool:20s} {wall:6.2f} s {size / 1e6 / wall:6.1f} MB/s ok={ok}",
              flush=True)
    shutil.rmtree(work, ignore_errors=True)
    with Orthanc(work / "orthanc") as server:
        assert repeat([sb, "push", str(ct), "--url", server.url], 1).ok
        for tool, make in [
            ("segbridge pull (4 workers, default)",
             lambda o: [sb, "pull", server.url, "--study", study, "--series", series, "-o",
                        str(o)]),
            ("segbridge pull (2 workers)",
             lambda o: [sb, "pull", server.url, "--study", study, "--series", series, "-o",
                        str(o), "--workers", "2"]),
            ("dicomweb-client", lambda o: [PY, peer, "pull", server.url, study, series, str(o)]),
        ]:
            target = work / "pulled"

            def fresh(target=target):
                shutil.rmtree(target, ignore_errors=True)

            r = repeat(make(target), reps, before=fresh)
            got = sorted(p for p in target.rglob("*.dcm"))
            ok = r.ok and len(got) == 200
            rows.append({"op": "pull", "tool": tool, "wall_s": round(r.wall, 2),
                         "mb": round(size / 1e6), "mb_per_s": round(size / 1e6 / r.wall, 1),
                         "ok": ok})
            print(f"pull {tool:36s} {r.wall:6.2f} s {size / 1e6 / r.wall:6.1f} MB/s ok={ok}",
                  flush=True)
    return rows


def markdown(batch: list[dict], pacs: list[dict], n: int, meta: dict, shape) -> str:
    lines = [f"## Batch and DICOMweb ({meta['machine']})", "",
             f"`python bench/bench_web.py` — {n} small cases ({shape[2]}x{shape[1]}x{shape[0]} "
             "CT + labelmap NIfTI -> DICOM SEG, BINARY and LABELMAP alternating), each run "
             "from an empty output folder, whole command timed "
             "(start-up of the pool or cluster included); outputs checked.", "",
             "| run | wall (s) | cases/min | peak MB | output ok |", "|---|---:|---:|---:|---|"]
    for r in batch:
        lines.append(f"| {r['run']} | {r['wall_s']} | {r['cases_per_min']} | {r['peak_mb']} | "
                     f"{'yes' if r['ok'] else 'NO'} |")
    lines += ["", "DICOMweb against Orthanc 1.10 + DICOMweb plugin on loopback, the 512x512x200 "
              "CT series of the core benchmark:", "",
              "| operation | tool | wall (s) | MB | MB/s | ok |", "|---|---|---:|---:|---:|---|"]
    for r in pacs:
        lines.append(f"| {r['op']} | {r['tool']} | {r['wall_s']} | {r['mb']} | {r['mb_per_s']} | "
                     f"{'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--skip-pacs", action="store_true")
    ap.add_argument("--shape", default="48,192,192", help="slices,rows,columns of a case")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                       f"{platform.python_version()}"}
    shape = tuple(int(v) for v in args.shape.split(","))
    batch = bench_batch(args.out, args.cases, args.reps, shape)
    pacs = [] if args.skip_pacs else bench_pacs(args.out, args.reps)
    publish(args.out / "results_web.json", {"meta": meta, "batch": batch, "pacs": pacs},
            markdown(batch, pacs, args.cases, meta, shape), args.markdown, "web")


if __name__ == "__main__":
    main()
