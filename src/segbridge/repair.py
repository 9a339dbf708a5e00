"""``segbridge repair``: rewrite a SEG through the model so it passes a profile, or say why not.

Everything the writer does is a repair when the input lacked it: segments renumbered 1..N,
source references added by position (with a reference series), colours added, 1-bit data
re-packed, one fragment per frame with a filled offset table, a transfer syntax the profile
accepts, ReferencedSeriesSequence, and a split into several series when the profile cannot
show all segments in one. What would need a guess is refused and nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError, Report, SegbridgeError
from .outputs import files_read, refuse_overwrite
from .validate import PROFILE_FOR_WRITER, ValidationResult, validate

#: findings that rewriting cannot fix without guessing
UNFIXABLE = {
    "SEG-READ": "the file cannot be read completely",
    "SEG-REFERENCES": "frames reference images that are not in the given series",
    "SEG-REFERENCE-POSITION": "frames and their source images disagree on position; which one "
                              "is right cannot be known",
    "SEG-FRAME-OF-REFERENCE": "the frame of reference differs from the series'",
    "OHIF-FRACTIONAL": "soft fractions would have to be thresholded",
    "SEG-FRACTIONAL-RANGE": "fractions above the maximum would have to be clipped",
    "OHIF-SOURCE-SIZE": "frames would have to be resampled onto the source grid",
    "OHIF-ORIENTATION": "frames would have to be resampled into the source plane",
}


@dataclass
class RepairResult:
    """What repair found, changed, wrote, and could not fix."""

    before: ValidationResult
    written: list[Path] = field(default_factory=list)
    after: list[ValidationResult] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    unfixable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.written) and not self.unfixable and all(a.ok for a in self.after)


def repair(path: str | os.PathLike, output: str | os.PathLike, *, reference=None,
           profile: str = "ohif", compression: str | None = None) -> RepairResult:
    """Repair ``path`` into ``output`` (and ``output``-2... when split) for ``profile``."""
    from .dicom.codecs import COMPRESSIONS
    from .dicom.parse import parse_file
    from .dicom.seg_reader import read_seg
    from .io import write
    from .profiles import get_profile
    from .reference import load_reference

    src, out = Path(path), Path(output)
    if not out.parent.exists():
        raise InvalidInputError(f"{out}: output folder {out.parent} does not exist")
    ref = load_reference(reference)
    protected = files_read([src], reference=ref)
    refuse_overwrite([out], protected, split=out)
    check_profile = PROFILE_FOR_WRITER.get(profile, profile)
    before = validate(src, reference=ref, profile=check_profile)
    result = RepairResult(before)
    if before.kind != "SEG":
        result.unfixable.append(f"repair rewrites DICOM SEG objects; this is an {before.kind}")
        return result
    for f in before.errors:
        if f.rule in UNFIXABLE:
            result.unfixable.append(f"{f.rule} ({f.where}): {UNFIXABLE[f.rule]}")
    if result.unfixable:
        return result
    report = Report()
    try:
        seg = read_seg(src, ref, report=report)
    except SegbridgeError as exc:
        result.unfixable.append(f"read: {exc}")
        return result
    parsed = parse_file(src)
    kind = str(parsed.ds.get("SegmentationType") or "BINARY").upper()
    prof = get_profile(profile)
    ts_name = next((c.name for c in COMPRESSIONS.values() if c.uid == parsed.transfer_syntax),
                   None)
    bits = {"BINARY": 1, "FRACTIONAL": 8}.get(kind, 16 if max(seg.numbers, default=0) > 255
                                               else 8)
    if compression is None and ts_name is not None and ts_name in prof.allowed[bits] and not (
            ts_name == "none" and bits == 1 and "OHIF-NATIVE-1BIT-COLUMNS" in before.rule_ids()):
        compression = ts_name
    try:
        written = write(seg, out, type=kind.lower(), profile=profile, compression=compression,
                        report=report, reference=ref, protect=protected)
    except SegbridgeError as exc:
        result.unfixable.append(f"write: {exc}")
        return result
    result.written = written
    result.after = [validate(p, reference=ref, profile=check_profile) for p in written]
    if not all(a.ok for a in result.after):
        for a in result.after:
            for f in a.errors:
                result.unfixable.append(f"{f.rule} ({f.where}): {f.message}")
        for p in written:
            p.unlink(missing_ok=True)
        result.written = []
        return result
    fixed = before.rule_ids() - set().union(*(a.rule_ids() for a in result.after))
    for f in before.findings:
        if f.rule in fixed:
            result.changes.append(f"fixed {f.rule} ({f.where}): {f.message}")
    result.changes += report.notes
    result.changes += [f"warning: {w}" for w in report.warnings]
    return result
