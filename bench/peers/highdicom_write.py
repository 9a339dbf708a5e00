"""Peer: write a SEG from a NIfTI labelmap with highdicom (what a careful user would do).

usage: highdicom_write.py CT_DIR LABELS.nii.gz OUT.dcm BINARY|LABELMAP explicit|rle
"""

import sys
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

ct_dir, labels_path, out, seg_type, ts = sys.argv[1:6]
sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(Path(ct_dir).glob("*.dcm"))]
normal = np.cross(np.array(sources[0].ImageOrientationPatient[:3], float),
                  np.array(sources[0].ImageOrientationPatient[3:], float))
sources.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
img = nib.load(labels_path)
# the benchmark NIfTI is axial with RAS axes flipped from LPS: (x, y, z) -> (z, y, x) suffices
assert np.allclose(np.sign(np.diag(img.affine)[:3]), [-1, -1, 1]), img.affine
labels = np.transpose(np.asanyarray(img.dataobj), (2, 1, 0))
values = [int(v) for v in np.unique(labels) if v != 0]
algo = hd.AlgorithmIdentificationSequence(name="bench", version="1",
                                          family=codes.cid7162.ArtificialIntelligence)
descriptions = [hd.seg.SegmentDescription(
    segment_number=v, segment_label=f"structure {v}",
    segmented_property_category=codes.SCT.AnatomicalStructure,
    segmented_property_type=codes.SCT.Tissue,
    algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
    algorithm_identification=algo) for v in values]
seg = hd.seg.Segmentation(
    source_images=sources, pixel_array=labels, segmentation_type=seg_type,
    segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=300,
    sop_instance_uid=generate_uid(), instance_number=1, manufacturer="bench",
    manufacturer_model_name="bench", software_versions="1", device_serial_number="1",
    transfer_syntax_uid=RLELossless if ts == "rle" else ExplicitVRLittleEndian)
seg.save_as(out)
