"""Slide image pixels tile by tile, local and over DICOMweb (a real Orthanc), and slide previews.

Oracle: pydicom's own decoding of every frame, stitched into the total pixel matrix here by
the frame order (TILED_FULL) or Plane Position (Slide) (TILED_SPARSE). The DICOMweb tests count
the frames segbridge asks the server for: a region or a preview must fetch only the tiles it
touches, on one level, never a whole instance.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import HD
from PIL import Image
from test_web import auth_env, creds, pacs  # noqa: F401 (the real Orthanc fixture)

from segbridge.errors import InvalidInputError
from segbridge.slide.image import open_slide
from segbridge.slide.synthetic import sm_image, sm_pyramid
from segbridge.web.transfer import pull, push


def stitched(path: Path) -> np.ndarray:
    """The total pixel matrix of an SM file from pydicom's decoding of every frame."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    if int(ds.NumberOfFrames) == 1:
        frames = frames[None]
    if frames.ndim == 3:
        frames = frames[..., None]
    rows, cols = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
    tr, tc = int(ds.Rows), int(ds.Columns)
    background = 0 if ds.PhotometricInterpretation == "MONOCHROME2" else 255
    out = np.full((-(-rows // tr) * tr, -(-cols // tc) * tc, frames.shape[-1]), background,
                  np.uint8)
    across = -(-cols // tc)
    if ds.get("DimensionOrganizationType") == "TILED_FULL":
        places = [((k // across) * tr, (k % across) * tc) for k in range(len(frames))]
    else:
        places = [(int(f.PlanePositionSlideSequence[0].RowPositionInTotalImagePixelMatrix) - 1,
                   int(f.PlanePositionSlideSequence[0].ColumnPositionInTotalImagePixelMatrix)
                   - 1) for f in ds.PerFrameFunctionalGroupsSequence]
    for (r, c), tile in zip(places, frames, strict=True):
        out[r:r + tr, c:c + tc] = tile
    return out[:rows, :cols]


def sparse_copy(src: Path, dst: Path, keep_every: int = 3) -> Path:
    """A TILED_SPARSE version of a TILED_FULL SM file holding every keep_every-th tile,
    the kept frames in reverse order (so the position, not the order, places them)."""
    ds = pydicom.dcmread(src)
    rows, cols = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
    tr, tc = int(ds.Rows), int(ds.Columns)
    across = -(-cols // tc)
    frames = ds.pixel_array
    if int(ds.NumberOfFrames) == 1:
        frames = frames[None]
    kept = list(range(0, len(frames), keep_every))[::-1]
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    items = []
    for k in kept:
        pos = Dataset()
        pos.RowPositionInTotalImagePixelMatrix = (k // across) * tr + 1
        pos.ColumnPositionInTotalImagePixelMatrix = (k % across) * tc + 1
        pos.XOffsetInSlideCoordinateSystem = "0"
        pos.YOffsetInSlideCoordinateSystem = "0"
        pos.ZOffsetInSlideCoordinateSystem = "0"
        item = Dataset()
        item.PlanePositionSlideSequence = Sequence([pos])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    ds.DimensionOrganizationType = "TILED_SPARSE"
    ds.NumberOfFrames = len(kept)
    ds.PixelData = np.ascontiguousarray(frames[kept]).tobytes()
    assert rows and cols
    ds.save_as(dst, enforce_file_format=True)
    return dst


@pytest.mark.parametrize("name", ["sm_image.dcm", "sm_image_jpegls.dcm",
                                  "sm_image_grayscale.dcm", "sm_image_jpegls_nobot.dcm"])
def test_highdicom_slides_read_tile_by_tile_as_pydicom_decodes_them(name):
    path = HD / name
    truth = stitched(path)
    level = open_slide(path).levels[0]
    assert level.grid.shape == truth.shape[:2]
    np.testing.assert_array_equal(level.read(0, 10**6, 0, 10**6), truth[:, :, :level.samples])
    rng = np.random.default_rng(0)
    for _ in range(20):
        r0, c0 = rng.integers(0, truth.shape[0], 2)
        r1, c1 = r0 + rng.integers(1, 30, 2)
        np.testing.assert_array_equal(level.read(r0, r1, c0, c1),
                                      truth[r0:r1, c0:c1, :level.samples])


@pytest.mark.parametrize("rows,cols,tile", [(300, 470, 128), (64, 64, 64), (129, 257, 64)])
def test_synthetic_levels_full_and_sparse(tmp_path, rows, cols, tile):
    """Sizes that are and are not multiples of the tile; TILED_FULL and TILED_SPARSE
    (frames in reverse order, two tiles of three missing: background there)."""
    full = sm_image(tmp_path / "full.dcm", rows, cols, tile, seed=rows)
    sparse = sparse_copy(full, tmp_path / "sparse.dcm")
    for path in (full, sparse):
        truth = stitched(path)
        level = open_slide(path).levels[0]
        np.testing.assert_array_equal(level.read(0, rows, 0, cols), truth)
        np.testing.assert_array_equal(level.read(tile - 3, tile + 5, 1, cols - 1),
                                      truth[tile - 3:tile + 5, 1:cols - 1])
    if rows > tile or cols > tile:  # the sparse copy really has holes (pixels are < 255)
        assert (stitched(sparse) == 255).all(axis=2).any()


def test_a_folder_is_one_slide_and_levels_are_ordered(tmp_path):
    (tmp_path / "slide").mkdir()
    files = sm_pyramid(tmp_path / "slide", 400, 300, 64, factors=(1, 2, 4))
    slide = open_slide(tmp_path / "slide")
    assert [lv.grid.shape for lv in slide.levels] == [(400, 300), (200, 150), (100, 75)]
    assert slide.level_for(120).grid.shape == (200, 150)
    assert slide.level_for(5000).grid.shape == (400, 300)
    assert len(files) == 3
    other = sm_image(tmp_path / "slide" / "other.dcm", 50, 50, 64)  # another series
    with pytest.raises(InvalidInputError, match="2 slide series"):
        open_slide(tmp_path / "slide")
    other.unlink()
    with pytest.raises(InvalidInputError, match="no VL Whole Slide"):
        open_slide(HD / "seg_image_sm_control.dcm")


# --- DICOMweb ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def remote_slide(pacs, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("slide")
    files = sm_pyramid(folder, 700, 520, 128, factors=(1, 2, 4), seed=7)
    result = push(files, pacs.url, options=creds(pacs))
    assert result.ok and len(result.stored) == 3
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    url = f"{pacs.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    return url, files


def test_remote_region_fetches_only_its_tiles(pacs, remote_slide):  # noqa: F811
    url, files = remote_slide
    slide = open_slide(url, options=creds(pacs))
    assert [lv.grid.shape for lv in slide.levels] == [(700, 520), (350, 260), (175, 130)]
    base = slide.levels[0]
    truth = stitched(files[0])
    region = base.read(100, 300, 200, 260)  # tile rows 0-2, tile columns 1-2: 6 tiles
    np.testing.assert_array_equal(region, truth[100:300, 200:260])
    assert base.fetch.frames == 6 and base.fetch.requests == 1
    assert all(lv.fetch.frames == 0 for lv in slide.levels[1:])
    for lv, f in zip(slide.levels, files, strict=True):
        np.testing.assert_array_equal(lv.read(0, 10**6, 0, 10**6), stitched(f))


def test_pull_brings_a_slide_series_back_whole(pacs, remote_slide, tmp_path):  # noqa: F811
    url, files = remote_slide
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    result = pull(pacs.url, str(ds.StudyInstanceUID), tmp_path / "pulled",
                  series=str(ds.SeriesInstanceUID), options=creds(pacs))
    got = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in result.fetched}
    assert len(got) == 3
    for f in files:
        a = pydicom.dcmread(f)
        b = pydicom.dcmread(got[str(a.SOPInstanceUID)])
        assert a.PixelData == b.PixelData
        assert (a.TotalPixelMatrixRows, a.TotalPixelMatrixColumns, a.NumberOfFrames) == \
            (b.TotalPixelMatrixRows, b.TotalPixelMatrixColumns, b.NumberOfFrames)
    local = open_slide(tmp_path / "pulled")
    assert [lv.grid.shape for lv in local.levels] == [(700, 520), (350, 260), (175, 130)]


def test_preview_over_a_remote_slide_uses_one_small_level(pacs, remote_slide, tmp_path):  # noqa: F811
    """A label image on the base level drawn over the slide: a preview of at most 200 px keeps
    every 4th pixel (175 x 130), takes the smallest level that still has that size (the 4x
    level, 175 x 130), fetches its 4 tiles only, and puts the segment where it is."""
    from segbridge.slide.preview import slide_preview
    from segbridge.slide.reference import read_sm

    url, files = remote_slide
    grid = read_sm(files[0])
    labels = np.zeros(grid.shape, np.uint8)
    labels[350:700, :260] = 1  # bottom left quarter
    from segbridge.model import Segment
    from segbridge.slide.model import SlideSegmentation
    from segbridge.slide.tiles import ArrayTiles

    sseg = SlideSegmentation(grid, [Segment(1, "tumour", color=(0, 0, 255))],
                             labels=ArrayTiles(labels))
    slide = open_slide(url, options=creds(pacs))
    out = slide_preview(sseg, tmp_path / "p.png", image=slide, max_side=200)
    assert [lv.fetch.frames for lv in slide.levels] == [0, 0, 4]  # 2 x 2 tiles of level 3
    png = np.asarray(Image.open(out).convert("RGB")).astype(int)
    step = 4  # ceil(700 / 200)
    h, w = -(-700 // step), -(-520 // step)
    inside, outside = png[h - 20, 20], png[20, w - 20]
    assert inside[2] > inside[0] + 40  # blue tint over the segment
    assert abs(int(outside[0]) - int(outside[2])) < 80  # the slide's noise, untinted
    # the image under the preview is the slide's 4x level sampled at the same positions
    level3 = stitched(files[2])
    rows = np.minimum(((np.arange(0, 700, step) + 0.5) * 175 / 700).astype(int), 174)
    cols = np.minimum(((np.arange(0, 520, step) + 0.5) * 130 / 520).astype(int), 129)
    np.testing.assert_array_equal(png[5, w // 2:w - 5], level3[rows[5]][cols[w // 2:w - 5]])


def test_render_cli_draws_a_slide_seg_on_its_remote_slide(pacs, remote_slide, tmp_path):  # noqa: F811
    url, files = remote_slide
    from segbridge.slide.reference import read_sm

    grid = read_sm(files[0])
    labels = np.zeros(grid.shape, np.uint8)
    labels[:200, :200] = 1
    labels[400:, 300:] = 2
    np.save(tmp_path / "labels.npy", labels)
    seg = tmp_path / "seg.dcm"
    r = subprocess.run([sys.executable, "-m", "segbridge", "convert", tmp_path / "labels.npy",
                        "--reference", files[0], "-o", seg], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = auth_env(pacs)
    import os

    r = subprocess.run([sys.executable, "-m", "segbridge", "render", seg, "--image", url,
                        "-o", tmp_path / "p.png"], capture_output=True, text=True,
                       env={**{k: v for k, v in os.environ.items()
                               if not k.startswith("SEGBRIDGE_")}, **env})
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "p.png").size[0] >= 260
    r = subprocess.run([sys.executable, "-m", "segbridge", "render", seg, "--image",
                        HD / "sm_image.dcm", "-o", tmp_path / "q.png"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "another slide" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "q.png").exists()


def test_palette_colour_label_maps_give_their_segments_the_palette_colours(tmp_path):
    """highdicom's PALETTE COLOR label map has no CIELab per segment: each segment's colour is
    its entry of the Palette Color LUT (read here from the raw 8-bit tables); a palette SEG
    segbridge writes gives back the colours it was given."""
    from segbridge.model import Segment
    from segbridge.slide.convert import write_slide
    from segbridge.slide.model import SlideSegmentation
    from segbridge.slide.reference import read_sm
    from segbridge.slide.seg_read import read_slide_seg
    from segbridge.slide.tiles import ArrayTiles

    path = HD / "seg_image_sm_control_labelmap_palette_color.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    tables = [np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, np.uint8)
              for c in ("Red", "Green", "Blue")]
    sseg = read_slide_seg(path)
    assert len(sseg.segments) == 20
    for s in sseg.segments:
        assert s.color == tuple(int(t[s.number - first]) for t in tables), s.number
    ref = sm_image(tmp_path / "sm.dcm", 100, 90, 64)
    grid = read_sm(ref)
    labels = np.zeros(grid.shape, np.uint8)
    labels[10:40, 10:40], labels[50:90, 20:80] = 1, 2
    want = {1: (250, 10, 20), 2: (5, 200, 60)}
    made = SlideSegmentation(grid, [Segment(n, f"s{n}", color=c) for n, c in want.items()],
                             labels=ArrayTiles(labels))
    write_slide(made, tmp_path / "p.dcm", palette=True)
    back = read_slide_seg(tmp_path / "p.dcm")
    got = {s.number: s.color for s in back.segments}
    for n, c in want.items():  # via CIELab when written there, else via the palette
        assert max(abs(a - b) for a, b in zip(got[n], c, strict=True)) <= 1, (n, got[n])


def test_convert_places_a_label_image_on_the_level_of_a_remote_slide(pacs, remote_slide,  # noqa: F811
                                                                     tmp_path):
    """--reference a DICOMweb slide series: the label image's size picks the level (metadata
    only); the SEG references that level's instance and highdicom reads the same pixels."""
    import os

    import highdicom as hd

    url, files = remote_slide
    labels = np.zeros((350, 260), np.uint8)
    labels[30:200, 40:100] = 1
    labels[250:340, 150:255] = 3
    np.save(tmp_path / "l.npy", labels)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")},
           **auth_env(pacs)}
    r = subprocess.run([sys.executable, "-m", "segbridge", "convert", tmp_path / "l.npy",
                        "--reference", url, "-o", tmp_path / "s.dcm"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    level = pydicom.dcmread(files[1], stop_before_pixels=True)
    seg = hd.seg.segread(tmp_path / "s.dcm")
    assert seg.SourceImageSequence[0].ReferencedSOPInstanceUID == level.SOPInstanceUID
    got = seg.get_total_pixel_matrix(combine_segments=True)
    np.testing.assert_array_equal(got, labels)
    np.save(tmp_path / "bad.npy", np.ones((100, 100), np.uint8))
    r = subprocess.run([sys.executable, "-m", "segbridge", "convert", tmp_path / "bad.npy",
                        "--reference", url, "-o", tmp_path / "t.dcm"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 1 and "size of no level" in r.stderr and "700 x 520" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "t.dcm").exists()
