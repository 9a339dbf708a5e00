"""``segbridge demo``: a synthetic CT with overlapping structures, NIfTI -> SEG -> NIfTI for every
SEG type, each checked voxel for voxel. Needs no downloaded data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import io
from .errors import Report
from .synthetic import demo_grid, demo_phantom, save_nifti, write_ct_series

_META = {
    "ContentCreatorName": "Demo^Reader", "SeriesDescription": "segbridge demo",
    "SeriesNumber": "300", "InstanceNumber": "1",
    "segmentAttributes": [
        [
            {"labelID": 1, "SegmentLabel": "Liver", "SegmentAlgorithmType": "MANUAL",
             "SegmentedPropertyCategoryCodeSequence": {
                 "CodeValue": "91723000", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Anatomical Structure"},
             "SegmentedPropertyTypeCodeSequence": {
                 "CodeValue": "10200004", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Liver"},
             "recommendedDisplayRGBValue": [221, 130, 101]},
            {"labelID": 2, "SegmentLabel": "Spine", "SegmentAlgorithmType": "AUTOMATIC",
             "SegmentAlgorithmName": "demo-thresholding",
             "SegmentedPropertyCategoryCodeSequence": {
                 "CodeValue": "91723000", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Anatomical Structure"},
             "SegmentedPropertyTypeCodeSequence": {
                 "CodeValue": "421060004", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Spinal column"},
             "recommendedDisplayRGBValue": [241, 214, 145]},
            {"labelID": 3, "SegmentLabel": "Right kidney", "SegmentAlgorithmType": "MANUAL",
             "SegmentedPropertyCategoryCodeSequence": {
                 "CodeValue": "91723000", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Anatomical Structure"},
             "SegmentedPropertyTypeCodeSequence": {
                 "CodeValue": "64033007", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Kidney"},
             "SegmentedPropertyTypeModifierCodeSequence": {
                 "CodeValue": "24028007", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Right"},
             "recommendedDisplayRGBValue": [185, 102, 83]},
        ],
        [
            {"labelID": 1, "SegmentLabel": "Tumor", "SegmentAlgorithmType": "SEMIAUTOMATIC",
             "SegmentAlgorithmName": "demo-growing",
             "SegmentedPropertyCategoryCodeSequence": {
                 "CodeValue": "49755003", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Morphologically Abnormal Structure"},
             "SegmentedPropertyTypeCodeSequence": {
                 "CodeValue": "108369006", "CodingSchemeDesignator": "SCT",
                 "CodeMeaning": "Neoplasm"},
             "recommendedDisplayRGBValue": [60, 200, 60]},
        ],
    ],
}


def _same(a, b) -> bool:
    """Same segments by label, voxel for voxel (fractions compared as stored values)."""
    la = {s.label: s.number for s in a.segments}
    lb = {s.label: s.number for s in b.segments}
    if set(la) != set(lb):
        return False
    for label, n in la.items():
        if a.is_fractional and b.is_fractional:
            if not np.array_equal(a.fraction(n), b.fraction(lb[label])):
                return False
        elif not np.array_equal(a.mask(n), b.mask(lb[label])):
            return False
    return True


def run_demo(outdir: str | Path, console) -> bool:
    """Run the demo in ``outdir``; prints a table and returns True when every trip was exact."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    grid = demo_grid()
    hu, labels, tumor = demo_phantom(grid.shape)
    ct_dir = out / "ct"
    write_ct_series(ct_dir, hu, grid, uid_seed="segbridge-demo")
    save_nifti(labels, grid, out / "organs.nii.gz")
    save_nifti(tumor, grid, out / "tumor.nii.gz")
    (out / "meta.json").write_text(json.dumps(_META, indent=2))
    # a probability map for the fractional type: a soft-edged version of the tumor
    zz, yy, xx = np.indices(grid.shape)
    c = np.array([(zz * tumor).sum(), (yy * tumor).sum(), (xx * tumor).sum()]) / tumor.sum()
    d = np.sqrt(((zz - c[0]) * 2.5) ** 2 + ((yy - c[1]) * 0.9) ** 2 + ((xx - c[2]) * 0.8) ** 2)
    prob = np.clip(1.2 - d / 6.0, 0, 1).astype(np.float32)
    save_nifti(prob, grid, out / "tumor_probability.nii.gz")

    console.print(f"[bold]segbridge demo[/bold] in {out}/: synthetic CT "
                  f"{grid.shape[2]}x{grid.shape[1]}x{grid.shape[0]} "
                  f"({grid.spacing[2]}x{grid.spacing[1]}x{grid.spacing[0]} mm, Columns not a "
                  "multiple of 8), organs.nii.gz + tumor.nii.gz (tumor overlaps the liver)")
    report = Report()
    ref = io.load_reference(ct_dir, report=report)
    seg = io.read([out / "organs.nii.gz", out / "tumor.nii.gz"], reference=ref,
                  meta=out / "meta.json", report=report)
    frac = io.read(out / "tumor_probability.nii.gz", reference=ref, fractional=True,
                   report=Report())
    frac.segments[0].label = "Tumor probability"
    console.print(f"model: {len(seg.segments)} segments in {len(seg.layers)} layers "
                  f"(overlap kept), grid {seg.grid.describe()}")

    from rich.table import Table

    table = Table(title="NIfTI -> DICOM SEG -> NIfTI round trips")
    for col in ("SEG type", "profile", "pixels", "SEG files", "size", "time", "exact"):
        table.add_column(col)
    cases = [
        ("binary", "slicer", None, seg), ("binary", "archive", "rle", seg),
        ("labelmap", "ohif", None, seg), ("labelmap", "archive", "jpegls",
                                          seg.subset([1, 2, 3])),
        ("binary", "dense", None, seg), ("fractional", "archive", "jpeg2000", frac),
    ]
    all_ok = True
    for kind, profile, comp, model in cases:
        name = f"seg_{kind}_{profile}{'_' + comp if comp else ''}"
        t0 = time.perf_counter()
        r = Report()
        files = io.write(model, out / f"{name}.dcm", type=kind, profile=profile,
                         compression=comp, report=r)
        ok = True
        for i, f in enumerate(files):
            back = io.read(f, reference=ref, report=Report())
            nii = io.write(back, out / f"{name}{'-' + str(i + 1) if i else ''}.nii.gz")[0]
            again = io.read(nii, reference=ref, report=Report())
            expected = model.subset([s.number for s in model.segments
                                     if s.label in {b.label for b in back.segments}])
            ok &= _same(expected, back) and _same(expected, again)
        dt = time.perf_counter() - t0
        all_ok &= ok
        from pydicom import dcmread

        from .dicom.codecs import COMPRESSIONS

        uid = dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
        ts = next(c.name for c in COMPRESSIONS.values() if c.uid == uid)
        size = sum(f.stat().st_size for f in files)
        table.add_row(kind.upper(), profile, ts, ", ".join(f.name for f in files),
                      f"{size / 1024:.0f} KB", f"{dt:.2f} s",
                      "[green]yes[/green]" if ok else "[red]NO[/red]")
    console.print(table)
    console.print("all round trips voxel-exact" if all_ok else
                  "[red]a round trip was not exact[/red]")
    _measure(out, ct_dir, console)
    console.print(f"try: segbridge info {out / 'seg_labelmap_ohif.dcm'} --reference {ct_dir}")
    return all_ok


def _measure(out: Path, ct_dir: Path, console) -> None:
    """Statistics, bidirectional axes, a TID 1500 SR and a preview of the BINARY SEG."""
    from rich.table import Table

    from .measure import job
    from .measure.bidirectional import measure_all
    from .measure.render import render
    from .measure.stats import compute_stats

    report = Report()
    loaded = job.load([out / "seg_binary_slicer.dcm"], ct_dir, report=report)
    stats = compute_stats(loaded.seg, loaded.image, report=report)
    axes = measure_all(loaded.seg)
    table = Table(title="measurements (each segment on its own mask: the tumor overlaps the "
                        "liver)")
    for col in ("segment", "volume ml", "mean HU", "std", "long axis mm", "short axis mm"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for st, ax in zip(stats, axes, strict=True):
        table.add_row(st.label, f"{st.volume_ml:.2f}", f"{st.mean:.1f}", f"{st.std:.1f}",
                      f"{ax.long_mm:.1f}" if ax.long_mm else "-",
                      f"{ax.short_mm:.1f}" if ax.short_mm else "-")
    console.print(table)
    sr = job.write_sr(loaded, out / "measurements_sr.dcm", loaded.seg.numbers, stats=stats,
                      axes=axes, report=report)
    png = render(loaded.seg, loaded.image, out / "preview.png", axes=axes,
                 title="segbridge demo: synthetic CT, liver + overlapping tumor")
    console.print(f"wrote {sr[-1].name} (DICOM SR TID 1500) and {png.name}")
