"""segbridge interpolate on DICOM inputs (data tier: the dcmqi CT series): a SEG and an
RTSTRUCT are read with -r like convert, filled, and written as a validated SEG / NIfTI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import CT3

import segbridge as sb
from segbridge.interpolation import interpolate_mask

SEGBRIDGE = str(Path(sys.executable).parent / "segbridge")


def run(*args):
    return subprocess.run([SEGBRIDGE, *map(str, args)], capture_output=True, text=True)


def drawn(ct3) -> np.ndarray:
    labels = np.zeros(ct3.grid.shape, np.uint8)
    yy, xx = np.mgrid[:labels.shape[1], :labels.shape[2]]
    labels[0][(yy - 200) ** 2 + (xx - 250) ** 2 <= 40 ** 2] = 1
    labels[2][(yy - 210) ** 2 + (xx - 260) ** 2 <= 60 ** 2] = 1
    return labels


def test_seg_in_seg_out(tmp_path, ct3):
    seg = sb.from_array(drawn(ct3), ct3)
    src = tmp_path / "drawn.dcm"
    sb.write(seg, src, reference=ct3)
    out = tmp_path / "filled.dcm"
    res = run("interpolate", src, "-r", CT3, "-o", out)
    assert res.returncode == 0, res.stderr
    back = sb.read(out, reference=ct3)
    want = interpolate_mask(drawn(ct3) == 1, 0)
    assert want[1].sum() > 0
    np.testing.assert_array_equal(back.mask(back.numbers[0]), want)
    assert run("validate", out, "-r", CT3).returncode == 0


def test_rtstruct_in_nifti_out(tmp_path, ct3):
    seg = sb.from_array(drawn(ct3), ct3)
    rt = tmp_path / "drawn-rt.dcm"
    sb.write(seg, rt, to="rtstruct")
    out = tmp_path / "filled.nii.gz"
    res = run("interpolate", rt, "-r", CT3, "-o", out)
    assert res.returncode == 0, res.stderr
    read = sb.read(rt, reference=ct3)
    filled = sb.read(out)
    n = read.numbers[0]
    np.testing.assert_array_equal(filled.mask(filled.numbers[0]), interpolate_mask(read.mask(n), 0))
    # without the reference an RTSTRUCT cannot be placed: one line, nothing written
    res = run("interpolate", rt, "-o", tmp_path / "y.nii.gz")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "y.nii.gz").exists()


def test_rtstruct_in_rtstruct_out_and_profile_names(tmp_path, ct3):
    import pydicom
    import pytest

    from segbridge.errors import InvalidInputError

    seg = sb.from_array(drawn(ct3), ct3)
    rt = tmp_path / "drawn-rt.dcm"
    sb.write(seg, rt, to="rtstruct")
    out = tmp_path / "filled-rt.dcm"
    res = run("interpolate", rt, "-r", CT3, "-o", out, "--to", "rtstruct")
    assert res.returncode == 0, res.stderr
    assert pydicom.dcmread(out).Modality == "RTSTRUCT"
    back = sb.read(out, reference=ct3)
    assert back.mask(back.numbers[0])[1].sum() > 0  # the middle slice got contours
    assert run("validate", out, "-r", CT3, "--profile", "archive").returncode == 0
    with pytest.raises(InvalidInputError, match="ohif, slicer, archive, dense"):
        sb.write(seg, tmp_path / "x.dcm", profile="osirix")
