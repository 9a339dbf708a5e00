"""PNG previews: axial, coronal and sagittal views through a segment, with every segment drawn.

Each segment is a translucent fill in its recommended colour plus a one-pixel outline in the
full colour, drawn in segment order, so where two segments overlap both fills mix and both
outlines stay visible. Views follow the radiological convention (patient right on the left of
the axial and coronal views, anterior up in the axial view, superior up in the others) whatever
the order of the grid's axes, and keep physical proportions (anisotropic voxels are stretched).
The long and short axis of the chosen segment are drawn on its measured slice. Pillow does the
resizing and drawing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..colors import default_color
from ..errors import InvalidInputError, Report
from ..model import Segmentation
from ..outputs import tmp_name
from ..series import ReferenceImage
from .bidirectional import Bidirectional

PANEL = 340  # panels fit in a PANEL x PANEL box
FILL_ALPHA = 0.35
LONG_AXIS_COLOR = (255, 255, 0)
SHORT_AXIS_COLOR = (0, 255, 255)
BACKGROUND = (16, 16, 16)
TEXT = (235, 235, 235)
MARGIN_MM = 25.0
MIN_HEIGHT = 150  # thinner panels are stretched vertically (labelled)


@dataclass
class View:
    """One panel: which grid axes run across and down, flips, and the slice shown."""

    name: str
    h: int  # grid axis (0 = x, 1 = y, 2 = z) shown left -> right
    v: int  # grid axis shown top -> bottom
    flip_h: bool
    flip_v: bool
    fixed: int
    index: int
    letters: tuple[str, str, str, str]  # left, right, top, bottom
    lo: tuple[int, int] = (0, 0)  # crop start along h, v
    hi: tuple[int, int] = (0, 0)  # crop stop along h, v
    scale: tuple[float, float] = (1.0, 1.0)  # display pixels per voxel along h, v
    stretch: float = 1.0  # vertical exaggeration of a thin volume (1 = true proportions)

    @property
    def size(self) -> tuple[int, int]:
        return (max(1, int(round((self.hi[0] - self.lo[0]) * self.scale[0]))),
                max(1, int(round((self.hi[1] - self.lo[1]) * self.scale[1]))))

    @property
    def region(self) -> tuple[slice, slice, slice]:
        """The [z, y, x] box of the shown (cropped) slice."""
        sl: list = [slice(None)] * 3
        sl[2 - self.fixed] = slice(self.index, self.index + 1)
        sl[2 - self.h] = slice(self.lo[0], self.hi[0])
        sl[2 - self.v] = slice(self.lo[1], self.hi[1])
        return tuple(sl)

    def orient(self, box: np.ndarray) -> np.ndarray:
        """A [z, y, x] array of ``region``'s shape as displayed: rows = v, columns = h."""
        p = box.squeeze(axis=2 - self.fixed)
        if (2 - self.v) > (2 - self.h):
            p = p.T
        if self.flip_h:
            p = p[:, ::-1]
        if self.flip_v:
            p = p[::-1, :]
        return p

    def to_display(self, along_h: float, along_v: float) -> tuple[float, float]:
        """Display (x, y) of a voxel centre given by its grid indices along h and v."""
        w, h = self.size
        x = (along_h - self.lo[0] + 0.5) * self.scale[0]
        y = (along_v - self.lo[1] + 0.5) * self.scale[1]
        return (w - x if self.flip_h else x, h - y if self.flip_v else y)


def patient_axes(direction: np.ndarray) -> tuple[list[int], list[int]]:
    """For L, P, S: the grid axis most aligned with it and the sign of that alignment."""
    d = np.asarray(direction, float)
    perm = [int(np.argmax(np.abs(d[p]))) for p in range(3)]
    if len(set(perm)) < 3:  # very oblique: show the acquisition axes as they are
        perm = [0, 1, 2]
    signs = [1 if d[p, perm[p]] >= 0 else -1 for p in range(3)]
    return perm, signs


#: frame space (2-D / cine): the frame, and the frames against columns / rows; no patient
#: letters (there is no patient orientation), named by the plane option they answer to
FRAME_SPACE_VIEWS = {"axial": "frame index", "coronal": "frames x columns",
                     "sagittal": "frames x rows"}


def _views(seg: Segmentation, centre_xyz: list[int]) -> list[View]:
    if seg.frame_space:
        blank = ("", "", "", "")
        spec = [(FRAME_SPACE_VIEWS["axial"], 0, 1, False, False, 2, blank),
                (FRAME_SPACE_VIEWS["coronal"], 0, 2, False, False, 1, blank),
                (FRAME_SPACE_VIEWS["sagittal"], 1, 2, False, False, 0, blank)]
        return [View(n, h, v, fh, fv, fx, int(centre_xyz[fx]), letters)
                for n, h, v, fh, fv, fx, letters in spec]
    perm, sign = patient_axes(seg.grid.direction)
    L, P, S = 0, 1, 2
    spec = [
        ("axial", perm[L], perm[P], sign[L] < 0, sign[P] < 0, perm[S], ("R", "L", "A", "P")),
        ("coronal", perm[L], perm[S], sign[L] < 0, sign[S] > 0, perm[P], ("R", "L", "S", "I")),
        ("sagittal", perm[P], perm[S], sign[P] < 0, sign[S] > 0, perm[L], ("A", "P", "S", "I")),
    ]
    return [View(n, h, v, fh, fv, fx, int(centre_xyz[fx]), letters)
            for n, h, v, fh, fv, fx, letters in spec]


def _window(image: ReferenceImage, values: np.ndarray) -> tuple[float, float]:
    """Display range: the CT's own window (else soft tissue), robust ranges otherwise."""
    modality = (image.modality or "").upper()
    if modality == "CT":
        h = image.headers[0] if image.headers else {}
        try:
            c = float(np.atleast_1d(h.get("WindowCenter"))[0])
            w = float(np.atleast_1d(h.get("WindowWidth"))[0])
            if w > 1:
                return c - w / 2, c + w / 2
        except (TypeError, ValueError, IndexError):
            pass
        return -160.0, 240.0
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo = 0.0 if modality == "PT" else float(np.percentile(finite, 1))
    hi = float(np.percentile(finite, 99.5))
    return lo, hi if hi > lo else lo + 1.0


def _erode(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1)
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _outline(mask: np.ndarray) -> np.ndarray:
    """A two-pixel band inside the mask's edge."""
    return mask & ~_erode(_erode(mask))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def choose_segment(seg: Segmentation, numbers: list[int], what: str = "render") -> int:
    """The largest of ``numbers`` by voxel count; InvalidInputError (naming ``what``) when
    there is none with voxels on the grid: an empty segmentation, or one wholly outside the
    image (resampling onto the image leaves nothing of it)."""
    counts = seg.voxel_counts()
    if not numbers:
        raise InvalidInputError(f"{what}: nothing to render: no segment has voxels on the image "
                                "(the segmentation is empty or lies outside the image)")
    best = max(numbers, key=lambda n: (counts.get(n, 0), -n))
    if counts.get(best, 0) == 0:
        raise InvalidInputError(f"{what}: nothing to render: the selected segments have no "
                                "voxels on the image (empty, or outside the image)")
    return best


PLANES = ("all", "axial", "coronal", "sagittal")


def render(seg: Segmentation, image: ReferenceImage, output: str | os.PathLike, *,
           numbers: list[int] | None = None, focus: int | None = None,
           slice_index: int | None = None, axes: list[Bidirectional] | None = None,
           title: str = "", report: Report | None = None, what: str | None = None,
           plane: str = "all") -> Path:
    """Write the preview PNG; ``seg`` must be on ``image``'s grid.

    ``plane``: ``all`` (axial, coronal and sagittal side by side) or one of them;
    ``slice_index`` is the index along that plane's fixed grid axis (axial for ``all``).
    ``what`` names the input(s) in messages (default: the title up to " on ").
    """
    from PIL import Image, ImageDraw

    report = report if report is not None else Report()
    what = what or title.split(" on ")[0] or "render"
    if not seg.grid.same_as(image.grid):
        raise InvalidInputError(f"{what}: the segmentation is not on the image grid")
    if plane not in PLANES:
        raise InvalidInputError(f"{what}: plane {plane!r} is none of {', '.join(PLANES)}")
    numbers = list(seg.numbers) if numbers is None else numbers
    if focus is not None and focus not in numbers:
        raise InvalidInputError(f"{what}: focus {focus} is not among the rendered segments")
    focus = focus if focus is not None else choose_segment(seg, numbers, what)
    boxes = seg.bounding_boxes()
    box = boxes.get(focus)
    if box is None:
        raise InvalidInputError(f"{what}: segment {focus} has no voxels on the image; nothing "
                                "to centre the views on")
    axes_of = {a.number: a for a in (axes or [])}
    focus_axes = axes_of.get(focus)
    sub = seg.mask_in(focus, box)
    zyx = np.argwhere(sub) + np.array([b.start for b in box])
    com = zyx.mean(axis=0)
    nearest = zyx[np.argmin(((zyx - com) ** 2).sum(axis=1))]  # a voxel of the segment
    centre = [int(nearest[2]), int(nearest[1]), int(nearest[0])]
    views = _views(seg, centre)
    axial = views[0]
    if plane != "all":
        name = FRAME_SPACE_VIEWS.get(plane, plane) if seg.frame_space else plane
        views = [v for v in views if v.name == name]
    chosen = views[0]  # the view --slice moves: axial, or the one plane asked for
    if slice_index is not None:
        n_fixed = seg.grid.shape[2 - chosen.fixed]
        if not 0 <= slice_index < n_fixed:
            raise InvalidInputError(f"{what}: --slice {slice_index} is outside 0..{n_fixed - 1}")
        chosen.index = slice_index
    elif focus_axes is not None and focus_axes.found and axial.fixed == 2:
        axial.index = int(focus_axes.slice_index)

    spacing_xyz = seg.grid.spacing[::-1]
    shape_xyz = seg.grid.shape[::-1]
    lo_xyz = [b.start for b in box][::-1]
    hi_xyz = [b.stop for b in box][::-1]
    for v in views:  # crop around the focus segment, keep physical proportions
        lo, hi = [], []
        for a in (v.h, v.v):
            extent = (hi_xyz[a] - lo_xyz[a]) * spacing_xyz[a]
            pad = int(np.ceil(max(MARGIN_MM, 0.5 * extent) / spacing_xyz[a]))
            lo.append(max(0, lo_xyz[a] - pad))
            hi.append(min(shape_xyz[a], hi_xyz[a] + pad))
        v.lo, v.hi = tuple(lo), tuple(hi)
        w_mm = (hi[0] - lo[0]) * spacing_xyz[v.h]
        h_mm = (hi[1] - lo[1]) * spacing_xyz[v.v]
        px_per_mm = PANEL / max(w_mm, h_mm)
        v.scale = (spacing_xyz[v.h] * px_per_mm, spacing_xyz[v.v] * px_per_mm)
        if h_mm * px_per_mm < MIN_HEIGHT:  # a thin stack: exaggerate, and say so
            v.stretch = MIN_HEIGHT / (h_mm * px_per_mm)
            v.scale = (v.scale[0], v.scale[1] * v.stretch)

    pixels = image.pixels()
    planes = [v.orient(pixels[v.region]) for v in views]
    lo_w, hi_w = _window(image, np.concatenate([p.ravel() for p in planes]))
    colors = {s.number: tuple(s.color or default_color(i)) for i, s in enumerate(seg.segments)}
    panels = []
    for v, plane in zip(views, planes, strict=True):
        gray = np.clip((plane - lo_w) / (hi_w - lo_w), 0, 1) * 255
        img = Image.fromarray(gray.astype(np.uint8), "L").resize(v.size, Image.BILINEAR)
        rgb = np.repeat(np.asarray(img, np.float32)[..., None], 3, axis=2)
        outlines = []
        for n in numbers:
            if boxes.get(n) is None:
                continue
            m = v.orient(seg.mask_in(n, v.region))
            if not m.any():
                continue
            big = np.asarray(Image.fromarray(m.astype(np.uint8) * 255, "L").resize(
                v.size, Image.NEAREST)) > 0
            col = np.array(colors[n], np.float32)
            rgb[big] = rgb[big] * (1 - FILL_ALPHA) + col * FILL_ALPHA
            outlines.append((_outline(big), col))
        for edge, col in outlines:  # outlines last, so a later fill never hides one
            rgb[edge] = col
        panel = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
        if v is axial:
            _draw_axes(ImageDraw.Draw(panel), v, axes_of.get(focus))
        panels.append(panel)
    return _compose(panels, views, seg, numbers, colors, focus, axes_of, title, output)


def _draw_axes(draw, v: View, a: Bidirectional | None) -> None:
    """Long (yellow) and short (cyan) axis, when measured on the shown slice."""
    if a is None or not a.found or a.slice_index != v.index or v.fixed != 2:
        return
    for pts, col in ((a.long_index, LONG_AXIS_COLOR), (a.short_index, SHORT_AXIS_COLOR)):
        if pts is None:
            continue
        ends = [v.to_display(*(p if v.h == 0 else p[::-1])) for p in pts]
        draw.line(ends, fill=col, width=2)
        for x, y in ends:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=col, width=2)


def _compose(panels, views, seg, numbers, colors, focus, axes_of, title, output) -> Path:
    from PIL import Image, ImageDraw

    font, small = _font(15), _font(12)
    gap, top = 12, 30
    width = sum(p.width for p in panels) + gap * (len(panels) + 1)
    rows = [n for n in numbers if n in colors]
    legend_h = 22 * ((len(rows) + 2) // 3) + 40
    height = top + max(p.height for p in panels) + 24 + legend_h
    canvas = Image.new("RGB", (max(width, 600), height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, 8), title, fill=TEXT, font=font)
    x = gap
    for panel, v in zip(panels, views, strict=True):
        canvas.paste(panel, (x, top))
        stretched = f" (vertical x{v.stretch:.1f})" if v.stretch > 1.01 else ""
        draw.text((x + 4, top + 4), f"{v.name} {v.index}{stretched}", fill=TEXT, font=small)
        left, right, up, down = v.letters
        draw.text((x + 4, top + panel.height // 2), left, fill=TEXT, font=small)
        draw.text((x + panel.width - 12, top + panel.height // 2), right, fill=TEXT, font=small)
        draw.text((x + panel.width // 2, top + 4 + 14), up, fill=TEXT, font=small)
        draw.text((x + panel.width // 2, top + panel.height - 16), down, fill=TEXT, font=small)
        x += panel.width + gap
    y0 = top + max(p.height for p in panels) + 16
    col_w = (canvas.width - 2 * gap) // 3
    for i, n in enumerate(rows):
        cx, cy = gap + (i % 3) * col_w, y0 + 22 * (i // 3)
        draw.rectangle([cx, cy + 2, cx + 14, cy + 16], fill=colors[n])
        text = f"{n} {seg.segment(n).label}"
        draw.text((cx + 20, cy + 1), text[:40], fill=TEXT, font=small)
    a = axes_of.get(focus)
    if a is not None and a.found:
        short = f"{a.short_mm:.1f} mm" if a.short_mm is not None else "none"
        msg = (f"segment {focus}: long axis {a.long_mm:.1f} mm (yellow), short axis {short} "
               f"(cyan), slice {a.slice_index}")
        draw.text((gap, y0 + 22 * ((len(rows) + 2) // 3) + 4), msg, fill=TEXT, font=small)
    target = Path(output)
    if not target.parent.exists():
        raise InvalidInputError(f"{target}: output folder {target.parent} does not exist")
    if target.is_dir():
        raise InvalidInputError(f"{target}: is a folder; give the PNG file to write")
    tmp = tmp_name(target)
    try:
        canvas.save(tmp, format="PNG")
        os.replace(tmp, target)
    except OSError as exc:
        raise InvalidInputError(f"{target}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
