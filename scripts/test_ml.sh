#!/usr/bin/env bash
# The longer dataset check (docs/datasets.md): exported datasets pass nnU-Net's own integrity
# check (nnunetv2's verify_dataset_integrity, no training) and load with MONAI's LoadImaged.
# Both pull in torch (a few GB), so this is not part of scripts/test.sh / CI; it creates its
# own venv (.venv-ml, not committed) with torch, nnunetv2, monai and segbridge, then runs
# tests/ml_datasets.py. Missing packages fail the run (nothing is skipped).
#   bash scripts/test_ml.sh            # arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SEGBRIDGE_ML_VENV:-.venv-ml}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# torch first: pip takes a CPU-only wheel when one is in its find-links / index, else PyPI's
# (built with CUDA; it runs on the CPU)
"$VENV/bin/python" -m pip install -q torch
"$VENV/bin/python" -m pip install -q nnunetv2 monai pytest nibabel -e .
# nnU-Net reads these at import; the check itself uses none of them
export nnUNet_raw=${nnUNet_raw:-$PWD/.venv-ml/nnUNet_raw}
export nnUNet_preprocessed=${nnUNet_preprocessed:-$PWD/.venv-ml/nnUNet_preprocessed}
export nnUNet_results=${nnUNet_results:-$PWD/.venv-ml/nnUNet_results}
echo "+ $VENV/bin/python -m pytest -q -s tests/ml_datasets.py $*"
"$VENV/bin/python" -m pytest -q -s -p no:cacheprovider tests/ml_datasets.py "$@"
