"""Relabel on real files from ../shared/data: RTSTRUCT names to TG-263, merges, batch reruns."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, DCMQI, SLICERIO

import segbridge as sb
from segbridge.errors import InvalidInputError
from segbridge.harmonise import plan_relabel

DICOMPYLER = DATA / "dicompyler-core" / "tests" / "testdata" / "example_data"
RTSS, RTSS_CT = DICOMPYLER / "rtss.dcm", DICOMPYLER / "ct.0.dcm"
PPS = DATA / "pps" / "tests" / "tests_validation" / "benchmark_data" / "DVH-Analysis-Data-Etc"
RTUTILS = DATA / "rt-utils" / "tests" / "mock_data"

#: every ROI name of the real RTSTRUCTs -> what the tg263 map makes of it
TG263_TABLE = {
    # dicompyler-core rtss.dcm (a breast plan)
    "BODY": "ambiguous", "Areola": None, "Borders": None, "Breast": None, "Heart": "Heart",
    "Lt Lung": "Lung_L", "Nodes": None, "Scar": "Scar", "Tumor Bed": "TumorBed",
    "Tumor Bed Block": None,
    # pps DVH phantom RTSTRUCTs, rt-utils mock RTSTRUCT
    "POI_1": None, "Sphere_30_0": None, "Cylinder_30_0": None, "ROI-1": None,
}


def cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


def one_line_error(res, *needles):
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("segbridge: error: "), res.stderr
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture(scope="module")
def real_names() -> list[str]:
    """The ROI names as segbridge reads them from the real RTSTRUCTs."""
    names = [s.label for s in sb.read(RTSS, reference=RTSS_CT).segments]
    for rs in ("Sphere_30_0.dcm", "Cylinder_30_0.dcm"):
        names += [s.label for s in sb.read(PPS / "STRUCTURES" / rs,
                                           reference=PPS / "CT" / "3 mm CT").segments]
    names += [s.label for s in sb.read(RTUTILS / "rt.dcm", reference=RTUTILS).segments]
    return list(dict.fromkeys(names))


def test_real_rtstruct_names_to_tg263(real_names):
    assert sorted(real_names) == sorted(TG263_TABLE)
    for name in real_names:
        want = TG263_TABLE[name]
        if want == "ambiguous":
            with pytest.raises(InvalidInputError, match=f"'{name}' is ambiguous.*'Body'.*"
                                                        "'External'"):
                plan_relabel([sb.Segment(1, name)], "tg263")
            continue
        row = plan_relabel([sb.Segment(1, name)], "tg263").rows[0]
        assert (row.status, row.target) == (("mapped", want) if want else ("unmapped", name))


def test_relabel_cli_reports_the_ambiguous_name_and_writes_nothing(tmp_path):
    out = tmp_path / "rs.dcm"
    res = cli("relabel", RTSS, "-r", RTSS_CT, "--map", "tg263", "-o", out, "--to", "rtstruct")
    one_line_error(res, "rtss.dcm: segment 1 'BODY' is ambiguous", "tg263 line", "'Body'",
                   "'External'", "never guessed")
    assert list(tmp_path.iterdir()) == []


def test_relabel_cli_with_a_site_map_writes_tg263_names(tmp_path):
    site = tmp_path / "site.csv"
    site.write_text("# our planning system's BODY is the external contour\n"
                    "source,target\nBODY,External\n")
    plan = cli("relabel", RTSS, "-r", RTSS_CT, "--map", "tg263", "--map", site, "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    got = {r["name"]: r["target"] for r in doc["segments"]}
    assert got["BODY"] == "External" and got["Lt Lung"] == "Lung_L"
    assert doc["unmapped"] == ["Areola", "Borders", "Breast", "Nodes", "Tumor Bed Block"]
    out = tmp_path / "rs.dcm"
    res = cli("relabel", RTSS, "-r", RTSS_CT, "--map", "tg263", "--map", site, "-o", out,
              "--to", "rtstruct")
    assert res.returncode == 0, res.stderr
    assert "no rule for 'Areola', 'Borders', 'Breast', 'Nodes', 'Tumor Bed Block'" in res.stdout
    back = sb.read(out, reference=RTSS_CT)
    assert [s.label for s in back.segments] == [
        "External", "Areola", "Borders", "Breast", "Heart", "Lung_L", "Nodes", "Scar",
        "TumorBed", "Tumor Bed Block"]
    res = cli("relabel", RTSS, "-r", RTSS_CT, "--map", "tg263", "--map", site,
              "--unmapped", "error")
    one_line_error(res, "no rule maps segment name(s) 'Areola', 'Borders'")


def test_convert_map_on_a_seg_gives_fma_codes(tmp_path):
    out = tmp_path / "liver.dcm"
    res = cli("convert", DCMQI / "liver.dcm", "-o", out, "--map", "tg263")
    assert res.returncode == 0, res.stderr
    s = sb.read(out).segments[0]
    assert (s.label, s.type.scheme, s.type.value) == ("Liver", "FMA", "7197")
    assert s.category.value == "123037004"


def test_merge_of_real_segments_needs_saying_so(tmp_path):
    src = SLICERIO / "SegmentationOverlapping.seg.nrrd"
    seg = sb.read(src)
    lungs = {s.label: s.number for s in seg.segments}
    want = seg.mask(lungs["right lung"]) | seg.mask(lungs["left lung"])
    m = tmp_path / "lungs.csv"
    m.write_text("source,target\nright lung|left lung,Lungs\n")
    out = tmp_path / "out.seg.nrrd"
    res = cli("convert", src, "-o", out, "--map", m)
    one_line_error(res, "'5 right lung', '6 left lung' all map to 'Lungs'", "--allow-merge")
    assert not out.exists()
    res = cli("convert", src, "-o", out, "--map", m, "--allow-merge")
    assert res.returncode == 0, res.stderr
    assert "merged segments '5 right lung', '6 left lung' into 'Lungs'" in res.stdout
    back = sb.read(out)
    n = {s.label: s.number for s in back.segments}["Lungs"]
    np.testing.assert_array_equal(back.mask(n), want)
    assert len(back.segments) == len(seg.segments) - 1
    m.write_text("source,target,merge\nright lung|left lung,Lungs,yes\n")
    res = cli("convert", src, "-o", tmp_path / "out2.seg.nrrd", "--map", m)
    assert res.returncode == 0, res.stderr


def test_bad_map_is_one_line_and_no_output(tmp_path):
    m = tmp_path / "bad.csv"
    m.write_text("source,target,colour\nx,y,1 2 3\n")
    res = cli("convert", DCMQI / "liver.dcm", "-o", tmp_path / "o.dcm", "--map", m)
    one_line_error(res, str(m), "unknown column 'colour'")
    assert not (tmp_path / "o.dcm").exists()
    res = cli("relabel", DCMQI / "liver.dcm", "-o", tmp_path / "o.dcm", "--map", tmp_path / "nope")
    one_line_error(res, "no such relabel map file")


def test_output_may_not_replace_the_map(tmp_path):
    m = tmp_path / "map.nii.gz"  # a map with a volume's name: -o may not replace it
    m.write_text("source,target\nliver,Liver\n")
    before = m.read_text()
    res = cli("convert", DCMQI / "liver_seg.nrrd", "-o", m, "--map", m)
    one_line_error(res, "is an input of this command")
    assert m.read_text() == before


def test_batch_map_reruns_cases_when_the_map_changes(tmp_path):
    manifest = tmp_path / "cases.csv"
    manifest.write_text(f"case,inputs,output\nliver,{DCMQI / 'liver.dcm'},liver.dcm\n")
    m = tmp_path / "map.csv"
    m.write_text("source,target\nliver,Hepar\n")
    out = tmp_path / "out"

    def run(*extra):
        res = cli("batch", manifest, "-o", out, "--map", m, *extra)
        with open(out / "results.csv", newline="") as fp:
            return res, next(csv.DictReader(fp))

    res, row = run()
    assert res.returncode == 0 and row["status"] == "ok", (res.stderr, row)
    assert sb.read(out / "liver.dcm").segments[0].label == "Hepar"
    res, row = run()
    assert row["status"] == "skipped"
    m.write_text("source,target\nliver,Jecur\n")  # same size as before: content counts
    res, row = run()
    assert row["status"] == "ok"
    assert sb.read(out / "liver.dcm").segments[0].label == "Jecur"
    res, row = run("--unmapped", "error")  # the options count too
    assert row["status"] == "ok"
    m.write_text("source,target,merge\nliver,Liver,perhaps\n")
    res = cli("batch", manifest, "-o", out, "--map", m)
    one_line_error(res, "map.csv line 2: merge must be yes or no")
    with open(out / "results.csv", newline="") as fp:  # the earlier results are untouched
        assert next(csv.DictReader(fp))["status"] == "ok"


def test_map_numbers_reach_label_files_and_seg_numbers_stay_in_order(tmp_path):
    """The map's numbers are the label values of NIfTI / seg.nrrd outputs (a swap too), and a
    SEG of the renumbered segments numbers them 1..N in SegmentSequence order."""
    src = SLICERIO / "Segmentation.seg.nrrd"
    seg = sb.read(src)
    by = {s.label: s.number for s in seg.segments}
    m = tmp_path / "swap.csv"
    m.write_text(f"source,target,number\nright lung,Lung_R,{by['left lung']}\n"
                 f"left lung,Lung_L,{by['right lung']}\n")
    for name in ("out.nii.gz", "out.seg.nrrd"):
        res = cli("relabel", src, "--map", m, "-o", tmp_path / name)
        assert res.returncode == 0, res.stderr
        back = sb.read(tmp_path / name)
        names = {s.number: s.label for s in back.segments}
        assert names[by["left lung"]] == "Lung_R" and names[by["right lung"]] == "Lung_L"
        np.testing.assert_array_equal(back.mask(by["left lung"]), seg.mask(by["right lung"]))
        np.testing.assert_array_equal(back.mask(by["right lung"]), seg.mask(by["left lung"]))
    values = np.unique(np.asarray(__import__("nibabel").load(tmp_path / "out.nii.gz").dataobj))
    assert set(values) - {0} == set(by.values())
    po = tmp_path / "po.csv"
    po.write_text("source,target,number\nGREEN,Green,9\nORANGE,Orange,1\n")
    out = tmp_path / "po.dcm"
    res = cli("relabel", DCMQI / "partial_overlaps.dcm", "-r", DCMQI / "ct-3slice", "--map",
              po, "-o", out, "--profile", "slicer")
    assert res.returncode == 0, res.stderr
    import pydicom

    ds = pydicom.dcmread(out)
    items = [(int(i.SegmentNumber), str(i.SegmentLabel)) for i in ds.SegmentSequence]
    assert [n for n, _ in items] == [1, 2, 3, 4, 5]
    assert [label for _, label in items] == ["Orange", "PURPLE", "LIGHT_BLUE", "DARK_BLUE",
                                             "Green"]
    back = sb.read(out, reference=DCMQI / "ct-3slice")
    orig = sb.read(DCMQI / "partial_overlaps.dcm", reference=DCMQI / "ct-3slice")
    ob = {s.label: s.number for s in orig.segments}
    for n, label in items:
        np.testing.assert_array_equal(back.mask(n), orig.mask(ob[label.upper()]), label)
