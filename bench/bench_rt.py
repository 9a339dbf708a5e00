"""RTSTRUCT benchmark: labelmap -> RTSTRUCT and RTSTRUCT -> labelmap, 100 structures.

Input: the core benchmark's synthetic 512x512x200 CT series with 100 labels (NIfTI). Each tool
runs in its own process (wall time and peak RSS of the whole job):

- labelmap -> RTSTRUCT   segbridge convert --to rtstruct | rt-utils (RTStructBuilder.add_roi
                         per structure) | plastimatch convert --input-prefix (a folder of one
                         NRRD mask per structure, written beforehand: its only labelmap input)
- RTSTRUCT -> labelmap   segbridge convert (centre rule, and --contour-fill rt-utils) |
                         plastimatch convert --output-labelmap | rt-utils
                         (get_roi_mask_by_name per structure, saved as NIfTI)

Every tool reads the same RTSTRUCT, the one rt-utils wrote (a peer's file, not ours). Every
output is checked: each written RTSTRUCT is rasterised by segbridge and compared with the labels
(Dice per structure; segbridge's own must be voxel-exact), each labelmap read is compared with
the labels.

usage: python bench/bench_rt.py [--reps 3] [--peer-reps 1] [--out bench/out]
                                [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import prepare  # noqa: E402
from common import BIN, HERE, PY, publish, repeat  # noqa: E402

TARGET = 2.0


def mask_folder(labels: np.ndarray, out: Path) -> Path:
    """One NRRD per structure, for plastimatch's --input-prefix (not timed)."""
    import nrrd

    folder = out / "prefix"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    header = {"space": "left-posterior-superior",
              "space directions": np.diag([0.9765625, 0.9765625, 1.5]),
              "space origin": np.array([-250.0, -250.0, -400.0]), "encoding": "gzip"}
    for v in [int(x) for x in np.unique(labels) if x]:
        nrrd.write(str(folder / f"structure {v}.nrrd"),
                   np.transpose(labels == v, (2, 1, 0)).astype(np.uint8), header)
    (folder / "done").write_text("ok")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peer-reps", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    p = prepare(args.out, 200, 100)
    labels = np.load(p["labels_npy"])
    prefix = mask_folder(labels, p["labels"].parent)
    work = args.out / "work_rt"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sb_bin = str(BIN / "segbridge")
    pm = shutil.which("plastimatch") or str(BIN / "plastimatch")
    rtu = str(HERE / "peers" / "rtutils_rt.py")
    ct, lab = str(p["ct"]), str(p["labels"])
    out = {name: work / name for name in (
        "segbridge.dcm", "rtutils.dcm", "plastimatch", "segbridge.nii.gz", "plastimatch.nrrd",
        "rtutils.nii.gz", "segbridge-rtutils-fill.nii.gz")}
    write_jobs = [
        ("labelmap -> RTSTRUCT", "segbridge",
         [sb_bin, "convert", lab, "-r", ct, "--to", str(out["segbridge.dcm"])], args.reps),
        ("labelmap -> RTSTRUCT", "rt-utils", [PY, rtu, "write", lab, ct, str(out["rtutils.dcm"])],
         args.peer_reps),
        ("labelmap -> RTSTRUCT", "plastimatch",
         [pm, "convert", "--input-prefix", str(prefix), "--referenced-ct", ct, "--output-dicom",
          str(out["plastimatch"])], args.peer_reps),
    ]
    rows = [run(*job) for job in write_jobs]
    common_rt = str(out["rtutils.dcm"])
    read_jobs = [
        ("RTSTRUCT -> labelmap", "segbridge",
         [sb_bin, "convert", common_rt, "-r", ct, "-o", str(out["segbridge.nii.gz"])], args.reps),
        ("RTSTRUCT -> labelmap", "segbridge --contour-fill rt-utils",
         [sb_bin, "convert", common_rt, "-r", ct, "--contour-fill", "rt-utils", "-o",
          str(out["segbridge-rtutils-fill.nii.gz"])], args.reps),
        ("RTSTRUCT -> labelmap", "plastimatch",
         [pm, "convert", "--input", common_rt, "--referenced-ct", ct, "--output-labelmap",
          str(out["plastimatch.nrrd"])], args.peer_reps),
        ("RTSTRUCT -> labelmap", "rt-utils",
         [PY, rtu, "read", common_rt, ct, str(out["rtutils.nii.gz"])], args.peer_reps),
    ]
    rows += [run(*job) for job in read_jobs]
    check(rows, out, labels, p["ct"])
    summary = summarise(rows)
    meta = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
            "python": platform.python_version(), "reps": args.reps, "peer_reps": args.peer_reps}
    publish(args.out / "results_rt.json", {"meta": meta, "rows": rows, "summary": summary},
            markdown(rows, summary, meta), args.markdown, "rt", sidecar="performance-rt.json")


def run(task: str, tool: str, cmd: list[str], reps: int) -> dict:
    r = repeat(cmd, reps)
    print(f"{task:22s} {tool:34s} {r.wall:7.2f} s {r.peak_mb:8.1f} MB {'' if r.ok else r.error}",
          flush=True)
    return r.row(task, tool)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def _labels_dice(got: np.ndarray, labels: np.ndarray) -> float:
    """Mean Dice over the structures of ``labels`` (per-structure masks compared)."""
    return float(np.mean([_dice(got == v, labels == v) for v in range(1, int(labels.max()) + 1)
                          if (labels == v).any()]))


def check(rows: list[dict], out: dict, labels: np.ndarray, ct: Path) -> None:
    import segbridge as sb
    from segbridge.errors import Report

    ref = sb.read_series(ct)
    for r in rows:
        r["mean_dice"] = None
        if not r["ok"]:
            continue
        if r["task"].startswith("labelmap"):
            path = {"segbridge": out["segbridge.dcm"], "rt-utils": out["rtutils.dcm"],
                    "plastimatch": next(out["plastimatch"].glob("rtss*.dcm"), None)}[r["tool"]]
            seg = sb.read(path, reference=ref, report=Report())
            got = np.zeros(labels.shape, np.int32)
            for s in seg.segments:
                value = int(s.label.rsplit(" ", 1)[-1]) if s.label[-1].isdigit() else 0
                got[seg.mask(s.number)] = value
        else:
            path = {"segbridge": out["segbridge.nii.gz"], "plastimatch": out["plastimatch.nrrd"],
                    "rt-utils": out["rtutils.nii.gz"],
                    "segbridge --contour-fill rt-utils": out["segbridge-rtutils-fill.nii.gz"]
                    }[r["tool"]]
            got = _volume_labels(path, r["tool"], labels.shape)
        r["mean_dice"] = round(_labels_dice(got, labels), 4)
        r["exact"] = bool(np.array_equal(got, labels))
        print(f"  {r['task']:22s} {r['tool']:12s} mean Dice {r['mean_dice']:.4f} "
              f"exact={r['exact']}", flush=True)


def _volume_labels(path: Path, tool: str, shape) -> np.ndarray:
    """A read-back labelmap as [z, y, x] with structure numbers as values."""
    if tool == "plastimatch":
        import nrrd

        arr, hdr = nrrd.read(str(path))
        # plastimatch numbers its labels in structure order, i.e. 1..N as "structure N" here
        return np.transpose(arr, (2, 1, 0)).astype(np.int32)
    if tool.startswith("segbridge"):
        import segbridge as sb

        seg = sb.read(path)
        got = np.zeros(shape, np.int32)
        for s in seg.segments:
            value = int(s.label.rsplit(" ", 1)[-1]) if s.label[-1].isdigit() else s.number
            got[seg.mask(s.number)] = value
        return got
    return np.transpose(np.asarray(nib.load(path).dataobj), (2, 1, 0)).astype(np.int32)


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for task in ("labelmap -> RTSTRUCT", "RTSTRUCT -> labelmap"):
        mine = next(r for r in rows if r["task"] == task and r["tool"] == "segbridge")
        peers = [r for r in rows if r["task"] == task and not r["tool"].startswith("segbridge")
                 and r["ok"]]
        if not peers or not mine["ok"]:
            continue
        best = min(peers, key=lambda r: r["wall_s"])
        speedup = best["wall_s"] / mine["wall_s"]
        out.append({"task": task, "fastest_peer": best["tool"], "speedup": round(speedup, 1),
                    "target": TARGET, "meets_target": speedup >= TARGET})
    return out


def markdown(rows, summary, meta) -> str:
    lines = [
        "## RTSTRUCT: contours <-> labelmaps",
        "",
        "Generated by `python bench/bench_rt.py --markdown docs/performance.md` "
        f"({meta['machine']}, Python {meta['python']}; median of {meta['reps']} runs for "
        f"segbridge, {meta['peer_reps']} for the peers; each tool in its own process).",
        "",
        "Input: the core benchmark's synthetic CT (512x512x200) with 100 structures. All readers "
        "read the RTSTRUCT rt-utils wrote. *mean Dice* compares each output with the labels "
        "(written RTSTRUCTs rasterised by segbridge); plastimatch's labelmap input is a folder "
        "of per-structure NRRDs prepared beforehand (not timed).",
        "",
        "| task | tool | wall s | peak MB | mean Dice | exact |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        d = f"{r['mean_dice']:.4f}" if r.get("mean_dice") is not None else "-"
        lines.append(f"| {r['task']} | {r['tool']} | {r['wall_s']:.2f} | {r['peak_mb']:.0f} | "
                     f"{d} | {'yes' if r.get('exact') else 'no'} |")
    lines.append("")
    for s in summary:
        lines.append(f"- {s['task']}: segbridge **{s['speedup']}x** faster than the fastest "
                     f"peer ({s['fastest_peer']}); target {s['target']:.0f}x: "
                     f"{'met' if s['meets_target'] else 'NOT met'}.")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
