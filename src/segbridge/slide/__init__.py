"""Slide microscopy: segmentations on the tiled total pixel matrix of a VL Whole Slide image."""
