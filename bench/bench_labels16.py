"""16-bit label maps with many segments (issue 14 point 3): segbridge against highdicom and dcmqi.

A synthetic 512x512xS CT series with N cell-like blobs (non-overlapping spheres of radius 3-6
voxels, labels 1..N in a 16-bit NIfTI), for N = 1,000 and 5,000:

- labels -> LABELMAP SEG 66.7, 16-bit RLE   segbridge | highdicom | dcmqi (itkimage2segimage
                                            BINARY, then bin2labelsegimage --compress rle: its
                                            only RLE route)
- labels -> BINARY SEG 66.4 (native)        segbridge | highdicom | dcmqi
- LABELMAP SEG -> NIfTI                     segbridge | highdicom get_volume | dcmqi
                                            segimage2itkimage --mergeSegments

Each tool runs in its own process (bench/common.py: wall time and peak RSS of the whole job), and
every run is killed after ``--timeout`` seconds (10 minutes by default; such a run is reported,
not hidden). The read task reads the LABELMAP SEG written by highdicom, so every reader gets the
same input (and segbridge reads a 16-bit label map it did not write). Every SEG written is checked
(SOP class, SegmentationType, BitsAllocated, transfer syntax) and read back by segbridge onto the
CT and compared with the labels voxel for voxel; every NIfTI read is compared with the labels.

usage: python bench/bench_labels16.py [--reps 3] [--slices 150] [--labels 1000 5000]
                                      [--timeout 600] [--only TOOL ...] [--render]
                                      [--out bench/out/labels16] [--markdown docs/performance.md]
(--only reruns some tools and merges their rows into OUT/results.json; --render re-publishes it)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, HERE, PY, Run, dcmqi_meta, publish, timed, write_json  # noqa: E402

SEG_SOP, LABELMAP_SOP = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"
RLE, EXPLICIT = "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1"
#: a single run longer than this is not repeated (the median of one)
LONG_RUN_S = 60.0


def make_cells(shape, n: int, seed: int = 0) -> np.ndarray:
    """``n`` non-overlapping spheres of radius 3-6 voxels (cell-like blobs; neighbours may touch)
    labelled 1..n in random places, uint16."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    placed = 0
    while placed < n:
        r = rng.uniform(3.0, 6.0)
        c = rng.uniform((r, r, r), np.array(shape) - r)
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        m = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
        box = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if box[m].any():
            continue
        placed += 1
        box[m] = placed
    return labels


def prepare(out: Path, slices: int, n: int) -> dict:
    from segbridge.geometry import Grid, flip_lps_ras
    from segbridge.synthetic import write_ct_series

    data = out / f"data_{slices}_{n}"
    paths = {"ct": data / "ct", "labels": data / "labels.nii.gz", "meta": data / "meta.json",
             "labels_npy": data / "labels.npy"}
    if (data / "done").exists():
        return paths
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    grid = Grid((slices, 512, 512), origin=(-250.0, -250.0, -400.0),
                spacing=(1.5, 0.9765625, 0.9765625), direction=np.eye(3))
    labels = make_cells(grid.shape, n, seed=n)
    hu = np.where(labels > 0, 40.0, -200.0).astype(np.float32)
    write_ct_series(paths["ct"], hu, grid, uid_seed=f"segbridge-bench-labels16-{slices}-{n}")
    affine = flip_lps_ras(grid.affine)
    img = nib.Nifti1Image(np.transpose(labels, (2, 1, 0)), affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    img.set_data_dtype(np.uint16)
    nib.save(img, str(paths["labels"]))
    np.save(paths["labels_npy"], labels)
    write_json(paths["meta"], dcmqi_meta(n))
    (data / "done").write_text("ok")
    return paths


def tasks(p: dict, w: Path, n: int) -> list[tuple[str, str, list[str], Path, dict]]:
    """(task, tool, command, output, what the output must be)."""
    sb = str(BIN / "segbridge")
    ct, labels, meta = str(p["ct"]), str(p["labels"]), str(p["meta"])
    hd_w = str(HERE / "peers" / "highdicom_write.py")
    hd_r = str(HERE / "peers" / "highdicom_read.py")
    i2s = str(BIN / "itkimage2segimage")
    lm = {"sop": LABELMAP_SOP, "type": "LABELMAP", "bits": 16, "ts": RLE}
    binary = {"sop": SEG_SOP, "type": "BINARY", "bits": 1, "ts": EXPLICIT}
    nii = {"volume": True}
    t_lm, t_bin, t_read = ("labels -> LABELMAP 66.7 (16-bit RLE)", "labels -> BINARY 66.4",
                           "LABELMAP SEG -> NIfTI")

    def dcmqi_bin(out: str) -> list[str]:
        return [i2s, "--inputImageList", labels, "--inputDICOMDirectory", ct, "--outputDICOM",
                out, "--inputMetadata", meta]

    return [
        (t_lm, "segbridge", [sb, "convert", labels, "-o", str(w / "sb_lm.dcm"), "-r", ct,
                             "--meta", meta, "--type", "labelmap", "--profile", "archive",
                             "--compression", "rle"], w / "sb_lm.dcm", lm),
        (t_lm, "highdicom", [PY, hd_w, ct, labels, str(w / "hd_lm.dcm"), "LABELMAP", "rle"],
         w / "hd_lm.dcm", lm),
        (t_lm, "dcmqi", ["sh", "-c", " && ".join([
            " ".join(dcmqi_bin(str(w / "dcmqi_lm_binary.dcm"))),
            " ".join([str(BIN / "bin2labelsegimage"), "--inputDICOM",
                      str(w / "dcmqi_lm_binary.dcm"), "--outputDICOM", str(w / "dcmqi_lm.dcm"),
                      "--compress", "rle"])])], w / "dcmqi_lm.dcm", lm),
        (t_bin, "segbridge", [sb, "convert", labels, "-o", str(w / "sb_binary.dcm"), "-r", ct,
                              "--meta", meta, "--type", "binary", "--profile", "slicer",
                              "--compression", "none"], w / "sb_binary.dcm", binary),
        (t_bin, "highdicom", [PY, hd_w, ct, labels, str(w / "hd_binary.dcm"), "BINARY",
                              "explicit"], w / "hd_binary.dcm", binary),
        (t_bin, "dcmqi", dcmqi_bin(str(w / "dcmqi_binary.dcm")), w / "dcmqi_binary.dcm",
         binary),
        (t_read, "segbridge", [sb, "convert", str(w / "hd_lm.dcm"), "-o",
                               str(w / "sb_read.nii.gz")], w / "sb_read.nii.gz", nii),
        (t_read, "highdicom", [PY, hd_r, str(w / "hd_lm.dcm"), str(w / "hd_read.nii.gz")],
         w / "hd_read.nii.gz", nii),
        (t_read, "dcmqi", [str(BIN / "segimage2itkimage"), "--inputDICOM", str(w / "hd_lm.dcm"),
                           "--outputDirectory", str(w / "dcmqi_read"), "-t", "nii",
                           "--mergeSegments"], w / "dcmqi_read", nii),
    ]


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def verify_seg(path: Path, ref, labels: np.ndarray, want: dict) -> tuple[bool, str]:
    """The header is what the task asks for, and segbridge reads the labels back exactly
    (segments matched through their labels "structure N", as every writer was given)."""
    import segbridge as sb

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    got = (str(ds.SOPClassUID), str(ds.SegmentationType), int(ds.BitsAllocated),
           str(ds.file_meta.TransferSyntaxUID))
    if got != (want["sop"], want["type"], want["bits"], want["ts"]):
        return False, f"header {got}"
    seg = sb.read(path, reference=ref)
    lab = np.zeros_like(labels)
    for s in seg.segments:
        lab[seg.mask(s.number)] = int(s.label.split()[-1]) if s.label.startswith("structure") \
            else s.number
    if len(seg.segments) != int(labels.max()):
        return False, f"{len(seg.segments)} segments"
    return bool(np.array_equal(lab, labels)), "" if np.array_equal(lab, labels) else "voxels"


def verify_volume(path: Path, labels: np.ndarray, ref_grid) -> tuple[bool, str]:
    """A NIfTI label map (or dcmqi's output folder holding one) equals the labels in patient
    space."""
    import segbridge as sb
    from segbridge.geometry import align_array

    if path.is_dir():
        files = sorted(path.glob("*.nii*"))
        if len(files) != 1:
            return False, f"{len(files)} files in {path.name}"
        path = files[0]
    seg = sb.read(path)
    lab = align_array(seg.labelmap(), seg.grid, ref_grid, what=path.name)
    ok = bool(np.array_equal(lab.astype(labels.dtype), labels))
    return ok, "" if ok else "voxels"


def run_task(cmd: list[str], reps: int, timeout: float, before) -> Run:
    """Median of ``reps`` runs (one run when the first takes longer than LONG_RUN_S), each under
    coreutils ``timeout`` (peak RSS is still the whole job's: Linux folds a reaped child's
    maximum RSS into its parent's)."""
    limited = ["timeout", "-k", "10", str(int(timeout)), *cmd]
    runs = []
    for _ in range(reps):
        before()
        r = timed(limited)
        if not r.ok:
            if r.wall >= timeout:
                r.error = f"killed after the {timeout:.0f} s limit"
            return r
        runs.append(r)
        if r.wall > LONG_RUN_S:
            break
    return Run(statistics.median(r.wall for r in runs), max(r.peak_mb for r in runs), True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--slices", type=int, default=150)
    ap.add_argument("--labels", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only these tools and replace their rows in OUT/results.json "
                         "(the others' rows and outputs are kept)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "labels16")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--render", action="store_true",
                    help="only re-render the table from OUT/results.json")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render:
        import json

        res = json.loads((args.out / "results.json").read_text())
        publish(args.out / "results.json", res, markdown(res["rows"], res["meta"]),
                args.markdown, "labels16")
        return
    import segbridge as sb

    rows = []
    load_before, commit_before = os.getloadavg(), _commit()
    for n in args.labels:
        p = prepare(args.out, args.slices, n)
        labels = np.load(p["labels_npy"])
        ref = sb.read_series(p["ct"])
        work = args.out / f"work_{n}"
        if not args.only:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(exist_ok=True)
        for task, tool, cmd, output, want in tasks(p, work, n):
            if args.only and tool not in args.only:
                continue

            def clean(output=output):
                if output.is_dir():
                    shutil.rmtree(output)
                elif output.exists():
                    output.unlink()
                if output.name == "dcmqi_read":
                    output.mkdir()
            if task.startswith("LABELMAP SEG") and not (work / "hd_lm.dcm").exists():
                run, correct, why = Run(0.0, 0.0, False, "no input (highdicom's SEG)"), None, ""
            else:
                run = run_task(cmd, args.reps, args.timeout, clean)
                correct, why = None, ""
                if run.ok:
                    correct, why = verify_volume(output, labels, ref.grid) if want.get("volume") \
                        else verify_seg(output, ref, labels, want)
            row = {**run.row(task, tool), "labels": n, "size_mb": round(_size(output) / 2**20, 2),
                   "correct": correct, "why": why}
            rows.append(row)
            print(f"{n:5d} {task:38s} {tool:10s} {run.wall:8.2f} s {run.peak_mb:8.1f} MB "
                  f"{row['size_mb']:8.2f} MB correct={correct} {why} "
                  f"{'' if run.ok else run.error.strip()[-300:]}", flush=True)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "slices": args.slices, "labels": args.labels,
            "reps": args.reps, "timeout_s": args.timeout,
            "commit": commit_before if _commit() == commit_before
            else f"{commit_before} (changed to {_commit()} during the run)",
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}
    if args.only and (args.out / "results.json").exists():
        import json

        old = json.loads((args.out / "results.json").read_text())
        keep = [r for r in old["rows"]
                if not (r["tool"] in args.only and r["labels"] in args.labels)]
        order = {(r["labels"], r["task"], r["tool"]): i for i, r in enumerate(old["rows"])}
        rows = sorted(keep + rows, key=lambda r: order.get((r["labels"], r["task"], r["tool"]),
                                                           len(order)))
        meta = {**old["meta"], "reruns": old["meta"].get("reruns", []) + [
            {k: meta[k] for k in ("commit", "load_before", "load_after", "reps")}
            | {"tools": args.only, "labels": args.labels}]}
    publish(args.out / "results.json", {"meta": meta, "rows": rows}, markdown(rows, meta),
            args.markdown, "labels16")


def _commit() -> str:
    """HEAD, with "+dirty" when src/ has uncommitted changes (what segbridge ran)."""
    import subprocess

    root = HERE.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "src"],
                           capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def _ratio(rows, n, task, key: str) -> str:
    """segbridge's ``key`` (wall_s or peak_mb) over the best correct peer's."""
    mine = next((r for r in rows if r["labels"] == n and r["task"] == task
                 and r["tool"] == "segbridge" and r["ok"] and r["correct"]), None)
    peers = [r for r in rows if r["labels"] == n and r["task"] == task
             and r["tool"] != "segbridge" and r["ok"] and r["correct"]]
    if mine is None or not peers:
        return "-"
    best = min(peers, key=lambda r: r[key])
    return f"{mine[key] / best[key]:.2f} ({best['tool']})"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "## 16-bit label maps: 1,000 and 5,000 segments",
        "",
        "Generated by `python bench/bench_labels16.py --markdown docs/performance.md` "
        f"({meta['machine']}, Python {meta['python']}; median of up to {meta['reps']} runs, one "
        f"run when it takes over {LONG_RUN_S:.0f} s; each tool in its own process: wall time and "
        f"peak RSS of the whole job; every run killed after {meta['timeout_s']:.0f} s). Load "
        f"average (1/5/15 min) {meta['load_before']} before, {meta['load_after']} after: other "
        "jobs shared the 2 cores, so absolute times are noisy. segbridge at "
        f"{meta.get('commit', '?')}" + "".join(
            f"; {', '.join(r['tools'])} rows for N = {', '.join(map(str, r['labels']))} rerun "
            f"at {r['commit']} (load {r['load_before']} before, {r['load_after']} after)"
            for r in meta.get("reruns", [])) + ".",
        "",
        f"Input: synthetic CT of {meta['slices']} slices of 512x512 and a 16-bit NIfTI label map "
        "of N non-overlapping cell-like spheres (radius 3-6 voxels) labelled 1..N. "
        "The read task reads highdicom's LABELMAP SEG (the same input for every reader). Every "
        "SEG written is checked for SOP class / SegmentationType / BitsAllocated / transfer "
        "syntax and read back voxel for voxel; every NIfTI read is compared with the labels "
        "(column *correct*).",
        "",
        "| N | task | tool | wall (s) | peak RSS (MB) | output (MB) | correct | note |",
        "|---:|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        note = r["why"] or ""
        if not r["ok"]:
            note = f"FAILED: {' '.join(r['error']) if isinstance(r['error'], list) else r['error']}"
        lines.append(f"| {r['labels']} | {r['task']} | {r['tool']} | "
                     f"{r['wall_s']:.2f} | {r['peak_mb']:.0f} | {r['size_mb']:.2f} | "
                     f"{r['correct']} | {note} |")
    tasks_ = list(dict.fromkeys(r["task"] for r in rows))
    ns = list(dict.fromkeys(r["labels"] for r in rows))
    lines += ["", "segbridge / best correct peer (time; peak RSS):", "",
              "| task | " + " | ".join(f"N = {n} time | N = {n} peak RSS" for n in ns) + " |",
              "|---|" + "---:|---:|" * len(ns)]
    for t in tasks_:
        lines.append(f"| {t} | " + " | ".join(
            f"{_ratio(rows, n, t, 'wall_s')} | {_ratio(rows, n, t, 'peak_mb')}" for n in ns)
            + " |")
    notes = []
    for r in rows:
        if not r["ok"]:
            notes.append(f"- {r['tool']}, {r['task']}, N = {r['labels']}: did not finish "
                         f"({' '.join(r['error']) if isinstance(r['error'], list) else r['error']})"
                         "; not retried." + (
                             " dcmqi's RLE label map is two programs: itkimage2segimage (its "
                             "time alone is the BINARY row) and bin2labelsegimage."
                             if r["tool"] == "dcmqi" and "LABELMAP 66.7" in r["task"] else ""))
    big = [r for r in rows if r["tool"] == "segbridge" and r["ok"] and r["peak_mb"] > 512]
    for r in big:
        notes.append(f"- segbridge peaks above 512 MB (the issue's bound for any conversion at "
                     f"117 labels) on {r['task']}, N = {r['labels']}: {r['peak_mb']:.0f} MB for a "
                     f"{r['size_mb']:.0f} MB output.")
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
