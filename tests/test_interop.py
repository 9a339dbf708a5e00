"""The interop matrix: SEGs from segbridge (every type x transfer syntax x profile), highdicom and
dcmqi, read by segbridge, highdicom, dcmqi, the real Cornerstone adapter (Node) and dciodvfy.

Every cell runs; a segbridge-produced (or segbridge-consumed) cell that should pass must pass.
Set SEGBRIDGE_INTEROP_JSON=path to keep the results (interop/write_matrix.py does).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import CT3, DCMQI
from interop_matrix import BIN, CONSUMERS, Cell, Produced, consume, expected, to_json

import segbridge as sb

EXAMPLES = DCMQI.parent.parent / "doc" / "examples"

SEGBRIDGE = [("ct", p, t, None) for p in ("ohif", "slicer", "archive", "dense")
             for t in ("auto", "binary", "labelmap", "fractional")]
SEGBRIDGE += [("ct", "archive", t, c) for t in ("binary", "labelmap", "fractional")
              for c in ("none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame")
              if not (t == "binary" and c == "jpegls")]
SEGBRIDGE += [("odd", "archive", "binary", "none"), ("odd", "archive", "binary", "rle"),
              ("odd", "ohif", "auto", None), ("odd", "slicer", "binary", None)]
PEERS = [("ct", "highdicom", "BINARY"), ("ct", "highdicom", "LABELMAP"),
         ("ct", "highdicom", "FRACTIONAL"), ("ct", "dcmqi", "BINARY"),
         ("ct", "dcmqi", "LABELMAP")]
RESULTS: list[Cell] = []


def _id(cfg):
    return "-".join(str(x) for x in cfg if x is not None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    ct3 = sb.read_series(CT3)
    odd_ref = sb.read_series(DCMQI / "23x38x3" / "image")
    return {"ct": (ct3, sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)),
            "odd": (odd_ref, sb.read(DCMQI / "23x38x3" / "seg" / "label.seg",
                                     reference=odd_ref)),
            "tmp": tmp_path_factory.mktemp("interop")}


def _fractional(seg):
    return sb.Segmentation(seg.grid, seg.segments, source=seg.source,
                           fractional={s.number: seg.fraction(s.number) for s in seg.segments})


def _overlap_in_one_file(files, ref) -> bool:
    for f in files:
        seg = sb.read(f, reference=ref)
        if not seg.is_fractional and seg.has_overlap():
            return True
        if seg.is_fractional and seg.has_overlap():
            return True
    return False


_CACHE: dict = {}


def produce_segbridge(data, cfg) -> Produced:
    if cfg in _CACHE:
        return _CACHE[cfg]
    dataset, profile, kind, comp = cfg
    ref, model = data[dataset]
    m = _fractional(model) if kind == "fractional" else model
    out = data["tmp"] / _id(cfg)
    out.mkdir()
    split = True if kind == "labelmap" else None
    files = sb.write(m, out / "seg.dcm", type=kind, profile=profile, compression=comp,
                     split_overlaps=split, reference=ref)
    from segbridge.dicom.parse import parse_file

    head = parse_file(files[0]).ds
    p = Produced("segbridge", f"{profile} {kind} {comp or 'default'}",
                 str(head.get("SegmentationType")), parse_file(files[0]).transfer_syntax, files,
                 _overlap_in_one_file(files, ref), dataset)
    _CACHE[cfg] = p
    return p


def produce_peer(data, cfg) -> Produced:
    if cfg in _CACHE:
        return _CACHE[cfg]
    dataset, tool, kind = cfg
    ref, model = data[dataset]
    out = data["tmp"] / f"{tool}-{kind}"
    out.mkdir()
    path = out / "seg.dcm"
    if tool == "highdicom":
        _highdicom_write(model, ref, kind, path)
    else:
        _dcmqi_write(kind, path)
    from segbridge.dicom.parse import parse_file

    p = Produced(tool, kind.lower(), kind, parse_file(path).transfer_syntax, [path],
                 kind != "LABELMAP", dataset)  # BINARY/FRACTIONAL hold the overlapping model
    _CACHE[cfg] = p
    return p


def _highdicom_write(model, ref, kind, path):
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in ref.paths]
    for ds in sources:  # highdicom refuses an empty SpecificCharacterSet (the dcmqi CT has one)
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet
    segs = model.segments if kind != "LABELMAP" else [s for s in model.segments
                                                      if s.number in (1, 4, 5)]
    if kind == "LABELMAP":
        arr = np.zeros(ref.grid.shape, np.uint8)
        for i, s in enumerate(segs):
            arr[model.mask(s.number)] = i + 1
    else:
        arr = np.stack([model.mask(s.number) for s in segs], axis=-1).astype(np.uint8)
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=s.label,
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for i, s in enumerate(segs)]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=arr, segmentation_type=kind,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="interop", manufacturer_model_name="interop", software_versions="1",
        device_serial_number="1",
        transfer_syntax_uid=RLELossless if kind == "LABELMAP" else ExplicitVRLittleEndian)
    seg.save_as(path)


def _dcmqi_write(kind, path):
    exe = shutil.which("itkimage2segimage", path=str(BIN)) or shutil.which("itkimage2segimage")
    meta = json.loads((EXAMPLES / "seg-example_partial_overlaps.json").read_text())
    files = [DCMQI / f"partial_overlaps-{i}.nrrd" for i in (1, 2, 3)]
    if kind == "LABELMAP":  # a label map cannot hold the overlap: the first file only
        meta["segmentAttributes"] = meta["segmentAttributes"][:1]
        files = files[:1]
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps(meta))
    args = [exe, "--inputImageList", ",".join(map(str, files)), "--inputDICOMDirectory", str(CT3),
            "--outputDICOM", str(path), "--inputMetadata", str(meta_path)]
    if kind == "LABELMAP":
        args += ["--segmentationType", "labelmap"]
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def _expected_masks(model, p: Produced, ref) -> dict:
    labels = {s.label for f in p.files for s in sb.read(f, reference=ref).segments}
    return {s.label: model.mask(s.number) for s in model.segments if s.label in labels}


def _run_cell(data, p: Produced, consumer: str) -> Cell:
    ref, model = data[p.dataset]
    should, why = expected(consumer, p)
    ok, reason = consume(consumer, p, ref, _expected_masks(model, p, ref),
                         data["tmp"] / f"{p.dataset}-{p.producer}-{p.config}-{consumer}"
                         .replace(" ", "_"))
    cell = Cell(p.producer, p.config, consumer, p.dataset, should, ok,
                "" if ok else (why if not should else reason), [str(f) for f in p.files])
    RESULTS.append(cell)
    return cell


@pytest.mark.oracle
@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("cfg", SEGBRIDGE, ids=[_id(c) for c in SEGBRIDGE])
def test_segbridge_output(data, cfg, consumer):
    cell = _run_cell(data, produce_segbridge(data, cfg), consumer)
    if cell.expected:
        assert cell.ok, cell.reason


@pytest.mark.oracle
@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("cfg", PEERS, ids=[_id(c) for c in PEERS])
def test_peer_output(data, cfg, consumer):
    """Peers' files: recorded in the matrix; segbridge must read every one of them."""
    cell = _run_cell(data, produce_peer(data, cfg), consumer)
    if consumer == "segbridge":
        assert cell.ok, cell.reason


def teardown_module(module):
    target = os.environ.get("SEGBRIDGE_INTEROP_JSON")
    if target:
        Path(target).write_text(to_json(RESULTS))
