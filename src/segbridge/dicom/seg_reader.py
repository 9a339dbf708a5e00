"""DICOM SEG (BINARY, FRACTIONAL, LABELMAP / Sup 243) -> :class:`Segmentation`.

Frames are placed on the grid by their referenced SOP Instance UID *and* by their position: when
both are known and disagree, the reference wins and the disagreement is reported. With a
reference series the result lies on exactly that grid (empty slices included); without one, the
grid is rebuilt from the frame positions, and gaps that are whole multiples of the slice step are
filled with empty slices.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codes import is_background
from ..errors import GeometryMismatchError, InvalidInputError, Report
from ..geometry import Grid, align_array
from ..model import Segment, Segmentation, SourceInstance, SourceRef, label_dtype
from ..series import ReferenceImage
from .codecs.native import NativeFrames
from .rawdicom import EncodedHeader
from .segfile import LABELMAP_SOP_CLASS, SegFile
from .segments import segment_from_item

#: A frame matches a slice when its position is within this fraction of a voxel of the slice.
MATCH_TOLERANCE = 0.05
#: Orientation cosines and pixel spacings compare equal within this (relative) difference.
ORIENTATION_TOLERANCE = 1e-3


@dataclass
class _Placement:
    slice: int
    row: int
    col: int


def read_seg(path: str | Path, reference: ReferenceImage | None = None, *,
             resample: bool = False, strict: bool = False,
             report: Report | None = None) -> Segmentation:
    """Read a DICOM SEG into the model, on the reference grid when one is given."""
    report = report if report is not None else Report(strict=strict)
    f = SegFile(path)
    f.check_counts()
    kind = _check_type(f, report)
    segments = _read_segments(f, kind, report)
    if reference is not None:
        _check_series(f, reference)
    if reference is not None and reference.source.has_geometry and \
            not _same_plane_lattice(f, reference.grid):
        own = read_seg(path, None, strict=strict, report=Report(strict=strict))
        report.note(f"{f.path.name}: frame plane differs from the reference series; mapped "
                    "through patient coordinates")
        return _onto_reference(own, reference, resample, report, f.path.name)
    grid, source, placements = _place(f, reference, report)
    meta = dict(source=source, report=report,
                series_description=_text(f.ds, "SeriesDescription"),
                series_number=int(f.ds.SeriesNumber) if f.ds.get("SeriesNumber") else None,
                content_label=_text(f.ds, "ContentLabel"),
                content_description=_text(f.ds, "ContentDescription"),
                content_creator=_text(f.ds, "ContentCreatorName"))
    frames = f.frame_source()
    if getattr(frames, "padded_frames", False):
        report.warn(f"{f.path.name}: 1-bit frames are padded to whole bytes one by one "
                    "(not continuous as the standard requires); read as such")
    if kind == "LABELMAP":
        return _fill_labelmap(f, frames, grid, segments, placements, report, meta)
    if kind == "FRACTIONAL":
        return _fill_fractional(f, frames, grid, segments, placements, report, meta)
    return _fill_binary(f, frames, grid, segments, placements, report, meta)


def _text(ds, keyword: str) -> str | None:
    v = ds.get(keyword)
    return str(v) if v not in (None, "") else None


# ---------------------------------------------------------------------------------------------
# header checks and segments
# ---------------------------------------------------------------------------------------------
def _check_type(f: SegFile, report: Report) -> str:
    """The segmentation type the pixels are decoded by. A type in the other SOP class (a
    LABELMAP in 66.4, as drafts of Sup 243 wrote them) is read by its type with a warning, as
    highdicom does; `validate` reports it as SEG-TYPE."""
    kind = f.segmentation_type
    sop = f.sop_class_uid
    if kind not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise InvalidInputError(f"{f.path}: unknown SegmentationType {kind or '(missing)'}")
    if (kind == "LABELMAP") != (sop == LABELMAP_SOP_CLASS):
        report.warn(f"{f.path.name}: SegmentationType {kind} does not fit SOP class {sop} "
                    "(PS3.3 C.8.20.2: LABELMAP is Label Map Segmentation Storage, 66.7); read "
                    f"as {kind}")
    expected = {"BINARY": (1,), "FRACTIONAL": (8,), "LABELMAP": (8, 16)}[kind]
    if f.bits_allocated not in expected:
        raise InvalidInputError(f"{f.path}: {kind} segmentation with BitsAllocated "
                                f"{f.bits_allocated} (expected {' or '.join(map(str, expected))})")
    return kind


def _read_segments(f: SegFile, kind: str, report: Report) -> list[Segment]:
    items = f.ds.get("SegmentSequence")
    if not items:
        raise InvalidInputError(f"{f.path}: SegmentSequence is missing or empty")
    segments = [segment_from_item(it, report) for it in items]
    numbers = [s.number for s in segments]
    if len(set(numbers)) != len(numbers):
        raise InvalidInputError(f"{f.path}: duplicate segment numbers {numbers}")
    if kind != "LABELMAP" and sorted(numbers) != list(range(1, len(numbers) + 1)):
        report.warn(f"{f.path.name}: segment numbers {_short(numbers)} are not 1..N as the "
                    "standard requires for BINARY/FRACTIONAL")
    if kind == "LABELMAP" and any(s.color is None for s in segments) and \
            str(f.ds.get("PhotometricInterpretation") or "") == "PALETTE COLOR":
        from .segments import palette_colors

        colors = palette_colors(f, numbers)
        for s in segments:
            if s.color is None:
                s.color = colors.get(s.number)
    return segments


def _short(values: list[int]) -> str:
    return ",".join(map(str, values[:8])) + ("..." if len(values) > 8 else "")


# ---------------------------------------------------------------------------------------------
# geometry: where does each frame go
# ---------------------------------------------------------------------------------------------
def _check_series(f: SegFile, reference: ReferenceImage) -> None:
    """A SEG none of whose referenced images is in the given series, in another frame of
    reference, was made for other images: say so before comparing any geometry."""
    uids = {fi.sop_instance_uid for fi in f.frames if fi.sop_instance_uid}
    if not uids:
        return
    src = reference.source
    if any(src.index_of(u) is not None for u in uids):
        return
    seg_for = _text(f.ds, "FrameOfReferenceUID")
    ref_for = reference.grid.frame_of_reference_uid
    if seg_for and ref_for and seg_for != ref_for:
        series = f.ds.get("ReferencedSeriesSequence")
        which = f"series {series[0].SeriesInstanceUID}" if series else "other images"
        raise GeometryMismatchError(
            f"{f.path}: the SEG references {which}; none of its {len(uids)} referenced images "
            f"are in the given series {src.series_instance_uid}, which has another Frame of "
            "Reference")


def _seg_orientation(f: SegFile) -> np.ndarray | None:
    oris = [fi.orientation for fi in f.frames if fi.orientation is not None]
    if not oris:
        return None
    for o in oris[1:]:
        if np.abs(o - oris[0]).max() > ORIENTATION_TOLERANCE:
            raise GeometryMismatchError(f"{f.path}: frames have different orientations")
    return oris[0]


def _seg_spacing(f: SegFile) -> tuple[float, float] | None:
    sps = [fi.spacing for fi in f.frames if fi.spacing is not None]
    return sps[0] if sps else None


def _same_plane_lattice(f: SegFile, grid: Grid) -> bool:
    """Do the SEG frames share the reference's orientation and pixel spacing?"""
    ori = _seg_orientation(f)
    if ori is not None and np.abs(ori - np.array(grid.image_orientation)).max() > \
            ORIENTATION_TOLERANCE:
        return False
    sp = _seg_spacing(f)
    if sp is not None and not np.allclose(sp, grid.pixel_spacing, rtol=ORIENTATION_TOLERANCE):
        return False
    return True


class _Positions:
    """A grid's slice positions prepared once for placing thousands of frames (a whole-body
    BINARY SEG has ~12,000): which slice a frame position lies on, and its in-plane offset."""

    def __init__(self, grid: Grid) -> None:
        self.positions = grid.slice_positions()
        self.normal = grid.normal
        self.along = self.positions @ self.normal
        self.gaps = np.abs(np.diff(self.along)) if grid.shape[0] > 1 else None
        self.step = float(grid.spacing[0])
        self.col_dir = grid.direction[:, 0] / grid.spacing[2]
        self.row_dir = grid.direction[:, 1] / grid.spacing[1]

    def match(self, pos: np.ndarray) -> tuple[int | None, tuple[int, int] | None]:
        """Slice index and in-plane (row, col) offset of a frame position, or None."""
        s = float(pos @ self.normal) - self.along
        k = int(np.argmin(np.abs(s)))
        local = float(self.gaps[min(k, len(self.gaps) - 1)]) if self.gaps is not None \
            else self.step
        if abs(s[k]) > MATCH_TOLERANCE * local:
            return None, None
        return k, self.offset(k, pos)

    def offset(self, k: int, pos: np.ndarray) -> tuple[int, int] | None:
        """In-plane (row, col) offset of ``pos`` on slice ``k``, None off the pixel lattice."""
        rel = pos - self.positions[k]
        col = float(rel @ self.col_dir)
        row = float(rel @ self.row_dir)
        if abs(col - round(col)) > MATCH_TOLERANCE or abs(row - round(row)) > MATCH_TOLERANCE:
            return None
        return int(round(row)), int(round(col))


def _place(f: SegFile, reference: ReferenceImage | None,
           report: Report) -> tuple[Grid, SourceRef, list[_Placement]]:
    if reference is None:
        return _own_grid(f, report)
    grid, src = reference.grid, reference.source
    seg_for = _text(f.ds, "FrameOfReferenceUID")
    placements: list[_Placement] = []
    lattice = _Positions(grid)
    # frame space (2-D / cine reference): frames are placed by their source references only;
    # a position a SEG carries has no space on the reference to be compared in
    space = src.has_geometry
    by_position = unresolved = disagree = 0
    first_bad: str | None = None
    for i, fi in enumerate(f.frames):
        k_uid = src.index_of(fi.sop_instance_uid, fi.frame_number) if fi.sop_instance_uid \
            else None
        k_pos, off = (None, None)
        if fi.position is not None and space:
            k_pos, off = lattice.match(fi.position)
        if k_uid is not None:
            if fi.position is not None and space and k_pos != k_uid:
                disagree += 1
                if disagree == 1:
                    where = f"slice {k_pos + 1}" if k_pos is not None else "no slice"
                    report.warn(f"{f.path.name}: frame {i + 1} references slice {k_uid + 1} "
                                f"({fi.sop_instance_uid}) but its position lies on {where}; "
                                "placed by the reference")
                off = lattice.offset(k_uid, fi.position) if fi.position is not None and \
                    space else None
            placements.append(_Placement(k_uid, *(off or (0, 0))))
            continue
        if k_pos is not None and off is not None:
            by_position += 1
            placements.append(_Placement(k_pos, *off))
            continue
        unresolved += 1
        if first_bad is None:
            first_bad = (f"frame {i + 1} references {fi.sop_instance_uid or 'no instance'}"
                         + (f" at position {np.round(fi.position, 3).tolist()}"
                            if fi.position is not None else ""))
    if unresolved:
        for_note = ""
        if seg_for and grid.frame_of_reference_uid and seg_for != grid.frame_of_reference_uid:
            for_note = " (different Frame of Reference)"
        raise GeometryMismatchError(
            f"{f.path}: {unresolved} of {len(f.frames)} frames reference images that are not in "
            f"the given series {src.series_instance_uid}{for_note}; {first_bad}")
    if by_position:
        if seg_for and grid.frame_of_reference_uid and seg_for != grid.frame_of_reference_uid:
            raise GeometryMismatchError(
                f"{f.path}: frames reference another series and the Frame of Reference differs "
                f"({seg_for} vs {grid.frame_of_reference_uid})")
        report.warn(f"{f.path.name}: {by_position} frames do not reference an instance of the "
                    f"given series {src.series_instance_uid}; placed by position")
    if disagree > 1:
        report.warn(f"{f.path.name}: {disagree} frames disagree between reference and position")
    return grid, src, placements


def _own_grid(f: SegFile, report: Report) -> tuple[Grid, SourceRef, list[_Placement]]:
    """Grid rebuilt from the SEG's own frame positions (no reference series)."""
    ori = _seg_orientation(f)
    sp = _seg_spacing(f)
    if f.frames and all(fi.position is None for fi in f.frames) and ori is None:
        return _frame_order_grid(f, sp, report)
    if ori is None or sp is None or any(fi.position is None for fi in f.frames):
        raise InvalidInputError(f"{f.path}: frames carry no plane position/orientation; pass "
                                "--reference with the source series to place them")
    row_dir, col_dir = ori[:3], ori[3:6]
    normal = np.cross(row_dir, col_dir)
    normal /= np.linalg.norm(normal)
    pos = np.array([fi.position for fi in f.frames])
    s = pos @ normal
    order = np.argsort(s, kind="stable")
    tol = 1e-3 + 1e-6 * np.abs(s).max()
    uniq: list[int] = []  # index into frames of the first frame at each distinct position
    for i in order:
        if not uniq or s[i] - s[uniq[-1]] > max(tol, MATCH_TOLERANCE * 1e-2):
            uniq.append(int(i))
    us = s[uniq]
    base = pos[uniq]
    inplane0 = base[0] - (base[0] @ normal) * normal
    for p in pos:
        shift = (p - (p @ normal) * normal) - inplane0
        if abs(shift @ row_dir) > MATCH_TOLERANCE * sp[1] or \
                abs(shift @ col_dir) > MATCH_TOLERANCE * sp[0]:
            raise GeometryMismatchError(f"{f.path}: frames have different in-plane origins "
                                        "(cropped frames); pass --reference to place them")
    slice_pos = base
    if len(us) > 1:
        gaps = np.diff(us)
        step = f.spacing_between_slices or float(gaps.min())
        mult = gaps / step
        if step > 0 and np.all(np.abs(mult - np.round(mult)) < MATCH_TOLERANCE) and \
                np.all(np.round(mult) >= 1):
            n = int(round((us[-1] - us[0]) / step)) + 1
            if n > len(us):
                report.note(f"{f.path.name}: {n - len(us)} slices inside the segmented range "
                            "have no frames; filled as empty")
            slice_pos = base[0] + np.outer(np.arange(n) * step, normal)
    grid = Grid.from_slices(slice_pos, ori, sp, f.rows, f.columns,
                            _text(f.ds, "FrameOfReferenceUID"), report=report, what=f.path.name)
    report.note(f"{f.path.name}: no reference series given; the grid covers only the "
                f"{grid.shape[0]} slices between the first and last frame")
    placements = []
    lattice = _Positions(grid)
    for fi in f.frames:
        k, off = lattice.match(fi.position)
        if k is None or off is None:
            raise GeometryMismatchError(f"{f.path}: internal error placing a frame on its own "
                                        "grid")
        placements.append(_Placement(k, *off))
    # source references from the SEG itself
    ref_series = f.ds.get("ReferencedSeriesSequence")
    series_uid = str(ref_series[0].SeriesInstanceUID) if ref_series else ""
    sop_class = ""
    if ref_series and ref_series[0].get("ReferencedInstanceSequence"):
        sop_class = str(ref_series[0].ReferencedInstanceSequence[0].ReferencedSOPClassUID)
    instances = [SourceInstance("", "") for _ in range(grid.shape[0])]
    for fi, pl in zip(f.frames, placements, strict=True):
        if fi.sop_instance_uid and not instances[pl.slice].sop_instance_uid:
            instances[pl.slice] = SourceInstance(sop_class, fi.sop_instance_uid,
                                                 fi.frame_number)
    from ..series import COPIED_ATTRIBUTES

    keep = [kw for kw in COPIED_ATTRIBUTES if not kw.startswith("LossyImageCompression")]
    header = EncodedHeader(*f.header_bytes(keep))
    source = SourceRef(study_instance_uid=str(f.ds.get("StudyInstanceUID", "") or ""),
                       series_instance_uid=series_uid,
                       frame_of_reference_uid=_text(f.ds, "FrameOfReferenceUID"),
                       instances=instances, header=header)
    return grid, source, placements


def _frame_order_grid(f: SegFile, spacing: tuple[float, float] | None,
                      report: Report) -> tuple[Grid, SourceRef, list[_Placement]]:
    """Frame space without a reference: a SEG of 2-D / cine images (frames with no plane
    position or orientation, PS3.3 A.51.1: pixels correspond 1:1 to the source frames they
    reference). One slice per referenced source frame, instances in order of first reference
    and frames by number; no patient geometry is assumed (a nominal grid, pixel spacing from
    Pixel Measures when present)."""
    keys = [(fi.sop_instance_uid, fi.frame_number or None) if fi.sop_instance_uid else None
            for fi in f.frames]
    if all(keys):
        first: dict[str, int] = {}
        for uid, _ in keys:
            first.setdefault(uid, len(first))
        distinct = sorted(set(keys), key=lambda k: (first[k[0]], k[1] or 0))
        index = {k: i for i, k in enumerate(distinct)}
        slices = [index[k] for k in keys]
        refs = distinct
    else:  # no source references: the n-th frame of each segment is slice n
        labelmap = f.segmentation_type == "LABELMAP"
        seen: dict[int, int] = defaultdict(int)
        slices = []
        for i in range(len(f.frames)):
            key = 0 if labelmap else (f.frames[i].segment or 0)
            slices.append(seen[key])
            seen[key] += 1
        refs = [("", None)] * (max(slices) + 1)
        report.warn(f"{f.path.name}: frames reference no source images; one slice per frame "
                    "of each segment, in frame order")
    dy, dx = spacing if spacing is not None else (1.0, 1.0)
    grid = Grid((len(refs), f.rows, f.columns), np.zeros(3), (1.0, dy, dx), np.eye(3),
                _text(f.ds, "FrameOfReferenceUID"))
    report.note(f"{f.path.name}: frames carry no plane position/orientation (2-D / cine "
                f"source); read in frame space, {len(refs)} referenced source frame(s), no "
                "patient geometry assumed")
    ref_series = f.ds.get("ReferencedSeriesSequence")
    series_uid = str(ref_series[0].SeriesInstanceUID) if ref_series else ""
    classes: dict[str, str] = {}
    for item in (ref_series or []):
        for inst in item.get("ReferencedInstanceSequence") or []:
            classes[str(inst.ReferencedSOPInstanceUID)] = str(inst.ReferencedSOPClassUID)
    instances = [SourceInstance(classes.get(u, ""), u, n) for u, n in refs]
    from ..series import COPIED_ATTRIBUTES

    keep = [kw for kw in COPIED_ATTRIBUTES if not kw.startswith("LossyImageCompression")]
    header = EncodedHeader(*f.header_bytes(keep))
    pm = [str(v) for v in f.frames[0].spacing] if spacing is not None else None
    source = SourceRef(study_instance_uid=str(f.ds.get("StudyInstanceUID", "") or ""),
                       series_instance_uid=series_uid,
                       frame_of_reference_uid=_text(f.ds, "FrameOfReferenceUID"),
                       instances=instances, header=header, has_geometry=False,
                       pixel_spacing_strings=pm,
                       patient_orientation=_strings_of(f.ds, "PatientOrientation"))
    return grid, source, [_Placement(k, 0, 0) for k in slices]


def _strings_of(ds, keyword: str) -> list[str] | None:
    """A multi-valued text attribute as a list of strings, None when absent or empty."""
    v = ds.get(keyword)
    if v in (None, ""):
        return None
    values = [v] if isinstance(v, str) else list(v)
    return [str(x) for x in values] or None


def _onto_reference(own: Segmentation, reference: ReferenceImage, resample: bool,
                    report: Report, name: str) -> Segmentation:
    grid = reference.grid
    if own.is_fractional:
        frac = {n: align_array(a, own.grid, grid, resample=resample, what=name, report=report)
                for n, a in own.fractional.items()}
        return own.copy_meta(grid=grid, fractional=frac, source=reference.source)
    layers = [align_array(layer, own.grid, grid, resample=resample, what=name, report=report)
              for layer in own.layers]
    report.extend(own.report)
    return own.copy_meta(grid=grid, layers=layers, source=reference.source, report=report)


# ---------------------------------------------------------------------------------------------
# pixels
# ---------------------------------------------------------------------------------------------
def _clip(pl: _Placement, rows: int, cols: int, grid: Grid):
    """Target and source windows of a frame pasted at (pl.row, pl.col) on a grid slice."""
    gy, gx = grid.shape[1:]
    r0, c0 = max(pl.row, 0), max(pl.col, 0)
    r1, c1 = min(pl.row + rows, gy), min(pl.col + cols, gx)
    if r1 <= r0 or c1 <= c0:
        return None
    return ((slice(r0, r1), slice(c0, c1)),
            (slice(r0 - pl.row, r1 - pl.row), slice(c0 - pl.col, c1 - pl.col)))


def _frame_rows(frames, k: int, rows: int, columns: int):
    """(first row, bool rows) of the non-empty band of a binary frame, or None if empty."""
    if isinstance(frames, NativeFrames) and columns % 8 == 0:
        band = frames.nonzero_rows(k)
        if band is None:
            return None
        r0, r1 = band
        rowbytes = columns // 8
        start = k * rows * rowbytes
        block = frames.buf[start + r0 * rowbytes:start + r1 * rowbytes]
        bits = np.unpackbits(block, bitorder="little").reshape(r1 - r0, columns)
        return r0, bits.view(np.bool_)
    arr = frames.frame(k)
    hit = np.flatnonzero(arr.any(axis=1))
    if hit.size == 0:
        return None
    return int(hit[0]), arr[hit[0]:hit[-1] + 1] != 0


def _window(f: SegFile, i: int, pl: _Placement, arr: np.ndarray, grid: Grid):
    """Target/source windows for pasting ``arr`` (nonzero = data); error if data falls off."""
    win = _clip(pl, arr.shape[0], arr.shape[1], grid)
    full = win is not None and (win[1][0].stop - win[1][0].start,
                                win[1][1].stop - win[1][1].start) == arr.shape
    if not full and (win is None or np.count_nonzero(arr[win[1]]) != np.count_nonzero(arr)):
        raise GeometryMismatchError(f"{f.path}: frame {i + 1} has segment pixels outside the "
                                    "reference grid")
    return win


def _pager(f: SegFile):
    """A callable to call once per decoded frame: every ~64 MB of frames it drops the mapped
    file pages read so far, so a large SEG is never resident all at once (the label volume
    being filled is the only copy of the data this process holds)."""
    per_frame = max(f.rows * f.columns * max(f.bits_allocated, 1) // 8, 1)
    every = max((64 << 20) // per_frame, 1)
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] % every == 0:
            f.parsed.release_pages()
    return tick


def _fill_binary(f, frames, grid, segments, placements, report, meta) -> Segmentation:
    by_segment: dict[int, list[int]] = defaultdict(list)
    for i in range(len(f.frames)):
        by_segment[_frame_segment(f, i)].append(i)
    known = {s.number for s in segments}
    for n in sorted(set(by_segment) - known):
        report.warn(f"{f.path.name}: frames reference segment {n}, which SegmentSequence does "
                    "not describe; kept as an undescribed segment")
        segments.append(Segment(n, f"Segment {n} (undescribed)"))
    segments.sort(key=lambda s: s.number)
    _warn_missing_dimension_index(f, report)
    dtype = label_dtype(max(s.number for s in segments))
    layers: list[np.ndarray] = []
    bindings: dict[int, tuple[int, int]] = {}
    rows, cols = f.rows, f.columns
    tick = _pager(f)
    for seg in segments:
        idx = by_segment.get(seg.number, [])
        if not idx:
            report.warn(f"{f.path.name}: segment {seg.number} ({seg.label}) has no frames")
        pieces = []
        seen: set[int] = set()
        for i in idx:
            band = _frame_rows(frames, i, rows, cols)
            tick()
            pl = placements[i]
            if pl.slice in seen:
                report.warn(f"{f.path.name}: segment {seg.number} has two frames on slice "
                            f"{pl.slice + 1}; combined")
            seen.add(pl.slice)
            if band is None:
                continue
            r0, bits = band
            win = _window(f, i, _Placement(pl.slice, pl.row + r0, pl.col), bits, grid)
            pieces.append((pl.slice, win[0], bits[win[1]]))
        layer_index = _first_free_layer(layers, pieces, grid.shape, dtype)
        layer = layers[layer_index]
        for k, tw, m in pieces:
            np.copyto(layer[k][tw], seg.number, where=m, casting="unsafe")
        bindings[seg.number] = (layer_index, seg.number)
    if not layers:
        layers.append(np.zeros(grid.shape, dtype))
    return Segmentation(grid, segments, layers=layers, bindings=bindings, **meta)


def _frame_segment(f: SegFile, i: int) -> int:
    """The segment a BINARY / FRACTIONAL frame belongs to: a number from 1 (PS3.3 C.8.20.2.4:
    Segment Number starts at 1), refused when missing or 0."""
    n = f.frames[i].segment
    if n is None:
        raise InvalidInputError(f"{f.path}: frame {i + 1} has no ReferencedSegmentNumber")
    if n < 1:
        raise InvalidInputError(f"{f.path}: frame {i + 1} references segment {n}; segment "
                                "numbers start at 1")
    return n


def _first_free_layer(layers, pieces, shape, dtype) -> int:
    for li, layer in enumerate(layers):
        if not any(np.any(layer[k][tw][m]) for k, tw, m in pieces):
            return li
    layers.append(np.zeros(shape, dtype))
    return len(layers) - 1


def _warn_missing_dimension_index(f: SegFile, report: Report) -> None:
    if "DimensionIndexSequence" in f.ds and any(fi.dimension_index is None for fi in f.frames):
        report.warn(f"{f.path.name}: some frames have no DimensionIndexValues")


def _fill_fractional(f, frames, grid, segments, placements, report, meta) -> Segmentation:
    maxv = int(f.ds.get("MaximumFractionalValue", 255) or 255)
    ftype = str(f.ds.get("SegmentationFractionalType", "PROBABILITY") or "PROBABILITY")
    _warn_missing_dimension_index(f, report)
    known = {s.number for s in segments}
    arrays = {s.number: np.zeros(grid.shape, np.uint8) for s in segments}
    tick = _pager(f)
    for i in range(len(f.frames)):
        tick()
        n = _frame_segment(f, i)
        if n not in known:
            report.warn(f"{f.path.name}: frames reference undescribed segment {n}; kept")
            segments.append(Segment(n, f"Segment {n} (undescribed)"))
            known.add(n)
            arrays[n] = np.zeros(grid.shape, np.uint8)
        arr = frames.frame(i)
        if arr.max(initial=0) > maxv:
            report.warn(f"{f.path.name}: frame {i + 1} has values above MaximumFractionalValue "
                        f"{maxv}; clipped")
            arr = np.minimum(arr, maxv)
        pl = placements[i]
        win = _window(f, i, pl, arr, grid)
        target = arrays[n][pl.slice][win[0]]
        np.maximum(target, arr[win[1]].astype(np.uint8), out=target)
    for s in segments:
        if not arrays[s.number].any():
            report.warn(f"{f.path.name}: segment {s.number} ({s.label}) has no frames")
    segments.sort(key=lambda s: s.number)
    return Segmentation(grid, segments, fractional=arrays, fractional_type=ftype,
                        max_fractional_value=maxv, **meta)


def _fill_labelmap(f, frames, grid, segments, placements, report, meta) -> Segmentation:
    ppv = f.ds.get("PixelPaddingValue")
    background = set()
    if ppv is not None:
        background.add(int(ppv))
    # the values the pixels may hold, as the file describes them (before any renumbering)
    described = {s.number for s in segments} | background
    if 0 not in described:
        # PS3.3 C.8.20.2.3 wants an item for every value present, 0 included, but writers
        # (OHIF 3.13) leave the background out: 0 then means "no segment", as everywhere else
        background.add(0)
        described.add(0)
        report.note(f"{f.path.name}: value 0 is described by no segment and no "
                    "PixelPaddingValue; read as the background")
    kept = []
    for s in segments:
        if s.number in background or is_background(s.type, s.label):
            background.add(s.number)
            if s.number != 0 or ppv is None:
                report.note(f"{f.path.name}: segment {s.number} ({s.label}) is the background "
                            "(not kept as a segment)")
        else:
            kept.append(s)
    lut_size = 1 << f.bits_allocated
    nmax = max([s.number for s in kept], default=0)
    lut = None
    zero_segment = next((s for s in kept if s.number == 0), None)
    if zero_segment is not None or any(b != 0 for b in background):
        lut = np.arange(lut_size, dtype=np.uint32)
        for b in background:
            if b < lut_size:
                lut[b] = 0
        if zero_segment is not None:
            nmax += 1
            report.warn(f"{f.path.name}: segment 0 ({zero_segment.label}) is not a background; "
                        f"renumbered {nmax}")
            lut[0] = nmax
            zero_segment.number = nmax
        lut = lut.astype(label_dtype(int(lut.max())))
    # values 0..covered are all described: a frame whose maximum is within needs no histogram
    covered = -1
    while covered + 1 in described:
        covered += 1
    layer = np.zeros(grid.shape, np.uint16 if f.bits_allocated == 16 else np.uint8)
    present = np.zeros(lut_size, np.int64)
    tick = _pager(f)
    for i in range(len(f.frames)):
        tick()
        arr = frames.frame(i)
        if int(arr.max(initial=0)) > covered:
            present += np.bincount(arr.ravel(), minlength=lut_size)[:lut_size]
        mapped = arr if lut is None else lut[arr]
        pl = placements[i]
        win = _window(f, i, pl, mapped, grid)
        layer[pl.slice][win[0]] = mapped[win[1]]
    for v in np.flatnonzero(present):
        if int(v) not in described:
            report.warn(f"{f.path.name}: pixel value {v} is not described by any segment; kept "
                        "as an undescribed segment")
            kept.append(Segment(int(v), f"Segment {v} (undescribed)"))
    kept.sort(key=lambda s: s.number)
    want = label_dtype(max([s.number for s in kept], default=1))
    if layer.dtype != want and int(layer.max(initial=0)) <= np.iinfo(want).max:
        layer = layer.astype(want)
    bindings = {s.number: (0, s.number) for s in kept}
    return Segmentation(grid, kept, layers=[layer], bindings=bindings, **meta)


__all__ = ["read_seg"]
