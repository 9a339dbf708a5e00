"""Fix hints that depend on the active profile: what to write instead, in options that profile
accepts (a hint must never name an encoding the same profile refuses). Shared by the standard
rules and the viewer rules, which otherwise know nothing of each other.
"""

from __future__ import annotations


def fractional_fix(columns: int) -> str:
    """OHIF-FRACTIONAL's fix under ohif: thresholded types that profile can write."""
    if columns % 8 == 0:
        return "For OHIF write --type labelmap or binary (thresholded), or keep the fractions " \
            "with --profile slicer|archive."
    return "For OHIF write --type labelmap (thresholded; BINARY needs Columns a multiple of 8 " \
        "there), or keep the fractions with --profile slicer|archive."


def ohif_binary_fix(columns: int) -> str:
    """A fix for 1-bit frames that works under the ohif profile (which writes 1-bit frames only
    natively, and only when Columns is a multiple of 8: OHIF-NATIVE-1BIT-COLUMNS, OHIF-RLE-1BIT)."""
    if columns % 8 == 0:
        return "For OHIF write --type labelmap (the ohif default) or native BINARY " \
            "(--compression none)."
    return f"For OHIF write --type labelmap (the ohif default): BINARY needs Columns a " \
        f"multiple of 8 there (this one has {columns}). Or write for another consumer with " \
        "--profile slicer|archive."
