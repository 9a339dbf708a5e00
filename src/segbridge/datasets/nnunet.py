"""nnU-Net v2 dataset format rules (nnU-Net's documentation/dataset_format.md).

``DatasetXXX_Name/`` holds ``imagesTr/{case}_{XXXX}{ending}`` (XXXX the 4-digit channel index),
``labelsTr/{case}{ending}`` and ``dataset.json`` with ``channel_names`` (index -> name; "CT"
selects nnU-Net's CT normalisation), ``labels`` (name -> value, ``background`` 0; the values of
a plain dataset are 0..N without gaps; a region-based dataset maps each name to its region, a
list of values, and adds ``regions_class_order``), ``numTraining`` and ``file_ending``. Our
folds go into ``splits_final.json`` (a list of ``{"train": [...], "val": [...]}``), which
nnU-Net takes instead of making its own when it is in the preprocessed folder.
"""

from __future__ import annotations

import re

from ..errors import InvalidInputError
from .labelspec import DatasetLabels

FILE_ENDING = ".nii.gz"
DATASET_NAME = re.compile(r"Dataset\d{3}_[A-Za-z0-9_-]+")


def check_folder_name(name: str) -> None:
    """nnU-Net finds a dataset by its folder name: ``DatasetXXX_Name`` (three digits)."""
    if not DATASET_NAME.fullmatch(name):
        raise InvalidInputError(f"{name}: an nnU-Net dataset folder is named DatasetXXX_Name "
                                "(three digits, then letters, digits, '_' or '-'), e.g. "
                                "Dataset501_Liver")


def image_name(case: str, channel: int = 0) -> str:
    return f"{case}_{channel:04d}{FILE_ENDING}"


def label_name(case: str) -> str:
    return f"{case}{FILE_ENDING}"


def check_labels(labels: DatasetLabels) -> None:
    """nnU-Net's label rule: values 0..N without gaps (its integrity check; for a region-based
    dataset the values its regions list, which are the targets' numbers here)."""
    numbers = [t.number for t in labels.targets]
    if numbers != list(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
        raise InvalidInputError(f"{labels.maps[-1].source}: nnU-Net needs label numbers 1..N "
                                f"without gaps; {missing[0]} is missing")


def dataset_json(labels: DatasetLabels, channel_names: list[str], num_training: int, *,
                 name: str, description: str = "") -> dict:
    """The ``dataset.json`` document."""
    out: dict = {"name": name, "description": description,
                 "channel_names": {str(i): c for i, c in enumerate(channel_names)}}
    order = labels.painting_order
    if labels.region_based:
        out["labels"] = {"background": 0, **{t.name: list(t.region) for t in order}}
        out["regions_class_order"] = [t.number for t in order]
    else:
        out["labels"] = {"background": 0, **{t.name: t.number for t in labels.targets}}
    out.update(numTraining=num_training, file_ending=FILE_ENDING)
    return out


def splits_final(fold_of: dict[str, int], k: int) -> list[dict]:
    """``splits_final.json``: for each fold, the validation cases and the rest as training."""
    ids = sorted(fold_of)
    return [{"train": [c for c in ids if fold_of[c] != f],
             "val": [c for c in ids if fold_of[c] == f]} for f in range(k)]


def case_of_prediction(filename: str) -> str | None:
    """The case id of a predicted label file (``{case}.nii.gz``), None for other files."""
    for ending in (FILE_ENDING, ".nii"):
        if filename.endswith(ending) and len(filename) > len(ending):
            return filename[: -len(ending)]
    return None
