"""The interop matrix: producers of SEG files x consumers that read them.

A cell passes when the consumer gets the same voxels per source image as the model the producer
encoded (dciodvfy: when it reports no errors). ``expected()`` says which cells should pass and,
for the others, why not; tests/test_interop.py asserts every segbridge-produced cell that should
pass, and interop/write_matrix.py turns the results into docs/interop.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import segbridge as sb

BIN = Path(sys.executable).parent
CONSUMERS = ("segbridge", "highdicom", "dcmqi", "cornerstone", "dciodvfy")
NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
DEFLATE = "1.2.840.10008.1.2.1.99"
RLE = "1.2.840.10008.1.2.5"
JPEGLS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"
DEFLATE_FRAME = "1.2.840.10008.1.2.8.1"
TS_NAMES = {"1.2.840.10008.1.2.1": "native", "1.2.840.10008.1.2": "native (implicit)",
            DEFLATE: "deflate", RLE: "RLE", JPEGLS: "JPEG-LS", J2K: "JPEG 2000",
            DEFLATE_FRAME: "deflate-frame"}


@dataclass
class Produced:
    """SEG file(s) one producer wrote for one configuration."""

    producer: str
    config: str
    kind: str  # BINARY / FRACTIONAL / LABELMAP
    ts: str
    files: list[Path]
    overlap_in_one_file: bool
    dataset: str


@dataclass
class Cell:
    producer: str
    config: str
    consumer: str
    dataset: str
    expected: bool
    ok: bool | None
    reason: str = ""
    files: list[str] = field(default_factory=list)


def expected(consumer: str, p: Produced) -> tuple[bool, str]:
    """Should this consumer read this output, and if not, why (from its documented limits)."""
    bits = {"BINARY": 1, "FRACTIONAL": 8}.get(p.kind, 8)
    ts = p.ts
    if consumer == "segbridge":
        return True, ""
    if consumer == "highdicom":
        if ts == DEFLATE_FRAME:
            return False, "pydicom 3.0.2 does not know Deflated Image Frame Compression"
        return True, ""
    if consumer == "dcmqi":
        if ts in (JPEGLS, J2K, DEFLATE_FRAME):
            return False, f"dcmqi (DCMTK) has no {TS_NAMES[ts]} decoder"
        if ts == RLE and bits == 1:
            return False, "dcmqi (DCMTK) cannot decompress 1-bit RLE"
        return True, ""
    if consumer == "cornerstone":
        if ts in (JPEGLS, J2K, DEFLATE_FRAME):
            return False, f"the adapters' buffer path does not decode {TS_NAMES[ts]} (OHIF's " \
                "image-loader path does for JPEG-LS/JPEG 2000)"
        if ts == RLE and bits == 1:
            return False, "Cornerstone 5.14 decodes 1-bit RLE as bit-packed bytes; the " \
                "standard's one byte per pixel loads empty"
        if p.overlap_in_one_file:
            return False, "overlapping segments in one SEG: Cornerstone <= 5.14 damages other " \
                "segments (cornerstone3D #2846)"
        return True, ""
    if consumer == "dciodvfy":
        if p.kind == "LABELMAP":
            return False, "the Debian dicom3tools tables predate Label Map SEG (66.7)"
        if ts == DEFLATE:
            return False, "this dciodvfy build cannot read deflated files"
        if ts == DEFLATE_FRAME:
            return False, "dciodvfy does not know Deflated Image Frame Compression (2025)"
        return True, ""
    raise ValueError(consumer)


# ---------------------------------------------------------------------------------------------
# consumers: each returns {segment label: mask [z, y, x]} or raises
# ---------------------------------------------------------------------------------------------
def _labels_of(path) -> dict[int, str]:
    """Segment number -> label, from the file itself."""
    from segbridge.dicom.parse import parse_file

    ds = parse_file(path).ds
    return {int(s.get("SegmentNumber")): str(s.get("SegmentLabel"))
            for s in ds.get("SegmentSequence") or []}


def read_segbridge(files, ref) -> dict[str, np.ndarray]:
    out = {}
    for f in files:
        seg = sb.read(f, reference=ref)
        for s in seg.segments:
            out[s.label] = seg.mask(s.number)
    return out


def read_highdicom(files, ref) -> dict[str, np.ndarray]:
    import highdicom as hd

    uids = [i.sop_instance_uid for i in ref.source.instances]
    out = {}
    for f in files:
        seg = hd.seg.segread(str(f))
        labels = _labels_of(f)
        numbers = [n for n in labels if n > 0 and not str(labels[n]).lower() == "background"]
        present = {str(r.ReferencedSOPInstanceUID) for r in
                   seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
        keep = [u for u in uids if u in present]
        arr = seg.get_pixels_by_source_instance(keep, segment_numbers=numbers,
                                                skip_overlap_checks=True,
                                                ignore_spatial_locations=True)
        for j, n in enumerate(numbers):
            vol = np.zeros(ref.grid.shape, bool)
            for i, u in enumerate(keep):
                vol[uids.index(u)] = arr[i, ..., j] != 0
            out[labels[n]] = vol
    return out


def read_dcmqi(files, ref, tmp: Path) -> dict[str, np.ndarray]:
    from segbridge.formats.nrrd import read_nrrd
    from segbridge.geometry import align_array

    exe = shutil.which("segimage2itkimage", path=str(BIN)) or shutil.which("segimage2itkimage")
    if exe is None:
        raise RuntimeError("segimage2itkimage not installed")
    from segbridge.dicom.parse import parse_file

    out = {}
    for i, f in enumerate(files):
        d = tmp / f"dcmqi-{i}"
        d.mkdir(parents=True, exist_ok=True)
        # fractional segments merged by dcmqi all become 255: keep one file per segment then
        fractional = str(parse_file(f).ds.get("SegmentationType")) == "FRACTIONAL"
        args = [exe, "--inputDICOM", str(f), "--outputDirectory", str(d), "-t", "nrrd"]
        res = subprocess.run(args + ([] if fractional else ["--mergeSegments"]),
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            msg = [ln for ln in (res.stdout + res.stderr).splitlines() if "ERROR" in ln]
            raise RuntimeError((msg or [f"exit {res.returncode}"])[0].strip())
        meta = json.loads((d / "meta.json").read_text())
        for group, nrrd_file in zip(meta["segmentAttributes"], sorted(
                d.glob("*.nrrd"), key=lambda p: int(p.stem)), strict=True):
            for vol in read_nrrd(nrrd_file):
                lab = align_array(vol.data, vol.grid, ref.grid, what=nrrd_file.name)
                for entry in group:
                    out[str(entry.get("SegmentLabel"))] = (lab != 0) if fractional else \
                        (lab == int(entry["labelID"]))
    return out


def read_cornerstone(files, ref) -> dict[str, np.ndarray]:
    from interop_node import cornerstone_masks

    out = {}
    for f in files:
        labels = _labels_of(f)
        for value, mask in cornerstone_masks(f, ref).items():
            out[labels.get(value, f"value {value}")] = mask
    return out


def run_dciodvfy(files) -> None:
    from conftest import dciodvfy_errors

    for f in files:
        errors = dciodvfy_errors(f)
        if errors:
            raise RuntimeError(errors[0])


def consume(consumer: str, p: Produced, ref, expected_masks: dict[str, np.ndarray],
            tmp: Path) -> tuple[bool, str]:
    """(passed, reason when not)."""
    try:
        if consumer == "dciodvfy":
            run_dciodvfy(p.files)
            return True, ""
        got = {"segbridge": lambda: read_segbridge(p.files, ref),
               "highdicom": lambda: read_highdicom(p.files, ref),
               "dcmqi": lambda: read_dcmqi(p.files, ref, tmp),
               "cornerstone": lambda: read_cornerstone(p.files, ref)}[consumer]()
    except Exception as exc:  # the consumer refused: that is the cell's reason
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"{type(exc).__name__}: {text[:200]}"
    for label, mask in expected_masks.items():
        if label not in got:
            if not mask.any():
                continue
            return False, f"segment {label!r} missing"
        if not np.array_equal(got[label], mask):
            diff = int((got[label] != mask).sum())
            return False, f"segment {label!r}: {diff} voxels differ"
    return True, ""


def to_json(cells: list[Cell]) -> str:
    return json.dumps([asdict(c) for c in cells], indent=1)


def markdown(cells: list[Cell]) -> str:
    consumers = [*CONSUMERS, *dict.fromkeys(c.consumer for c in cells
                                            if c.consumer not in CONSUMERS)]
    rows: dict[tuple[str, str, str], dict[str, Cell]] = {}
    for c in cells:
        rows.setdefault((c.dataset, c.producer, c.config), {})[c.consumer] = c
    notes: list[str] = []
    lines = [
        "# Interop matrix",
        "",
        "Generated by `python interop/write_matrix.py` from the results of "
        "`tests/test_interop.py` (the same tests CI runs). Each row is a SEG (or a set of SEG "
        "series, when a profile splits overlapping segments) written by the producer; each "
        "column a consumer reading it on the source CT. A cell passes when the consumer gets "
        "the same voxels for every segment on every source image (dciodvfy: when it reports no "
        "error). Consumers: segbridge; highdicom 0.28 (`get_pixels_by_source_instance`); dcmqi "
        "1.5.7 `segimage2itkimage`; **Cornerstone**: the real `@cornerstonejs/adapters` 5.14 / "
        "dcmjs 0.52 run under Node (`createFromDICOMSegBuffer`, the code that turns a SEG into "
        "labelmaps in OHIF); dciodvfy (Debian dicom3tools); **OHIF 3.13 (browser)**, when "
        "`docs/interop-ohif.json` is there: the real OHIF Viewer loading the SEG over DICOMweb "
        "from Orthanc in chromium (section below).",
        "",
        "Data: `ct` = dcmqi's 512x512x3 CT with the 5 partially overlapping segments of "
        "`partial_overlaps.dcm`; `odd` = dcmqi's 23x38x3 CT (Columns 23: 1-bit frames share "
        "bytes) with its liver label.",
        "",
        "Legend: ✅ passes, ❌ fails (numbered reason below), ⬜ fails as expected "
        "(a documented limit of the consumer, reason below).",
        "",
        "| data | producer | configuration | " + " | ".join(consumers) + " |",
        "|---|---|---|" + "---|" * len(consumers),
    ]
    for (dataset, producer, config), by in rows.items():
        marks = []
        for consumer in consumers:
            c = by.get(consumer)
            if c is None:
                marks.append("")
                continue
            if c.ok:
                marks.append("✅")
                continue
            key = c.reason if c.expected else f"{c.reason}"
            if key not in notes:
                notes.append(key)
            n = notes.index(key) + 1
            marks.append(f"❌ {n}" if c.expected else f"⬜ {n}")
        lines.append(f"| {dataset} | {producer} | {config} | " + " | ".join(marks) + " |")
    lines += ["", "Reasons:", ""]
    lines += [f"{i + 1}. {n}" for i, n in enumerate(notes)]
    return "\n".join(lines) + "\n"
