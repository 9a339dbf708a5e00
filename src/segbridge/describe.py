"""What ``segbridge info`` reports about a segmentation file, as data and as a table."""

from __future__ import annotations

import os
from pathlib import Path

from . import io, registry
from .errors import Report

SOP_CLASS_NAMES = {"1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
                   "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage"}


def describe(path: str | os.PathLike, *, reference=None, series_uid: str | None = None) -> dict:
    """A JSON-ready description of a segmentation file."""
    p = Path(path)
    report = Report()
    detected = registry.detect(p)  # one content test for the family and the DICOM kind
    fmt = detected.family
    data: dict = {"file": str(p), "format": fmt}
    if detected.name == "rtstruct":
        return describe_rtstruct(p, reference=reference, series_uid=series_uid)
    if fmt == "dicom":
        from .slide.detect import is_slide_seg

        if is_slide_seg(p):  # a SEG on a slide's tiled total pixel matrix
            from .slide.describe import describe_slide

            return describe_slide(p)
        from .dicom.segfile import SegFile

        f = SegFile(p)
        ds = f.ds
        from pydicom.uid import UID

        ts = UID(f.transfer_syntax)
        data.update({
            "sop_class_uid": f.sop_class_uid,
            "sop_class": SOP_CLASS_NAMES.get(f.sop_class_uid, f.sop_class_uid),
            "transfer_syntax_uid": str(ts), "transfer_syntax": ts.name,
            "segmentation_type": f.segmentation_type,
            "frames": f.number_of_frames,
            "rows": f.rows, "columns": f.columns, "bits_allocated": f.bits_allocated,
            "series_description": str(ds.get("SeriesDescription", "") or ""),
            "series_instance_uid": str(ds.get("SeriesInstanceUID", "") or ""),
            "referenced_series": [str(s.get("SeriesInstanceUID") or "") for s in
                                  ds.get("ReferencedSeriesSequence") or []],
            "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        })
        if f.segmentation_type == "FRACTIONAL":
            data["fractional_type"] = str(ds.get("SegmentationFractionalType", ""))
            data["max_fractional_value"] = int(ds.get("MaximumFractionalValue", 0) or 0)
        if "PixelPaddingValue" in ds:
            data["pixel_padding_value"] = int(ds.PixelPaddingValue)
    seg = io.read(p, reference=reference, series_uid=series_uid, report=report)
    g = seg.grid
    data["type"] = "fractional" if seg.is_fractional else "labels"
    data["grid"] = {
        "shape_zyx": list(g.shape), "spacing_zyx_mm": [round(float(v), 6) for v in g.spacing],
        "origin_lps_mm": [round(float(v), 6) for v in g.origin],
        "orientation": [round(float(v), 6) for v in g.image_orientation],
        "evenly_spaced": g.is_regular, "frame_of_reference_uid": g.frame_of_reference_uid,
    }
    data["frame_referenced"] = seg.frame_space
    if seg.frame_space:  # 2-D / cine: slices are source frames, no patient geometry to show
        data["grid"].update(origin_lps_mm=None, orientation=None, source_frames=[
            [i.sop_instance_uid, i.frame_number] for i in seg.source.instances[:1000]])
    counts = seg.voxel_counts()
    segs = []
    for s in seg.segments:
        item = {"number": s.number, "label": s.label,
                "category": f"{s.category.scheme} {s.category.value} {s.category.meaning}",
                "type": f"{s.type.scheme} {s.type.value} {s.type.meaning}",
                "color": list(s.color) if s.color else None,
                "algorithm": s.algorithm_type + (f" ({s.algorithm_name})"
                                                 if s.algorithm_name else ""),
                "voxels": counts.get(s.number, 0)}
        if not seg.is_fractional:
            item["layer"], item["value"] = seg.bindings[s.number]
        segs.append(item)
    data["segments"] = segs
    data["layers"] = 0 if seg.is_fractional else len(seg.layers)
    data["overlap"] = seg.has_overlap()
    if seg.source is not None:
        data["source_series"] = seg.source.series_instance_uid
        data["source_study"] = seg.source.study_instance_uid
    data["notes"] = report.notes
    data["warnings"] = report.warnings
    return data


def describe_rtstruct(path: Path, *, reference=None, series_uid: str | None = None) -> dict:
    """ROIs, contour counts, slices and references of an RT Structure Set."""
    from .rt.reader import parse_rtstruct

    report = Report()
    rt = parse_rtstruct(path, report)
    data: dict = {"file": str(path), "format": "rtstruct", "label": rt.label,
                  "sop_instance_uid": rt.sop_instance_uid,
                  "frame_of_reference_uid": rt.frame_of_reference_uid,
                  "referenced_series": rt.referenced_series,
                  "referenced_images": len(rt.referenced_images)}
    rois = []
    for r in rt.rois:
        kinds: dict[str, int] = {}
        for c in r.contours:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        planes = {round(float(c.points[2::3].mean()), 2) for c in r.contours
                  if c.kind == "CLOSED_PLANAR" and c.points.size >= 3}
        rois.append({"number": r.number, "name": r.name, "color": list(r.color) if r.color
                     else None, "interpreted_type": r.interpreted_type,
                     "algorithm": r.algorithm, "contours": len(r.contours),
                     "contour_types": kinds, "slices": len(planes)})
    if reference is not None:
        seg = io.read(path, reference=reference, series_uid=series_uid, report=report)
        counts = seg.voxel_counts()
        for item in rois:
            item["voxels"] = counts.get(item["number"], 0)
        data["series_matched"] = seg.source.series_instance_uid
    data["rois"] = rois
    data["notes"] = report.notes
    data["warnings"] = report.warnings
    return data


def _x(value) -> str:
    """A value from the file, escaped for rich: a label such as "Liver[/]" is text, not markup
    (unescaped, rich raises MarkupError on it)."""
    from rich.markup import escape

    return escape(str(value))


def print_description(data: dict, console) -> None:
    from rich.table import Table

    if data["format"] == "rtstruct":
        _print_rtstruct(data, console)
        return
    if data.get("slide"):
        from .slide.describe import print_slide

        print_slide(data, console)
        return
    console.print(f"[bold]{_x(data['file'])}[/bold] ({data['format']})")
    if data["format"] == "dicom":
        console.print(f"  {_x(data['sop_class'])} ({_x(data['sop_class_uid'])}), "
                      f"{_x(data['segmentation_type'])}, {data['frames']} frames "
                      f"{data['rows']}x{data['columns']} at {data['bits_allocated']} bit")
        console.print(f"  transfer syntax: {_x(data['transfer_syntax'])} "
                      f"({_x(data['transfer_syntax_uid'])})")
        if data.get("referenced_series"):
            console.print(f"  references series {_x(', '.join(data['referenced_series']))}")
    g = data["grid"]
    if data.get("frame_referenced"):
        console.print(f"  frame-referenced (2-D / cine images, no patient geometry): "
                      f"{g['shape_zyx'][0]} source frame(s) of {g['shape_zyx'][1]}x"
                      f"{g['shape_zyx'][2]} pixels, pixel spacing {g['spacing_zyx_mm'][1:]} "
                      "(1 = unknown)")
    else:
        console.print(f"  grid (z,y,x) {g['shape_zyx']}, spacing {g['spacing_zyx_mm']} mm, origin "
                      f"{g['origin_lps_mm']} (LPS), orientation {g['orientation']}"
                      + ("" if g["evenly_spaced"] else ", uneven slice spacing"))
    console.print(f"  {len(data['segments'])} segments, {data['layers']} layer(s), overlap: "
                  f"{'yes' if data['overlap'] else 'no'}")
    t = Table(show_edge=False, pad_edge=False)
    for col in ("#", "label", "type", "colour", "voxels", "layer"):
        t.add_column(col)
    for s in data["segments"]:
        col = s["color"]
        swatch = f"[rgb({col[0]},{col[1]},{col[2]})]■[/] {col}" if col else "-"
        t.add_row(str(s["number"]), _x(s["label"]), _x(s["type"]), swatch, str(s["voxels"]),
                  f"{s.get('layer', '-')}:{s.get('value', '-')}")
    console.print(t)
    _print_notes(data, console)


def _print_notes(data: dict, console) -> None:
    for n in data["notes"]:
        console.print(f"[dim]note:[/dim] {_x(n)}")
    for w in data["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {_x(w)}")


def _print_rtstruct(data: dict, console) -> None:
    from rich.table import Table

    console.print(f"[bold]{_x(data['file'])}[/bold] (RT Structure Set \"{_x(data['label'])}\")")
    console.print(f"  references series {_x(data['referenced_series'] or '(none)')} "
                  f"({data['referenced_images']} images), frame of reference "
                  f"{_x(data['frame_of_reference_uid'] or '(none)')}")
    t = Table(show_edge=False, pad_edge=False)
    cols = ["#", "name", "type", "colour", "contours", "slices"]
    if any("voxels" in r for r in data["rois"]):
        cols.append("voxels")
    for col in cols:
        t.add_column(col)
    for r in data["rois"]:
        col = r["color"]
        swatch = f"[rgb({col[0]},{col[1]},{col[2]})]■[/] {col}" if col else "-"
        kinds = ", ".join(f"{n} {k}" for k, n in r["contour_types"].items()) or "0"
        row = [str(r["number"]), _x(r["name"]), _x(r["interpreted_type"] or "-"), swatch,
               _x(kinds), str(r["slices"])]
        if "voxels" in cols:
            row.append(str(r.get("voxels", "-")))
        t.add_row(*row)
    console.print(t)
    _print_notes(data, console)
