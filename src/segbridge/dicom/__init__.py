"""DICOM objects: segmentation (SEG) reading and writing, pixel codecs, fast raw encoding."""
