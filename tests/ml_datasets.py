"""The longer check (scripts/test_ml.sh; not part of the suite: it needs torch): datasets
exported from the synthetic studies and from the real CTs with SEG and RTSTRUCT in
../shared/data pass nnU-Net's own integrity check (nnunetv2, verify_dataset_integrity, no
training) and load with MONAI's LoadImaged on the datalist. A missing nnunetv2 or monai fails."""

from __future__ import annotations

import contextlib
import io
import json

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

from segbridge.datasets.export import export_dataset


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    return {
        "synthetic": (synthetic_studies(root / "synth"), write_map(root, SYNTH_MAP, "s.csv")),
        "real": (real_manifest(root / "real"), write_map(root, REAL_MAP, "r.csv")),
        "regions": (synthetic_studies(root / "nested", nested=True),
                    write_map(root, REGION_MAP, "g.csv")),
    }, root


@pytest.mark.parametrize("which,number", [("synthetic", 501), ("real", 502),
                                          ("regions", 503)])
def test_nnunet_verify_dataset_integrity(sources, which, number):
    from nnunetv2.experiment_planning.verify_dataset_integrity import (
        verify_dataset_integrity,
    )

    by_name, root = sources
    src, mp = by_name[which]
    result = export_dataset(src, root / f"Dataset{number}_{which}", labels=mp, split=2)
    assert len(result.ok) >= 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        verify_dataset_integrity(str(result.folder), 1)
    text = out.getvalue()
    print(text)
    assert "verify_dataset_integrity Done" in text
    assert "Error" not in text and "Warning" not in text and "WARNING" not in text


@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_monai_loadimaged_on_the_datalist(sources, which):
    from monai.data import load_decathlon_datalist
    from monai.transforms import EnsureChannelFirstd, LoadImaged

    by_name, root = sources
    src, mp = by_name[which]
    result = export_dataset(src, root / f"monai_{which}", format="monai", labels=mp, split=2)
    items = load_decathlon_datalist(str(result.folder / "datalist.json"), is_segmentation=True,
                                    data_list_key="training", base_dir=str(result.folder))
    assert len(items) == len(result.ok) >= 2
    load = LoadImaged(keys=["image", "label"], image_only=False)
    first = EnsureChannelFirstd(keys=["image", "label"])
    cases = json.loads((result.folder / "segbridge_cases.json").read_text())["cases"]
    for item in items:
        data = first(load(item))
        image, label = data["image"], data["label"]
        assert image.shape == label.shape and image.shape[0] == 1
        np.testing.assert_allclose(np.asarray(image.affine), np.asarray(label.affine))
        assert "fold" in item
        case = item["label"].rsplit("/", 1)[1].removesuffix(".nii.gz")
        present = sorted(int(v) for v in np.unique(np.asarray(label)) if v)
        assert present == cases[case]["labels_present"]
