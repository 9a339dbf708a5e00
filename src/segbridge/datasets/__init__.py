"""Training datasets: DICOM studies -> nnU-Net v2 / MONAI datasets, and predictions back.

- :mod:`.labelspec`  the dataset's labels from a relabel map (names -> numbers, overlap
  priority, nnU-Net regions) and one label image per case from a segmentation
- :mod:`.studies`    a folder of DICOM studies: image series and the SEG / RTSTRUCT objects
  that reference them
- :mod:`.cases`      the cases of an export (a batch manifest or a folder of studies), case
  ids, folds
- :mod:`.nnunet`     nnU-Net v2 format rules (folder and file names, ``dataset.json``,
  ``splits_final.json``)
- :mod:`.monai`      MONAI format rules (the decathlon-style datalist)
- :mod:`.export`     ``segbridge dataset export``: one case per worker (batch's runner), the
  dataset written under a temporary name and renamed when whole
- :mod:`.import_`    ``segbridge dataset import``: predicted label NIfTIs -> SEG / RTSTRUCT on
  their DICOM reference

docs/datasets.md has the format, the commands and the decisions.
"""
