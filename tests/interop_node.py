"""Run the real @cornerstonejs/adapters (interop/node/seg2labelmaps.mjs) on a SEG and return
per-segment masks on the reference grid: the OHIF consumer of the interop tests."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

HARNESS = Path(__file__).resolve().parents[1] / "interop" / "node"


class CornerstoneError(RuntimeError):
    """The adapter refused the SEG (its one-line message)."""


def available() -> str | None:
    """Why the harness cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HARNESS / "node_modules" / "@cornerstonejs" / "adapters").is_dir():
        return "run `npm ci` in interop/node"
    return None


def cornerstone_load(path, ref) -> dict:
    why = available()
    assert why is None, f"Cornerstone harness unavailable: {why}"
    files = [str(p) for p in dict.fromkeys(ref.paths)]
    res = subprocess.run(["node", str(HARNESS / "seg2labelmaps.mjs"), str(path), *files],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise CornerstoneError(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                               else f"exit {res.returncode}")
    return json.loads(res.stdout)


def cornerstone_masks(path, ref) -> dict[int, np.ndarray]:
    """{segment value: mask [z, y, x]} as Cornerstone builds its labelmaps; raises on warnings
    about frames it could not place (it drops them silently otherwise)."""
    out = cornerstone_load(path, ref)
    bad = [w for w in out.get("warnings", []) if "not present" in w or "No imageId" in w]
    if bad:
        raise CornerstoneError(f"frames dropped: {bad[0]}")
    grid = ref.grid
    index = {i.sop_instance_uid: k for k, i in enumerate(ref.source.instances)}
    masks: dict[int, np.ndarray] = {}
    for layer in out["layers"]:
        for uid, b64 in layer.items():
            px = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(grid.shape[1:])
            k = index[uid]
            for v in np.unique(px):
                if v:
                    masks.setdefault(int(v), np.zeros(grid.shape, bool))[k] |= px == v
    return masks


def cornerstone_measure(request: dict) -> dict:
    """Run Cornerstone3D's own measurement code (interop/node/measure_check.mjs)."""
    why = available()
    assert why is None, f"Cornerstone harness unavailable: {why}"
    res = subprocess.run(["node", str(HARNESS / "measure_check.mjs")], input=json.dumps(request),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)
