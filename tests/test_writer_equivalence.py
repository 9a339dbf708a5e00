"""The pydicom-free SEG writer writes what the pydicom-based one did, element for element.

The old writer (seg_writer, derived and segments as of commit c4b139f, before the header was
encoded without pydicom) is loaded from git; both write the same segmentations and pydicom reads
both files. Only the values that are new on every write (UIDs, dates, times) may differ.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI

import segbridge as sb
from segbridge.dicom import seg_writer
from segbridge.model import SourceRef
from segbridge.series import COPIED_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]
OLD = "c4b139f"
#: attributes a writer makes new on every call (the meta group length follows the UID length)
VOLATILE = {"FileMetaInformationGroupLength", "SOPInstanceUID", "SeriesInstanceUID", "MediaStorageSOPInstanceUID",
            "DimensionOrganizationUID", "SeriesDate", "SeriesTime", "ContentDate", "ContentTime",
            "InstanceCreationDate", "InstanceCreationTime"}


def _old_module(name: str, rename: dict[str, str]):
    source = subprocess.run(["git", "show", f"{OLD}:src/segbridge/dicom/{name}.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    for a, b in rename.items():
        source = source.replace(a, b)
    full = f"segbridge.dicom._old_{name}"
    spec = importlib.util.spec_from_loader(full, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "segbridge.dicom"
    sys.modules[full] = mod
    exec(compile(source, f"<{OLD}:{name}.py>", "exec"), mod.__dict__)
    return mod


@pytest.fixture(scope="module")
def old_writer():
    _old_module("derived", {})
    _old_module("segments", {})
    return _old_module("seg_writer", {"from .derived import": "from ._old_derived import",
                                      "from .segments import": "from ._old_segments import"})


def flat(ds, prefix=()) -> dict:
    """(keyword path) -> (VR, value) of every element, sequences flattened item by item."""
    out = {}
    for elem in ds:
        key = prefix + (elem.keyword or str(elem.tag),)
        if elem.keyword in VOLATILE:
            out[key] = (elem.VR, "<volatile>")
        elif elem.VR == "SQ":
            out[key] = ("SQ", len(elem.value))
            for i, item in enumerate(elem.value):
                out.update(flat(item, key + (i,)))
        elif elem.keyword == "PixelData":
            out[key] = (elem.VR, bytes(elem.value))
        else:
            value = elem.value
            out[key] = (elem.VR, [str(v) for v in value] if isinstance(
                value, pydicom.multival.MultiValue) else str(value))
    return out


def assert_equivalent(old: Path, new: Path) -> None:
    a, b = pydicom.dcmread(old), pydicom.dcmread(new)
    fa, fb = flat(a.file_meta), flat(b.file_meta)
    assert fa == fb
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys(), set(fa) ^ set(fb)
    for key in fa:
        assert fa[key] == fb[key], key
    # the dimension organisation UID is the same in both places it appears
    org = {str(i.DimensionOrganizationUID) for i in b.DimensionIndexSequence}
    assert org == {str(b.DimensionOrganizationSequence[0].DimensionOrganizationUID)}
    assert np.array_equal(a.pixel_array, b.pixel_array)


@pytest.fixture(scope="module")
def overlap(ct3):
    return sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)


CASES = [
    dict(type="binary", profile="slicer"),
    dict(type="binary", profile="slicer", compression="rle"),
    dict(type="labelmap"),  # ohif: overlaps split into several label maps
    dict(type="labelmap", profile="slicer", compression="deflate", split_overlaps=True),
    dict(type="fractional", profile="archive", compression="jpeg2000"),
    dict(type="auto", profile="dense"),
    dict(type="binary", profile="archive"),
]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_writes_what_the_pydicom_writer_wrote(old_writer, overlap, tmp_path, kw):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = old_writer.write_seg(overlap, tmp_path / "old" / "x.dcm", **kw, report=sb.Report())
    new = seg_writer.write_seg(overlap, tmp_path / "new" / "x.dcm", **kw, report=sb.Report())
    assert [p.name for p in old] == [p.name for p in new]
    for a, b in zip(old, new, strict=True):
        assert_equivalent(a, b)


def test_reference_from_a_seg_and_from_pydicom_headers(old_writer, tmp_path):
    """Source attributes copied from a SEG (encoded bytes) and from a pydicom Dataset (the
    DICOMweb path) come out as the pydicom writer wrote them."""
    from_seg = sb.read(DCMQI / "liver.dcm")
    ct = pydicom.dcmread(sorted(CT3.iterdir())[0], stop_before_pixels=True)
    header = pydicom.Dataset()
    for kw in COPIED_ATTRIBUTES:  # what the series reader keeps of DICOMweb metadata
        if kw in ct:
            header[kw] = ct[kw]
    src = from_seg.source
    with_ds = from_seg.copy_meta(source=SourceRef(
        src.study_instance_uid, src.series_instance_uid, src.frame_of_reference_uid,
        src.instances, header=header, position_strings=src.position_strings,
        orientation_strings=src.orientation_strings,
        pixel_spacing_strings=src.pixel_spacing_strings, slice_thickness=src.slice_thickness,
        modality=src.modality))
    for i, seg in enumerate((from_seg, with_ds)):
        for kw in (dict(type="binary", profile="slicer"), dict(type="labelmap")):
            d = tmp_path / f"{i}{kw['type']}"
            (d / "old").mkdir(parents=True)
            (d / "new").mkdir()
            old = old_writer.write_seg(seg, d / "old" / "x.dcm", **kw, report=sb.Report())
            new = seg_writer.write_seg(seg, d / "new" / "x.dcm", **kw, report=sb.Report())
            for a, b in zip(old, new, strict=True):
                assert_equivalent(a, b)
