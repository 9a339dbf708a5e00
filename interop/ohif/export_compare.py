"""The SEG OHIF exported against what was painted in the page (issue 12 point 5).

Three independent reads of OHIF's file must give the painted voxels, segment by segment and
voxel for voxel: segbridge's API (``segbridge.read``), ``segbridge convert`` to NIfTI read back
with nibabel, and dcmqi's ``segimage2itkimage`` (Slicer's reader; on the file ``segbridge repair
--profile slicer`` makes when dcmqi refuses OHIF's own). ``segbridge validate``'s findings on
OHIF's file are kept for docs/interop.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def painted_masks(painted: dict, ct_uids: list[str], shape: tuple[int, int, int]) -> dict:
    """Segment number -> [z, y, x] mask on the CT grid, from the pixel indices per SOP UID."""
    slice_of = {u: k for k, u in enumerate(ct_uids)}
    out = {}
    for n, by_sop in painted["segments"].items():
        m = np.zeros(shape, bool)
        for sop, idx in by_sop.items():
            m[slice_of[sop]].flat[np.asarray(idx, dtype=np.int64)] = True
        out[int(n)] = m
    return out


def _diff(what: str, label: str, got: np.ndarray | None, want: np.ndarray) -> list[str]:
    if got is None:
        return [f"{what}: segment {label!r} missing"]
    if got.shape != want.shape:
        return [f"{what}: segment {label!r} has shape {got.shape}, the CT {want.shape}"]
    bad = int((got != want).sum())
    return [f"{what}: segment {label!r} differs in {bad} voxels ({int(got.sum())} read, "
            f"{int(want.sum())} painted)"] if bad else []


def _nifti_masks(nii: Path, sidecar: Path) -> dict[str, np.ndarray]:
    """Label -> [z, y, x] mask from segbridge's NIfTI and its dcmqi-style sidecar (nibabel)."""
    import nibabel as nib

    data = np.asanyarray(nib.load(str(nii)).dataobj)
    if data.ndim == 3:
        data = data[..., None]
    meta = json.loads(sidecar.read_text())
    out = {}
    for c, group in enumerate(meta["segmentAttributes"]):
        for entry in group:
            out[entry["SegmentLabel"]] = np.transpose(data[..., c] == entry["labelID"], (2, 1, 0))
    return out


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def check_export(file: Path, ct: Path, painted: dict, segbridge: str,
                 tmp: Path) -> tuple[dict, list[str]]:
    """Report (for result.json and the docs) and problems (empty: every read is exact)."""
    import segbridge as sb

    sys.path.insert(0, str(ROOT / "tests"))
    from interop_matrix import read_dcmqi  # dcmqi's segimage2itkimage, aligned on the CT grid

    ref = sb.read_series(ct)
    uids = [i.sop_instance_uid for i in ref.source.instances]
    want = painted_masks(painted, uids, ref.grid.shape)
    labels = {int(n): lab for n, lab in painted["labels"].items()}
    problems: list[str] = []
    report: dict = {"file": file.name, "painted": {labels[n]: int(m.sum()) for n, m in want.items()},
                    "overlap_painted": int(np.logical_and(*[want[n] for n in sorted(want)[:2]]).sum())
                    if len(want) > 1 else 0}

    info = _run([segbridge, "info", str(file), "--reference", str(ct), "--json"])
    report["info"] = json.loads(info.stdout) if info.returncode == 0 else info.stderr.strip()
    val = _run([segbridge, "validate", str(file), "--reference", str(ct), "--json"])
    report["validate"] = json.loads(val.stdout) if val.stdout.strip().startswith(("{", "[")) \
        else (val.stdout + val.stderr).strip()
    report["validate_exit"] = val.returncode

    # 1. segbridge's API
    try:
        seg = sb.read(file, reference=ref)
        got = {s.label: seg.mask(s.number) for s in seg.segments}
        report["segbridge"] = {k: int(v.sum()) for k, v in got.items()}
        for n, m in want.items():
            problems += _diff("segbridge.read", labels[n], got.get(labels[n]), m)
    except Exception as e:  # noqa: BLE001 - the report names what failed
        problems.append(f"segbridge.read: {e}")

    # 2. segbridge convert -> NIfTI, read by nibabel
    nii = tmp / "ohif-export.nii.gz"
    conv = _run([segbridge, "convert", str(file), "-o", str(nii), "--reference", str(ct)])
    if conv.returncode != 0:
        problems.append(f"segbridge convert: {conv.stderr.strip().splitlines()[-1:]}")
    else:
        got = _nifti_masks(nii, nii.with_name("ohif-export.json"))
        report["convert_nibabel"] = {k: int(v.sum()) for k, v in got.items()}
        for n, m in want.items():
            problems += _diff("segbridge convert + nibabel", labels[n], got.get(labels[n]), m)

    # 3. dcmqi, on OHIF's file; if it refuses, on segbridge repair's
    try:
        got = read_dcmqi([file], ref, tmp / "dcmqi")
        report["dcmqi"] = {"file": "OHIF's", "counts": {k: int(v.sum()) for k, v in got.items()}}
    except Exception as e:  # noqa: BLE001
        report["dcmqi_original"] = str(e)
        fixed = tmp / "ohif-export-repaired.dcm"
        rep = _run([segbridge, "repair", str(file), "-o", str(fixed), "--reference", str(ct),
                    "--profile", "slicer"])
        report["repair"] = (rep.stdout + rep.stderr).strip()
        if rep.returncode != 0:
            problems.append(f"segbridge repair: {rep.stderr.strip().splitlines()[-1:]}")
            return report, problems
        try:
            got = read_dcmqi([fixed], ref, tmp / "dcmqi-repaired")
        except Exception as e2:  # noqa: BLE001
            problems.append(f"dcmqi refuses OHIF's file ({e}) and the repaired one ({e2})")
            return report, problems
        report["dcmqi"] = {"file": "repaired", "counts": {k: int(v.sum()) for k, v in got.items()}}
    for n, m in want.items():
        problems += _diff(f"dcmqi ({report['dcmqi']['file']} file)", labels[n],
                          got.get(labels[n]), m)
    return report, problems
