"""What the OHIF harness loads: each case is a CT series and the SEG file(s) opened, in order,
in the same OHIF viewport.

The data is made here, never taken from a file segbridge wrote earlier: ``segbridge demo`` for
the demo study (CT 70x60x24, Columns not a multiple of 8) and segbridge's synthetic CT writer for
the studies the demo does not cover (Columns a multiple of 8, an oblique grid, uneven slice
gaps, more than 255 segments). The SEGs are written by segbridge's public API with the profile,
type and compression each case names.

``expect`` is None when the case must load exactly; otherwise it says why OHIF 3.13 (or the
Orthanc in front of it) cannot, and the harness reports the case as an expected failure only
when it fails for that reason (``expect_fail_match``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from conftest import rotation  # tests/conftest.py (on the path: harness.py, pytest)


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    #: build(tmp, segbridge) -> (CT folder, SEG files in load order)
    build: Callable[[Path, str], tuple[Path, list[Path]]]
    #: part of the CI sample (tests/test_ohif.py)
    ci: bool = False
    #: also switch to OHIF's MPR layout and check the labelmap volumes
    mpr: bool = False
    #: also compare OHIF's statistics and bidirectional with segbridge stats / measure
    stats: bool = False
    #: make a segmentation in OHIF and export it: "two" labelmap layers (overlap) or "one"
    export: str | None = None
    #: the OHIF mode the study is opened in
    mode: str = "viewer"
    #: the SEG is not pushed by the harness: `segbridge serve` converts and stores the demo's
    #: organs.nii.gz (POST /v1/segmentations), and OHIF opens what the service stored
    via_service: bool = False
    #: None: must load exactly; else the known reason it cannot
    expect: str | None = None
    #: a regular expression the FAIL line must match for the failure to count as expected
    expect_fail_match: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# data


def _demo(tmp: Path, segbridge: str) -> Path:
    demo = tmp / "demo"
    if not (demo / "ct").is_dir():
        subprocess.run([segbridge, "demo", str(demo)], check=True, capture_output=True)
    return demo


def _demo_model(tmp: Path, segbridge: str):
    """The demo's four segments (Tumor overlaps Liver) on the demo CT, as the demo reads them."""
    import segbridge as sb

    demo = _demo(tmp, segbridge)
    return demo, sb.read([demo / "organs.nii.gz", demo / "tumor.nii.gz"], reference=demo / "ct",
                         meta=demo / "meta.json")


def _write(seg, out: Path, reference: Path, **kw) -> list[Path]:
    import segbridge as sb

    out.parent.mkdir(parents=True, exist_ok=True)
    return sb.write(seg, out, reference=reference, sidecar=False, **kw)


def _demo_file(*names: str) -> Callable[[Path, str], tuple[Path, list[Path]]]:
    def build(tmp: Path, segbridge: str) -> tuple[Path, list[Path]]:
        demo = _demo(tmp, segbridge)
        return demo / "ct", [demo / n for n in names]
    return build


def _demo_encoded(type_: str, profile: str, compression: str | None,
                  segments: tuple[int, ...] = (1, 2, 3)):
    """The demo model (non-overlapping subset by default) written with one encoding."""
    def build(tmp: Path, segbridge: str) -> tuple[Path, list[Path]]:
        demo, seg = _demo_model(tmp, segbridge)
        m = seg.subset(list(segments))
        if type_ == "fractional":
            import segbridge as sb
            m = sb.Segmentation(m.grid, m.segments, source=m.source,
                                fractional={s.number: m.fraction(s.number) for s in m.segments})
        name = f"{type_}-{profile}-{compression or 'default'}"
        files = _write(m, tmp / name / "seg.dcm", demo / "ct", type=type_, profile=profile,
                       compression=compression)
        return demo / "ct", files
    return build


def _demo_probability(compression: str):
    """The demo's soft tumour probability map (fractions between 0 and 1) as FRACTIONAL."""
    def build(tmp: Path, segbridge: str) -> tuple[Path, list[Path]]:
        import segbridge as sb

        demo = _demo(tmp, segbridge)
        seg = sb.read(demo / "tumor_probability.nii.gz", reference=demo / "ct",
                      fractional=True)
        seg.segments[0].label = "Tumor probability"
        files = _write(seg, tmp / f"soft-{compression}" / "seg.dcm", demo / "ct",
                       type="fractional", profile="archive", compression=compression)
        return demo / "ct", files
    return build


def _phantom_study(tmp: Path, name: str, shape, *, direction=None, gaps=None,
                   labels_fn=None):
    """A synthetic CT on a grid of ``shape`` ([z, y, x]) and its labels. ``direction``: the
    grid's direction cosines (oblique); ``gaps``: slice spacing per gap (uneven)."""
    import segbridge as sb
    from segbridge.synthetic import demo_grid, demo_phantom, write_ct_series

    g = demo_grid(shape)
    if direction is not None:
        g = sb.Grid(shape, origin=g.origin, spacing=g.spacing, direction=direction,
                    frame_of_reference_uid=g.frame_of_reference_uid)
    if gaps is not None:
        offs = np.concatenate([[0.0], np.cumsum(gaps)])
        positions = g.origin[None, :] + offs[:, None] * g.direction[:, 2][None, :]
        g = sb.Grid(shape, origin=g.origin, spacing=g.spacing, direction=g.direction,
                    frame_of_reference_uid=g.frame_of_reference_uid, positions=positions)
    hu, labels, tumor = demo_phantom(shape)
    if labels_fn is not None:
        labels = labels_fn(shape)
    ct = tmp / name / "ct"
    write_ct_series(ct, hu, g, uid_seed=f"segbridge-ohif-{name}",
                    series_description=f"segbridge OHIF harness: {name}")
    return ct, labels, tumor


def _segments(labels) -> list:
    import segbridge as sb
    from segbridge.colors import default_color

    names = {1: "Liver", 2: "Spine", 3: "Right kidney"}
    return [sb.Segment(int(v), names.get(int(v), f"Segment {int(v)}"),
                       color=default_color(int(v)))
            for v in np.unique(labels) if v]


def _phantom_case(name: str, shape, *, type_: str = "auto", profile: str = "ohif",
                  compression: str | None = None, direction=None, gaps=None, labels_fn=None):
    def build(tmp: Path, segbridge: str) -> tuple[Path, list[Path]]:
        import segbridge as sb

        ct, labels, _ = _phantom_study(tmp, name, shape, direction=direction, gaps=gaps,
                                       labels_fn=labels_fn)
        seg = sb.from_array(labels, reference=ct, segments=_segments(labels))
        files = _write(seg, tmp / name / "seg.dcm", ct, type=type_, profile=profile,
                       compression=compression)
        return ct, files
    return build


def _many_labels(shape) -> np.ndarray:
    """300 segments: 20 x 15 small blocks on 2 slices each (values 1..300)."""
    labels = np.zeros(shape, np.uint16)
    v = 0
    for k in range(0, 20):
        for r in range(15):
            v += 1
            z = (k * 2) % (shape[0] - 1)
            y0, x0 = 2 + r * 3, 2 + (k % 20) * 3
            labels[z:z + 2, y0:y0 + 2, x0:x0 + 2] = v
    return labels


# --------------------------------------------------------------------------------------------
# the cases

_400 = ("Orthanc answers HTTP 400 to single frames of a 1-bit SEG whose Rows x Columns is not a "
        "multiple of 8 (a frame does not start on a byte)")
_TRANSCODE = ("Orthanc 1.10 (Debian) cannot transcode this transfer syntax for the frames "
              "OHIF asks for: HTTP 500 'Cannot transcode image'")

CASES: dict[str, Case] = {c.name: c for c in (
    Case("labelmap-rle", "`ohif` profile: LABELMAP (66.7), RLE, Liver/Spine/Right kidney on "
         "the demo CT (Columns 70)", _demo_file("seg_labelmap_ohif.dcm"), tags=("ohif",)),
    Case("overlap", "`ohif` profile split pair: seg_labelmap_ohif.dcm (Liver/Spine/Right "
         "kidney, LABELMAP RLE) + seg_labelmap_ohif-2.dcm (Tumor, overlaps the Liver) in one "
         "viewport, then MPR", _demo_file("seg_labelmap_ohif.dcm", "seg_labelmap_ohif-2.dcm"),
         ci=True, mpr=True, stats=True, tags=("ohif",)),
    Case("overlap-segmentation-mode", "the `overlap` pair in OHIF's `segmentation` mode "
         "(stack, then MPR; this mode computes no segment statistics)",
         _demo_file("seg_labelmap_ohif.dcm", "seg_labelmap_ohif-2.dcm"), ci=True, mpr=True,
         mode="segmentation", tags=("ohif",)),
    Case("serve", "stored by `segbridge serve`: the demo's organs.nii.gz posted to "
         "/v1/segmentations (profile ohif), then the stored SEG opened in OHIF",
         _demo_file(), via_service=True, ci=True, tags=("ohif",)),
    Case("oblique", "`ohif` profile LABELMAP RLE on an oblique CT (direction cosines rotated "
         "about all three axes), 64x60x24",
         _phantom_case("oblique", (24, 60, 64), direction=rotation(0.25, -0.2, 0.35)),
         ci=True, tags=("ohif",)),
    Case("binary-native-64", "`ohif` profile BINARY, native 1-bit, Columns 64 (a multiple of "
         "8): the BINARY encoding the profile allows",
         _phantom_case("binary64", (24, 60, 64), type_="binary"), ci=True, tags=("ohif",)),
    Case("uneven-gaps", "`ohif` profile LABELMAP RLE on a CT with uneven slice gaps (2.5 mm, "
         "then 4 mm from slice 12)",
         _phantom_case("uneven", (24, 60, 64), gaps=[2.5] * 11 + [4.0] * 12), ci=True,
         tags=("ohif",)),
    Case("many-segments", "300 segments: the `ohif` profile writes two LABELMAP RLE series "
         "(segments 1-255 and 256-300, renumbered 1-45), both loaded in one viewport",
         _phantom_case("many", (40, 60, 64), labels_fn=_many_labels), ci=True, tags=("ohif",)),
    Case("many-segments-16bit", "300 segments in one LABELMAP, 16-bit, RLE (`archive` "
         "profile)", _phantom_case("many16", (40, 60, 64), profile="archive",
                                   compression="rle", labels_fn=_many_labels),
         expect="OHIF 3.13 keeps label maps in 8 bits: values above 255 land on other "
                "segments (segment 1 holds 244 voxels instead of 8), so the `ohif` profile "
                "splits at 255", expect_fail_match="voxels in OHIF"),
    Case("export-overlap", "made in OHIF: two segments on two labelmap layers (900 voxels "
         "overlap, Segment 1 touches every face of the volume), exported with OHIF's "
         "downloadSegmentation (BINARY)", _demo_file(), export="two", ci=True),
    Case("export-labelmap", "made in OHIF: two segments in one labelmap, exported with OHIF's "
         "downloadSegmentation (LABELMAP)", _demo_file(), export="one", ci=True),
    Case("labelmap-none", "LABELMAP (66.7), native 8-bit", _demo_encoded(
        "labelmap", "archive", "none")),
    Case("labelmap-jpegls", "LABELMAP (66.7), JPEG-LS lossless",
         _demo_encoded("labelmap", "archive", "jpegls")),
    Case("labelmap-jpeg2000", "LABELMAP (66.7), JPEG 2000 lossless",
         _demo_encoded("labelmap", "archive", "jpeg2000"), expect=_TRANSCODE,
         expect_fail_match="HTTP 500"),
    Case("binary-native-70", "BINARY, native 1-bit, Columns 70 (demo CT)",
         _demo_encoded("binary", "slicer", "none"), expect=_400, expect_fail_match="HTTP 400"),
    Case("binary-rle", "BINARY, 1-bit RLE", _demo_encoded("binary", "archive", "rle"),
         expect=_TRANSCODE, expect_fail_match="HTTP 500"),
    Case("fractional-none", "FRACTIONAL, native 8-bit",
         _demo_encoded("fractional", "archive", "none", segments=(4,))),
    Case("fractional-soft", "FRACTIONAL with soft fractions (the demo's tumour probability "
         "map, 0..1 in 255 steps), native 8-bit: OHIF keeps a label map, so the truth is the "
         "voxels with a fraction above 0",
         _demo_probability("none"),
         expect="OHIF 3.13 refuses soft fractions (console error 'Fractional segmentations are "
                "not yet supported'); `segbridge validate --profile ohif` flags them "
                "(OHIF-FRACTIONAL) and the `ohif` profile writes a thresholded type",
         expect_fail_match="Fractional segmentations are not yet supported"),
    Case("fractional-jpeg2000", "FRACTIONAL, JPEG 2000 lossless",
         _demo_encoded("fractional", "archive", "jpeg2000", segments=(4,)), expect=_TRANSCODE,
         expect_fail_match="HTTP 500"),
)}

CI_CASES = [c.name for c in CASES.values() if c.ci]
