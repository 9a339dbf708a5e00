"""MONAI dataset format rules: a decathlon-style datalist.

``datalist.json`` beside ``imagesTr/{case}.nii.gz`` and ``labelsTr/{case}.nii.gz``:
``{"training": [{"image": "imagesTr/c.nii.gz", "label": "labelsTr/c.nii.gz", "fold": k}, ...]}``
with paths relative to the datalist's folder (what ``monai.data.load_decathlon_datalist``
resolves against its ``base_dir``), plus the Medical Segmentation Decathlon's descriptive keys
(``name``, ``modality``, ``labels`` as value -> name, ``numTraining``) and ``channel_names``.
``fold`` is present when folds were asked for.
"""

from __future__ import annotations

from .labelspec import DatasetLabels

DATALIST = "datalist.json"
FILE_ENDING = ".nii.gz"


def image_name(case: str) -> str:
    return f"{case}{FILE_ENDING}"


def label_name(case: str) -> str:
    return f"{case}{FILE_ENDING}"


def datalist(labels: DatasetLabels, channel_names: list[str], case_ids: list[str],
             fold_of: dict[str, int], *, name: str, description: str = "") -> dict:
    """The datalist document (cases in sorted order)."""
    training = []
    for c in sorted(case_ids):
        item = {"image": f"imagesTr/{image_name(c)}", "label": f"labelsTr/{label_name(c)}"}
        if c in fold_of:
            item["fold"] = fold_of[c]
        training.append(item)
    chans = {str(i): ch for i, ch in enumerate(channel_names)}
    return {"name": name, "description": description, "modality": chans,
            "channel_names": chans,
            "labels": {"0": "background", **{str(t.number): t.name for t in labels.targets}},
            "numTraining": len(training), "training": training}
