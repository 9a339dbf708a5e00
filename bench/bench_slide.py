"""Slide microscopy benchmark (issue 15): a synthetic slide label map, segbridge vs highdicom.

A label map of ``--size`` x ``--size`` pixels with ``--objects`` cells (small ellipses of three
classes on a jittered grid, never touching, so the truth is known: every cell is one object) is
generated strip by strip and written as a tiled TIFF (tifffile, 256 x 256 tiles, deflate), so
the generator never holds the image.

Steps (each tool in its own process; wall time and peak RSS of that process, bench/common.py):

- ``measure``: per class area and object count, per object area / centroid (pixels and slide
  mm) / bounding box, written as CSV.
  * segbridge: ``segbridge.slide.measure.measure_slide_labels`` reading the TIFF one strip of
    tiles at a time (the image is never held whole).
  * highdicom: highdicom has no measurement; the peer baseline is what a highdicom user does:
    read the label image into memory, ``scipy.ndimage.label`` per class, regionprops-style
    statistics per object from ``find_objects`` crops, slide coordinates with
    ``hd.spatial.ImageToReferenceTransformer``.
  Both results are checked against the generator's truth (object count and pixel area per
  class) and against each other (every object's area, centroid and box).
- ``write`` / ``pyramid`` / ``read`` (``STEPS`` below): highdicom's side is implemented:
  ``hd.seg.Segmentation(..., tile_pixel_array=True, dimension_organization_type=TILED_SPARSE)``
  (LABELMAP, RLE Lossless, empty tiles omitted), ``hd.seg.create_segmentation_pyramid``
  (levels 1, 4, 16) on a header-only VL Whole Slide source (:func:`sm_source`), and
  ``segread`` + ``get_total_pixel_matrix`` compared with the TIFF. segbridge: the slide path
  (``slide/convert.py``): the TIFF read a strip of tile rows at a time into a TILED_SPARSE
  LABELMAP SEG (RLE), ``pyramid`` with factors 4 and 16 in one series, and ``read`` decoding
  the SEG tile row by tile row, compared with the TIFF.

usage: python bench/bench_slide.py [--size 50000] [--objects 100000] [--work DIR]
       [--markdown docs/performance.md] [--peer-mem-gb 14] [--keep]
Small run (seconds): python bench/bench_slide.py --size 8000 --objects 3000
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, ROOT, publish, timed, write_json  # noqa: E402

TILE = 256
CLASSES = {1: "tumor cell", 2: "lymphocyte", 3: "stromal cell"}
#: slide geometry of the synthetic label map: 0.25 um pixels, the usual slide orientation
SPACING = (0.00025, 0.00025)
ORIGIN = (20.0, 40.0)
ORIENTATION = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0)
CONNECTIVITY = 8


# ------------------------------------------------------------------ synthetic slide


def cells(size: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` ellipses on a jittered grid: centres, semi-axes, angle, class; none touch."""
    rng = np.random.default_rng(seed)
    g = math.ceil(math.sqrt(n))
    pitch = size / g
    if pitch < 12:
        raise SystemExit(f"{n} objects do not fit on {size} x {size} pixels (pitch {pitch:.1f})")
    slots = rng.choice(g * g, n, replace=False)
    gr, gc = slots // g, slots % g
    jit = 0.12 * pitch
    cy = (gr + 0.5) * pitch + rng.uniform(-jit, jit, n)
    cx = (gc + 0.5) * pitch + rng.uniform(-jit, jit, n)
    a = rng.uniform(0.12, 0.3, n) * pitch  # semi-axes; + jitter < pitch / 2 - 1
    b = a * rng.uniform(0.5, 1.0, n)
    t = rng.uniform(0, np.pi, n)
    cls = rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2])
    ext = a + 1  # a bounding radius
    return {"cy": cy, "cx": cx, "a": a, "b": b, "t": t, "cls": cls,
            "r0": np.floor(cy - ext).astype(np.int64), "r1": np.ceil(cy + ext).astype(np.int64)}


def draw_strip(c: dict, r0: int, r1: int, width: int, truth: np.ndarray) -> np.ndarray:
    """Rows [r0, r1) of the label map; pixel areas per class added to ``truth``."""
    out = np.zeros((r1 - r0, width), np.uint8)
    sel = np.flatnonzero((c["r0"] < r1) & (c["r1"] > r0))
    for i in sel:
        ext = c["a"][i] + 1
        a0, a1 = max(r0, int(c["cy"][i] - ext)), min(r1, int(c["cy"][i] + ext) + 1)
        b0, b1 = max(0, int(c["cx"][i] - ext)), min(width, int(c["cx"][i] + ext) + 1)
        if a0 >= a1 or b0 >= b1:
            continue
        yy, xx = np.ogrid[a0:a1, b0:b1]
        dy, dx = yy - c["cy"][i], xx - c["cx"][i]
        ct, st = math.cos(c["t"][i]), math.sin(c["t"][i])
        u, v = dx * ct + dy * st, -dx * st + dy * ct
        m = (u / c["a"][i]) ** 2 + (v / c["b"][i]) ** 2 <= 1
        out[a0 - r0:a1 - r0, b0:b1][m] = c["cls"][i]
        truth[c["cls"][i]] += int(m.sum())
    return out


def make_slide(path: Path, size: int, n: int, seed: int = 0) -> dict:
    """Write the label map as a tiled TIFF, one band of tile rows at a time; the truth."""
    import tifffile

    c = cells(size, n, seed)
    area = np.zeros(4, np.int64)

    def tiles():
        for r0 in range(0, size, TILE):
            band = draw_strip(c, r0, min(size, r0 + TILE), size, area)
            if band.shape[0] < TILE:
                band = np.pad(band, ((0, TILE - band.shape[0]), (0, 0)))
            for c0 in range(0, size, TILE):
                t = band[:, c0:c0 + TILE]
                yield t if t.shape[1] == TILE else np.pad(t, ((0, 0), (0, TILE - t.shape[1])))

    tifffile.imwrite(path, tiles(), shape=(size, size), dtype=np.uint8, tile=(TILE, TILE),
                     compression="zlib", compressionargs={"level": 1})
    counts = np.bincount(c["cls"], minlength=4)
    return {str(k): {"objects": int(counts[k]), "area_px": int(area[k])} for k in CLASSES}


class TiffTiles:
    """A tiled TIFF's first page as a tile source: only the tiles a region meets are decoded."""

    def __init__(self, path: Path) -> None:
        import tifffile

        self.tf = tifffile.TiffFile(path)
        self.page = self.tf.pages[0]
        if not self.page.is_tiled:
            raise SystemExit(f"{path}: not a tiled TIFF")
        self.shape = (int(self.page.imagelength), int(self.page.imagewidth))
        self.dtype = np.dtype(self.page.dtype)
        self.th, self.tw = int(self.page.tilelength), int(self.page.tilewidth)
        self.across = -(-self.shape[1] // self.tw)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        out = np.empty((r1 - r0, c1 - c0), self.dtype)
        fh = self.tf.filehandle
        for tr in range(r0 // self.th, (r1 - 1) // self.th + 1):
            for tc in range(c0 // self.tw, (c1 - 1) // self.tw + 1):
                i = tr * self.across + tc
                fh.seek(self.page.dataoffsets[i])
                tile = self.page.decode(fh.read(self.page.databytecounts[i]), i)[0][0, :, :, 0]
                y0, x0 = tr * self.th, tc * self.tw
                a, b = max(r0, y0), min(r1, y0 + self.th)
                c, d = max(c0, x0), min(c1, x0 + self.tw)
                out[a - r0:b - r0, c - c0:d - c0] = tile[a - y0:b - y0, c - x0:d - x0]
        return out


# ------------------------------------------------------------------ the steps (children)

COLUMNS = ("segment", "object", "area_px", "centroid_row", "centroid_col", "x_mm", "y_mm",
           "row_min", "row_max", "col_min", "col_max")


def measure_segbridge(tiff: Path, out: Path) -> dict:
    """segbridge: streaming measurement over strips of tile rows."""
    from segbridge.slide.measure import (
        STRIP_PIXELS,
        SlideGeometry,
        measure_slide_labels,
        objects_csv,
        write_text,
    )

    src = TiffTiles(tiff)
    strip = max(src.th, STRIP_PIXELS // src.shape[1] // src.th * src.th)  # whole tile rows
    geo = SlideGeometry(SPACING, ORIGIN, ORIENTATION)
    summary, objs = measure_slide_labels(src, geo, connectivity=CONNECTIVITY, strip_rows=strip,
                                         name=str(tiff))
    write_text(out, objects_csv(objs, labels=CLASSES))
    return {str(s["segment"]): {"objects": s["objects"], "area_px": s["area_px"]}
            for s in summary}


def measure_highdicom(tiff: Path, out: Path) -> dict:
    """The peer: the whole label image in memory, scipy label, regionprops-style crops."""
    import highdicom as hd
    import tifffile
    from scipy import ndimage

    img = tifffile.imread(tiff)
    t = hd.spatial.ImageToReferenceTransformer(
        image_position=(*ORIGIN, 0.0), image_orientation=ORIENTATION, pixel_spacing=SPACING)
    rows, summary = [], {}
    # the values present, counted a band of rows at a time (a bincount of the whole image
    # would convert it to 8-byte integers first: not the peer's fault)
    present = np.zeros(256, np.int64)
    for r in range(0, img.shape[0], 1024):
        present += np.bincount(img[r:r + 1024].ravel(), minlength=256)
    for v in (int(x) for x in np.flatnonzero(present[1:]) + 1):
        lab, n = ndimage.label(img == v, structure=np.ones((3, 3)))
        total = 0
        stats = []
        for i, sl in enumerate(ndimage.find_objects(lab), 1):
            rr, cc = np.nonzero(lab[sl] == i)
            cnt = len(rr)
            total += cnt
            stats.append((v, i, cnt, rr.mean() + sl[0].start, cc.mean() + sl[1].start,
                          sl[0].start, sl[0].stop, sl[1].start, sl[1].stop))
        del lab
        s = np.array(stats, float)
        xyz = t(np.stack([s[:, 4] + 0.5, s[:, 3] + 0.5], axis=1))
        for k, row in enumerate(stats):
            rows.append((*row[:5], xyz[k, 0], xyz[k, 1], *row[5:]))
        summary[str(v)] = {"objects": n, "area_px": total}
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return summary


#: the highdicom test file used as the template of the synthetic VL Whole Slide source
SM_TEMPLATE = Path(os.environ.get("SEGBRIDGE_SHARED", ROOT.parent / "shared")) / \
    "data/highdicom/data/test_files/sm_image.dcm"
#: pyramid levels written by the pyramid step (downsampling factors of the full resolution)
PYRAMID = (1, 4, 16)
#: transfer syntax of the SEGs the highdicom steps write (RLE Lossless)
HD_SYNTAX = "1.2.840.10008.1.2.5"


def sm_source(size: int):
    """A header-only VL Whole Slide Microscopy image of ``size`` x ``size`` pixels (TILED_FULL,
    256 x 256 tiles) with the benchmark's geometry, made from highdicom's test SM image: what
    highdicom reads from a source (study, patient, specimen, frame of reference, total pixel
    matrix size and origin, ImageOrientationSlide, PixelSpacing, tile size)."""
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(SM_TEMPLATE, stop_before_pixels=True)
    ds.Rows = ds.Columns = TILE
    ds.TotalPixelMatrixRows = ds.TotalPixelMatrixColumns = size
    ds.NumberOfFrames = (-(-size // TILE)) ** 2
    ds.ImageOrientationSlide = list(ORIENTATION)
    origin = ds.TotalPixelMatrixOriginSequence[0]
    origin.XOffsetInSlideCoordinateSystem, origin.YOffsetInSlideCoordinateSystem = ORIGIN
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = list(SPACING)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    return ds


def _hd_segments():
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return [hd.seg.SegmentDescription(
        segment_number=k, segment_label=name,
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Cell,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for k, name in CLASSES.items()]


def _hd_common() -> dict:
    return {"segmentation_type": "LABELMAP", "segment_descriptions": _hd_segments(),
            "series_number": 300, "manufacturer": "bench", "manufacturer_model_name": "bench",
            "software_versions": "1", "device_serial_number": "1",
            "transfer_syntax_uid": HD_SYNTAX}


def write_highdicom(tiff: Path, out: Path) -> dict:
    """highdicom: one tiled LABELMAP SEG (TILED_SPARSE, empty tiles omitted) from the whole
    label image in memory (highdicom takes the total pixel matrix as one array)."""
    import highdicom as hd
    import tifffile
    from pydicom.uid import generate_uid

    img = tifffile.imread(tiff)
    seg = hd.seg.Segmentation(
        source_images=[sm_source(img.shape[0])], pixel_array=img,
        series_instance_uid=generate_uid(), sop_instance_uid=generate_uid(), instance_number=1,
        tile_pixel_array=True, dimension_organization_type="TILED_SPARSE",
        omit_empty_frames=True, **_hd_common())
    seg.save_as(out)
    return {"frames": int(seg.NumberOfFrames)}


def pyramid_highdicom(tiff: Path, out: Path) -> dict:
    """highdicom: hd.seg.create_segmentation_pyramid, one file per level (in ``out``'s folder:
    ``out`` gets the sum of their sizes as a listing)."""
    import highdicom as hd
    import tifffile

    img = tifffile.imread(tiff)
    segs = hd.seg.create_segmentation_pyramid(
        source_images=[sm_source(img.shape[0])], pixel_arrays=[img], series_instance_uid=None,
        downsample_factors=list(PYRAMID[1:]), **_hd_common())
    del img
    names = []
    for i, seg in enumerate(segs):
        name = out.with_name(f"{out.stem}_level{i}.dcm")
        seg.save_as(name)
        names.append(name)
    out.write_text("\n".join(f"{n.name} {n.stat().st_size}" for n in names))
    return {"levels": len(segs), "bytes": sum(n.stat().st_size for n in names)}


def read_highdicom(tiff: Path, out: Path) -> dict:
    """highdicom: the single-level SEG of the write step read back as one label image, compared
    with the TIFF pixel for pixel (``out`` is the write step's file)."""
    import highdicom as hd
    import tifffile

    seg = hd.seg.segread(out)
    labels = seg.get_total_pixel_matrix(combine_segments=True, dtype=np.uint8)
    equal = bool(np.array_equal(labels, tifffile.imread(tiff)))
    return {"equal": equal}


def _sm_file(tiff: Path, size: int) -> Path:
    """The header-only source SM image beside the TIFF (what segbridge takes as --reference)."""
    path = tiff.parent / f"sm_{size}.dcm"
    if not path.exists():
        sm_source(size).save_as(path, enforce_file_format=True)  # header only, no pixels
    return path


def _sb_segmentation(tiff: Path):
    import tifffile

    from segbridge.errors import Report
    from segbridge.slide.convert import from_label_image
    from segbridge.slide.reference import read_sm

    with tifffile.TiffFile(tiff) as t:
        size = t.pages[0].shape[0]
    sseg = from_label_image(tiff, read_sm(_sm_file(tiff, size)), "LABELMAP", Report())
    for s in sseg.segments:
        s.label = CLASSES.get(s.number, s.label)
    return sseg


def write_segbridge(tiff: Path, out: Path) -> dict:
    """segbridge: the TIFF read a strip of tile rows at a time, one tiled LABELMAP SEG
    (TILED_SPARSE, empty tiles omitted, RLE), as `segbridge convert labels.tif -r sm.dcm`."""
    from segbridge.slide.convert import write_slide

    write_slide(_sb_segmentation(tiff), out, tiled="sparse", compression="rle")
    import pydicom

    return {"frames": int(pydicom.dcmread(out, stop_before_pixels=True).NumberOfFrames)}


def pyramid_segbridge(tiff: Path, out: Path) -> dict:
    """segbridge: `--pyramid 4,16`: one SEG per level in one series."""
    from segbridge.outputs import numbered_name
    from segbridge.slide.convert import write_slide

    base = out.with_name(f"{out.stem}_level0.dcm")
    names = write_slide(_sb_segmentation(tiff), base, tiled="sparse", compression="rle",
                        pyramid=[float(f) for f in PYRAMID[1:]])
    assert names[1:] == [numbered_name(base, k + 2) for k in range(len(PYRAMID) - 1)]
    out.write_text("\n".join(f"{n.name} {n.stat().st_size}" for n in names))
    return {"levels": len(names), "bytes": sum(n.stat().st_size for n in names)}


def read_segbridge(tiff: Path, out: Path) -> dict:
    """segbridge: the write step's SEG decoded tile row by tile row and compared with the TIFF
    (never the whole image in memory)."""
    from segbridge.slide.seg_read import read_slide_seg

    sseg = read_slide_seg(out)
    src = TiffTiles(tiff)
    rows, cols = src.shape
    equal = True
    band = 8 * src.th
    for r in range(0, rows, band):
        r1 = min(rows, r + band)
        if not np.array_equal(sseg.labels.read(r, r1, 0, cols), src.read(r, r1, 0, cols)):
            equal = False
            break
    return {"equal": equal}


#: step -> (segbridge, highdicom): a function ``(tiff, out) -> summary`` each
STEPS = {
    "measure": (measure_segbridge, measure_highdicom),
    "write": (write_segbridge, write_highdicom),      # single-level tiled SEG (TILED_SPARSE)
    "pyramid": (pyramid_segbridge, pyramid_highdicom),  # levels 1, 4, 16
    "read": (read_segbridge, read_highdicom),        # the write step's SEG -> labels, compared
}
#: the steps whose output file another step reads: (step, tool) -> output name
OUTPUT_NAMES = {"measure": "csv", "write": "dcm", "pyramid": "txt", "read": "dcm"}


def child(step: str, tool: str, tiff: Path, out: Path, result: Path, mem_gb: float) -> None:
    if mem_gb > 0:
        import resource

        limit = int(mem_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    fn = STEPS[step][0 if tool == "segbridge" else 1]
    t0 = time.perf_counter()
    try:
        summary = fn(tiff, out)
    except MemoryError:
        print(f"out of memory (address space limited to {mem_gb:g} GB)", file=sys.stderr)
        raise SystemExit(1) from None
    write_json(result, {"summary": summary, "seconds": time.perf_counter() - t0})


# ------------------------------------------------------------------ checks and the table


def load_objects(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        data = {k: [] for k in COLUMNS}
        for row in r:
            for k in COLUMNS:
                data[k].append(float(row[k]))
    return {k: np.array(v) for k, v in data.items()}


def same_objects(a: Path, b: Path) -> str:
    """'' when both CSVs hold the same objects (areas, boxes exactly; centroids to 1e-9)."""
    x, y = load_objects(a), load_objects(b)
    if len(x["segment"]) != len(y["segment"]):
        return f"{len(x['segment'])} vs {len(y['segment'])} objects"
    ox = np.lexsort((x["object"], x["segment"]))
    oy = np.lexsort((y["object"], y["segment"]))
    for k in COLUMNS:
        tol = 1e-9 * max(1.0, float(np.abs(x[k]).max(initial=0))) if k in (
            "centroid_row", "centroid_col", "x_mm", "y_mm") else 0
        if not np.allclose(x[k][ox], y[k][oy], rtol=0, atol=tol):
            return f"column {k} differs"
    return ""


def run(args) -> list[dict]:
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_slide_"))
    work.mkdir(parents=True, exist_ok=True)
    tiff = work / f"labels_{args.size}.tif"
    t0 = time.perf_counter()
    truth = make_slide(tiff, args.size, args.objects, args.seed)
    gen = time.perf_counter() - t0
    print(f"synthetic slide {args.size} x {args.size}, {args.objects} objects: "
          f"{gen:.1f} s, {tiff.stat().st_size / 1e6:.1f} MB TIFF")
    rows = [{"step": "generate (tiled TIFF)", "tool": "-", "wall_s": round(gen, 2),
             "peak_mb": None, "size_mb": round(tiff.stat().st_size / 1e6, 1), "ok": True,
             "note": "strip by strip; truth: " + ", ".join(
                 f"{CLASSES[int(k)]} {v['objects']}" for k, v in truth.items())}]
    env_src = str(ROOT / "src")
    for step, fns in STEPS.items():
        if step not in args.steps:
            continue
        outs = {}
        for tool, fn in zip(("segbridge", "highdicom"), fns, strict=True):
            if tool not in args.tools:
                continue
            if fn is None:
                rows.append({"step": step, "tool": tool, "wall_s": None, "peak_mb": None,
                             "size_mb": None, "ok": None, "note": "not implemented yet"})
                continue
            out = work / f"{step}_{tool}.{OUTPUT_NAMES[step]}"
            if step == "read":  # reads what the write step wrote
                out = work / f"write_{tool}.dcm"
                if not out.exists():
                    rows.append({"step": step, "tool": tool, "wall_s": None, "peak_mb": None,
                                 "size_mb": None, "ok": None, "note": "no write output"})
                    continue
            result = work / f"{step}_{tool}.json"
            mem = args.peer_mem_gb if tool == "highdicom" else 0
            cmd = [PY, __file__, "--child", step, tool, str(tiff), str(out), str(result),
                   str(mem)]
            r = timed(cmd, env={"PYTHONPATH": env_src}, timeout=args.timeout)
            note = ""
            ok = r.ok
            if ok:
                got = json.loads(result.read_text())["summary"]
                if step == "measure" and got != truth:
                    ok, note = False, f"summary differs from the truth: {got}"
                elif step == "read" and not got["equal"]:
                    ok, note = False, "labels read back differ from the TIFF"
                elif step != "measure":
                    note = ", ".join(f"{k} {v}" for k, v in got.items())
                if step == "measure":
                    outs[tool] = out
            else:
                note = r.error.strip().splitlines()[-1] if r.error.strip() else (
                    f"killed by the kernel (out of memory: peak RSS {r.peak_mb / 1024:.1f} GB "
                    f"on a {_ram_gb():.0f} GB machine)")
            rows.append({"step": step, "tool": tool, "wall_s": round(r.wall, 2),
                         "peak_mb": round(r.peak_mb, 1),
                         "size_mb": _size_mb(step, out),
                         "ok": ok, "note": note})
        if len(outs) == 2:
            diff = same_objects(outs["segbridge"], outs["highdicom"])
            rows[-1]["note"] = (rows[-1]["note"] + "; " if rows[-1]["note"] else "") + (
                "objects equal to segbridge's" if not diff else f"objects differ: {diff}")
            if diff:
                rows[-1]["ok"] = False
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _size_mb(step: str, out: Path) -> float | None:
    if step == "read" or not out.exists():
        return None
    if step == "pyramid":
        return round(sum(int(x.split()[-1]) for x in out.read_text().splitlines()) / 1e6, 1)
    return round(out.stat().st_size / 1e6, 1)


def ratios(rows: list[dict]) -> None:
    for step in STEPS:
        sb = next((r for r in rows if r["step"] == step and r["tool"] == "segbridge"), None)
        hd = next((r for r in rows if r["step"] == step and r["tool"] == "highdicom"), None)
        if sb and hd and sb["ok"] and hd["ok"] and hd["wall_s"]:
            sb["time_ratio"] = round(sb["wall_s"] / hd["wall_s"], 2)
            sb["rss_ratio"] = round(sb["peak_mb"] / hd["peak_mb"], 2)


def markdown(rows: list[dict], args) -> str:
    def f(v):
        if v is None or isinstance(v, bool):
            return {None: "-", True: "yes", False: "NO"}[v]
        return f"{v:,}" if isinstance(v, (int, float)) else str(v)

    lines = [f"### Slide label map {args.size:,} x {args.size:,}, {args.objects:,} objects "
             f"(bench/bench_slide.py)", "",
             f"{platform.node()}, {os.cpu_count()} cores; connectivity {CONNECTIVITY}; "
             "time = wall time of the whole process, peak = its maximum RSS. The highdicom "
             "side of `measure` is a highdicom user's workflow (highdicom has no measurement): "
             "the label image read whole, scipy.ndimage.label per class, regionprops-style "
             "crops, `hd.spatial.ImageToReferenceTransformer`.", "",
             "| step | tool | time s | peak MB | output MB | time ratio | RSS ratio | ok | note |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['step']} | {r['tool']} | {f(r['wall_s'])} | {f(r['peak_mb'])} | "
                     f"{f(r['size_mb'])} | {f(r.get('time_ratio'))} | {f(r.get('rss_ratio'))} "
                     f"| {f(r['ok'])} | {r['note']} |")
    if any("out of memory" in (r["note"] or "") for r in rows):
        gb = args.size ** 2 * 6 / 1e9
        limit = (f"under an address-space limit of {args.peer_mem_gb:g} GB (`--peer-mem-gb`) "
                 "and stopped with MemoryError" if args.peer_mem_gb else
                 "without a limit and was killed by the kernel's out-of-memory killer")
        lines += ["", "The whole-image workflow holds the image (1 byte a pixel), a class mask (1) "
                  f"and int32 labels (4): ~6 bytes a pixel, ~{gb:.0f} GB here, plus SciPy's "
                  f"temporaries. Its process ran {limit}, on a {_ram_gb():.0f} GB machine; "
                  "the measure step is compared at smaller sizes below."]
    if any(r["tool"] == "segbridge" and r["note"] == "not implemented yet" for r in rows):
        lines += ["", "segbridge's write / pyramid / read rows are hooks (`STEPS` in "
                  "bench/bench_slide.py) for the slide SEG writer and reader."]
    return "\n".join(lines)


def _ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        return float("nan")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        step, tool, tiff, out, result, mem = sys.argv[2:8]
        child(step, tool, Path(tiff), Path(out), Path(result), float(mem))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=50_000)
    p.add_argument("--objects", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="folder for the TIFF and outputs (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--tools", default="segbridge,highdicom")
    p.add_argument("--steps", default=",".join(STEPS), help="steps to run (comma-separated)")
    p.add_argument("--peer-mem-gb", type=float, default=14.0,
                   help="address-space limit of the peer process (0: none)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--results", type=Path, default=None, help="results JSON")
    p.add_argument("--markdown", type=Path, default=None, help="docs/performance.md to update")
    p.add_argument("--from-results", type=Path, default=None,
                   help="only render the table of an earlier run's results JSON")
    args = p.parse_args()
    args.tools = set(args.tools.split(","))
    args.steps = set(args.steps.split(","))
    if args.from_results:  # the table again from a results JSON (no run)
        payload = json.loads(args.from_results.read_text())
        args.size, args.objects = payload["size"], payload["objects"]
        args.peer_mem_gb = payload.get("peer_mem_gb", args.peer_mem_gb)
        md = markdown(payload["rows"], args)
        print(md)
        if args.markdown:
            from common import update_section

            update_section(args.markdown, f"slide-{args.size}", md)
        return
    rows = run(args)
    ratios(rows)
    md = markdown(rows, args)
    payload = {"size": args.size, "objects": args.objects, "peer_mem_gb": args.peer_mem_gb,
               "rows": rows}
    results = args.results or Path(tempfile.gettempdir()) / f"bench_slide_{args.size}.json"
    publish(results, payload, md, args.markdown, f"slide-{args.size}")
    if any(r["ok"] is False for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
