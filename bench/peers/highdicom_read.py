"""Peer: read a SEG into one labelmap volume with highdicom and save it as NIfTI.

usage: highdicom_read.py SEG.dcm OUT.nii
"""

import sys

import highdicom as hd
import nibabel as nib

seg = hd.seg.segread(sys.argv[1])
volume = seg.get_volume(combine_segments=True)
nib.save(volume.to_nibabel(), sys.argv[2])
