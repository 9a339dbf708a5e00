"""Slide label maps (issue 15): segbridge against highdicom on a synthetic whole slide.

A VL WSI header of SIZE x SIZE pixels (512-pixel tiles, no pixel data: both tools read only
the source's header) and a label image of OBJECTS non-overlapping square cells (12-40 pixels)
labelled with CLASSES segment numbers (a LABELMAP SEG holds at most 65,535 segments, so
100,000 objects are 100,000 cells of a few classes), stored as a uint8 ``.npy``:

- labels -> LABELMAP SEG, one level (TILED_SPARSE, RLE)   segbridge convert | highdicom
- labels -> LABELMAP SEG pyramid (factors 2, 4, 8)        segbridge --pyramid | highdicom
                                                           create_segmentation_pyramid
- LABELMAP SEG (highdicom's) -> label image               segbridge -> .npy |
                                                           highdicom get_total_pixel_matrix

Each run is its own process (bench/common.py: wall time and peak RSS of the whole job).
Every segbridge output is compared with the labels (one strip at a time).

usage: python bench/bench_slide.py [--size 50000] [--objects 100000] [--classes 20]
                                   [--reps 1] [--timeout 1800] [--only segbridge]
                                   [--out bench/out/slide]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, ROOT, repeat  # noqa: E402

sys.path.insert(0, str(ROOT / "src"))


def make_data(out: Path, size: int, objects: int, classes: int, seed: int = 0) -> None:
    from segbridge.slide.synthetic import sm_image

    sm_image(out / "sm.dcm", size, size, 512, color=False, pixels=False)
    lab = np.lib.format.open_memmap(out / "labels.npy", mode="w+", dtype=np.uint8,
                                    shape=(size, size))
    rng = np.random.default_rng(seed)
    per_band = max(1, objects // max(1, size // 48))
    placed, r = 0, 0
    while placed < objects and r + 48 <= size:
        band = np.zeros((48, size), np.uint8)
        n = min(per_band, objects - placed, size // 48)
        cols = np.sort(rng.choice(size // 48, n, replace=False)) * 48
        for c in cols:
            h, w = rng.integers(12, 41, 2)
            band[4:4 + h, c + 4:c + 4 + w] = rng.integers(1, classes + 1)
        lab[r:r + 48] = band
        placed += n
        r += 48
    lab.flush()
    del lab
    (out / "meta.json").write_text(json.dumps({"size": size, "objects": placed,
                                               "classes": classes}))


HD_WRITE = """
import sys, numpy as np, pydicom, highdicom as hd
src = pydicom.dcmread(sys.argv[1]); lab = np.load(sys.argv[2])
n = int(lab.max())
descs = [hd.seg.SegmentDescription(segment_number=i, segment_label=f"class {i}",
    segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
    segmented_property_type=hd.sr.CodedConcept("4421005", "SCT", "Cell"),
    algorithm_type="MANUAL") for i in range(1, n + 1)]
kw = dict(manufacturer="m", manufacturer_model_name="m", software_versions="1",
          device_serial_number="1", transfer_syntax_uid=hd.UID("1.2.840.10008.1.2.5"))
if sys.argv[4] == "pyramid":
    segs = hd.seg.create_segmentation_pyramid([src], [lab], "LABELMAP", descs, hd.UID(), 1,
                                              downsample_factors=[2, 4, 8], **kw)
    for k, s in enumerate(segs):
        s.save_as(sys.argv[3].replace(".dcm", f"-{k + 1}.dcm"))
else:
    s = hd.seg.Segmentation([src], lab, "LABELMAP", descs, hd.UID(), 1, hd.UID(), 1,
                            tile_pixel_array=True, omit_empty_frames=True,
                            dimension_organization_type="TILED_SPARSE", **kw)
    s.save_as(sys.argv[3])
"""

HD_READ = """
import sys, numpy as np, highdicom as hd
s = hd.seg.segread(sys.argv[1])
np.save(sys.argv[2], s.get_total_pixel_matrix(combine_segments=True))
"""


def check(labels: Path, got: Path) -> bool:
    a = np.load(labels, mmap_mode="r")
    b = np.load(got, mmap_mode="r")
    return a.shape == b.shape and all(np.array_equal(a[r:r + 2048], b[r:r + 2048])
                                      for r in range(0, a.shape[0], 2048))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=50000)
    ap.add_argument("--objects", type=int, default=100000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--only", nargs="*", default=["segbridge", "highdicom"])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "slide")
    a = ap.parse_args()
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "meta.json"
    if not meta.exists() or json.loads(meta.read_text())["size"] != a.size:
        make_data(out, a.size, a.objects, a.classes)
    sm, labels = out / "sm.dcm", out / "labels.npy"
    sb = [PY, "-m", "segbridge", "convert"]
    rows = []

    def run(task, tool, cmd, verify=None):
        r = repeat(cmd, a.reps, timeout=a.timeout)
        row = r.row(task, tool)
        if r.ok and verify is not None:
            row["equal"] = verify()
        rows.append(row)
        print(json.dumps(row), flush=True)

    if "segbridge" in a.only:
        run("write", "segbridge", sb + [str(labels), "-r", str(sm), "-o", str(out / "sb.dcm"),
                                        "--compression", "rle"])
        run("pyramid", "segbridge", sb + [str(labels), "-r", str(sm), "-o",
                                          str(out / "sbp.dcm"), "--compression", "rle",
                                          "--pyramid", "2,4,8"])
        run("read (own SEG)", "segbridge", sb + [str(out / "sb.dcm"), "-o",
                                                 str(out / "sb_back.npy")],
            lambda: check(labels, out / "sb_back.npy"))
    if "highdicom" in a.only:
        run("write", "highdicom", [PY, "-c", HD_WRITE, str(sm), str(labels),
                                   str(out / "hd.dcm"), "single"])
        run("pyramid", "highdicom", [PY, "-c", HD_WRITE, str(sm), str(labels),
                                     str(out / "hdp.dcm"), "pyramid"])
        run("read", "highdicom", [PY, "-c", HD_READ, str(out / "hd.dcm"),
                                  str(out / "hd_back.npy")])
    if (out / "hd.dcm").exists() and "segbridge" in a.only:
        run("read", "segbridge", sb + [str(out / "hd.dcm"), "-o", str(out / "sb_hd.npy")],
            lambda: check(labels, out / "sb_hd.npy"))
    (out / "results.json").write_text(json.dumps({"meta": json.loads(meta.read_text()),
                                                  "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
