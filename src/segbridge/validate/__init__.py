"""Validation of DICOM SEG and RTSTRUCT against the standard and against real consumers.

``validate(path, reference=..., profile="standard"|"ohif"|"slicer")`` runs every rule that
applies; each finding carries a rule id, severity, where, message, fix hint and source. The rule
table (docs/rules.md) is generated from the registered rules by ``python -m
segbridge.validate.docs``.
"""

from __future__ import annotations

import os

from ..errors import SegbridgeError, UnsupportedError
from . import hints, rt_rules, seg_rules, slide_rules, viewer_rules  # noqa: F401  (rules)
from .findings import ERROR, INFO, PROFILES, RULES, WARNING, Finding, Rule, ValidationResult

#: writer profiles -> the validation profile their output must pass
PROFILE_FOR_WRITER = {"ohif": "ohif", "slicer": "slicer", "archive": "standard",
                      "dense": "standard"}


def _profile(name: str) -> str:
    name = (name or "standard").lower()
    name = PROFILE_FOR_WRITER.get(name, name)
    if name not in PROFILES:
        raise UnsupportedError(f"unknown validation profile {name!r}; choose one of "
                               f"{', '.join(PROFILES)}")
    return name


def validate(path: str | os.PathLike, *, reference=None, profile: str = "standard",
             pixels: bool = True, series_uid: str | None = None) -> ValidationResult:
    """Check one SEG or RTSTRUCT file; ``reference`` (a series) enables the reference rules.

    Parameters
    ----------
    path
        The DICOM SEG or RTSTRUCT.
    reference
        The image series (anything :func:`segbridge.reference.load_reference` takes).
    profile
        ``standard``, ``ohif`` or ``slicer`` (writer profile names map to these).
    pixels
        Run the rules that decode the pixel data and the whole reader.

    Raises
    ------
    InvalidInputError
        The file is not DICOM that can be walked at all (one line naming it).
    UnsupportedError
        Not a SEG or RTSTRUCT, or an unknown profile.

    A rule that cannot finish because of the file (a SegbridgeError) is an error finding; any
    other exception in a rule is a bug in segbridge and propagates.
    """
    from ..dicom.parse import parse_file
    from ..dicom.segfile import SEG_SOP_CLASSES
    from ..reference import load_reference
    from .context import RtContext, SegContext

    prof = _profile(profile)
    parsed = parse_file(path, lenient=True)
    sop = parsed.sop_class_uid
    if sop in SEG_SOP_CLASSES or _modality(parsed) == "SEG":
        ctx_type, kind = SegContext, "SEG"
    elif sop == rt_rules.RT_SOP or _modality(parsed) == "RTSTRUCT":
        ctx_type, kind = RtContext, "RTSTRUCT"
    else:
        raise UnsupportedError(f"{path}: not a DICOM SEG or RTSTRUCT (SOP class {sop or 'none'})")
    slide_ref = None
    if kind == "SEG" and reference is not None and "TotalPixelMatrixRows" in parsed.ds:
        from ..slide.reference import read_sm  # a slide SEG's reference is one SM image

        ref, slide_ref = None, read_sm(reference)
    else:
        ref = load_reference(reference, series_uid=series_uid)
    ctx = ctx_type(parsed, ref)
    ctx.slide_reference = slide_ref
    ctx.profile = prof
    result = ValidationResult(str(path), kind, prof)
    for r in RULES:
        if r.kind != kind or prof not in r.profiles:
            continue
        if (r.needs_reference and ref is None) or (r.needs_pixels and not pixels):
            result.skipped.append(r.id)
            continue
        try:
            found = list(r.check(ctx))
        except SegbridgeError as exc:  # the file stops this check: that is an error in the file
            result.findings.append(Finding(r.id, ERROR, "file", f"could not be checked: {exc}",
                                           r.hint, r.source))
            continue
        for where, message, *hint in found:  # a rule may name a fix for this file
            result.findings.append(Finding(r.id, r.severity, where, message,
                                           hint[0] if hint and hint[0] else r.hint, r.source))
    if kind == "SEG" and pixels and ctx.decode_error and "SEG-READ" not in result.rule_ids():
        rr = next(r for r in RULES if r.id == "SEG-READ")
        result.findings.append(Finding("SEG-READ", ERROR, "PixelData", ctx.decode_error, rr.hint,
                                       rr.source))
    order = {ERROR: 0, WARNING: 1, INFO: 2}
    result.findings.sort(key=lambda f: order[f.severity])
    return result


def _modality(parsed) -> str:
    try:
        return str(parsed.ds.get("Modality") or "")
    except SegbridgeError:
        return ""


def model_findings(seg, profile: str, *, type: str = "auto",
                   split_overlaps: bool | None = None) -> list[Finding]:
    """Pixel rules answered from the model before writing (so convert need not decode).

    Mirrors OHIF-OVERLAP and OHIF-FRACTIONAL for what the writer is about to produce.
    """
    prof = _profile(profile)
    out: list[Finding] = []
    if prof != "ohif":
        return out
    rules = {r.id: r for r in RULES}
    if split_overlaps is False and type != "labelmap" and seg.has_overlap():
        r = rules["OHIF-OVERLAP"]
        out.append(Finding(r.id, r.severity, "segments", "overlapping segments in one SEG: "
                           "voxels of other segments are lost on load through the adapters' "
                           "buffer path (OHIF 3.13 in a browser loads them)",
                           "Leave split_overlaps at its default: the ohif profile writes "
                           "overlapping segments as several SEG series.", r.source))
    if seg.is_fractional and type in ("auto", "fractional"):
        m = seg.max_fractional_value
        if any(((a != 0) & (a != m)).any() for a in seg.fractional.values()):
            r = rules["OHIF-FRACTIONAL"]
            out.append(Finding(r.id, r.severity, "segments", "soft fractions: 'Fractional "
                               "segmentations are not yet supported'",
                               hints.fractional_fix(seg.grid.shape[2]), r.source))
    return out


__all__ = ["validate", "model_findings", "ValidationResult", "Finding", "Rule", "RULES", "PROFILES",
           "PROFILE_FOR_WRITER"]
