"""Independent readers agree with what segbridge writes: highdicom, dcmqi's segimage2itkimage,
dciodvfy (dicom3tools), and a from-scratch decoder for Deflated Image Frame Compression."""

import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI, dciodvfy_errors

import segbridge as sb

BIN = Path(sys.executable).parent
SEGIMAGE2ITK = shutil.which("segimage2itkimage", path=str(BIN)) or shutil.which("segimage2itkimage")

TYPES = ["binary", "fractional", "labelmap"]
COMPS = ["none", "rle", "jpeg2000", "jpegls", "deflate", "deflate-frame"]
CASES = [(t, c) for t in TYPES for c in COMPS if not (t == "binary" and c == "jpegls")]


@pytest.fixture(scope="module")
def models():
    ct3 = sb.read_series(CT3)
    overlap = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    odd_ref = sb.read_series(DCMQI / "23x38x3" / "image")  # Columns = 23: frames share bytes
    odd = sb.read(DCMQI / "23x38x3" / "seg" / "label.seg", reference=odd_ref)
    return {"ct": (ct3, overlap), "odd": (odd_ref, odd)}


@pytest.fixture(scope="module")
def written(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle")
    files = {}
    for key, (ref, seg) in models.items():
        for t, c in CASES:
            if c == "jpeg2000" and key == "odd":
                continue  # the OpenJPEG binding needs 32x32 frames
            model = seg.subset([1, 4, 5]) if (t == "labelmap" and key == "ct") else seg
            if t == "fractional":
                model = sb.Segmentation(model.grid, model.segments, source=model.source,
                                        fractional={s.number: model.fraction(s.number)
                                                    for s in model.segments})
            path = out / f"{key}_{t}_{c}.dcm"
            sb.write(model, path, type=t, compression=c, profile="archive")
            files[(key, t, c)] = (path, ref, model)
    return files


def _cases(exclude=()):
    return [(k, t, c) for k in ("ct", "odd") for t, c in CASES
            if c not in exclude and not (c == "jpeg2000" and k == "odd")]


@pytest.mark.parametrize("case", _cases(exclude=("deflate-frame",)), ids="-".join)
def test_highdicom_reads_identical_voxels(written, case):
    """pydicom 3.0.2 (under highdicom) does not know Deflated Image Frame Compression yet."""
    path, ref, model = written[case]
    seg = hd.seg.segread(str(path))
    referenced = {str(r.ReferencedSOPInstanceUID) for r in
                  seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    uids = [i.sop_instance_uid for i in ref.source.instances]
    keep = [u for u in uids if u in referenced]
    numbers = [s.number for s in model.segments]
    arr = seg.get_pixels_by_source_instance(keep, segment_numbers=numbers,
                                            skip_overlap_checks=True,
                                            rescale_fractional=False)
    for j, s in enumerate(model.segments):
        vol = np.zeros(ref.grid.shape, arr.dtype)
        for i, u in enumerate(keep):
            vol[uids.index(u)] = arr[i, ..., j]
        if model.is_fractional:
            np.testing.assert_array_equal(vol, model.fraction(s.number))
        else:
            np.testing.assert_array_equal(vol != 0, model.mask(s.number))


DCMQI_CASES = [(k, t, c) for k in ("ct", "odd") for t, c in
               [("binary", "none"), ("binary", "deflate"), ("labelmap", "none"),
                ("labelmap", "rle"), ("labelmap", "deflate")]]


@pytest.mark.oracle
@pytest.mark.parametrize("case", DCMQI_CASES, ids="-".join)
def test_dcmqi_reads_identical_voxels(written, case, tmp_path):
    """dcmqi (DCMTK) decodes native, deflate and RLE label maps; not 1-bit RLE or JPEG 2000."""
    assert SEGIMAGE2ITK, "dcmqi's segimage2itkimage is not installed (pip install dcmqi)"
    path, ref, model = written[case]
    res = subprocess.run([SEGIMAGE2ITK, "--inputDICOM", str(path), "--outputDirectory",
                          str(tmp_path), "-t", "nrrd", "--mergeSegments"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-500:] + res.stderr[-500:]
    outs = sorted(tmp_path.glob("*.nrrd"))
    assert outs
    from segbridge.formats.nrrd import read_nrrd
    from segbridge.geometry import align_array

    got = {}
    for f in outs:
        meta = __import__("json").loads((tmp_path / "meta.json").read_text()) if (
            tmp_path / "meta.json").exists() else None
        for vol in read_nrrd(f):
            lab = align_array(vol.data, vol.grid, ref.grid, what=f.name)
            for v in np.unique(lab):
                if v:
                    got.setdefault(f.stem, {})[int(v)] = lab == v
    assert meta is not None
    # dcmqi writes one file per non-overlapping group, labels = segment numbers in that group
    masks = [m for d in got.values() for m in d.values()]
    assert len(masks) == len(model.segments)
    for s in model.segments:
        assert any(np.array_equal(m, model.mask(s.number)) for m in masks), s.label


def _inflated_copy(path: Path, tmp: Path) -> Path:
    """The same object with the dataset inflated (dciodvfy here cannot read deflate)."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    out = tmp / f"inflated-{path.name}"
    ds.save_as(out, enforce_file_format=True)
    return out


DCIODVFY_CASES = [(k, t, c) for k in ("ct", "odd") for t in ("binary", "fractional")
                  for c in ("none", "rle", "jpeg2000", "jpegls", "deflate")
                  if not (t == "binary" and c == "jpegls") and not (c == "jpeg2000" and k == "odd")]


@pytest.mark.oracle
@pytest.mark.parametrize("case", DCIODVFY_CASES, ids="-".join)
def test_dciodvfy_reports_no_errors(written, case, tmp_path):
    """BINARY and FRACTIONAL only: the Debian dicom3tools tables predate Label Map SEG (66.7)."""
    path = written[case][0]
    if case[2] == "deflate":
        path = _inflated_copy(path, tmp_path)
    errors = dciodvfy_errors(path)
    assert errors == [], "\n".join(errors)


@pytest.mark.parametrize("case", [c for c in _cases() if c[2] == "deflate-frame"], ids="-".join)
def test_deflated_image_frames_decode_independently(written, case):
    """No released reader knows 1.2.840.10008.1.2.8.1 yet: inflate each frame by hand."""
    path, ref, model = written[case]
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.8.1"
    frames = list(pydicom.encaps.generate_frames(ds.PixelData,
                                                 number_of_frames=int(ds.NumberOfFrames)))
    uids = [i.sop_instance_uid for i in ref.source.instances]
    rows, cols = ds.Rows, ds.Columns
    vols: dict[int, np.ndarray] = {}
    for fg, data in zip(ds.PerFrameFunctionalGroupsSequence, frames, strict=True):
        raw = zlib.decompress(data, -15)
        if ds.BitsAllocated == 1:
            px = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little",
                               count=rows * cols).reshape(rows, cols)
        else:
            px = np.frombuffer(raw, np.uint8)[: rows * cols].reshape(rows, cols)
        k = uids.index(fg.DerivationImageSequence[0].SourceImageSequence[0]
                       .ReferencedSOPInstanceUID)
        if ds.SegmentationType == "LABELMAP":
            for v in np.unique(px[px > 0]):
                vols.setdefault(int(v), np.zeros(ref.grid.shape, np.uint8))[k] = px == v
        else:
            n = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            vols.setdefault(n, np.zeros(ref.grid.shape, np.uint8))[k] = px
    for s in model.segments:
        got = vols.get(s.number, np.zeros(ref.grid.shape, np.uint8))
        if model.is_fractional:
            np.testing.assert_array_equal(got, model.fraction(s.number))
        else:
            np.testing.assert_array_equal(got != 0, model.mask(s.number))
