"""segbridge dataset export / import on synthetic studies and the real CTs with SEG and
RTSTRUCT in ../shared/data: files, dataset.json / datalist, geometry (image and label headers
identical, every label voxel equal to the segmentation read onto the CT grid), failing cases
left out with a report line, and re-import to SEGs equal to the exported labels.

nnU-Net's own integrity check and MONAI's LoadImaged need torch: tests/ml_datasets.py, run by
scripts/test_ml.sh (docs/datasets.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from datasets_common import (
    REAL_MAP,
    REGION_MAP,
    SYNTH_MAP,
    real_manifest,
    synthetic_studies,
    write_map,
)

import segbridge as sb
from segbridge.datasets.export import export_dataset
from segbridge.datasets.import_ import import_predictions
from segbridge.errors import InvalidInputError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    studies = synthetic_studies(root / "studies")
    mp = write_map(root, SYNTH_MAP)
    result = export_dataset(studies, root / "Dataset501_Synth", labels=mp, split=3, workers=2)
    return root, studies, mp, result


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    mp = write_map(root, REAL_MAP)
    result = export_dataset(real_manifest(root), root / "Dataset600_Real", labels=mp, split=2)
    return root, mp, result


def _expected_labels(case_record, spec_priority):
    """The source segmentation read onto the CT grid, painted by priority (independently of
    labelspec: masks by name, painted in the map's priority order)."""
    ref = sb.read_series(case_record["reference_files"])
    seg = sb.read(case_record["source"], reference=ref)
    out = np.zeros(ref.grid.shape, np.uint8)
    for name, number in spec_priority:
        for s in seg.segments:
            if s.label.casefold() == name.casefold():
                out[seg.mask(s.number)] = number
    return ref, out


def test_synthetic_files_and_dataset_json(synth):
    root, _, _, result = synth
    ds = result.folder
    assert [r["status"] for r in result.rows] == ["ok"] * 3
    assert sorted(p.name for p in (ds / "imagesTr").iterdir()) == [
        "case_000_0000.nii.gz", "case_001_0000.nii.gz", "case_002_0000.nii.gz"]
    assert sorted(p.name for p in (ds / "labelsTr").iterdir()) == [
        "case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    doc = json.loads((ds / "dataset.json").read_text())
    assert doc["labels"] == {"background": 0, "Liver": 1, "SpinalCord": 2, "GTV": 3}
    assert doc["channel_names"] == {"0": "CT"} and doc["numTraining"] == 3
    splits = json.loads((ds / "splits_final.json").read_text())
    assert [s["val"] for s in splits] == [["case_000"], ["case_001"], ["case_002"]]
    assert (ds / "segbridge_report.txt").read_text() == ""
    assert not list(root.glob(".Dataset501*"))  # the staging folder is gone


def test_synthetic_geometry_is_sacred(synth):
    root, studies, _, result = synth
    cases = json.loads((result.folder / "segbridge_cases.json").read_text())["cases"]
    for case, rec in cases.items():
        img = nib.load(result.folder / "imagesTr" / f"{case}_0000.nii.gz")
        lab = nib.load(result.folder / "labelsTr" / f"{case}.nii.gz")
        np.testing.assert_array_equal(img.affine, lab.affine)
        np.testing.assert_array_equal(img.header.get_sform(), lab.header.get_sform())
        assert img.shape == lab.shape
        assert img.get_data_dtype() == np.int16  # CT rescale 1 / -1024: exact integers
        folder = studies / f"s{int(case[-3:])}"
        ref = sb.read_series(folder / "ct")
        seg_file = next(p for p in folder.iterdir() if p.suffix == ".dcm")
        assert rec["source"] == str(seg_file) and rec["series"] == ref.source.series_instance_uid
        _, expect = _expected_labels({"reference_files": folder / "ct", "source": seg_file},
                                     [("Liver", 1), ("spinal cord", 2), ("GTV", 3)])
        # voxel (i, j, k) of the NIfTI is [k, j, i] of the [z, y, x] array
        np.testing.assert_array_equal(np.asarray(lab.dataobj).transpose(2, 1, 0), expect)
        np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0),
                                      ref.pixels().astype(np.int16))
        # the NIfTI affine is the CT grid's (LPS -> RAS)
        from segbridge.geometry import flip_lps_ras

        np.testing.assert_allclose(img.affine, flip_lps_ras(ref.grid.affine), atol=1e-4)


def test_real_export_leaves_out_failing_cases(real):
    root, _, result = real
    status = {r["case"]: r["status"] for r in result.rows}
    assert status == {"ct3_liver": "ok", "ct3_overlaps": "ok", "rtutils": "ok",
                      "dvh_sphere": "ok", "dvh_cylinder": "ok", "wrong_ct": "error",
                      "missing": "error"}
    report = (result.folder / "segbridge_report.txt").read_text().splitlines()
    assert len(report) == 2
    assert report[0].startswith("missing\t") or report[1].startswith("missing\t")
    assert all(len(line.split("\t")) == 3 and line.split("\t")[2] for line in report)
    doc = json.loads((result.folder / "dataset.json").read_text())
    assert doc["numTraining"] == 5
    assert len(list((result.folder / "labelsTr").iterdir())) == 5
    cases = json.loads((result.folder / "segbridge_cases.json").read_text())["cases"]
    assert cases["ct3_liver"]["labels_present"] == [1]
    assert cases["dvh_sphere"]["labels_present"] == [3]
    assert set(cases["ct3_overlaps"]["labels_present"]) <= {4, 5, 6, 7, 8}
    assert any("priority" in n for n in cases["ct3_overlaps"]["notes"])


def test_real_geometry_voxels(real):
    root, _, result = real
    cases = json.loads((result.folder / "segbridge_cases.json").read_text())["cases"]
    priority = [("GREEN", 4), ("ORANGE", 5), ("PURPLE", 6), ("LIGHT_BLUE", 7),
                ("DARK_BLUE", 8)]  # the map's priority order
    for case, names in (("ct3_overlaps", priority), ("ct3_liver", [("Liver", 1)]),
                        ("dvh_sphere", [("Sphere_30_0", 3)]), ("rtutils", [("ROI-1", 2)])):
        rec = cases[case]
        ref, expect = _expected_labels({"reference_files": rec["reference"],
                                        "source": rec["source"]}, names)
        lab = nib.load(result.folder / "labelsTr" / f"{case}.nii.gz")
        img = nib.load(result.folder / "imagesTr" / f"{case}_0000.nii.gz")
        np.testing.assert_array_equal(img.affine, lab.affine)
        got = np.asarray(lab.dataobj).transpose(2, 1, 0)
        assert got.any()
        np.testing.assert_array_equal(got, expect, err_msg=case)


def test_reimport_gives_equal_segs(synth, real, tmp_path):
    for _root, mp, ds, studies in ((synth[0], synth[2], synth[3].folder, synth[1]),
                                  (real[0], real[1], real[2].folder, None)):
        cases = json.loads((ds / "segbridge_cases.json").read_text())["cases"]
        out = tmp_path / ds.name
        if studies is None:  # the real CTs live in several folders: one root holding them
            from conftest import DATA

            studies = DATA
        rows = import_predictions(ds / "labelsTr", out, reference_root=studies, labels=mp,
                                  cases_file=ds / "segbridge_cases.json")
        assert [r["status"] for r in rows] == ["ok"] * len(cases), rows
        for case, rec in cases.items():
            ref = sb.read_series(rec["reference"], series_uid=rec["series"])
            back = sb.read(out / f"{case}.dcm", reference=ref)
            labels = np.asarray(nib.load(ds / rec["label"]).dataobj).transpose(2, 1, 0)
            present = sorted(int(v) for v in np.unique(labels) if v)
            assert [s.number for s in back.segments] or present == []
            names = {s.label: s for s in back.segments}
            spec = {int(r.split(",")[2]): r.split(",")[1] for r in
                    mp.read_text().splitlines()[1:]}
            assert sorted(names) == sorted(spec[v] for v in present)
            for v in present:
                np.testing.assert_array_equal(back.mask(names[spec[v]].number), labels == v,
                                              err_msg=f"{case} {spec[v]}")


def test_region_based_export(tmp_path):
    studies = synthetic_studies(tmp_path / "nested", n=2, nested=True)
    mp = write_map(tmp_path, REGION_MAP)
    result = export_dataset(studies, tmp_path / "Dataset601_Regions", labels=mp)
    assert [r["status"] for r in result.ok] == ["ok", "ok"]
    doc = json.loads((result.folder / "dataset.json").read_text())
    assert doc["labels"] == {"background": 0, "Organ": [1, 2], "Tumour": [2]}
    assert doc["regions_class_order"] == [1, 2]
    lab = np.asarray(nib.load(result.folder / "labelsTr" / "case_000.nii.gz").dataobj)
    assert set(np.unique(lab)) == {0, 1, 2}


def test_monai_export(synth, tmp_path):
    _, studies, mp, _ = synth
    result = export_dataset(studies, tmp_path / "monai", format="monai", labels=mp, split=2)
    doc = json.loads((result.folder / "datalist.json").read_text())
    assert [t["fold"] for t in doc["training"]] == [0, 1, 0]
    for item in doc["training"]:
        assert (result.folder / item["image"]).is_file()
        assert (result.folder / item["label"]).is_file()
    assert not (result.folder / "dataset.json").exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_bad_input_one_line_no_output(synth, tmp_path):
    _, studies, mp, _ = synth
    bad = write_map(tmp_path, "source,target\nliver,Liver\n", "bad.csv")
    res = _cli("dataset", "export", studies, "-o", tmp_path / "Dataset700_X", "--labels", bad)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "has no number" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "Dataset700_X").exists() and not list(tmp_path.glob(".Dataset*"))
    with pytest.raises(InvalidInputError, match="exists"):
        export_dataset(studies, synth[3].folder, labels=mp)


def test_cli_exit_code_and_report_lines(real, tmp_path):
    root, mp, _ = real
    res = _cli("dataset", "export", root / "manifest.csv", "-o", tmp_path / "Dataset602_R",
               "--labels", mp, "-j", "2")
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: case")]
    assert len(errors) == 2 and "5 case(s) exported, 2 left out" in res.stdout
    assert (tmp_path / "Dataset602_R" / "dataset.json").is_file()


def test_a_dask_local_cluster_writes_the_same_dataset(synth, tmp_path):
    """Export runs on batch's runner: on a Dask LocalCluster the dataset is the same, file
    for file (the labels and images bit for bit, dataset.json and the folds)."""
    root, studies, mp, result = synth
    again = export_dataset(studies, tmp_path / "Dataset501_Synth", labels=mp, split=3,
                           scheduler="local")
    assert [r["status"] for r in again.rows] == ["ok"] * 3
    names = sorted(p.relative_to(result.folder) for p in result.folder.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again.folder) for p in again.folder.rglob("*")
                           if p.is_file())
    for name in names:
        if name.name == "segbridge_cases.json":  # holds the folders' paths
            continue
        assert (again.folder / name).read_bytes() == (result.folder / name).read_bytes(), name


def test_import_refuses_two_predictions_of_a_case_and_unknown_values(synth, tmp_path):
    """{case}.nii.gz and {case}_seg.nii.gz would write one {case}.dcm: both fail, naming
    both; a label value the map does not name fails its case (no invented name); when every
    case fails no -o folder is left; --resample is an option of the command."""
    import shutil

    _, studies, mp, result = synth
    ds = result.folder
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(ds / "segbridge_cases.json", pred)
    shutil.copy(ds / "labelsTr" / "case_000.nii.gz", pred / "case_000.nii.gz")
    shutil.copy(ds / "labelsTr" / "case_000.nii.gz", pred / "case_000_seg.nii.gz")
    img = nib.load(ds / "labelsTr" / "case_001.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, img.affine, img.header), pred / "case_001.nii.gz")
    out = tmp_path / "out"
    rows = import_predictions(pred, out, reference_root=studies, labels=mp)
    assert [r["status"] for r in rows] == ["error"] * 3
    dup = [r["message"] for r in rows if r["case"] == "case_000"]
    assert len(dup) == 2 and all("case_000.nii.gz, case_000_seg.nii.gz" in m for m in dup)
    (bad,) = [r["message"] for r in rows if r["case"] == "case_001"]
    assert "label value(s) [7] are not in the dataset's labels" in bad
    assert not out.exists()
    res = _cli("dataset", "import", pred, "-o", out, "--reference-root", studies, "--labels",
               mp, "--resample")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.startswith("error: case")]) == 3


def test_one_fold_is_refused(synth, tmp_path):
    _, studies, mp, _ = synth
    with pytest.raises(InvalidInputError, match="at least 2, not 1"):
        export_dataset(studies, tmp_path / "Dataset701_X", labels=mp, split=1)
    assert not (tmp_path / "Dataset701_X").exists()


def test_case_ids_differing_only_in_case_are_refused(tmp_path):
    from conftest import CT3, DCMQI

    from segbridge.datasets.cases import collect

    m = tmp_path / "m.csv"
    m.write_text(f"case,inputs,reference\nLiver,{DCMQI / 'liver.dcm'},{CT3}\n"
                 f"liver,{DCMQI / 'liver.dcm'},{CT3}\nother,{DCMQI / 'liver.dcm'},{CT3}\n")
    cases, failed = collect(m)
    assert [c["case"] for c in cases] == ["other"]
    assert sorted(f["case"] for f in failed) == ["Liver", "liver"]
    assert all("only in case" in f["message"] for f in failed)
