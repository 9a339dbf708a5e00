"""Two versions of segbridge side by side on bench_core's volume tasks: does a change slow them?

Each git revision is checked out into its own temporary worktree and run from there
(PYTHONPATH), on the same inputs as bench/bench_core.py (512x512x200 CT, 100 labels): BINARY
write, LABELMAP RLE and uncompressed writes, BINARY and LABELMAP reads (the SEGs written by
the base revision). The two run in turns (base, head, base, head, ...) so that a change of load
on the machine falls on both. Whole processes of 0.4-1 s scatter by +-20 % on this 2-core
machine, so both the median and the fastest run (the least disturbed, as timeit takes it) are
compared; a task is a regression when the head's fastest run is more than ``--limit``
(default 5 %) above the base's fastest.

usage: python bench/bench_ab.py --base main~3 --head main [--reps 5] [--out bench/out]
                                [--markdown docs/performance.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import clear_output, prepare, tasks  # noqa: E402
from common import HERE, ROOT, publish, timed  # noqa: E402


def worktree(rev: str, where: Path) -> Path:
    """A detached checkout of ``rev`` under ``where``; its ``src`` goes on PYTHONPATH."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(where), rev],
                   check=True, capture_output=True)
    return where


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--head", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--limit", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    revs = {name: subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                                 check=True, capture_output=True, text=True).stdout.strip()
            for name, rev in (("base", a.base), ("head", a.head))}
    p = prepare(a.out, 200, 100)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    trees = {}
    try:
        for name in ("base", "head"):
            trees[name] = worktree(revs[name], tmp / name)
        work = {name: tmp / f"work-{name}" for name in trees}
        for w in work.values():
            w.mkdir()
        jobs = {}
        for name in trees:
            for task, tool, cmd, out, _ in tasks(p, work[name]):
                if tool == "segbridge":
                    jobs.setdefault(task, {})[name] = (cmd, out)
        # the read tasks read highdicom's SEGs in bench_core; here both read the base's writes
        reads = {"read BINARY": "sb_binary.dcm", "read LABELMAP": "sb_labelmap.dcm"}
        times: dict[str, dict[str, list[float]]] = {}
        order = [t for t in jobs if not t.startswith("read")] + list(reads)
        for rep in range(a.reps):
            for task in order:
                for name in ("base", "head") if rep % 2 == 0 else ("head", "base"):
                    cmd, out = jobs[task][name]
                    if task in reads:
                        cmd = list(cmd)
                        cmd[2] = str(work["base"] / reads[task])
                    clear_output(out)
                    r = timed(cmd, env={"PYTHONPATH": str(trees[name] / "src")}, timeout=600)
                    if not r.ok:
                        raise SystemExit(f"{task} ({name} {revs[name]}) failed: {r.error}")
                    times.setdefault(task, {}).setdefault(name, []).append(r.wall)
        lines = [f"`python bench/bench_ab.py --base {a.base} --head {a.head} --reps {a.reps}` "
                 f"({platform.machine()}, Python {platform.python_version()}): base "
                 f"{revs['base']}, head {revs['head']}, run in turns; medians and fastest runs of whole "
                 "`segbridge convert` processes.", "",
                 "| task | base median | head median | ratio | base fastest | head fastest | "
                 "ratio | verdict |", "|---|---:|---:|---:|---:|---:|---:|---|"]
        rows = []
        worst = 0.0
        for task in order:
            b, h = (statistics.median(times[task][n]) for n in ("base", "head"))
            bmin, hmin = (min(times[task][n]) for n in ("base", "head"))
            ratio = hmin / bmin
            worst = max(worst, ratio)
            verdict = "slower" if ratio > 1 + a.limit else "same or faster"
            rows.append({"task": task, "base_s": b, "head_s": h, "ratio_median": h / b,
                         "base_min_s": bmin, "head_min_s": hmin, "ratio": ratio,
                         "base_runs": times[task]["base"], "head_runs": times[task]["head"]})
            lines.append(f"| {task} | {b:.2f} s | {h:.2f} s | {h / b:.3f} | {bmin:.3f} s | "
                         f"{hmin:.3f} s | {ratio:.3f} | {verdict} |")
        lines += ["", f"Largest ratio of the fastest runs {worst:.3f} (limit {1 + a.limit:.2f})."]
        md = "\n".join(lines)
        (a.out / "ab").mkdir(parents=True, exist_ok=True)
        publish(a.out / "ab" / "results.json",
                {"base": revs["base"], "head": revs["head"], "reps": a.reps, "rows": rows},
                md, a.markdown, "Volume path before and after a change (bench_ab)")
    finally:
        for name in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tmp / name)], capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
