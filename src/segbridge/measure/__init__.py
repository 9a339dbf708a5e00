"""Measurements on segmentations: statistics, bidirectional axes, SR export, previews."""
