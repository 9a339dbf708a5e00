"""Real OHIF Viewer 3.13.2 exports (tests/data/ohif313, see its README): read voxel for voxel
against what was painted in Cornerstone, validate, repair, and load in dcmqi.

Also: ``--help`` of every CLI command renders (a help text with square brackets crashed rich).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import typer.main
from typer.testing import CliRunner

import segbridge as sb
from segbridge.cli import app
from segbridge.repair import repair
from segbridge.synthetic import demo_grid, write_ct_series
from segbridge.validate import validate

OHIF = Path(__file__).resolve().parent / "data" / "ohif313"
TRUTH = json.loads((OHIF / "painted.json").read_text())
ROWS, COLS = TRUTH["rows"], TRUTH["columns"]


def painted(n: int, k: int, nk: int) -> np.ndarray:
    """The shape segment ``n`` was painted with on stack image ``k`` of ``nk`` (pagefns.js)."""
    r, c = np.indices((ROWS, COLS))
    if n == 1:
        border = (r == 0) | (r == ROWS - 1) | (c == 0) | (c == COLS - 1)
        block = (5 <= k <= 18) & (r >= 20) & (r <= 39) & (c >= 20) & (c <= 44)
        caps = (k in (0, nk - 1)) & (r < 10) & (c < 12)
        return border | block | caps
    return (10 <= k <= nk - 1) & (r >= 30) & (r <= 49) & (c >= 35) & (c <= 59)


def truth_masks(name: str, seg) -> dict[int, np.ndarray]:
    """What Cornerstone held for ``name``, on the grid of ``seg`` (a Segmentation or a
    ReferenceImage), placed by SOP Instance UID."""
    t = TRUTH["files"][name]
    order, nk = t["order"], len(t["order"])
    out = {}
    for key, s in t["segments"].items():
        n = int(key)
        m = np.zeros(seg.grid.shape, bool)
        for k, sop in enumerate(order):
            z = seg.source.index_of(sop)
            assert z is not None, f"{sop} is not on the grid"
            plane = painted(n, k, nk)
            if t["mode"] == "single" and n == 1:
                plane &= ~painted(2, k, nk)  # segment 2 painted over it in the same layer
            m[z] = plane
        assert int(m.sum()) == s["voxels"]
        for sop, count in s["per_sop"].items():
            assert int(m[seg.source.index_of(sop)].sum()) == count, (name, n, sop)
        out[n] = m
    return out


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    """The demo CT the files were made on (same UIDs; the Frame of Reference of that run)."""
    for_uid = str(pydicom.dcmread(OHIF / "labelmap.dcm", stop_before_pixels=True)
                  .FrameOfReferenceUID)
    grid = dataclasses.replace(demo_grid(), frame_of_reference_uid=for_uid)
    folder = tmp_path_factory.mktemp("ohif313") / "ct"
    write_ct_series(folder, np.zeros(grid.shape), grid, uid_seed="segbridge-demo")
    ref = sb.read_series(folder)
    sops = {i.sop_instance_uid for i in ref.source.instances}
    assert sops == set(TRUTH["files"]["labelmap.dcm"]["order"])
    return ref


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_reference", [True, False])
def test_labelmap_export_reads_voxel_for_voxel(ct, with_reference):
    """OHIF's LABELMAP SEG describes no segment 0 and has no PixelPaddingValue: 0 is the
    background (the reader used to add an undescribed segment 0 and fail)."""
    seg = sb.read(OHIF / "labelmap.dcm", reference=ct if with_reference else None)
    assert seg.numbers == [1, 2]
    assert [s.label for s in seg.segments] == ["Segment 1", "Segment 2"]
    want = truth_masks("labelmap.dcm", seg)
    for n, m in want.items():
        np.testing.assert_array_equal(seg.mask(n), m)
    assert any("value 0 is described by no segment" in x for x in seg.report.notes)
    assert not any("undescribed" in w for w in seg.report.warnings)


def test_labelmap_export_through_the_cli(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["info", str(OHIF / "labelmap.dcm")])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "12442" in res.output and "7000" in res.output
    out = tmp_path / "lm.nii.gz"
    res = runner.invoke(app, ["convert", str(OHIF / "labelmap.dcm"), "-o", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    back = sb.read(out)
    seg = sb.read(OHIF / "labelmap.dcm")
    np.testing.assert_array_equal(back.labelmap(), seg.labelmap())


def test_labelmap_segment_zero_that_is_not_background(tmp_path):
    """A described segment 0 that is not a background is renumbered; its raw value 0 is then
    described (the reader used to take raw 0 for an undescribed value and fail)."""
    ds = pydicom.dcmread(OHIF / "labelmap.dcm")
    zero = pydicom.Dataset()
    zero.update(ds.SegmentSequence[0])
    zero.SegmentNumber, zero.SegmentLabel = 0, "Everything else"
    ds.SegmentSequence.insert(0, zero)
    ds.save_as(tmp_path / "zero.dcm")
    seg = sb.read(tmp_path / "zero.dcm")
    assert seg.numbers == [1, 2, 3]
    assert seg.segment(3).label == "Everything else"
    want = truth_masks("labelmap.dcm", seg)
    np.testing.assert_array_equal(seg.mask(3), ~(want[1] | want[2]))
    np.testing.assert_array_equal(seg.mask(1), want[1])


def test_binary_overlap_export_reads_voxel_for_voxel(ct):
    seg = sb.read(OHIF / "binary-overlap.dcm", reference=ct)
    want = truth_masks("binary-overlap.dcm", seg)
    assert int((want[1] & want[2]).sum()) == 900
    for n, m in want.items():
        np.testing.assert_array_equal(seg.mask(n), m)


def test_value1_bug_export_holds_the_wrong_segment(ct):
    """OHIF's exporter writes a layer whose label value is not its segment number as the
    segment of that value: segment 2's voxels land in segment 1 (documents the bug)."""
    seg = sb.read(OHIF / "value1-bug.dcm", reference=ct)
    want = truth_masks("value1-bug.dcm", seg)
    np.testing.assert_array_equal(seg.mask(1), want[1] | want[2])
    assert not seg.mask(2).any()
    assert any("segment 1 has two frames on slice" in w for w in seg.report.warnings)


# ---------------------------------------------------------------------------------------------
# validate and repair
# ---------------------------------------------------------------------------------------------
def _lines(result) -> list[str]:
    return [f.line() for f in result.findings]


def test_validate_labelmap_export(ct):
    res = validate(OHIF / "labelmap.dcm", reference=ct)
    assert {f.rule for f in res.errors} == {"SEG-FUNCTIONAL-GROUPS", "SEG-DIMENSIONS",
                                            "SEG-LABELMAP-VALUES"}, _lines(res)
    assert "SEG-READER" not in res.rule_ids()
    (zero,) = [f for f in res.findings if f.rule == "SEG-LABELMAP-VALUES"]
    assert "value 0 (background)" in zero.message
    assert not res.warnings, _lines(res)


def test_validate_undescribed_nonzero_value_stays_an_error(tmp_path):
    ds = pydicom.dcmread(OHIF / "labelmap.dcm")
    ds.SegmentSequence = pydicom.Sequence([ds.SegmentSequence[0]])
    ds.add_new(0x00280120, "US", 0)  # PixelPaddingValue: 0 is the background
    ds.save_as(tmp_path / "no2.dcm")
    res = validate(tmp_path / "no2.dcm")
    msgs = [f.message for f in res.errors if f.rule == "SEG-LABELMAP-VALUES"]
    assert msgs == ["values [2] are not described by any segment"], _lines(res)


def test_repair_labelmap_export(ct, tmp_path):
    out = tmp_path / "repaired.dcm"
    result = repair(OHIF / "labelmap.dcm", out, reference=ct)
    assert result.ok, (result.unfixable, _lines(result.before))
    assert result.written == [out]
    after = validate(out, reference=ct)
    assert not after.errors, _lines(after)
    for prof in ("ohif", "slicer"):
        assert not validate(out, reference=ct, profile=prof).errors
    seg = sb.read(out, reference=ct)
    want = truth_masks("labelmap.dcm", seg)
    assert seg.numbers == [1, 2]
    for n, m in want.items():
        np.testing.assert_array_equal(seg.mask(n), m)


@pytest.mark.parametrize("repaired", [True, False])
def test_dcmqi_loads_the_labelmap_export(ct, tmp_path, repaired):
    """dcmqi's segimage2itkimage gets the painted voxels from the repaired file, and from
    OHIF's original as well."""
    from interop_matrix import BIN, read_dcmqi

    # dcmqi is a required test tool (the `test` extra installs it): missing fails, never skips
    assert shutil.which("segimage2itkimage", path=str(BIN)) or \
        shutil.which("segimage2itkimage"), "segimage2itkimage (dcmqi) is not installed"
    f = OHIF / "labelmap.dcm"
    if repaired:
        f = tmp_path / "repaired.dcm"
        assert repair(OHIF / "labelmap.dcm", f, reference=ct).ok
    got = read_dcmqi([f], ct, tmp_path / "dcmqi")
    want = truth_masks("labelmap.dcm", ct)  # on the CT's grid, independent of our reader
    assert set(got) == {"Segment 1", "Segment 2"}
    np.testing.assert_array_equal(got["Segment 1"], want[1])
    np.testing.assert_array_equal(got["Segment 2"], want[2])


@pytest.mark.parametrize("name", ["value1-bug.dcm", "brush-locked-bug.dcm"])
def test_validate_warns_about_the_exporter_bug(ct, name):
    res = validate(OHIF / name, reference=ct)
    assert not res.errors, _lines(res)
    warned = {f.rule: f for f in res.warnings}
    assert set(warned) == {"SEG-DUPLICATE-FRAMES", "SEG-DUPLICATE-LABELS"}, _lines(res)
    dup = warned["SEG-DUPLICATE-FRAMES"]
    assert dup.where == "segment 1"
    planes = 14 if name == "value1-bug.dcm" else 1
    assert dup.message.startswith(f"{planes} plane")
    if name == "brush-locked-bug.dcm":
        assert "frames 1, 2 on source image" in dup.message
    assert "C.8.20.2" in dup.source
    assert warned["SEG-DUPLICATE-LABELS"].message == \
        "segments 1, 2 share the label 'Segment 1'"
    assert "SEG-EMPTY-SEGMENT" in res.rule_ids()


def test_validate_exact_binary_export_is_clean(ct):
    res = validate(OHIF / "binary-overlap.dcm", reference=ct)
    assert not res.errors and not res.warnings, _lines(res)


def test_duplicate_frames_without_source_references(tmp_path):
    """Without Derivation Image references, frames on the same plane position count."""
    ds = pydicom.dcmread(OHIF / "brush-locked-bug.dcm")
    for fg in ds.PerFrameFunctionalGroupsSequence:
        del fg.DerivationImageSequence
    ds.save_as(tmp_path / "noref.dcm")
    res = validate(tmp_path / "noref.dcm")
    (dup,) = [f for f in res.warnings if f.rule == "SEG-DUPLICATE-FRAMES"]
    assert "frames 1, 2 on position" in dup.message


# ---------------------------------------------------------------------------------------------
# CLI help
# ---------------------------------------------------------------------------------------------
def _commands(cmd, path=()):
    yield list(path)
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_every_command_is_listed():
    assert len(COMMANDS) > 10 and ["pull"] in COMMANDS and ["convert"] in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "segbridge")
def test_help_renders(path):
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, (res.output, repr(res.exception))
    assert res.exception is None and "Traceback" not in res.output
    assert "Usage:" in res.output
    if path == ["pull"]:  # the square brackets are shown, not taken for markup
        assert ".../studies/<uid>[/series/<uid>]" in res.output
