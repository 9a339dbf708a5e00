"""Volume formats around the model: NIfTI, NRRD, Slicer .seg.nrrd, dcmqi JSON metadata."""
