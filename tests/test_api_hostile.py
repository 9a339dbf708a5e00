"""The Python API as an ML engineer uses it, attacked: outputs never replace the files a
model came from (its inputs, its reference series) however it was derived; a NIfTI that
claims no space is never put in patient space; wrong argument types are segbridge's one-line
errors; a bool mask is certain, not 1/255."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI

import segbridge as sb
from segbridge.errors import GeometryMismatchError, InvalidInputError


@pytest.fixture()
def ct(tmp_path):
    folder = tmp_path / "ct"
    shutil.copytree(CT3, folder)
    return folder


def _labels(shape):
    a = np.zeros(shape, np.uint8)
    a[0, 100:140, 100:140] = 1
    a[2, 100:140, 100:140] = 1
    return a


def test_outputs_never_replace_the_reference_or_the_input_of_a_derived_model(ct, tmp_path):
    ref = sb.read_series(ct)
    files = sorted(ct.iterdir())
    before = {f: f.read_bytes() for f in files}
    model = sb.from_array(_labels(ref.grid.shape), ref)
    for reference in (ref, str(ct)):  # loaded or as a path
        with pytest.raises(InvalidInputError, match="input"):
            sb.write(sb.from_array(_labels(ref.grid.shape), reference), files[0])
    built = sb.Segmentation.from_labelmap(ref.grid, _labels(ref.grid.shape), [sb.Segment(1)],
                                          source=ref.source)  # no read at all: the source
    with pytest.raises(InvalidInputError, match="input"):
        sb.write(built, files[1])
    seg_file = tmp_path / "sparse.dcm"
    sb.write(model, seg_file, profile="slicer")
    again = sb.read(seg_file, reference=ref)
    for derived in (sb.interpolate(again), sb.relabel(again, {"rules": [
            {"source": "Segment 1", "target": "Liver", "number": 1}]}),
            again.copy_meta(series_description="x")):
        for target in (seg_file, files[2]):
            with pytest.raises(InvalidInputError, match="input"):
                sb.write(derived, target, profile="slicer")
    assert {f: f.read_bytes() for f in files} == before


def test_a_nifti_that_claims_no_space_is_not_put_in_patient_space(ct, tmp_path):
    ref = sb.read_series(ct)
    img = nib.Nifti1Image(_labels(ref.grid.shape).transpose(2, 1, 0).copy(), np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    path = tmp_path / "nospace.nii.gz"
    nib.save(img, path)
    assert int(nib.load(path).header["sform_code"]) == 0
    for resample in (False, True):
        with pytest.raises(GeometryMismatchError, match="claims no position in space"):
            sb.read(path, reference=ref, resample=resample)
    assert len(sb.read(path).segments) == 1  # on its own it still reads


@pytest.mark.parametrize("call, needle", [
    (lambda seg, ref: sb.from_array(np.zeros(ref.grid.shape, np.uint8), ref,
                                    segments=["a", "b"]), "segbridge.Segment objects"),
    (lambda seg, ref: sb.interpolate(seg, segments=1), "segment numbers"),
    (lambda seg, ref: sb.interpolate(seg, segments=["a"]), "segment numbers"),
    (lambda seg, ref: sb.interpolate(seg, segments="13"), "segment numbers"),
    (lambda seg, ref: sb.interpolate(str(DCMQI / "liver_seg.nrrd")), "takes a Segmentation"),
    (lambda seg, ref: sb.relabel(np.zeros(3), "tg263"), "takes a Segmentation"),
    (lambda seg, ref: sb.read(np.zeros((2, 2, 2))), "read takes file paths"),
])
def test_wrong_argument_types_are_one_line_errors(ct, call, needle):
    ref = sb.read_series(ct)
    seg = sb.from_array(_labels(ref.grid.shape), ref)
    with pytest.raises(InvalidInputError, match=needle) as exc:
        call(seg, ref)
    assert "\n" not in str(exc.value)


def test_a_bool_mask_as_fractions_is_certain(ct, tmp_path):
    ref = sb.read_series(ct)
    mask = _labels(ref.grid.shape).astype(bool)
    seg = sb.from_array(mask, ref, fractional=True)
    assert int(seg.fraction(1).max()) == seg.max_fractional_value == 255
    out = sb.write(seg, tmp_path / "f.dcm", type="fractional", profile="slicer")[0]
    import highdicom as hd

    got = hd.seg.segread(out).get_volume(rescale_fractional=True).array
    assert float(got.max()) == 1.0


def test_a_seg_read_without_its_series_names_the_output_it_cannot_write(ct, tmp_path):
    ref = sb.read_series(ct)
    seg_file = tmp_path / "sparse.dcm"
    sb.write(sb.from_array(_labels(ref.grid.shape), ref), seg_file, profile="slicer")
    alone = sb.read(seg_file)  # slices 1 and 3 only: slice 2 has no source image
    filled = sb.interpolate(alone)
    out = tmp_path / "filled.dcm"
    with pytest.raises(InvalidInputError, match=rf"^{out}: slice 2 has no known source image"):
        sb.write(filled, out, profile="slicer")
    assert not out.exists()
    assert pydicom.dcmread(seg_file).Modality == "SEG"


def test_frame_space_summaries_have_no_volume(tmp_path):
    from segbridge import synthetic
    from segbridge.web.publish import segment_summaries

    us = sb.read_series(synthetic.write_us_cine(tmp_path / "us.dcm", 8, 16, 24))
    a = np.zeros(us.grid.shape, np.uint8)
    a[2:5, 3:9, 4:10] = 1
    (s,) = segment_summaries(sb.from_array(a, us))
    assert s.voxels == 3 * 6 * 6 and s.volume_ml is None
