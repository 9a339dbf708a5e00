"""Sizes and times of every representation segbridge writes, for docs/guide.md.

The 512x512x200 benchmark study (100 non-overlapping labels, as bench_core.py) and an
overlapping variant (the same plus 5 lesions inside organs), converted with the segbridge CLI
into each representation; process wall time, peak memory, output size, and a voxel check of every
output read back.

usage: python bench/bench_formats.py [--out bench/out] [--json docs/formats.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import prepare  # noqa: E402
from common import BIN, HERE, timed  # noqa: E402

REPRESENTATIONS = [
    # (name, output suffix, extra CLI args)
    ("NIfTI labelmap (.nii.gz)", ".nii.gz", []),
    ("Slicer .seg.nrrd", ".seg.nrrd", []),
    ("SEG BINARY native", ".dcm", ["--type", "binary", "--profile", "slicer",
                                   "--compression", "none"]),
    ("SEG BINARY deflate", ".dcm", ["--type", "binary", "--profile", "slicer",
                                    "--compression", "deflate"]),
    ("SEG BINARY RLE", ".dcm", ["--type", "binary", "--profile", "archive",
                                "--compression", "rle"]),
    ("SEG LABELMAP native", ".dcm", ["--type", "labelmap", "--profile", "archive",
                                     "--compression", "none"]),
    ("SEG LABELMAP RLE (ohif)", ".dcm", ["--type", "labelmap", "--profile", "ohif"]),
    ("SEG LABELMAP JPEG-LS", ".dcm", ["--type", "labelmap", "--profile", "archive",
                                      "--compression", "jpegls"]),
    ("SEG LABELMAP JPEG 2000", ".dcm", ["--type", "labelmap", "--profile", "archive",
                                        "--compression", "jpeg2000"]),
    ("SEG LABELMAP deflate", ".dcm", ["--type", "labelmap", "--profile", "archive",
                                      "--compression", "deflate"]),
]
OVERLAP = [
    ("NIfTI 4-D layers (.nii.gz)", ".nii.gz", []),
    ("Slicer .seg.nrrd (layers)", ".seg.nrrd", []),
    ("SEG BINARY, one object (slicer)", ".dcm", ["--type", "binary", "--profile", "slicer"]),
    ("SEG LABELMAPs split per overlap (ohif)", ".dcm", ["--profile", "ohif"]),
]


def overlapping_inputs(data: Path, labels: np.ndarray) -> Path:
    """A second NIfTI with 5 lesions that overlap the organs of the benchmark labels."""
    path = data / "lesions.nii.gz"
    if path.exists():
        return path
    lesions = np.zeros(labels.shape, np.uint8)
    centres = np.argwhere(labels > 0)[:: max(1, int((labels > 0).sum()) // 5)][:5]
    zz, yy, xx = np.ogrid[: labels.shape[0], : labels.shape[1], : labels.shape[2]]
    for i, (z, y, x) in enumerate(centres):
        lesions[(zz - z) ** 2 / 16 + (yy - y) ** 2 / 100 + (xx - x) ** 2 / 100 <= 1] = i + 1
    ref = nib.load(str(data / "labels.nii.gz"))
    nib.save(nib.Nifti1Image(np.transpose(lesions, (2, 1, 0)), ref.affine), str(path))
    return path


def size_of(outputs: list[Path]) -> int:
    return sum(p.stat().st_size for p in outputs)


def run_case(inputs, ref_dir, meta, work: Path, name: str, suffix: str, extra: list[str]):
    out = work / ("out" + suffix)
    for p in work.glob("out*"):
        p.unlink()
    cmd = [str(BIN / "segbridge"), "convert", *map(str, inputs), "-o", str(out), "-r",
           str(ref_dir), *extra]
    if meta:
        cmd += ["--meta", str(meta)]
    run = timed(cmd)
    outputs = sorted(p for p in work.glob("out*") if not p.name.endswith(".json"))
    return run, outputs


def check(outputs: list[Path], ref, expected: dict[str, np.ndarray]) -> bool:
    import segbridge as sb

    got: dict[str, np.ndarray] = {}
    for p in outputs:
        seg = sb.read(p, reference=ref)
        for s in seg.segments:
            got[s.label] = seg.mask(s.number)
    return set(got) == set(expected) and all(np.array_equal(got[k], v)
                                             for k, v in expected.items())


def main() -> None:
    import segbridge as sb

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    p = prepare(args.out, 200, 100)
    labels = np.load(p["labels_npy"])
    ref = sb.read_series(p["ct"])
    work = args.out / "formats"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    base = sb.read(p["labels"], reference=ref, meta=p["meta"])
    expected = {s.label: base.mask(s.number) for s in base.segments}
    for name, suffix, extra in REPRESENTATIONS:
        run, outputs = run_case([p["labels"]], p["ct"], p["meta"], work, name, suffix, extra)
        ok = run.ok and check(outputs, ref, expected)
        rows.append({"case": "100 labels", "representation": name, "files": len(outputs),
                     "size_mb": round(size_of(outputs) / 2**20, 2), "wall_s": round(run.wall, 2),
                     "peak_mb": round(run.peak_mb), "exact": ok,
                     "error": "" if run.ok else run.error.strip().splitlines()[-1:]})
        print(rows[-1], flush=True)
    lesions = overlapping_inputs(Path(p["labels"]).parent, labels)
    both = sb.read([p["labels"], lesions], reference=ref)
    expected = {s.label: both.mask(s.number) for s in both.segments}
    for name, suffix, extra in OVERLAP:
        run, outputs = run_case([p["labels"], lesions], p["ct"], None, work, name, suffix, extra)
        ok = run.ok and check(outputs, ref, expected)
        rows.append({"case": "105 overlapping", "representation": name, "files": len(outputs),
                     "size_mb": round(size_of(outputs) / 2**20, 2), "wall_s": round(run.wall, 2),
                     "peak_mb": round(run.peak_mb), "exact": ok,
                     "error": "" if run.ok else run.error.strip().splitlines()[-1:]})
        print(rows[-1], flush=True)
    input_mb = round(Path(p["labels"]).stat().st_size / 2**20, 2)
    doc = {"input_nifti_mb": input_mb, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
