"""Core conversion benchmark: segbridge against highdicom and dcmqi, same inputs, one run.

A synthetic 512x512x200 CT series with 100 non-overlapping labels (organ-sized ellipsoids):

- labels -> BINARY SEG (native)         segbridge | dcmqi itkimage2segimage | highdicom
- labels -> LABELMAP SEG (RLE)          segbridge | highdicom | dcmqi (itkimage2segimage, then
                                        bin2labelsegimage --compress rle: its only RLE route)
- labels -> LABELMAP SEG (uncompressed) segbridge | highdicom | dcmqi --segmentationType labelmap
- BINARY SEG -> labelmap volume         segbridge | dcmqi segimage2itkimage | highdicom get_volume
- LABELMAP SEG -> labelmap volume       same three

Each tool runs in its own process (wall time and peak RSS of the whole job). The read tasks all
read the SEG written by highdicom, so every reader gets the same input. Every SEG written is read
back by segbridge and compared with the labels, and every volume read is compared with the labels,
so a fast wrong answer cannot win.

usage: python bench/bench_core.py [--reps 3] [--slices 200] [--labels 100] [--out bench/out]
                                  [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, HERE, PY, dcmqi_meta, make_labels, publish, repeat, write_json  # noqa: E402

TARGETS = {"write BINARY": 0.5, "write LABELMAP (RLE)": 1.0,
           "write LABELMAP (uncompressed)": 1.0, "read BINARY": 0.5, "read LABELMAP": 1.0}


def prepare(out: Path, slices: int, n_labels: int) -> dict:
    from segbridge.geometry import Grid
    from segbridge.synthetic import save_nifti, write_ct_series

    data = out / f"data_{slices}_{n_labels}"
    marker = data / "done"
    paths = {"ct": data / "ct", "labels": data / "labels.nii.gz", "meta": data / "meta.json",
             "labels_npy": data / "labels.npy"}
    if marker.exists():
        return paths
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    grid = Grid((slices, 512, 512), origin=(-250.0, -250.0, -400.0),
                spacing=(1.5, 0.9765625, 0.9765625), direction=np.eye(3))
    labels = make_labels(grid.shape, n_labels)
    hu = np.where(labels > 0, 40.0, -200.0).astype(np.float32)
    write_ct_series(paths["ct"], hu, grid, uid_seed="segbridge-bench")
    save_nifti(labels, grid, paths["labels"])
    np.save(paths["labels_npy"], labels)
    write_json(paths["meta"], dcmqi_meta(n_labels))
    marker.write_text("ok")
    return paths


def tasks(p: dict, work: Path) -> list[tuple[str, str, list[str], Path, str]]:
    """(task, tool, command, output, note)."""
    sb = str(BIN / "segbridge")
    ct, labels, meta = str(p["ct"]), str(p["labels"]), str(p["meta"])
    hd_w = str(HERE / "peers" / "highdicom_write.py")
    hd_r = str(HERE / "peers" / "highdicom_read.py")
    w = work
    out = []
    out += [
        ("write BINARY", "segbridge", [sb, "convert", labels, "-o", str(w / "sb_binary.dcm"),
                                       "-r", ct, "--meta", meta, "--type", "binary",
                                       "--profile", "slicer", "--compression", "none"],
         w / "sb_binary.dcm", "Explicit VR LE"),
        ("write BINARY", "dcmqi", [str(BIN / "itkimage2segimage"), "--inputImageList", labels,
                                   "--inputDICOMDirectory", ct, "--outputDICOM",
                                   str(w / "dcmqi_binary.dcm"), "--inputMetadata", meta],
         w / "dcmqi_binary.dcm", "Explicit VR LE"),
        ("write BINARY", "highdicom", [PY, hd_w, ct, labels, str(w / "hd_binary.dcm"), "BINARY",
                                       "explicit"], w / "hd_binary.dcm", "Explicit VR LE"),
        ("write LABELMAP (RLE)", "segbridge", [sb, "convert", labels, "-o",
                                               str(w / "sb_labelmap.dcm"), "-r", ct, "--meta",
                                               meta, "--type", "labelmap", "--profile",
                                               "archive", "--compression", "rle"],
         w / "sb_labelmap.dcm", "RLE"),
        ("write LABELMAP (RLE)", "highdicom", [PY, hd_w, ct, labels, str(w / "hd_labelmap.dcm"),
                                               "LABELMAP", "rle"], w / "hd_labelmap.dcm", "RLE"),
        # dcmqi writes RLE label maps only by converting a BINARY SEG (bin2labelsegimage)
        ("write LABELMAP (RLE)", "dcmqi", ["sh", "-c", " && ".join([
            " ".join([str(BIN / "itkimage2segimage"), "--inputImageList", labels,
                      "--inputDICOMDirectory", ct, "--outputDICOM",
                      str(w / "dcmqi_lm_binary.dcm"), "--inputMetadata", meta]),
            " ".join([str(BIN / "bin2labelsegimage"), "--inputDICOM",
                      str(w / "dcmqi_lm_binary.dcm"), "--outputDICOM",
                      str(w / "dcmqi_labelmap_rle.dcm"), "--compress", "rle"])])],
         w / "dcmqi_labelmap_rle.dcm", "RLE"),
        ("write LABELMAP (uncompressed)", "segbridge", [
            sb, "convert", labels, "-o", str(w / "sb_labelmap_native.dcm"), "-r", ct, "--meta",
            meta, "--type", "labelmap", "--profile", "archive", "--compression", "none"],
         w / "sb_labelmap_native.dcm", "Explicit VR LE"),
        ("write LABELMAP (uncompressed)", "highdicom", [PY, hd_w, ct, labels,
                                                        str(w / "hd_labelmap_native.dcm"),
                                                        "LABELMAP", "explicit"],
         w / "hd_labelmap_native.dcm", "Explicit VR LE"),
        ("write LABELMAP (uncompressed)", "dcmqi", [
            str(BIN / "itkimage2segimage"), "--inputImageList", labels, "--inputDICOMDirectory",
            ct, "--outputDICOM", str(w / "dcmqi_labelmap.dcm"), "--inputMetadata", meta,
            "--segmentationType", "labelmap"], w / "dcmqi_labelmap.dcm", "Explicit VR LE"),
    ]
    for kind, src in (("BINARY", "hd_binary.dcm"), ("LABELMAP", "hd_labelmap.dcm")):
        task = f"read {kind}"
        low = kind.lower()
        out += [
            (task, "segbridge", [sb, "convert", str(w / src), "-o",
                                 str(w / f"sb_read_{low}.nii.gz")], w / f"sb_read_{low}.nii.gz",
             "NIfTI gzip"),
            (task, "dcmqi", [str(BIN / "segimage2itkimage"), "--inputDICOM", str(w / src),
                             "--outputDirectory", str(w / f"dcmqi_read_{low}"), "-t", "nii",
                             "--mergeSegments"], w / f"dcmqi_read_{low}", "NIfTI gzip"),
            (task, "highdicom", [PY, hd_r, str(w / src), str(w / f"hd_read_{low}.nii.gz")],
             w / f"hd_read_{low}.nii.gz", "NIfTI gzip"),
        ]
    return out


def clear_output(output: Path) -> None:
    """Remove a task's output before a run (dcmqi's reader wants its output folder to exist)."""
    if output.is_dir():
        shutil.rmtree(output)
    elif output.exists():
        output.unlink()
    if "dcmqi_read" in output.name:
        output.mkdir(exist_ok=True)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def verify_seg(path: Path, ref, labels: np.ndarray) -> bool:
    """Read a written SEG with segbridge on the reference grid; compare with the labels."""
    import segbridge as sb

    seg = sb.read(path, reference=ref)
    by_label = {}
    for s in seg.segments:
        num = int(s.label.split()[-1]) if s.label.startswith("structure") else s.number
        by_label[num] = s.number
    lab = np.zeros_like(labels)
    for num, n in by_label.items():
        lab[seg.mask(n)] = num
    return bool(np.array_equal(lab, labels))


def verify_volume(path: Path, labels: np.ndarray, ref_grid) -> bool:
    """A NIfTI labelmap (or dcmqi's output folder) equals the labels in patient space."""
    import segbridge as sb

    if path.is_dir():
        files = sorted(path.glob("*.nii*"))
        if len(files) != 1:
            return False
        path = files[0]
    seg = sb.read(path)
    from segbridge.geometry import align_array

    lab = seg.labelmap()
    lab = align_array(lab, seg.grid, ref_grid, what=path.name)
    # label values may be segment numbers; all our labels are 1..N in order
    return bool(np.array_equal(lab.astype(labels.dtype), labels))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--labels", type=int, default=100)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    p = prepare(args.out, args.slices, args.labels)
    labels = np.load(p["labels_npy"])
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    import segbridge as sb

    ref = sb.read_series(p["ct"])
    rows = []
    for task, tool, cmd, output, note in tasks(p, work):
        run = repeat(cmd, args.reps, before=lambda output=output: clear_output(output))
        ok = run.ok
        correct = None
        if ok:
            correct = verify_seg(output, ref, labels) if output.suffix == ".dcm" else \
                verify_volume(output, labels, ref.grid)
        rows.append({**run.row(task, tool), "size_mb": round(_size(output) / 2**20, 2),
                     "correct": correct, "note": note})
        print(f"{task:22s} {tool:10s} {run.wall:7.2f} s {run.peak_mb:8.1f} MB "
              f"{_size(output) / 2**20:8.2f} MB  correct={correct} {'' if ok else run.error}",
              flush=True)
    summary = summarise(rows)
    meta = {"machine": f"{platform.machine()}, {platform.processor() or ''} "
                       f"{__import__('os').cpu_count()} cores",
            "python": platform.python_version(), "slices": args.slices, "labels": args.labels,
            "reps": args.reps}
    publish(args.out / "results.json", {"meta": meta, "rows": rows, "summary": summary},
            markdown(rows, summary, meta), args.markdown, "core",
            sidecar=args.markdown.with_suffix(".json").name if args.markdown else None)


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for task, target in TARGETS.items():
        mine = next((r for r in rows if r["task"] == task and r["tool"] == "segbridge"), None)
        peers = [r for r in rows if r["task"] == task and r["tool"] != "segbridge" and r["ok"]
                 and r["correct"]]
        if mine is None or not peers:
            continue
        best_t = min(peers, key=lambda r: r["wall_s"])
        best_m = min(peers, key=lambda r: r["peak_mb"])
        same_ts = [r for r in peers if r["note"] == mine["note"] and r["size_mb"] > 0] \
            if task.startswith("write") else []
        out.append({
            "task": task, "target_time_ratio": target,
            "time_ratio": round(mine["wall_s"] / best_t["wall_s"], 3), "best_peer": best_t["tool"],
            "memory_ratio": round(mine["peak_mb"] / best_m["peak_mb"], 3),
            "best_memory_peer": best_m["tool"],
            "size_ratio": round(mine["size_mb"] / min(r["size_mb"] for r in same_ts), 3)
            if same_ts and mine["size_mb"] > 0 else None,
            "meets_time": mine["wall_s"] / best_t["wall_s"] <= target,
            "meets_memory": mine["peak_mb"] <= best_m["peak_mb"],
            "correct": mine["correct"],
        })
    return out


def markdown(rows, summary, meta) -> str:
    lines = [
        "## Core conversion: DICOM SEG <-> labelmaps",
        "",
        "Generated by `python bench/bench_core.py --markdown docs/performance.md` "
        f"({meta['machine']}, Python {meta['python']}; median of {meta['reps']} runs, each tool "
        "in its own process: wall time and peak RSS of the whole job).",
        "",
        f"Input: synthetic CT {meta['slices']} slices of 512x512 with {meta['labels']} "
        "non-overlapping labels (NIfTI, gzip). Read tasks read the SEG written by highdicom and "
        "write a gzipped NIfTI labelmap (dcmqi's `-t nii` output). "
        "Every output is checked voxel for voxel against the labels (column *correct*).",
        "",
        "| task | tool | wall (s) | peak RSS (MB) | output (MB) | correct | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['task']} | {r['tool']} | {r['wall_s']:.2f} | {r['peak_mb']:.0f} | "
                     f"{r['size_mb']:.2f} | {r['correct']} | {r['note'] or ''}"
                     f"{' ERROR ' + str(r['error']) if not r['ok'] else ''} |")
    lines += ["", "| task | segbridge / best peer time | target | peak memory / lowest peer | "
              "size / same-syntax peer | meets targets |", "|---|---:|---:|---:|---:|---|"]
    for s in summary:
        meets = s["meets_time"] and s["meets_memory"] and s["correct"]
        lines.append(f"| {s['task']} | {s['time_ratio']:.2f} ({s['best_peer']}) | "
                     f"<= {s['target_time_ratio']} | {s['memory_ratio']:.2f} "
                     f"({s['best_memory_peer']}) | "
                     f"{'-' if s['size_ratio'] is None else format(s['size_ratio'], '.2f')} | "
                     f"{'yes' if meets else 'NO'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
