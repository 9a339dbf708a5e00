"""A dataset's labels, from relabel maps, and one label image per case.

The map is a relabel map (:mod:`segbridge.harmonise`, docs/relabel.md): its rules turn each
site's structure names into targets. For a dataset every target needs a ``number`` (its label
value); ``priority`` decides overlap (where targets overlap in one label image the higher
priority wins; equal priorities: the higher number wins) and ``region`` (label numbers) makes
the dataset region-based for nnU-Net: a target is then the union of the labels its region
lists, and every case is checked to be exactly that.

Nothing here parses a map: that is :func:`segbridge.harmonise.load_maps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError, Report
from ..harmonise import RelabelMap, load_maps, relabel
from ..labels import Label, LabelMap
from ..model import Segmentation


@dataclass(frozen=True)
class Target:
    """One label of the dataset."""

    name: str
    number: int
    priority: int
    region: tuple[int, ...]
    label: Label  # name, codes, colour (for SEGs made from predictions)
    where: str


@dataclass
class DatasetLabels:
    """The labels of a dataset: targets by number, and the maps that name them."""

    maps: list[RelabelMap]
    targets: list[Target]  # by number
    region_based: bool
    allow_merge: bool = False  # segments reaching one target merge without merge=yes

    @property
    def painting_order(self) -> list[Target]:
        """Lowest priority first: each later target overwrites the earlier ones."""
        return sorted(self.targets, key=lambda t: (t.priority, t.number))

    def label_map(self) -> LabelMap:
        """Label value -> name, codes, colour (:mod:`segbridge.labels`), for reading predictions."""
        return LabelMap({t.number: t.label for t in self.targets}, {}, "dataset labels")

    def by_number(self) -> dict[int, Target]:
        return {t.number: t for t in self.targets}


def dataset_labels(maps, *, allow_merge: bool = False) -> DatasetLabels:
    """The dataset's labels from relabel maps (paths, ``tg263``, dicts, RelabelMaps).

    Every target needs a number, numbers are distinct, and a region lists its own number and
    only numbers of targets. A later map's rule for a target name replaces an earlier one's.

    Raises
    ------
    InvalidInputError
        A map that cannot serve a dataset (one line naming the rule).
    """
    layers = load_maps(maps)
    rules = {}
    for m in layers:  # a later map overrides; within one map the rules of a target agree
        own: dict = {}
        for r in m.rules:
            own.setdefault(r.target.name, r)
        rules.update(own)
    targets: dict[int, Target] = {}
    for name, r in rules.items():
        if r.number is None:
            raise InvalidInputError(f"{r.where}: target {name!r} has no number; a dataset "
                                    "needs a label number for every target")
        if r.number in targets:
            raise InvalidInputError(f"{r.where}: number {r.number} is also target "
                                    f"{targets[r.number].name!r}")
        region = r.region or (r.number,)
        if r.number not in region:
            raise InvalidInputError(f"{r.where}: the region of {name!r} must hold its own "
                                    f"number {r.number}")
        targets[r.number] = Target(name, r.number, r.priority or 0, region, r.target, r.where)
    region_based = any(r.region is not None for r in rules.values())
    for t in targets.values():
        missing = [n for n in t.region if n not in targets]
        if missing:
            raise InvalidInputError(f"{t.where}: region of {t.name!r} names label {missing[0]}, "
                                    "which no target has")
    return DatasetLabels(layers, [targets[n] for n in sorted(targets)], region_based,
                         allow_merge)


def label_image(seg: Segmentation, labels: DatasetLabels, *, report: Report,
                what: str) -> np.ndarray:
    """One label image on ``seg``'s grid: segments renamed by the maps (unmapped ones
    dropped, each noted), painted in priority order; voxels a higher priority took from a
    target are noted. Region-based: every target must equal the union of its region's labels.

    Raises
    ------
    InvalidInputError
        The relabel plan refuses (ambiguous names, a merge no rule allows), or a target is not
        the union of its region's labels.
    """
    mapped = relabel(seg, labels.maps, unmapped="drop", allow_merge=labels.allow_merge,
                     report=report, what=what)
    wanted = labels.by_number()
    dtype = np.uint8 if max(wanted, default=1) <= 255 else np.uint16
    out = np.zeros(seg.grid.shape, dtype)
    masks = {}
    for t in labels.painting_order:
        if any(s.number == t.number for s in mapped.segments):
            masks[t.number] = mapped.mask(t.number)
            out[masks[t.number]] = t.number
    present = [s for s in mapped.segments if s.number not in wanted]
    if present:  # cannot happen with unmapped="drop"; a guard, not a guess
        raise InvalidInputError(f"{what}: segment {present[0].label!r} is not a dataset label")
    for n, mask in masks.items():
        t = wanted[n]
        if labels.region_based:
            got = np.isin(out, t.region)
            bad = int(np.count_nonzero(got != mask))
            if bad:
                raise InvalidInputError(
                    f"{what}: {t.name!r} is not the union of its region {list(t.region)} "
                    f"({bad} voxels differ): the structures do not nest as the map says")
            continue
        lost = mask & (out != n)
        if lost.any():
            winners = sorted({wanted[int(v)].name for v in np.unique(out[lost]) if v})
            report.note(f"{what}: {int(lost.sum())} voxels of {t.name!r} overlap "
                        f"{', '.join(map(repr, winners))}, which take them (priority)")
    return out
