"""Slide microscopy SEGs (issue 15): label images <-> SEG on VL WSI tiles, read back by
highdicom, tifffile and NumPy pixel for pixel; highdicom's SM SEGs read to highdicom's pixels;
pyramids equal to highdicom's; bad inputs one line, no output."""

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import tifffile
from conftest import DATA
from PIL import Image

from segbridge.errors import InvalidInputError, Report
from segbridge.model import Segment
from segbridge.slide.convert import convert_slide, downsampled, from_label_image
from segbridge.slide.model import SlideSegmentation
from segbridge.slide.reference import read_sm
from segbridge.slide.seg_read import read_slide_seg
from segbridge.slide.seg_write import write_slide_seg
from segbridge.slide.synthetic import sm_image
from segbridge.slide.tiff import TiffTiles, write_tiff
from segbridge.slide.tiles import ArrayTiles, nearest_index, read_all

HD = DATA / "highdicom" / "data" / "test_files"
HD_SM_SEGS = ["seg_image_sm_control.dcm", "seg_image_sm_numbers.dcm", "seg_image_sm_dots.dcm",
              "seg_image_sm_dots_tiled_full.dcm", "seg_image_sm_control_labelmap.dcm",
              "seg_image_sm_control_labelmap_palette_color.dcm"]
#: (rows, columns, tile): sizes that are not multiples of the tile size, and one that is
SIZES = [(1000, 770, 256), (300, 500, 128), (64, 64, 64)]
COMPRESSIONS = ["none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True)


def labels_for(rows, cols, seed=0, n=5):
    """Blobs of labels 1..n, some touching the bottom / right edge tiles, a few empty tiles."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((rows, cols), np.uint8)
    for v in range(1, n + 1):
        r, c = rng.integers(0, rows - 4), rng.integers(0, cols - 4)
        lab[r:r + rng.integers(3, max(4, rows // 4)), c:c + rng.integers(3, max(4, cols // 4))] = v
    lab[rows - 3:, cols - 5:] = n  # the last (partial) tile
    return lab


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sm")
    return {(r, c, t): sm_image(folder / f"sm_{r}x{c}_{t}.dcm", r, c, t, color=(t != 64))
            for r, c, t in SIZES}


def hd_total(path, numbers=None, combine=False):
    seg = hd.seg.segread(path)
    if combine:
        return seg.get_total_pixel_matrix(combine_segments=True)
    return seg.get_total_pixel_matrix(segment_numbers=numbers, rescale_fractional=False)


# ---------------------------------------------------------------------------------------------
# round trips, read back by highdicom
# ---------------------------------------------------------------------------------------------
CASES = [  # (kind, palette, tiled, compression): every type, both tilings, every codec
    ("LABELMAP", False, "sparse", "none"), ("LABELMAP", True, "sparse", "rle"),
    ("LABELMAP", False, "full", "jpegls"), ("LABELMAP", True, "full", "jpeg2000"),
    ("LABELMAP", False, "sparse", "deflate"), ("LABELMAP", False, "full", "deflate-frame"),
    ("BINARY", False, "sparse", "none"), ("BINARY", False, "full", "rle"),
    ("BINARY", False, "sparse", "jpeg2000"), ("BINARY", False, "full", "deflate"),
    ("BINARY", False, "sparse", "deflate-frame"),
    ("FRACTIONAL", False, "sparse", "jpegls"), ("FRACTIONAL", False, "full", "none"),
    ("FRACTIONAL", False, "sparse", "rle"), ("FRACTIONAL", False, "full", "jpeg2000"),
    ("FRACTIONAL", False, "sparse", "deflate"), ("FRACTIONAL", False, "full", "deflate-frame"),
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}t{s[2]}")
@pytest.mark.parametrize("kind,palette,tiled,comp", CASES,
                         ids=lambda v: str(v) if not isinstance(v, bool) else ("pal" if v else ""))
def test_roundtrip(tmp_path, slides, size, kind, palette, tiled, comp):
    rows, cols, tile = size
    if comp == "jpeg2000" and tile < 32 or comp == "jpegls" and tile < 16:
        pytest.fail("test sizes must suit every codec")
    ref = slides[size]
    lab = labels_for(rows, cols, seed=rows + tile)
    if kind == "FRACTIONAL":
        rng = np.random.default_rng(1)
        planes = np.stack([np.where(lab == v, rng.integers(1, 256, lab.shape), 0)
                           for v in (1, 2, 3)]).astype(np.uint8)
        planes[1, :5, :5] = 200  # overlaps segment 1 somewhere near the origin
        np.save(tmp_path / "in.npy", planes)
        src, expect = tmp_path / "in.npy", planes
    else:
        src = tmp_path / "in.tif"
        tifffile.imwrite(src, lab, tile=(16, 16) if rows % 2 else None)
        expect = lab
    seg_path = tmp_path / "out.dcm"
    _, written = convert_slide([src], seg_path, ref, seg_type=kind.lower(), tiled=tiled,
                               compression=comp, palette=palette)
    assert written == [seg_path]
    # segbridge reads it back, as TIFF and as NumPy
    back_tif, back_npy = tmp_path / "back.tif", tmp_path / "back.npy"
    convert_slide([seg_path], back_tif, None)
    convert_slide([seg_path], back_npy, None)
    assert np.array_equal(tifffile.imread(back_tif), expect)
    assert np.array_equal(np.load(back_npy), expect)
    ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
    assert ds.DimensionOrganizationType == ("TILED_FULL" if tiled == "full" else "TILED_SPARSE")
    assert ("PerFrameFunctionalGroupsSequence" in ds) == (tiled == "sparse")
    assert ds.SOPClassUID.endswith("66.7" if kind == "LABELMAP" else "66.4")
    assert ds.PhotometricInterpretation == ("PALETTE COLOR" if palette else "MONOCHROME2")
    ntiles = -(-rows // tile) * -(-cols // tile)
    if kind == "LABELMAP":
        planes_of = [lab != 0]
    elif kind == "BINARY":
        planes_of = [lab == v for v in range(1, int(lab.max()) + 1)]
    else:
        planes_of = list(planes != 0)
    if tiled == "full":
        assert ds.NumberOfFrames == ntiles * len(planes_of)
    else:  # empty tiles left out
        assert ds.NumberOfFrames == sum(_tiles_with(m, tile) for m in planes_of)
    if comp == "deflate-frame":
        return  # pydicom (so highdicom) does not know Deflated Image Frame Compression
    # highdicom reads the same pixels
    if kind == "LABELMAP":
        assert np.array_equal(hd_total(seg_path, combine=True), expect)
    elif kind == "BINARY":
        got = hd_total(seg_path, [1, 2, 3, 4, 5])
        assert np.array_equal(got, np.stack([lab == v for v in range(1, 6)], -1))
    else:
        got = hd_total(seg_path, [1, 2, 3])
        assert np.array_equal(got, np.moveaxis(planes, 0, -1))


def _tiles_with(mask, tile):
    return sum(bool(mask[r:r + tile, c:c + tile].any()) for r in range(0, mask.shape[0], tile)
               for c in range(0, mask.shape[1], tile))


def test_highdicom_reads_frames_at_their_positions(tmp_path, slides):
    """Per-frame Plane Position (Slide): highdicom's own writer puts the same tiles at the same
    row / column positions and slide coordinates (X/Y offsets) as segbridge."""
    ref = slides[(300, 500, 128)]
    lab = labels_for(300, 500, seed=7, n=2)
    ours = tmp_path / "ours.dcm"
    convert_slide_labels(lab, ref, ours, "binary", "sparse")
    src = pydicom.dcmread(ref)
    descs = [hd.seg.SegmentDescription(
        segment_number=i, segment_label=f"s{i}",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
        segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        algorithm_type="MANUAL") for i in (1, 2)]
    theirs = hd.seg.Segmentation([src], lab, "BINARY", descs, hd.UID(), 1, hd.UID(), 1, "m", "m",
                                 "1", "1", tile_pixel_array=True, omit_empty_frames=True,
                                 dimension_organization_type="TILED_SPARSE")

    def positions(ds):
        out = set()
        for fg in ds.PerFrameFunctionalGroupsSequence:
            p = fg.PlanePositionSlideSequence[0]
            out.add((int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
                     p.RowPositionInTotalImagePixelMatrix,
                     p.ColumnPositionInTotalImagePixelMatrix,
                     round(float(p.XOffsetInSlideCoordinateSystem), 6),
                     round(float(p.YOffsetInSlideCoordinateSystem), 6)))
        return out

    assert positions(pydicom.dcmread(ours)) == positions(theirs)
    # highdicom's frame access: every stored frame is the tile its position names
    h, ds = hd.seg.segread(ours), pydicom.dcmread(ours, stop_before_pixels=True)
    padded = np.zeros((384, 512), np.uint8)
    padded[:300, :500] = lab
    for k, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        p = fg.PlanePositionSlideSequence[0]
        r, c = p.RowPositionInTotalImagePixelMatrix - 1, p.ColumnPositionInTotalImagePixelMatrix - 1
        n = fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        assert np.array_equal(h.get_stored_frame(k + 1), padded[r:r + 128, c:c + 128] == n)


@pytest.mark.parametrize("name,source", [
    ("seg_image_sm_dots_tiled_full.dcm", "sm_image.dcm"),
    ("seg_image_sm_control_labelmap_palette_color.dcm", "sm_image_control.dcm")])
def test_rewrites_highdicom_sm_segs(tmp_path, name, source):
    """highdicom's SEG -> segbridge SEG on the same source image -> the same pixels."""
    out = tmp_path / "re.dcm"
    convert_slide([HD / name], out, HD / source, tiled="sparse", compression="rle",
                  palette="palette" in name)
    a, b = hd.seg.segread(HD / name), hd.seg.segread(out)
    numbers = [n for n in a.segment_numbers if n]
    assert np.array_equal(a.get_total_pixel_matrix(segment_numbers=numbers),
                          b.get_total_pixel_matrix(segment_numbers=numbers))
    assert b.PhotometricInterpretation == a.PhotometricInterpretation


def convert_slide_labels(lab, ref, out, kind, tiled, **kw):
    np.save(out.with_suffix(".npy"), lab)
    return convert_slide([out.with_suffix(".npy")], out, ref, seg_type=kind, tiled=tiled, **kw)


def test_sixteen_bit_labelmap(tmp_path, slides):
    ref = slides[(300, 500, 128)]
    lab = labels_for(300, 500, seed=3).astype(np.uint16)
    lab[lab == 2] = 300
    out = tmp_path / "l16.dcm"
    convert_slide_labels(lab, ref, out, "labelmap", "sparse", compression="rle")
    assert pydicom.dcmread(out, stop_before_pixels=True).BitsAllocated == 16
    assert np.array_equal(hd_total(out, combine=True), lab)
    assert np.array_equal(read_all(read_slide_seg(out).labels), lab)


def test_overlapping_binary_stack(tmp_path, slides):
    """Overlapping BINARY planes stay a stack (one plane per segment) through SEG and back."""
    ref = slides[(64, 64, 64)]
    planes = np.zeros((2, 64, 64), np.uint8)
    planes[0, 5:40, 5:40] = 1
    planes[1, 30:60, 30:60] = 1
    np.save(tmp_path / "in.npy", planes)
    convert_slide([tmp_path / "in.npy"], tmp_path / "o.dcm", ref)
    convert_slide([tmp_path / "o.dcm"], tmp_path / "back.npy", None)
    assert np.array_equal(np.load(tmp_path / "back.npy"), planes)
    assert np.array_equal(hd_total(tmp_path / "o.dcm", [1, 2]), np.moveaxis(planes, 0, -1))


@pytest.mark.parametrize("layout", ["series", "ome-zyx", "ome-cyx"])
def test_tiff_stacks_of_every_layout_keep_every_plane(tmp_path, slides, layout):
    """A TIFF with one series per page (a write call each), and OME-TIFF Z or C stacks (later
    pages are light TiffFrames): one segment per plane, none lost."""
    ref = slides[(64, 64, 64)]
    planes = (np.random.default_rng(3).random((3, 64, 64)) > 0.7).astype(np.uint8)
    src = tmp_path / ("in.tif" if layout == "series" else "in.ome.tif")
    if layout == "series":
        with tifffile.TiffWriter(src) as tw:
            for q in planes:
                tw.write(q, photometric="minisblack")
    else:
        tifffile.imwrite(src, planes, ome=True, photometric="minisblack",
                         metadata={"axes": "ZYX" if layout == "ome-zyx" else "CYX"})
    convert_slide([src], tmp_path / "o.dcm", ref)
    assert np.array_equal(hd_total(tmp_path / "o.dcm", [1, 2, 3]), np.moveaxis(planes, 0, -1))


def test_tiff_series_of_other_sizes_are_refused(tmp_path, slides):
    src = tmp_path / "two.tif"
    with tifffile.TiffWriter(src) as tw:
        tw.write(np.zeros((64, 64), np.uint8), photometric="minisblack")
        tw.write(np.zeros((32, 32), np.uint8), photometric="minisblack")
    res = run("convert", src, "-r", slides[(64, 64, 64)], "-o", tmp_path / "out.dcm")
    _clean_failure(res, tmp_path, "holds 2 image series")


# ---------------------------------------------------------------------------------------------
# highdicom's SM SEGs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HD_SM_SEGS)
def test_reads_highdicom_sm_segs(tmp_path, name):
    path = HD / name
    sseg = read_slide_seg(path)
    h = hd.seg.segread(path)
    assert sseg.grid.shape == (h.TotalPixelMatrixRows, h.TotalPixelMatrixColumns)
    assert sseg.numbers == [n for n in h.segment_numbers if n != 0]
    if sseg.labels is not None:
        assert np.array_equal(read_all(sseg.labels), h.get_total_pixel_matrix(
            combine_segments=True))
    else:
        ours = np.stack([read_all(sseg.masks[n]) for n in sseg.numbers], -1)
        assert ours.any()
        assert np.array_equal(ours, h.get_total_pixel_matrix(segment_numbers=sseg.numbers))
    # and writes it out as NumPy, then back to a SEG on its source image
    npy = tmp_path / "x.npy"
    convert_slide([path], npy, None)
    arr = np.load(npy)
    if sseg.labels is not None:
        assert np.array_equal(arr, h.get_total_pixel_matrix(combine_segments=True))


def test_highdicom_sm_seg_region_reads():
    """A region read decodes only the tiles it needs and equals highdicom's region."""
    path = HD / "seg_image_sm_control_labelmap.dcm"
    sseg = read_slide_seg(path)
    h = hd.seg.segread(path)
    got = sseg.labels.read(7, 33, 12, 41)
    want = h.get_total_pixel_matrix(row_start=8, row_end=34, column_start=13, column_end=42,
                                    combine_segments=True)
    assert np.array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# TIFF
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["tiled", "strips", "ome"])
def test_tiff_regions(tmp_path, layout):
    lab = labels_for(333, 517, seed=5, n=9)
    p = tmp_path / ("x.ome.tif" if layout == "ome" else "x.tif")
    kw = {"tile": (64, 48)} if layout in ("tiled", "ome") else {"rowsperstrip": 7}
    tifffile.imwrite(p, lab, compression="zlib", ome=layout == "ome", **kw)
    src = TiffTiles(p)
    assert src.shape == lab.shape
    for box in [(0, 333, 0, 517), (5, 70, 100, 101), (300, 333, 500, 517), (64, 128, 48, 96)]:
        r0, r1, c0, c1 = box
        assert np.array_equal(src.read(*box), lab[r0:r1, c0:c1])
    out = tmp_path / "w.tif"
    write_tiff(out, [ArrayTiles(lab)], tile=100)
    with tifffile.TiffFile(out) as t:
        assert t.pages[0].is_tiled and t.pages[0].tilewidth == 96
        assert np.array_equal(t.asarray(), lab)


# ---------------------------------------------------------------------------------------------
# pyramids
# ---------------------------------------------------------------------------------------------
def test_nearest_index_is_pillows():
    for n in [5, 7, 64, 99, 300, 333, 770, 1000, 1001]:
        for f in [2, 3, 4, 8, 1.5, 2.5]:
            out = int(n / f)
            if out < 1:
                continue
            row = np.arange(n, dtype=np.uint16)[None].repeat(2, 0)
            want = np.asarray(Image.fromarray(row).resize((out, 2), Image.Resampling.NEAREST))[0]
            assert np.array_equal(nearest_index(n, out), want), (n, f)


@pytest.mark.parametrize("kind", ["LABELMAP", "BINARY"])
def test_pyramid_equals_highdicoms(tmp_path, slides, kind):
    ref = slides[(1000, 770, 256)]
    lab = labels_for(1000, 770, seed=11)
    out = tmp_path / "p.dcm"
    _, written = convert_slide_labels(lab, ref, out, kind.lower(), "sparse", pyramid=[2, 4, 8])
    assert [p.name for p in written] == ["p.dcm", "p-2.dcm", "p-3.dcm", "p-4.dcm"]
    src = pydicom.dcmread(ref)
    descs = [hd.seg.SegmentDescription(
        segment_number=i, segment_label=f"s{i}",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
        segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        algorithm_type="MANUAL") for i in range(1, 6)]
    theirs = hd.seg.create_segmentation_pyramid(
        [src], [lab], kind, descs, hd.UID(), 1, "m", "m", "1", "1", downsample_factors=[2, 4, 8])
    series = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in written}
    assert len(series) == 1
    for mine, level in zip(written, theirs, strict=True):
        h = hd.seg.segread(mine)
        assert (h.TotalPixelMatrixRows, h.TotalPixelMatrixColumns) == \
            (level.TotalPixelMatrixRows, level.TotalPixelMatrixColumns)
        sp = h.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        their_sp = level.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert np.allclose([float(v) for v in sp], [float(v) for v in their_sp], rtol=1e-6)
        theirs_px = level.get_total_pixel_matrix(combine_segments=True)
        assert np.array_equal(h.get_total_pixel_matrix(combine_segments=True), theirs_px)
    # each level is the one below by the documented rule (nearest_index)
    sseg = read_slide_seg(written[0])
    for mine, f in zip(written[1:], [2, 4, 8], strict=True):
        level = read_all(read_slide_seg(mine).labels if kind == "LABELMAP" else
                         _combined(read_slide_seg(mine)))
        want = read_all(downsampled(sseg, f).labels) if kind == "LABELMAP" else \
            lab[np.ix_(nearest_index(1000, int(1000 / f)), nearest_index(770, int(770 / f)))]
        assert np.array_equal(level, want)


def _combined(sseg):
    from segbridge.slide.convert import output_planes

    (plane,) = output_planes(sseg, Report())
    return plane


# ---------------------------------------------------------------------------------------------
# geometry, validation by dciodvfy
# ---------------------------------------------------------------------------------------------
def test_slide_coordinates(slides):
    g = read_sm(slides[(300, 500, 128)])
    assert (g.tiles_down, g.tiles_across) == (3, 4)
    assert g.tile_position(2, 3) == (257, 385)
    # ImageOrientationSlide (0,-1,0,-1,0,0): columns run along -Y, rows along -X
    x, y, _ = g.slide_xyz(10, 20)
    assert np.isclose(x, 20.0 - 10 * 0.0005) and np.isclose(y, 40.0 - 20 * 0.0005)
    assert g.tile_of_position(129, 1) == (1, 0)
    with pytest.raises(InvalidInputError):
        g.tile_of_position(130, 1)


#: dciodvfy's 2022 tables predate TILED_FULL without per-frame groups (Sup 222): it asks for
#: per-frame / volume functional groups; highdicom's TILED_FULL SEGs get the same findings
DCIODVFY_TILED_FULL = ("PerFrameFunctionalGroupsSequence", "PlaneOrientationSequence",
                       "PlanePositionSequence", "PlanePositionSlideSequence",
                       "SegmentIdentificationSequence")


@pytest.mark.parametrize("kind,tiled", [("binary", "sparse"), ("binary", "full"),
                                        ("fractional", "sparse")])
def test_dciodvfy(tmp_path, slides, kind, tiled):
    ref = slides[(300, 500, 128)]
    lab = labels_for(300, 500, seed=2)
    if kind == "fractional":
        lab = np.stack([(lab == 1) * 255, (lab == 2) * 128]).astype(np.uint8)
    out = tmp_path / "v.dcm"
    convert_slide_labels(lab, ref, out, kind, tiled)
    res = subprocess.run(["dciodvfy", "-new", str(out)], capture_output=True, text=True)
    errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
    if tiled == "full":
        errors = [e for e in errors if not any(k in e for k in DCIODVFY_TILED_FULL)]
    assert errors == []


# ---------------------------------------------------------------------------------------------
# bad input: one line, non-zero exit, no output
# ---------------------------------------------------------------------------------------------
def _clean_failure(res, folder: Path, needle: str):
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert needle in err, err
    assert not [p for p in folder.iterdir() if p.name.startswith("out") or ".tmp" in p.name]


def test_tiff_of_another_size(tmp_path, slides):
    tifffile.imwrite(tmp_path / "in.tif", np.ones((299, 500), np.uint8))
    res = run("convert", tmp_path / "in.tif", "-r", slides[(300, 500, 128)],
              "-o", tmp_path / "out.dcm")
    _clean_failure(res, tmp_path, "total pixel matrix is 300 x 500")


def test_seg_of_another_slide(tmp_path, slides):
    np.save(tmp_path / "in.npy", labels_for(64, 64))
    assert run("convert", tmp_path / "in.npy", "-r", slides[(64, 64, 64)],
               "-o", tmp_path / "a.dcm").returncode == 0
    other = sm_image(tmp_path / "other.dcm", 64, 64, 64, color=False)
    res = run("convert", tmp_path / "a.dcm", "-r", other, "-o", tmp_path / "out.dcm")
    _clean_failure(res, tmp_path, "not the reference slide")


def test_label_image_without_reference(tmp_path):
    np.save(tmp_path / "in.npy", labels_for(64, 64))
    res = run("convert", tmp_path / "in.npy", "-o", tmp_path / "out.dcm")
    _clean_failure(res, tmp_path, "needs --reference")


def test_cli_roundtrip_with_pyramid(tmp_path, slides):
    lab = labels_for(300, 500, seed=9)
    tifffile.imwrite(tmp_path / "in.tif", lab, tile=(128, 128))
    res = run("convert", tmp_path / "in.tif", "-r", slides[(300, 500, 128)], "-o",
              tmp_path / "s.dcm", "--type", "labelmap", "--tiled", "full", "--compression",
              "rle", "--pyramid", "2,4", "--palette")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.glob("s*.dcm")) == ["s-2.dcm", "s-3.dcm", "s.dcm"]
    res = run("convert", tmp_path / "s.dcm", "-o", tmp_path / "back.tif")
    assert res.returncode == 0, res.stderr
    assert np.array_equal(tifffile.imread(tmp_path / "back.tif"), lab)
    # a smaller pyramid over the same name: the earlier run's s-3.dcm is said, not mixed in
    res = run("convert", tmp_path / "in.tif", "-r", slides[(300, 500, 128)], "-o",
              tmp_path / "s.dcm", "--pyramid", "2")
    assert res.returncode == 0 and "s-3.dcm beside s.dcm belong to an earlier run" in res.stderr


def test_slide_segmentation_checks_shape(slides):
    g = read_sm(slides[(64, 64, 64)])
    with pytest.raises(InvalidInputError, match="total pixel matrix"):
        SlideSegmentation(g, [Segment(1)], "LABELMAP", labels=ArrayTiles(np.zeros((63, 64),
                                                                                   np.uint8)))


def test_write_is_atomic(tmp_path, slides):
    """A failing write leaves nothing behind (jpegls cannot hold 1-bit frames)."""
    g = read_sm(slides[(64, 64, 64)])
    sseg = from_label_image(_npy(tmp_path, labels_for(64, 64)), g, "binary", Report())
    with pytest.raises(Exception, match="JPEG-LS"):
        write_slide_seg(sseg, tmp_path / "x.dcm", compression="jpegls")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".dcm" or ".tmp" in p.name]


def _npy(folder, arr):
    p = folder / "a.npy"
    np.save(p, arr)
    return p


# ---------------------------------------------------------------------------------------------
# validate: the tiled rules, each with a file that breaks it
# ---------------------------------------------------------------------------------------------
def _good(tmp_path, slides, tiled, kind="labelmap"):
    out = tmp_path / f"good_{tiled}_{kind}.dcm"
    convert_slide_labels(labels_for(300, 500, seed=4), slides[(300, 500, 128)], out, kind, tiled)
    return out


def _ids(path, severity="error"):
    from segbridge.validate import validate

    return {f.rule for f in validate(path).findings if f.severity == severity}


def test_validate_clean(tmp_path, slides):
    for tiled in ("sparse", "full"):
        for kind in ("labelmap", "binary"):
            from segbridge.validate import validate

            res = validate(_good(tmp_path, slides, tiled, kind))
            assert res.ok and not res.warnings, [f.line() for f in res.findings]
    for name in ("seg_image_sm_control_labelmap.dcm", "seg_image_sm_dots_tiled_full.dcm",
                 "seg_image_sm_control_labelmap_palette_color.dcm"):
        assert not {r for r in _ids(HD / name) | _ids(HD / name, "warning")
                    if r.startswith("SLIDE-")}


def _broken(tmp_path, src, change):
    ds = pydicom.dcmread(src)
    change(ds)
    out = tmp_path / "broken.dcm"
    ds.save_as(out)
    return out


def _pos(ds, k):
    return ds.PerFrameFunctionalGroupsSequence[k].PlanePositionSlideSequence[0]


BREAKING = [
    ("SLIDE-TILE-POSITIONS", "error", "sparse",
     lambda ds: setattr(_pos(ds, 0), "RowPositionInTotalImagePixelMatrix", 2)),
    ("SLIDE-TILE-POSITIONS", "error", "sparse",
     lambda ds: setattr(_pos(ds, 0), "ColumnPositionInTotalImagePixelMatrix", 513)),
    ("SLIDE-TILE-POSITIONS", "error", "sparse", lambda ds: (
        setattr(_pos(ds, 1), "RowPositionInTotalImagePixelMatrix",
                _pos(ds, 0).RowPositionInTotalImagePixelMatrix),
        setattr(_pos(ds, 1), "ColumnPositionInTotalImagePixelMatrix",
                _pos(ds, 0).ColumnPositionInTotalImagePixelMatrix))),
    ("SLIDE-COORDINATES", "warning", "sparse", lambda ds: setattr(
        _pos(ds, 0), "XOffsetInSlideCoordinateSystem",
        float(_pos(ds, 0).XOffsetInSlideCoordinateSystem) + 0.5)),
    ("SLIDE-TILE-GRID", "error", "sparse",
     lambda ds: setattr(ds, "DimensionOrganizationType", "3D")),
    ("SLIDE-TILE-GRID", "error", "full", lambda ds: delattr(ds, "ImageOrientationSlide")),
    ("SLIDE-TILE-GRID", "error", "full",
     lambda ds: delattr(ds, "TotalPixelMatrixOriginSequence")),
    ("SLIDE-TILED-FULL-FRAMES", "error", "full", lambda ds: (
        setattr(ds, "NumberOfFrames", int(ds.NumberOfFrames) - 1),
        setattr(ds, "PixelData", ds.PixelData[:-128 * 128]))),
]
#: the slide rules these fixtures break (test_validate checks every rule has a case)
SLIDE_RULES_TESTED = sorted({c[0] for c in BREAKING} | {"SLIDE-REFERENCE", "SLIDE-REFERENCE-ORIGIN"})
#: (SLIDE-REFERENCE-ORIGIN: test_slide_geojson_io.test_measure_options_and_a_seg_off_its_image)


def test_validate_against_the_slide(tmp_path, slides):
    """SLIDE-REFERENCE: clean on its own SM image; another slide (other instance, frame of
    reference and size) is three errors."""
    from segbridge.validate import validate

    good = _good(tmp_path, slides, "sparse")
    res = validate(good, reference=slides[(300, 500, 128)])
    assert res.ok, [f.line() for f in res.findings]
    res = validate(good, reference=slides[(1000, 770, 256)])
    hits = [f for f in res.findings if f.rule == "SLIDE-REFERENCE"]
    assert {f.where for f in hits} == {"ReferencedSeriesSequence", "FrameOfReferenceUID",
                                       "TotalPixelMatrixRows"}
    assert all(f.severity == "error" and f.hint and f.source for f in hits)


@pytest.mark.parametrize("rule,severity,tiled,change", BREAKING,
                         ids=lambda v: v if isinstance(v, str) else "")
def test_validate_breaking_fixtures(tmp_path, slides, rule, severity, tiled, change):
    from segbridge.validate import validate

    good = _good(tmp_path, slides, tiled)
    assert rule not in _ids(good, severity)
    broken = _broken(tmp_path, good, change)
    hits = [f for f in validate(broken).findings if f.rule == rule]
    assert hits and all(h.severity == severity and h.hint and h.source and h.message
                        for h in hits)


def test_png_preview_over_the_slide(tmp_path):
    """The preview samples the slide image and the labels by the pyramid rule; inside a
    segment the colour is blended at half opacity, outside the image shows unchanged."""
    ref = sm_image(tmp_path / "sm.dcm", 300, 500, 128, color=True, seed=3)
    lab = np.zeros((300, 500), np.uint8)
    lab[100:200, 150:350] = 1
    np.save(tmp_path / "l.npy", lab)
    convert_slide([tmp_path / "l.npy"], tmp_path / "s.dcm", ref)
    res = run("convert", tmp_path / "s.dcm", "-r", ref, "-o", tmp_path / "p.png")
    assert res.returncode == 0, res.stderr
    png = np.asarray(Image.open(tmp_path / "p.png"))
    assert png.shape[1:] == (500, 3) and png.shape[0] > 300  # the legend below
    png = png[:300]
    image = pydicom.dcmread(ref).pixel_array  # (frames, 128, 128, 3), TILED_FULL row-major
    full = np.zeros((384, 512, 3), np.uint8)
    for k in range(image.shape[0]):
        i, j = divmod(k, 4)
        full[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = image[k]
    full = full[:300, :500]
    assert np.array_equal(png[10:90, 10:140], full[10:90, 10:140])
    color = np.array(read_slide_seg(tmp_path / "s.dcm").segments[0].color, float)
    inner = 0.5 * full[120:180, 170:330].astype(float) + 0.5 * color
    assert np.abs(png[120:180, 170:330] - inner).max() <= 1
    assert np.abs(png[100, 200].astype(float) - color).max() <= 1  # outline


@pytest.mark.parametrize("make,needle", [
    (lambda p: tifffile.imwrite(p, np.zeros((300, 500, 3), np.uint8)), "one sample per pixel"),
    (lambda p: tifffile.imwrite(p, np.zeros((300, 500), np.float32)), "unsigned integers"),
    (lambda p: p.write_bytes(b"garbage"), "not a readable TIFF"),
    (lambda p: tifffile.imwrite(p, np.zeros((300, 500), np.uint8)), "label image is empty"),
], ids=["rgb", "float", "garbage", "empty"])
def test_bad_label_images(tmp_path, slides, make, needle):
    make(tmp_path / "in.tif")
    res = run("convert", tmp_path / "in.tif", "-r", slides[(300, 500, 128)],
              "-o", tmp_path / "out.dcm")
    _clean_failure(res, tmp_path, needle)


def test_truncated_slide_seg(tmp_path, slides):
    np.save(tmp_path / "in.npy", labels_for(300, 500))
    convert_slide([tmp_path / "in.npy"], tmp_path / "a.dcm", slides[(300, 500, 128)],
                  compression="rle")
    data = (tmp_path / "a.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-100])
    res = run("convert", tmp_path / "cut.dcm", "-o", tmp_path / "out.npy")
    _clean_failure(res, tmp_path, "truncated")


def test_info_on_a_slide_seg(tmp_path, slides):
    import json

    lab = labels_for(300, 500, seed=6)
    out = tmp_path / "i.dcm"
    convert_slide_labels(lab, slides[(300, 500, 128)], out, "labelmap", "sparse")
    res = run("info", out, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["slide"] and data["total_pixel_matrix"] == [300, 500]
    assert data["tile"] == [128, 128] and data["dimension_organization"] == "TILED_SPARSE"
    assert {s["number"]: s["pixels"] for s in data["segments"]} == {
        int(v): int((lab == v).sum()) for v in np.unique(lab) if v}
    res = run("info", out)
    assert res.returncode == 0 and "total pixel matrix 300 x 500" in res.stdout


def test_ome_tiff_output(tmp_path, slides):
    lab = labels_for(300, 500, seed=8)
    out = tmp_path / "s.dcm"
    convert_slide_labels(lab, slides[(300, 500, 128)], out, "labelmap", "full")
    convert_slide([out], tmp_path / "back.ome.tif", None)
    with tifffile.TiffFile(tmp_path / "back.ome.tif") as t:
        assert t.is_ome and np.array_equal(t.asarray(), lab)
        assert 'PhysicalSizeX="0.5"' in t.ome_metadata
    # and it is read back as an input, tile by tile
    convert_slide([tmp_path / "back.ome.tif"], tmp_path / "again.dcm", slides[(300, 500, 128)])
    assert np.array_equal(hd_total(tmp_path / "again.dcm", combine=True), lab)


def test_palette_colours_round_trip(tmp_path, slides):
    """PALETTE COLOR: the segment colours become the LUT (8-bit entries, background black),
    highdicom applies it to the same RGB, and segbridge reads them back as segment colours."""
    g = read_sm(slides[(300, 500, 128)])
    lab = labels_for(300, 500, seed=12, n=3).astype(np.uint16)
    lab[lab == 3] = 700  # 16-bit label values
    segs = [Segment(1, color=(255, 0, 0)), Segment(2, color=(0, 128, 255)),
            Segment(700, color=(10, 200, 30))]
    out = tmp_path / "p.dcm"
    write_slide_seg(SlideSegmentation(g, segs, "LABELMAP", labels=ArrayTiles(lab)), out,
                    palette=True, compression="rle")
    h = hd.seg.segread(out)
    rgb = h.get_total_pixel_matrix(combine_segments=True, apply_palette_color_lut=True)
    for s in segs:
        assert np.array_equal(rgb[lab == s.number][0], s.color)
    assert np.array_equal(rgb[lab == 0][0], [0, 0, 0])
    assert {s.number: s.color for s in read_slide_seg(out).segments} == \
        {s.number: s.color for s in segs}


@pytest.mark.parametrize("how", ["factors", "levels"])
def test_pyramid_on_the_slide_levels(tmp_path, how):
    """A reference folder with the slide's levels: each SEG level is written on (and
    references) the image level of its size, with highdicom's multi-source pixels."""
    from segbridge.slide.synthetic import sm_pyramid

    folder = tmp_path / "slide"
    folder.mkdir()
    images = sm_pyramid(folder, 1000, 770, 256, factors=(1, 2, 4), color=False)
    lab = labels_for(1000, 770, seed=13)
    np.save(tmp_path / "l.npy", lab)
    _, written = convert_slide([tmp_path / "l.npy"], tmp_path / "p.dcm", folder,
                               pyramid=[2, 4] if how == "factors" else "levels")
    assert len(written) == 3
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in images]
    descs = [hd.seg.SegmentDescription(
        segment_number=i, segment_label=f"s{i}",
        segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
        segmented_property_type=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
        algorithm_type="MANUAL") for i in range(1, 6)]
    theirs = hd.seg.create_segmentation_pyramid(sources, [lab], "LABELMAP", descs, hd.UID(), 1,
                                                "m", "m", "1", "1")
    for mine, level, src in zip(written, theirs, sources, strict=True):
        ds = pydicom.dcmread(mine, stop_before_pixels=True)
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert (ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns) == \
            (src.TotalPixelMatrixRows, src.TotalPixelMatrixColumns)
        assert np.array_equal(hd_total(mine, combine=True),
                              level.get_total_pixel_matrix(combine_segments=True))


def test_labels_name_the_segments(tmp_path, slides):
    """--labels (CSV: value, name, codes, colour) names and codes slide segments too."""
    (tmp_path / "labels.csv").write_text(
        "value,name,category,type,color\n"
        "1,Tumor,SCT^49755003^Morphologically Altered Structure,SCT^108369006^Neoplasm,255 0 0\n"
        "3,Stroma,SCT^91723000^Anatomical Structure,SCT^4421005^Cell,0 255 0\n")
    lab = np.zeros((300, 500), np.uint8)
    lab[10:60, 10:60], lab[100:160, 100:160] = 1, 3
    np.save(tmp_path / "l.npy", lab)
    res = run("convert", tmp_path / "l.npy", "-r", slides[(300, 500, 128)], "-o",
              tmp_path / "s.dcm", "--labels", tmp_path / "labels.csv", "--type", "binary")
    assert res.returncode == 0, res.stderr
    ds = pydicom.dcmread(tmp_path / "s.dcm", stop_before_pixels=True)
    items = {int(i.SegmentNumber): i for i in ds.SegmentSequence}
    assert items[1].SegmentLabel == "Tumor" and items[2].SegmentLabel == "Stroma"
    assert items[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "4421005"
    seg = read_slide_seg(tmp_path / "s.dcm")
    assert seg.segment(1).color == (255, 0, 0)
    assert np.array_equal(read_all(seg.masks[2]), (lab == 3).astype(np.uint8))


def test_regions_decode_only_their_tiles(tmp_path, slides):
    """A region read decodes only the TIFF tiles / SEG frames it overlaps."""
    lab = labels_for(333, 517, seed=5, n=9)
    tifffile.imwrite(tmp_path / "t.tif", lab, tile=(64, 48), compression="zlib")
    src = TiffTiles(tmp_path / "t.tif")
    src.read(5, 70, 100, 101)  # tile rows 0-1, tile column 2
    assert sorted(src._cache) == [2, 2 + src._across]
    np.save(tmp_path / "l.npy", labels_for(300, 500, seed=1))
    convert_slide([tmp_path / "l.npy"], tmp_path / "s.dcm", slides[(300, 500, 128)],
                  tiled="full")
    seg = read_slide_seg(tmp_path / "s.dcm")
    decoded = []
    frames = seg.labels._frames
    original = frames.frame
    frames.frame = lambda k: decoded.append(k) or original(k)
    seg.labels.read(130, 140, 260, 300)  # tile (1, 2) only
    assert decoded == [1 * 4 + 2]
