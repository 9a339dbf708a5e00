"""validate agrees with convert (issue 11, class 8): whatever makes segbridge's readers refuse
a file is an error finding; hostile files end in findings or one line naming the file, never a
library exception."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from conftest import CT3, DATA, DCMQI, PYD
from pydicom.uid import generate_uid

import segbridge as sb
from segbridge.errors import SegbridgeError
from segbridge.validate import validate

RTU = DATA / "rt-utils" / "tests" / "mock_data"
EXE = Path(sys.executable).parent / "segbridge"


@pytest.fixture(scope="module")
def ct3():
    return sb.read_series(CT3)


@pytest.fixture(scope="module")
def base(ct3, tmp_path_factory) -> Path:
    """A BINARY SEG segbridge wrote on CT3 (Explicit VR Little Endian, defined lengths)."""
    seg = sb.read(DCMQI / "liver.dcm", reference=ct3)
    out = tmp_path_factory.mktemp("base") / "liver.dcm"
    return sb.write(seg, out, type="binary", profile="archive", compression="none",
                    reference=ct3)[0]


def _patched(src: Path, tmp: Path, name: str, change, marker: str, text: str) -> Path:
    """Edit with pydicom, writing ``marker`` where the hostile ``text`` goes (pydicom will not
    write non-numbers into a DS), then replace the marker's bytes."""
    ds = pydicom.dcmread(src)
    change(ds, marker)
    out = tmp / name
    ds.save_as(out)
    data = out.read_bytes()
    assert data.count(marker.encode()) == 1 and len(marker) == len(text)
    out.write_bytes(data.replace(marker.encode(), text.encode()))
    return out


def _ipp(ds, marker):
    pp = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    pp.ImagePositionPatient = [marker, *pp.ImagePositionPatient[1:]]


def _spacing(ds, marker):
    pm = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    pm.PixelSpacing = [marker, pm.PixelSpacing[1]]


def _iop(ds, marker):
    po = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    po.ImageOrientationPatient = [marker, 0, 0, 0, 0, 0]


def _unplaceable(ds):
    """Frame 1 references an image outside the series and lies 500 mm away."""
    fg = ds.PerFrameFunctionalGroupsSequence[0]
    fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID = \
        generate_uid()
    pp = fg.PlanePositionSequence[0]
    pp.ImagePositionPatient = [*pp.ImagePositionPatient[:2], float(pp.ImagePositionPatient[2])
                               + 500]


# (name, how to make it from the base, uses the reference)
CASES = [
    ("ipp-inf", lambda b, t: _patched(b, t, "ipp-inf.dcm", _ipp, "12345.25", "inf     "), False),
    ("ipp-nan", lambda b, t: _patched(b, t, "ipp-nan.dcm", _ipp, "12345.25", "NaN     "), False),
    ("ipp-letters", lambda b, t: _patched(b, t, "ipp-abc.dcm", _ipp, "12345.25", "12a45.25"),
     False),
    ("spacing-zero", lambda b, t: _patched(b, t, "sp0.dcm", _spacing, "12345.25", "0       "),
     False),
    ("spacing-negative", lambda b, t: _patched(b, t, "spn.dcm", _spacing, "12345.25",
                                               "-0.8125 "), False),
    ("orientation-zero", lambda b, t: _patched(b, t, "iop0.dcm", _iop, "12345.25", "0       "),
     False),
    ("unplaceable", lambda b, t: _save(b, t, "far.dcm", _unplaceable), True),
    ("truncated", lambda b, t: _cut(b, t, "cut.dcm", 0.6), False),
]


def _save(src: Path, tmp: Path, name: str, change) -> Path:
    ds = pydicom.dcmread(src)
    change(ds)
    out = tmp / name
    ds.save_as(out)
    return out


def _cut(src: Path, tmp: Path, name: str, fraction: float) -> Path:
    data = src.read_bytes()
    out = tmp / name
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def _one_line(exc: Exception, path: Path) -> None:
    msg = str(exc)
    assert isinstance(exc, SegbridgeError), f"{type(exc).__name__}: {msg}"
    assert msg.startswith(f"{path}") and "\n" not in msg, msg


def _agree(path: Path, ref) -> tuple[bool, int]:
    """(the reader refuses, validate's error count; -1 when validate refused the file)."""
    try:
        sb.read(path, reference=ref)
        refused = False
    except SegbridgeError as exc:
        _one_line(exc, path)
        refused = True
    try:
        errors = len(validate(path, reference=ref, profile="standard").errors)
    except SegbridgeError as exc:
        _one_line(exc, path)
        errors = -1
    return refused, errors


@pytest.mark.parametrize(("name", "make", "with_ref"), CASES, ids=[c[0] for c in CASES])
def test_what_the_reader_refuses_validate_reports(name, make, with_ref, base, ct3, tmp_path):
    path = make(base, tmp_path)
    refused, errors = _agree(path, ct3 if with_ref else None)
    assert refused, f"{name}: the reader accepted it"
    assert errors != 0, f"{name}: validate reported no error for a file the reader refuses"


def test_the_cli_agrees(base, tmp_path):
    """convert refuses (exit 1, one line naming the file); validate exits 1 with findings."""
    for name, make, _ in CASES[:1] + CASES[3:4]:
        path = make(base, tmp_path)
        out = tmp_path / f"{name}.nii.gz"
        conv = subprocess.run([str(EXE), "convert", str(path), "-o", str(out)],
                              capture_output=True, text=True)
        assert conv.returncode == 1 and str(path) in conv.stderr, conv.stderr
        assert len(conv.stderr.strip().splitlines()) == 1 and not out.exists()
        val = subprocess.run([str(EXE), "validate", str(path)], capture_output=True, text=True)
        assert val.returncode == 1 and "ERROR" in val.stdout, val.stdout + val.stderr


def test_rt_contour_data_that_is_not_numbers_is_an_error(tmp_path):
    ds = pydicom.dcmread(RTU / "rt.dcm")
    c = ds.ROIContourSequence[0].ContourSequence[0]
    c.ContourData = ["12345.25", *c.ContourData[1:]]
    path = tmp_path / "rt.dcm"
    ds.save_as(path)
    path.write_bytes(path.read_bytes().replace(b"12345.25", b"inf     "))
    res = validate(path)
    assert "RT-CONTOUR-DATA" in {f.rule for f in res.errors}, [f.line() for f in res.findings]


# ---------------------------------------------------------------------------------------------
# seeded fuzz sample: truncations and byte flips of real SEGs and RTSTRUCTs
# ---------------------------------------------------------------------------------------------
FUZZ_BASES = [DCMQI / "liver.dcm", DCMQI / "partial_overlaps.dcm", PYD / "liver_expb.dcm",
              PYD / "liver_rle.dcm", DCMQI / "sparse-labelmap-ppv5.dcm", RTU / "rt.dcm",
              DATA / "pydicom-wheel" / "pydicom" / "data" / "test_files" / "rtstruct.dcm"]


def _mutants(seed: int, n: int, tmp: Path):
    rng = random.Random(seed)
    for k in range(n):
        src = rng.choice(FUZZ_BASES)
        data = bytearray(src.read_bytes())
        if rng.random() < 0.35:
            data = data[: rng.randrange(132, len(data))]
        else:
            for _ in range(rng.choice([1, 1, 2, 4, 8])):
                data[rng.randrange(132, len(data))] = rng.randrange(256)
        out = tmp / f"m{k}-{src.name}"
        out.write_bytes(bytes(data))
        yield src, out


@pytest.mark.parametrize("seed", [11, 12])
def test_fuzzed_files_validate_cleanly_and_agree_with_the_reader(seed, ct3, tmp_path):
    rtu = sb.read_series([RTU / "ct_1.dcm", RTU / "ct_2.dcm"])
    refs = {DCMQI: ct3, PYD: ct3, RTU: rtu}
    disagree = []
    for src, path in _mutants(seed, 30, tmp_path):
        ref = refs.get(src.parent)
        if ref is None:  # an RTSTRUCT without its images: only validate can look at it
            _validate_only(path)
            continue
        refused, errors = _agree(path, ref)
        if refused and errors == 0:
            disagree.append(path.name)
    assert not disagree, f"the reader refuses but validate reports no error: {disagree}"


def _validate_only(path: Path) -> int:
    try:
        return len(validate(path).errors)
    except SegbridgeError as exc:
        _one_line(exc, path)
        return -1
