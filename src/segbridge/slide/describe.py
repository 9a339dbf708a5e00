"""What ``segbridge info`` reports for a slide SEG: tiling, geometry, segments and pixel counts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import Report


def describe_slide(path: str | os.PathLike) -> dict:
    """A JSON-ready description of a slide SEG (pixels counted a strip of tiles at a time)."""
    from .seg_read import TiledSegFile, read_slide_seg

    p = Path(path)
    report = Report()
    sseg = read_slide_seg(p, report)
    f = TiledSegFile(p)
    g = sseg.grid
    counts: dict[int, int] = {}
    if sseg.labels is not None:
        for r0 in range(0, g.rows, g.tile_rows):
            block = sseg.labels.read(r0, min(r0 + g.tile_rows, g.rows), 0, g.columns)
            nz = block[block != 0]
            for v, c in enumerate(np.bincount(nz, minlength=1)):
                if c:
                    counts[v] = counts.get(v, 0) + int(c)
    else:
        for n, src in sseg.masks.items():
            counts[n] = sum(int(np.count_nonzero(src.read(r0, min(r0 + g.tile_rows, g.rows),
                                                          0, g.columns)))
                            for r0 in range(0, g.rows, g.tile_rows))
    organisation = str(f.ds.get("DimensionOrganizationType", "") or "")
    return {
        "file": str(p), "format": "dicom", "slide": True,
        "sop_class_uid": f.sop_class_uid, "transfer_syntax_uid": f.transfer_syntax,
        "segmentation_type": sseg.seg_type, "frames": f.number_of_frames,
        "dimension_organization": organisation or "(not given)",
        "total_pixel_matrix": [g.rows, g.columns], "tile": [g.tile_rows, g.tile_columns],
        "pixel_spacing_mm": list(g.pixel_spacing), "origin_mm": list(g.origin),
        "image_orientation_slide": list(g.orientation),
        "frame_of_reference_uid": g.frame_of_reference_uid,
        "source_instance": g.source.sop_instance_uid if g.source else None,
        "segments": [{"number": s.number, "label": s.label,
                      "color": list(s.color) if s.color else None,
                      "pixels": counts.get(s.number, 0)} for s in sseg.segments],
        "notes": report.notes, "warnings": report.warnings,
    }


def print_slide(data: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(data['file'])}[/bold] (slide SEG)")
    console.print(f"  {data['segmentation_type']}, {data['frames']} frames "
                  f"{data['tile'][0]}x{data['tile'][1]}, {data['dimension_organization']}, "
                  f"transfer syntax {data['transfer_syntax_uid']}")
    console.print(f"  total pixel matrix {data['total_pixel_matrix'][0]} x "
                  f"{data['total_pixel_matrix'][1]}, spacing {data['pixel_spacing_mm']} mm, "
                  f"origin {data['origin_mm']} mm, orientation "
                  f"{data['image_orientation_slide']}")
    if data.get("source_instance"):
        console.print(f"  source image {escape(data['source_instance'])}")
    t = Table(show_edge=False, pad_edge=False)
    for col in ("#", "label", "colour", "pixels"):
        t.add_column(col)
    for s in data["segments"]:
        t.add_row(str(s["number"]), escape(s["label"]), str(s["color"] or "-"), str(s["pixels"]))
    console.print(t)
    for w in data["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
