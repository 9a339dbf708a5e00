"""Shared helpers for the benchmarks: synthetic data, timed subprocess runs, tables.

Each tool runs in its own process, so the wall time and peak memory are the whole job as a user
sees it (interpreter start, imports, reading, writing). Peak memory is the child's maximum
resident set size from wait4(2).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
BIN = Path(PY).parent


@dataclass
class Run:
    wall: float
    peak_mb: float
    ok: bool
    error: str = ""

    def row(self, task: str, tool: str) -> dict:
        """A results-table row: wall time, peak memory, and the last error line if it failed."""
        return {"task": task, "tool": tool, "wall_s": round(self.wall, 3),
                "peak_mb": round(self.peak_mb, 1), "ok": self.ok,
                "error": "" if self.ok else self.error.strip().splitlines()[-1:]}


def timed(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> Run:
    """Run a command through the small launcher; wall time and peak RSS of the child (killed,
    and reported as failed, after ``timeout`` seconds)."""
    limit = ["--timeout", str(timeout)] if timeout else []
    out = subprocess.run([PY, "-S", str(HERE / "measure.py"), *limit, *cmd], capture_output=True,
                         text=True, env={**os.environ, **(env or {})})
    r = json.loads(out.stdout)
    return Run(r["wall"], r["peak_mb"], r["code"] == 0, r["error"])


def repeat(cmd: list[str], reps: int, before=None, timeout: float | None = None) -> Run:
    runs = []
    for _ in range(reps):
        if before is not None:
            before()
        r = timed(cmd, timeout=timeout)
        if not r.ok:
            return r
        runs.append(r)
    return Run(statistics.median(r.wall for r in runs), max(r.peak_mb for r in runs), True)


def make_labels(shape, n_labels: int, seed: int = 0) -> np.ndarray:
    """``n_labels`` non-overlapping ellipsoids of organ-like sizes inside a body outline."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    labels = np.zeros(shape, np.uint8 if n_labels < 256 else np.uint16)
    for i in range(1, n_labels + 1):
        r = np.array([rng.uniform(4, 30), rng.uniform(8, 45), rng.uniform(8, 45)])
        c = np.array([rng.uniform(r[0], nz - r[0]), rng.uniform(ny * 0.2, ny * 0.8),
                      rng.uniform(nx * 0.15, nx * 0.85)])
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        m = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1
        box = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        box[m & (box == 0)] = i
    return labels


def dcmqi_meta(labels) -> dict:
    """dcmqi metadata for labels 1..n (an int) or for the given label values."""
    numbers = range(1, labels + 1) if isinstance(labels, int) else labels
    return {
        "ContentCreatorName": "Bench^Mark", "SeriesDescription": "bench", "SeriesNumber": "300",
        "InstanceNumber": "1",
        "segmentAttributes": [[{
            "labelID": i, "SegmentLabel": f"structure {i}", "SegmentAlgorithmType": "AUTOMATIC",
            "SegmentAlgorithmName": "bench",
            "SegmentedPropertyCategoryCodeSequence": {
                "CodeValue": "91723000", "CodingSchemeDesignator": "SCT",
                "CodeMeaning": "Anatomical Structure"},
            "SegmentedPropertyTypeCodeSequence": {
                "CodeValue": "85756007", "CodingSchemeDesignator": "SCT",
                "CodeMeaning": "Tissue"},
            "recommendedDisplayRGBValue": [int(40 + (i * 37) % 200), int(40 + (i * 91) % 200),
                                           int(40 + (i * 53) % 200)],
        } for i in numbers]],
    }


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2))


def publish(results: Path, payload: dict, md: str, markdown: Path | None, section: str,
            sidecar: str | None = None) -> None:
    """Write the results JSON, print the table, and put it in its section of ``markdown``
    (with the results beside it in the file named ``sidecar``, when given)."""
    write_json(results, payload)
    print()
    print(md)
    if markdown:
        update_section(markdown, section, md)
        if sidecar is not None:
            write_json(markdown.with_name(sidecar), payload)


def update_section(path: Path, name: str, markdown: str) -> None:
    """Put ``markdown`` into ``path`` between <!-- begin NAME --> and <!-- end NAME -->.

    Each benchmark owns one section of docs/performance.md, so running one does not erase the
    others' results.
    """
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Performance\n\n"
    if begin in text and end in text:
        a = text.index(begin)
        b = text.index(end) + len(end)
        text = text[:a] + block.rstrip("\n") + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
