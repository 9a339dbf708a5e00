"""Collection benchmark (issue 14 point 5): `segbridge batch` on a Dask LocalCluster and on an
external `dask scheduler` + `dask worker` processes, with a memory limit per worker.

Input: ``--cases`` synthetic whole-body cases of 512x512x``--slices`` with ``--labels``
organ-like labels (bench/common.py make_labels, a different seed per case, gzipped NIfTI).
To keep the disk use bounded, only ``--cts`` distinct reference CT series are written (each
case's manifest line points to CT number ``case % cts``, and its labels are written on that
CT's grid); every case has its own labels. Output: LABELMAP SEG, RLE, profile archive, with a
shared dcmqi-style metadata file (segment "structure N" for label N).

For each cluster: the whole `segbridge batch` command is timed (LocalCluster start-up
included; the external cluster is started before and its start-up reported apart), then run
again on the same output folder (every case must be "already done", no output touched). The
worker processes (Dask's worker process, not its nanny) are watched with psutil every 0.2 s:
peak RSS is the kernel's high-water mark (VmHWM), which is what the memory limit is compared
with (Dask pauses a worker at 80 % of its limit and its nanny restarts it at 95 %); a worker
replaced by another process counts as a restart, and the Dask logs are searched for pauses,
restarts and killed workers. A sample of outputs (``--check``) is read back with highdicom (not
segbridge) on the CT grid and compared voxel for voxel with the labels regenerated from their
seed; each is also compared with another case's labels, which must differ.

The benchmark's own processes (batch, scheduler, workers) each run in their own process group,
get SIGKILL when the benchmark dies (PR_SET_PDEATHSIG) and are killed with their group on
every exit path.

usage: python bench/bench_collection.py [--cases 200] [--slices 600] [--labels 117] [--cts 4]
           [--workers 2] [--memory-limit 1GB] [--check 5] [--out bench/out]
           [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import atexit
import csv
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, HERE, dcmqi_meta, make_labels, publish, write_json  # noqa: E402

#: what Dask logs when a worker reaches its memory limit or dies
EVENTS = {
    "paused": re.compile(r"Pausing worker"),
    "restarted": re.compile(r"memory budget\. Restarting|Restarting worker"),
    "killed": re.compile(r"was killed by signal|KilledWorker|workers died"),
    "unmanaged-memory warnings": re.compile(r"Unmanaged memory use is high"),
}
SUMMARY = re.compile(r"(\d+) converted, (\d+) already done, (\d+) failed")


# -- processes --------------------------------------------------------------------------------

_children: list[subprocess.Popen] = []


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """A child in its own process group, killed with its group by :func:`stop`."""
    with open(log, "wb") as fp:
        p = subprocess.Popen(cmd, stdout=fp, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=_die_with_parent)
    _children.append(p)
    return p


def stop(p: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM to the child's process group, SIGKILL if it is still there after ``grace``."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # the group may outlive its leader (a nanny's worker process)
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    if p in _children:
        _children.remove(p)


def stop_all() -> None:
    for p in reversed(list(_children)):
        stop(p, grace=5.0)


def _signalled(signum, frame):
    raise SystemExit(128 + signum)  # finally blocks and atexit run


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in bytes; {} once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if m:
            out[key] = int(m.group(1)) * 1024
    return out


class Watch:
    """Samples the Dask worker processes under ``roots`` (and the roots themselves) every
    ``interval`` seconds: peak RSS (VmHWM), sampled RSS of each worker's process tree, CPU
    seconds, and every worker pid ever seen (a new one is a restarted worker)."""

    def __init__(self, roots: list[int], interval: float = 0.2):
        import psutil

        self.psutil = psutil
        self.roots = roots
        self.interval = interval
        self.workers: dict[int, dict] = {}
        self.roots_hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        ps = self.psutil
        for root in self.roots:
            st = proc_status(root)
            if st:
                self.roots_hwm[root] = max(self.roots_hwm.get(root, 0), st.get("VmHWM", 0))
            try:
                kids = ps.Process(root).children(recursive=True)
            except ps.Error:
                continue
            for k in kids:
                try:
                    if "spawn_main" not in " ".join(k.cmdline()):
                        continue
                    tree = [k, *k.children(recursive=True)]
                    rss = sum(q.memory_info().rss for q in tree)
                    cpu = k.cpu_times()
                except ps.Error:
                    continue
                st = proc_status(k.pid)
                w = self.workers.setdefault(k.pid, {"pid": k.pid, "parent": root, "hwm": 0,
                                                    "tree_rss": 0, "cpu_s": 0.0,
                                                    "first_seen": time.time()})
                w["hwm"] = max(w["hwm"], st.get("VmHWM", 0))
                w["tree_rss"] = max(w["tree_rss"], rss)
                w["cpu_s"] = max(w["cpu_s"], cpu.user + cpu.system)


# -- data -------------------------------------------------------------------------------------

def ct_grid(j: int, slices: int):
    from pydicom.uid import generate_uid

    from segbridge.geometry import Grid

    return Grid((slices, 512, 512), origin=(-250.0 + 3 * j, -250.0 - 2 * j, -400.0 - 10 * j),
                spacing=(1.5, 0.9765625, 0.9765625), direction=np.eye(3),
                frame_of_reference_uid=generate_uid(entropy_srcs=["bench-collection-for",
                                                                  str(j)]))


def prepare(out: Path, cases: int, slices: int, n_labels: int, cts: int) -> Path:
    """CT series ct0..ct{cts-1}, labels caseNNN.nii.gz and a manifest; reused when present."""
    import nibabel as nib

    from segbridge.geometry import flip_lps_ras
    from segbridge.synthetic import write_ct_series

    data = out / f"collection_{slices}_{n_labels}"
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for j in range(cts):
        ct = data / f"ct{j}"
        if (data / f"ct{j}.done").exists():
            continue
        shutil.rmtree(ct, ignore_errors=True)
        grid = ct_grid(j, slices)
        body = make_labels(grid.shape, n_labels, seed=10_000 + j)
        write_ct_series(ct, np.where(body > 0, 40.0, -200.0).astype(np.float32), grid,
                        patient=f"BENCH^CT{j}", uid_seed=f"bench-collection-ct{j}")
        (data / f"ct{j}.done").write_text("ok")
        print(f"CT {j}: {slices} slices ({time.perf_counter() - t0:.0f} s)", flush=True)
    meta = data / "meta.json"
    if not meta.exists():
        write_json(meta, dcmqi_meta(n_labels))
    rows = []
    for i in range(cases):
        name, j = f"case{i:03d}", i % cts
        path = data / "labels" / f"{name}.nii.gz"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            affine = flip_lps_ras(ct_grid(j, slices).affine)
            img = nib.Nifti1Image(np.transpose(make_labels((slices, 512, 512), n_labels, i),
                                               (2, 1, 0)), affine)
            img.set_sform(affine, 1)
            img.set_qform(affine, 1)
            tmp = path.with_name(f".{path.name}")
            nib.save(img, str(tmp))
            os.replace(tmp, path)
            if i % 20 == 19:
                print(f"labels {i + 1}/{cases} ({time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append({"case": name, "inputs": f"labels/{name}.nii.gz", "reference": f"ct{j}",
                     "meta": "meta.json", "type": "labelmap", "profile": "archive",
                     "compression": "rle"})
    manifest = data / f"manifest_{cases}.csv"
    with open(manifest, "w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


# -- runs -------------------------------------------------------------------------------------

def batch(manifest: Path, outdir: Path, args: list[str], log: Path, roots=None) -> dict:
    """One `segbridge batch` command, watched; its summary line, wall time and workers."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = start([str(BIN / "segbridge"), "batch", str(manifest), "-o", str(outdir), *args], log)
    try:
        with Watch([*(roots or []), p.pid]) as watch:
            p.wait()
        wall = time.perf_counter() - t0
    finally:
        stop(p)
    text = log.read_text(errors="replace")
    m = SUMMARY.search(text)
    return {"wall_s": round(wall, 2), "code": p.returncode,
            "converted": int(m.group(1)) if m else None,
            "already_done": int(m.group(2)) if m else None,
            "failed": int(m.group(3)) if m else None,
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
            "batch_process_peak_mb": round(watch.roots_hwm.get(p.pid, 0) / 2**20, 1),
            "workers": list(watch.workers.values()), "log": text}


def events(text: str) -> dict[str, int]:
    return {k: len(rx.findall(text)) for k, rx in EVENTS.items()}


def outputs(outdir: Path) -> dict[str, dict]:
    with open(outdir / "results.csv", newline="") as fp:
        return {r["case"]: r for r in csv.DictReader(fp)}


def run_cluster(kind: str, manifest: Path, work: Path, a) -> dict:
    """Batch + rerun on a LocalCluster (``kind="local"``) or an external cluster."""
    outdir = work / kind
    shutil.rmtree(outdir, ignore_errors=True)
    logs = work / f"logs_{kind}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    procs, roots, started = [], [], None
    try:
        if kind == "local":
            args = ["--scheduler", "local", "--workers", str(a.workers), "--memory-limit",
                    a.memory_limit]
        else:
            address, procs, started = start_external(logs, a.workers, a.memory_limit)
            roots = [p.pid for p in procs[1:]]
            args = ["--scheduler", address]
        print(f"{kind}: batch of {a.cases} ...", flush=True)
        first = batch(manifest, outdir, args, logs / "batch.log", roots)
        rows = outputs(outdir)
        mtimes = {r["outputs"]: Path(r["outputs"]).stat().st_mtime_ns for r in rows.values()
                  if r["status"] == "ok"}
        print(f"{kind}: {first['converted']} converted in {first['wall_s']} s; rerun ...",
              flush=True)
        second = batch(manifest, outdir, args, logs / "rerun.log", roots)
        untouched = all(Path(p).stat().st_mtime_ns == t for p, t in mtimes.items())
        worker_logs = "".join(f.read_text(errors="replace") for f in sorted(logs.glob("w*.log")))
    finally:
        for p in reversed(procs):
            stop(p)
    ev = events(first["log"] + second["log"] + worker_logs)
    workers = first["workers"]
    limit = _bytes(a.memory_limit)
    seconds = sorted(float(r["seconds"]) for r in rows.values() if r["status"] == "ok")
    res = {
        "cluster": kind, "workers": a.workers, "memory_limit": a.memory_limit,
        "cluster_start_s": started, "wall_s": first["wall_s"],
        "converted": first["converted"], "failed": first["failed"], "code": first["code"],
        "cases_per_hour": round(first["converted"] * 3600 / first["wall_s"], 1)
        if first["converted"] else 0.0,
        "case_seconds_median": round(float(np.median(seconds)), 2) if seconds else None,
        "case_seconds_max": round(seconds[-1], 2) if seconds else None,
        "worker_cpu_s_per_case": round(sum(w["cpu_s"] for w in workers) /
                                       max(1, first["converted"] or 0), 2),
        "worker_peak_rss_mb": [round(w["hwm"] / 2**20, 1) for w in workers],
        "worker_tree_rss_sampled_mb": [round(w["tree_rss"] / 2**20, 1) for w in workers],
        "worker_peak_fraction_of_limit": round(max((w["hwm"] for w in workers), default=0) /
                                               limit, 3),
        "worker_processes_seen": len(workers),
        "restarted_workers": max(0, len(workers) - a.workers),
        "batch_process_peak_mb": first["batch_process_peak_mb"],
        "load_before": first["load_before"], "load_after": first["load_after"],
        "events": ev, "output_mb": round(sum(int(r["bytes"]) for r in rows.values()) / 2**20, 1),
        "segments": sorted({int(r["segments"]) for r in rows.values() if r["segments"]}),
        "errors": [f"{r['case']}: {r['message']}" for r in rows.values()
                   if r["status"] != "ok"][:5],
        "rerun": {"wall_s": second["wall_s"], "converted": second["converted"],
                  "already_done": second["already_done"], "failed": second["failed"],
                  "code": second["code"], "outputs_untouched": untouched,
                  "worker_processes_used": len(second["workers"]) if kind == "local" else None},
        "outdir": str(outdir),
    }
    print(f"{kind}: {res['cases_per_hour']} cases/h, peak RSS per worker "
          f"{res['worker_peak_rss_mb']} MB, events {ev}, rerun {second['wall_s']} s "
          f"({second['already_done']} already done)", flush=True)
    return res


def start_external(logs: Path, n: int, memory_limit: str):
    """A dask scheduler and ``n`` dask workers (1 thread, --memory-limit), ready."""
    from distributed import Client

    sys.path.insert(0, str(HERE.parent / "tests"))
    from orthanc import free_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(BIN / "dask")
    t0 = time.perf_counter()
    procs = [start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard"], logs / "scheduler.log")]
    try:
        for i in range(n):
            procs.append(start([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                "--memory-limit", memory_limit, "--no-dashboard", "--host",
                                "127.0.0.1", "--local-directory", str(logs / f"wdir{i}")],
                               logs / f"w{i}.log"))
        deadline = time.time() + 120
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    info = client.scheduler_info()["workers"]
                    if len(info) == n:
                        limits = {w["memory_limit"] for w in info.values()}
                        break
            except OSError:
                pass
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the Dask cluster did not start: " +
                                   (logs / "scheduler.log").read_text()[-1000:])
            time.sleep(0.5)
        if limits != {_bytes(memory_limit)}:
            raise RuntimeError(f"workers report memory limits {limits}, not {memory_limit}")
        return address, procs, round(time.perf_counter() - t0, 2)
    except BaseException:
        for p in reversed(procs):
            stop(p)
        raise


def _bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return parse_bytes(text)


# -- correctness ------------------------------------------------------------------------------

def highdicom_labels(seg_path: Path, ct_dir: Path) -> np.ndarray:
    """The SEG's label map read by highdicom on the CT's grid (CT headers read by pydicom), as
    label values (segment "structure N" is N), slices ascending along the CT's normal."""
    import highdicom as hd
    import pydicom

    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_dir.iterdir()]
    iop = [float(v) for v in heads[0].ImageOrientationPatient]
    down = np.cross(iop[3:], iop[:3])  # highdicom's slice direction

    def along(d):
        return float(down @ [float(v) for v in d.ImagePositionPatient])

    heads.sort(key=along)
    geometry = hd.VolumeGeometry.from_attributes(
        image_position=[float(v) for v in heads[0].ImagePositionPatient],
        image_orientation=iop, rows=int(heads[0].Rows), columns=int(heads[0].Columns),
        pixel_spacing=[float(v) for v in heads[0].PixelSpacing],
        spacing_between_slices=(along(heads[-1]) - along(heads[0])) / (len(heads) - 1),
        number_of_frames=len(heads), coordinate_system="PATIENT",
        frame_of_reference_uid=heads[0].FrameOfReferenceUID)
    seg = hd.seg.segread(seg_path)
    if seg.SegmentationType != "LABELMAP" or seg.file_meta.TransferSyntaxUID != \
            "1.2.840.10008.1.2.5":
        raise AssertionError(f"{seg_path}: {seg.SegmentationType}, "
                             f"{seg.file_meta.TransferSyntaxUID}: not a LABELMAP RLE SEG")
    volume = seg.get_volume(combine_segments=True).match_geometry(geometry)
    lut = np.full(max(s.SegmentNumber for s in seg.SegmentSequence) + 1, -1, np.int64)
    for s in seg.SegmentSequence:
        m = re.fullmatch(r"structure (\d+)", s.SegmentLabel)
        lut[s.SegmentNumber] = int(m.group(1)) if m else 0 if s.SegmentNumber == 0 else -1
    return lut[volume.array][::-1]


def check(results: list[dict], data: Path, a) -> list[dict]:
    """A sample of cases, from every cluster's output folder, against the labels."""
    picks = sorted({int(round(x)) for x in np.linspace(0, a.cases - 1, a.check)})
    shape = (a.slices, 512, 512)
    out = []
    for i in picks:
        name = f"case{i:03d}"
        want = make_labels(shape, a.labels, i)
        other = make_labels(shape, a.labels, (i + 1) % a.cases)
        for r in results:
            t0 = time.perf_counter()
            try:
                got = highdicom_labels(Path(r["outdir"]) / f"{name}.dcm",
                                       data / f"ct{i % a.cts}")
                diff = int(np.count_nonzero(got != want))
                diff_other = int(np.count_nonzero(got != other))
                error = ""
            except Exception as exc:  # reported, and the check fails
                diff, diff_other, error = -1, -1, f"{type(exc).__name__}: {exc}"
            row = {"case": name, "cluster": r["cluster"], "ct": f"ct{i % a.cts}",
                   "labels_present": int(np.unique(want).size - 1),
                   "voxels_labelled": int(np.count_nonzero(want)),
                   "voxels_different": diff, "voxels_different_from_next_case": diff_other,
                   "exact": diff == 0 and diff_other > 0, "error": error,
                   "seconds": round(time.perf_counter() - t0, 1)}
            out.append(row)
            print(f"check {name} ({r['cluster']}): {diff} voxels differ (next case's labels: "
                  f"{diff_other}) {error}", flush=True)
    return out


# -- report -----------------------------------------------------------------------------------

def markdown(results: list[dict], checks: list[dict], meta: dict) -> str:
    names = {"local": "LocalCluster (`--scheduler local`)",
             "external": "external `dask scheduler` + `dask worker` processes"}
    lines = [
        "## Collections: `segbridge batch` on Dask",
        "",
        f"Generated by `python bench/bench_collection.py --markdown docs/performance.md` "
        f"({meta['machine']}, Python {meta['python']}, Dask {meta['dask']}; "
        f"{meta['total_minutes']:.0f} min for the whole run). **The machine was shared**: "
        "another engineer's CPU-heavy benchmarks may have run at the same time (load average "
        "before/after each batch is in the table), so cases/hour is a lower bound for this "
        "machine rather than a clean figure.",
        "",
        f"Input: {meta['cases']} cases, each 512x512x{meta['slices']} with {meta['labels']} "
        "non-overlapping organ-like labels (TotalSegmentator-like; `bench/common.py "
        "make_labels`, a different seed per case, gzipped NIfTI). **Only "
        f"{meta['cts']} distinct reference CT series are on disk** (each 512x512x"
        f"{meta['slices']}, {meta['ct_mb']:.0f} MB): case *i* uses CT *i* mod {meta['cts']}, "
        "its labels written on that CT's grid, to keep the disk use bounded; a real collection "
        "reads a different CT per case, so the CT headers come from the page cache here more "
        "often than they would. Output: LABELMAP SEG, RLE, profile archive (one manifest line "
        "per case, `type=labelmap`, `compression=rle`). Each `dask worker` (and each "
        f"LocalCluster worker) has 1 thread and a memory limit of {meta['memory_limit']} "
        "(Dask's `memory_limit`: pause at 80 %, nanny restart at 95 %); the LocalCluster's by "
        "`segbridge batch --memory-limit`, the external workers' by their own `dask worker "
        "--memory-limit`.",
        "",
        "Wall time is the whole `segbridge batch` command (the LocalCluster's start-up "
        "included; the external cluster was started before, its start-up time is given apart). "
        "Peak RSS per worker is the kernel's high-water mark (VmHWM) of each Dask worker "
        "process, the process the memory limit applies to; *tree* is the largest sampled RSS "
        "(every 0.2 s, psutil) of the worker and its children. Limit events are Dask's log "
        "lines (`Pausing worker`, nanny restarts, killed workers) plus worker processes "
        "replaced by new ones.",
        "",
        "| cluster | cases | wall (s) | cases/hour | s/case (median, max) | worker CPU s/case | "
        "peak RSS per worker (MB) | tree (MB) | peak / limit | paused / restarted / killed | "
        "load before/after |",
        "|---|---:|---:|---:|---|---:|---|---|---:|---|---|",
    ]
    for r in results:
        ev = r["events"]
        lines.append(
            f"| {names[r['cluster']]} | {r['converted']} ok, {r['failed']} failed | "
            f"{r['wall_s']:.0f} | {r['cases_per_hour']:.0f} | {r['case_seconds_median']}, "
            f"{r['case_seconds_max']} | {r['worker_cpu_s_per_case']} | "
            f"{', '.join(f'{v:.0f}' for v in r['worker_peak_rss_mb'])} | "
            f"{', '.join(f'{v:.0f}' for v in r['worker_tree_rss_sampled_mb'])} | "
            f"{r['worker_peak_fraction_of_limit']:.2f} | {ev['paused']} / "
            f"{ev['restarted'] + r['restarted_workers']} / {ev['killed']} | "
            f"{r['load_before']} / {r['load_after']} |")
    lines += ["", "| cluster | rerun: wall (s) | converted | already done | outputs untouched | "
              "workers started by the rerun | batch process peak RSS (MB) | cluster start-up "
              "(s) |", "|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in results:
        rr = r["rerun"]
        used = rr["worker_processes_used"]
        lines.append(f"| {names[r['cluster']]} | {rr['wall_s']:.1f} | {rr['converted']} | "
                     f"{rr['already_done']} | {'yes' if rr['outputs_untouched'] else 'NO'} | "
                     f"{'- (running)' if used is None else used} | "
                     f"{r['batch_process_peak_mb']:.0f} | "
                     f"{'-' if r['cluster_start_s'] is None else r['cluster_start_s']} |")
    exact = sum(c["exact"] for c in checks)
    cases = sorted({c["case"] for c in checks})
    cpu = [r["worker_cpu_s_per_case"] for r in results]
    lines += [
        "",
        f"The workers spent {min(cpu)}-{max(cpu)} CPU seconds per case on both clusters, so a "
        "difference in wall time between them is the machine's other load, not the kind of "
        f"cluster. On {meta['workers']} otherwise idle cores that CPU time alone would allow "
        f"about {meta['workers'] * 3600 / max(cpu):.0f} cases/hour (an estimate from CPU time, "
        "not a measurement).",
        "",
        f"Correctness: {exact} of {len(checks)} sampled outputs ({', '.join(cases)}, from "
        f"{' and '.join(r['cluster'] for r in results)}) read back by highdicom "
        "(`segread(...).get_volume(combine_segments=True)` matched to the CT geometry from "
        "pydicom headers) equal the labels regenerated from their seed voxel for voxel "
        f"({min(c['labels_present'] for c in checks)}-"
        f"{max(c['labels_present'] for c in checks)} labels present, "
        f"{min(c['voxels_labelled'] for c in checks) / 1e6:.1f}-"
        f"{max(c['voxels_labelled'] for c in checks) / 1e6:.1f} M labelled voxels), and each "
        "differs from the next case's labels (so the cases are distinct and the check can "
        "fail). Segments per output: "
        f"{', '.join(str(s) for s in sorted({s for r in results for s in r['segments']}))}; "
        f"output {results[0]['output_mb']:.0f} MB per {meta['cases']} cases.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--slices", type=int, default=600)
    ap.add_argument("--labels", type=int, default=117)
    ap.add_argument("--cts", type=int, default=4, help="distinct reference CT series")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--check", type=int, default=5, help="cases checked with highdicom")
    ap.add_argument("--clusters", default="local,external")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--markdown", type=Path, default=None)
    a = ap.parse_args()
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _signalled)
    atexit.register(stop_all)
    t_start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    manifest = prepare(a.out, a.cases, a.slices, a.labels, a.cts)
    data = manifest.parent
    work = a.out / f"work_collection_{a.slices}"
    results = []
    try:
        for kind in a.clusters.split(","):
            results.append(run_cluster(kind, manifest, work, a))
        checks = check(results, data, a)
    finally:
        stop_all()
    import dask

    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} "
                       "GB RAM",
            "python": platform.python_version(), "dask": dask.__version__, "cases": a.cases,
            "slices": a.slices, "labels": a.labels, "cts": a.cts, "workers": a.workers,
            "memory_limit": a.memory_limit,
            "ct_mb": sum(f.stat().st_size for f in (data / "ct0").iterdir()) / 2**20,
            "total_minutes": (time.perf_counter() - t_start) / 60}
    ok = all(c["exact"] for c in checks) and all(
        r["failed"] == 0 and r["converted"] == a.cases and r["rerun"]["already_done"] == a.cases
        and r["rerun"]["converted"] == 0 and r["rerun"]["outputs_untouched"]
        and not any(r["events"][k] for k in ("paused", "restarted", "killed"))
        and r["restarted_workers"] == 0 for r in results)
    payload = {"meta": meta, "ok": ok, "results": [{k: v for k, v in r.items() if k != "log"}
                                                   for r in results], "checks": checks}
    publish(a.out / "results_collection.json", payload, markdown(results, checks, meta),
            a.markdown, "collection", sidecar="performance-collection.json")
    if not ok:
        print("FAILED: see the table (errors, limit events, rerun or checks)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
