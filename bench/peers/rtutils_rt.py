"""rt-utils as a benchmark peer (one process per job, like the command-line tools).

usage: python rtutils_rt.py write LABELS.nii.gz CT_DIR OUT.dcm   labelmap -> RTSTRUCT
       python rtutils_rt.py read RT.dcm CT_DIR OUT.nii.gz       RTSTRUCT -> labelmap

The labelmap is the benchmark's NIfTI: array axes are the CT's columns, rows and slices (its
affine is the LPS grid flipped to RAS); rt-utils wants masks as [rows, columns, slices] in its
slice order (ascending along the normal, the same here). Structure names are "structure N".
"""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
from rt_utils import RTStructBuilder


def _to_rck(labels_xyz: np.ndarray) -> np.ndarray:
    return np.transpose(labels_xyz, (1, 0, 2))


def write(labels_path: str, ct: str, out: str) -> None:
    labels = _to_rck(np.asarray(nib.load(labels_path).dataobj))
    rt = RTStructBuilder.create_new(dicom_series_path=ct)
    for value in [int(v) for v in np.unique(labels) if v]:
        rt.add_roi(mask=labels == value, name=f"structure {value}")
    rt.save(out)


def read(rt_path: str, ct: str, out: str) -> None:
    rt = RTStructBuilder.create_from(dicom_series_path=ct, rt_struct_path=rt_path)
    names = rt.get_roi_names()
    first = rt.get_roi_mask_by_name(names[0])
    labels = np.zeros(first.shape, np.uint8)
    for name in names:
        value = int(name.rsplit(" ", 1)[-1]) if name.rsplit(" ", 1)[-1].isdigit() else 0
        labels[rt.get_roi_mask_by_name(name)] = value
    xyz = np.transpose(labels, (1, 0, 2))
    ref = rt.series_data[0]
    dr, dc = (float(v) for v in ref.PixelSpacing)
    ipp = np.array(ref.ImagePositionPatient, float)
    dz = abs(float(rt.series_data[1].ImagePositionPatient[2]) - ipp[2])
    affine = np.diag([-dc, -dr, dz, 1.0])  # axial LPS grid, flipped to RAS
    affine[:3, 3] = [-ipp[0], -ipp[1], ipp[2]]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(xyz), affine), out)


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](*sys.argv[2:5])
