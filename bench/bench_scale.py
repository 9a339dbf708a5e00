"""Whole-body scale: 512x512x600 and 512x512x1,500 CTs with 117 TotalSegmentator-like labels.

Same tasks as bench_core.py (labels -> BINARY SEG, labels -> LABELMAP SEG 66.7 RLE and
uncompressed, BINARY and LABELMAP SEG -> NIfTI; segbridge | dcmqi | highdicom), plus
SEG -> RTSTRUCT and back (segbridge; rt-utils and plastimatch, each given 10 minutes) and
statistics + bidirectional of all segments. The label map is bench/anatomy.py's whole body
(spine, ribs, long vessels and muscles, large organs, small structures; about 12,400
(segment, slice) frames at 600 slices), cut at 1.5 mm for 600 slices and 0.6 mm for 1,500.

Each tool runs in its own process (wall time and peak RSS of the whole job, bench/measure.py).
Every output is checked voxel for voxel: segbridge's SEGs by highdicom and its NIfTIs by
nibabel (independent readers), the peers' SEGs and NIfTIs by segbridge, the RTSTRUCT round trip
against the labels (segbridge's centre rule is exact on its own contours).

usage: python bench/bench_scale.py [--sizes 300,600,1500] [--peer-sizes 600,1500]
                                   [--rt-peer-sizes 600] [--labels 117] [--merge]
                                   [--reps 1] [--tools segbridge,dcmqi,highdicom,rt-utils,
                                   plastimatch] [--out bench/out] [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anatomy import make_body  # noqa: E402
from bench_core import _size, clear_output, verify_seg  # noqa: E402
from bench_core import tasks as core_tasks  # noqa: E402
from common import BIN, HERE, PY, dcmqi_meta, publish, repeat, write_json  # noqa: E402

#: issue 14: segbridge's time / best peer's time, and peak RSS (MB) by slice count
TIME_TARGETS = {"write BINARY": 0.25, "read BINARY": 0.25, "write LABELMAP (RLE)": 0.35,
                "write LABELMAP (uncompressed)": 0.35, "read LABELMAP": 0.35}
RSS_TARGETS = {600: 512.0, 1500: 1024.0}
#: the time ratios are targets at this size; at 1,500 slices the issue asks for linear time
TIME_TARGET_SLICES = 600
#: not conversions (the memory target is for conversions); reported beside them
MEASUREMENTS = ("statistics, all segments", "bidirectional, all segments")
PEER_TIMEOUT = 600.0
BODY_MM = 900.0


def prepare(out: Path, slices: int, n_labels: int) -> dict:
    """CT series (headers + pixels), labels NIfTI, dcmqi metadata; made once, reused."""
    from segbridge.geometry import Grid
    from segbridge.synthetic import save_nifti, write_ct_series

    data = out / f"scale_{slices}_{n_labels}"
    paths = {"ct": data / "ct", "labels": data / "labels.nii.gz", "meta": data / "meta.json",
             "labels_npy": data / "labels.npy", "dir": data}
    if (data / "done").exists():
        return paths
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    grid = Grid((slices, 512, 512), origin=(-250.0, -250.0, -BODY_MM),
                spacing=(BODY_MM / slices, 0.9765625, 0.9765625), direction=np.eye(3))
    labels = make_body(grid.shape, n_labels)
    hu = np.where(labels > 0, 40.0, -200.0).astype(np.float32)
    write_ct_series(paths["ct"], hu, grid, uid_seed=f"segbridge-scale-{slices}")
    del hu
    save_nifti(labels, grid, paths["labels"])
    np.save(paths["labels_npy"], labels)
    write_json(paths["meta"], dcmqi_meta(n_labels))
    (data / "done").write_text("ok")
    return paths


def mask_folder(labels: np.ndarray, p: dict) -> Path:
    """One NRRD per structure, plastimatch's only labelmap input (not timed)."""
    import nrrd

    folder = p["dir"] / "prefix"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    spacing = float(nib.load(p["labels"]).header.get_zooms()[2])
    header = {"space": "left-posterior-superior",
              "space directions": np.diag([0.9765625, 0.9765625, spacing]),
              "space origin": np.array([-250.0, -250.0, -BODY_MM]), "encoding": "gzip"}
    for v in [int(x) for x in np.unique(labels) if x]:
        nrrd.write(str(folder / f"structure {v}.nrrd"),
                   np.transpose(labels == v, (2, 1, 0)).astype(np.uint8), header)
    (folder / "done").write_text("ok")
    return folder


def extra_tasks(p: dict, w: Path, labels: np.ndarray, tools: set[str]) -> list:
    """RTSTRUCT both ways and the measurements: (task, tool, command, output, note)."""
    sb, ct = str(BIN / "segbridge"), str(p["ct"])
    rtu = str(HERE / "peers" / "rtutils_rt.py")
    pm = shutil.which("plastimatch") or str(BIN / "plastimatch")
    out = [
        ("SEG -> RTSTRUCT", "segbridge", [sb, "convert", str(w / "sb_labelmap.dcm"), "-r", ct,
                                         "-o", str(w / "sb_rt.dcm"), "--to", "rtstruct"],
         w / "sb_rt.dcm", "from segbridge's LABELMAP SEG"),
        ("RTSTRUCT -> SEG", "segbridge", [sb, "convert", str(w / "sb_rt.dcm"), "-r", ct, "-o",
                                         str(w / "sb_rt_back.dcm"), "--type", "labelmap",
                                         "--profile", "archive"],
         w / "sb_rt_back.dcm", "segbridge's RTSTRUCT back to a LABELMAP SEG"),
        ("statistics, all segments", "segbridge",
         [sb, "stats", str(w / "sb_labelmap.dcm"), "--image", ct, "--format", "json", "-o",
          str(w / "stats.json")], w / "stats.json", "HU of every segment, CT decoded"),
        ("bidirectional, all segments", "segbridge",
         [sb, "measure", str(w / "sb_labelmap.dcm"), "-o", str(w / "axes.json")],
         w / "axes.json", "largest long/short axis of every segment"),
    ]
    if "rt-utils" in tools:
        out += [("labels -> RTSTRUCT", "rt-utils", [PY, rtu, "write", str(p["labels"]), ct,
                                                    str(w / "rtu_rt.dcm")], w / "rtu_rt.dcm",
                 "its only route (masks in memory)"),
                ("RTSTRUCT -> labels", "rt-utils", [PY, rtu, "read", str(w / "sb_rt.dcm"), ct,
                                                    str(w / "rtu_back.nii.gz")],
                 w / "rtu_back.nii.gz", "reads segbridge's RTSTRUCT")]
    if "plastimatch" in tools:
        prefix = mask_folder(labels, p)
        out += [("labels -> RTSTRUCT", "plastimatch",
                 [pm, "convert", "--input-prefix", str(prefix), "--referenced-ct", ct,
                  "--output-dicom", str(w / "pm_rt")], w / "pm_rt",
                 "from one NRRD mask per structure"),
                ("RTSTRUCT -> labels", "plastimatch",
                 [pm, "convert", "--input", str(w / "sb_rt.dcm"), "--referenced-ct", ct,
                  "--output-labelmap", str(w / "pm_back.nrrd")], w / "pm_back.nrrd",
                 "reads segbridge's RTSTRUCT")]
    return out


def _hd_labels(path: Path, ref_grid, shape) -> np.ndarray:
    """highdicom's reading of a SEG (its own frame decoding and placement), as structure
    numbers on the CT's grid; only the final axis permutation uses segbridge's geometry."""
    import highdicom as hd

    from segbridge.geometry import Grid, align_array

    seg = hd.seg.segread(str(path))
    names = {int(d.SegmentNumber): int(d.SegmentLabel.split()[-1])
             for d in seg.SegmentSequence if d.SegmentLabel.split()[-1].isdigit()}
    vol = seg.get_volume(combine_segments=True, skip_overlap_checks=True)
    arr = np.asarray(vol.array)
    lut = np.zeros(max(names, default=0) + 1, np.uint16)
    for n, v in names.items():
        lut[n] = v
    arr = lut[arr]
    # highdicom's affine maps array indices (axis 0, 1, 2) to LPS; a Grid's axes are (z, y, x)
    # with direction columns (x, y, z)
    aff = np.asarray(vol.affine, float)
    cols = [aff[:3, k] for k in range(3)]
    spacing = [float(np.linalg.norm(c)) for c in cols]
    grid = Grid(arr.shape, origin=tuple(aff[:3, 3]), spacing=tuple(spacing),
                direction=np.stack([cols[2] / spacing[2], cols[1] / spacing[1],
                                    cols[0] / spacing[0]], axis=1))
    return align_array(arr, grid, ref_grid, what=path.name)


def check(task: str, tool: str, output: Path, labels: np.ndarray, ref, ref_uids) -> bool | None:
    """Voxel-exact against the labels; None where there is nothing to compare."""
    if not output.exists():
        return False
    if task.startswith(("statistics", "bidirectional")):
        return _check_measure(task, output, labels)
    if task.startswith("labels -> RTSTRUCT") or (task == "SEG -> RTSTRUCT"):
        return _rt_dice(output, ref, labels) if tool != "segbridge" else None
    if task == "RTSTRUCT -> labels":  # a peer rasterising contours: close, not exact
        return _mean_dice(_volume(output, tool, labels.shape), labels) >= 0.9
    if output.suffix == ".dcm" and tool == "segbridge":
        return bool(np.array_equal(_hd_labels(output, ref.grid, labels.shape), labels))
    if output.suffix == ".dcm":
        return verify_seg(output, ref, labels)
    return bool(np.array_equal(_volume(output, tool, labels.shape), labels))


def _volume(path: Path, tool: str, shape) -> np.ndarray:
    if path.is_dir():  # dcmqi's output folder
        files = sorted(path.glob("*.nii*"))
        path = files[0] if len(files) == 1 else path
    if tool in ("segbridge", "rt-utils", "highdicom") and path.name.endswith(".nii.gz"):
        img = nib.load(path)
        arr = np.asarray(img.dataobj)
        if tool == "highdicom":  # its volume is in its own axis order: let segbridge align it
            import segbridge as sb
            return _aligned(sb.read(path), shape)
        return np.transpose(arr, (2, 1, 0)).astype(np.uint16)
    if tool == "plastimatch":
        import nrrd

        arr, _ = nrrd.read(str(path))
        return np.transpose(arr, (2, 1, 0)).astype(np.uint16)
    import segbridge as sb
    return _aligned(sb.read(path), shape)


def _aligned(seg, shape) -> np.ndarray:
    import segbridge as sb  # noqa: F401
    from segbridge.geometry import align_array

    return align_array(seg.labelmap(), seg.grid, REF_GRID[0], what="output").astype(np.uint16)


REF_GRID: list = []


def _rt_dice(output: Path, ref, labels: np.ndarray) -> bool:
    """A peer's RTSTRUCT rasterised by segbridge: mean Dice >= 0.9 (contours are not exact)."""
    import segbridge as sb
    from segbridge.errors import Report

    if output.is_dir():
        output = next(output.glob("rtss*.dcm"))
    seg = sb.read(output, reference=ref, report=Report())
    dices = []
    for s in seg.segments:
        v = int(s.label.split()[-1])
        a, b = seg.mask(s.number), labels == v
        dices.append(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))
    return bool(len(dices) == labels.max() and np.mean(dices) >= 0.9)


def _mean_dice(got: np.ndarray, labels: np.ndarray) -> float:
    """Mean Dice over the structures of ``labels``, counted slab by slab."""
    n = int(labels.max()) + 1
    both, a, b = (np.zeros(n, np.int64) for _ in range(3))
    for k in range(0, labels.shape[0], 50):
        g, t = got[k:k + 50].ravel(), labels[k:k + 50].ravel()
        a += np.bincount(g[g < n], minlength=n)[:n]
        b += np.bincount(t, minlength=n)
        same = g == t
        both += np.bincount(t[same], minlength=n)
    dice = 2 * both[1:] / np.maximum(a[1:] + b[1:], 1)
    return float(dice[b[1:] > 0].mean())


def _check_measure(task: str, output: Path, labels: np.ndarray) -> bool:
    data = json.loads(output.read_text())["segments"]
    if task.startswith("statistics"):
        counts = np.zeros(int(labels.max()) + 1, np.int64)
        for k in range(labels.shape[0]):
            counts += np.bincount(labels[k].ravel(), minlength=counts.size)
        return len(data) == labels.max() and all(
            s["voxel_count"] == counts[s["segment"]] and abs(s["mean"] - 40.0) < 1e-9
            for s in data)
    return len(data) == labels.max() and all(a["long_axis_mm"] for a in data)


def run_size(slices: int, args, with_peers: bool, with_rt_peers: bool) -> list[dict]:
    import segbridge as sb

    p = prepare(args.out, slices, args.labels)
    labels = np.load(p["labels_npy"])
    work = args.out / f"work_scale_{slices}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tools = set(args.tools) if with_peers else {"segbridge"}
    if not with_rt_peers:
        tools -= {"rt-utils", "plastimatch"}
    ref = sb.read_series(p["ct"])
    REF_GRID[:] = [ref.grid]
    ref_uids = [i.sop_instance_uid for i in ref.source.instances]
    jobs = [j for j in core_tasks(p, work) if j[1] in tools]
    # the read tasks read highdicom's SEGs: without highdicom, read segbridge's
    if "highdicom" not in tools:
        jobs = [(t, tool, [a.replace("hd_binary", "sb_binary").replace("hd_labelmap",
                                                                       "sb_labelmap")
                           for a in cmd], o, n) for t, tool, cmd, o, n in jobs]
    jobs += extra_tasks(p, work, labels, tools)
    rows = []
    for task, tool, cmd, output, note in jobs:
        run = repeat(cmd, 1 if tool != "segbridge" else args.reps, before=lambda output=output: clear_output(output),
                     timeout=PEER_TIMEOUT if tool != "segbridge" else None)
        correct = check(task, tool, output, labels, ref, ref_uids) if run.ok else None
        row = {**run.row(task, tool), "slices": slices, "size_mb": round(_size(output) / 2**20, 2),
               "correct": correct, "note": note}
        rows.append(row)
        print(f"{slices:5d} {task:30s} {tool:11s} {run.wall:8.2f} s {run.peak_mb:8.1f} MB "
              f"{row['size_mb']:8.2f} MB correct={correct} {'' if run.ok else run.error}",
              flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def summarise(rows: list[dict], sizes: list[int]) -> dict:
    ratios = []
    for (task, target) in TIME_TARGETS.items():
        for n in sizes:
            mine = next((r for r in rows if r["task"] == task and r["tool"] == "segbridge"
                         and r["slices"] == n), None)
            peers = [r for r in rows if r["task"] == task and r["tool"] != "segbridge"
                     and r["slices"] == n and r["ok"] and r["correct"]]
            if mine is None or not peers:
                continue
            best = min(peers, key=lambda r: r["wall_s"])
            ratio = mine["wall_s"] / best["wall_s"]
            aimed = n == TIME_TARGET_SLICES
            ratios.append({"task": task, "slices": n, "ratio": round(ratio, 3),
                           "best_peer": best["tool"], "target": target if aimed else None,
                           "meets": ratio <= target if aimed else None})
    memory = []
    for n in sizes:
        mine = [r for r in rows if r["tool"] == "segbridge" and r["slices"] == n]
        for kind, group in (("conversion", [r for r in mine if r["task"] not in MEASUREMENTS]),
                            ("measurement", [r for r in mine if r["task"] in MEASUREMENTS])):
            if group and n in RSS_TARGETS:
                worst = max(group, key=lambda r: r["peak_mb"])
                memory.append({"slices": n, "kind": kind, "peak_mb": worst["peak_mb"],
                               "task": worst["task"], "target_mb": RSS_TARGETS[n],
                               "meets": worst["peak_mb"] <= RSS_TARGETS[n]})
    slopes = []
    for task in sorted({r["task"] for r in rows if r["tool"] == "segbridge"}):
        pts = sorted((r["slices"], r["wall_s"], r["peak_mb"]) for r in rows
                     if r["task"] == task and r["tool"] == "segbridge" and r["ok"])
        if len(pts) >= 2:
            x = np.array([q[0] for q in pts], float)
            t = np.array([q[1] for q in pts])
            m = np.array([q[2] for q in pts])
            a, b = np.polyfit(x, t, 1)
            am, bm = np.polyfit(x, m, 1)
            fit = a * x + b
            slopes.append({"task": task, "s_per_100_slices": round(100 * a, 3),
                           "intercept_s": round(b, 2), "mb_per_100_slices": round(100 * am, 1),
                           "max_fit_error": round(float(np.max(np.abs(fit - t) / t)), 3)})
    return {"time": ratios, "memory": memory, "slopes": slopes}


def markdown(rows, summary, meta) -> str:
    lines = [
        "## Whole-body scale (issue 14): 600 and 1,500 slices, 117 labels",
        "",
        "Generated by `python bench/bench_scale.py --markdown docs/performance.md` "
        f"({meta['machine']}, Python {meta['python']}; each tool in its own process: wall "
        "time and peak RSS of the whole job; segbridge's time is the median of "
        f"{meta.get('reps', 1)} run(s), the peers run once and are stopped after "
        f"{PEER_TIMEOUT:.0f} s; load average before the run {meta.get('load', '?')}).",
        "",
        "Input: a synthetic 512x512 whole-body CT with 117 TotalSegmentator-like structures "
        "(`bench/anatomy.py`: 25 touching vertebrae, 24 ribs, long vessels and muscles, 14 large "
        "organs, the rest small; 12,413 (segment, slice) frames at 600 slices, 31,026 at 1,500), "
        "cut at 1.5 mm (600 slices) and 0.6 mm (1,500). Read tasks read highdicom's SEG; the "
        "RTSTRUCT readers read segbridge's. *correct*: segbridge's SEGs read by highdicom and its "
        "NIfTIs by nibabel must equal the labels voxel for voxel; the peers' outputs are read by "
        "segbridge; where a peer turns labels into contours or contours into labels, the mean "
        "Dice over the structures must reach 0.9 (contours are not voxels); `-` where there "
        "is nothing "
        "independent to compare (segbridge's own RTSTRUCT is checked by the way back).",
        "",
        *([f"Rerun with `--merge`: the rows of {meta['kept']} are kept from the previous "
           "run (same data, same machine).", ""] if meta.get("kept") else []),
        "| slices | task | tool | wall (s) | peak RSS (MB) | output (MB) | correct | note |",
        "|---:|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        err = "" if r["ok"] else " ERROR " + " ".join(r["error"])
        corr = "-" if r["correct"] is None and r["ok"] else r["correct"]
        lines.append(f"| {r['slices']} | {r['task']} | {r['tool']} | {r['wall_s']:.2f} | "
                     f"{r['peak_mb']:.0f} | {r['size_mb']:.2f} | {corr} | {r['note']}{err} |")
    lines += ["", "**Time against the targets** (segbridge / fastest correct peer):", "",
              "| task | slices | ratio | fastest peer | target | met |",
              "|---|---:|---:|---|---:|---|"]
    for s in summary["time"]:
        aim = "-" if s["target"] is None else f"<= {s['target']}"
        met = "-" if s["meets"] is None else ("yes" if s["meets"] else "NO")
        lines.append(f"| {s['task']} | {s['slices']} | {s['ratio']:.2f} | {s['best_peer']} | "
                     f"{aim} | {met} |")
    lines += ["", f"The time targets are set at {TIME_TARGET_SLICES} slices; at other sizes the "
              "ratio is shown for information (at 1,500 the issue asks for time linear in the "
              "slice count: see the growth table)."]
    lines += ["", "**Peak memory against the targets** (the largest segbridge conversion; the "
              "target is for conversions, the measurements are shown beside it):", "",
              "| slices | kind | peak RSS (MB) | job | target (MB) | met |",
              "|---:|---|---:|---|---:|---|"]
    for m in summary["memory"]:
        lines.append(f"| {m['slices']} | {m['kind']} | {m['peak_mb']:.0f} | {m['task']} | "
                     f"<= {m['target_mb']:.0f} | {'yes' if m['meets'] else 'NO'} |")
    lines += ["", "**Growth with the slice count** (segbridge, least-squares line through the "
              "sizes run):", "", "| task | s per 100 slices | fixed part (s) | MB per 100 slices "
              "| largest deviation from the line |", "|---|---:|---:|---:|---:|"]
    for s in summary["slopes"]:
        lines.append(f"| {s['task']} | {s['s_per_100_slices']:.2f} | {s['intercept_s']:.2f} | "
                     f"{s['mb_per_100_slices']:.1f} | {100 * s['max_fit_error']:.0f} % |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="300,600,1500")
    ap.add_argument("--peer-sizes", default="600,1500")
    ap.add_argument("--rt-peer-sizes", default="600",
                    help="sizes at which rt-utils and plastimatch run (slow)")
    ap.add_argument("--labels", type=int, default=117)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--tools", default="segbridge,dcmqi,highdicom,rt-utils,plastimatch")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--keep", action="store_true", help="keep the outputs (work_scale_N)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows (size, task, tool) not run now from the last results "
                         "(OUT/results_scale.json): rerun part without the rest")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    args.tools = args.tools.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    peer_sizes = {int(s) for s in args.peer_sizes.split(",") if s}
    args.out.mkdir(parents=True, exist_ok=True)
    rt_sizes = {int(s) for s in args.rt_peer_sizes.split(",") if s}
    rows = []
    kept: list = []
    load = os.getloadavg()
    for n in sizes:
        rows += run_size(n, args, n in peer_sizes, n in rt_sizes)
    last = args.out / "results_scale.json"
    if args.merge and last.exists():
        def key(r: dict) -> tuple:
            return r["slices"], r["task"], r["tool"]
        new = {key(r): r for r in rows}
        now = set(new)
        old = json.loads(last.read_text())["rows"]
        merged = [new.pop(key(r), r) for r in old]  # in the last run's order
        kept = sorted({(r["slices"], r["tool"]) for r in merged if key(r) not in now})
        rows = sorted(merged + list(new.values()), key=lambda r: r["slices"])
        sizes = sorted({r["slices"] for r in rows})
    summary = summarise(rows, sizes)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "sizes": sizes, "labels": args.labels,
            "reps": args.reps, "load": " / ".join(f"{v:.2f}" for v in load)}
    if kept:
        meta["kept"] = ", ".join(f"{tool} at {n}" for n, tool in kept)
    publish(args.out / "results_scale.json", {"meta": meta, "rows": rows, "summary": summary},
            markdown(rows, summary, meta), args.markdown, "scale",
            sidecar="performance-scale.json")


if __name__ == "__main__":
    main()
