"""Dataset format rules that need no shared data and no torch (fast tier): nnU-Net and MONAI
names and documents, folds, the dataset's labels from a relabel map, and the label image."""

from __future__ import annotations

import numpy as np
import pytest

from segbridge.datasets import cases, monai, nnunet
from segbridge.datasets.labelspec import dataset_labels, label_image
from segbridge.errors import InvalidInputError, Report
from segbridge.geometry import Grid
from segbridge.harmonise import load_maps

MAP = {"rules": [{"source": "liver", "target": "Liver", "number": 1, "priority": 1},
                 {"source": ["gtv", "tumour"], "target": "GTV", "number": 2, "priority": 5},
                 {"source": "spine", "target": "Spine", "number": 3}]}


def test_nnunet_names():
    assert nnunet.image_name("case_001") == "case_001_0000.nii.gz"
    assert nnunet.image_name("c", 12) == "c_0012.nii.gz"
    assert nnunet.label_name("case_001") == "case_001.nii.gz"
    assert nnunet.case_of_prediction("case_001.nii.gz") == "case_001"
    assert nnunet.case_of_prediction("x.nii") == "x"
    assert nnunet.case_of_prediction("notes.txt") is None
    nnunet.check_folder_name("Dataset501_Liver")
    for bad in ("Dataset51_Liver", "dataset501_Liver", "Dataset501", "Dataset501_Li ver"):
        with pytest.raises(InvalidInputError, match="DatasetXXX_Name"):
            nnunet.check_folder_name(bad)


def test_plain_dataset_json():
    spec = dataset_labels(MAP)
    doc = nnunet.dataset_json(spec, ["CT"], 4, name="Dataset501_X")
    assert doc["channel_names"] == {"0": "CT"}
    assert doc["labels"] == {"background": 0, "Liver": 1, "GTV": 2, "Spine": 3}
    assert doc["numTraining"] == 4 and doc["file_ending"] == ".nii.gz"
    assert "regions_class_order" not in doc
    for key in ("labels", "channel_names", "numTraining", "file_ending"):  # nnU-Net's required
        assert key in doc


def test_region_dataset_json_orders_by_priority():
    spec = dataset_labels({"rules": [
        {"source": "tumour", "target": "Tumour", "number": 2, "priority": 2, "region": [2]},
        {"source": "organ", "target": "Organ", "number": 1, "priority": 1, "region": [1, 2]}]})
    assert spec.region_based
    doc = nnunet.dataset_json(spec, ["CT"], 1, name="Dataset502_R")
    assert list(doc["labels"].items()) == [("background", 0), ("Organ", [1, 2]),
                                           ("Tumour", [2])]
    assert doc["regions_class_order"] == [1, 2]


def test_labels_need_numbers_without_gaps():
    with pytest.raises(InvalidInputError, match="has no number"):
        dataset_labels({"rules": [{"source": "a", "target": "A"}]})
    with pytest.raises(InvalidInputError, match="2 is missing"):
        nnunet.check_labels(dataset_labels({"rules": [
            {"source": "a", "target": "A", "number": 1},
            {"source": "b", "target": "B", "number": 3}]}))
    with pytest.raises(InvalidInputError, match="its own number"):
        dataset_labels({"rules": [{"source": "a", "target": "A", "number": 1, "region": [2]},
                                  {"source": "b", "target": "B", "number": 2}]})
    with pytest.raises(InvalidInputError, match="no target has"):
        dataset_labels({"rules": [{"source": "a", "target": "A", "number": 1,
                                   "region": [1, 9]}]})


def test_map_priority_and_region_parse_in_csv(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("source,target,number,priority,region\nO,Organ,1,-3,1|2\nT,Tumour,2,4,\n")
    rules = load_maps(p)[0].rules
    assert (rules[0].priority, rules[0].region) == (-3, (1, 2))
    assert (rules[1].priority, rules[1].region) == (4, None)
    p.write_text("source,target,number,priority\nO,Organ,1,high\n")
    with pytest.raises(InvalidInputError, match="priority must be an integer"):
        load_maps(p)
    p.write_text("source,target,number,priority\nO,Organ,1,1\nOrgan X,Organ,1,2\n")
    with pytest.raises(InvalidInputError, match="another priority"):
        load_maps(p)


def test_folds_round_robin_and_splits():
    fold_of = cases.folds(["c", "a", "b", "d", "e"], 2)
    assert fold_of == {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0}
    splits = nnunet.splits_final(fold_of, 2)
    assert splits[0] == {"train": ["b", "d"], "val": ["a", "c", "e"]}
    assert splits[1] == {"train": ["a", "c", "e"], "val": ["b", "d"]}
    assert cases.folds(["a"], 0) == {} and cases.folds(["a"], 1) == {}
    with pytest.raises(InvalidInputError, match="at least 3"):
        cases.folds(["a", "b"], 3)


def test_case_ids():
    assert cases.check_case_id("case_001") is None
    assert cases.check_case_id("p-1.2") is None
    for bad in ("", ".hidden", "a b", "a/b", "é"):
        assert cases.check_case_id(bad)


def test_monai_datalist():
    spec = dataset_labels(MAP)
    doc = monai.datalist(spec, ["CT"], ["b", "a"], {"a": 0, "b": 1}, name="x")
    assert doc["training"] == [
        {"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz", "fold": 0},
        {"image": "imagesTr/b.nii.gz", "label": "labelsTr/b.nii.gz", "fold": 1}]
    assert doc["labels"] == {"0": "background", "1": "Liver", "2": "GTV", "3": "Spine"}
    assert doc["numTraining"] == 2 and doc["modality"] == {"0": "CT"}
    assert "fold" not in monai.datalist(spec, ["CT"], ["a"], {}, name="x")["training"][0]


def _seg(masks: dict[str, np.ndarray]):
    import segbridge as sb
    from segbridge.model import Segment

    grid = Grid((2, 4, 5), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.eye(3))
    segs = [Segment(i + 1, name) for i, name in enumerate(masks)]
    return sb.from_array(np.stack(list(masks.values())).astype(np.uint8), grid=grid,
                         segments=segs)


def test_label_image_priority_and_unmapped():
    liver = np.zeros((2, 4, 5), bool)
    liver[:, 1:3, 1:4] = True
    gtv = np.zeros_like(liver)
    gtv[0, 2:4, 3:5] = True
    other = np.zeros_like(liver)
    other[1, 0, 0] = True
    report = Report()
    out = label_image(_seg({"LIVER": liver, "tumour": gtv, "other": other}),
                      dataset_labels(MAP), report=report, what="x")
    expect = np.zeros(liver.shape, np.uint8)
    expect[liver] = 1
    expect[gtv] = 2  # GTV has the higher priority
    np.testing.assert_array_equal(out, expect)
    assert any("1 voxels of 'Liver'" in n and "'GTV'" in n for n in report.notes)
    assert any("'other'" in n and "dropped" in n for n in report.notes)


def test_label_image_regions_must_nest():
    organ = np.zeros((2, 4, 5), bool)
    organ[:, 1:3, 1:4] = True
    inside, outside = np.zeros_like(organ), np.zeros_like(organ)
    inside[0, 1, 1] = True
    outside[0, 3, 4] = True
    spec = dataset_labels({"rules": [
        {"source": "organ", "target": "Organ", "number": 1, "priority": 1, "region": [1, 2]},
        {"source": "tumour", "target": "Tumour", "number": 2, "priority": 2}]})
    out = label_image(_seg({"organ": organ, "tumour": inside}), spec, report=Report(), what="x")
    assert out[0, 1, 1] == 2 and np.array_equal(np.isin(out, (1, 2)), organ)
    with pytest.raises(InvalidInputError, match="not the union of its region"):
        label_image(_seg({"organ": organ, "tumour": outside}), spec, report=Report(), what="x")
